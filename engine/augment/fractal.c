/* fractal.c - procedural "fractal flame" images for DiffuseMix's fractal blending (see fractal.h;
 * algorithm after Draves & Reckase 2003, constants ours, documented in docs/RECIPES.md). */
#include "augment/fractal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/draw.h"
#include "util.h"

#define MAX_MAPS 8
#define PILOT 4096
#define WARMUP 20

enum { VAR_LINEAR, VAR_SINUSOIDAL, VAR_SPHERICAL, VAR_SWIRL, VAR_HORSESHOE, VAR_COUNT };

typedef struct fmap {
    double a, b, c, d, e, f; /* (x, y) -> (a x + b y + e, c x + d y + f) */
    int var;
    double vw;               /* weight of the variation, 1 - vw of the affine point */
    double color;            /* palette index in [0, 1] */
    uint32_t cum;            /* cumulative selection threshold (of 2^32) */
} fmap;

typedef struct flame {
    int n;
    fmap m[MAX_MAPS];
    float pal[256][3];
} flame;

void da_fractal_opts_init(da_fractal_opts *o) {
    o->size = 256;
    o->seed = 0;
    o->iters_per_pixel = 16;
    o->gamma = 2.2;
    o->min_coverage = 0.10;
    o->min_color_std = 20.0;
    o->max_attempts = 64;
}

void da_fractal_name(uint64_t k, char *buf, size_t cap) { snprintf(buf, cap, "fractal_%05llu.png", (unsigned long long)k); }

