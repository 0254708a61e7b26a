/* tap.h - a minimal TAP producer for C unit tests run by prove(1). */
#ifndef BP_TAP_H
#define BP_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

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

/* Run a Python reference computation (cmd, stderr merged) whose first line
 * of output is "OK", or "SKIP reason" when a package it needs is missing.
 * Returns 1 on OK; otherwise records the skip (missing package) or a
 * failure (the script failed: a reference that cannot run is not a pass)
 * and returns 0. */
__attribute__((unused)) static int python_reference(const char *cmd)
{
    char line[256] = "";
    FILE *py = popen(cmd, "r");
    if (!py || !fgets(line, sizeof line, py))
        snprintf(line, sizeof line, "python3 did not run");
    if (py)
        pclose(py);
    line[strcspn(line, "\n")] = 0;
    if (!strcmp(line, "OK"))
        return 1;
    if (!strncmp(line, "SKIP ", 5))
        ok(1, "# SKIP %s", line + 5);
    else
        ok(0, "python reference: %s", line);
    return 0;
}

/* Directory of ../shared (overridable by $SHARED). */
__attribute__((unused)) static const char *shared_dir(void)
{
    const char *s = getenv("SHARED");
    return s && *s ? s : "../shared";
}

#endif
