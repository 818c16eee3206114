/*
 * Compiled twin of _linuxparse.py: the Linux /proc reads and parses on the
 * whole-system status scan, as psutil does them in _psutil_linux.
 *
 * Why C: the profile of `bsdprocfs bench` showed about 21 us of Python per pid
 * on top of 28 us of file reads; the per-pid splitting of stat, the regex over
 * status and the open/read/close calls are most of it.  Only Linux facts live
 * here (no FreeBSD rules), with the very same names, inputs and results as the
 * pure-Python reference module; tests/test_linuxfacts.py holds them equal.
 * Every syscall runs with the GIL released: a FUSE daemon serves reads in
 * several threads, and /proc reads can wait on a target's locks.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Read sizes: the same as _linuxparse.py, so both touch /proc identically. */
#define STAT_SIZE 4096
#define STATUS_SIZE 16384
#define SMALL_SIZE 256
/* ord(state) and the 39 numbers after it, to rt_priority (stat field 40): the
 * backend reads up to processor (39); more would be ints nobody reads */
#define MAX_STAT_FIELDS 40

/* One read of a single-record /proc file; fstat of the fd when st is given.
 * Returns the length, or -1 with errno set.  Runs without the GIL. */
static ssize_t
read_once(const char *path, char *buf, size_t cap, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap);
    int saved = errno;
    if (n >= 0 && st != NULL && fstat(fd, st) != 0) {
        saved = errno;
        n = -1;
    }
    close(fd);
    errno = saved;
    return n;
}

static int
is_ws(char c)
{
    /* bytes.split()'s whitespace */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A digit string (with an optional '-') as a Python int; *pos moves past it.
 * NULL with no exception set when there is no number at *pos.  Wider than 64
 * bits goes through PyLong_FromString, as Python's int() would take it. */
static PyObject *
take_int(const char **pos, const char *end)
{
    const char *p = *pos;
    int neg = 0, wide = 0;
    unsigned long long v = 0;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *first = p;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10)
            wide = 1;
        else
            v = v * 10 + d;
        p++;
    }
    if (p == digits)
        return NULL;
    *pos = p;
    if (wide || (neg && v > (unsigned long long)LLONG_MAX)) {
        char tmp[128];
        if (p - first >= (ptrdiff_t)sizeof tmp) {
            PyErr_SetString(PyExc_ValueError, "a number of more than 127 digits");
            return NULL;
        }
        memcpy(tmp, first, (size_t)(p - first));
        tmp[p - first] = '\0';
        return PyLong_FromString(tmp, NULL, 10);
    }
    return neg ? PyLong_FromLongLong(-(long long)v) : PyLong_FromUnsignedLongLong(v);
}

/* stat -> (comm, fields): comm between the first '(' and the LAST ')' (comm may
 * hold ')', spaces, newlines); fields[0] is ord(state), then every number. */
static PyObject *
parse_stat_buf(const char *buf, Py_ssize_t n)
{
    const char *end = buf + n;
    const char *lp = memchr(buf, '(', (size_t)n);
    const char *rp = NULL;
    for (const char *q = end; q > buf; q--) {
        if (q[-1] == ')') {
            rp = q - 1;
            break;
        }
    }
    if (lp == NULL || rp == NULL || rp < lp || end - rp < 4 || rp[1] != ' ') {
        PyErr_SetString(PyExc_ValueError, "stat: no '(comm) S' in the line");
        return NULL;
    }
    PyObject *items[MAX_STAT_FIELDS];
    Py_ssize_t count = 0;
    const char *p = rp + 2;
    if (p + 1 < end && !is_ws(p[1])) {
        PyErr_SetString(PyExc_ValueError, "stat: the state is not one byte");
        return NULL;
    }
    items[count] = PyLong_FromLong((unsigned char)*p);
    if (items[count] == NULL)
        return NULL;
    count++;
    p++;
    while (count < MAX_STAT_FIELDS) {
        while (p < end && is_ws(*p))
            p++;
        if (p >= end)
            break;
        PyObject *v = take_int(&p, end);
        if (v == NULL || (p < end && !is_ws(*p))) {
            Py_XDECREF(v);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "stat: a field is not a number");
            goto fail;
        }
        items[count++] = v;
    }
    PyObject *fields = PyTuple_New(count);
    if (fields == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < count; i++)
        PyTuple_SET_ITEM(fields, i, items[i]);      /* steals */
    PyObject *comm = PyBytes_FromStringAndSize(lp + 1, rp - lp - 1);
    if (comm == NULL) {
        Py_DECREF(fields);
        return NULL;
    }
    return Py_BuildValue("(NN)", comm, fields);
