/* norm.h - normalisation kernels of the SD 1.x / CLIP / VAE forwards.
 *
 * Mirrors torch.nn.GroupNorm (biased variance over each (sample, group), optional per-channel
 * affine) with diffusers' fused "GroupNorm then SiLU" of the resnet blocks, torch.nn.LayerNorm over
 * the last dimension, and torch.softmax(dim=-1).
 *
 * Statistics are two-pass (mean first, then the mean of squared deviations) with f32 SIMD partial
 * sums over chunks of at most 1024 elements combined in double, the first pass summing x - x[0]: the VAE's activations reach 1e3-1e4
 * with a comparatively small spread, where the one-pass E[x^2] - E[x]^2 loses every digit, and
 * chunked partial sums keep the f32 rounding error of the sums at ~1e-6 relative. Normalisation
 * computes ((x - mean_hi) - mean_lo) * (rstd * gamma) + beta, with the double mean split into two
 * f32 parts, never x * a + b with b = beta - mean * a, for the same reason: at |mean| ~ 1e4 the f32
 * rounding of the mean alone would be ~5e-4 in every output. Each (sample, group) or row is reduced by one thread in a fixed order, so results are
 * bit-identical for any thread count.
 *
 * Affine parameters may be f32, f16 or bf16 (dk_wtype), converted on the fly; NULL means none.
 * y may equal x (in place).
 */
#ifndef DK_NORM_H
#define DK_NORM_H

#include "kcommon.h"

typedef struct dk_groupnorm_params {
    size_t N, C, HW;     /* x, y: [N, C, HW] (NCHW with H*W flattened) */
    int groups;          /* C % groups == 0; SD uses 32 */
    float eps;           /* 1e-5 UNet resnets, 1e-6 VAE and transformer-block GroupNorms */
    const void *gamma;   /* [C] or NULL */
    const void *beta;    /* [C] or NULL */
    dk_wtype wtype;      /* type of gamma and beta */
    int silu;            /* apply SiLU after the affine (diffusers resnet: norm -> nonlinearity) */
} dk_groupnorm_params;

void dk_groupnorm(float *y, const float *x, const dk_groupnorm_params *p);
void dk_groupnorm_ref(float *y, const float *x, const dk_groupnorm_params *p);

/* x, y: [M, D]; gamma, beta: [D] of type wt or NULL. eps 1e-5 in SD / CLIP. */
void dk_layernorm(float *y, const float *x, size_t M, size_t D, float eps, const void *gamma, const void *beta,
                  dk_wtype wt);
void dk_layernorm_ref(float *y, const float *x, size_t M, size_t D, float eps, const void *gamma,
                      const void *beta, dk_wtype wt);

/* x, y: [M, D]; softmax over each row of D (max subtracted first, so any finite input is safe;
 * -inf entries give 0, a row of all -inf gives NaN as torch does). */
void dk_softmax(float *y, const float *x, size_t M, size_t D);
void dk_softmax_ref(float *y, const float *x, size_t M, size_t D);

#endif
