/* sampling.cu - the sampling loop's arithmetic on the GPU: linear combinations of latents, the
 * classifier-free guidance combination and the Philox normal stream, each one thread per element
 * calling the same per-element function of kernels/cpu/sampling.h that the CPU runs (rounding op
 * for op; the _rn intrinsics there keep nvcc from fusing multiply-adds). */
#include "dcu_common.cuh"
#include "sampling.h"

struct lincomb_args {
    int k;
    float a[DK_LINCOMB_MAX];
    const float *x[DK_LINCOMB_MAX];
};

/* K a compile-time constant: the term loop unrolls and the argument arrays stay in registers */
template <int K> __global__ void k_lincomb(float *y, lincomb_args p, size_t n) {
    DCU_GRID_STRIDE(j, n) y[j] = dk_lincomb_elem(K, p.a, p.x, j);
}

extern "C" int dcu_lincomb(dcu_ctx *c, float *y, int k, const float *a, const float *const *x, size_t n) {
    if (k < 1 || k > DK_LINCOMB_MAX) {
        snprintf(c->msg, sizeof c->msg, "dcu_lincomb: %d terms (1..%d)", k, DK_LINCOMB_MAX);
        return (int)cudaErrorInvalidValue;
    }
    if (!n) return 0;
    lincomb_args p;
    memset(&p, 0, sizeof p);
    p.k = k;
    for (int i = 0; i < k; i++) p.a[i] = a[i], p.x[i] = x[i];
    unsigned g = dcu_blocks(n, 256);
    cudaStream_t st = DCU_STREAM(c);
    switch (k) {
    case 1: k_lincomb<1><<<g, 256, 0, st>>>(y, p, n); break;
    case 2: k_lincomb<2><<<g, 256, 0, st>>>(y, p, n); break;
    case 3: k_lincomb<3><<<g, 256, 0, st>>>(y, p, n); break;
    default: k_lincomb<4><<<g, 256, 0, st>>>(y, p, n); break;
    }
    return dcu_check_launch(c, "k_lincomb");
}

__global__ void k_cfg(float *y, const float *u, const float *cond, float g, size_t n) {
    DCU_GRID_STRIDE(j, n) y[j] = dk_cfg_elem(u[j], cond[j], g);
}
__global__ void k_cfg_edit(float *y, const float *u, const float *cond, const float *img, float g, float gi, size_t n) {
    DCU_GRID_STRIDE(j, n) y[j] = dk_cfg_edit_elem(u[j], cond[j], img[j], g, gi);
}

extern "C" int dcu_cfg_combine(dcu_ctx *c, float *y, const float *u, const float *cond, const float *img, float g,
                               float g_img, size_t n) {
    if (!n) return 0;
    if (img) k_cfg_edit<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(y, u, cond, img, g, g_img, n);
    else k_cfg<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(y, u, cond, g, n);
    return dcu_check_launch(c, img ? "k_cfg_edit" : "k_cfg");
}

/* One thread per Box-Muller pair (block index b): both of its elements, where they fall in
 * [first, first + n), so each Philox block and each log / sqrt is computed once, as on the CPU. */
__global__ void k_philox_normal(float *y, uint64_t seed, uint64_t stream, uint64_t first, size_t n, float mean,
                                float std) {
    const uint64_t b0 = first / 2, b1 = (first + n - 1) / 2;
    for (uint64_t b = b0 + (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; b <= b1;
         b += (uint64_t)gridDim.x * blockDim.x) {
        uint32_t w[4];
        double r, th;
        dk_philox_block(seed, stream, b, w);
        dk_box_muller(w, &r, &th);
        for (uint64_t idx = 2 * b; idx < 2 * b + 2; idx++)
            if (idx >= first && idx < first + n) y[idx - first] = dk_normal_of(idx, r, th, mean, std);
    }
}

extern "C" int dcu_philox_normal(dcu_ctx *c, float *y, uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                                 float mean, float std) {
    if (!n) return 0;
    if (first + n < first) {
        snprintf(c->msg, sizeof c->msg, "dcu_philox_normal: first %llu + n %zu wraps the 64-bit counter",
                 (unsigned long long)first, n);
        return (int)cudaErrorInvalidValue;
    }
    size_t pairs = (size_t)((first + n - 1) / 2 - first / 2 + 1);
    k_philox_normal<<<dcu_blocks(pairs, 128), 128, 0, DCU_STREAM(c)>>>(y, seed, stream, first, n, mean, std);
    return dcu_check_launch(c, "k_philox_normal");
}

/* One sampler update per element: the scalars come by value (dk_step), the per-element code is
 * sampling.h's, so the GPU follows the CPU's rounding step for step. */
__global__ void k_sampler_step(dk_step st, float *x, const float *m, const float *noise, float *cur_x0,
                               const float *prev_x0, size_t n) {
    DCU_GRID_STRIDE(j, n) dk_step_elem(&st, x, m, noise, cur_x0, prev_x0, j);
}

extern "C" int dcu_sampler_step(dcu_ctx *c, const dk_step *st, float *x, const float *m, const float *noise,
                                float *cur_x0, const float *prev_x0, size_t n) {
    if (!n) return 0;
    k_sampler_step<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(*st, x, m, noise, cur_x0, prev_x0, n);
    return dcu_check_launch(c, "k_sampler_step");
}

__global__ void k_model_input(dk_model_input p, float *y, const float *x, size_t n) {
    DCU_GRID_STRIDE(j, n) y[j] = dk_model_input_elem(&p, x[j]);
}

extern "C" int dcu_model_input(dcu_ctx *c, const dk_model_input *p, float *y, const float *x, size_t n) {
    if (!n) return 0;
    k_model_input<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(*p, y, x, n);
    return dcu_check_launch(c, "k_model_input");
}
