/* fuzz.h - what every libFuzzer harness shares (see docs/fuzzing.md).
 *
 * The parsers report errors through die() (lib/util.c), as the tools do.  A
 * harness installs a die handler that checks the diagnostic a tool would
 * print (one line, "fuzz: ...", exit status 1) and longjmps back out of the
 * parser, so the parsers keep a single error path and the harness checks
 * exactly the line users would see.  What the parser allocated before the
 * error is abandoned, as it is when a tool exits: the harnesses run with
 * leak detection off (ASAN_OPTIONS=detect_leaks=0, set by the Makefile). */
#ifndef BP_FUZZ_H
#define BP_FUZZ_H

#include "../tap.h" /* tap_temp_dir */
#include "util.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jmp_buf fuzz_jmp;
static char fuzz_error[1024];

/* An invariant the harness checks: a crash libFuzzer reports, with why. */
#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s: ", #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fuzz_die(int status, const char *line)
{
    FUZZ_ASSERT(status == EXIT_BAD_INPUT, "status %d for \"%s\"", status, line);
    FUZZ_ASSERT(!strchr(line, '\n') && !strchr(line, '\r'), "diagnostic on several lines: %s", line);
    FUZZ_ASSERT(!strncmp(line, "fuzz: ", 6) && line[6], "diagnostic without the tool's name: %s",
                line);
    snprintf(fuzz_error, sizeof fuzz_error, "%s", line);
    longjmp(fuzz_jmp, 1);
}

static void fuzz_init(void)
{
    util_init("fuzz");
    set_die_handler(fuzz_die);
}

/* A new temporary directory (tap_temp_dir: under TMPDIR), removed at exit,
 * for harnesses whose parser reads files. */
static char *fuzz_dir;

static void fuzz_remove_dir(void)
{
    remove_tree(fuzz_dir);
}

__attribute__((unused)) static char *fuzz_temp_dir(const char *prefix)
{
    fuzz_dir = tap_temp_dir(prefix);
    atexit(fuzz_remove_dir);
    return fuzz_dir;
}

/* Run the statement; 1 when it finished, 0 when it died (fuzz_error says
 * why).  Variables changed inside and read after must be volatile. */
#define FUZZ_TRY(stmt) (setjmp(fuzz_jmp) == 0 ? ((stmt), 1) : 0)

#endif
