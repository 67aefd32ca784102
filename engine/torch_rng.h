/* torch_rng.h - a bit-exact reproduction of PyTorch's CPU random generator for randn.
 *
 * Mirrors torch 2.x at::CPUGeneratorImpl (mt19937 seeded with the low 32 bits of the seed, plus the
 * cached second Box-Muller sample of the double normal distribution) and the CPU normal_ kernel
 * (aten/src/ATen/native/cpu/DistributionTemplates.h): float32 contiguous tensors of >= 16 elements
 * go through normal_fill (uniforms from 24-bit draws, Box-Muller in blocks of 16, the tail block
 * recomputed over the last 16 elements with fresh uniforms); smaller tensors draw one
 * normal_distribution<double> per element (53-bit uniforms from two 32-bit draws, the sine half
 * cached for the next call).
 *
 * So `torch.manual_seed(s); torch.randn(shape)` == da_torch_rng_seed(&g, s); da_torch_randn(&g, out, numel)
 * bit for bit, and successive randn calls on one generator continue the same stream. This is the
 * torch-compatible noise mode; the engine's default, counter-based noise is engine/rng.c (Philox).
 * Caveat: on x86 with AVX2 or AVX-512 torch's normal_fill uses the Cephes-style log/sincos of
 * avx_mathfun.h (reproduced here, with the FMAs its build makes); its portable kernel uses the C
 * library's logf/sinf/cosf instead (da_torch_randn_scalar). See docs/SAMPLERS.md.
 */
#ifndef DA_TORCH_RNG_H
#define DA_TORCH_RNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct da_torch_rng {
    uint32_t mt[624];
    int mti;
    bool has_next_double_normal; /* the cached sin-half of the last double Box-Muller pair */
    double next_double_normal;
} da_torch_rng;

/* torch.manual_seed(seed) / torch.Generator().manual_seed(seed). */
void da_torch_rng_seed(da_torch_rng *g, uint64_t seed);
/* One 32-bit draw (CPUGeneratorImpl::random) and one 64-bit draw (random64: first draw high). */
uint32_t da_torch_rng_u32(da_torch_rng *g);
uint64_t da_torch_rng_u64(da_torch_rng *g);
/* torch.randn(numel, generator=g) as float32 (any shape with numel elements, contiguous), as torch
 * computes it on x86 CPUs with AVX2 or AVX-512 (its avx_mathfun log/sincos). */
void da_torch_randn(da_torch_rng *g, float *out, size_t numel);
/* The same with torch's portable kernel (ATEN_CPU_CAPABILITY=default, non-x86 builds): C library
 * logf/sinf/cosf. Differs from da_torch_randn in the last bits of some elements. */
void da_torch_randn_scalar(da_torch_rng *g, float *out, size_t numel);

#endif /* DA_TORCH_RNG_H */
