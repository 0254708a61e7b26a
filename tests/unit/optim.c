/* Learning-rate schedule, warmup parsing, gradient clipping and AdamW/Adam:
 * against the fixture's learning rates, direct computations, and torch and
 * transformers run at test time. */
#include "../tap.h"
#include "optim.h"
#include "safetensors.h"
#include "threads.h"
#include "util.h"

#include <limits.h>
#include <string.h>

static double rel_err(double got, double want)
{
    return got == want ? 0 : fabs(got - want) / fabs(want);
}

static void check_fixture_schedule(void)
{
    char *path;
    {
        char *dir = path_join(shared_dir(), "fixtures/tiny");
        path = path_join(dir, "reference.safetensors");
        free(dir);
    }
    safetensors st;
    st_open(&st, path);
    char *lr_s = st_metadata(&st, "lr"), *warmup_s = st_metadata(&st, "warmup_steps"),
         *total_s = st_metadata(&st, "total_steps");
    const st_tensor *t = st_find(&st, "train.lrs");
    double peak;
    long total;
    warmup_spec w;
    if (!lr_s || !warmup_s || !total_s || !t || parse_double(lr_s, &peak) ||
        parse_long(total_s, 1, LONG_MAX, &total) || warmup_parse(warmup_s, &w))
        die("%s: no train.lrs or schedule metadata", path);
    double *want = xmallocarray(t->numel, sizeof *want);
    st_to_f64(t, want);
    double err = 0;
    for (size_t k = 0; k < t->numel; k++) {
        double got = lr_linear_warmup(peak, warmup_steps(&w, total), total, (long)k);
        err = fmax(err, rel_err(got, want[k]));
        if (k < 3)
            diag("step %zu: lr %.17g, reference %.17g", k + 1, got, want[k]);
    }
    ok(err <= 1e-12, "train.lrs (peak %s, warmup %s, total %s): max relative error %.2e", lr_s,
       warmup_s, total_s, err);
    free(want);
    free(lr_s);
    free(warmup_s);
    free(total_s);
    st_close(&st);
    free(path);
}

static void check_schedule_by_hand(void)
{
    ok(lr_linear_warmup(1e-3, 0, 10, 0) == 1e-3, "no warmup: first step at the peak");
    ok(lr_linear_warmup(2.0, 4, 10, 1) == 0.5 && lr_linear_warmup(2.0, 4, 10, 4) == 2.0,
       "warmup 4: steps 1 and 4 at a quarter and at the peak");
    ok(rel_err(lr_linear_warmup(1.0, 4, 10, 7), 0.5) <= 1e-15, "decay: halfway down");
    ok(lr_linear_warmup(1.0, 2, 10, 10) == 0 && lr_linear_warmup(1.0, 2, 10, 12) == 0,
       "end of schedule and beyond: 0");
    ok(lr_linear_warmup(1.0, 10, 10, 9) == 0.9 && lr_linear_warmup(1.0, 10, 10, 10) == 0,
       "warmup over the whole schedule");

    struct {
        const char *s;
        long total, steps;
    } cases[] = {
        {"0", 100, 0},    {"1", 100, 1},    {"25", 100, 25},  {"0.1", 100, 10}, {"0.0", 100, 0},
        {"1.0", 100, 100}, {"0.1", 15, 2},   {"0.5", 3, 2},    {".25", 8, 2},
        {"0.07", 100, 8}, /* math.ceil(100 * 0.07) = 8 in Python too */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        warmup_spec w;
        int rc = warmup_parse(cases[i].s, &w);
        long got = rc ? -1 : warmup_steps(&w, cases[i].total);
        ok(got == cases[i].steps, "--warmup %s of %ld steps: %ld warmup steps (want %ld)",
           cases[i].s, cases[i].total, got, cases[i].steps);
    }
    static const char *bad[] = {"", "-1", "1.5", "-0.1", "x", "0.1x", "1e2", "nan"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        warmup_spec w;
        ok(warmup_parse(bad[i], &w) == -1, "--warmup '%s' rejected", bad[i]);
    }
}

/* Ranges with a gap (an untrained tensor) between them, the last one long
 * enough to span several norm chunks. */
static const optim_range clip_ranges[] = {{0, 1000, 1}, {1000, 30, 0}, {1100, 200000, 1}};
enum { CLIP_N = 201100 };

