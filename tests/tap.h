/* tap.h - a minimal TAP producer for C unit tests run by prove(1). */
#ifndef BP_TAP_H
#define BP_TAP_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

/* A new directory under $TMPDIR (else /tmp) for the test's files, named
 * bp-NAME-XXXXXX: its path (malloc'd).  Ends the test on failure. */
__attribute__((unused)) static char *tap_temp_dir(const char *name)
{
    const char *base = getenv("TMPDIR");
    base = base && *base ? base : "/tmp";
    size_t n = strlen(base) + strlen(name) + sizeof "/bp--XXXXXX";
    char *dir = malloc(n);
    if (!dir)
        abort();
    snprintf(dir, n, "%s/bp-%s-XXXXXX", base, name);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        exit(1);
    }
    return dir;
}

__attribute__((format(printf, 2, 3), unused)) static int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (!cond)
        tap_failed++;
    fflush(stdout);
    return cond;
}

/* Diagnostic line, shown by prove. */
__attribute__((format(printf, 1, 2), unused)) static void diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

__attribute__((unused)) static void skip_all(const char *why)
{
    printf("1..0 # SKIP %s\n", why);
    exit(0);
}

__attribute__((unused)) static int done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

/* Run a Python reference computation (cmd, stderr merged) that prints a
 * line "OK", or "SKIP reason" when a package it needs is missing (other
 * lines, e.g. library warnings, are ignored).  Returns 1 on OK; otherwise
 * records the skip, or a failure when the script failed (a reference that
 * cannot run is not a pass), and returns 0. */
__attribute__((unused)) static int python_reference(const char *cmd)
{
    char line[512], last[512] = "python3 did not run", skip[512] = "";
    int passed = 0;
    FILE *py = popen(cmd, "r");
    while (py && fgets(line, sizeof line, py)) {
        line[strcspn(line, "\n")] = 0;
        if (!strcmp(line, "OK"))
            passed = 1;
        else if (!strncmp(line, "SKIP ", 5))
            snprintf(skip, sizeof skip, "%s", line + 5);
        snprintf(last, sizeof last, "%s", line);
    }
    if (py && pclose(py) != 0 && !*skip)
        passed = 0;
    if (passed)
        return 1;
    if (*skip)
        ok(1, "# SKIP %s", skip);
    else
        ok(0, "python reference: %s", last);
    return 0;
}

/* Directory of ../shared (overridable by $SHARED). */
__attribute__((unused)) static const char *shared_dir(void)
{
    const char *s = getenv("SHARED");
    return s && *s ? s : "../shared";
}

#endif
