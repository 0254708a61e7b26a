/* MNR losses against the fixtures' sentence-transformers values, and against
 * sentence-transformers itself (run at test time) on more columns. */
#include "../tap.h"
#include "child.h"
#include "loss.h"
#include "safetensors.h"
#include "util.h"

#include <string.h>

static float *tensor_f32(const safetensors *st, const char *name, size_t *numel)
{
    const st_tensor *t = st_find(st, name);
    if (!t)
        die("%s: no tensor %s", st->path, name);
    float *x = xmallocarray(t->numel, sizeof *x);
    st_to_f32(t, x);
    if (numel)
        *numel = t->numel;
    return x;
}

static double scalar_f64(const safetensors *st, const char *name)
{
    const st_tensor *t = st_find(st, name);
    if (!t || t->numel != 1)
        die("%s: no scalar %s", st->path, name);
    double x;
    st_to_f64(t, &x);
    return x;
}

static double max_abs_diff(const float *x, const float *y, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)x[i] - y[i]));
    return m;
}

static void check_fixture(const char *name)
{
    char *path;
    {
        char *dir = path_join(shared_dir(), "fixtures");
        char *sub = path_join(dir, name);
        path = path_join(sub, "reference.safetensors");
        free(dir);
        free(sub);
    }
    safetensors st;
    st_open(&st, path);
    const st_tensor *ta = st_find(&st, "anchor.embedding");
    if (!ta || ta->ndim != 2)
        die("%s: no [B, H] anchor.embedding", path);
    int B = (int)ta->shape[0], H = (int)ta->shape[1];
    size_t n = (size_t)B * H;
    float *a = tensor_f32(&st, "anchor.embedding", NULL);
    float *p = tensor_f32(&st, "positive.embedding", NULL);
    float *ng = tensor_f32(&st, "negative.embedding", NULL);
    float *d[3], *scores = xmallocarray((size_t)B * 2 * B, sizeof *scores);
    for (int c = 0; c < 3; c++)
        d[c] = xmallocarray(n, sizeof(float));

    static const char *variants[3] = {"pairs", "triplets", "symmetric"};
    static const char *columns[3] = {"anchor", "positive", "negative"};
    for (int v = 0; v < 3; v++) {
        int triplets = v == 1, symmetric = v == 2;
        char key[96];
        snprintf(key, sizeof key, "loss.%s", variants[v]);
        double want = scalar_f64(&st, key);
        double got = mnr_loss(a, p, triplets ? ng : NULL, B, H, MNR_DEFAULT_SCALE, symmetric, d[0],
                              d[1], triplets ? d[2] : NULL, triplets ? scores : NULL);
        double rel = fabs(got - want) / fabs(want);
        ok(rel <= 1e-6, "%s: %s %.12f, reference %.12f (relative error %.2e)", name, key, got,
           want, rel);
        ok(mnr_loss(a, p, triplets ? ng : NULL, B, H, MNR_DEFAULT_SCALE, symmetric, NULL, NULL,
                    NULL, NULL) == got,
           "%s: %s without gradients is the same number", name, key);
        for (int c = 0; c < (triplets ? 3 : 2); c++) {
            snprintf(key, sizeof key, "grad_embedding.%s.%s", variants[v], columns[c]);
            size_t m;
            float *g = tensor_f32(&st, key, &m);
            double err = m == n ? max_abs_diff(d[c], g, n) : INFINITY;
            ok(err <= 1e-5, "%s: %s max abs error %.2e", name, key, err);
            free(g);
        }
        if (triplets) {
            size_t m;
            float *s = tensor_f32(&st, "scores.triplets", &m);
            double err = m == (size_t)B * 2 * B ? max_abs_diff(scores, s, m) : INFINITY;
            ok(err <= 1e-5, "%s: scores.triplets max abs error %.2e", name, err);
            free(s);
        }
    }
    for (int c = 0; c < 3; c++)
        free(d[c]);
    free(scores);
    free(a);
    free(p);
    free(ng);
    st_close(&st);
    free(path);
}

/* sentence-transformers on C columns of float32 embeddings (raw file in argv[1],
 * shape in argv[2..4]); writes, as raw float64 to argv[5], the loss then the
 * gradient of every column, for MNRL and then MNSRL. */
static const char *st_script =
    "import sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "try:\n"
    "    import numpy as np, torch\n"
    "    from sentence_transformers.sentence_transformer import losses\n"
    "except Exception as e:\n"
    "    print('SKIP sentence-transformers not importable:', type(e).__name__); sys.exit(0)\n"
    "C, B, H = map(int, sys.argv[2:5])\n"
    "x = np.fromfile(sys.argv[1], dtype='<f4').reshape(C, B, H).astype(np.float64)\n"
    "out = []\n"
    "for cls in (losses.MultipleNegativesRankingLoss, losses.MultipleNegativesSymmetricRankingLoss):\n"
    "    e = [torch.tensor(x[c], requires_grad=True) for c in range(C)]\n"
    "    loss = cls(None).compute_loss_from_embeddings(e, None)\n"
    "    loss.backward()\n"
    "    out.append(np.array([loss.item()]))\n"
    "    out += [t.grad.numpy().ravel() for t in e]\n"
    "np.concatenate(out).astype('<f8').tofile(sys.argv[5])\n"
    "print('OK')\n";

