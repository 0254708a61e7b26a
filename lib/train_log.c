#include "train_log.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

FILE *train_log_open(const char *path, long resumed_step)
{
    size_t len;
    char *text = resumed_step >= 0 ? read_file(path, &len) : NULL;
    if (text) {
        atomic_file out;
        atomic_open(&out, path);
        long line = 0;
        for (char *p = text, *nl; *p; p = nl + 1) {
            nl = strchr(p, '\n');
            if (!nl)
                die("%s:%ld: the last line is cut short", path, line + 1);
            line++;
            json_error_t err;
            json_t *obj = json_loadb(p, nl - p, 0, &err);
            json_t *step = json_object_get(obj, "step");
            if (!json_is_integer(step))
                die("%s:%ld: not a log line of mnr-train", path, line);
            if (json_integer_value(step) <= resumed_step)
                out_write(out.f, path, p, nl - p + 1);
            json_decref(obj);
        }
        atomic_commit(&out);
        free(text);
    }
    FILE *f = fopen(path, resumed_step >= 0 ? "a" : "w");
    if (!f)
        die("%s: %s", path, strerror(errno));
    return f;
}

void train_log_step(FILE *f, const char *path, const trainer *t, double loss, double lr,
                    double grad_norm, double examples_per_s)
{
    out_printf(f, path,
               "{\"step\":%ld,\"epoch\":%ld,\"loss\":%.17g,\"lr\":%.17g,\"grad_norm\":%.17g,"
               "\"examples_per_s\":%.17g,\"ranks\":%d}\n",
               t->pos.step, t->pos.epoch + 1, loss, lr, grad_norm, examples_per_s,
               comm_size(t->comm));
    out_flush(f, path);
}

void train_log_eval(FILE *f, const char *path, const trainer *t, double spearman)
{
    if (isfinite(spearman))
        out_printf(f, path, "{\"step\":%ld,\"eval_sts_spearman\":%.17g}\n", t->pos.step, spearman);
    else
        out_printf(f, path, "{\"step\":%ld,\"eval_sts_spearman\":null}\n", t->pos.step);
    out_flush(f, path);
}
