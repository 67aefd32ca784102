/* convert.h - bulk 16-bit float <-> f32 conversion (weights at load time, f16/bf16 parameters in
 * the normalisation kernels). Mirrors torch's Tensor.half() / .bfloat16() / .float(): round to
 * nearest, ties to even; Inf stays Inf; NaN stays NaN (quieted, payload kept where it fits);
 * f16 subnormals are produced and read exactly. Bit-identical to the scalar converters in
 * kcommon.h (dk_f32_to_f16 and friends), which are the reference (the *_ref functions below).
 *
 * Shapes: dst[n], src[n], flat; dst and src must not overlap.
 */
#ifndef DK_CONVERT_H
#define DK_CONVERT_H

#include "kcommon.h"

void dk_f16_to_f32_n(float *dst, const uint16_t *src, size_t n);
void dk_f32_to_f16_n(uint16_t *dst, const float *src, size_t n);
void dk_bf16_to_f32_n(float *dst, const uint16_t *src, size_t n);
void dk_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n);

/* Any weight dtype to f32 (memcpy for DK_F32). */
void dk_convert_to_f32(float *dst, const void *src, dk_wtype t, size_t n);

/* Scalar references: element-by-element through kcommon.h. */
void dk_f16_to_f32_n_ref(float *dst, const uint16_t *src, size_t n);
void dk_f32_to_f16_n_ref(uint16_t *dst, const float *src, size_t n);
void dk_bf16_to_f32_n_ref(float *dst, const uint16_t *src, size_t n);
void dk_f32_to_bf16_n_ref(uint16_t *dst, const float *src, size_t n);

/* Which vector path the fast functions take on this CPU: "avx512", "f16c" or "scalar". */
const char *dk_convert_isa(void);

#endif