fail:
    for (Py_ssize_t i = 0; i < count; i++)
        Py_DECREF(items[i]);
    return NULL;
}

/* The line that starts with key (e.g. "\nUid:") at or after from; NULL if none. */
static const char *
find_key(const char *from, const char *end, const char *key)
{
    size_t k = strlen(key);
    if (end - from < (ptrdiff_t)k)
        return NULL;
    const char *hit = memmem(from, (size_t)(end - from), key, k);
    return hit ? hit + k : NULL;
}

/* The next word of a status line as an int: words are split on whitespace
 * other than the newline that ends the line, and a word must be -?[0-9]+.
 * 1: *out set; 0: no word left on the line; -1: a word that is not a number
 * (or an exception set). */
static int
line_int(const char **pos, const char *eol, PyObject **out)
{
    const char *p = *pos;
    while (p < eol && is_ws(*p))
        p++;
    if (p >= eol) {
        *pos = p;
        return 0;
    }
    PyObject *v = take_int(&p, eol);
    if (v == NULL)
        return -1;
    if (p < eol && !is_ws(*p)) {
        Py_DECREF(v);
        return -1;
    }
    *pos = p;
    *out = v;
    return 1;
}

/* status -> (tgid, tracer, ruid, euid, suid, rgid, egid, sgid, groups), or None
 * when a line is missing or holds fewer numbers than it should (then Python's
 * reference says the same; extra words after them are ignored, as there). */
static PyObject *
parse_status_buf(const char *buf, Py_ssize_t n)
{
    /* keys are searched with their leading newline; status starts with "Name:",
     * so no key is ever on the first line */
    const char *end = buf + n;
    static const char *keys[] = {"\nTgid:", "\nTracerPid:", "\nUid:", "\nGid:"};
    static const int counts[] = {1, 1, 3, 3};
    PyObject *vals[8] = {NULL};
    PyObject *groups = NULL;
    int nv = 0;
    const char *p = buf;
    for (int k = 0; k < 4; k++) {
        p = find_key(p, end, keys[k]);
        if (p == NULL)
            goto layout;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        for (int c = 0; c < counts[k]; c++) {
            if (line_int(&p, eol, &vals[nv]) != 1)
                goto layout;
            nv++;
        }
    }
    p = find_key(p, end, "\nGroups:");
    if (p == NULL)
        goto layout;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
        eol = end;
    if ((groups = PyList_New(0)) == NULL)
        goto layout;
    for (;;) {
        PyObject *g = NULL;
        int r = line_int(&p, eol, &g);
        if (r == 0)
            break;
        if (r < 0)
            goto layout;
        int bad = PyList_Append(groups, g);
        Py_DECREF(g);
        if (bad)
            goto layout;
    }
    PyObject *gt = PyList_AsTuple(groups);
    Py_CLEAR(groups);
    if (gt == NULL)
        goto layout;
    PyObject *out = PyTuple_New(9);
    if (out == NULL) {
        Py_DECREF(gt);
        goto layout;
    }
    for (int i = 0; i < 8; i++)
        PyTuple_SET_ITEM(out, i, vals[i]);
    PyTuple_SET_ITEM(out, 8, gt);
    return out;
layout:
    for (int i = 0; i < nv; i++)
        Py_DECREF(vals[i]);
    Py_XDECREF(groups);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static int
path_arg(PyObject *obj, char *out, size_t cap, const char *suffix)
{
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &len);
    if (s == NULL)
        return -1;
    size_t sl = strlen(suffix);
    if ((size_t)len + sl + 1 > cap || memchr(s, '\0', (size_t)len) != NULL) {
        PyErr_SetString(PyExc_ValueError, "path too long or with a NUL byte");
        return -1;
    }
    memcpy(out, s, (size_t)len);
    memcpy(out + len, suffix, sl + 1);
    return 0;
}

static PyObject *
lf_parse_stat(PyObject *self, PyObject *arg)
{
    char *buf;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &buf, &n) != 0)
        return NULL;
    return parse_stat_buf(buf, n);
}

static PyObject *
lf_parse_status_ids(PyObject *self, PyObject *arg)
{
    char *buf;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &buf, &n) != 0)
        return NULL;
    return parse_status_buf(buf, n);
}