static void check_clipping(void)
{
    float *g = xmallocarray(CLIP_N, sizeof *g), *orig = xmallocarray(CLIP_N, sizeof *g);
    for (size_t i = 0; i < CLIP_N; i++)
        orig[i] = (float)(sin(0.37 * i) * (1 + i % 7)) * 1e-2f;
    double sq = 0;
    for (int k = 0; k < 3; k++)
        for (size_t i = clip_ranges[k].offset; i < clip_ranges[k].offset + clip_ranges[k].numel; i++)
            sq += (double)orig[i] * orig[i];
    double want = sqrt(sq);

    double norm = grad_norm(orig, clip_ranges, 3);
    ok(rel_err(norm, want) <= 1e-13, "norm %.17g, direct %.17g", norm, want);
    double clip = grad_clip(norm, 1.0);
    ok(clip == 1.0 / (norm + 1e-6), "clip factor 1/(norm+1e-6) for max_norm 1: %.17g", clip);
    ok(grad_clip(norm, 2 * want) == 1 && grad_clip(norm, 0) == 1 && grad_clip(INFINITY, 1) == 1 &&
       grad_clip(NAN, 1) == 1, "factor 1 for max_norm above the norm, max_norm 0, a non-finite norm");

    /* adam_step's clip equals clip_grad_norm_'s scaling (by the factor in
     * float, as torch's float tensor) done first, bit for bit, and leaves
     * the gradients and the gap alone. */
    for (size_t i = 0; i < CLIP_N; i++)
        g[i] = orig[i] * (float)clip;
    float *p[2], *m[2], *v[2];
    for (int k = 0; k < 2; k++) {
        p[k] = xmallocarray(CLIP_N, sizeof *p[k]);
        m[k] = xcalloc(CLIP_N, sizeof *m[k]);
        v[k] = xcalloc(CLIP_N, sizeof *v[k]);
        for (size_t i = 0; i < CLIP_N; i++)
            p[k][i] = (float)cos(0.11 * i);
    }
    adam_config c = adam_defaults();
    float *before = xmallocarray(CLIP_N, sizeof *before);
    memcpy(before, orig, CLIP_N * sizeof *before);
    adam_step(&c, clip_ranges, 3, p[0], orig, m[0], v[0], 1, 1e-3, clip);
    adam_step(&c, clip_ranges, 3, p[1], g, m[1], v[1], 1, 1e-3, 1);
    int same = 1;
    for (int k = 0; k < 2; k++)
        same &= !memcmp(k ? m[0] : p[0], k ? m[1] : p[1], CLIP_N * sizeof *p[0]);
    same &= !memcmp(v[0], v[1], CLIP_N * sizeof *v[0]);
    ok(same, "adam_step with clip = adam_step on the gradients clipped beforehand, bit for bit");
    ok(!memcmp(before, orig, CLIP_N * sizeof *orig) && p[0][1050] == (float)cos(0.11 * 1050),
       "the gradients unchanged, the gap's weights untouched");
    for (int k = 0; k < 2; k++) {
        free(p[k]);
        free(m[k]);
        free(v[k]);
    }
    free(before);

    threads_set(1);
    double one = grad_norm(orig, clip_ranges, 3);
    threads_set(3);
    double three = grad_norm(orig, clip_ranges, 3);
    threads_set(0);
    ok(one == three, "norm identical with 1 and 3 threads");
    free(g);
    free(orig);
}

/* Decay applies only where the range says so, decoupled from the moments. */
static void check_decay_mask(void)
{
    static const optim_range r[] = {{0, 4, 1}, {4, 4, 0}, {12, 4, 1}};
    float p[16], g[16] = {0}, m[16] = {0}, v[16] = {0};
    for (int i = 0; i < 16; i++)
        p[i] = 1 + i;
    adam_config c = adam_defaults();
    adam_step(&c, r, 3, p, g, m, v, 1, 0.5, 1);
    int good = 1;
    for (int i = 0; i < 16; i++) {
        float want = i < 4 || i >= 12 ? (float)(1 + i) * (float)(1 - 0.5 * 0.01) : (float)(1 + i);
        good &= p[i] == want;
    }
    ok(good, "AdamW with zero gradients: decayed ranges shrink by 1-lr*wd, others and the gap unchanged");
}

/* torch.optim.AdamW / Adam with two parameter groups (decay and not), clipping
 * and transformers' linear schedule, in float32 as users run it.  Reads the
 * initial parameters and per-step gradients (raw float32) from argv[1],
 * writes (raw float64) per mode: the lrs, the norms, then params, exp_avg,
 * exp_avg_sq; then the schedule's lrs for the extra cases. */
