/* nccl: the NCCL path of data parallelism (comm.h, lib/cuda/comm_nccl.cu)
 * on one GPU, one rank (TAP): NCCL's all-reduce and all-gather of GPU
 * buffers leave one rank's data as it is, and 5 training steps of head64
 * (fp32) whose parameter gradients go through NCCL's all-reduce give the
 * losses and weights of the same steps without it.  Several ranks are
 * mpirun's (docs/data-parallel.md); this is what one GPU can check. */
#include "comm.h"
#include "gpu_check.h"
#include "rng.h"

enum { STEPS = 5, BATCH = 8, MAX_T = 24 };

static void make_data(train_data *d)
{
    rng_t r;
    rng_seed(&r, 7);
    train_data_init(d, 2);
    int32_t seq[2][MAX_T], len[2];
    for (int b = 0; b < STEPS * BATCH; b++) {
        for (int c = 0; c < 2; c++) {
            len[c] = 5 + (int)rng_below(&r, MAX_T - 5);
            seq[c][0] = 101;
            for (int t = 1; t < len[c] - 1; t++)
                seq[c][t] = 1000 + (int32_t)rng_below(&r, 3000);
            seq[c][len[c] - 1] = 102;
        }
        const int32_t *seqs[2] = {seq[0], seq[1]};
        train_data_add_row(d, seqs, len);
    }
}

/* STEPS steps on the GPU in fp32 (through cm when not NULL): losses into
 * loss, the weights into params (encoder_nparams floats, allocated). */
static void train(const bert_model *m, comm *cm, double *losses, float **params, size_t *n)
{
    train_data data;
    make_data(&data);
    encoder *e = open_encoder(m, DEVICE_CUDA, PRECISION_FP32, 1, 2 * BATCH, MAX_T);
    adam_config adam = adam_defaults();
    loss l = loss_mnr(MNR_DEFAULT_SCALE, 0);
    trainer t;
    step_trainer(&t, m, e, &data, BATCH, &l, &adam, 1.0);
    t.comm = cm;
    int64_t rows[BATCH];
    double norm;
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < BATCH; i++)
            rows[i] = (int64_t)s * BATCH + i;
        losses[s] = trainer_step(&t, rows, BATCH, s + 1, 1e-3, &norm);
    }
    *n = encoder_nparams(e);
    *params = xmallocarray(*n, sizeof **params);
    encoder_get(e, BUF_PARAMS, *params);
    trainer_free(&t);
    encoder_close(e);
    train_data_free(&data);
}

int main(int argc, char **argv)
{
    util_init("gpu-nccl");
    require_gpu();
    comm *cm = comm_open(&argc, &argv);
    if (comm_nccl_init(cm) != 0)
        skip_all("built without NCCL");

    char *dir = fixture_path("head64", "model");
    bert_model m;
    model_load(&m, dir);

    /* the collectives on a GPU buffer (an encoder's gradients), one rank */
    encoder *e = open_encoder(&m, DEVICE_CUDA, PRECISION_FP32, 1, 2, 8);
    size_t N = encoder_nparams(e);
    float *host = xmallocarray(N, sizeof *host), *back = xmallocarray(N, sizeof *back);
    for (size_t i = 0; i < N; i++)
        host[i] = (float)(i % 1000) * 0.37f - 11.0f;
    encoder_set(e, BUF_GRADS, host);
    comm_allreduce(cm, encoder_grads(e), N, 1);
    encoder_get(e, BUF_GRADS, back);
    ok(!memcmp(back, host, N * sizeof *host), "all-reduce of %zu floats on the GPU, one rank: "
       "unchanged", N);
    size_t counts[1] = {N / 2}, displs[1] = {N / 4};
    comm_allgatherv(cm, encoder_grads(e), counts, displs, 1);
    encoder_get(e, BUF_GRADS, back);
    ok(!memcmp(back, host, N * sizeof *host), "all-gather of a block on the GPU, one rank: "
       "unchanged");
    ok(comm_get_stats(cm).calls == 2, "both went through NCCL (%ld calls counted)",
       comm_get_stats(cm).calls);
    encoder_close(e);
    free(host);
    free(back);

    /* training with the gradients through NCCL equals training without */
    double want[STEPS], got[STEPS];
    float *pw, *pg;
    size_t n;
    train(&m, NULL, want, &pw, &n);
    train(&m, cm, got, &pg, &n);
    double worst = 0;
    for (int s = 0; s < STEPS; s++)
        worst = fmax(worst, rel_err(got[s], want[s]));
    ok(worst <= 1e-6, "%d steps of head64: losses with NCCL within %.3g of those without", STEPS,
       worst);
    double dw = 0, big = 0;
    for (size_t i = 0; i < n; i++) {
        dw = fmax(dw, fabs((double)pg[i] - pw[i]));
        big = fmax(big, fabs((double)pw[i]));
    }
    ok(dw <= 1e-6 * big, "the weights after them: largest difference %.3g (largest weight %.3g)",
       dw, big);
    ok(comm_get_stats(cm).calls == 2 + STEPS, "one NCCL all-reduce of the gradients per step");
    free(pw);
    free(pg);
    model_free(&m);
    free(dir);
    comm_close(cm);
    done_testing();
    return tap_failed ? 1 : 0;
}
