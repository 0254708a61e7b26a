#include "nli.h"
#include "util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

__attribute__((format(printf, 2, 3))) static int fail(nli_parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    /* A label quoted from a JSON string may hold a newline: one line. */
    for (char *c = p->error; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return -1;
}

/* Tabs, newlines and carriage returns would break the TSV we write. */
static void flatten_whitespace(char *s)
{
    for (; *s; s++)
        if (*s == '\t' || *s == '\n' || *s == '\r')
            *s = ' ';
}

/* Labels as words (both formats) or as the datasets integers (TSV only). */
static int label_from_text(const char *s, int allow_integer)
{
    static const struct {
        const char *text;
        int label;
    } words[] = {
        {"entailment", LABEL_ENTAILMENT}, {"neutral", LABEL_NEUTRAL},
        {"contradiction", LABEL_CONTRADICTION}, {"-", LABEL_NONE},
        {"0", LABEL_ENTAILMENT}, {"1", LABEL_NEUTRAL},
        {"2", LABEL_CONTRADICTION}, {"-1", LABEL_NONE},
    };
    for (int i = 0; i < (allow_integer ? 8 : 4); i++)
        if (!strcmp(s, words[i].text))
            return words[i].label;
    return -2;
}

/* Copies of the two JSON texts (jansson's strings die with the object). */
static int json_field_text(nli_parser *p, json_t *obj, const char *key, int slot, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return fail(p, "missing field \"%s\"", key);
    if (!json_is_string(v))
        return fail(p, "field \"%s\" is not a string", key);
    size_t n = json_string_length(v);
    if (p->cap[slot] < n + 1)
        p->text[slot] = xrealloc(p->text[slot], p->cap[slot] = n + 1);
    memcpy(p->text[slot], json_string_value(v), n + 1);
    flatten_whitespace(p->text[slot]);
    *out = p->text[slot];
    return 0;
}

static int parse_json_object(nli_parser *p, json_t *obj, input_format format, nli_row *row)
{
    if (format == FORMAT_AUTO) {
        if (json_object_get(obj, "gold_label"))
            format = FORMAT_SNLI;
        else if (json_object_get(obj, "premise") || json_object_get(obj, "label"))
            format = FORMAT_HF;
        else
            return fail(p, "neither gold_label, sentence1, sentence2 (SNLI/MultiNLI) nor "
                        "premise, hypothesis, label (datasets export)");
    }
    if (format == FORMAT_SNLI) {
        json_t *g = json_object_get(obj, "gold_label");
        if (!g)
            return fail(p, "missing field \"gold_label\"");
        if (!json_is_string(g))
            return fail(p, "field \"gold_label\" is not a string");
        row->label = label_from_text(json_string_value(g), 0);
        if (row->label == -2)
            return fail(p, "unknown gold_label \"%.64s\"", json_string_value(g));
        if (json_field_text(p, obj, "sentence1", 0, &row->premise) ||
            json_field_text(p, obj, "sentence2", 1, &row->hypothesis))
            return -1;
        return 0;
    }
    json_t *l = json_object_get(obj, "label");
    if (!l)
        return fail(p, "missing field \"label\"");
    if (!json_is_integer(l))
        return fail(p, "field \"label\" is not an integer");
    json_int_t v = json_integer_value(l);
    if (v < -1 || v > 2)
        return fail(p, "unknown label %lld (expected 0, 1, 2 or -1)", (long long)v);
    row->label = (int)v;
    if (json_field_text(p, obj, "premise", 0, &row->premise) ||
        json_field_text(p, obj, "hypothesis", 1, &row->hypothesis))
        return -1;
    return 0;
}

static int parse_json(nli_parser *p, const char *line, size_t n, input_format format, nli_row *row)
{
    json_error_t err;
    json_t *obj = json_loadb(line, n, JSON_REJECT_DUPLICATES, &err);
    if (!obj)
        return fail(p, "invalid JSON: %s", err.text);
    int r = json_is_object(obj) ? parse_json_object(p, obj, format, row)
                                : fail(p, "invalid JSON: not an object");
    json_decref(obj);
    return r;
}

static int valid_utf8(const char *s, size_t n)
{
    utf8proc_int32_t c;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, n - i, &c);
        if (k < 0)
            return 0;
        i += k;
    }
    return 1;
}

/* premise TAB hypothesis TAB label, split in place. */
static int parse_tsv(nli_parser *p, char *line, size_t n, nli_row *row)
{
    if (memchr(line, 0, n))
        return fail(p, "NUL byte in line");
    if (!valid_utf8(line, n))
        return fail(p, "invalid UTF-8");
    char *tab1 = strchr(line, '\t');
    char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    if (!tab2 || strchr(tab2 + 1, '\t')) {
        int columns = 1;
        for (char *q = line; (q = strchr(q, '\t')); q++)
            columns++;
        return fail(p, "%d tab-separated columns, expected 3 (premise, hypothesis, label)", columns);
    }
    *tab1 = *tab2 = 0;
    const char *label = tab2 + 1;
    if ((row->label = label_from_text(label, 1)) == -2)
        return fail(p, "unknown label \"%.64s\" (expected entailment, neutral, contradiction, "
                    "-, or 0, 1, 2, -1)", label);
    flatten_whitespace(line);
    flatten_whitespace(tab1 + 1);
    row->premise = line;
    row->hypothesis = tab1 + 1;
    return 0;
}

int nli_parse_line(nli_parser *p, char *line, size_t n, input_format format, nli_row *row)
{
    if (format == FORMAT_TSV)
        return parse_tsv(p, line, n, row);
    if (format == FORMAT_AUTO && line[strspn(line, " ")] != '{')
        return parse_tsv(p, line, n, row);
    return parse_json(p, line, n, format, row);
}

void nli_parser_free(nli_parser *p)
{
    free(p->text[0]);
    free(p->text[1]);
    memset(p, 0, sizeof *p);
}