static const char *torch_script =
    "import sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "try:\n"
    "    import numpy as np, torch\n"
    "    from transformers import get_linear_schedule_with_warmup\n"
    "except Exception as e:\n"
    "    print('SKIP torch or transformers not importable:', type(e).__name__); sys.exit(0)\n"
    "N, S, W, T = map(int, sys.argv[3:7])\n"
    "peak, eps, wd, clip = map(float, sys.argv[7:11])\n"
    "ranges = [tuple(map(int, x.split(':'))) for x in sys.argv[11:]]\n"
    "x = np.fromfile(sys.argv[1], dtype='<f4')\n"
    "p0, grads = x[:N], x[N:].reshape(S, N)\n"
    "out = []\n"
    "for cls in (torch.optim.AdamW, torch.optim.Adam):\n"
    "    ps = [torch.nn.Parameter(torch.tensor(p0[o:o + n])) for o, n, d in ranges]\n"
    "    groups = [{'params': [q for q, r in zip(ps, ranges) if r[2]], 'weight_decay': wd},\n"
    "              {'params': [q for q, r in zip(ps, ranges) if not r[2]], 'weight_decay': 0.0}]\n"
    "    opt = cls(groups, lr=peak, betas=(0.9, 0.999), eps=eps)\n"
    "    sched = get_linear_schedule_with_warmup(opt, W, T)\n"
    "    lrs, norms = [], []\n"
    "    for s in range(S):\n"
    "        for q, (o, n, d) in zip(ps, ranges):\n"
    "            q.grad = torch.tensor(grads[s, o:o + n])\n"
    "        norms.append(float(torch.nn.utils.clip_grad_norm_(ps, clip)))\n"
    "        lrs.append(opt.param_groups[0]['lr'])\n"
    "        opt.step(); sched.step()\n"
    "    out += [np.array(lrs), np.array(norms)]\n"
    "    for key in (None, 'exp_avg', 'exp_avg_sq'):\n"
    "        buf = np.zeros(N)\n"
    "        for q, (o, n, d) in zip(ps, ranges):\n"
    "            buf[o:o + n] = (q if key is None else opt.state[q][key]).detach().numpy()\n"
    "        out.append(buf)\n"
    "for w, t in ((3, 17), (0, 5)):\n"
    "    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)\n"
    "    f = get_linear_schedule_with_warmup(opt, w, t).lr_lambdas[0]\n"
    "    out.append(np.array([1e-3 * f(s) for s in range(20)]))\n"
    "np.concatenate(out).astype('<f8').tofile(sys.argv[2])\n"
    "print('OK')\n";

