/* ops.c - elementwise and data-movement kernels (see ops.h for the upstream definitions).
 *
 * All are memory-bound: one pass, `omp parallel for simd` over the flat index with static
 * schedule, so every element is computed by the same expression whatever the thread count
 * (results are bit-identical for 1 and 2 threads). Transcendentals come from nn_vec.h (vectorisable,
 * ~2 ulp); the *_ref twins use libm in double.
 */
#include "ops.h"

#include <math.h>

#include "nn_vec.h"

/* Below this many elements the OpenMP fork/join costs more than the loop. */
#define OPS_PAR_MIN 32768

/* 16-lane forms; the scalar identities are in ops.h. */
DV_INLINE dv16 v_silu(dv16 x) { return x * dv_sigmoid(x); }
DV_INLINE dv16 v_gelu(dv16 x) { return 0.5f * x * dv_erfc(x * -0.70710678118654752f); }
/* 0.5 x (1 + tanh(u)) = x * sigmoid(2u): exact identity, and it keeps relative accuracy for
 * negative x where 1 + tanh(u) would cancel. */
DV_INLINE dv16 v_gelu_tanh(dv16 x) {
    dv16 u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return x * dv_sigmoid(2.0f * u);
}
DV_INLINE dv16 v_quick_gelu(dv16 x) { return x * dv_sigmoid(1.702f * x); }

/* Whole vectors split across threads by vector index, the tail vector by the caller's thread:
 * explicit 16-lane code because GCC's -march=native tuning auto-vectorises 8 lanes wide
 * (prefer-vector-width=256) and these loops are compute-bound (exp + division per element):
 * GELU 18.7 -> 8.7 ms at 4096x1280. */
#define DEFINE_ACT(name, VF)                                                                       \
    void name(float *y, const float *x, size_t n) {                                                \
        size_t nv = n / 16;                                                                        \
        _Pragma("omp parallel for schedule(static) if (n >= OPS_PAR_MIN)")                         \
        for (size_t i = 0; i < nv; i++) dv_store(y + 16 * i, VF(dv_load(x + 16 * i)));              \
        DV_MAP_TAIL(y, x, n, VF);                                                                  \
    }
DEFINE_ACT(dk_silu, v_silu)
DEFINE_ACT(dk_gelu, v_gelu)
DEFINE_ACT(dk_gelu_tanh, v_gelu_tanh)
DEFINE_ACT(dk_quick_gelu, v_quick_gelu)

void dk_silu_ref(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)x[i] / (1.0 + exp(-(double)x[i])));
}
void dk_gelu_ref(float *y, const float *x, size_t n) {
    /* 1 + erf(u) == erfc(-u) exactly in math; in double the left side cancels to nothing for
     * x < -6, so the reference uses the right side */
    for (size_t i = 0; i < n; i++) y[i] = (float)(0.5 * x[i] * erfc(-(double)x[i] / sqrt(2.0)));
}
void dk_gelu_tanh_ref(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        double u = sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v);
        /* 1 + tanh(u) = 2 / (1 + exp(-2u)); the left side cancels in double for u < -10 */
        y[i] = (float)(0.5 * v * (2.0 / (1.0 + exp(-2.0 * u))));
    }
}
void dk_quick_gelu_ref(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)x[i] / (1.0 + exp(-1.702 * (double)x[i])));
}

void dk_geglu(float *y, const float *x, size_t M, size_t F) {
#pragma omp parallel for schedule(static) if (M * F >= OPS_PAR_MIN)
    for (size_t m = 0; m < M; m++) {
        const float *h = x + m * 2 * F, *g = h + F;
        float *o = y + m * F;
        size_t f = 0;
        for (; f + 16 <= F; f += 16) dv_store(o + f, dv_load(h + f) * v_gelu(dv_load(g + f)));
        if (f < F) {
            float hb[16] = {0}, gb[16] = {0};
            memcpy(hb, h + f, (F - f) * sizeof(float));
            memcpy(gb, g + f, (F - f) * sizeof(float));
            dv_store(hb, dv_load(hb) * v_gelu(dv_load(gb)));
            memcpy(o + f, hb, (F - f) * sizeof(float));
        }
    }
}
void dk_geglu_ref(float *y, const float *x, size_t M, size_t F) {
    for (size_t m = 0; m < M; m++)
        for (size_t f = 0; f < F; f++) {
            double h = x[m * 2 * F + f], g = x[m * 2 * F + F + f];
            y[m * F + f] = (float)(h * 0.5 * g * erfc(-g / sqrt(2.0)));
        }
}

