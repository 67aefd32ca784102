/* modelspec.h - model configurations, the canonical tensor naming, and the mapping between the
 * canonical (diffusers / transformers) naming and the original single-file ("ldm") naming.
 *
 * Mirrors: diffusers UNet2DConditionModel / ldm openaimodel.UNetModel (SD 1.x, InstructPix2Pix),
 * diffusers AutoencoderKL / ldm autoencoder.AutoencoderKL (kl-f8), transformers CLIPTextModel /
 * ldm FrozenCLIPEmbedder, transformers CLIPTextModelWithProjection / sgm FrozenOpenCLIPEmbedder2
 * (open_clip naming), transformers CLIPModel (text + vision towers and projections).
 *
 * How the loaders use this module:
 *   1. decide a da_model_config once (preset by name, or da_detect in modelfile.h);
 *   2. da_spec_build(cfg) gives every tensor the model has: component, canonical name, shape, the
 *      single-file key and shape, and how mkmodel initialises it;
 *   3. da_spec_map_key(spec, layout, component, key) maps a key as it appears in a file of a given
 *      layout to its entry (NULL: unexpected key). Most single-file shapes differ from the
 *      canonical one only by trailing unit dimensions (ldm VAE attention 1x1 convs [C,C,1,1] vs
 *      linear [C,C]): the bytes are identical and the "transform" is a reshape. OpenCLIP tensors
 *      (SDXL's conditioner.embedders.1) need a real one, described by the entry's da_xform:
 *      DA_XF_ROWS (q, k and v are row ranges of one packed in_proj tensor, so three entries share
 *      one single-file key) and DA_XF_TRANSPOSE (text_projection is stored [D, P], used x @ P).
 *      The weights binder applies it when binding, mkmodel in reverse when writing.
 *      da_spec_shape_matches() accepts exactly the shape of the layout (the stored shape).
 */
#ifndef DA_MODELSPEC_H
#define DA_MODELSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diffaug.h"
#include "safetensors.h"

#define DA_MAX_LEVELS 4

/* diffusers UNet2DConditionModel config (the SD 1.x / SDXL subset: CrossAttnDown/UpBlock2D + plain
 * blocks, conv or linear proj_in/proj_out, 1..16 transformer layers per attention, GEGLU
 * feed-forward, optional text_time added conditioning). */
typedef struct da_unet_config {
    int in_channels, out_channels;
    int n_levels;
    int block_out_channels[DA_MAX_LEVELS];
    bool level_has_attn[DA_MAX_LEVELS]; /* down level i (CrossAttnDownBlock2D); up mirrors it */
    int layers_per_block;
    /* attention heads of down level i (diffusers' legacy "attention_head_dim", which is the head
     * count: 8 everywhere for SD 1.x, 5/10/20 for SDXL); up level i mirrors down level n-1-i and the
     * mid block uses the last level's */
    int heads[DA_MAX_LEVELS];
    /* transformer_layers_per_block of down level i (1 for SD 1.x, 1/2/10 for SDXL), mirrored and
     * taken for the mid block the same way */
    int transformer_depth[DA_MAX_LEVELS];
    int cross_attention_dim; /* width of the text states (768 for SD 1.x, 2048 for SDXL) */
    int norm_num_groups;
    float norm_eps;
    bool linear_proj;        /* use_linear_projection: Transformer2DModel proj_in/out are Linear (SDXL) */
    /* addition_embed_type "text_time" (SDXL): 0 = none. addition_time_embed_dim is the width of each
     * micro-conditioning value's sinusoidal embedding (256); addition_embed_dim is
     * projection_class_embeddings_input_dim (2816 = pooled text 1280 + 6 x 256) */
    int addition_time_embed_dim;
    int addition_embed_dim;
    int sample_size;         /* latent size the model was trained at (64 for SD 1.x, 128 for SDXL) */
    int time_embed_dim;      /* 4 * block_out_channels[0] */
} da_unet_config;

/* diffusers AutoencoderKL (ldm kl-f8) config. */
typedef struct da_vae_config {
    int in_channels, out_channels, latent_channels;
    int n_levels;
    int block_out_channels[DA_MAX_LEVELS];
    int layers_per_block;
    int norm_num_groups;
    float norm_eps;
    float scaling_factor;
    int sample_size;
} da_vae_config;

/* transformers CLIPTextConfig. */
typedef struct da_clip_text_config {
    int vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_positions;
    char hidden_act[16]; /* "quick_gelu" (OpenAI CLIP, SD 1.x) or "gelu" */
    float layer_norm_eps;
    int projection_dim;
    int bos_token_id, eos_token_id, pad_token_id;
} da_clip_text_config;

/* transformers CLIPVisionConfig. */
typedef struct da_clip_vision_config {
    int image_size, patch_size, num_channels, hidden_size, num_layers, num_heads, intermediate_size;
    char hidden_act[16];
    float layer_norm_eps;
    int projection_dim;
} da_clip_vision_config;

/* transformers BlipTextConfig: the BERT-style caption decoder of BlipForConditionalGeneration
 * (post-LN layers with causal self-attention, cross-attention to the image tokens, GELU MLP, LM head
 * tied to the word embeddings). */
