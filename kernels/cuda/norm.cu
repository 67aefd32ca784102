/* norm.cu - GroupNorm (+ fused SiLU), LayerNorm and row softmax on the GPU, mirroring
 * kernels/cpu/norm.h (torch.nn.GroupNorm, diffusers' norm -> SiLU of the resnet blocks,
 * torch.nn.LayerNorm over the last dim, torch.softmax(dim=-1)).
 *
 * Statistics as norm.c, for the same reason (VAE activations of 1e3-1e4 with a small spread): two
 * passes, the first summing x - x[0] (shift by the first element), the second summing squared
 * deviations from the mean; normalisation computes ((x - mean_hi) - mean_lo) * (rstd * gamma) + beta
 * with the mean split into two f32 parts. Each thread accumulates its strided share in f32; the
 * block combines the per-thread partials in double (a few hundred values, so the f32 error stays
 * that of ~L/threads-element sums). One block per (sample, group) or per row: correct and simple;
 * for the VAE at 512x512 that is only N*32 blocks (a later version splits a group over blocks).
 */
#include "dcu_common.cuh"

#define NORM_THREADS 512

/* Sum of v over the block (every thread gets the total). sh: 32 doubles of shared memory. */
__device__ double block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < nw ? sh[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    double r = sh[0];
    __syncthreads(); /* sh is reused by the next call */
    return r;
}

__device__ float block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < nw ? sh[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    float r = sh[0];
    __syncthreads();
    return r;
}

/* Mean (split hi + lo) and rstd of xs[0..L) by the two shifted passes above. */
__device__ void row_stats(const float *xs, size_t L, float eps, double *sh, float *mh, float *ml, float *rstd) {
    float x0 = xs[0], s = 0.0f;
    for (size_t i = threadIdx.x; i < L; i += blockDim.x) s += xs[i] - x0;
    double mean = (double)x0 + block_sum(s, sh) / (double)L;
    float hi = (float)mean, lo = (float)(mean - (double)hi), ss = 0.0f;
    for (size_t i = threadIdx.x; i < L; i += blockDim.x) {
        float d = (xs[i] - hi) - lo;
        ss = fmaf(d, d, ss);
    }
    double var = block_sum(ss, sh) / (double)L;
    *mh = hi;
    *ml = lo;
    *rstd = (float)(1.0 / sqrt(var + (double)eps));
}

/* x, y [N, C, HW]; grid N*groups blocks, block (n, g) normalises channels g*cpg .. g*cpg+cpg-1 of
 * sample n (contiguous cpg*HW floats). y may equal x: every element is read (both passes) before
 * the block's barrier in block_sum and written only after it, by the thread that reads it last. */
__global__ void __launch_bounds__(NORM_THREADS) k_groupnorm(float *y, const float *x, size_t C, size_t HW, int groups,
                                                            float eps, const void *gamma, const void *beta, int wt,
                                                            int silu) {
    __shared__ double sh[32];
    size_t n = blockIdx.x / groups, g = blockIdx.x % groups, cpg = C / groups, L = cpg * HW;
    size_t off = (n * C + g * cpg) * HW;
    const float *xg = x + off;
    float *yg = y + off;
    float mh, ml, rstd;
    row_stats(xg, L, eps, sh, &mh, &ml, &rstd);
    for (size_t i = threadIdx.x; i < L; i += blockDim.x) {
        size_t ch = g * cpg + i / HW;
        float a = rstd * (gamma ? dcu_load_w(gamma, wt, ch) : 1.0f);
        float b = beta ? dcu_load_w(beta, wt, ch) : 0.0f;
        float v = ((xg[i] - mh) - ml) * a + b;
        if (silu) v = v / (1.0f + expf(-v));
        yg[i] = v;
    }
}

extern "C" int dcu_groupnorm(dcu_ctx *c, float *y, const float *x, size_t N, size_t C, size_t HW, int groups,
                             float eps, const void *gamma, const void *beta, int wt, int silu) {
    if (groups < 1 || C % (size_t)groups != 0) {
        snprintf(c->msg, sizeof c->msg, "dcu_groupnorm: C=%zu is not a multiple of groups=%d", C, groups);
        return (int)cudaErrorInvalidValue;
    }
    size_t blocks = N * (size_t)groups;
    if (!blocks || !HW) return 0;
    if (blocks > 0x7fffffffu) {
        snprintf(c->msg, sizeof c->msg, "dcu_groupnorm: N*groups=%zu too large for one grid", blocks);
        return (int)cudaErrorInvalidValue;
    }
    k_groupnorm<<<(unsigned)blocks, NORM_THREADS, 0, DCU_STREAM(c)>>>(y, x, C, HW, groups, eps, gamma, beta, wt, silu);
    return dcu_check_launch(c, "k_groupnorm");
}

/* x, y [M, D]: one block per row */
__global__ void __launch_bounds__(256) k_layernorm(float *y, const float *x, size_t D, float eps, const void *gamma,
                                                   const void *beta, int wt) {
    __shared__ double sh[32];
    const float *xr = x + (size_t)blockIdx.x * D;
    float *yr = y + (size_t)blockIdx.x * D;
    float mh, ml, rstd;
    row_stats(xr, D, eps, sh, &mh, &ml, &rstd);
    for (size_t j = threadIdx.x; j < D; j += blockDim.x) {
        float a = rstd * (gamma ? dcu_load_w(gamma, wt, j) : 1.0f);
        float b = beta ? dcu_load_w(beta, wt, j) : 0.0f;
        yr[j] = ((xr[j] - mh) - ml) * a + b;
    }
}

extern "C" int dcu_layernorm(dcu_ctx *c, float *y, const float *x, size_t M, size_t D, float eps, const void *gamma,
                             const void *beta, int wt) {
    if (!M || !D) return 0;
    if (M > 0x7fffffffu) {
        snprintf(c->msg, sizeof c->msg, "dcu_layernorm: M=%zu rows too many for one grid", M);
        return (int)cudaErrorInvalidValue;
    }
    k_layernorm<<<(unsigned)M, 256, 0, DCU_STREAM(c)>>>(y, x, D, eps, gamma, beta, wt);
    return dcu_check_launch(c, "k_layernorm");
}

/* x, y [M, D]: one block per row; max first, so any finite row is safe; all -inf rows give NaN
 * (as torch and norm.c) */
__global__ void __launch_bounds__(256) k_softmax(float *y, const float *x, size_t D) {
    __shared__ double sh[32];
    const float *xr = x + (size_t)blockIdx.x * D;
    float *yr = y + (size_t)blockIdx.x * D;
    float mx = -INFINITY;
    for (size_t j = threadIdx.x; j < D; j += blockDim.x) mx = fmaxf(mx, xr[j]);
    mx = block_max(mx, (float *)sh);
    float s = 0.0f;
    for (size_t j = threadIdx.x; j < D; j += blockDim.x) s += expf(xr[j] - mx);
    float inv = (float)(1.0 / block_sum(s, sh));
    for (size_t j = threadIdx.x; j < D; j += blockDim.x) yr[j] = expf(xr[j] - mx) * inv;
}

extern "C" int dcu_softmax(dcu_ctx *c, float *y, const float *x, size_t M, size_t D) {
    if (!M || !D) return 0;
    if (M > 0x7fffffffu) {
        snprintf(c->msg, sizeof c->msg, "dcu_softmax: M=%zu rows too many for one grid", M);
        return (int)cudaErrorInvalidValue;
    }
    k_softmax<<<(unsigned)M, 256, 0, DCU_STREAM(c)>>>(y, x, D);
    return dcu_check_launch(c, "k_softmax");
}