/* snapshot(base) -> (comm, fields, owner_uid, owner_gid, status, ids|None) */
static PyObject *
lf_snapshot(PyObject *self, PyObject *arg)
{
    char path[PATH_MAX];
    char stat_buf[STAT_SIZE];
    char status_buf[STATUS_SIZE];
    struct stat st;
    ssize_t ns, nu = -1;
    size_t blen;
    int err = 0;
    if (path_arg(arg, path, sizeof path - 8, "/stat") != 0)
        return NULL;
    blen = strlen(path) - 5;
    Py_BEGIN_ALLOW_THREADS
    ns = read_once(path, stat_buf, sizeof stat_buf, &st);
    if (ns < 0) {
        err = errno;
    } else {
        memcpy(path + blen, "/status", 8);
        nu = read_once(path, status_buf, sizeof status_buf, NULL);
        if (nu < 0)
            err = errno;
    }
    Py_END_ALLOW_THREADS
    if (err) {
        errno = err;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    }
    PyObject *stat = parse_stat_buf(stat_buf, ns);
    if (stat == NULL)
        return NULL;
    PyObject *ids = parse_status_buf(status_buf, nu);
    if (ids == NULL) {
        Py_DECREF(stat);
        return NULL;
    }
    PyObject *status = PyBytes_FromStringAndSize(status_buf, nu);
    if (status == NULL) {
        Py_DECREF(stat);
        Py_DECREF(ids);
        return NULL;
    }
    PyObject *out = Py_BuildValue("(OOkkNN)", PyTuple_GET_ITEM(stat, 0),
                                  PyTuple_GET_ITEM(stat, 1), (unsigned long)st.st_uid,
                                  (unsigned long)st.st_gid, status, ids);
    Py_DECREF(stat);
    return out;
}

/* The first number of a schedstat file (run time in ns), or -1. */
static long long
schedstat_ns(const char *path)
{
    char buf[SMALL_SIZE + 1];
    ssize_t n = read_once(path, buf, SMALL_SIZE, NULL);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *endp;
    errno = 0;
    long long v = strtoll(buf, &endp, 10);
    if (endp == buf || errno != 0 || v < 0)
        return -1;
    return v;
}

/* Run time summed over the threads in dir (path holds it; cap is its size):
 * a thread that exits meanwhile counts 0; -1 when the directory is unreadable. */
static long long
schedstat_sum(char *path, size_t cap)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    size_t plen = strlen(path);
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path + plen, cap - plen, "/%s/schedstat", e->d_name);
        long long v = schedstat_ns(path);
        if (v > 0)
            total += v;
    }
    closedir(d);
    path[plen] = '\0';
    return total;
}

/* The UTS namespace's inode: readlink gives "uts:[INO]" (namespaces(7)) at less
 * than half the cost of stat(), which follows the link into nsfs; stat() only
 * where the path is not a symlink (a copied tree).  -1 when unreadable. */
static long long
uts_ino_at(const char *path)
{
    char link[64];
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n >= 0) {
        link[n] = '\0';
        if (n > 6 && memcmp(link, "uts:[", 5) == 0 && link[n - 1] == ']'
                && link[5] >= '0' && link[5] <= '9') {
            char *endp;
            errno = 0;
            long long v = strtoll(link + 5, &endp, 10);
            if (endp == link + n - 1 && errno == 0 && v >= 0)
                return v;
        }
        /* an odd link text: stat() it, as for a plain file */
    } else if (errno != EINVAL) {
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (long long)st.st_ino;
}

static PyObject *
lf_uts_ino(PyObject *self, PyObject *arg)
{
    char path[PATH_MAX];
    long long v;
    if (path_arg(arg, path, sizeof path, "") != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    v = uts_ino_at(path);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(v);
}

/* A process's run time in ns (sum_exec_runtime of all its threads, the exited
 * ones too) from its CPU-time clock: one syscall, no file, any reader may ask. */
static long long
process_runtime_ns(long long pid)
{
    /* MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED), include/linux/posix-timers.h */
    clockid_t clk = (clockid_t)((int)(~(unsigned)pid << 3) | 2);
    struct timespec ts;
    if (clock_gettime(clk, &ts) != 0)
        return -1;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Does sid still lead session sid, alive (not a zombie)?  getsid(2), then a
 * pidfd, which polls readable once the process has exited.  -1: cannot tell
 * (no pidfd_open before Linux 5.3): the caller reads the leader's stat. */
static int
leader_alive_by_pid(long long sid)
{
    pid_t got = getsid((pid_t)sid);
    if (got < 0)
        return errno == ESRCH ? 0 : -1;        /* EPERM (an LSM): ask its stat */
    if (got != (pid_t)sid)
        return 0;
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)sid, 0);
    if (fd < 0)
        return errno == ESRCH ? 0 : -1;
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, 0);
    close(fd);
    return r < 0 ? -1 : r == 0;
}

