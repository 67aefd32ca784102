/* norm.c - GroupNorm (+SiLU), LayerNorm, softmax; see norm.h for the upstream definitions and the
 * numerics (two-pass statistics, chunked f32 partial sums combined in double).
 */
#include "norm.h"

#include <math.h>

#include "nn_vec.h"

#define NORM_CHUNK 1024

/* mean of x[0..n): f32 SIMD lanes per chunk, chunks added in double, all relative to a shift
 * (the first element) so the f32 partial sums hold deviations, not the VAE's 1e3-1e4 offsets whose
 * rounding (ulp(2e5) = 0.016 per lane) would otherwise move the mean by ~1e-5 of the spread. */
static double mean_shifted(const float *x, size_t n) {
    const float shift = x[0];
    double tot = 0.0;
    for (size_t s = 0; s < n; s += NORM_CHUNK) {
        size_t e = s + NORM_CHUNK < n ? s + NORM_CHUNK : n;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (size_t i = s; i < e; i++) acc += x[i] - shift;
        tot += acc;
    }
    return (double)shift + tot / (double)n;
}

/* sum of (x - m)^2 over x[0..n) */
static double sqdev_chunked(const float *x, size_t n, float m) {
    double tot = 0.0;
    for (size_t s = 0; s < n; s += NORM_CHUNK) {
        size_t e = s + NORM_CHUNK < n ? s + NORM_CHUNK : n;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (size_t i = s; i < e; i++) {
            float d = x[i] - m;
            acc += d * d;
        }
        tot += acc;
    }
    return tot;
}

/* One (sample, group) block of the GroupNorm: xg, yg [cpg, HW]. Mean and variance of the whole
 * block; the deviations are taken from the f32-rounded mean (what is subtracted later), which makes
 * the variance consistent with the values actually normalised. */
static void groupnorm_block(float *yg, const float *xg, size_t cpg, size_t HW, size_t c0, const dk_groupnorm_params *p) {
    size_t L = cpg * HW;
    double md = mean_shifted(xg, L);
    /* mean as hi + lo f32 pair: with |mean| ~ 1e4 and std ~ 1 (VAE) the f32 rounding of the mean
     * alone would be a 5e-4 error in every output; x - hi is exact (Sterbenz) near the mean */
    float mh = (float)md, ml = (float)(md - (double)mh);
    double var = sqdev_chunked(xg, L, mh) / (double)L - (double)ml * ml;
    if (var < 0) var = 0;
    float rstd = (float)(1.0 / sqrt(var + (double)p->eps));
    for (size_t c = 0; c < cpg; c++) {
        float a = p->gamma ? rstd * dk_load_w(p->gamma, p->wtype, c0 + c) : rstd;
        float b = p->beta ? dk_load_w(p->beta, p->wtype, c0 + c) : 0.0f;
        const float *xs = xg + c * HW;
        float *ys = yg + c * HW;
        if (p->silu) {
            /* explicit 16 lanes: the exp and division make this loop compute-bound */
            const dv16 vmh = dv_set1(mh), vml = dv_set1(ml), va = dv_set1(a), vb = dv_set1(b);
            size_t i = 0;
            for (; i + 16 <= HW; i += 16) {
                dv16 v = ((dv_load(xs + i) - vmh) - vml) * va + vb;
                dv_store(ys + i, v * dv_sigmoid(v));
            }
            if (i < HW) {
                float buf[16] = {0};
                memcpy(buf, xs + i, (HW - i) * sizeof(float));
                dv16 v = ((dv_load(buf) - vmh) - vml) * va + vb;
                dv_store(buf, v * dv_sigmoid(v));
                memcpy(ys + i, buf, (HW - i) * sizeof(float));
            }
        } else {
#pragma omp simd
            for (size_t i = 0; i < HW; i++) ys[i] = ((xs[i] - mh) - ml) * a + b;
        }
    }
}

/* Parallel over (sample, group): with SD's 32 groups that is 32 x batch independent blocks, enough
 * for any core count we target; each block is read twice for statistics and once to normalise,
 * and one block (C/32 * HW floats, <= 640 KB at 1280 x 8x8 ... 320 x 64x64) mostly stays in L2. */
void dk_groupnorm(float *y, const float *x, const dk_groupnorm_params *p) {
    size_t G = (size_t)p->groups, cpg = p->C / G, blocks = p->N * G;
#pragma omp parallel for schedule(static) if (p->N * p->C * p->HW >= 16384)
    for (size_t blk = 0; blk < blocks; blk++) {
        size_t n = blk / G, g = blk % G;
        size_t off = (n * p->C + g * cpg) * p->HW;
        groupnorm_block(y + off, x + off, cpg, p->HW, g * cpg, p);
    }
}

