/* vae.h - the SD kl-f8 autoencoder: diffusers AutoencoderKL (models/autoencoders/autoencoder_kl.py,
 * vae.py Encoder / Decoder, DiagonalGaussianDistribution) = ldm
 * ldm.models.autoencoder.AutoencoderKL (modules/diffusionmodules/model.py Encoder / Decoder).
 *
 *   encode: image [B, 3, H, W] in [-1, 1] -> Encoder -> quant_conv -> moments [B, 2L, H/8, W/8]
 *           -> mean = moments[:, :L], logvar = clamp(moments[:, L:], -30, 20)   (L = 4, unscaled)
 *   decode: latent z [B, L, h, w] (unscaled: the pipelines divide by scaling_factor first)
 *           -> post_quant_conv -> Decoder -> image [B, 3, 8h, 8w] (raw, not clamped)
 *
 * Weights are bound once (16-bit weights stay 16-bit in the file mapping) and never change; a
 * forward's activations come from a caller's da_arena sized by a planning pass (backend.h), so
 * nothing is allocated inside a forward. The convenience calls below plan, commit and run in one
 * go on host buffers. See docs/MODELS.md "VAE forwards" for the memory plan.
 */
#ifndef DA_VAE_H
#define DA_VAE_H

#include "arena.h"
#include "backend.h"
#include "diffaug.h"
#include "image.h"
#include "modelfile.h"

typedef struct da_vae da_vae;

/* Bind the VAE of an opened model (single file, diffusers folder, vae/ folder or lone VAE file).
 * The model must outlive the da_vae (weights point into its mapping). */
da_status da_vae_load(const da_model_file *m, da_vae **out, da_error *err);
/* The same with every weight placed on `be` once (NULL = da_vae_load); the forwards then run only on
 * that backend, which must outlive the da_vae. */
da_status da_vae_load_on(const da_model_file *m, da_backend *be, da_vae **out, da_error *err);
void da_vae_free(da_vae *v);
const da_vae_config *da_vae_cfg(const da_vae *v);
/* Spatial factor between image and latent (8 for kl-f8: 2^(levels-1)). */
int da_vae_factor(const da_vae *v);

/* ---- forwards on backend buffers (both passes of the plan/run protocol) -----------------------
 * Shapes are checked here and failures recorded in be (da_backend_fail), naming the tensor.
 * x [B, 3, H, W] (H, W multiples of the factor) -> moments [B, 2L, H/f, W/f] (raw quant_conv output:
 * mean in channels 0..L-1, unclamped log-variance in L..2L-1). */
void da_vae_encode_fwd(const da_vae *v, da_backend *be, da_arena *a, const float *x, int B, int H, int W,
                       float *moments);
/* z [B, L, h, w] -> y [B, 3, f*h, f*w]. */
void da_vae_decode_fwd(const da_vae *v, da_backend *be, da_arena *a, const float *z, int B, int h, int w, float *y);

/* ---- host convenience (plan + commit + run; be and a are the caller's per-run state) ---------- */
/* img [B, 3, H, W] in [-1, 1] -> mean [B, L, H/f, W/f] and logvar (clamped to [-30, 20]); logvar may
 * be NULL. */
da_status da_vae_encode(const da_vae *v, da_backend *be, da_arena *a, const float *img, int B, int H, int W,
                        float *mean, float *logvar, da_error *err);
/* A posterior sample: mean + exp(0.5 logvar) * noise (DiagonalGaussianDistribution.sample with the
 * caller's standard-normal noise [B, L, H/f, W/f]), unscaled. */
da_status da_vae_encode_sample(const da_vae *v, da_backend *be, da_arena *a, const float *img, int B, int H, int W,
                               const float *noise, float *latent, da_error *err);
/* One RGB8 image -> its latent mean [1, L, h/f, w/f] (image width and height multiples of f). */
da_status da_vae_encode_image(const da_vae *v, da_backend *be, da_arena *a, const da_image *im, float *mean,
                              da_error *err);
/* z [B, L, h, w] (unscaled) -> img [B, 3, f*h, f*w] raw decoder output. */
da_status da_vae_decode(const da_vae *v, da_backend *be, da_arena *a, const float *z, int B, int h, int w,
                        float *img, da_error *err);
/* z [B, L, h, w] -> B RGB8 images (diffusers VaeImageProcessor.postprocess: clamp(x/2+0.5)*255).
 * out[0..B) are filled (free each with da_image_free); on error none is left allocated. */
da_status da_vae_decode_rgb8(const da_vae *v, da_backend *be, da_arena *a, const float *z, int B, int h, int w,
                             da_image *out, da_error *err);

#endif