typedef struct da_blip_text_config {
    int vocab_size, hidden_size, encoder_hidden_size, num_layers, num_heads, intermediate_size, max_positions;
    char hidden_act[16];
    float layer_norm_eps;
    int projection_dim;
    int bos_token_id, eos_token_id, pad_token_id, sep_token_id;
} da_blip_text_config;

typedef enum da_model_family {
    DA_FAMILY_SD1,  /* SD 1.x text-to-image: UNet (4 in-channels) + VAE + CLIP text */
    DA_FAMILY_IP2P, /* InstructPix2Pix: the same with an 8-channel UNet input */
    DA_FAMILY_CLIP, /* CLIPModel: text + vision towers with projections */
    DA_FAMILY_SDXL, /* SDXL: UNet with text_time conditioning + VAE + CLIP-L text + OpenCLIP bigG text */
    DA_FAMILY_BLIP, /* BlipForConditionalGeneration: ViT (vision) + BERT decoder with cross-attention */
} da_model_family;

typedef struct da_model_config {
    char name[32];       /* preset name ("sd15", "tiny-ip2p", ...) or "detected" */
    da_model_family family;
    da_unet_config unet;        /* SD families */
    da_vae_config vae;          /* SD families */
    da_clip_text_config text;   /* all families (SDXL: CLIP ViT-L/14, text_encoder) */
    da_clip_text_config text2;  /* SDXL: OpenCLIP ViT-bigG/14 (text_encoder_2, with text_projection) */
    da_clip_vision_config vision; /* CLIP */
    int projection_dim;         /* CLIP */
    float logit_scale_init;     /* CLIP: 2.6592 = ln(1/0.07) */
    /* SD training schedule (ldm DDPM register_schedule, diffusers scaled_linear). */
    int num_train_timesteps;
    double beta_start, beta_end;
    /* BLIP: the caption decoder (its ViT is `vision`, hidden_act "gelu", no projection used). */
    da_blip_text_config blip_text;
} da_model_config;

/* Presets: sd15, ip2p, sdxl, clip-vit-b32, clip-vit-l14, blip-base, blip-large and their tiny-*
 * twins (tiny-blip is the twin of blip-base). Returns false for an unknown name. */
bool da_config_preset(const char *name, da_model_config *out);
/* NULL-terminated list of preset names. */
const char *const *da_config_preset_names(void);
/* Check a configuration for internal consistency (channels divisible by groups and heads, ...). */
da_status da_config_validate(const da_model_config *cfg, da_error *err);
/* One-line description ("SD 1.x UNet in=4 320/640/1280/1280 ..."), into buf. */
void da_config_describe(const da_model_config *cfg, char *buf, size_t n);
const char *da_family_name(da_model_family f);

/* Components: the files of a diffusers folder / the prefixes of a single file. */
typedef enum da_component {
    DA_COMP_UNET,         /* diffusers unet/  | single file model.diffusion_model. */
    DA_COMP_VAE,          /* diffusers vae/   | first_stage_model. */
    DA_COMP_TEXT_ENCODER, /* diffusers text_encoder/ (CLIPTextModel) | cond_stage_model.transformer.
                             | SDXL conditioner.embedders.0.transformer. */
    DA_COMP_TEXT_ENCODER_2, /* SDXL: diffusers text_encoder_2/ (CLIPTextModelWithProjection)
                               | conditioner.embedders.1.model. (OpenCLIP naming) */
    DA_COMP_CLIP,         /* transformers CLIPModel folder (no single-file form) */
    DA_COMP_EXTRA,        /* single-file only: ldm schedule buffers, EMA counters, position_ids */
    DA_COMP_BLIP,         /* transformers BlipForConditionalGeneration folder (no single-file form) */
    DA_COMP_COUNT
} da_component;
const char *da_component_name(da_component c); /* "unet", "vae", "text_encoder", "clip", "extra" */
/* One component's part of the configuration, into buf. */
void da_config_describe_part(const da_model_config *cfg, da_component c, char *buf, size_t n);

typedef enum da_layout {
    DA_LAYOUT_DIFFUSERS, /* diffusers / transformers folders (canonical naming) */
    DA_LAYOUT_SINGLE,    /* original single-file checkpoint (ldm naming) */
} da_layout;
const char *da_layout_name(da_layout l); /* "diffusers", "single" */

/* How mkmodel fills a tensor (PyTorch / transformers default initialisation). */
typedef enum da_init_kind {
    DA_INIT_UNIFORM,  /* U(-a, a); a = 1/sqrt(fan_in) for Linear/Conv weight and bias */
    DA_INIT_NORMAL,   /* N(0, a) */
    DA_INIT_ONES,     /* norm weights */
    DA_INIT_ZEROS,    /* norm biases, CLIP linear biases */
    DA_INIT_CONST,    /* every element = a (CLIP logit_scale, EMA decay) */
    DA_INIT_ARANGE,   /* 0, 1, 2, ... (position_ids) */
    DA_INIT_SCHEDULE, /* an ldm DDPM schedule buffer: see da_schedule_buffer */
} da_init_kind;

