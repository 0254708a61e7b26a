/* nli.h - one line of natural language inference data (SNLI/MultiNLI
 * JSON Lines, Hugging Face datasets JSON Lines exports, or TSV) parsed into
 * premise, hypothesis and label: nli-filter's row parser, in the library so
 * that tests and fuzz harnesses call it on memory buffers. */
#ifndef BP_NLI_H
#define BP_NLI_H

#include <stddef.h>

enum { LABEL_NONE = -1, LABEL_ENTAILMENT = 0, LABEL_NEUTRAL = 1, LABEL_CONTRADICTION = 2 };

typedef enum { FORMAT_AUTO, FORMAT_SNLI, FORMAT_HF, FORMAT_TSV } input_format;

/* One parsed line.  The texts point into the line or into the parser's
 * buffers, valid until the next line is parsed; tabs, newlines and carriage
 * returns in them are spaces. */
typedef struct {
    const char *premise, *hypothesis;
    int label;
} nli_row;

typedef struct {
    char *text[2];     /* copies of the JSON texts */
    size_t cap[2];
    char error[256];   /* why the last line failed, for "FILE:LINE: reason" */
} nli_parser;

/* Parse line[0..n) (line[n] must be 0; a TSV line is split in place) as
 * format (FORMAT_AUTO: a line starting with '{' after spaces is JSON, others
 * TSV).  Returns 0, or -1 with the reason in p->error; never exits. */
int nli_parse_line(nli_parser *p, char *line, size_t n, input_format format, nli_row *row);
void nli_parser_free(nli_parser *p);

#endif
