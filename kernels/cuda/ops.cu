/* ops.cu - elementwise and data-movement kernels of the SD 1.x / CLIP / VAE forwards on the GPU,
 * mirroring kernels/cpu/ops.h (torch silu / gelu / gelu(tanh) / CLIP QuickGELU, diffusers GEGLU,
 * F.interpolate nearest 2x, torch.cat(dim=1), diffusers get_timestep_embedding) plus the backend's
 * transpose and gather_rows (backend.h). One thread per output element in grid-stride loops: these
 * ops are memory-bound and this is the simple correct form (no vectorised loads yet). Math is f32
 * with CUDA's accurate libm (expf, erff, tanhf; the build never uses --use_fast_math). */
#include "dcu_common.cuh"

__device__ __forceinline__ float act_silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float act_gelu(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }
__device__ __forceinline__ float act_gelu_tanh(float x) {
    float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    /* 1 + tanh(u) = 2 / (1 + exp(-2u)): no cancellation for large negative u (as ops.c's reference) */
    return x / (1.0f + expf(-2.0f * u));
}
__device__ __forceinline__ float act_quick_gelu(float x) { return x / (1.0f + expf(-1.702f * x)); }

/* y[n] = f(x[n]); KIND a template constant so each activation is its own kernel */
template <int KIND> __global__ void k_act(float *y, const float *x, size_t n) {
    DCU_GRID_STRIDE(i, n) {
        float v = x[i];
        y[i] = KIND == DCU_ACT_SILU ? act_silu(v)
             : KIND == DCU_ACT_GELU ? act_gelu(v)
             : KIND == DCU_ACT_GELU_TANH ? act_gelu_tanh(v)
                                         : act_quick_gelu(v);
    }
}

extern "C" int dcu_act(dcu_ctx *c, int kind, float *y, const float *x, size_t n) {
    if (!n) return 0;
    unsigned g = dcu_blocks(n, 256);
    switch (kind) {
    case DCU_ACT_SILU: k_act<DCU_ACT_SILU><<<g, 256, 0, DCU_STREAM(c)>>>(y, x, n); break;
    case DCU_ACT_GELU: k_act<DCU_ACT_GELU><<<g, 256, 0, DCU_STREAM(c)>>>(y, x, n); break;
    case DCU_ACT_GELU_TANH: k_act<DCU_ACT_GELU_TANH><<<g, 256, 0, DCU_STREAM(c)>>>(y, x, n); break;
    case DCU_ACT_QUICK_GELU: k_act<DCU_ACT_QUICK_GELU><<<g, 256, 0, DCU_STREAM(c)>>>(y, x, n); break;
    default: snprintf(c->msg, sizeof c->msg, "dcu_act: unknown activation %d", kind); return (int)cudaErrorInvalidValue;
    }
    return dcu_check_launch(c, "k_act");
}

/* x [M, 2F] (hidden | gate) -> y [M, F] = hidden * gelu(gate) */
__global__ void k_geglu(float *y, const float *x, size_t M, size_t F) {
    DCU_GRID_STRIDE(i, M * F) {
        size_t m = i / F, f = i % F;
        const float *r = x + m * 2 * F;
        y[i] = r[f] * act_gelu(r[F + f]);
    }
}
extern "C" int dcu_geglu(dcu_ctx *c, float *y, const float *x, size_t M, size_t F) {
    if (!M || !F) return 0;
    k_geglu<<<dcu_blocks(M * F, 256), 256, 0, DCU_STREAM(c)>>>(y, x, M, F);
    return dcu_check_launch(c, "k_geglu");
}

