/* The encoder's forward pass against the fixtures' Hugging Face hidden states
 * and sentence embeddings; cls/max pooling and L2 normalisation against
 * direct computations from the reference values. */
#include "bert_fixture.h"
#include "gemm.h"
#include "rng.h"

static const double TOL = 1e-5;

/* Largest difference between our packed hidden states h [N, H] and the
 * reference [B, T, H] at the positions where the mask is 1. */
static double hidden_error(const bert_acts *a, const float *h, const float *ref,
                           const ref_column *col, int H)
{
    const int *start = bert_acts_starts(a);
    double m = 0;
    for (int b = 0; b < col->B; b++)
        for (int t = 0; t < col->lens[b]; t++)
            m = fmax(m, max_abs_diff(h + (size_t)(start[b] + t) * H,
                                     ref + ((size_t)b * col->T + t) * H, H));
    return m;
}

/* CLS and max pooling of the reference last hidden states, [B, H] each. */
static void direct_pooling(const float *ref, const ref_column *col, int H, float *cls, float *max)
{
    for (int b = 0; b < col->B; b++)
        for (int j = 0; j < H; j++) {
            const float *x = ref + (size_t)b * col->T * H + j;
            cls[(size_t)b * H + j] = x[0];
            float m = x[0];
            for (int t = 1; t < col->lens[b]; t++)
                m = fmaxf(m, x[(size_t)t * H]);
            max[(size_t)b * H + j] = m;
        }
}

/* transformers' BertModel (MPNetModel) in float64 on a batch of ids (raw <i4 [B, T] in
 * argv[2], -1 padded) of the model in argv[1]; writes the last hidden states
 * as raw <f4 [B, T, H] to argv[5]. */
static const char *hf_script =
    "import os, sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "os.environ['TRANSFORMERS_VERBOSITY'] = 'error'\n"
    "os.environ['HF_HUB_DISABLE_PROGRESS_BARS'] = '1'\n"
    "try:\n"
    "    import numpy as np, torch\n"
    "    from transformers import AutoModel\n"
    "    from transformers.utils import logging\n"
    "except Exception as e:\n"
    "    print('SKIP transformers not importable:', type(e).__name__); sys.exit(0)\n"
    "logging.disable_progress_bar()\n"
    "B, T = int(sys.argv[3]), int(sys.argv[4])\n"
    "ids = np.fromfile(sys.argv[2], dtype='<i4').reshape(B, T)\n"
    "m = AutoModel.from_pretrained(sys.argv[1]).double().eval()\n"
    "with torch.no_grad():\n"
    "    h = m(input_ids=torch.tensor(np.maximum(ids, 0)).long(),\n"
    "          attention_mask=torch.tensor(ids >= 0).long()).last_hidden_state\n"
    "h.numpy().astype('<f4').tofile(sys.argv[5])\n"
    "print('OK')\n";

/* Sequences from 1 token up to max_position_embeddings against transformers
 * run now (the fixtures' sequences are at most 37 tokens long). */
static void check_long_sequences(const char *name, const bert_model *m)
{
    const bert_config *c = &m->cfg;
    int P = bert_max_tokens(c), H = c->hidden;
    enum { B = 5 };
    int lens[B] = {P, 1, P - 27, 2, 64 < P ? 64 : P};
    ref_column col = {B, P, xmallocarray((size_t)B * P, sizeof(int32_t)), lens, NULL};
    rng_t r;
    rng_seed(&r, 3);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++)
            col.ids[(size_t)b * P + t] = t < lens[b] ? (int32_t)rng_below(&r, c->vocab_size) : -1;

    char *dir = tap_temp_dir("bert");
    char *script = path_join(dir, "hf.py"), *in = path_join(dir, "ids.i32"),
         *out = path_join(dir, "hidden.f32"), *model_dir = fixture_path(name, "model");
    FILE *f = fopen(script, "w");
    fputs(hf_script, f);
    fclose(f);
    f = fopen(in, "wb");
    fwrite(col.ids, sizeof *col.ids, (size_t)B * P, f);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 %s %s %s %d %d %s 2>&1", script, model_dir, in, B, P, out);
    if (python_reference(cmd)) {
        size_t len;
        float *ref = (float *)read_file(out, &len);
        if (!ref || len != (size_t)B * P * H * sizeof *ref)
            die("%s: unexpected size", out);
        bert_acts *a = bert_acts_new(c, B, P, 0);
        bert_forward(c, m->params, col.ids, lens, B, P, a, NULL);
        double e = hidden_error(a, bert_hidden(a, c->layers), ref, &col, H);
        ok(e <= TOL, "%s: lengths %d, %d, %d, %d, %d against transformers, max error %.3g", name,
           lens[0], lens[1], lens[2], lens[3], lens[4], e);
        bert_acts_free(a);
        free(ref);
    }
    remove_tree(dir);
    free(script);
    free(in);
    free(out);
    free(model_dir);
    free(col.ids);
}

