/* mix.c - DiffuseMix hybrid/blend (released code's combine_images and blend_images_with_resize,
 * arithmetic reproduced operation by operation, see mix.h), DiffuseMix's degenerate check and
 * DiffCoRe-Mix's pixel and patch mixing (ours). */
#include "augment/mix.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Float expressions must stay exactly as written (no fused multiply-add) to match the numpy code
 * bit for bit before truncation: the Makefile's -std=c11 implies -ffp-contract=off in GCC, and each
 * product is stored in a named variable before the sum. */

static da_status same_size(const char *what, const da_image *a, const da_image *b, da_error *err) {
    if (!a || !b || !a->data || !b->data)
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: missing image", what);
    if (a->w != b->w || a->h != b->h)
        return da_err_set(err, DA_ERR_SHAPE, "%s: images differ in size (%dx%d vs %dx%d)", what, a->w, a->h, b->w, b->h);
    return DA_OK;
}

void da_dmix_mask(int n, bool binary, double *m) {
    if (binary) {
        for (int k = 0; k < n; k++) m[k] = k >= n / 2 ? 1.0 : 0.0;
        return;
    }
    int z = n / 2 - DA_DMIX_RAMP / 2;
    const double step = 1.0 / (DA_DMIX_RAMP - 1); /* numpy.linspace: arange(20) * (delta / div) */
    for (int k = 0; k < n; k++) {
        int j = k - z;
        m[k] = j < 0 ? 0.0 : j >= DA_DMIX_RAMP - 1 ? 1.0 : j * step;
    }
}

da_status da_dmix_hybrid(const da_image *I, const da_image *G, da_orient orient, const da_hybrid_opts *opts,
                         da_image *H, da_error *err) {
    da_status st = same_size("DiffuseMix hybrid", I, G, err);
    if (st != DA_OK) return st;
    if (orient != DA_ORIENT_VERTICAL && orient != DA_ORIENT_HORIZONTAL)
        return da_err_set(err, DA_ERR_INVALID_ARG, "DiffuseMix hybrid: bad orientation %d", (int)orient);
    bool binary = opts && opts->binary_mask, swap = opts && opts->generated_first;
    int w = I->w, h = I->h, n = orient == DA_ORIENT_VERTICAL ? h : w;
    double *m = da_malloc((size_t)n * sizeof *m, err);
    if (!m) return DA_ERR_NOMEM;
    da_dmix_mask(n, binary, m);
    if (swap)
        for (int k = 0; k < n; k++) m[k] = 1.0 - m[k];
    da_image out = {0};
    if ((st = da_image_alloc(&out, w, h, err)) != DA_OK) {
        free(m);
        return st;
    }
#pragma omp parallel for schedule(static) if ((size_t)w * h > 65536)
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            double mk = m[orient == DA_ORIENT_VERTICAL ? y : x];
            for (int c = 0; c < 3; c++) {
                size_t p = ((size_t)y * w + x) * 3 + c;
                float fi = (float)I->data[p] / 255.0f, fg = (float)G->data[p] / 255.0f;
                double a = (1.0 - mk) * (double)fi;
                double b = mk * (double)fg;
                double v = (a + b) * 255.0;
                out.data[p] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : v);
            }
        }
    }
    free(m);
    *H = out;
    return DA_OK;
}

da_status da_dmix_blend(const da_image *H, const da_image *F, float lambda, bool round, da_image *A, da_error *err) {
    da_status st = same_size("DiffuseMix blend", H, F, err);
    if (st != DA_OK) return st;
    if (!(lambda >= 0.0f && lambda <= 1.0f))
        return da_err_set(err, DA_ERR_INVALID_ARG, "DiffuseMix blend: lambda %g outside [0, 1]", (double)lambda);
    da_image out = {0};
    if ((st = da_image_alloc(&out, H->w, H->h, err)) != DA_OK) return st;
    /* numpy: (1 - alpha) is computed on the Python float (double) and then meets a float32 array */
    const float wh = (float)(1.0 - (double)lambda), wf = lambda;
    size_t n = (size_t)H->w * H->h * 3;
#pragma omp parallel for schedule(static) if (n > 196608)
    for (size_t i = 0; i < n; i++) {
        float a = wh * (float)H->data[i];
        float b = wf * (float)F->data[i];
        float v = a + b;
        if (round) v = v + 0.5f;
        out.data[i] = (uint8_t)(v <= 0.0f ? 0.0f : v >= 255.0f ? 255.0f : v);
    }
    *A = out;
    return DA_OK;
}

