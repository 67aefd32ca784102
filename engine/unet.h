/* unet.h - the SD 1.x / InstructPix2Pix / SDXL denoising UNet: eps (or v) = unet(sample, timesteps,
 * text states[, SDXL added conditioning]).
 *
 * Mirrors diffusers UNet2DConditionModel (unet_2d_condition.py, unet_2d_blocks.py, resnet.py,
 * transformer_2d.py, attention.py, embeddings.py) as SD 1.x and SDXL configure it, equivalently ldm
 * openaimodel.UNetModel with SpatialTransformer (SD 1.x: context_dim 768, conv proj_in/out; SDXL:
 * context_dim 2048, use_linear_in_transformer, transformer depth 1/2/10, adm_in_channels 2816). The
 * configuration (levels, widths, heads, depths, in_channels 4 or 8, ...) comes from the model file
 * (m->cfg.unet).
 *
 * Use:
 *   da_unet *u;        da_unet_load(model, &u, &err);          weights bound once (16-bit stay 16-bit)
 *   da_unet_ctx *c =   da_unet_ctx_new(u, backend);            per-run state: the activation arena
 *   da_unet_forward(c, &shape, sample, t, context, out, &err); plans the arena on the first call of a
 *                                                              shape, then runs; no allocation after
 * The model file must outlive the da_unet (weights stay in its mapping). A da_unet is immutable and
 * can serve several contexts; one context runs one forward at a time.
 */
#ifndef DA_UNET_H
#define DA_UNET_H

#include <stddef.h>

#include "arena.h"
#include "backend.h"
#include "diffaug.h"
#include "modelfile.h"

typedef struct da_unet da_unet;
typedef struct da_unet_ctx da_unet_ctx;

/* The shape of one forward: sample [batch, in_channels, height, width] (latent; height and width
 * multiples of 2^(levels-1), i.e. 8 for SD 1.x), context [batch, context_len, context_dim]. */
typedef struct da_unet_shape {
    int batch, in_channels, height, width;
    int context_len, context_dim;
} da_unet_shape;

/* Bind the UNet of a model (single file, diffusers folder or unet component). */
da_status da_unet_load(const da_model_file *m, da_unet **out, da_error *err);
void da_unet_free(da_unet *u);
const da_unet_config *da_unet_config_of(const da_unet *u);
/* Bytes of weights kept in the file mapping and bytes copied (small vectors as f32). */
void da_unet_weight_bytes(const da_unet *u, size_t *mapped, size_t *copied);

da_unet_ctx *da_unet_ctx_new(const da_unet *u, da_backend *be);
void da_unet_ctx_free(da_unet_ctx *c);
/* Check a shape against the model (the message names the tensor and what was expected). */
da_status da_unet_check_shape(const da_unet *u, const da_unet_shape *s, da_error *err);
/* Size the arena and backend scratch for a shape (done by da_unet_forward when the shape changes). */
da_status da_unet_plan(da_unet_ctx *c, const da_unet_shape *s, da_error *err);
/* Activation arena bytes and backend scratch bytes of the last plan. */
void da_unet_ctx_bytes(const da_unet_ctx *c, size_t *arena, size_t *scratch);

/* sample [B, Cin, h, w], timesteps [B] (float, fractional allowed), context [B, L, D] (host
 * memory) -> out [B, out_channels, h, w] (host memory). */
da_status da_unet_forward(da_unet_ctx *c, const da_unet_shape *s, const float *sample, const float *timesteps,
                          const float *context, float *out, da_error *err);

/* SDXL added conditioning (diffusers added_cond_kwargs): text_embeds [B, addition_embed_dim - 6*addition_time_embed_dim]
 * (pooled text_encoder_2 output), time_ids [B, 6] (original h, w, crop top, left, target h, w). */
typedef struct da_unet_added { const float *text_embeds; const float *time_ids; } da_unet_added;
/* As da_unet_forward; `added` required when the config has addition_embed_dim > 0, must be NULL otherwise. */
da_status da_unet_forward_added(da_unet_ctx *c, const da_unet_shape *s, const float *sample, const float *timesteps,
                                const float *context, const da_unet_added *added, float *out, da_error *err);

#endif
