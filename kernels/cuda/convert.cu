/* convert.cu - bulk f32 <-> f16 / bf16 conversion on the GPU, mirroring kernels/cpu/convert.h
 * (torch .half() / .bfloat16() / .float(): round to nearest even, Inf kept, NaN quieted) through
 * the integer algorithms of kcommon.h (dcu_common.cuh), so results are bit-identical to the CPU. */
#include "dcu_common.cuh"

/* dst[n] = convert(src[n]) (flat) */
__global__ void k_f32_to_f16(uint16_t *dst, const float *src, size_t n) {
    DCU_GRID_STRIDE(i, n) dst[i] = dk_f32_to_f16(src[i]);
}
__global__ void k_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
    DCU_GRID_STRIDE(i, n) dst[i] = dk_f32_to_bf16(src[i]);
}
__global__ void k_f16_to_f32(float *dst, const uint16_t *src, size_t n) {
    DCU_GRID_STRIDE(i, n) dst[i] = dk_f16_to_f32(src[i]);
}
__global__ void k_bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
    DCU_GRID_STRIDE(i, n) dst[i] = dk_bf16_to_f32(src[i]);
}

#define CONVERT_LAUNCHER(fn, kernel, TD, TS)                                                   \
    extern "C" int fn(dcu_ctx *c, TD *dst, const TS *src, size_t n) {                           \
        if (!n) return 0;                                                                       \
        kernel<<<dcu_blocks(n, 256), 256, 0, DCU_STREAM(c)>>>(dst, src, n);                     \
        return dcu_check_launch(c, #kernel);                                                    \
    }
CONVERT_LAUNCHER(dcu_f32_to_f16, k_f32_to_f16, uint16_t, float)
CONVERT_LAUNCHER(dcu_f32_to_bf16, k_f32_to_bf16, uint16_t, float)
CONVERT_LAUNCHER(dcu_f16_to_f32, k_f16_to_f32, float, uint16_t)
CONVERT_LAUNCHER(dcu_bf16_to_f32, k_bf16_to_f32, float, uint16_t)
