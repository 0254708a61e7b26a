#include "optim.h"

int optim_bert_ranges(const bert_config *c, optim_range *out) { return 0; }
adam_config adam_defaults(void) { return (adam_config){OPTIM_ADAMW, 0.9, 0.999, 1e-8, 0.01}; }
void adam_step(const adam_config *c, const optim_range *r, int nr, float *params,
               const float *grads, float *m, float *v, long step, double lr) {}
double grad_norm(const float *grads, const optim_range *r, int nr) { return 0; }
double clip_grad_norm(float *grads, const optim_range *r, int nr, double max_norm) { return 0; }
double lr_linear_warmup(double peak, long warmup, long total, long s) { return 0; }
int warmup_parse(const char *s, warmup_spec *w) { return -1; }
long warmup_steps(const warmup_spec *w, long total_steps) { return 0; }
