/* gpu.cu - the encoder on the GPU: device parameters, activations and the
 * forward/backward passes, mirroring bert.c layer for layer, and encoder.h's
 * implementation on them (plus gpu.h's extras).  Kernels are in layers.cuh, products in matmul.cu, the loss in
 * loss.cu and the optimiser in optim.cu.
 *
 * Each pass is a template on the activation type T: float for PRECISION_FP32,
 * bf16 for PRECISION_BF16 (whose matrix products read a bf16 copy of the fp32
 * master weights, refreshed by every optimiser step).  Parameter gradients
 * are always fp32. */
#include "backend.cuh"
#include "layers.cuh"

#include <cmath>
#include <cstdlib>
#include <cstring>

/* What one encoder layer keeps for its backward pass (bert.c's layer_acts);
 * T buffers are void * and cast by the templates. */
struct layer_buf {
    void *qkv;                  /* [N, 3H] */
    void *att;                  /* [B*heads, Tp, Tp] softmax probabilities, before dropout */
    void *ctx;                  /* [N, H] */
    void *ln1_in;               /* [N, H] */
    float *ln1_mean, *ln1_rstd; /* [N] */
    void *ln1_out;              /* [N, H] */
    void *ffn_pre;              /* [N, I] */
    void *ln2_in;               /* [N, H] */
    float *ln2_mean, *ln2_rstd; /* [N]; the LayerNorm output is hidden[l + 1] */
};

struct gpu_model {
    encoder base;             /* first: a gpu_model is an encoder */
    bert_config c;
    pooling_mode pooling;
    precision precision;
    int training;
    size_t off[P_COUNT + 1], nparams; /* nparams: the model's and the extra floats */
    int embed_batch;          /* sequences per forward pass of embed */

    float *params;            /* fp32 master weights */
    bf16 *params_bf16;        /* PRECISION_BF16: the copy the products read */
    float *grads, *m, *v;     /* training */
    adam_range *ranges;       /* device copy of the encoder's trainable ranges */
    int nranges;
    size_t max_range;

    /* The batch of the last forward pass. */
    int B, N, Tp;             /* sequences, tokens, padded length for attention */
    float p_hidden, p_attn;   /* dropout it applied (0 = none) */
    uint64_t drop_seed, drop_step; /* its dropout keys (with drop_row, drop_col) */

    /* Host staging for packing a batch. */
    int host_tokens, host_seqs;
    int32_t *h_ids, *h_pos, *h_epos, *h_seq, *h_keys, *h_offsets, *h_rows;
    int *h_start, *h_count;
    int n_word_keys, n_pos_keys;

    /* Device buffers proportional to the token count (cap_tokens rows). */
    int cap_tokens;
    char *token_mem;
    int32_t *ids, *pos, *seq; /* [N] token ids, positions, sequence of each row */
    int32_t *epos;            /* [N] position ids of the embeddings (MPNet: from pos_pad + 1) */
    int *rel_bucket;          /* MPNet: bert_rel_bucket(x) at x + rel_center, for |x| <= rel_center */
    int rel_center;           /* bert_max_tokens + 7: the attention's padded length Tp - 1 at most */
    int32_t *drop_row, *drop_col; /* [B] dropout keys of each sequence (B <= N) */
    int *start;               /* [B + 1] */
    void *emb;                /* [N, H] embedding sum entering the LayerNorm */
    float *emb_mean, *emb_rstd;
    void **hidden;            /* L + 1 of [N, H] */
    void *gelu;               /* [N, I] (recomputed by the backward pass) */
    layer_buf *layer;         /* L; without training all alias one set */
    float *pooled;            /* [B, H] (B <= N): gpu_embed's */
    void *dhidden, *g1, *g2;  /* [N, H] backward */
    void *dqkv, *dffn;        /* [N, 3H], [N, I] */
    float *partial;           /* column-sum partials */
    int32_t *word_keys, *word_offsets, *word_rows; /* rows grouped by token id */
    int32_t *pos_keys, *pos_offsets, *pos_rows;    /* rows grouped by position */

    /* Attention buffers: cap_att elements of [B*heads, Tp, Tp], cap_pad of
     * [B*heads, Tp, d]. */
    size_t cap_att, cap_pad;
    char *att_mem;
    float *scores;            /* fp32 scores, then their gradient */
    void *att_tmp;            /* probabilities after dropout, then the score gradient */
    void *q_p, *k_p, *v_p, *ctx_p;
    void *dq_p, *dk_p, *dv_p;
};

/* Sequences per forward pass in gpu_embed, bounding its memory. */
enum { EMBED_CHUNK = 256 };

static size_t elem_size(const gpu_model *g)
{
    return g->precision == PRECISION_FP32 ? sizeof(float) : sizeof(bf16);
}

static elem_type act_type(const gpu_model *g)
{
    return g->precision == PRECISION_FP32 ? DT_F32 : DT_BF16;
}

/* ---- device memory layout ------------------------------------------------ */

/* Point p at base + off (base NULL: only measure) and move off past bytes,
 * keeping every buffer 256-byte aligned as cuBLASLt prefers. */
template <class P> static void place(P *&p, char *base, size_t &off, size_t bytes)
{
    p = base ? (P *)(base + off) : NULL;
    off += (bytes + 255) & ~(size_t)255;
}