/* y[n] = a[n] + b[n] / a[n] * b[n] / x[n] * s + t (flat; y may alias an input) */
__global__ void k_add(float *y, const float *a, const float *b, size_t n) { DCU_GRID_STRIDE(i, n) y[i] = a[i] + b[i]; }
__global__ void k_mul(float *y, const float *a, const float *b, size_t n) { DCU_GRID_STRIDE(i, n) y[i] = a[i] * b[i]; }
__global__ void k_scale(float *y, const float *x, float s, float t, size_t n) {
    DCU_GRID_STRIDE(i, n) y[i] = fmaf(x[i], s, t);
}
extern "C" int dcu_add(dcu_ctx *c, float *y, const float *a, const float *b, size_t n) {
    if (!n) return 0;
    k_add<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(y, a, b, n);
    return dcu_check_launch(c, "k_add");
}
extern "C" int dcu_mul(dcu_ctx *c, float *y, const float *a, const float *b, size_t n) {
    if (!n) return 0;
    k_mul<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(y, a, b, n);
    return dcu_check_launch(c, "k_mul");
}
extern "C" int dcu_scale(dcu_ctx *c, float *y, const float *x, float s, float t, size_t n) {
    if (!n) return 0;
    k_scale<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(y, x, s, t, n);
    return dcu_check_launch(c, "k_scale");
}

/* y [N, C, HW] = x + bias[C] (bias of type bt) */
__global__ void k_add_channel_bias(float *y, const float *x, const void *bias, int bt, size_t N, size_t C,
                                   size_t HW) {
    DCU_GRID_STRIDE(i, N * C * HW) y[i] = x[i] + dcu_load_w(bias, bt, (i / HW) % C);
}
extern "C" int dcu_add_channel_bias(dcu_ctx *c, float *y, const float *x, const void *bias, int bt, size_t N,
                                    size_t C, size_t HW) {
    size_t n = N * C * HW;
    if (!n) return 0;
    k_add_channel_bias<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(y, x, bias, bt, N, C, HW);
    return dcu_check_launch(c, "k_add_channel_bias");
}

/* y [M, N] = x [M, N] + row[N] (row of type rt) */
__global__ void k_add_row(float *y, const float *x, const void *row, int rt, size_t M, size_t N) {
    DCU_GRID_STRIDE(i, M * N) y[i] = x[i] + dcu_load_w(row, rt, i % N);
}
extern "C" int dcu_add_row(dcu_ctx *c, float *y, const float *x, const void *row, int rt, size_t M, size_t N) {
    if (!M || !N) return 0;
    k_add_row<<<dcu_blocks(M * N, 256), 256, 0, DCU_STREAM(c)>>>(y, x, row, rt, M, N);
    return dcu_check_launch(c, "k_add_row");
}

/* x [N, C, H, W] -> y [N, C, 2H, 2W], y[.., oh, ow] = x[.., oh/2, ow/2]; one thread per output */
__global__ void k_upsample2x(float *y, const float *x, size_t NC, size_t H, size_t W) {
    size_t OW = 2 * W, OH = 2 * H;
    DCU_GRID_STRIDE(i, NC * OH * OW) {
        size_t ow = i % OW, oh = (i / OW) % OH, nc = i / (OW * OH);
        y[i] = x[(nc * H + oh / 2) * W + ow / 2];
    }
}
extern "C" int dcu_upsample2x(dcu_ctx *c, float *y, const float *x, size_t N, size_t C, size_t H, size_t W) {
    size_t n = N * C * H * W * 4;
    if (!n) return 0;
    k_upsample2x<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(y, x, N * C, H, W);
    return dcu_check_launch(c, "k_upsample2x");
}

/* a [N, Ca, HW] ++ b [N, Cb, HW] -> y [N, Ca+Cb, HW] */
__global__ void k_concat(float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N, size_t HW) {
    size_t C = Ca + Cb;
    DCU_GRID_STRIDE(i, N * C * HW) {
        size_t p = i % HW, ch = (i / HW) % C, n = i / (HW * C);
        y[i] = ch < Ca ? a[(n * Ca + ch) * HW + p] : b[(n * Cb + (ch - Ca)) * HW + p];
    }
}
extern "C" int dcu_concat_channels(dcu_ctx *c, float *y, const float *a, size_t Ca, const float *b, size_t Cb,
                                   size_t N, size_t HW) {
    size_t n = N * (Ca + Cb) * HW;
    if (!n) return 0;
    k_concat<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(y, a, Ca, b, Cb, N, HW);
    return dcu_check_launch(c, "k_concat");
}

/* y[b, n, m] = x[b, m, n]: 32x32 tiles through shared memory (padded by one column against bank
 * conflicts) so both the read and the write are coalesced. grid (ceil(N/32), ceil(M/32), B),
 * block (32, 8). */
