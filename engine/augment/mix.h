/* mix.h - the image arithmetic of the recipes, pure functions (every random choice is an argument):
 *
 *   DiffuseMix (released code, augment/utils.py: combine_images + blend_images_with_resize):
 *     mask m (20 px linear ramp between the halves), hybrid H = (1-m) I + m G, fractal blend
 *     A = (1-lambda) H + lambda F, truncation to uint8; the degenerate-output check of step 6.
 *   DiffCoRe-Mix (paper: "pixel and patch levels"; no released code, constants ours):
 *     pixel mix X = lam R + (1-lam) G; patch mix on a P x P grid.
 *
 * Exact arithmetic (docs/RECIPES.md repeats it):
 *   hybrid: i = (float)I / 255.0f and g = (float)G / 255.0f in float32 (numpy float32 array / 255);
 *     m in float64 as numpy.linspace makes it (m_j = j * (1.0/19), m_19 = 1.0); the mix
 *     v = (1 - m) * i + m * g in float64 (float64 mask times float32 array promotes); then
 *     v * 255.0 in float64, clipped to [0, 255], truncated toward zero (astype(uint8)).
 *   blend: h = (float)H, f = (float)F; v = (float)(1 - lambda) * h + (float)lambda * f, every
 *     operation in float32 (numpy: float32 array times a Python float stays float32); clipped to
 *     [0, 255]; truncated (code) or rounded half up (flag).
 *   pixel mix: float32 v = lam * r + (1 - lam) * g, lam and 1 - lam rounded to float32 first;
 *     rounded half up (ours; truncation behind the flag for symmetry with DiffuseMix).
 *   patch mix: a copy, no arithmetic.
 */
#ifndef DA_AUGMENT_MIX_H
#define DA_AUGMENT_MIX_H

#include <stdbool.h>
#include <stdint.h>

#include "diffaug.h"
#include "image.h"

/* ---- DiffuseMix -------------------------------------------------------------------------------- */

typedef enum da_orient {
    DA_ORIENT_VERTICAL = 0,   /* halves stacked top/bottom: the mask varies along rows */
    DA_ORIENT_HORIZONTAL = 1, /* halves side by side: the mask varies along columns */
} da_orient;

#define DA_DMIX_RAMP 20        /* blend_width of the released code */
#define DA_DMIX_LAMBDA 0.20    /* fractal weight of the released code */

typedef struct da_hybrid_opts {
    bool binary_mask;     /* paper/patent variant: hard edge at n/2 instead of the 20 px ramp */
    bool generated_first; /* paper variant: the generated image on top/left (code: never) */
} da_hybrid_opts;

/* The mask along one axis of length n: binary = false gives the released code's
 *   m[k] = 0 for k < z, (k - z) * (1.0/19) for z <= k < z + 20 (the last of the 20 exactly 1.0),
 *   1 for k >= z + 20, with z = n/2 - 10 (integer division; for odd n the code would fail with a
 *   shape mismatch, we simply fill the extra element with 1; for n < 20 the ramp is cut at the
 *   ends). binary = true gives m[k] = (k >= n/2). */
void da_dmix_mask(int n, bool binary, double *m);

/* H = (1-m) I + m G with m along rows (vertical) or columns (horizontal); I and G of equal size.
 * generated_first swaps the roles of I and G in the mask (m -> 1 - m). H is allocated here. */
da_status da_dmix_hybrid(const da_image *I, const da_image *G, da_orient orient, const da_hybrid_opts *opts,
                         da_image *H, da_error *err);

/* A = (1 - lambda) H + lambda F per channel, float32 as above; round = false truncates (code),
 * true rounds half up. H and F of equal size (the caller resizes F first). A is allocated here. */
da_status da_dmix_blend(const da_image *H, const da_image *F, float lambda, bool round, da_image *A, da_error *err);

/* Step 6: luminance as Pillow's convert("L") (ITU-R 601-2, L = (19595 R + 38470 G + 7471 B + 32768)
 * >> 16); degenerate when mean L < min_mean or > max_mean or the variance of L is below min_var. */
typedef struct da_degenerate_opts {
    double min_mean;  /* default 5 */
    double max_mean;  /* default 250 */
    double min_var;   /* default 1.0 (a standard deviation under one grey level = a flat image) */
} da_degenerate_opts;
void da_degenerate_opts_init(da_degenerate_opts *o);
uint8_t da_luma601(const uint8_t *rgb);
/* Returns true when degenerate; *why (may be NULL) is a static string: "too dark", "too bright",
 * "flat" or NULL. mean and var (may be NULL) receive the statistics. */
bool da_is_degenerate(const da_image *im, const da_degenerate_opts *o, const char **why, double *mean, double *var);

/* ---- DiffCoRe-Mix ------------------------------------------------------------------------------ */

/* X = lam R + (1 - lam) G (R real, G generated, equal sizes). X is allocated here. */
da_status da_pixel_mix(const da_image *R, const da_image *G, float lam, bool truncate, da_image *X, da_error *err);

#define DA_PATCH_MAX_P 64 /* largest grid side accepted */

/* Number of cells replaced: floor(r * P * P + 0.5), clamped to [0, P*P] (round half up). */
int da_patch_count(int P, double r);
/* Cell (row i, column j) of a P x P grid over a w x h image spans columns
 * [floor(j w / P), floor((j+1) w / P)) and rows [floor(i h / P), floor((i+1) h / P)), so the cells
 * tile any size exactly. cells[i * P + j] != 0 takes that cell from G, otherwise from R. */
da_status da_patch_mix(const da_image *R, const da_image *G, int P, const uint8_t *cells, da_image *X, da_error *err);

/* Choose which cells: a partial Fisher-Yates shuffle of 0..P*P-1 driven by the 32-bit words
 * words[0..count-1] (the caller draws them from its stream: word t picks uniformly among the
 * P*P - t remaining cells as floor(word * (P*P - t) / 2^32)). Sets cells[] to 0/1; does nothing when P is outside [1, DA_PATCH_MAX_P]. */
void da_patch_choose(int P, int count, const uint32_t *words, uint8_t *cells);

#endif