static void hsv_to_rgb(double h, double s, double v, float rgb[3]) {
    h = (h - floor(h)) * 6.0;
    int i = (int)h;
    double f = h - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double r, g, b;
    switch (i % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    rgb[0] = (float)r, rgb[1] = (float)g, rgb[2] = (float)b;
}

static void draw_flame(da_draw *d, flame *fl) {
    fl->n = 2 + (int)da_draw_below(d, MAX_MAPS - 1);
    double wsum = 0, w[MAX_MAPS];
    for (int i = 0; i < fl->n; i++) {
        fmap *m = &fl->m[i];
        /* A = R(t1) diag(s1, s2) R(t2): singular values s1, s2 < 1, so the affine part contracts. */
        double t1 = da_draw_range(d, 0, 2 * M_PI), t2 = da_draw_range(d, 0, 2 * M_PI);
        double s1 = da_draw_range(d, 0.3, 0.9), s2 = da_draw_range(d, 0.2, 0.9);
        if (da_draw_u32(d) & 1) s2 = -s2;
        double c1 = cos(t1), n1 = sin(t1), c2 = cos(t2), n2 = sin(t2);
        m->a = c1 * s1 * c2 - n1 * s2 * n2;
        m->b = -c1 * s1 * n2 - n1 * s2 * c2;
        m->c = n1 * s1 * c2 + c1 * s2 * n2;
        m->d = -n1 * s1 * n2 + c1 * s2 * c2;
        m->e = da_draw_range(d, -1, 1);
        m->f = da_draw_range(d, -1, 1);
        m->var = (int)da_draw_below(d, VAR_COUNT);
        m->vw = m->var == VAR_LINEAR ? 0.0 : da_draw_range(d, 0.3, 1.0);
        m->color = da_draw_uniform(d);
        w[i] = da_draw_range(d, 0.3, 1.0);
        wsum += w[i];
    }
    double acc = 0;
    for (int i = 0; i < fl->n; i++) {
        acc += w[i] / wsum;
        double t = acc * 4294967296.0;
        fl->m[i].cum = i == fl->n - 1 ? UINT32_MAX : (uint32_t)(t >= 4294967295.0 ? 4294967295.0 : t);
    }
    /* Palette: 4 random saturated anchors, linear in RGB between them, cyclic. */
    float anc[4][3];
    double h0 = da_draw_uniform(d);
    for (int j = 0; j < 4; j++)
        hsv_to_rgb(h0 + da_draw_range(d, -0.35, 0.35) + 0.25 * j, da_draw_range(d, 0.5, 1.0), da_draw_range(d, 0.6, 1.0),
                   anc[j]);
    for (int i = 0; i < 256; i++) {
        double t = i / 64.0;
        int j = (int)t;
        double f = t - j;
        for (int c = 0; c < 3; c++) fl->pal[i][c] = (float)((1 - f) * anc[j & 3][c] + f * anc[(j + 1) & 3][c]);
    }
}

static inline int pick(const flame *fl, uint32_t u) {
    int i = 0;
    while (i < fl->n - 1 && u > fl->m[i].cum) i++;
    return i;
}

static inline void apply(const fmap *m, double *px, double *py) {
    double x = m->a * *px + m->b * *py + m->e, y = m->c * *px + m->d * *py + m->f;
    double vx = x, vy = y, r2 = x * x + y * y;
    switch (m->var) {
    case VAR_SINUSOIDAL: vx = sin(x), vy = sin(y); break;
    case VAR_SPHERICAL: vx = x / (r2 + 1e-9), vy = y / (r2 + 1e-9); break;
    case VAR_SWIRL: {
        double s = sin(r2), c = cos(r2);
        vx = x * s - y * c, vy = x * c + y * s;
        break;
    }
    case VAR_HORSESHOE: {
        double r = sqrt(r2) + 1e-9;
        vx = (x - y) * (x + y) / r, vy = 2 * x * y / r;
        break;
    }
    default: break;
    }
    *px = (1 - m->vw) * x + m->vw * vx;
    *py = (1 - m->vw) * y + m->vw * vy;
}

static inline int bad_point(double x, double y) { return !(fabs(x) < 1e6 && fabs(y) < 1e6); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void da_fractal_stats(const da_image *im, double *coverage, double *color_std) {
    size_t n = (size_t)im->w * im->h, lit = 0;
    double s[3] = {0}, ss[3] = {0};
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = im->data + 3 * i;
        uint8_t mx = p[0] > p[1] ? p[0] : p[1];
        if (p[2] > mx) mx = p[2];
        lit += mx >= DA_FRACTAL_LIT;
        for (int c = 0; c < 3; c++) s[c] += p[c], ss[c] += (double)p[c] * p[c];
    }
    double v = 0;
    for (int c = 0; c < 3; c++) {
        double m = s[c] / n;
        v += ss[c] / n - m * m;
    }
    *coverage = (double)lit / n;
    *color_std = sqrt(v > 0 ? v / 3 : 0);
}

/* One attempt: render into im (already allocated). */
/* One histogram cell: the colour sums and the hit count share 16 bytes, so a hit touches one cache line. */
typedef struct bin {
    float r, g, b;
    uint32_t n;
} bin;

static void render_one(const da_fractal_opts *o, da_draw *d, flame *fl, bin *hist, da_image *im) {
    int S = o->size;
    draw_flame(d, fl);
    /* Pilot run: frame the attractor on its 1st..99th percentiles so stray points do not shrink it. */
    double *xs = malloc(2 * PILOT * sizeof *xs), *ys = xs + PILOT;
    double x = da_draw_range(d, -1, 1), y = da_draw_range(d, -1, 1);
    int np = 0;
    for (int it = 0; it < PILOT + WARMUP; it++) {
        apply(&fl->m[pick(fl, da_draw_u32(d))], &x, &y);
        if (bad_point(x, y)) {
            x = da_draw_range(d, -1, 1), y = da_draw_range(d, -1, 1);
            continue;
        }
        if (it >= WARMUP) xs[np] = x, ys[np] = y, np++;
    }
    double x0 = -1, x1 = 1, y0 = -1, y1 = 1;
    if (np > 100) {
        qsort(xs, np, sizeof *xs, cmp_double);
        qsort(ys, np, sizeof *ys, cmp_double);
        x0 = xs[np / 100], x1 = xs[np - 1 - np / 100], y0 = ys[np / 100], y1 = ys[np - 1 - np / 100];
    }
    free(xs);
    double ext = fmax(x1 - x0, y1 - y0);
    if (!(ext > 1e-9)) ext = 1e-9;
    double scale = 0.92 * S / ext, cx = 0.5 * (x0 + x1), cy = 0.5 * (y0 + y1);

    memset(hist, 0, (size_t)S * S * sizeof *hist);
    long long iters = (long long)o->iters_per_pixel * S * S;
    double c = da_draw_uniform(d);
    x = da_draw_range(d, -1, 1), y = da_draw_range(d, -1, 1);
    for (long long it = 0; it < iters + WARMUP; it++) {
        const fmap *m = &fl->m[pick(fl, da_draw_u32(d))];
        apply(m, &x, &y);
        c = 0.5 * (c + m->color);
        if (bad_point(x, y)) {
            x = da_draw_range(d, -1, 1), y = da_draw_range(d, -1, 1);
            continue;
        }
        if (it < WARMUP) continue;
        double fx = (x - cx) * scale + 0.5 * S, fy = (y - cy) * scale + 0.5 * S;
        if (!(fx >= 0 && fx < S && fy >= 0 && fy < S)) continue;
        size_t p = (size_t)(int)fy * S + (int)fx;
        const float *pc = fl->pal[(int)(c * 255.0 + 0.5) & 255];
        bin *h = &hist[p];
        h->n++;
        h->r += pc[0], h->g += pc[1], h->b += pc[2];
    }
    uint32_t mx = 0;
    for (size_t p = 0; p < (size_t)S * S; p++) mx = hist[p].n > mx ? hist[p].n : mx;
    double lmax = log1p((double)mx), ig = 1.0 / o->gamma;
    for (size_t p = 0; p < (size_t)S * S; p++) {
        uint8_t *q = im->data + 3 * p;
        const bin *h = &hist[p];
        if (!h->n) {
            q[0] = q[1] = q[2] = 0;
            continue;
        }
        /* log-density alpha, gamma-corrected; colour = mean palette colour of the pixel's hits */
        double a = pow(log1p((double)h->n) / lmax, ig);
        const float sum[3] = {h->r, h->g, h->b};
        for (int ch = 0; ch < 3; ch++) {
            double v = 255.0 * a * sum[ch] / h->n;
            q[ch] = (uint8_t)(v >= 255 ? 255 : v <= 0 ? 0 : v + 0.5);
        }
    }
}

da_status da_fractal_render(const da_fractal_opts *o, uint64_t k, da_image *out, da_fractal_info *info,
                            da_error *err) {
    if (!o || o->size < 8 || o->size > 8192 || o->iters_per_pixel < 1 || o->iters_per_pixel > 4096 ||
        !(o->gamma > 0) || o->max_attempts < 1 || o->max_attempts > (int)DA_DRAW_MAX_INDEX)
        return da_err_set(err, DA_ERR_INVALID_ARG, "fractal: bad options (size %d, iters/pixel %d, gamma %g, attempts %d)",
                          o ? o->size : 0, o ? o->iters_per_pixel : 0, o ? o->gamma : 0, o ? o->max_attempts : 0);
    int S = o->size;
    da_image im = {0};
    da_status st = da_image_alloc(&im, S, S, err);
    if (st != DA_OK) return st;
    bin *hist = malloc((size_t)S * S * sizeof *hist);
    flame *fl = malloc(sizeof *fl);
    if (!hist || !fl) {
        free(hist), free(fl);
        da_image_free(&im);
        return da_err_set(err, DA_ERR_NOMEM, "fractal %llu: out of memory for a %dx%d histogram", (unsigned long long)k, S, S);
    }
    fl->n = 0;
    double cov = 0, cstd = 0;
    int a;
    for (a = 0; a < o->max_attempts; a++) {
        da_draw d;
        da_draw_init(&d, o->seed, k, (uint32_t)a, DA_DRAW_FRACTAL_GEN);
        render_one(o, &d, fl, hist, &im);
        da_fractal_stats(&im, &cov, &cstd);
        if (cov >= o->min_coverage && cstd >= o->min_color_std) break;
    }
    int n_maps = fl->n;
    free(hist), free(fl);
    if (a == o->max_attempts) {
        da_image_free(&im);
        return da_err_set(err, DA_ERR_UNSUPPORTED,
                          "fractal %llu: %d draws at %dx%d were all degenerate (last: coverage %.3f, colour std %.1f)",
                          (unsigned long long)k, a, S, S, cov, cstd);
    }
    if (info) info->attempts = a + 1, info->n_maps = n_maps, info->coverage = cov, info->color_std = cstd;
    *out = im;
    return DA_OK;
}

da_status da_fractal_write_set(const char *dir, uint64_t first, int n, const da_fractal_opts *o, da_error *err) {
    if (n < 0) return da_err_set(err, DA_ERR_INVALID_ARG, "fractal set: negative count %d", n);
    da_status st = da_mkdirs(dir, err);
    if (st != DA_OK) return st;
    da_status first_st = DA_OK;
    da_error first_err;
    da_err_clear(&first_err);
    int stop = 0;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        int s;
#pragma omp atomic read
        s = stop;
        if (s) continue;
        da_error e;
        da_err_clear(&e);
        da_image im = {0};
        char name[64];
        da_fractal_name(first + (uint64_t)i, name, sizeof name);
        char *path = da_path_join(dir, name);
        da_status r = path ? da_fractal_render(o, first + (uint64_t)i, &im, NULL, &e)
                           : da_err_set(&e, DA_ERR_NOMEM, "out of memory");
        if (r == DA_OK) r = da_image_save_png(path, &im, NULL, NULL, 0, &e);
        da_image_free(&im);
        free(path);
        if (r != DA_OK) {
#pragma omp critical(da_fractal_err)
            if (first_st == DA_OK) first_st = r, first_err = e;
#pragma omp atomic write
            stop = 1;
        }
    }
    if (first_st != DA_OK && err) *err = first_err;
    return first_st;
}
