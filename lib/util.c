#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *progname = "bertpipe";

/* Temporary files and directories not yet renamed into place: die() removes
 * them, so that a failed run leaves nothing behind that looks like output. */
#define MAX_PENDING 16
static char *pending[MAX_PENDING];

static void pending_add(const char *path)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (!pending[i]) {
            pending[i] = strdup(path);
            return;
        }
}

static void pending_remove(const char *path)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending[i] && !strcmp(pending[i], path)) {
            free(pending[i]);
            pending[i] = NULL;
        }
}

void remove_pending_outputs(void)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending[i]) {
            remove_tree(pending[i]);
            free(pending[i]);
            pending[i] = NULL;
        }
}

void util_init(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    progname = slash ? slash + 1 : argv0;
    signal(SIGPIPE, SIG_IGN);
}

/* "progname: message" with every control character (a newline in a file
 * name or in a string read from a file) shown as '?', so that a diagnostic
 * is always one line; NULL when out of memory. */
static char *format_line(const char *fmt, va_list ap)
{
    char *msg, *line;
    if (vasprintf(&msg, fmt, ap) < 0)
        return NULL;
    if (asprintf(&line, "%s: %s", progname, msg) < 0)
        line = NULL;
    free(msg);
    for (unsigned char *p = (unsigned char *)line; p && *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    return line;
}

static void vmessage(const char *fmt, va_list ap)
{
    fflush(stdout);
    char *line = format_line(fmt, ap);
    fprintf(stderr, "%s\n", line ? line : "out of memory");
    free(line);
}

static die_handler_fn die_handler;

void set_die_handler(die_handler_fn handler)
{
    die_handler = handler;
}

#define MAX_CLEANUPS 16
static struct {
    void (*fn)(void *);
    void *arg;
} cleanups[MAX_CLEANUPS];
static int ncleanups;

void die_cleanup_push(void (*fn)(void *), void *arg)
{
    if (ncleanups == MAX_CLEANUPS)
        abort(); /* a programming error: pushes without pops */
    cleanups[ncleanups].fn = fn;
    cleanups[ncleanups++].arg = arg;
}

void die_cleanup_pop(void)
{
    if (ncleanups > 0)
        ncleanups--;
}

/* The end of die() and die_usage(): the handler's when one is set. */
__attribute__((noreturn)) static void vdie(int status, const char *fmt, va_list ap)
{
    if (die_handler) {
        static char line[1024];
        char *s = format_line(fmt, ap);
        snprintf(line, sizeof line, "%s", s ? s : "out of memory");
        free(s);
        while (ncleanups > 0) {
            ncleanups--;
            cleanups[ncleanups].fn(cleanups[ncleanups].arg);
        }
        die_handler(status, line);
        abort(); /* a handler must not return */
    }
    vmessage(fmt, ap);
    if (status == EXIT_BAD_INPUT)
        remove_pending_outputs();
    exit(status);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdie(EXIT_BAD_INPUT, fmt, ap);
}

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdie(EXIT_USAGE, fmt, ap);
}

void die_bad_option(int c, char **argv)
{
    if (c == ':')
        die_usage("option '%s' requires an argument", argv[optind - 1]);
    if (optopt)
        die_usage("invalid option -- '%c'", optopt);
    die_usage("unrecognized option '%s'", argv[optind - 1]);
}

static int quiet_warnings;

void warnx_quiet(int quiet)
{
    quiet_warnings = quiet;
}

void warnx(const char *fmt, ...)
{
    if (quiet_warnings)
        return;
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
}