static void check_against_sentence_transformers(void)
{
    enum { C = 4, B = 5, H = 7 };
    char *dir = tap_temp_dir("loss");
    char *script = path_join(dir, "mnr.py"), *in = path_join(dir, "emb.f32"),
         *out = path_join(dir, "ref.f64");
    FILE *f = fopen(script, "w");
    fputs(st_script, f);
    fclose(f);

    /* Deterministic values in [-1, 1] with some rows close to each other. */
    static float x[C][B][H];
    unsigned s = 12345;
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                s = s * 1103515245 + 12345;
                x[c][b][h] = (float)((s >> 8) % 2001) / 1000.0f - 1.0f;
                if (c == 1 && b % 2)
                    x[c][b][h] = x[0][b][h] + 0.1f * x[c][b][h];
            }
    f = fopen(in, "wb");
    fwrite(x, sizeof x, 1, f);
    fclose(f);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 %s %s %d %d %d %s 2>&1", script, in, C, B, H, out);
    if (!python_reference(cmd)) {
        remove_tree(dir);
        return;
    }
    size_t len;
    double *ref = (double *)read_file(out, &len);
    if (!ref || len != 2 * (1 + C * B * H) * sizeof(double))
        die("%s: unexpected size", out);

    const float *cols[C];
    float *dcols[C];
    static float d[C][B][H];
    for (int c = 0; c < C; c++) {
        cols[c] = &x[c][0][0];
        dcols[c] = &d[c][0][0];
    }
    for (int symmetric = 0; symmetric <= 1; symmetric++) {
        const double *r = ref + symmetric * (1 + C * B * H);
        double loss = mnr_loss_columns(cols, C, B, H, MNR_DEFAULT_SCALE, symmetric, dcols, NULL);
        double rel = fabs(loss - r[0]) / fabs(r[0]);
        double gmax = 0, err = 0;
        for (int i = 0; i < C * B * H; i++) {
            gmax = fmax(gmax, fabs(r[1 + i]));
            err = fmax(err, fabs((&d[0][0][0])[i] - r[1 + i]));
        }
        const char *what = symmetric ? "MultipleNegativesSymmetricRankingLoss"
                                     : "MultipleNegativesRankingLoss";
        ok(rel <= 1e-9, "%s, %d columns: loss %.12f vs %.12f (relative error %.2e)", what, C,
           loss, r[0], rel);
        ok(err <= 1e-6 * gmax, "%s, %d columns: gradient max abs error %.2e (largest %.3g)",
           what, C, err, gmax);
    }
    free(ref);
    free(script);
    free(in);
    free(out);
    remove_tree(dir);
}

/* The interface's row split (several processes sharing one batch): the
 * losses of the parts add up to the whole batch's loss and their gradients
 * to its gradients, for every variant; and a part outside the batch dies. */
static void check_row_split(void)
{
    enum { C = 3, B = 7, H = 5 };
    static float x[C][B][H], whole[C][B][H], part[C][B][H], sum[C][B][H];
    for (int i = 0; i < C * B * H; i++)
        (&x[0][0][0])[i] = (float)sin(1.7 * i + 0.3);
    const float *cols[C] = {&x[0][0][0], &x[1][0][0], &x[2][0][0]};
    float *dwhole[C] = {&whole[0][0][0], &whole[1][0][0], &whole[2][0][0]};
    float *dpart[C] = {&part[0][0][0], &part[1][0][0], &part[2][0][0]};
    for (int symmetric = 0; symmetric <= 1; symmetric++)
        for (int ncol = 2; ncol <= C; ncol++) {
            loss l = loss_mnr(MNR_DEFAULT_SCALE, symmetric);
            loss_batch b = {.H = H, .columns = ncol, .total_rows = B, .rows = B, .col = cols};
            double want = loss_compute(&l, &b, 0, NULL, dwhole, NULL), got = 0;
            memset(sum, 0, sizeof sum);
            static const int cut[] = {0, 2, 3, 7};
            for (int k = 0; k < 3; k++) {
                b.row_offset = cut[k];
                b.rows = cut[k + 1] - cut[k];
                got += loss_compute(&l, &b, 0, NULL, dpart, NULL);
                for (int i = 0; i < ncol * B * H; i++)
                    (&sum[0][0][0])[i] += (&part[0][0][0])[i];
            }
            double gerr = 0, gmax = 0;
            for (int i = 0; i < ncol * B * H; i++) {
                gerr = fmax(gerr, fabs((&sum[0][0][0])[i] - (&whole[0][0][0])[i]));
                gmax = fmax(gmax, fabs((&whole[0][0][0])[i]));
            }
            ok(fabs(got - want) <= 1e-12 * fabs(want) && gerr <= 1e-6 * gmax,
               "%s, %d columns: rows 0-1, 2, 3-6 add up to the batch: loss %.15g (%.15g), "
               "gradients %.2e (largest %.3g)", l.name, ncol, got, want, gerr, gmax);
        }
}