void dk_add(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
void dk_mul(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}
void dk_scale(float *y, const float *x, float s, float t, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s + t;
}
void dk_add_ref(float *y, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)a[i] + b[i]);
}
void dk_mul_ref(float *y, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)a[i] * b[i]);
}
void dk_scale_ref(float *y, const float *x, float s, float t, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)x[i] * s + t);
}

void dk_add_channel_bias(float *y, const float *x, const void *bias, dk_wtype bt, size_t N, size_t C, size_t HW) {
    size_t rows = N * C;
#pragma omp parallel for schedule(static) if (rows * HW >= OPS_PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        float b = dk_load_w(bias, bt, r % C);
        const float *xs = x + r * HW;
        float *ys = y + r * HW;
#pragma omp simd
        for (size_t i = 0; i < HW; i++) ys[i] = xs[i] + b;
    }
}
void dk_add_channel_bias_ref(float *y, const float *x, const void *bias, dk_wtype bt, size_t N, size_t C, size_t HW) {
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < HW; i++) {
                size_t k = (n * C + c) * HW + i;
                y[k] = (float)((double)x[k] + dk_load_w(bias, bt, c));
            }
}

void dk_add_sample_channel_bias(float *y, const float *x, const float *b, size_t N, size_t C, size_t HW) {
    size_t rows = N * C;
#pragma omp parallel for schedule(static) if (rows * HW >= OPS_PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        float bv = b[r]; /* [N, C] row-major: plane r = n*C + c */
        const float *xs = x + r * HW;
        float *ys = y + r * HW;
#pragma omp simd
        for (size_t i = 0; i < HW; i++) ys[i] = xs[i] + bv;
    }
}
void dk_add_sample_channel_bias_ref(float *y, const float *x, const float *b, size_t N, size_t C, size_t HW) {
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < HW; i++) {
                size_t k = (n * C + c) * HW + i;
                y[k] = (float)((double)x[k] + b[n * C + c]);
            }
}

void dk_add_row(float *y, const float *x, const void *row, dk_wtype rt, size_t M, size_t N) {
    if (rt == DK_F32) {
        const float *rw = row;
#pragma omp parallel for schedule(static) if (M * N >= OPS_PAR_MIN)
        for (size_t m = 0; m < M; m++) {
#pragma omp simd
            for (size_t j = 0; j < N; j++) y[m * N + j] = x[m * N + j] + rw[j];
        }
        return;
    }
    /* 16-bit row: convert 256 columns at a time onto the stack, then sweep all M rows with them,
     * so each row value is converted once per thread rather than once per element. */
    enum { CH = 256 };
#pragma omp parallel if (M * N >= OPS_PAR_MIN)
    {
        float buf[CH];
        for (size_t j0 = 0; j0 < N; j0 += CH) {
            size_t nj = N - j0 < CH ? N - j0 : CH;
            for (size_t j = 0; j < nj; j++) buf[j] = dk_load_w(row, rt, j0 + j);
#pragma omp for schedule(static)
            for (size_t m = 0; m < M; m++) {
#pragma omp simd
                for (size_t j = 0; j < nj; j++) y[m * N + j0 + j] = x[m * N + j0 + j] + buf[j];
            }
        }
    }
}
void dk_add_row_ref(float *y, const float *x, const void *row, dk_wtype rt, size_t M, size_t N) {
    for (size_t m = 0; m < M; m++)
        for (size_t j = 0; j < N; j++) y[m * N + j] = (float)((double)x[m * N + j] + dk_load_w(row, rt, j));
}

