/* model.c - model directories (stub: the implementation follows). */
#include "model.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void config_parse(bert_config *c, const char *path) { die("%s: config_parse: not implemented yet", path); }
void model_load(bert_model *m, const char *dir) { die("%s: model_load: not implemented yet", dir); }
void model_load_meta(bert_model *m, const char *dir) { die("%s: model_load_meta: not implemented yet", dir); }
void model_init_random(bert_model *m, const char *path, uint64_t seed) { die("%s: model_init_random: not implemented yet", path); }
void model_save(const bert_model *m, const char *out_dir, const float *params) { die("%s: model_save: not implemented yet", out_dir); }
void model_write_files(const bert_model *m, const char *dir, const float *params) { die("%s: model_write_files: not implemented yet", dir); }
void model_free(bert_model *m) { free(m->params); free(m->dir); free(m->transformer_dir); free(m->config_text); memset(m, 0, sizeof *m); }
const char *pooling_mode_name(pooling_mode p) { return p == POOL_CLS ? "cls" : p == POOL_MAX ? "max" : "mean"; }
char *model_file(const bert_model *m, const char *name) { return path_join(m->transformer_dir, name); }
