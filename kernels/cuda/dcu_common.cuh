/* dcu_common.cuh - what every .cu file shares: error reporting into dcu_ctx, launch checks, grid
 * sizing, and device-side weight loads. The f16 / bf16 conversions are kernels/cpu/kcommon.h's own
 * functions compiled for the device too, so GPU and CPU round every value identically (CUDA's
 * __float2half_rn would give a different NaN payload). */
#ifndef DCU_COMMON_CUH
#define DCU_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#include "dcuda.h"
#include "kcommon.h"

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

/* Element i of a weight array of dk_wtype t (0 f32, 1 f16, 2 bf16; dcuda.h passes it as int) as f32. */
__device__ __forceinline__ float dcu_load_w(const void *w, int t, size_t i) { return dk_load_w(w, (dk_wtype)t, i); }

#endif