static void check_fixture(const char *name)
{
    bert_model m;
    fixture_model(name, &m);
    const bert_config *c = &m.cfg;
    int H = c->hidden, L = c->layers;
    char *path = fixture_path(name, "reference.safetensors");
    safetensors st;
    st_open(&st, path);

    static const char *columns[3] = {"anchor", "positive", "negative"};
    ref_column col[3];
    bert_acts *acts[3];
    float *emb[3];
    for (int k = 0; k < 3; k++) {
        col[k] = ref_column_read(&st, columns[k]);
        /* Activations sized exactly, for training (every layer's hidden
         * states kept, no dropout) for the anchors, for inference otherwise;
         * lens NULL for the negatives finds the lengths from the -1 padding. */
        acts[k] = bert_acts_new(c, col[k].B, col[k].T, k == 0);
        bert_forward(c, m.params, col[k].ids, k == 2 ? NULL : col[k].lens, col[k].B, col[k].T,
                     acts[k], NULL);
        int B = col[k].B;
        emb[k] = xmallocarray((size_t)B * H, sizeof *emb[k]);
        bert_pool(acts[k], POOL_MEAN, emb[k]);
        char tname[64];
        snprintf(tname, sizeof tname, "%s.embedding", columns[k]);
        float *ref = ref_f32(&st, tname);
        double e = max_abs_diff(emb[k], ref, (size_t)B * H);
        ok(e <= TOL, "%s: %s mean-pooled embedding, max error %.3g", name, columns[k], e);
        free(ref);
    }

    /* Every layer's hidden states of the anchors. */
    ref_column *a = &col[0];
    for (int l = 0; l <= L; l++) {
        char tname[64];
        snprintf(tname, sizeof tname, "anchor.hidden_states.%d", l);
        float *ref = ref_f32(&st, tname);
        double e = hidden_error(acts[0], bert_hidden(acts[0], l), ref, a, H);
        ok(e <= TOL, "%s: anchor hidden states %d, max error %.3g", name, l, e);
        free(ref);
    }

    /* Inference activations give the training ones' embeddings: the same
     * bits where both take the same steps, within 1e-6 where inference
     * applies GELU in the product (gemm_fuses_gelu: oneDNN's erf, not
     * vmath.h's); with room to spare, or the batch padded wider than needed,
     * the same bits as sized exactly. */
    {
        int B = a->B, T = a->T + 5;
        int32_t *ids = xmallocarray((size_t)B * T, sizeof *ids);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                ids[(size_t)b * T + t] = t < a->T ? a->ids[(size_t)b * a->T + t] : -1;
        float *exact = xmallocarray((size_t)B * H, sizeof *exact),
              *wide = xmallocarray((size_t)B * H, sizeof *wide);
        bert_acts *inf = bert_acts_new(c, B, a->T, 0);
        bert_forward(c, m.params, a->ids, a->lens, B, a->T, inf, NULL);
        bert_pool(inf, POOL_MEAN, exact);
        bert_acts_free(inf);
        inf = bert_acts_new(c, B + 3, T, 0);
        bert_forward(c, m.params, ids, a->lens, B, T, inf, NULL);
        bert_pool(inf, POOL_MEAN, wide);
        bert_acts_free(inf);
        if (gemm_fuses_gelu()) {
            double e = max_abs_diff(exact, emb[0], (size_t)B * H);
            ok(e <= 1e-6, "%s: inference activations give the training ones' embeddings within "
               "1e-6 (GELU in the product: %.3g)", name, e);
        } else {
            ok(memcmp(exact, emb[0], (size_t)B * H * sizeof *exact) == 0,
               "%s: inference activations give the training ones' embeddings", name);
        }
        ok(memcmp(wide, exact, (size_t)B * H * sizeof *wide) == 0,
           "%s: inference activations with room to spare and a wider padding give the same "
           "embeddings", name);
        free(exact);
        free(wide);
        free(ids);
    }

    /* CLS and max pooling against the reference last hidden states. */
    {
        size_t n = (size_t)a->B * H;
        char tname[64];
        snprintf(tname, sizeof tname, "anchor.hidden_states.%d", L);
        float *ref = ref_f32(&st, tname);
        float *cls = xmallocarray(n, sizeof *cls), *max = xmallocarray(n, sizeof *max);
        float *ours = xmallocarray(n, sizeof *ours);
        direct_pooling(ref, a, H, cls, max);
        bert_pool(acts[0], POOL_CLS, ours);
        double e = max_abs_diff(ours, cls, n);
        ok(e <= TOL, "%s: cls pooling, max error %.3g", name, e);
        bert_pool(acts[0], POOL_MAX, ours);
        e = max_abs_diff(ours, max, n);
        ok(e <= TOL, "%s: max pooling, max error %.3g", name, e);
        free(ref);
        free(cls);
        free(max);
        free(ours);
    }

    /* L2 normalisation: unit norms, and 20 * cosine against the reference
     * scores (anchor i with positive j, then with negative j). */
    {
        int B = a->B;
        float *unit[3], *norms = xmallocarray(B, sizeof *norms);
        double worst_norm = 0, worst_ratio = 0;
        for (int k = 0; k < 3; k++) {
            unit[k] = xmallocarray((size_t)B * H, sizeof *unit[k]);
            l2_normalize(unit[k], norms, emb[k], B, H);
            for (int b = 0; b < B; b++) {
                double s = 0;
                for (int j = 0; j < H; j++)
                    s += (double)unit[k][(size_t)b * H + j] * unit[k][(size_t)b * H + j];
                worst_norm = fmax(worst_norm, fabs(sqrt(s) - 1));
                for (int j = 0; j < H; j++)
                    worst_ratio = fmax(worst_ratio, fabs(unit[k][(size_t)b * H + j] * norms[b] -
                                                         emb[k][(size_t)b * H + j]));
            }
        }
        ok(worst_norm <= 1e-6 && worst_ratio <= 1e-6,
           "%s: normalized rows have norm 1 (error %.3g) and times the norm give the input "
           "(error %.3g)", name, worst_norm, worst_ratio);
        float *scores = ref_f32(&st, "scores.triplets");
        double e = 0;
        for (int i = 0; i < B; i++)
            for (int j = 0; j < 2 * B; j++) {
                const float *cand = unit[1 + j / B] + (size_t)(j % B) * H;
                double s = 20 * dot_f(unit[0] + (size_t)i * H, cand, H);
                e = fmax(e, fabs(s - scores[(size_t)i * 2 * B + j]));
            }
        ok(e <= 20 * TOL, "%s: 20 * cosine of normalized embeddings vs scores.triplets, "
           "max error %.3g", name, e);
        free(scores);
        free(norms);
        for (int k = 0; k < 3; k++)
            free(unit[k]);
    }

    for (int k = 0; k < 3; k++) {
        bert_acts_free(acts[k]);
        ref_column_free(&col[k]);
        free(emb[k]);
    }
    st_close(&st);
    free(path);
    check_long_sequences(name, &m);
    model_free(&m);
}