static void check_against_torch(void)
{
    /* weight, bias, weight, untrained gap (like the pooler), LayerNorm weight */
    static const optim_range r[] = {{0, 40, 1}, {40, 8, 0}, {48, 24, 1}, {88, 8, 0}};
    enum { NR = 4, N = 96, S = 6, W = 2, T = 8 };
    const double peak = 0.05, eps = 1e-6, wd = 0.01, max_norm = 1.0;

    char *dir = tap_temp_dir("optim");
    char *script = path_join(dir, "adamw.py"), *in = path_join(dir, "in.f32"),
         *out = path_join(dir, "ref.f64");
    FILE *f = fopen(script, "w");
    fputs(torch_script, f);
    fclose(f);

    static float x[(1 + S) * N];
    for (int i = 0; i < N; i++)
        x[i] = (float)cos(0.7 * i);
    for (int s = 0; s < S; s++)
        for (int i = 0; i < N; i++) {
            /* step 3 small enough to stay unclipped; some exact zeros */
            double size = s == 2 ? 1e-3 : 0.3;
            x[(1 + s) * N + i] = i % 11 == 5 ? 0.0f : (float)(size * sin(1.3 * i + 2.1 * s + 0.5));
        }
    f = fopen(in, "wb");
    fwrite(x, sizeof x, 1, f);
    fclose(f);

    char cmd[1024];
    int len = snprintf(cmd, sizeof cmd, "python3 %s %s %s %d %d %d %d %.17g %.17g %.17g %.17g",
                       script, in, out, N, S, W, T, peak, eps, wd, max_norm);
    for (int k = 0; k < NR; k++)
        len += snprintf(cmd + len, sizeof cmd - len, " %zu:%zu:%d", r[k].offset, r[k].numel,
                        r[k].decay);
    snprintf(cmd + len, sizeof cmd - len, " 2>&1");
    if (!python_reference(cmd)) {
        remove_tree(dir);
        return;
    }
    size_t nbytes;
    double *ref = (double *)read_file(out, &nbytes);
    size_t per_mode = 2 * S + 3 * N;
    if (!ref || nbytes != (2 * per_mode + 40) * sizeof(double))
        die("%s: unexpected size", out);

    static const char *names[2] = {"torch.optim.AdamW", "torch.optim.Adam"};
    for (int mode = 0; mode < 2; mode++) {
        const double *want = ref + mode * per_mode;
        adam_config c = adam_defaults();
        c.kind = mode ? OPTIM_ADAM : OPTIM_ADAMW;
        c.eps = eps;
        c.weight_decay = wd;
        float p[N], g[N], m[N] = {0}, v[N] = {0};
        memcpy(p, x, sizeof p);
        double lr_err = 0, norm_err = 0;
        for (int s = 0; s < S; s++) {
            memcpy(g, x + (1 + s) * N, sizeof g);
            double norm = grad_norm(g, r, NR);
            double lr = lr_linear_warmup(peak, W, T, s);
            adam_step(&c, r, NR, p, g, m, v, s + 1, lr, grad_clip(norm, max_norm));
            lr_err = fmax(lr_err, rel_err(lr, want[s]));
            norm_err = fmax(norm_err, rel_err(norm, want[S + s]));
        }
        ok(lr_err <= 1e-12, "%s: lrs of %d steps, max relative error %.2e", names[mode], S, lr_err);
        ok(norm_err <= 1e-6, "%s: gradient norms, max relative error %.2e", names[mode], norm_err);
        const float *bufs[3] = {p, m, v};
        static const char *what[3] = {"params", "exp_avg", "exp_avg_sq"};
        for (int b = 0; b < 3; b++) {
            double err = 0, scale = 0;
            for (int i = 0; i < N; i++) {
                if (i >= 72 && i < 88)
                    continue; /* the gap, checked below */
                err = fmax(err, fabs(bufs[b][i] - want[2 * S + b * N + i]));
                scale = fmax(scale, fabs(want[2 * S + b * N + i]));
            }
            ok(err <= 1e-6 * fmax(scale, 1e-3), "%s: %s after %d steps, max abs error %.2e (largest %.3g)",
               names[mode], what[b], S, err, scale);
        }
        int gap_kept = 1;
        for (int i = 72; i < 88; i++)
            gap_kept &= p[i] == x[i];
        ok(gap_kept, "%s: parameters outside the ranges untouched", names[mode]);
    }

    const double *sched = ref + 2 * per_mode;
    static const long cases[2][2] = {{3, 17}, {0, 5}};
    for (int k = 0; k < 2; k++) {
        double err = 0;
        for (int s = 0; s < 20; s++)
            err = fmax(err, rel_err(lr_linear_warmup(1e-3, cases[k][0], cases[k][1], s), sched[k * 20 + s]));
        ok(err <= 1e-12, "get_linear_schedule_with_warmup(%ld, %ld), steps 0..19: max relative error %.2e",
           cases[k][0], cases[k][1], err);
    }
    free(ref);
    free(script);
    free(in);
    free(out);
    remove_tree(dir);
}

static int by_offset(const void *x, const void *y)
{
    size_t a = ((const optim_range *)x)->offset, b = ((const optim_range *)y)->offset;
    return (a > b) - (a < b);
}

static void check_bert_ranges(void)
{
    bert_config c = {.vocab_size = 100, .hidden = 8, .layers = 2, .heads = 2, .intermediate = 16,
                     .max_positions = 12, .type_vocab = 2};
    size_t off[P_COUNT + 1];
    bert_param_offsets(&c, off);
    int n = optim_bert_ranges(&c, NULL);
    optim_range *r = xmallocarray(n, sizeof *r);
    optim_bert_ranges(&c, r);
    /* In offset order the ranges must tile the buffer up to the pooler. */
    qsort(r, n, sizeof *r, by_offset);
    size_t covered = 0, decayed = 0, end = 0;
    int contiguous = 1;
    for (int k = 0; k < n; k++) {
        contiguous &= r[k].offset == end;
        end = r[k].offset + r[k].numel;
        covered += r[k].numel;
        decayed += r[k].decay ? r[k].numel : 0;
    }
    ok(n == bert_tensors(&c, NULL) - 2, "BERT ranges: every tensor but the pooler's two (%d)", n);
    ok(contiguous && covered == off[P_POOLER_W], "BERT ranges cover the buffer up to the pooler");
    /* word, position, type embeddings; per layer q, k, v, attention output, two FFN weights */
    size_t want = off[P_EMB_LN_W] + (off[P_QKV_B] - off[P_QKV_W]) +
                  (off[P_ATTN_OUT_B] - off[P_ATTN_OUT_W]) + (off[P_FFN_IN_B] - off[P_FFN_IN_W]) +
                  (off[P_FFN_OUT_B] - off[P_FFN_OUT_W]);
    ok(decayed == want, "BERT ranges: decay on embeddings and weight matrices only (%zu of %zu)",
       decayed, covered);
    free(r);
}

int main(void)
{
    util_init("test-optim");
    check_fixture_schedule();
    check_schedule_by_hand();
    check_clipping();
    check_decay_mask();
    check_bert_ranges();
    check_against_torch();
    return done_testing();
}