/* The rest of what FreeBSD's status line needs of one process, in one call:
 * status_io(root, pid, nthreads, want_wchan, want_uts, sid, by_pid) ->
 *   (run time ns or -1, wchan bytes or None, uts inode or -1, leader_alive).
 * leader_alive: sid is neither a zombie nor gone and still leads session sid;
 * False when sid is 0 or pid itself (nothing to look up).  by_pid: root is this
 * pid namespace's /proc, so the run time and the leader come from syscalls by
 * pid (cheaper than files); otherwise from schedstat and the leader's stat. */
static PyObject *
lf_status_io(PyObject *self, PyObject *args)
{
    PyObject *root_obj;
    long long pid, nthreads, sid;
    int want_wchan, want_uts, by_pid;
    char root[PATH_MAX - 64];
    char path[PATH_MAX];
    char wchan[SMALL_SIZE];
    char leader[STAT_SIZE];
    ssize_t nw = -1, nl = -1;
    long long sched = -1, uts = -1;
    int alive = 0;
    if (!PyArg_ParseTuple(args, "ULLppLp", &root_obj, &pid, &nthreads, &want_wchan, &want_uts,
                          &sid, &by_pid))
        return NULL;
    if (path_arg(root_obj, root, sizeof root - 300, "") != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (by_pid) {
        sched = process_runtime_ns(pid);
    } else if (nthreads == 1) {
        snprintf(path, sizeof path, "%s/%lld/schedstat", root, pid);
        sched = schedstat_ns(path);
    } else {
        snprintf(path, sizeof path, "%s/%lld/task", root, pid);
        sched = schedstat_sum(path, sizeof path);
    }
    if (want_wchan) {
        snprintf(path, sizeof path, "%s/%lld/wchan", root, pid);
        nw = read_once(path, wchan, sizeof wchan, NULL);
    }
    if (want_uts) {
        snprintf(path, sizeof path, "%s/%lld/ns/uts", root, pid);
        uts = uts_ino_at(path);
    }
    if (sid != 0 && sid != pid) {
        alive = by_pid ? leader_alive_by_pid(sid) : -1;
        if (alive < 0) {
            alive = 0;
            snprintf(path, sizeof path, "%s/%lld/stat", root, sid);
            nl = read_once(path, leader, sizeof leader, NULL);
        }
    }
    Py_END_ALLOW_THREADS
    if (nl > 0) {
        PyObject *st = parse_stat_buf(leader, nl);
        if (st == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError))
                return NULL;
            PyErr_Clear();
        } else {
            PyObject *f = PyTuple_GET_ITEM(st, 1);
            if (PyTuple_GET_SIZE(f) > 3) {
                long state = PyLong_AsLong(PyTuple_GET_ITEM(f, 0));
                long long session = PyLong_AsLongLong(PyTuple_GET_ITEM(f, 3));
                alive = state != 'Z' && state != 'X' && session == sid;
            }
            Py_DECREF(st);
            if (PyErr_Occurred())
                return NULL;
        }
    }
    if (nw >= 0)
        return Py_BuildValue("(Ly#LO)", sched, wchan, (Py_ssize_t)nw, uts,
                             alive ? Py_True : Py_False);
    return Py_BuildValue("(LOLO)", sched, Py_None, uts, alive ? Py_True : Py_False);
}

/* ------------------------------------------------------------------- map */
/* Twin of _linuxparse.map_entries (rows) and of nodes/map.render over them
 * (bytes): one pass over smaps, no Python object per field on the bytes path. */

#define OBJ_ANON 0x10
#define OBJ_SWAP 0x200
enum { T_NONE, T_SWAP, T_PHYS, T_DEVICE, T_VNODE, T_COUNT };
static const char *type_keys[T_COUNT] = {"none", "swap", "phys", "device", "vnode"};
static const char *special_phys[] = {"[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]"};
enum { KIND_ANON = 1, KIND_FILE = 2, KIND_PHYS = 3 };