void dk_upsample2x_nearest(float *y, const float *x, size_t N, size_t C, size_t H, size_t W) {
    size_t planes = N * C, W2 = 2 * W;
#pragma omp parallel for schedule(static) if (planes * H * W >= OPS_PAR_MIN / 4)
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * 4 * H * W;
        for (size_t h = 0; h < H; h++) {
            float *r0 = yp + 2 * h * W2;
#pragma omp simd
            for (size_t w = 0; w < W2; w++) r0[w] = xp[h * W + w / 2];
            memcpy(r0 + W2, r0, W2 * sizeof(float)); /* the second output row is the same */
        }
    }
}
void dk_upsample2x_nearest_ref(float *y, const float *x, size_t N, size_t C, size_t H, size_t W) {
    for (size_t p = 0; p < N * C; p++)
        for (size_t oh = 0; oh < 2 * H; oh++)
            for (size_t ow = 0; ow < 2 * W; ow++)
                y[(p * 2 * H + oh) * 2 * W + ow] = x[(p * H + oh / 2) * W + ow / 2];
}

void dk_concat_channels(float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N, size_t HW) {
    size_t C = Ca + Cb;
    /* one task per output channel plane: contiguous memcpy of HW floats */
#pragma omp parallel for schedule(static) if (N * C * HW >= OPS_PAR_MIN)
    for (size_t r = 0; r < N * C; r++) {
        size_t n = r / C, c = r % C;
        const float *src = c < Ca ? a + (n * Ca + c) * HW : b + (n * Cb + (c - Ca)) * HW;
        memcpy(y + r * HW, src, HW * sizeof(float));
    }
}
void dk_concat_channels_ref(float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N, size_t HW) {
    size_t C = Ca + Cb;
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < HW; i++)
                y[(n * C + c) * HW + i] = c < Ca ? a[(n * Ca + c) * HW + i] : b[(n * Cb + c - Ca) * HW + i];
}

dk_temb_params dk_temb_params_sd(int dim) {
    dk_temb_params p = {dim, 1, 0.0f, 1.0f, 10000.0f};
    return p;
}

/* diffusers computes exponent = -ln(max_period) * arange(half) / (half - shift) in f32, then
 * freqs = exp(exponent) in f32, then t[:, None] * freqs (f32), then sin/cos in f32. We follow the
 * same f32 steps with libm (this runs on B x dim elements once per step, speed is irrelevant), so
 * the result agrees with torch to ~1 ulp of the argument; sin/cos of arguments up to ~1000 rad
 * magnify any argument difference, which is why the argument is formed exactly as upstream. */
void dk_timestep_embedding(float *y, const float *t, size_t B, const dk_temb_params *p) {
    int half = p->dim / 2;
    float lnp = logf(p->max_period);
    for (size_t b = 0; b < B; b++) {
        float *row = y + b * (size_t)p->dim;
        for (int k = 0; k < half; k++) {
            float expo = -lnp * (float)k;
            expo = expo / ((float)half - p->downscale_freq_shift);
            float arg = t[b] * expf(expo) * p->scale;
            float s = sinf(arg), c = cosf(arg);
            row[k] = p->flip_sin_to_cos ? c : s;
            row[half + k] = p->flip_sin_to_cos ? s : c;
        }
        if (p->dim % 2) row[p->dim - 1] = 0.0f;
    }
}
void dk_timestep_embedding_ref(float *y, const float *t, size_t B, const dk_temb_params *p) {
    int half = p->dim / 2;
    for (size_t b = 0; b < B; b++)
        for (int k = 0; k < half; k++) {
            double arg = (double)t[b] * exp(-log((double)p->max_period) * k / (half - (double)p->downscale_freq_shift)) *
                         p->scale;
            double s = sin(arg), c = cos(arg);
            y[b * (size_t)p->dim + k] = (float)(p->flip_sin_to_cos ? c : s);
            y[b * (size_t)p->dim + half + k] = (float)(p->flip_sin_to_cos ? s : c);
            if (p->dim % 2) y[b * (size_t)p->dim + p->dim - 1] = 0.0f;
        }
}