/* bert_rel_bucket against transformers' relative_position_bucket. */
static void check_rel_buckets(const char *name)
{
    char *path = fixture_path(name, "reference.safetensors");
    safetensors st;
    st_open(&st, path);
    const st_tensor *rel = ref_find(&st, "rel_bucket.rel"), *want = ref_find(&st, "rel_bucket.bucket");
    const int32_t *r = rel->data, *w = want->data;
    int bad = 0;
    for (size_t i = 0; i < rel->numel; i++)
        bad += bert_rel_bucket(r[i]) != w[i];
    ok(bad == 0 && rel->numel == 1201, "%s: relative position buckets of -600..600 as transformers' "
       "(%d differ)", name, bad);
    st_close(&st);
    free(path);
}

/* The pre-training layout ("mpnet." prefix, lm_head.* ignored) loads the same
 * weights as the save_pretrained one. */
static void check_hubstyle(const char *name)
{
    bert_model m, h;
    char *dir = fixture_path(name, "model"), *hub = fixture_path(name, "hubstyle");
    model_load(&m, dir);
    model_load(&h, hub);
    size_t off[P_COUNT + 1];
    bert_param_offsets(&m.cfg, off);
    ok(m.nparams == h.nparams && !memcmp(m.params, h.params, off[P_POOLER_W] * sizeof *m.params),
       "%s: hubstyle (mpnet. prefix, lm_head, no pooler) loads the same %zu parameters", name,
       off[P_POOLER_W]);
    model_free(&m);
    model_free(&h);
    free(dir);
    free(hub);
}

static void check_mpnet(const char *dir)
{
    check_fixture(dir);
    check_rel_buckets(dir);
    check_hubstyle(dir);
}

/* attention_head_blocked's other head sizes (16, 48 and 128 dimensions;
 * BERT, and MPNet's relative position bias) at lengths of 1 to 300 tokens
 * against transformers, on random models it makes now
 * (tests/py/mk_head_sizes.py). */
static void check_head_sizes(void)
{
    static const char *names[] = {"bert-head16", "bert-head48", "bert-head128", "mpnet-head48"};
    char *dir = tap_temp_dir("heads");
    char *cmd = xmalloc(strlen(dir) + 64);
    sprintf(cmd, "python3 tests/py/mk_head_sizes.py %s 2>&1", dir);
    if (python_reference(cmd))
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            char *sub = path_join(dir, names[i]);
            bert_model m;
            fixture_model(sub, &m);
            check_long_sequences(sub, &m);
            model_free(&m);
            free(sub);
        }
    remove_tree(dir);
    free(dir);
    free(cmd);
}

int main(void)
{
    util_init("test-bert-forward");
    check_fixture("tiny");
    check_fixture("head64");
    for_each_mpnet_fixture(check_mpnet);
    check_head_sizes();
    return done_testing();
}