static unsigned long long
mix64(unsigned long long x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static unsigned long long
obj_id(unsigned long long kind, unsigned long long a, unsigned long long b,
       unsigned long long c)
{
    unsigned long long h = mix64(mix64(mix64(mix64(kind) ^ a) ^ b) ^ c);
    return 0xFFFFF80000000000ULL | (h & 0x7FFFFFFFF0ULL);
}

typedef struct {
    unsigned long long start, end, major, minor, inode;
    char perms[4];
    const char *name;
    Py_ssize_t name_len;
    long long rss, pss, shared_clean, shared_dirty, private_clean, private_dirty, swap;
    int charged;
} vma_t;

typedef struct {           /* one entry, as MapEntry's fields */
    unsigned long long start, end, obj;
    long long resident, private_resident, ref, uid;
    int flags, cow, needs_copy, type, charged;
    const char *prot;      /* 3 bytes */
    const char *path;      /* NULL: "-" */
    Py_ssize_t path_len;
} entry_t;

static int
has_prefix(const char *s, Py_ssize_t n, const char *p)
{
    size_t k = strlen(p);
    return (size_t)n >= k && memcmp(s, p, k) == 0;
}

static int
has_suffix(const char *s, Py_ssize_t n, const char *p)
{
    size_t k = strlen(p);
    return (size_t)n >= k && memcmp(s + n - k, p, k) == 0;
}

/* The per-VMA rules of _linuxparse._vm_entry, in the same order. */
static void
vm_entry(const vma_t *v, long long pid, unsigned long long start_ticks, long long ruid,
         long long page_size, int fast, entry_t *e)
{
    int private_map = v->perms[3] == 'p';
    int anon = v->inode == 0;
    int phys = -1, have_key = 1;
    unsigned long long dev = v->major << 20 | v->minor;
    unsigned long long k[4] = {KIND_FILE, dev, v->inode, 0};
    e->path = NULL;
    e->path_len = 0;
    if (anon) {
        for (int i = 0; i < 4; i++)
            if ((size_t)v->name_len == strlen(special_phys[i])
                    && memcmp(v->name, special_phys[i], (size_t)v->name_len) == 0)
                phys = i;
    }
    if (anon && phys < 0) {
        if (!fast && v->rss == 0 && v->swap == 0) {
            e->type = T_NONE;
            have_key = 0;
        } else {
            e->type = T_SWAP;
            k[0] = KIND_ANON;
            k[1] = (unsigned long long)pid;
            k[2] = start_ticks;
            k[3] = v->start;
        }
    } else if (anon) {
        e->type = T_PHYS;
        k[0] = KIND_PHYS;
        k[1] = (unsigned long long)phys;
        k[2] = 0;
    } else if (has_prefix(v->name, v->name_len, "/memfd:")
               || has_prefix(v->name, v->name_len, "/SYSV")
               || ((size_t)v->name_len == strlen("/dev/zero (deleted)")
                   && memcmp(v->name, "/dev/zero (deleted)", (size_t)v->name_len) == 0)) {
        e->type = T_SWAP;
    } else if (has_prefix(v->name, v->name_len, "/dev/")
               && !has_prefix(v->name, v->name_len, "/dev/shm/")) {
        e->type = T_DEVICE;
        if (!has_suffix(v->name, v->name_len, " (deleted)")) {
            e->path = v->name;
            e->path_len = v->name_len;
        }
    } else {
        e->type = T_VNODE;
        if (!has_suffix(v->name, v->name_len, " (deleted)")
                && has_prefix(v->name, v->name_len, "/")) {
            e->path = v->name;
            e->path_len = v->name_len;
        }
    }
    if (!have_key) {
        e->obj = 0;
        e->ref = 0;
    } else {
        e->obj = obj_id(k[0], k[1], k[2], k[3]);
        if (fast || v->pss == 0) {
            e->ref = 1;
        } else {
            /* Python's round(): the nearest integer, ties to even */
            double r = nearbyint((double)v->rss / (double)v->pss);
            e->ref = r < 1.0 ? 1 : (long long)r;
        }
    }
    long long private_kb = v->private_clean + v->private_dirty;
    long long shared_kb = v->shared_clean + v->shared_dirty;
    e->start = v->start;
    e->end = v->end;
    e->resident = v->rss * 1024 / page_size;
    e->private_resident = private_kb * 1024 / page_size;
    e->prot = v->perms;
    e->flags = (anon && e->type == T_SWAP) ? (OBJ_ANON | OBJ_SWAP) : 0;
    e->cow = private_map;
    e->needs_copy = private_map && anon && shared_kb > 0;
    e->charged = v->charged;
    e->uid = v->charged ? ruid : -1;
}

/* A header line, exactly what _linuxparse._HEADER matches:
 * start-end perms offset major:minor inode *name.  0 when it does not match. */
static int
hexnum(const char **p, const char *end, unsigned long long *out)
{
    const char *q = *p;
    unsigned long long v = 0;
    while (q < end && ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))) {
        if (v >> 60)
            return 0;
        v = v * 16 + (unsigned)(*q <= '9' ? *q - '0' : *q - 'a' + 10);
        q++;
    }
    if (q == *p)
        return 0;
    *p = q;
    *out = v;
    return 1;
}

