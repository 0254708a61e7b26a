/* input.h - the FILE... operands of a filter: each in turn, "-" or none
 * meaning standard input, with the name and line number for diagnostics. */
#ifndef BP_INPUT_H
#define BP_INPUT_H

#include <stdio.h>
#include <sys/types.h>

typedef struct {
    char **names;
    int count, next;
    FILE *f;          /* the open operand, NULL between operands */
    const char *name; /* its name for messages ("-" reads as "stdin") */
    long line;        /* 1-based number of the last line read */
} input_set;

/* names[0..count-1] are the operands; count 0 means standard input. */
void input_init(input_set *in, int count, char **names);
/* Open the next operand; 0 when none is left.  A file that cannot be opened
 * is fatal: "tool: NAME: No such file or directory". */
int input_open_next(input_set *in);
/* Close the current operand (read errors are fatal). */
void input_close(input_set *in);
/* Next line across all operands, without its newline (a final line lacking
 * one is still a line).  Returns its length, or -1 at the end of the last
 * operand.  *buf is reused between calls. */
ssize_t input_getline(input_set *in, char **buf, size_t *cap);

#endif
