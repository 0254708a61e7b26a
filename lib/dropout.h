/* dropout.h - dropout masks as a pure function of position, shared by the CPU
 * reference (bert.c) and the CUDA kernels (lib/cuda), which include this
 * header, so that both devices draw bitwise the same masks.
 *
 * Whether element `index` of one dropout site of one sequence is kept is a
 * counter-based hash of
 *
 *     (seed, optimizer step, global row in the batch, column, layer, site, index)
 *
 * compared with an integer threshold: nothing depends on how a batch is cut
 * into chunks, on which device or process computes it, on thread scheduling,
 * or on what was drawn before (a resumed run needs no generator state).
 * The element index within a site is t * H + j for the hidden-state sites
 * (token t, feature j) and (h * n + i) * n + j for the attention
 * probabilities (head h, query i, key j, sequence of n tokens).
 *
 * The hash is SplitMix64's finaliser (Steele, Lea and Flood 2014) chained over
 * the key words; the element's word is the top 32 bits of the finaliser of
 * key + index * golden ratio, i.e. SplitMix64's own counter stream. */
#ifndef BP_DROPOUT_H
#define BP_DROPOUT_H

#include <stdint.h>

#ifdef __CUDACC__
#define DROPOUT_FN static inline __host__ __device__
#else
#define DROPOUT_FN static inline
#endif

/* The places a mask is drawn, per layer (the embeddings' with layer 0). */
enum dropout_site {
    DROP_EMBEDDINGS,     /* after the embedding LayerNorm */
    DROP_ATTENTION,      /* the attention probabilities */
    DROP_ATTENTION_OUT,  /* after the attention-output dense layer */
    DROP_FFN_OUT         /* after the feed-forward output dense layer */
};

/* What a training forward pass needs to draw its masks: the run's dropout
 * seed, the optimizer step (1-based) and, for each sequence of the pass, its
 * row in the whole batch and its column (anchor 0, positive 1, ...). */
typedef struct {
    uint64_t seed;
    uint64_t step;
    const int32_t *row;    /* [sequences] */
    const int32_t *column; /* [sequences] */
} dropout_keys;

DROPOUT_FN uint64_t dropout_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The key of one site of one sequence: everything but the element index. */
DROPOUT_FN uint64_t dropout_key(uint64_t seed, uint64_t step, uint32_t row, uint32_t column,
                                uint32_t layer, uint32_t site)
{
    uint64_t h = dropout_mix(seed + 0x9e3779b97f4a7c15ULL);
    h = dropout_mix(h ^ step);
    h = dropout_mix(h ^ ((uint64_t)row << 32 | column));
    return dropout_mix(h ^ ((uint64_t)layer << 32 | site));
}

/* Drop probability p (0 <= p < 1) as a threshold on 32-bit words. */
DROPOUT_FN uint32_t dropout_threshold(float p)
{
    return (uint32_t)((double)p * 4294967296.0);
}

/* 1 when the element is kept. */
DROPOUT_FN int dropout_keep(uint64_t key, uint64_t index, uint32_t threshold)
{
    return (uint32_t)(dropout_mix(key + index * 0x9e3779b97f4a7c15ULL) >> 32) >= threshold;
}

#endif
