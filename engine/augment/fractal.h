/* fractal.h - the procedural fractal set DiffuseMix blends into its hybrids (METHODS.md section 1).
 *
 * Upstream: DiffuseMix's released code downloads a folder of fractal-art images (PixMix's set) and
 * blends one at random; we generate coloured IFS "fractal flames" instead (Draves & Reckase, "The
 * Fractal Flame Algorithm", 2003): the chaos game over 2-8 random contractive affine maps, each
 * followed by a blend of the identity and one non-linear variation (sinusoidal, spherical, swirl,
 * horseshoe), colour-index averaging into a random palette, log-density tone mapping with gamma.
 *
 * Determinism: image k depends only on (seed, k, size, iterations, gamma, thresholds): its draws
 * come from the stream (seed, image id = k, index = attempt, DA_DRAW_FRACTAL_GEN), so neither the
 * set size N nor the thread count changes any image. A draw whose image covers too little of the
 * frame or is too flat in colour is rejected and redrawn with the next attempt index.
 */
#ifndef DA_AUGMENT_FRACTAL_H
#define DA_AUGMENT_FRACTAL_H

#include <stdint.h>

#include "diffaug.h"
#include "image.h"

typedef struct da_fractal_opts {
    int size;               /* output side in pixels (square); default 256 */
    uint64_t seed;          /* global seed; default 0 */
    int iters_per_pixel;    /* chaos-game samples per output pixel; default 16 */
    double gamma;           /* tone-mapping gamma; default 2.2 */
    double min_coverage;    /* reject below this fraction of lit pixels; default 0.10 */
    double min_color_std;   /* reject below this RGB standard deviation (0..255 scale); default 20 */
    int max_attempts;       /* redraws before giving up; default 64 */
} da_fractal_opts;

void da_fractal_opts_init(da_fractal_opts *o);

typedef struct da_fractal_info {
    int attempts;        /* 1 + the number of rejected draws */
    int n_maps;          /* affine maps of the accepted draw */
    double coverage;     /* fraction of pixels whose brightest channel is >= DA_FRACTAL_LIT */
    double color_std;    /* sqrt of the mean over R,G,B of the per-channel pixel variance */
} da_fractal_info;

/* A pixel is "lit" when its brightest channel reaches this value (out of 255). */
#define DA_FRACTAL_LIT 16

/* The coverage and colour statistics as defined above (also used by the tests' own checks). */
void da_fractal_stats(const da_image *im, double *coverage, double *color_std);

/* Render fractal k. out is allocated here (size x size). info may be NULL.
 * Fails with DA_ERR_INVALID_ARG on bad options and DA_ERR_UNSUPPORTED when max_attempts draws were
 * all degenerate (which the defaults make practically impossible at sizes >= 32). */
da_status da_fractal_render(const da_fractal_opts *o, uint64_t k, da_image *out, da_fractal_info *info,
                            da_error *err);

/* "fractal_%05llu.png" */
void da_fractal_name(uint64_t k, char *buf, size_t cap);

/* Write fractals first..first+n-1 into dir (created if missing) as PNG files named by
 * da_fractal_name, each atomically; OpenMP over images. Stops at the first error (the files already
 * written stay). */
da_status da_fractal_write_set(const char *dir, uint64_t first, int n, const da_fractal_opts *o, da_error *err);

#endif