/* How a tensor stored in the single-file layout relates to the canonical one (see the top). */
typedef enum da_xform_kind {
    DA_XF_NONE,      /* same bytes (shapes may differ by trailing unit dimensions) */
    DA_XF_ROWS,      /* canonical = rows [r0, r1) of the stored tensor (dimension 0); the stored
                        tensor packs several canonical ones, each its own entry with the same key */
    DA_XF_TRANSPOSE, /* canonical [a, b] = stored [b, a] transposed (rank 2) */
} da_xform_kind;

typedef struct da_xform {
    da_xform_kind kind;
    int64_t r0, r1; /* DA_XF_ROWS */
} da_xform;

typedef struct da_tensor_spec {
    da_component comp;
    const char *name;      /* canonical name inside its component file ("conv_in.weight") */
    int rank;
    int64_t shape[4];
    const char *ldm_name;  /* full single-file key ("model.diffusion_model.input_blocks.0.0.weight"),
                              NULL when the tensor has no single-file form */
    int ldm_rank;
    int64_t ldm_shape[4];
    bool single_only;      /* present only in single files (DA_COMP_EXTRA) */
    da_dtype fixed_dtype;  /* DA_I64 / DA_I32 for integer buffers; DA_DTYPE_COUNT = model dtype */
    da_init_kind init;
    double init_a;
    bool is_norm;          /* a norm weight/bias (affected by mkmodel's jitter option) */
    bool is_bias;
    da_xform xf;           /* single-file layout only: stored (ldm_shape) -> canonical (shape) */
    bool optional;         /* accepted when present, not required, not written by mkmodel (tied copies
                              such as BLIP's cls.predictions.decoder.weight) */
} da_tensor_spec;

typedef struct da_spec da_spec; /* every tensor of one configuration, with lookup tables */

da_status da_spec_build(const da_model_config *cfg, da_spec **out, da_error *err);
void da_spec_free(da_spec *s);
size_t da_spec_count(const da_spec *s);
const da_tensor_spec *da_spec_at(const da_spec *s, size_t i);
/* The config the spec was built from. */
const da_model_config *da_spec_config(const da_spec *s);
/* Count of tensors of a component present in a layout (extras only in DA_LAYOUT_SINGLE). */
size_t da_spec_count_in(const da_spec *s, da_component c, da_layout l);
/* Canonical lookup: component + canonical name. */
const da_tensor_spec *da_spec_find(const da_spec *s, da_component c, const char *name);
/* Map a file key to its entry. DA_LAYOUT_DIFFUSERS: key is the name inside component c's file.
 * DA_LAYOUT_SINGLE: key is the full single-file key and c is ignored (the prefix decides). NULL when
 * the key is not part of this configuration in that layout. */
const da_tensor_spec *da_spec_map_key(const da_spec *s, da_layout l, da_component c, const char *key);
/* The key and shape of an entry in a layout (name / ldm_name). */
const char *da_spec_key(const da_tensor_spec *t, da_layout l);
void da_spec_shape(const da_tensor_spec *t, da_layout l, int *rank, const int64_t **shape);
/* Whether (rank, shape) is what layout l stores for t. */
bool da_spec_shape_matches(const da_tensor_spec *t, da_layout l, int rank, const int64_t *shape);
uint64_t da_spec_numel(const da_tensor_spec *t);
/* The transform from the stored form of t in layout l (DA_XF_NONE in the diffusers layout). */
da_xform da_spec_xform(const da_tensor_spec *t, da_layout l);
/* Every entry stored under single-file key `ldm_key` (one, or the parts of a packed tensor in
 * row order), up to max into out; returns how many there are. */
size_t da_spec_parts(const da_spec *s, const char *ldm_key, const da_tensor_spec **out, size_t max);
/* Write the canonical bytes of t (dtype and element size of the stored tensor, canonical shape)
 * from `stored`, the tensor as layout l stores it, into dst (da_spec_numel(t) elements). Checks
 * the stored shape first (DA_ERR_SHAPE naming the tensor). */
da_status da_spec_xform_apply(const da_tensor_spec *t, da_layout l, const da_st_tensor *stored, void *dst,
                              da_error *err);
/* "[320, 4, 3, 3]" into buf. */
void da_shape_str(int rank, const int64_t *shape, char *buf, size_t n);

/* The single-file prefix of the CLIP-L text tower (no trailing dot):
 * "cond_stage_model.transformer.text_model" (SD 1.x) or
 * "conditioner.embedders.0.transformer.text_model" (SDXL). */
const char *da_text_ldm_prefix(da_model_family f);

/* The ldm DDPM schedule buffers a single file carries (SD 1.x scaled_linear: betas =
 * linspace(sqrt(beta_start), sqrt(beta_end), T)^2 in float64). name is the key without prefix
 * ("alphas_cumprod", ...). Fills out[0..T) in double; false for an unknown name. */
bool da_schedule_buffer(const da_model_config *cfg, const char *name, double *out);

#endif /* DA_MODELSPEC_H */