static int
decnum(const char **p, const char *end, unsigned long long *out)
{
    const char *q = *p;
    unsigned long long v = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        unsigned d = (unsigned)(*q - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
        q++;
    }
    if (q == *p)
        return 0;
    *p = q;
    *out = v;
    return 1;
}

static int
parse_header(const char *s, const char *end, vma_t *v)
{
    const char *p = s;
    unsigned long long off;
    if (!hexnum(&p, end, &v->start) || p >= end || *p++ != '-')
        return 0;
    if (!hexnum(&p, end, &v->end) || p >= end || *p++ != ' ')
        return 0;
    if (end - p < 5 || (p[0] != 'r' && p[0] != '-') || (p[1] != 'w' && p[1] != '-')
            || (p[2] != 'x' && p[2] != '-') || (p[3] != 'p' && p[3] != 's') || p[4] != ' ')
        return 0;
    memcpy(v->perms, p, 4);
    p += 5;
    if (!hexnum(&p, end, &off) || p >= end || *p++ != ' ')
        return 0;
    if (!hexnum(&p, end, &v->major) || p >= end || *p++ != ':')
        return 0;
    if (!hexnum(&p, end, &v->minor) || p >= end || *p++ != ' ')
        return 0;
    if (!decnum(&p, end, &v->inode))
        return 0;
    if (p < end && *p != ' ')
        return 0;
    while (p < end && *p == ' ')
        p++;
    v->name = p;
    v->name_len = end - p;
    return 1;
}

/* "Key: <n> kB" value lines of smaps; the first word of the value, as Python's
 * int(v.split()[0]).  -1 and ValueError when it is not a number. */
static int
kb_value(const char *p, const char *end, long long *out)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end) {
        *out = 0;          /* an empty value counts 0, as in Python */
        return 0;
    }
    const char *q = p;
    unsigned long long v;
    if (*q == '+')
        q++;
    if (!decnum(&q, end, &v) || (q < end && *q != ' ' && *q != '\t') || v > LLONG_MAX) {
        PyErr_SetString(PyExc_ValueError, "smaps: a value is not a number");
        return -1;
    }
    *out = (long long)v;
    return 0;
}

static int
smaps_line(vma_t *v, const char *s, const char *end)
{
    static const struct { const char *key; size_t off; } keys[] = {
        {"Rss:", offsetof(vma_t, rss)}, {"Pss:", offsetof(vma_t, pss)},
        {"Shared_Clean:", offsetof(vma_t, shared_clean)},
        {"Shared_Dirty:", offsetof(vma_t, shared_dirty)},
        {"Private_Clean:", offsetof(vma_t, private_clean)},
        {"Private_Dirty:", offsetof(vma_t, private_dirty)},
        {"Swap:", offsetof(vma_t, swap)},
    };
    Py_ssize_t n = end - s;
    if (n == 0 || (*s != 'R' && *s != 'P' && *s != 'S' && *s != 'V'))
        return 0;                /* Size, KernelPageSize, Anonymous...: not needed */
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (has_prefix(s, n, keys[i].key)) {
            return kb_value(s + strlen(keys[i].key), end,
                            (long long *)((char *)v + keys[i].off));
        }
    }
    if (has_prefix(s, n, "VmFlags:")) {
        /* " ac" in b" " + value: the token ac (VM_ACCOUNT) */
        const char *p = s + 8;
        v->charged = (end - p >= 2 && p[0] == 'a' && p[1] == 'c')
                     || memmem(p, (size_t)(end - p), " ac", 3) != NULL;
    }
    return 0;
}

typedef int (*entry_sink)(void *ctx, const entry_t *e);

/* Walk maps/smaps, calling sink for every entry in order. */
static int
walk_map(const char *buf, Py_ssize_t n, long long pid, unsigned long long start_ticks,
         long long ruid, long long page_size, int fast, entry_sink sink, void *ctx)
{
    const char *p = buf, *end = buf + n;
    vma_t v;
    int pending = 0;
    entry_t e;
    if (page_size <= 0) {
        PyErr_SetString(PyExc_ValueError, "page_size must be positive");
        return -1;
    }
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        char c = *p;
        if (eol > p && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            if (pending) {
                vm_entry(&v, pid, start_ticks, ruid, page_size, fast, &e);
                if (sink(ctx, &e) != 0)
                    return -1;
            }
            memset(&v, 0, sizeof v);
            pending = parse_header(p, eol, &v);
        } else if (pending && !fast && smaps_line(&v, p, eol) != 0) {
            return -1;
        }
        p = eol + 1;
    }
    if (pending) {
        vm_entry(&v, pid, start_ticks, ruid, page_size, fast, &e);
        if (sink(ctx, &e) != 0)
            return -1;
    }
    return 0;
}