static size_t layout_tokens(gpu_model *g, char *base, size_t n)
{
    const bert_config *c = &g->c;
    size_t H = c->hidden, FF = c->intermediate, es = elem_size(g), off = 0;
    place(g->ids, base, off, n * 4);
    place(g->pos, base, off, n * 4);
    place(g->epos, base, off, n * 4);
    place(g->seq, base, off, n * 4);
    place(g->drop_row, base, off, n * 4);
    place(g->drop_col, base, off, n * 4);
    place(g->start, base, off, (n + 1) * 4);
    place(g->emb, base, off, n * H * es);
    place(g->emb_mean, base, off, n * 4);
    place(g->emb_rstd, base, off, n * 4);
    for (int l = 0; l <= c->layers; l++)
        place(g->hidden[l], base, off, n * H * es);
    place(g->gelu, base, off, n * FF * es);
    for (int l = 0; l < (g->training ? c->layers : 1); l++) {
        layer_buf *la = &g->layer[l];
        place(la->qkv, base, off, n * 3 * H * es);
        place(la->ctx, base, off, n * H * es);
        place(la->ln1_in, base, off, n * H * es);
        place(la->ln1_mean, base, off, n * 4);
        place(la->ln1_rstd, base, off, n * 4);
        place(la->ln1_out, base, off, n * H * es);
        place(la->ffn_pre, base, off, n * FF * es);
        place(la->ln2_in, base, off, n * H * es);
        place(la->ln2_mean, base, off, n * 4);
        place(la->ln2_rstd, base, off, n * 4);
    }
    place(g->pooled, base, off, n * H * 4);
    g->dhidden = g->g1 = g->g2 = g->dqkv = g->dffn = NULL;
    g->partial = NULL;
    g->word_keys = g->word_offsets = g->word_rows = NULL;
    g->pos_keys = g->pos_offsets = g->pos_rows = NULL;
    if (g->training) {
        size_t widest = 3 * H > FF ? 3 * H : FF;
        place(g->dhidden, base, off, n * H * es);
        place(g->g1, base, off, n * H * es);
        place(g->g2, base, off, n * H * es);
        place(g->dqkv, base, off, n * 3 * H * es);
        place(g->dffn, base, off, n * FF * es);
        place(g->partial, base, off, colsum_chunks((int)n) * widest * 4);
        place(g->word_keys, base, off, n * 4);
        place(g->word_offsets, base, off, (n + 1) * 4);
        place(g->word_rows, base, off, n * 4);
        place(g->pos_keys, base, off, n * 4);
        place(g->pos_offsets, base, off, (n + 1) * 4);
        place(g->pos_rows, base, off, n * 4);
    }
    return off;
}

static size_t layout_att(gpu_model *g, char *base, size_t natt, size_t npad)
{
    size_t es = elem_size(g), off = 0;
    for (int l = 0; l < (g->training ? g->c.layers : 1); l++)
        place(g->layer[l].att, base, off, natt * es);
    place(g->scores, base, off, natt * 4);
    place(g->att_tmp, base, off, natt * es);
    place(g->q_p, base, off, npad * es);
    place(g->k_p, base, off, npad * es);
    place(g->v_p, base, off, npad * es);
    place(g->ctx_p, base, off, npad * es);
    g->dq_p = g->dk_p = g->dv_p = NULL;
    if (g->training) {
        place(g->dq_p, base, off, npad * es);
        place(g->dk_p, base, off, npad * es);
        place(g->dv_p, base, off, npad * es);
    }
    return off;
}

/* Without training every layer shares the buffers of layer 0. */
static void alias_layers(gpu_model *g)
{
    if (!g->training)
        for (int l = 1; l < g->c.layers; l++)
            g->layer[l] = g->layer[0];
}

/* Room for n tokens and the attention buffers; growth by at least a quarter
 * so that slowly growing batches reallocate rarely. */
static void reserve(gpu_model *g, int n, size_t natt, size_t npad)
{
    if (n > g->cap_tokens) {
        int cap = g->cap_tokens + g->cap_tokens / 4;
        cap = cap < n ? n : cap;
        cuda_free(g->token_mem);
        g->token_mem = NULL;
        g->token_mem = (char *)cuda_alloc(layout_tokens(g, NULL, cap), "activations");
        layout_tokens(g, g->token_mem, cap);
        g->cap_tokens = cap;
    }
    if (natt > g->cap_att || npad > g->cap_pad) {
        size_t ca = g->cap_att + g->cap_att / 4, cp = g->cap_pad + g->cap_pad / 4;
        ca = ca < natt ? natt : ca;
        cp = cp < npad ? npad : cp;
        cuda_free(g->att_mem);
        g->att_mem = NULL;
        g->att_mem = (char *)cuda_alloc(layout_att(g, NULL, ca, cp), "attention buffers");
        layout_att(g, g->att_mem, ca, cp);
        g->cap_att = ca;
        g->cap_pad = cp;
    }
    alias_layers(g);
}

/* ---- packing a batch on the host ------------------------------------------ */

/* Group rows 0..n-1 by key (< nkeys), in row order within a key: keys[]
 * lists the keys present in increasing order, key k's rows are
 * rows[offsets[k] .. offsets[k+1]-1].  count is scratch of nkeys ints.
 * Returns the number of keys present. */
static int group_rows(const int32_t *key, int n, int nkeys, int skip, int *count, int32_t *keys,
                      int32_t *offsets, int32_t *rows)
{
    memset(count, 0, nkeys * sizeof *count);
    for (int r = 0; r < n; r++)
        count[key[r]]++;
    if (skip >= 0) /* nn.Embedding's padding_idx: that row gets no gradient */
        count[skip] = 0;
    int nu = 0, o = 0;
    for (int k = 0; k < nkeys; k++)
        if (count[k]) {
            keys[nu] = k;
            offsets[nu++] = o;
            int c = count[k];
            count[k] = o;
            o += c;
        }
    offsets[nu] = o;
    for (int r = 0; r < n; r++)
        if (key[r] != skip)
            rows[count[key[r]]++] = r;
    return nu;
}

