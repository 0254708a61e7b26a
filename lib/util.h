/* util.h - diagnostics, checked allocation and output, atomic outputs.
 *
 * Every tool follows ../shared/CONVENTIONS.md: one-line diagnostics on stderr
 * prefixed by the tool name, exit 1 for bad input or run-time failure, exit 2
 * for usage errors.  Output is never left half-written under its final name. */
#ifndef BP_UTIL_H
#define BP_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BP_VERSION "0.1.0"

enum { EXIT_BAD_INPUT = 1, EXIT_USAGE = 2 };

extern const char *progname;

/* Set progname from argv[0] and ignore SIGPIPE, so that a closed pipe turns
 * into an EPIPE write error we report, not a silent death. */
void util_init(const char *argv0);

/* "progname: message" on stderr, then exit 1. */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);
/* Usage error: "progname: message" on stderr (one line, as every
 * diagnostic), then exit 2. */
__attribute__((noreturn, format(printf, 1, 2))) void die_usage(const char *fmt, ...);
/* Usage error for what getopt_long returned as ':' (missing argument) or
 * '?' (unknown option); tools set opterr = 0 so that this is the only line. */
__attribute__((noreturn)) void die_bad_option(int c, char **argv);
/* Where die(), die_usage() and the readers' errors end.  By default the line
 * ("progname: message", no newline) goes to stderr and the process exits
 * with status (EXIT_BAD_INPUT or EXIT_USAGE).  A handler set here receives
 * the line and the status instead and must not return: the fuzz harnesses
 * (tests/fuzz/) longjmp out of the parser, so that the parsers keep one
 * error path and the harnesses see exactly the line a tool would print.
 * NULL restores the default. */
typedef void (*die_handler_fn)(int status, const char *line);
void set_die_handler(die_handler_fn handler);
/* What a parser must release when it dies under a handler (a tool exits
 * instead, and the system frees everything): the parser pushes fn(arg) on
 * entry and pops it before returning; die() runs those pushed, newest
 * first, before the handler. */
void die_cleanup_push(void (*fn)(void *), void *arg);
void die_cleanup_pop(void);

/* "progname: message" on stderr, no exit. */
__attribute__((format(printf, 1, 2))) void warnx(const char *fmt, ...);
/* Nonzero: warnx() says nothing (ranks other than 0 of a job of several
 * processes, for whom rank 0 speaks); die() still does. */
void warnx_quiet(int quiet);

/* --version output, identical for every tool. */
void print_version(void);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
/* xcalloc for a large buffer about to be written in full (a model's
 * parameters): its pages mapped in one system call, where a page fault per
 * 4 KB cost 0.2 s of loading a 400 MB model. */
void *xcalloc_prefaulted(size_t n, size_t size);
/* The whole pages inside [p, p + bytes) of mapped memory made present and
 * writable in one system call, before they are written (as
 * xcalloc_prefaulted does). */
void prefault(void *p, size_t bytes);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Allocation of n * size bytes that dies on overflow. */
void *xmallocarray(size_t n, size_t size);

/* The one checked size computation of every reader (NPY frames, safetensors,
 * torch .bin): the product of ndim dimensions, each at least 0, times elem
 * bytes.  Sets *numel and *bytes (either may be NULL) and returns 0; returns
 * -1 when a dimension is negative, the product overflows 64 bits or the
 * bytes exceed limit. */
int checked_size(const int64_t *dims, int ndim, uint64_t elem, uint64_t limit, uint64_t *numel,
                 uint64_t *bytes);

/* Checked output: die with "NAME: write error: REASON" on failure. */
void out_write(FILE *f, const char *name, const void *p, size_t n);
void out_printf(FILE *f, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Flush and close; any pending error (ENOSPC, EPIPE) is fatal. */
void out_close(FILE *f, const char *name);
/* fflush, dying with the write's own error on failure (a log line written
 * now is on disk now, not at the end of a run). */
void out_flush(FILE *f, const char *name);

/* Strict number parsing: the whole string must be a number in range.
 * Return 0 on success, -1 otherwise. */
int parse_long(const char *s, long min, long max, long *out);
int parse_double(const char *s, double *out);
/* The index of s in names (NULL-terminated), or -1: option values that are
 * one of a few words. */
int parse_choice(const char *s, const char *const *names);

/* A file written under a temporary name in the same directory and renamed
 * into place by atomic_commit(); atomic_abort() removes it. */
typedef struct {
    char *path, *tmp;
    FILE *f;
} atomic_file;
void atomic_open(atomic_file *a, const char *path);
void atomic_commit(atomic_file *a);
void atomic_abort(atomic_file *a);

/* A directory built under a temporary name and renamed into place: an
 * existing directory at path is replaced only once the new one is complete. */
char *atomic_dir_begin(const char *path);          /* returns the tmp path */
/* Remove every temporary of atomic_open/atomic_dir_begin not yet committed
 * (die() does it; a signal handler's exit path may call it too). */
void remove_pending_outputs(void);
void atomic_dir_commit(const char *tmp, const char *path);
/* Remove what interrupted writes of path left (path.tmp.PID, path.old.PID
 * of processes that no longer run). */
void atomic_remove_stale(const char *path);
void remove_tree(const char *path);

/* The file mapped read-only (dies naming it on failure); NULL for an empty
 * file.  munmap(map, *size) releases it. */
void *map_file(const char *path, size_t *size);
/* A mapping of map_file's, and a die_cleanup_push function that unmaps it
 * (for parsers that map a file and may die reading it). */
typedef struct {
    void *map;
    size_t size;
} file_map;
void file_map_release(void *fm);

/* Whole file into memory (NUL-terminated); NULL with errno set on failure. */
char *read_file(const char *path, size_t *len);

/* Path join into a new string. */
char *path_join(const char *dir, const char *name);
int file_exists(const char *path);

/* Seconds from a monotonic clock. */
double now_seconds(void);

#endif