__global__ void k_transpose(float *y, const float *x, size_t M, size_t N) {
    __shared__ float tile[32][33];
    size_t b = blockIdx.z;
    const float *xb = x + b * M * N;
    float *yb = y + b * M * N;
    size_t n0 = (size_t)blockIdx.x * 32, m0 = (size_t)blockIdx.y * 32;
    for (int r = threadIdx.y; r < 32; r += 8) {
        size_t m = m0 + r, n = n0 + threadIdx.x;
        if (m < M && n < N) tile[r][threadIdx.x] = xb[m * N + n];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += 8) {
        size_t n = n0 + r, m = m0 + threadIdx.x;
        if (m < M && n < N) yb[n * M + m] = tile[threadIdx.x][r];
    }
}
extern "C" int dcu_transpose(dcu_ctx *c, float *y, const float *x, size_t B, size_t M, size_t N) {
    if (!B || !M || !N) return 0;
    if (B > 65535 || (M + 31) / 32 > 65535) {
        snprintf(c->msg, sizeof c->msg, "dcu_transpose: B=%zu M=%zu exceed the grid limits", B, M);
        return (int)cudaErrorInvalidValue;
    }
    if (x == y) {
        snprintf(c->msg, sizeof c->msg, "dcu_transpose: in-place transpose is not supported");
        return (int)cudaErrorInvalidValue;
    }
    dim3 grid((unsigned)((N + 31) / 32), (unsigned)((M + 31) / 32), (unsigned)B), block(32, 8);
    k_transpose<<<grid, block, 0, DCU_STREAM(c)>>>(y, x, M, N);
    return dcu_check_launch(c, "k_transpose");
}

/* y[i, d] = table[ids[i], d] for i < n, d < D (table of type tt) */
__global__ void k_gather_rows(float *y, const void *table, int tt, const int32_t *ids, size_t n, size_t D) {
    DCU_GRID_STRIDE(i, n * D) y[i] = dcu_load_w(table, tt, (size_t)ids[i / D] * D + i % D);
}
extern "C" int dcu_gather_rows(dcu_ctx *c, float *y, const void *table, int tt, const int32_t *ids, size_t n,
                               size_t D) {
    if (!n || !D) return 0;
    k_gather_rows<<<dcu_blocks(n * D, 256), 256, 0, DCU_STREAM(c)>>>(y, table, tt, ids, n, D);
    return dcu_check_launch(c, "k_gather_rows");
}

/* t [B] -> y [B, dim]: the f32 steps of ops.c's dk_timestep_embedding (which follows diffusers'
 * f32 arithmetic: exponent, exp, product, then sin/cos), one thread per (b, k) pair */
__global__ void k_temb(float *y, const float *t, size_t B, dcu_temb p) {
    int half = p.dim / 2;
    float lnp = logf(p.max_period);
    DCU_GRID_STRIDE(i, B * (size_t)(half > 0 ? half : 1)) {
        size_t b = i / (half > 0 ? half : 1);
        int k = (int)(i % (half > 0 ? half : 1));
        float *row = y + b * (size_t)p.dim;
        if (half > 0) {
            float expo = -lnp * (float)k;
            expo = expo / ((float)half - p.downscale_freq_shift);
            float arg = t[b] * expf(expo) * p.scale;
            float s = sinf(arg), co = cosf(arg);
            row[k] = p.flip_sin_to_cos ? co : s;
            row[half + k] = p.flip_sin_to_cos ? s : co;
        }
        if (k == 0 && p.dim % 2) row[p.dim - 1] = 0.0f;
    }
}
extern "C" int dcu_timestep_embedding(dcu_ctx *c, float *y, const float *t, size_t B, const dcu_temb *p) {
    if (!B || p->dim < 1) return 0;
    size_t n = B * (size_t)(p->dim / 2 > 0 ? p->dim / 2 : 1);
    k_temb<<<dcu_blocks(n, 128), 128, 0, DCU_STREAM(c)>>>(y, t, B, *p);
    return dcu_check_launch(c, "k_temb");
}
