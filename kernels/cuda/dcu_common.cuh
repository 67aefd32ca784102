/* dcu_common.cuh - what every .cu file shares: error reporting into dcu_ctx, launch checks, grid
 * sizing, and device-side weight loads / f16 / bf16 conversions that are bit-for-bit the integer
 * algorithms of kernels/cpu/kcommon.h (so GPU and CPU round every value identically; CUDA's
 * __float2half_rn would give a different NaN payload). */
#ifndef DCU_COMMON_CUH
#define DCU_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#include "dcuda.h"

#define DCU_STREAM(c) ((cudaStream_t)(c)->stream)

static inline int dcu_fail(dcu_ctx *c, cudaError_t e, const char *call) {
    snprintf(c->msg, sizeof c->msg, "%s: %s (%s)", call, cudaGetErrorName(e), cudaGetErrorString(e));
    return (int)e;
}

/* After a launch: configuration errors now; with sync_each, execution errors too. */
static inline int dcu_check_launch(dcu_ctx *c, const char *kernel) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return dcu_fail(c, e, kernel);
    if (c->sync_each) {
        e = cudaStreamSynchronize(DCU_STREAM(c));
        if (e != cudaSuccess) return dcu_fail(c, e, kernel);
    }
    return 0;
}

/* Blocks for a grid-stride loop over n items: enough to fill the GPU, capped so the count fits. */
static inline unsigned dcu_blocks(size_t n, int threads) {
    size_t b = (n + threads - 1) / threads;
    if (b > 65535u * 8u) b = 65535u * 8u;
    return b ? (unsigned)b : 1u;
}

#define DCU_GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float dcu_bits_f32(uint32_t u) { return __uint_as_float(u); }
__device__ __forceinline__ uint32_t dcu_f32_bits(float f) { return __float_as_uint(f); }

__device__ __forceinline__ float dcu_bf16_to_f32(uint16_t h) { return dcu_bits_f32((uint32_t)h << 16); }

__device__ __forceinline__ uint16_t dcu_f32_to_bf16(float f) {
    uint32_t u = dcu_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__device__ __forceinline__ float dcu_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        if (man == 0) return dcu_bits_f32(sign);
        float v = (float)man * 5.9604644775390625e-8f; /* subnormal: man * 2^-24, exact */
        return sign ? -v : v;
    }
    if (exp == 31) return dcu_bits_f32(sign | 0x7f800000u | (man << 13));
    return dcu_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

__device__ __forceinline__ uint16_t dcu_f32_to_f16(float f) {
    uint32_t u = dcu_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);                         /* >= 65520: inf */
    if (a < 0x38800000u) {
        if (a < 0x33000000u) return sign; /* < 2^-25: rounds to 0 */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = a - 0x38000000u; /* rebias exponent 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

/* Element i of a weight array of dk_wtype t (0 f32, 1 f16, 2 bf16) as f32. */
__device__ __forceinline__ float dcu_load_w(const void *w, int t, size_t i) {
    if (t == 1) return dcu_f16_to_f32(((const uint16_t *)w)[i]);
    if (t == 2) return dcu_bf16_to_f32(((const uint16_t *)w)[i]);
    return ((const float *)w)[i];
}

#endif