void da_degenerate_opts_init(da_degenerate_opts *o) {
    o->min_mean = 5.0;
    o->max_mean = 250.0;
    o->min_var = 1.0;
}

uint8_t da_luma601(const uint8_t *p) {
    return (uint8_t)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u + 0x8000u) >> 16);
}

bool da_is_degenerate(const da_image *im, const da_degenerate_opts *o, const char **why, double *mean, double *var) {
    da_degenerate_opts def;
    if (!o) da_degenerate_opts_init(&def), o = &def;
    size_t n = (size_t)im->w * im->h;
    uint64_t hist[256] = {0};
    for (size_t i = 0; i < n; i++) hist[da_luma601(im->data + 3 * i)]++;
    double s = 0, ss = 0;
    for (int v = 0; v < 256; v++) s += (double)hist[v] * v;
    double mu = n ? s / n : 0;
    for (int v = 0; v < 256; v++) ss += (double)hist[v] * (v - mu) * (v - mu);
    double va = n ? ss / n : 0;
    if (mean) *mean = mu;
    if (var) *var = va;
    const char *w = mu < o->min_mean ? "too dark" : mu > o->max_mean ? "too bright" : va < o->min_var ? "flat" : NULL;
    if (why) *why = w;
    return w != NULL;
}

da_status da_pixel_mix(const da_image *R, const da_image *G, float lam, bool truncate, da_image *X, da_error *err) {
    da_status st = same_size("pixel mix", R, G, err);
    if (st != DA_OK) return st;
    if (!(lam >= 0.0f && lam <= 1.0f))
        return da_err_set(err, DA_ERR_INVALID_ARG, "pixel mix: lam %g outside [0, 1]", (double)lam);
    da_image out = {0};
    if ((st = da_image_alloc(&out, R->w, R->h, err)) != DA_OK) return st;
    const float wr = lam, wg = (float)(1.0 - (double)lam);
    size_t n = (size_t)R->w * R->h * 3;
    for (size_t i = 0; i < n; i++) {
        float a = wr * (float)R->data[i];
        float b = wg * (float)G->data[i];
        float v = a + b;
        if (!truncate) v = v + 0.5f;
        out.data[i] = (uint8_t)(v <= 0.0f ? 0.0f : v >= 255.0f ? 255.0f : v);
    }
    *X = out;
    return DA_OK;
}

int da_patch_count(int P, double r) {
    double t = r * P * P + 0.5;
    if (!(t > 0)) return 0;
    if (t >= (double)P * P) return P * P;
    return (int)t;
}

void da_patch_choose(int P, int count, const uint32_t *words, uint8_t *cells) {
    if (P < 1 || P > DA_PATCH_MAX_P) return;
    int n = P * P;
    if (count > n) count = n;
    int idx[DA_PATCH_MAX_P * DA_PATCH_MAX_P];
    for (int i = 0; i < n; i++) idx[i] = i, cells[i] = 0;
    for (int t = 0; t < count; t++) {
        int j = t + (int)(((uint64_t)words[t] * (uint64_t)(n - t)) >> 32);
        int tmp = idx[t];
        idx[t] = idx[j], idx[j] = tmp;
        cells[idx[t]] = 1;
    }
}

da_status da_patch_mix(const da_image *R, const da_image *G, int P, const uint8_t *cells, da_image *X, da_error *err) {
    da_status st = same_size("patch mix", R, G, err);
    if (st != DA_OK) return st;
    if (P < 1 || P > DA_PATCH_MAX_P || P > R->w || P > R->h)
        return da_err_set(err, DA_ERR_INVALID_ARG, "patch mix: grid %d does not fit a %dx%d image", P, R->w, R->h);
    da_image out = {0};
    if ((st = da_image_alloc(&out, R->w, R->h, err)) != DA_OK) return st;
    int w = R->w, h = R->h;
    for (int y = 0; y < h; y++) {
        int i = (int)(((int64_t)y * P) / h); /* row y lies in cell row i: floor(i h/P) <= y < floor((i+1) h/P) */
        while ((int64_t)(i + 1) * h / P <= y) i++;
        while ((int64_t)i * h / P > y) i--;
        for (int j = 0; j < P; j++) {
            int x0 = (int)((int64_t)j * w / P), x1 = (int)((int64_t)(j + 1) * w / P);
            const da_image *src = cells[i * P + j] ? G : R;
            memcpy(out.data + ((size_t)y * w + x0) * 3, src->data + ((size_t)y * w + x0) * 3, (size_t)(x1 - x0) * 3);
        }
    }
    *X = out;
    return DA_OK;
}