void dk_groupnorm_ref(float *y, const float *x, const dk_groupnorm_params *p) {
    size_t G = (size_t)p->groups, cpg = p->C / G, L = cpg * p->HW;
    for (size_t n = 0; n < p->N; n++)
        for (size_t g = 0; g < G; g++) {
            const float *xg = x + (n * p->C + g * cpg) * p->HW;
            float *yg = y + (n * p->C + g * cpg) * p->HW;
            double s = 0, ss = 0;
            for (size_t i = 0; i < L; i++) s += xg[i];
            double mean = s / (double)L;
            for (size_t i = 0; i < L; i++) ss += (xg[i] - mean) * (xg[i] - mean);
            double rstd = 1.0 / sqrt(ss / (double)L + p->eps);
            for (size_t c = 0; c < cpg; c++) {
                double ga = p->gamma ? dk_load_w(p->gamma, p->wtype, g * cpg + c) : 1.0;
                double be = p->beta ? dk_load_w(p->beta, p->wtype, g * cpg + c) : 0.0;
                for (size_t i = 0; i < p->HW; i++) {
                    double v = (xg[c * p->HW + i] - mean) * rstd * ga + be;
                    if (p->silu) v = v / (1.0 + exp(-v));
                    yg[c * p->HW + i] = (float)v;
                }
            }
        }
}

/* Rows in blocks of LN_RB: statistics for the block first, then the affine applied column chunk
 * by column chunk, so 16-bit gamma/beta are converted once per block rather than once per row. */
#define LN_RB 16
#define LN_CH 256
void dk_layernorm(float *y, const float *x, size_t M, size_t D, float eps, const void *gamma, const void *beta,
                  dk_wtype wt) {
    size_t nblk = (M + LN_RB - 1) / LN_RB;
#pragma omp parallel for schedule(static) if (M * D >= 16384)
    for (size_t bi = 0; bi < nblk; bi++) {
        size_t r0 = bi * LN_RB, r1 = r0 + LN_RB < M ? r0 + LN_RB : M;
        float mhi[LN_RB], mlo[LN_RB], rstd[LN_RB], ga[LN_CH], be[LN_CH];
        for (size_t r = r0; r < r1; r++) {
            const float *xr = x + r * D;
            double md = mean_shifted(xr, D);
            float mh = (float)md, ml = (float)(md - (double)mh); /* hi/lo mean as in GroupNorm */
            double var = sqdev_chunked(xr, D, mh) / (double)D - (double)ml * ml;
            if (var < 0) var = 0;
            mhi[r - r0] = mh, mlo[r - r0] = ml;
            rstd[r - r0] = (float)(1.0 / sqrt(var + (double)eps));
        }
        for (size_t j0 = 0; j0 < D; j0 += LN_CH) {
            size_t nj = D - j0 < LN_CH ? D - j0 : LN_CH;
            for (size_t j = 0; j < nj; j++) {
                ga[j] = gamma ? dk_load_w(gamma, wt, j0 + j) : 1.0f;
                be[j] = beta ? dk_load_w(beta, wt, j0 + j) : 0.0f;
            }
            for (size_t r = r0; r < r1; r++) {
                const float *xr = x + r * D + j0;
                float *yr = y + r * D + j0;
                float mh = mhi[r - r0], ml = mlo[r - r0], s = rstd[r - r0];
#pragma omp simd
                for (size_t j = 0; j < nj; j++) yr[j] = ((xr[j] - mh) - ml) * s * ga[j] + be[j];
            }
        }
    }
}

void dk_layernorm_ref(float *y, const float *x, size_t M, size_t D, float eps, const void *gamma,
                      const void *beta, dk_wtype wt) {
    for (size_t r = 0; r < M; r++) {
        const float *xr = x + r * D;
        double s = 0, ss = 0;
        for (size_t j = 0; j < D; j++) s += xr[j];
        double mean = s / (double)D;
        for (size_t j = 0; j < D; j++) ss += (xr[j] - mean) * (xr[j] - mean);
        double rstd = 1.0 / sqrt(ss / (double)D + eps);
        for (size_t j = 0; j < D; j++) {
            double ga = gamma ? dk_load_w(gamma, wt, j) : 1.0, be = beta ? dk_load_w(beta, wt, j) : 0.0;
            y[r * D + j] = (float)((xr[j] - mean) * rstd * ga + be);
        }
    }
}

void dk_softmax(float *y, const float *x, size_t M, size_t D) {
#pragma omp parallel for schedule(static) if (M * D >= 16384)
    for (size_t r = 0; r < M; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        float mx = -__builtin_inff();
#pragma omp simd reduction(max : mx)
        for (size_t j = 0; j < D; j++) mx = xr[j] > mx ? xr[j] : mx;
        double tot = 0.0;
        for (size_t s = 0; s < D; s += NORM_CHUNK) {
            size_t e = s + NORM_CHUNK < D ? s + NORM_CHUNK : D;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (size_t j = s; j < e; j++) {
                float v = nn_expf(xr[j] - mx);
                yr[j] = v;
                acc += v;
            }
            tot += acc;
        }
        float inv = (float)(1.0 / tot);
#pragma omp simd
        for (size_t j = 0; j < D; j++) yr[j] *= inv;
    }
}

void dk_softmax_ref(float *y, const float *x, size_t M, size_t D) {
    for (size_t r = 0; r < M; r++) {
        const float *xr = x + r * D;
        double mx = -INFINITY, tot = 0;
        for (size_t j = 0; j < D; j++) mx = xr[j] > mx ? xr[j] : mx;
        for (size_t j = 0; j < D; j++) tot += exp(xr[j] - mx);
        for (size_t j = 0; j < D; j++) y[r * D + j] = (float)(exp(xr[j] - mx) / tot);
    }
}
