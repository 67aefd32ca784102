/* ops.h - elementwise and data-movement operations of the SD 1.x / CLIP / VAE forwards.
 *
 * Mirrors: torch.nn.functional.silu, gelu (approximate='none' is erf-exact, 'tanh'), CLIP's
 * QuickGELU (x * sigmoid(1.702 x)), diffusers GEGLU (hidden, gate = proj(x).chunk(2, -1);
 * hidden * gelu(gate)), F.interpolate(scale_factor=2, mode='nearest'), torch.cat(dim=1), and
 * diffusers embeddings.get_timestep_embedding.
 *
 * All activations are f32 row-major in PyTorch dimension order. Unless a function says otherwise,
 * y may equal x (in place) but must not partially overlap it. Every fast function has a plain
 * *_ref twin computing in double. Weight-like operands (bias vectors) may be f32, f16 or bf16.
 */
#ifndef DK_OPS_H
#define DK_OPS_H

#include "kcommon.h"

/* ---- activations: y[n] = f(x[n]) ---- */
void dk_silu(float *y, const float *x, size_t n);
void dk_gelu(float *y, const float *x, size_t n);       /* 0.5 x (1 + erf(x / sqrt 2)) */
void dk_gelu_tanh(float *y, const float *x, size_t n);  /* 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) */
void dk_quick_gelu(float *y, const float *x, size_t n); /* x * sigmoid(1.702 x) */
void dk_silu_ref(float *y, const float *x, size_t n);
void dk_gelu_ref(float *y, const float *x, size_t n);
void dk_gelu_tanh_ref(float *y, const float *x, size_t n);
void dk_quick_gelu_ref(float *y, const float *x, size_t n);

/* GEGLU: x [M, 2F] (hidden = columns 0..F-1, gate = F..2F-1) -> y [M, F] = hidden * gelu(gate).
 * y must not overlap x. */
void dk_geglu(float *y, const float *x, size_t M, size_t F);
void dk_geglu_ref(float *y, const float *x, size_t M, size_t F);

/* ---- arithmetic with broadcasting ---- */
/* y[n] = a[n] + b[n] (also the residual add: y == a allowed) */
void dk_add(float *y, const float *a, const float *b, size_t n);
void dk_mul(float *y, const float *a, const float *b, size_t n);
/* y[n] = x[n] * s + t */
void dk_scale(float *y, const float *x, float s, float t, size_t n);
/* y [N, C, HW] = x [N, C, HW] + bias[C] (bias of type bt) */
void dk_add_channel_bias(float *y, const float *x, const void *bias, dk_wtype bt, size_t N, size_t C, size_t HW);
/* y [N, C, HW] = x [N, C, HW] + b[N, C] (f32 activation: the resnet's projected time embedding,
 * hidden + temb[:, :, None, None], one row per sample) */
void dk_add_sample_channel_bias(float *y, const float *x, const float *b, size_t N, size_t C, size_t HW);
void dk_add_sample_channel_bias_ref(float *y, const float *x, const float *b, size_t N, size_t C, size_t HW);
/* y [M, N] = x [M, N] + row[N] (row of type rt): linear bias, or a time-embedding row over tokens */
void dk_add_row(float *y, const float *x, const void *row, dk_wtype rt, size_t M, size_t N);
void dk_add_ref(float *y, const float *a, const float *b, size_t n);
void dk_mul_ref(float *y, const float *a, const float *b, size_t n);
void dk_scale_ref(float *y, const float *x, float s, float t, size_t n);
void dk_add_channel_bias_ref(float *y, const float *x, const void *bias, dk_wtype bt, size_t N, size_t C, size_t HW);
void dk_add_row_ref(float *y, const float *x, const void *row, dk_wtype rt, size_t M, size_t N);

/* ---- data movement ---- */
/* nearest 2x upsample: x [N, C, H, W] -> y [N, C, 2H, 2W]; y must not overlap x */
void dk_upsample2x_nearest(float *y, const float *x, size_t N, size_t C, size_t H, size_t W);
void dk_upsample2x_nearest_ref(float *y, const float *x, size_t N, size_t C, size_t H, size_t W);
/* channel concat: a [N, Ca, HW] ++ b [N, Cb, HW] -> y [N, Ca+Cb, HW] (torch.cat(dim=1)) */
void dk_concat_channels(float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N, size_t HW);
void dk_concat_channels_ref(float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N, size_t HW);

/* ---- sinusoidal timestep embedding (diffusers get_timestep_embedding) ----
 * t [B] (float timesteps) -> y [B, dim]. half = dim/2; freq_k = exp(-ln(max_period) * k / (half -
 * shift)); emb = [sin(t*freq), cos(t*freq)] (cos first when flip_sin_to_cos), times `scale`; an odd
 * dim gets a zero last column. SD 1.x: flip_sin_to_cos=1, shift=0, scale=1, max_period=10000. */
typedef struct dk_temb_params {
    int dim;
    int flip_sin_to_cos;
    float downscale_freq_shift;
    float scale;
    float max_period;
} dk_temb_params;
dk_temb_params dk_temb_params_sd(int dim); /* the SD 1.x values above */
void dk_timestep_embedding(float *y, const float *t, size_t B, const dk_temb_params *p);
void dk_timestep_embedding_ref(float *y, const float *t, size_t B, const dk_temb_params *p);

#endif