/* rows: list of MapEntry-ordered tuples */
typedef struct {
    PyObject *list;
    PyObject *types[T_COUNT];
    PyObject *prots[8];
} rows_ctx;

static int
prot_index(const char *prot)
{
    return (prot[0] == 'r') << 2 | (prot[1] == 'w') << 1 | (prot[2] == 'x');
}

static int
row_sink(void *vctx, const entry_t *e)
{
    rows_ctx *ctx = vctx;
    PyObject *path;
    if (e->path == NULL) {
        path = Py_None;
        Py_INCREF(path);
    } else {
        path = PyBytes_FromStringAndSize(e->path, e->path_len);
        if (path == NULL)
            return -1;
    }
    PyObject *row = Py_BuildValue(
        "(KKLLKOLiiOOONOL)", e->start, e->end, e->resident, e->private_resident, e->obj,
        ctx->prots[prot_index(e->prot)], e->ref, 0, e->flags,
        e->cow ? Py_True : Py_False, e->needs_copy ? Py_True : Py_False,
        ctx->types[e->type], path, e->charged ? Py_True : Py_False, e->uid);
    if (row == NULL)
        return -1;
    int r = PyList_Append(ctx->list, row);
    Py_DECREF(row);
    return r;
}

/* map_entries(data, pid, start_ticks, ruid, page_size, fast) -> list of rows */
static PyObject *
lf_map_entries(PyObject *self, PyObject *args)
{
    Py_buffer data;
    long long pid, ruid, page_size;
    unsigned long long start_ticks;
    int fast;
    if (!PyArg_ParseTuple(args, "y*LKLLp", &data, &pid, &start_ticks, &ruid, &page_size,
                          &fast))
        return NULL;
    rows_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    int ok = (ctx.list = PyList_New(0)) != NULL;
    for (int i = 0; ok && i < T_COUNT; i++)
        ok = (ctx.types[i] = PyUnicode_InternFromString(type_keys[i])) != NULL;
    for (int i = 0; ok && i < 8; i++) {
        char prot[4] = {i & 4 ? 'r' : '-', i & 2 ? 'w' : '-', i & 1 ? 'x' : '-', 0};
        ok = (ctx.prots[i] = PyUnicode_FromString(prot)) != NULL;
    }
    if (ok && walk_map(data.buf, data.len, pid, start_ticks, ruid, page_size, fast,
                       row_sink, &ctx) != 0)
        ok = 0;
    PyBuffer_Release(&data);
    for (int i = 0; i < T_COUNT; i++)
        Py_XDECREF(ctx.types[i]);
    for (int i = 0; i < 8; i++)
        Py_XDECREF(ctx.prots[i]);
    if (!ok) {
        Py_XDECREF(ctx.list);
        return NULL;
    }
    return ctx.list;
}

/* bytes: nodes/map.render's line for every entry */
typedef struct {
    char *buf;
    size_t len, cap;
    const char *names[T_COUNT];
    Py_ssize_t name_lens[T_COUNT];
    unsigned long long anon_flags;  /* printed for an anonymous swap object */
} text_ctx;

static char *
put_str(char *out, const char *s)
{
    size_t n = strlen(s);
    memcpy(out, s, n);
    return out + n;
}

/* "0x" and lowercase hex digits, as Python's b"0x%x" */
static char *
put_hex(char *out, unsigned long long v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    *out++ = '0';
    *out++ = 'x';
    while (n)
        *out++ = tmp[--n];
    return out;
}

static char *
put_dec(char *out, long long sv)
{
    char tmp[20];
    int n = 0;
    unsigned long long v = sv < 0 ? 0ULL - (unsigned long long)sv : (unsigned long long)sv;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (sv < 0)
        *out++ = '-';
    while (n)
        *out++ = tmp[--n];
    return out;
}

