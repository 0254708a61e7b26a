/* rng.h - the seeded generator behind shuffling, dropout and initialisation
 * (xoshiro256**, seeded through splitmix64).  Its whole state is four words,
 * so checkpoints can store it and a resumed run continues bit-identically. */
#ifndef BP_RNG_H
#define BP_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_t;

void rng_seed(rng_t *r, uint64_t seed);
uint64_t rng_next(rng_t *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(rng_t *r);
/* Uniform integer in [0, n), without modulo bias. */
uint64_t rng_below(rng_t *r, uint64_t n);
/* Standard normal (Box-Muller; one draw per call, for reproducibility). */
double rng_normal(rng_t *r);
/* In-place Fisher-Yates shuffle of n indices. */
void rng_shuffle(rng_t *r, int64_t *a, int64_t n);

#endif
