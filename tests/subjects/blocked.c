/* A target blocked in one system call, for the ctl-state matrix.
 *
 *   blocked MODE MS
 *
 * prints "ready" once set up, makes the one blocking call, then prints
 * "RET ERRNO ELAPSED_MS EXTRA" (ELAPSED_MS by CLOCK_MONOTONIC around the call)
 * and exits 0.  Every mode's right answer is known: the call returns what it
 * would untraced, after MS milliseconds (or when the test writes to stdin).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long ms;
static volatile int futex_word;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static struct timespec span(long m) {
    struct timespec t = {m / 1000, (m % 1000) * 1000000L};
    return t;
}

static void *waker(void *arg) {
    struct timespec t = span(ms);
    nanosleep(&t, 0);
    futex_word = 1;
    syscall(SYS_futex, &futex_word, FUTEX_WAKE, 1, 0, 0, 0);
    return arg;
}

static void *sleeper(void *arg) {
    struct timespec t = span(ms);
    nanosleep(&t, 0);
    return arg;
}

int main(int argc, char **argv) {
    const char *mode = argv[1];
    ms = atol(argv[2]);
    long ret = 0, extra = 0;
    int err = 0;
    char buf[64] = "";
    struct timespec t = span(ms);
    pthread_t th[4];
    if (!strcmp(mode, "futex")) pthread_create(&th[0], 0, waker, 0);
    if (!strcmp(mode, "threads"))
        for (int i = 0; i < 4; i++) pthread_create(&th[i], 0, sleeper, 0);
    printf("ready\n");
    fflush(stdout);
    double t0 = now_ms();
    if (!strcmp(mode, "nanosleep")) {
        ret = nanosleep(&t, 0);
    } else if (!strcmp(mode, "clock_nanosleep")) {
        ret = clock_nanosleep(CLOCK_MONOTONIC, 0, &t, 0);      /* returns the error */
    } else if (!strcmp(mode, "clock_nanosleep_abs")) {
        struct timespec a;
        clock_gettime(CLOCK_MONOTONIC, &a);
        a.tv_sec += t.tv_sec;
        a.tv_nsec += t.tv_nsec;
        if (a.tv_nsec >= 1000000000L) { a.tv_sec++; a.tv_nsec -= 1000000000L; }
        ret = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &a, 0);
    } else if (!strcmp(mode, "read")) {
        ret = read(0, buf, sizeof buf - 1);
        if (ret > 0) { buf[ret] = 0; extra = buf[0]; }
    } else if (!strcmp(mode, "poll")) {
        struct pollfd p = {0, POLLIN, 0};
        ret = poll(&p, 1, (int)ms);
    } else if (!strcmp(mode, "select")) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(0, &r);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        ret = select(1, &r, 0, 0, &tv);
    } else if (!strcmp(mode, "futex")) {
        while (!futex_word)
            ret = syscall(SYS_futex, &futex_word, FUTEX_WAIT, 0, 0, 0, 0);
        ret = futex_word;
        pthread_join(th[0], 0);
    } else if (!strcmp(mode, "wait4")) {
        pid_t c = fork();
        if (c == 0) { nanosleep(&t, 0); _exit(7); }
        int st = 0;
        ret = wait4(c, &st, 0, 0) == c;
        extra = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    } else if (!strcmp(mode, "vfork")) {
        pid_t c = vfork();
        if (c == 0) { nanosleep(&t, 0); _exit(3); }
        int st = 0;
        ret = waitpid(c, &st, 0) == c;
        extra = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    } else if (!strcmp(mode, "threads")) {
        ret = nanosleep(&t, 0);
        for (int i = 0; i < 4; i++) pthread_join(th[i], 0);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    if (ret < 0) err = errno;
    printf("%ld %d %.0f %ld\n", ret, err, now_ms() - t0, extra);
    return 0;
}
