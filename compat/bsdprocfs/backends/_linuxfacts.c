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
#define MAX_STAT_FIELDS 64

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

/* A digit string (with an optional '-') as a Python int; *pos moves past it.
 * NULL with no exception set when there is no number at *pos. */
static PyObject *
take_int(const char **pos, const char *end)
{
    const char *p = *pos;
    int neg = 0;
    unsigned long long v = 0;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return NULL;                    /* wider than the kernel prints */
        v = v * 10 + d;
        p++;
    }
    if (p == digits)
        return NULL;
    *pos = p;
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1ULL)
            return NULL;
        return PyLong_FromLongLong(v == (unsigned long long)LLONG_MAX + 1ULL
                                   ? LLONG_MIN : -(long long)v);
    }
    return PyLong_FromUnsignedLongLong(v);
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
    items[count] = PyLong_FromLong((unsigned char)*p);
    if (items[count] == NULL)
        return NULL;
    count++;
    p++;
    while (count < MAX_STAT_FIELDS) {
        while (p < end && (*p == ' ' || *p == '\n'))
            p++;
        if (p >= end)
            break;
        PyObject *v = take_int(&p, end);
        if (v == NULL || (p < end && *p != ' ' && *p != '\n')) {
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

/* status -> (tgid, tracer, ruid, euid, suid, rgid, egid, sgid, groups), or None
 * when a line is missing (the caller then reports the layout, as Python does). */
static PyObject *
parse_status_buf(const char *buf, Py_ssize_t n)
{
    /* keys are searched with their leading newline; status starts with "Name:",
     * so no key is ever on the first line */
    const char *end = buf + n;
    static const char *keys[] = {"\nTgid:", "\nTracerPid:", "\nUid:", "\nGid:"};
    static const int counts[] = {1, 1, 3, 3};
    PyObject *vals[8] = {NULL};
    int nv = 0;
    const char *p = buf;
    for (int k = 0; k < 4; k++) {
        p = find_key(p, end, keys[k]);
        if (p == NULL)
            goto layout;
        for (int c = 0; c < counts[k]; c++) {
            PyObject *v = take_int(&p, end);
            if (v == NULL)
                goto layout;
            vals[nv++] = v;
        }
    }
    p = find_key(p, end, "\nGroups:");
    if (p == NULL)
        goto layout;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
        eol = end;
    PyObject *groups = PyList_New(0);
    if (groups == NULL)
        goto fail;
    for (;;) {
        while (p < eol && (*p == ' ' || *p == '\t'))
            p++;
        if (p >= eol)
            break;
        PyObject *g = take_int(&p, eol);
        if (g == NULL || PyList_Append(groups, g) != 0) {
            Py_XDECREF(g);
            Py_DECREF(groups);
            if (PyErr_Occurred())
                goto fail;
            goto layout;
        }
        Py_DECREF(g);
    }
    PyObject *gt = PyList_AsTuple(groups);
    Py_DECREF(groups);
    if (gt == NULL)
        goto fail;
    PyObject *out = PyTuple_New(9);
    if (out == NULL) {
        Py_DECREF(gt);
        goto fail;
    }
    for (int i = 0; i < 8; i++)
        PyTuple_SET_ITEM(out, i, vals[i]);
    PyTuple_SET_ITEM(out, 8, gt);
    return out;
layout:
    for (int i = 0; i < nv; i++)
        Py_DECREF(vals[i]);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
fail:
    for (int i = 0; i < nv; i++)
        Py_DECREF(vals[i]);
    return NULL;
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
    if (getsid((pid_t)sid) != (pid_t)sid)
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

static PyMethodDef methods[] = {
    {"parse_stat", lf_parse_stat, METH_O, "stat bytes -> (comm, fields)"},
    {"parse_status_ids", lf_parse_status_ids, METH_O,
     "status bytes -> (tgid, tracer, ruid, euid, suid, rgid, egid, sgid, groups) or None"},
    {"snapshot", lf_snapshot, METH_O,
     "base -> (comm, fields, owner_uid, owner_gid, status, ids or None)"},
    {"uts_ino", lf_uts_ino, METH_O, "path of ns/uts -> its namespace inode, or -1"},
    {"status_io", lf_status_io, METH_VARARGS,
     "(root, pid, nthreads, want_wchan, want_uts, sid, by_pid) -> (run ns, wchan, uts, leader)"},
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