static void upload(void *dst, const void *src, size_t bytes)
{
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

/* Pack C columns of B sequences each (column c: ids [B, T[c]], lengths
 * lens[c] or NULL) into the device buffers as one batch of C*B sequences;
 * with backward, also the row groups of the embedding backward pass; with
 * keys, the dropout keys of the C*B sequences. */
static void pack(gpu_model *g, const int32_t *const *col_ids, const int32_t *const *col_lens,
                 int C, int B, const int *T, int backward, const dropout_keys *keys)
{
    const bert_config *c = &g->c;
    int nseq = C * B;
    if (nseq + 1 > g->host_seqs) {
        g->host_seqs = nseq + 1;
        g->h_start = (int *)xrealloc(g->h_start, g->host_seqs * sizeof *g->h_start);
    }
    int max_len = 0;
    g->h_start[0] = 0;
    for (int k = 0; k < C; k++) {
        int limit = T[k] < bert_max_tokens(c) ? T[k] : bert_max_tokens(c);
        for (int b = 0; b < B; b++) {
            const int32_t *row = col_ids[k] + (size_t)b * T[k];
            int len = 0;
            if (col_lens && col_lens[k])
                len = col_lens[k][b];
            else
                while (len < T[k] && row[len] >= 0)
                    len++;
            if (len < 1 || len > limit)
                die("gpu: sequence %d of column %d has %d tokens (limits: 1 to %d)", b, k, len,
                    limit);
            if ((int64_t)g->h_start[k * B + b] + len > INT32_MAX / 4)
                die("gpu: too many tokens in one batch");
            g->h_start[k * B + b + 1] = g->h_start[k * B + b] + len;
            max_len = len > max_len ? len : max_len;
        }
    }
    int N = g->h_start[nseq];
    if (N > g->host_tokens) {
        g->host_tokens = N;
        size_t n = N + 1;
        g->h_ids = (int32_t *)xrealloc(g->h_ids, n * 4);
        g->h_pos = (int32_t *)xrealloc(g->h_pos, n * 4);
        g->h_epos = (int32_t *)xrealloc(g->h_epos, n * 4);
        g->h_seq = (int32_t *)xrealloc(g->h_seq, n * 4);
        g->h_keys = (int32_t *)xrealloc(g->h_keys, n * 4);
        g->h_offsets = (int32_t *)xrealloc(g->h_offsets, n * 4);
        g->h_rows = (int32_t *)xrealloc(g->h_rows, n * 4);
    }
    for (int k = 0; k < C; k++)
        for (int b = 0; b < B; b++) {
            int s = k * B + b, first = g->h_start[s], count = 0, pad = bert_pad_position(c);
            for (int t = 0; t < g->h_start[s + 1] - first; t++) {
                int32_t id = col_ids[k][(size_t)b * T[k] + t];
                if (id < 0 || id >= c->vocab_size)
                    die("gpu: token id %d at sequence %d of column %d, position %d, is outside "
                        "the vocabulary (%d)", id, b, k, t, c->vocab_size);
                g->h_ids[first + t] = id;
                g->h_pos[first + t] = t;
                /* as bert_forward: MPNet skips <pad> in counting positions */
                g->h_epos[first + t] = pad < 0 ? t : id == pad ? pad : pad + ++count;
                g->h_seq[first + t] = s;
            }
        }

    int Tp = (max_len + 7) & ~7; /* rows of 16-byte multiples for the products */
    reserve(g, N, (size_t)nseq * c->heads * Tp * Tp, (size_t)nseq * Tp * c->hidden);
    g->B = nseq;
    g->N = N;
    g->Tp = Tp;
    upload(g->ids, g->h_ids, (size_t)N * 4);
    upload(g->pos, g->h_pos, (size_t)N * 4);
    upload(g->epos, g->h_epos, (size_t)N * 4);
    upload(g->seq, g->h_seq, (size_t)N * 4);
    upload(g->start, g->h_start, (size_t)(nseq + 1) * 4);
    if (keys) {
        upload(g->drop_row, keys->row, (size_t)nseq * 4);
        upload(g->drop_col, keys->column, (size_t)nseq * 4);
        g->drop_seed = keys->seed;
        g->drop_step = keys->step;
    }
    if (backward) {
        g->n_word_keys = group_rows(g->h_ids, N, c->vocab_size, bert_pad_position(c), g->h_count, g->h_keys,
                                    g->h_offsets, g->h_rows);
        upload(g->word_keys, g->h_keys, (size_t)g->n_word_keys * 4);
        upload(g->word_offsets, g->h_offsets, (size_t)(g->n_word_keys + 1) * 4);
        upload(g->word_rows, g->h_rows, (size_t)N * 4);
        g->n_pos_keys = group_rows(g->h_epos, N, c->max_positions, bert_pad_position(c), g->h_count,
                                   g->h_keys, g->h_offsets, g->h_rows);
        upload(g->pos_keys, g->h_keys, (size_t)g->n_pos_keys * 4);
        upload(g->pos_offsets, g->h_offsets, (size_t)(g->n_pos_keys + 1) * 4);
        upload(g->pos_rows, g->h_rows, (size_t)N * 4);
    }
}

/* ---- the encoder ---------------------------------------------------------- */

/* The weights the products read, as T. */
template <class T> static const T *weights(const gpu_model *g)
{
    return g->precision == PRECISION_FP32 ? (const T *)(const void *)g->params
                                    : (const T *)(const void *)g->params_bf16;
}

/* Layer l's slice of a per-layer tensor p (stacked [L, ...]), as an offset. */
static size_t layer_offset(const gpu_model *g, int p, int l)
{
    return g->off[p] + (size_t)l * ((g->off[p + 1] - g->off[p]) / g->c.layers);
}

/* The dropout site `which` (dropout.h) of layer l in the last forward pass. */
static dropout_mask drop_site(const gpu_model *g, int l, int which)
{
    dropout_mask d = {};
    float p = which == DROP_ATTENTION ? g->p_attn : g->p_hidden;
    d.seed = g->drop_seed;
    d.step = g->drop_step;
    d.layer = l;
    d.site = which;
    d.threshold = dropout_threshold(p);
    d.scale = 1.0f / (1.0f - p);
    d.row = g->drop_row;
    d.column = g->drop_col;
    d.seq = g->seq;
    d.pos = g->pos;
    d.start = g->start;
    d.width = which == DROP_ATTENTION ? g->c.heads : g->c.hidden;
    d.Tp = g->Tp;
    return d;
}

/* out[n, m] = in[n, k] w[m, k]^T + bias[m]. */
template <class T>
static void matmul_forward(const gpu_model *g, T *out, const T *in, const T *w, const T *bias,
                           int n, int k, int m)
{
    matmul_args a = {};
    a.c = out;
    a.tc = act_type(g);
    a.a = in;
    a.b = w;
    a.tab = act_type(g);
    a.M = n;
    a.N = m;
    a.K = k;
    a.transB = 1;
    a.alpha = 1;
    a.bias = bias;
    a.batch = 1;
    matmul(a);
}

/* din = dout w (added to din when accumulate, else overwritten);
 * dw += dout^T in; db += column sums of dout. */
template <class T>
static void matmul_backward(const gpu_model *g, T *din, float *dw, float *db, const T *dout,
                            const T *in, const T *w, int n, int k, int m, int accumulate)
{
    matmul_args a = {};
    a.c = din;
    a.tc = act_type(g);
    a.a = dout;
    a.b = w;
    a.tab = act_type(g);
    a.M = n;
    a.N = k;
    a.K = m;
    a.alpha = 1;
    a.beta = accumulate ? 1.0f : 0.0f;
    a.batch = 1;
    matmul(a);

    matmul_args d = {};
    d.c = dw;
    d.tc = DT_F32;
    d.a = dout;
    d.b = in;
    d.tab = act_type(g);
    d.M = m;
    d.N = k;
    d.K = n;
    d.transA = 1;
    d.alpha = 1;
    d.beta = 1;
    d.batch = 1;
    matmul(d);
    column_sums<T>(db, g->partial, dout, (const T *)NULL, NULL, NULL, n, m);
}

/* One strided batched product over the B*heads attention blocks. */
static void attention_matmul(const gpu_model *g, void *c, elem_type tc, const void *a,
                             const void *b, int M, int N, int K, int transA, int transB,
                             float alpha)
{
    matmul_args m = {};
    m.c = c;
    m.tc = tc;
    m.a = a;
    m.b = b;
    m.tab = act_type(g);
    m.M = M;
    m.N = N;
    m.K = K;
    m.transA = transA;
    m.transB = transB;
    m.alpha = alpha;
    m.batch = g->B * g->c.heads;
    m.stride_a = (long long)M * K;
    m.stride_b = (long long)K * N;
    m.stride_c = (long long)M * N;
    matmul(m);
}

/* Multi-head self-attention of each sequence over its own tokens:
 * qkv [N, 3H] -> ctx [N, H]; la->att keeps the probabilities before dropout. */
template <class T> static void attention_forward(gpu_model *g, int l)
{
    const bert_config *c = &g->c;
    int H = c->hidden, heads = c->heads, d = H / heads, Tp = g->Tp, B = g->B;
    layer_buf *la = &g->layer[l];
    const T *qkv = (const T *)la->qkv;
    pad_heads<T>((T *)g->q_p, qkv, 3 * H, 0, g->start, B, heads, d, Tp);
    pad_heads<T>((T *)g->k_p, qkv, 3 * H, H, g->start, B, heads, d, Tp);
    pad_heads<T>((T *)g->v_p, qkv, 3 * H, 2 * H, g->start, B, heads, d, Tp);
    /* scores = q k^T / sqrt(d), in fp32 */
    attention_matmul(g, g->scores, DT_F32, g->q_p, g->k_p, Tp, Tp, d, 0, 1,
                     1.0f / sqrtf((float)d));
    rel_bias rb = {NULL, g->rel_bucket, g->rel_center};
    if (c->rel_buckets)
        rb.rel = weights<T>(g) + g->off[P_REL_BIAS];
    softmax_forward<T>((T *)la->att, g->scores, g->start, B, heads, Tp, rb);
    const void *probs = la->att;
    if (g->p_attn > 0) {
        dropout_apply<T, T>((T *)g->att_tmp, (const T *)la->att, (size_t)B * heads * Tp * Tp,
                            drop_site(g, l, DROP_ATTENTION));
        probs = g->att_tmp;
    }
    attention_matmul(g, g->ctx_p, act_type(g), probs, g->v_p, Tp, d, Tp, 0, 0, 1.0f);
    unpad_heads<T>((T *)la->ctx, H, 0, (const T *)g->ctx_p, g->seq, g->pos, g->N, heads, d, Tp);
}

/* dctx [N, H] -> dqkv [N, 3H] (overwritten). */
template <class T> static void attention_backward(gpu_model *g, int l, const T *dctx)
{
    const bert_config *c = &g->c;
    int H = c->hidden, heads = c->heads, d = H / heads, Tp = g->Tp, B = g->B;
    size_t natt = (size_t)B * heads * Tp * Tp;
    float scale = 1.0f / sqrtf((float)d);
    layer_buf *la = &g->layer[l];
    const T *qkv = (const T *)la->qkv;
    pad_heads<T>((T *)g->q_p, qkv, 3 * H, 0, g->start, B, heads, d, Tp);
    pad_heads<T>((T *)g->k_p, qkv, 3 * H, H, g->start, B, heads, d, Tp);
    pad_heads<T>((T *)g->v_p, qkv, 3 * H, 2 * H, g->start, B, heads, d, Tp);
    T *dctx_p = (T *)g->ctx_p;
    pad_heads<T>(dctx_p, dctx, H, 0, g->start, B, heads, d, Tp);

    /* d probabilities (after dropout) = dctx v^T, in fp32 */
    attention_matmul(g, g->scores, DT_F32, dctx_p, g->v_p, Tp, Tp, d, 0, 1, 1.0f);
    const void *probs = la->att;
    if (g->p_attn > 0) {
        dropout_mask d = drop_site(g, l, DROP_ATTENTION);
        dropout_apply<T, T>((T *)g->att_tmp, (const T *)la->att, natt, d);
        probs = g->att_tmp;
        dropout_apply<float, float>(g->scores, g->scores, natt, d);
    }
    /* dv = probs^T dctx */
    attention_matmul(g, g->dv_p, act_type(g), probs, dctx_p, Tp, d, Tp, 1, 0, 1.0f);
    /* d scores (overwrites att_tmp, which the product above has read) */
    softmax_backward<T>((T *)g->att_tmp, g->scores, (const T *)la->att, g->start, B, heads, Tp);
    /* MPNet: dS is the bias's gradient too; g->scores (read above) holds the partial sums */
    if (c->rel_buckets)
        rel_bias_backward<T>(g->grads + g->off[P_REL_BIAS], g->scores, (const T *)g->att_tmp,
                             g->start, g->rel_bucket, g->rel_center, B, heads, Tp,
                             c->rel_buckets);
    /* dq = dS k / sqrt(d), dk = dS^T q / sqrt(d) */
    attention_matmul(g, g->dq_p, act_type(g), g->att_tmp, g->k_p, Tp, d, Tp, 0, 0, scale);
    attention_matmul(g, g->dk_p, act_type(g), g->att_tmp, g->q_p, Tp, d, Tp, 1, 0, scale);
    T *dqkv = (T *)g->dqkv;
    unpad_heads<T>(dqkv, 3 * H, 0, (const T *)g->dq_p, g->seq, g->pos, g->N, heads, d, Tp);
    unpad_heads<T>(dqkv, 3 * H, H, (const T *)g->dk_p, g->seq, g->pos, g->N, heads, d, Tp);
    unpad_heads<T>(dqkv, 3 * H, 2 * H, (const T *)g->dv_p, g->seq, g->pos, g->N, heads, d, Tp);
}

template <class T> static void forward(gpu_model *g, int dropout)
{
    const bert_config *c = &g->c;
    int H = c->hidden, FF = c->intermediate, N = g->N;
    size_t nH = (size_t)N * H;
    const T *W = weights<T>(g);
    const size_t *off = g->off;
    g->p_hidden = dropout ? c->hidden_dropout : 0;
    g->p_attn = dropout ? c->attn_dropout : 0;

    embedding_forward<T>((T *)g->emb, g->ids, g->epos, N, W + off[P_WORD_EMB], W + off[P_POS_EMB],
                         c->type_vocab ? W + off[P_TYPE_EMB] : NULL, H);
    layernorm_forward<T>((T *)g->hidden[0], g->emb_mean, g->emb_rstd, (const T *)g->emb,
                         W + off[P_EMB_LN_W], W + off[P_EMB_LN_B], N, H, c->ln_eps);
    if (g->p_hidden > 0)
        dropout_apply<T, T>((T *)g->hidden[0], (const T *)g->hidden[0], nH,
                            drop_site(g, 0, DROP_EMBEDDINGS));

    for (int l = 0; l < c->layers; l++) {
        layer_buf *la = &g->layer[l];
#define LW(p) (W + layer_offset(g, p, l))
        const T *x = (const T *)g->hidden[l];
        matmul_forward<T>(g, (T *)la->qkv, x, LW(P_QKV_W), LW(P_QKV_B), N, H, 3 * H);
        attention_forward<T>(g, l);
        matmul_forward<T>(g, (T *)la->ln1_in, (const T *)la->ctx, LW(P_ATTN_OUT_W),
                          LW(P_ATTN_OUT_B), N, H, H);
        dropout_residual<T>((T *)la->ln1_in, x, nH, drop_site(g, l, DROP_ATTENTION_OUT),
                            g->p_hidden > 0);
        layernorm_forward<T>((T *)la->ln1_out, la->ln1_mean, la->ln1_rstd, (const T *)la->ln1_in,
                             LW(P_ATTN_LN_W), LW(P_ATTN_LN_B), N, H, c->ln_eps);
        matmul_forward<T>(g, (T *)la->ffn_pre, (const T *)la->ln1_out, LW(P_FFN_IN_W),
                          LW(P_FFN_IN_B), N, H, FF);
        gelu_forward<T>((T *)g->gelu, (const T *)la->ffn_pre, (size_t)N * FF);
        matmul_forward<T>(g, (T *)la->ln2_in, (const T *)g->gelu, LW(P_FFN_OUT_W),
                          LW(P_FFN_OUT_B), N, FF, H);
        dropout_residual<T>((T *)la->ln2_in, (const T *)la->ln1_out, nH,
                            drop_site(g, l, DROP_FFN_OUT), g->p_hidden > 0);
        layernorm_forward<T>((T *)g->hidden[l + 1], la->ln2_mean, la->ln2_rstd,
                             (const T *)la->ln2_in, LW(P_FFN_LN_W), LW(P_FFN_LN_B), N, H,
                             c->ln_eps);
#undef LW
    }
}

/* Parameter gradients (fp32, added into g->grads) from the gradient of the
 * last hidden states in g->dhidden, as bert_backward. */
template <class T> static void backward(gpu_model *g)
{
    const bert_config *c = &g->c;
    int N = g->N, H = c->hidden, FF = c->intermediate;
    size_t nH = (size_t)N * H;
    const T *W = weights<T>(g);
    float *G = g->grads;
    const size_t *off = g->off;
    T *dh = (T *)g->dhidden, *g1 = (T *)g->g1, *g2 = (T *)g->g2, *dffn = (T *)g->dffn;

    for (int l = c->layers - 1; l >= 0; l--) {
        layer_buf *la = &g->layer[l];
#define LW(p) (W + layer_offset(g, p, l))
#define LG(p) (G + layer_offset(g, p, l))
        /* Output LayerNorm; g1 = d ln2_in, which also flows to ln1_out. */
        layernorm_backward<T>(g1, LG(P_FFN_LN_W), LG(P_FFN_LN_B), g->partial, dh,
                              (const T *)la->ln2_in, la->ln2_mean, la->ln2_rstd, LW(P_FFN_LN_W),
                              N, H);
        const T *d_ffn_out = g1;
        if (g->p_hidden > 0) {
            dropout_apply<T, T>(g2, g1, nH, drop_site(g, l, DROP_FFN_OUT));
            d_ffn_out = g2;
        }
        gelu_forward<T>((T *)g->gelu, (const T *)la->ffn_pre, (size_t)N * FF);
        matmul_backward<T>(g, dffn, LG(P_FFN_OUT_W), LG(P_FFN_OUT_B), d_ffn_out,
                           (const T *)g->gelu, LW(P_FFN_OUT_W), N, FF, H, 0);
        gelu_backward<T>(dffn, (const T *)la->ffn_pre, (size_t)N * FF);
        matmul_backward<T>(g, g1, LG(P_FFN_IN_W), LG(P_FFN_IN_B), dffn, (const T *)la->ln1_out,
                           LW(P_FFN_IN_W), N, H, FF, 1);
        /* Attention LayerNorm; dh = d ln1_in, which also flows to the layer input. */
        layernorm_backward<T>(dh, LG(P_ATTN_LN_W), LG(P_ATTN_LN_B), g->partial, g1,
                              (const T *)la->ln1_in, la->ln1_mean, la->ln1_rstd, LW(P_ATTN_LN_W),
                              N, H);
        const T *d_attn_out = dh;
        if (g->p_hidden > 0) {
            dropout_apply<T, T>(g2, dh, nH, drop_site(g, l, DROP_ATTENTION_OUT));
            d_attn_out = g2;
        }
        matmul_backward<T>(g, g1, LG(P_ATTN_OUT_W), LG(P_ATTN_OUT_B), d_attn_out,
                           (const T *)la->ctx, LW(P_ATTN_OUT_W), N, H, H, 0);
        attention_backward<T>(g, l, g1);
        matmul_backward<T>(g, dh, LG(P_QKV_W), LG(P_QKV_B), (const T *)g->dqkv,
                           (const T *)g->hidden[l], LW(P_QKV_W), N, H, 3 * H, 1);
#undef LW
#undef LG
    }

    const T *d_emb_out = dh;
    if (g->p_hidden > 0) {
        dropout_apply<T, T>(g2, dh, nH, drop_site(g, 0, DROP_EMBEDDINGS));
        d_emb_out = g2;
    }
    layernorm_backward<T>(g1, G + off[P_EMB_LN_W], G + off[P_EMB_LN_B], g->partial, d_emb_out,
                          (const T *)g->emb, g->emb_mean, g->emb_rstd, W + off[P_EMB_LN_W], N, H);
    scatter_rows<T>(G + off[P_WORD_EMB], g1, g->word_keys, g->word_offsets, g->word_rows,
                    g->n_word_keys, H);
    scatter_rows<T>(G + off[P_POS_EMB], g1, g->pos_keys, g->pos_offsets, g->pos_rows,
                    g->n_pos_keys, H);
    if (c->type_vocab)
        column_sums<T>(G + off[P_TYPE_EMB], g->partial, g1, (const T *)NULL, NULL, NULL, N, H);
}

/* Pooling of the last hidden states into pooled [nseq, H], and its backward
 * pass from dpooled into g->dhidden, for the nseq sequences of the last
 * forward pass. */
template <class T> static void pool(gpu_model *g, pooling_mode mode, int nseq, float *pooled)
{
    pool_forward<T>(pooled, (const T *)g->hidden[g->c.layers], g->start, nseq, g->c.hidden, mode);
}

template <class T>
static void pool_back(gpu_model *g, pooling_mode mode, int nseq, const float *dpooled)
{
    pool_backward<T>((T *)g->dhidden, dpooled, (const T *)g->hidden[g->c.layers], g->start, nseq,
                     g->c.hidden, mode);
}

/* Run fn<float> or fn<bf16> as the model's precision says. */
#define BY_PRECISION(g, fn, ...)                                                                 \
    ((g)->precision == PRECISION_FP32 ? fn<float>(__VA_ARGS__) : fn<bf16>(__VA_ARGS__))

/* ---- the C API ------------------------------------------------------------ */

extern "C" int gpu_available(char *why, size_t n)
{
    char buf[512];
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    int ok = 0;
    if (e != cudaSuccess) {
        snprintf(buf, sizeof buf, "no CUDA device: %s", cudaGetErrorString(e));
        cudaGetLastError(); /* clear it */
    } else if (count < 1) {
        snprintf(buf, sizeof buf, "no CUDA device");
    } else {
        cudaDeviceProp p;
        int dev = 0;
        cudaGetDevice(&dev); /* the rank's GPU under MPI (comm_use_gpu) */
        e = cudaGetDeviceProperties(&p, dev);
        if (e != cudaSuccess) {
            snprintf(buf, sizeof buf, "no CUDA device: %s", cudaGetErrorString(e));
            cudaGetLastError();
        } else if (p.major < 9) {
            snprintf(buf, sizeof buf, "%.200s has compute capability %d.%d; the CUDA backend needs "
                     "9.0 or newer", p.name, p.major, p.minor);
        } else {
            snprintf(buf, sizeof buf, "%.200s, compute capability %d.%d, %.0f GiB", p.name, p.major,
                     p.minor, p.totalGlobalMem / 1073741824.0);
            ok = 1;
        }
    }
    if (why && n)
        snprintf(why, n, "%s", buf);
    return ok;
}

static void refresh_bf16(gpu_model *g)
{
    if (g->params_bf16)
        to_bf16_device(g->params_bf16, g->params, g->nparams);
}

static void gpu_close(encoder *e)
{
    gpu_model *g = (gpu_model *)e;
    cuda_free(g->params);
    cuda_free(g->params_bf16);
    cuda_free(g->grads);
    cuda_free(g->m);
    cuda_free(g->v);
    cuda_free(g->ranges);
    cuda_free(e->pooled);
    cuda_free(e->pooled_grad);
    cuda_free(g->token_mem);
    cuda_free(g->att_mem);
    free(g->h_ids);
    free(g->h_pos);
    free(g->h_epos);
    cuda_free(g->rel_bucket);
    free(g->h_seq);
    free(g->h_keys);
    free(g->h_offsets);
    free(g->h_rows);
    free(g->h_start);
    free(g->h_count);
    free(g->hidden);
    free(g->layer);
    free(g);
}

static void gpu_embed(encoder *e, const int32_t *ids, const int32_t *lens, int64_t B, int T,
                      int normalize, float *out)
{
    gpu_model *g = (gpu_model *)e;
    if (B < 1 || T < 1)
        die("gpu_embed: %lld sequences of %d tokens", (long long)B, T);
    int H = g->c.hidden;
    for (int64_t b0 = 0; b0 < B; b0 += g->embed_batch) {
        int nb = B - b0 < g->embed_batch ? (int)(B - b0) : g->embed_batch;
        const int32_t *chunk_ids = ids + (size_t)b0 * T, *chunk_lens = lens ? lens + b0 : NULL;
        pack(g, &chunk_ids, &chunk_lens, 1, nb, &T, 0, NULL);
        BY_PRECISION(g, forward, g, 0);
        BY_PRECISION(g, pool, g, g->pooling, nb, g->pooled);
        if (normalize)
            l2_normalize_rows(g->pooled, nb, H);
        CUDA_CHECK(cudaMemcpy(out + (size_t)b0 * H, g->pooled, (size_t)nb * H * sizeof *out,
                              cudaMemcpyDeviceToHost));
    }
}

static void need_training(const gpu_model *g, const char *fn)
{
    if (!g->training)
        die("%s: the encoder was opened without training", fn);
}

static void gpu_forward(encoder *e, const int32_t *ids, const int32_t *lens, int B, int T,
                        const dropout_keys *keys, float *pooled)
{
    gpu_model *g = (gpu_model *)e;
    need_training(g, "encoder_forward");
    pack(g, &ids, &lens, 1, B, &T, 1, keys);
    BY_PRECISION(g, forward, g, keys != NULL);
    BY_PRECISION(g, pool, g, g->pooling, B, pooled);
}

static void gpu_backward(encoder *e, const float *dpooled)
{
    gpu_model *g = (gpu_model *)e;
    need_training(g, "encoder_backward");
    BY_PRECISION(g, pool_back, g, g->pooling, g->B, dpooled);
    BY_PRECISION(g, backward, g);
    CUDA_CHECK(cudaDeviceSynchronize());
}

static void gpu_download_floats(const encoder *, float *host, const float *dev, size_t n)
{
    gpu_download(host, dev, n);
}

static void gpu_upload_floats(encoder *, float *dev, const float *host, size_t n)
{
    upload(dev, host, n * sizeof *host);
}

static void gpu_zero_grads(encoder *e)
{
    gpu_model *g = (gpu_model *)e;
    need_training(g, "encoder_zero_grads");
    CUDA_CHECK(cudaMemset(g->grads, 0, g->nparams * 4));
}

/* The norm runs over the whole gradient buffer: outside the trainable ranges
 * (the pooler) the gradients stay zero, as encoder_zero_grads leaves them. */
static double gpu_optimizer_step(encoder *e, const adam_config *adam, double lr,
                                 double max_grad_norm, long step)
{
    gpu_model *g = (gpu_model *)e;
    need_training(g, "encoder_optimizer_step");
    double norm = grad_norm_device(g->grads, g->nparams);
    if (!std::isfinite(norm))
        return norm;
    adam_step_device(adam, g->ranges, g->nranges, g->max_range, g->params, g->grads, g->m, g->v,
                     g->params_bf16, step, lr, grad_clip(norm, max_grad_norm));
    CUDA_CHECK(cudaDeviceSynchronize());
    return norm;
}

static float *device_buffer(const gpu_model *g, encoder_buffer which)
{
    if (which != BUF_PARAMS)
        need_training(g, "encoder_get");
    return which == BUF_PARAMS ? g->params : which == BUF_GRADS ? g->grads
         : which == BUF_MOMENT1 ? g->m : g->v;
}

static void gpu_get(const encoder *e, encoder_buffer which, float *out)
{
    const gpu_model *g = (const gpu_model *)e;
    CUDA_CHECK(cudaMemcpy(out, device_buffer(g, which), g->nparams * 4, cudaMemcpyDeviceToHost));
}

static void gpu_set(encoder *e, encoder_buffer which, const float *in)
{
    gpu_model *g = (gpu_model *)e;
    upload(device_buffer(g, which), in, g->nparams * 4);
    if (which == BUF_PARAMS)
        refresh_bf16(g);
    CUDA_CHECK(cudaDeviceSynchronize());
}

static const encoder_ops gpu_ops = {
    gpu_close, gpu_embed, gpu_forward, gpu_backward, gpu_download_floats, gpu_upload_floats,
    gpu_zero_grads, gpu_optimizer_step, gpu_get, gpu_set,
};

extern "C" encoder *encoder_gpu_open(const bert_model *m, const encoder_settings *s)
{
    char why[256];
    const bert_config *c = &m->cfg;
    if (!gpu_available(why, sizeof why))
        die("gpu: %s", why);
    if (c->hidden % c->heads)
        die("gpu: hidden size %d is not a multiple of %d heads", c->hidden, c->heads);
    gpu_model *g = (gpu_model *)xcalloc(1, sizeof *g);
    encoder *e = &g->base;
    e->ops = &gpu_ops;
    e->model = m;
    e->on_gpu = 1;
    encoder_init_settings(e, s);
    g->c = *c;
    g->pooling = m->pooling;
    g->precision = s->precision;
    g->training = s->training;
    g->embed_batch = EMBED_CHUNK; /* the GPU wants larger passes than the CPU's batch_size */
    bert_param_offsets(c, g->off);
    g->nparams = e->nparams;
    g->params = (float *)cuda_alloc(g->nparams * 4, "the weights");
    CUDA_CHECK(cudaMemset(g->params, 0, g->nparams * 4));
    upload(g->params, m->params, m->nparams * 4);
    if (g->precision == PRECISION_BF16)
        g->params_bf16 = (bf16 *)cuda_alloc(g->nparams * sizeof(bf16), "the bf16 weights");
    refresh_bf16(g);
    e->params = g->params;
    if (s->training) {
        g->grads = (float *)cuda_alloc(g->nparams * 4, "the gradients");
        g->m = (float *)cuda_alloc(g->nparams * 4, "the first moments");
        g->v = (float *)cuda_alloc(g->nparams * 4, "the second moments");
        CUDA_CHECK(cudaMemset(g->grads, 0, g->nparams * 4));
        CUDA_CHECK(cudaMemset(g->m, 0, g->nparams * 4));
        CUDA_CHECK(cudaMemset(g->v, 0, g->nparams * 4));
        e->grads = g->grads;
        size_t pooled_bytes = (size_t)e->max_pooled * c->hidden * 4;
        e->pooled = (float *)cuda_alloc(pooled_bytes, "the pooled embeddings");
        e->pooled_grad = (float *)cuda_alloc(pooled_bytes, "the pooled gradients");
        adam_range *ar = (adam_range *)xmallocarray(e->nranges, sizeof *ar);
        for (int i = 0; i < e->nranges; i++) {
            ar[i].offset = e->ranges[i].offset;
            ar[i].numel = e->ranges[i].numel;
            ar[i].decay = e->ranges[i].decay;
            g->max_range = e->ranges[i].numel > g->max_range ? e->ranges[i].numel : g->max_range;
        }
        g->ranges = (adam_range *)cuda_alloc(e->nranges * sizeof *ar, "the optimiser ranges");
        upload(g->ranges, ar, e->nranges * sizeof *ar);
        g->nranges = e->nranges;
        free(ar);
        int nkeys = c->vocab_size > c->max_positions ? c->vocab_size : c->max_positions;
        g->h_count = (int *)xcalloc(nkeys, sizeof *g->h_count);
    }
    if (c->rel_buckets) { /* bucket of every relative position a sequence can have */
        g->rel_center = bert_max_tokens(c) + 7;
        int span = 2 * g->rel_center + 1;
        int *b = (int *)xmallocarray(span, sizeof *b);
        for (int x = 0; x < span; x++)
            b[x] = bert_rel_bucket(x - g->rel_center);
        g->rel_bucket = (int *)cuda_alloc(span * sizeof *b, "the relative position buckets");
        upload(g->rel_bucket, b, span * sizeof *b);
        free(b);
    }
    g->hidden = (void **)xcalloc(c->layers + 1, sizeof *g->hidden);
    g->layer = (layer_buf *)xcalloc(c->layers, sizeof *g->layer);
    CUDA_CHECK(cudaDeviceSynchronize());
    return e;
}

/* bf16 to float on the host: the bf16 bits are the top half of the float's. */
static void download_as_float(float *dst, const void *src, size_t n, precision p)
{
    if (p == PRECISION_FP32) {
        CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof *dst, cudaMemcpyDeviceToHost));
        return;
    }
    uint16_t *bits = (uint16_t *)xmallocarray(n, sizeof *bits);
    CUDA_CHECK(cudaMemcpy(bits, src, n * sizeof *bits, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)bits[i] << 16;
        memcpy(&dst[i], &u, sizeof u);
    }
    free(bits);
}

extern "C" void gpu_encoder_hidden(const encoder *e, int layer, float *out)
{
    const gpu_model *g = (const gpu_model *)e;
    if (!e->on_gpu)
        die("gpu_encoder_hidden: not a GPU encoder");
    need_training(g, "gpu_encoder_hidden");
    if (layer < 0 || layer > g->c.layers)
        die("gpu_encoder_hidden: no layer %d", layer);
    if (!g->N)
        die("gpu_encoder_hidden: no forward pass yet");
    download_as_float(out, g->hidden[layer], (size_t)g->N * g->c.hidden, g->precision);
}

extern "C" void gpu_download(float *dst, const float *device_src, size_t n)
{
    CUDA_CHECK(cudaMemcpy(dst, device_src, n * sizeof *dst, cudaMemcpyDeviceToHost));
}
