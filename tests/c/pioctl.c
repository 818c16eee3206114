/*
 * pioctl: stop a child at its exec(2) with procfs(5)'s PIOC* ioctls, the way
 * truss(1) once did on FreeBSD, against whatever procfs is mounted at /proc.
 *
 * The requests and struct procfs_status are sys/pioctl.h's definitions; on
 * FreeBSD 10.x-12.x the header itself is used, elsewhere they are spelled out
 * with the host's <sys/ioctl.h> macros (same group 'p', numbers and sizes).
 *
 * Prints one line per step; exits 0 when every step gave what FreeBSD does.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __FreeBSD__
#include <sys/pioctl.h>
#else
struct procfs_status {
	int	state;		/* Running, stopped, something else? */
	int	flags;		/* Any flags */
	unsigned long	events;	/* Events to stop on */
	int	why;		/* What event, if any, proc stopped on */
	unsigned long	val;	/* Any extra data */
};
#define	PIOCBIS		_IO('p', 1)	/* _IOWINT: the int goes by value */
#define	PIOCBIC		_IO('p', 2)
#define	PIOCSFL		_IO('p', 3)
#define	PIOCWAIT	_IOR('p', 4, struct procfs_status)
#define	PIOCCONT	_IO('p', 5)
#define	PIOCSTATUS	_IOR('p', 6, struct procfs_status)
#define	PIOCGFL		_IOR('p', 7, unsigned int)
#define	S_EXEC		0x00000001
#define	S_SIG		0x00000002
#define	PF_LINGER	0x01
#endif

static int failures;

static void
check(const char *what, int ok)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	if (!ok)
		failures++;
}

int
main(void)
{
	struct procfs_status ps;
	unsigned int fl;
	char path[64];
	int go[2], fd, status;
	pid_t pid;

	if (pipe(go) != 0)
		return (2);
	pid = fork();
	if (pid == 0) {
		char c;
		close(go[1]);
		(void)read(go[0], &c, 1);	/* wait until the parent set S_EXEC */
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	close(go[0]);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDWR);
	check("open /proc/PID/mem", fd >= 0);
	if (fd < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return (1);
	}
	memset(&ps, 0xff, sizeof(ps));
	check("PIOCSTATUS before any event: running, no events",
	    ioctl(fd, PIOCSTATUS, &ps) == 0 && ps.state == 1 && ps.events == 0);
	check("PIOCBIS S_EXEC|S_SIG", ioctl(fd, PIOCBIS, S_EXEC | S_SIG) == 0);
	check("PIOCBIC S_SIG", ioctl(fd, PIOCBIC, S_SIG) == 0);
	check("PIOCSFL 0", ioctl(fd, PIOCSFL, 0) == 0);
	fl = 99;
	check("PIOCGFL == 0", ioctl(fd, PIOCGFL, &fl) == 0 && fl == 0);
	check("unknown request: ENOTTY",
	    ioctl(fd, _IO('p', 42), 0) == -1 && errno == ENOTTY);
	(void)write(go[1], "x", 1);
	memset(&ps, 0, sizeof(ps));
	check("PIOCWAIT: stopped at exec",
	    ioctl(fd, PIOCWAIT, &ps) == 0 && ps.state == 0 && ps.why == S_EXEC &&
	    ps.events == S_EXEC);
	printf("procfs_status state=%d flags=%d events=0x%lx why=%d val=%lu\n",
	    ps.state, ps.flags, ps.events, ps.why, ps.val);
	check("PIOCCONT with an invalid signal: EINVAL",
	    ioctl(fd, PIOCCONT, 1000) == -1 && errno == EINVAL);
	check("PIOCCONT 0", ioctl(fd, PIOCCONT, 0) == 0);
	check("child ran on and exited 0",
	    waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0);
	close(fd);
	printf("%d failures\n", failures);
	return (failures != 0);
}