void print_version(void)
{
    out_printf(stdout, "stdout", "%s (bertpipe) %s\n", progname, BP_VERSION);
    out_close(stdout, "stdout");
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void prefault(void *p, size_t bytes)
{
#ifdef MADV_POPULATE_WRITE
    /* The whole pages inside (advice: a kernel without it, or memory not
     * from mmap, keeps the faults). */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = ((uintptr_t)p + page - 1) / page * page, end = ((uintptr_t)p + bytes) / page * page;
    if (bytes >= 64 * page && end > first)
        madvise((void *)first, end - first, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)bytes;
#endif
}

void *xcalloc_prefaulted(size_t n, size_t size)
{
    char *p = xcalloc(n, size);
    prefault(p, n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

void *xmallocarray(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        die("out of memory (%zu x %zu bytes)", n, size);
    return xmalloc(n * size);
}

int checked_size(const int64_t *dims, int ndim, uint64_t elem, uint64_t limit, uint64_t *numel,
                 uint64_t *bytes)
{
    uint64_t n = 1, b;
    for (int i = 0; i < ndim; i++)
        if (dims[i] < 0 || __builtin_mul_overflow(n, (uint64_t)dims[i], &n))
            return -1;
    if (__builtin_mul_overflow(n, elem, &b) || b > limit)
        return -1;
    if (numel)
        *numel = n;
    if (bytes)
        *bytes = b;
    return 0;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        die("out of memory");
    return p;
}

void out_write(FILE *f, const char *name, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, f) != n)
        die("%s: write error: %s", name, strerror(errno));
}

void out_printf(FILE *f, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(f, fmt, ap);
    va_end(ap);
    if (r < 0)
        die("%s: write error: %s", name, strerror(errno));
}

void out_flush(FILE *f, const char *name)
{
    if (fflush(f) != 0)
        die("%s: write error: %s", name, strerror(errno));
}

void out_close(FILE *f, const char *name)
{
    if (fflush(f) != 0 || ferror(f))
        die("%s: write error: %s", name, strerror(errno));
    if (fclose(f) != 0)
        die("%s: write error: %s", name, strerror(errno));
}

int parse_choice(const char *s, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static char *tmp_name(const char *path)
{
    char *tmp;
    if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
        die("out of memory");
    return tmp;
}

void atomic_open(atomic_file *a, const char *path)
{
    a->path = xstrdup(path);
    a->tmp = tmp_name(path);
    a->f = fopen(a->tmp, "wb");
    if (!a->f)
        die("%s: %s", a->tmp, strerror(errno));
    pending_add(a->tmp);
}

void atomic_commit(atomic_file *a)
{
    if (fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0) {
        int e = errno;
        fclose(a->f);
        unlink(a->tmp);
        die("%s: write error: %s", a->path, strerror(e));
    }
    if (fclose(a->f) != 0) {
        int e = errno;
        unlink(a->tmp);
        die("%s: write error: %s", a->path, strerror(e));
    }
    if (rename(a->tmp, a->path) != 0) {
        int e = errno;
        unlink(a->tmp);
        die("%s: %s", a->path, strerror(e));
    }
    pending_remove(a->tmp);
    free(a->tmp);
    free(a->path);
    a->f = NULL;
}

void atomic_abort(atomic_file *a)
{
    if (a->f)
        fclose(a->f);
    unlink(a->tmp);
    pending_remove(a->tmp);
    free(a->tmp);
    free(a->path);
    a->f = NULL;
}

char *atomic_dir_begin(const char *path)
{
    char *tmp = tmp_name(path);
    remove_tree(tmp);
    if (mkdir(tmp, 0777) != 0)
        die("%s: %s", tmp, strerror(errno));
    pending_add(tmp);
    return tmp;
}

void atomic_dir_commit(const char *tmp, const char *path)
{
    struct stat st;
    pending_remove(tmp);
    if (stat(path, &st) == 0) {
        /* rename(2) cannot replace a non-empty directory: exchange the two
         * atomically, so that path always names a complete directory, and
         * remove the old one, now at tmp. */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0) {
            remove_tree(tmp);
            return;
        }
        if (errno != EINVAL && errno != ENOSYS)
            die("%s: %s", path, strerror(errno));
        /* A file system without the exchange: move the old one aside first. */
        char *old;
        if (asprintf(&old, "%s.old.%ld", path, (long)getpid()) < 0)
            die("out of memory");
        if (rename(path, old) != 0)
            die("%s: %s", path, strerror(errno));
        if (rename(tmp, path) != 0)
            die("%s: %s", path, strerror(errno));
        remove_tree(old);
        free(old);
        return;
    }
    if (rename(tmp, path) != 0)
        die("%s: %s", path, strerror(errno));
}

void atomic_remove_stale(const char *path)
{
    char *copy = xstrdup(path), *slash = strrchr(copy, '/');
    const char *dir = slash ? (slash == copy ? "/" : (*slash = 0, copy)) : ".";
    const char *base = slash ? slash + 1 : path;
    size_t n = strlen(base);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *rest = e->d_name + n;
        if (strncmp(e->d_name, base, n) || (strncmp(rest, ".tmp.", 5) && strncmp(rest, ".old.", 5)))
            continue;
        char *end;
        long pid = strtol(rest + 5, &end, 10);
        /* Only our own names of processes that are gone. */
        if (end == rest + 5 || *end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *stale = path_join(dir, e->d_name);
        remove_tree(stale);
        free(stale);
    }
    if (d)
        closedir(d);
    free(copy);
}

void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                char *sub = path_join(path, e->d_name);
                remove_tree(sub);
                free(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

void *map_file(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        die("%s: %s", path, strerror(e));
    }
    *size = sb.st_size;
    void *map = *size ? mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (map == MAP_FAILED)
        die("%s: %s", path, strerror(errno));
    return map;
}

void file_map_release(void *fm)
{
    file_map *f = fm;
    if (f->map)
        munmap(f->map, f->size);
}

char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

char *path_join(const char *dir, const char *name)
{
    char *p;
    size_t n = strlen(dir);
    if (asprintf(&p, "%s%s%s", dir, (n && dir[n - 1] == '/') ? "" : "/", name) < 0)
        die("out of memory");
    return p;
}

int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