/* The softmax loss over the same row split: the parts' losses, embedding
 * gradients and classifier gradients add up to the batch's; and its
 * gradients are those of finite differences of the loss. */
static void check_softmax(void)
{
    enum { B = 7, H = 5, F = 4 * H, HEAD = 3 * F + 3 };
    static float x[2][B][H], whole[2][B][H], part[2][B][H], sum[2][B][H];
    float head[HEAD], dwhole[HEAD], dsum[HEAD];
    static const int32_t labels[B] = {0, 2, 1, 1, 0, 2, 2};
    for (int i = 0; i < 2 * B * H; i++)
        (&x[0][0][0])[i] = (float)sin(1.3 * i + 0.7);
    x[1][3][2] = x[0][3][2]; /* |u - v| at 0: no gradient through it, as torch */
    const float *cols[2] = {&x[0][0][0], &x[1][0][0]};
    float *dw[2] = {&whole[0][0][0], &whole[1][0][0]}, *dp[2] = {&part[0][0][0], &part[1][0][0]};
    for (int normalize = 0; normalize <= 1; normalize++) {
        loss l = loss_softmax(H, 1, normalize);
        ok(l.head_size == HEAD && l.n_head_ranges == 2 && l.head_ranges[0].decay &&
               !l.head_ranges[1].decay && l.head_ranges[1].offset == 3 * F,
           "softmax head: %zu floats, decay on the weights, not on the bias", l.head_size);
        l.init_head(&l, head, 42);
        loss_batch b = {.H = H, .columns = 2, .total_rows = B, .rows = B, .col = cols,
                        .labels = labels};
        memset(dwhole, 0, sizeof dwhole);
        double want = loss_compute(&l, &b, 0, head, dw, dwhole), got = 0;
        memset(sum, 0, sizeof sum);
        memset(dsum, 0, sizeof dsum);
        static const int cut[] = {0, 2, 3, 7};
        for (int k = 0; k < 3; k++) {
            b.row_offset = cut[k];
            b.rows = cut[k + 1] - cut[k];
            got += loss_compute(&l, &b, 0, head, dp, dsum);
            for (int i = 0; i < 2 * B * H; i++)
                (&sum[0][0][0])[i] += (&part[0][0][0])[i];
        }
        double gerr = max_abs_diff(&sum[0][0][0], &whole[0][0][0], 2 * B * H);
        double herr = max_abs_diff(dsum, dwhole, HEAD);
        ok(fabs(got - want) <= 1e-12 * fabs(want) && gerr <= 1e-7 && herr <= 1e-7,
           "softmax (normalize %d): rows 0-1, 2, 3-6 add up to the batch: loss %.15g (%.15g), "
           "gradients %.2e, head %.2e", normalize, got, want, gerr, herr);
        /* central differences in double through the float inputs */
        b.row_offset = 0;
        b.rows = B;
        double worst = 0;
        for (int i = 0; i < 2 * B * H; i += 3) {
            float *xi = &x[0][0][0] + i, keep = *xi;
            if (i == 3 * H + 2 || i == B * H + 3 * H + 2)
                continue; /* the kink of |u - v| */
            *xi = keep + 1e-3f;
            double up = loss_compute(&l, &b, 0, head, NULL, NULL);
            *xi = keep - 1e-3f;
            double down = loss_compute(&l, &b, 0, head, NULL, NULL);
            *xi = keep;
            double fd = (up - down) / ((double)(keep + 1e-3f) - (double)(keep - 1e-3f));
            worst = fmax(worst, fabs(fd - (&whole[0][0][0])[i]));
        }
        ok(worst <= 1e-5, "softmax (normalize %d): gradients match central differences (%.2e)",
           normalize, worst);
        ok(isfinite(whole[0][3][2]), "softmax: a finite gradient where u = v");
    }
}

static void split_outside(const void *arg)
{
    const float *cols[2] = {arg, arg};
    loss l = loss_mnr(MNR_DEFAULT_SCALE, 0);
    loss_batch b = {.H = 1, .columns = 2, .total_rows = 2, .row_offset = 1, .rows = 2,
                    .col = cols};
    loss_compute(&l, &b, 0, NULL, NULL, NULL);
}

int main(void)
{
    util_init("test-loss");
    check_row_split();
    check_softmax();
    char err[512];
    float one[2] = {1, 2};
    int status = run_in_child(split_outside, one, err, sizeof err);
    ok(status == 1 && strstr(err, "rows 1..3 of 2"), "rows past the batch: exit %d, %s", status,
       err);
    check_fixture("tiny");
    check_fixture("head64");
    check_against_sentence_transformers();
    return done_testing();
}