static int
text_sink(void *vctx, const entry_t *e)
{
    text_ctx *ctx = vctx;
    size_t need = ctx->len + 256 + (size_t)e->path_len + (size_t)ctx->name_lens[e->type];
    if (need > ctx->cap) {
        size_t cap = ctx->cap * 2 > need ? ctx->cap * 2 : need;
        char *nb = PyMem_Realloc(ctx->buf, cap);
        if (nb == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        ctx->buf = nb;
        ctx->cap = cap;
    }
    /* the line of nodes/map.py _LINE, written digit by digit: snprintf's format
     * parsing cost more than the whole smaps walk */
    char *out = ctx->buf + ctx->len;
    out = put_str(put_hex(put_str(put_hex(out, e->start), " "), e->end), " ");
    out = put_str(put_dec(put_str(put_dec(out, e->resident), " "), e->private_resident), " ");
    out = e->obj ? put_hex(out, e->obj) : put_str(out, "0");
    *out++ = ' ';
    memcpy(out, e->prot, 3);
    out += 3;
    out = put_str(put_dec(put_str(out, " "), e->ref), " 0 ");
    out = put_hex(out, e->flags == (OBJ_ANON | OBJ_SWAP) ? ctx->anon_flags
                                                         : (unsigned long long)e->flags);
    out = put_str(out, e->cow ? " COW" : " NCOW");
    out = put_str(out, e->needs_copy ? " NC " : " NNC ");
    memcpy(out, ctx->names[e->type], (size_t)ctx->name_lens[e->type]);
    out += ctx->name_lens[e->type];
    *out++ = ' ';
    if (e->path) {
        memcpy(out, e->path, (size_t)e->path_len);
        out += e->path_len;
    } else {
        *out++ = '-';
    }
    out = put_str(out, e->charged ? " CH " : " NCH ");
    out = put_dec(out, e->uid);
    *out++ = '\n';
    ctx->len = (size_t)(out - ctx->buf);
    return 0;
}

/* map_render(data, pid, start_ticks, ruid, page_size, fast, type_names[, anon_flags])
 * -> bytes; type_names: the profile's name (bytes) of each of MAP_TYPES, in that order;
 * anon_flags: the profile's OBJ_* flags of an anonymous object (Profile.map_flags:
 * OBJ_ANON|OBJ_SWAP from 14, OBJ_ONEMAPPING in the OBJT era). */
static PyObject *
lf_map_render(PyObject *self, PyObject *args)
{
    Py_buffer data;
    long long pid, ruid, page_size;
    unsigned long long start_ticks;
    int fast;
    PyObject *names;
    unsigned long long anon_flags = OBJ_ANON | OBJ_SWAP;
    if (!PyArg_ParseTuple(args, "y*LKLLpO!|K", &data, &pid, &start_ticks, &ruid, &page_size,
                          &fast, &PyTuple_Type, &names, &anon_flags))
        return NULL;
    text_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.anon_flags = anon_flags;
    if (PyTuple_GET_SIZE(names) != T_COUNT) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "type_names: one name per MAP_TYPES entry");
        return NULL;
    }
    for (int i = 0; i < T_COUNT; i++) {
        char *s;
        if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(names, i), &s, &ctx.name_lens[i]) != 0) {
            PyBuffer_Release(&data);
            return NULL;
        }
        ctx.names[i] = s;
    }
    ctx.cap = (size_t)data.len / 2 + 4096;
    ctx.buf = PyMem_Malloc(ctx.cap);
    PyObject *out = NULL;
    if (ctx.buf == NULL) {
        PyErr_NoMemory();
    } else if (walk_map(data.buf, data.len, pid, start_ticks, ruid, page_size, fast,
                        text_sink, &ctx) == 0) {
        out = PyBytes_FromStringAndSize(ctx.buf, (Py_ssize_t)ctx.len);
    }
    PyMem_Free(ctx.buf);
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef methods[] = {
    {"parse_stat", lf_parse_stat, METH_O, "stat bytes -> (comm, fields)"},
    {"parse_status_ids", lf_parse_status_ids, METH_O,
     "status bytes -> (tgid, tracer, ruid, euid, suid, rgid, egid, sgid, groups) or None"},
    {"snapshot", lf_snapshot, METH_O,
     "base -> (comm, fields, owner_uid, owner_gid, status, ids or None)"},
    {"uts_ino", lf_uts_ino, METH_O, "path of ns/uts -> its namespace inode, or -1"},
    {"status_io", lf_status_io, METH_VARARGS,
     "(root, pid, nthreads, want_wchan, want_uts, sid, by_pid) -> (run ns, wchan, uts, leader)"},
    {"map_entries", lf_map_entries, METH_VARARGS,
     "(data, pid, start_ticks, ruid, page_size, fast) -> MapEntry rows"},
    {"map_render", lf_map_render, METH_VARARGS,
     "(data, pid, start_ticks, ruid, page_size, fast, type_names[, anon_flags]) -> map bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_linuxfacts",
    "Compiled twin of bsdprocfs.backends._linuxparse (Linux /proc hot paths).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__linuxfacts(void)
{
    return PyModule_Create(&module);
}
