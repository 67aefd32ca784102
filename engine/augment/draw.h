/* draw.h - the counter-based random draws of the augmentation recipes: Philox4x32-10
 * (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; Random123's philox4x32 with
 * 10 rounds, checked against its known-answer vectors) keyed by the global seed, with the counter
 * built from (image id, prompt/attempt index, draw purpose, block index).
 *
 * The core is the engine's da_philox4x32_10 (rng.h); the stream layout below is what the augment
 * code relies on and must be kept.
 *
 * Stream layout (documented in docs/RECIPES.md):
 *   key     = (seed & 0xffffffff, seed >> 32)
 *   counter = (block, (purpose << 24) | index, image_id & 0xffffffff, image_id >> 32)
 * where block counts 4-word output blocks within the stream, index < 2^24 is the prompt or attempt
 * index and purpose < 256 says what the numbers are for. Two streams with any coordinate different
 * never share a counter, so results never depend on thread count, shard or order.
 */
#ifndef DA_AUGMENT_DRAW_H
#define DA_AUGMENT_DRAW_H

#include <stdint.h>

/* What a stream is for: a separate purpose gives an independent stream for the same (image, index). */
typedef enum da_draw_purpose {
    DA_DRAW_NOISE_INIT = 1,     /* initial latent noise */
    DA_DRAW_NOISE_STEP = 2,     /* ancestral / per-step noise */
    DA_DRAW_PROMPT = 3,         /* template or prompt choice */
    DA_DRAW_ORIENT = 4,         /* DiffuseMix mask orientation / half order */
    DA_DRAW_FRACTAL_PICK = 5,   /* which fractal image DiffuseMix blends */
    DA_DRAW_MIX = 6,            /* DiffCoRe-Mix mixing: kind, ratio, partner, cells */
    DA_DRAW_FRACTAL_GEN = 7,    /* procedural fractal generation (image id = fractal index) */
    DA_DRAW_DATASET_GEN = 8,    /* synthetic dataset generation (mkdataset) */
} da_draw_purpose;

#define DA_DRAW_MAX_INDEX ((1u << 24) - 1)

typedef struct da_draw {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4];
    int pos; /* next unused word of buf; 4 = empty */
} da_draw;


/* Start the stream of (seed, image_id, index, purpose) at block 0. index is taken mod 2^24. */
void da_draw_init(da_draw *d, uint64_t seed, uint64_t image_id, uint32_t index, da_draw_purpose purpose);
/* The next 32 random bits of the stream. */
uint32_t da_draw_u32(da_draw *d);
/* Uniform double in [0, 1) with 53 random bits (two words). */
double da_draw_uniform(da_draw *d);
/* Uniform double in [lo, hi). */
double da_draw_range(da_draw *d, double lo, double hi);
/* Uniform integer in [0, n) without modulo bias (Lemire's multiply-and-reject); n > 0. */
uint32_t da_draw_below(da_draw *d, uint32_t n);
/* Standard normal (Box-Muller on two uniforms; uses both words pairs, returns one value). */
double da_draw_normal(da_draw *d);

#endif
