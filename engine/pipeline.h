/* pipeline.h - Stable Diffusion generation: txt2img, img2img and InstructPix2Pix editing over one
 * loaded model, with every image and guidance branch of a step in one batched UNet call.
 *
 * Mirrors diffusers' StableDiffusionPipeline, StableDiffusionImg2ImgPipeline,
 * StableDiffusionInstructPix2PixPipeline and StableDiffusionXLPipeline (+ its img2img sibling): the
 * same timesteps (schedule.h), the same latent scaling, the same classifier-free guidance
 * combinations, the same order of random draws in the torch-compatible noise mode. SDXL runs the
 * same loop with the family's conditioning (two text encoders' penultimate states side by side,
 * the pooled text embedding and the six micro-conditioning time ids per UNet row); EDM v-prediction
 * checkpoints (CosXL) sample with EDM Euler (docs/PIPELINES.md).
 *
 * Randomness. Two modes:
 *   DA_RNG_PHILOX: every draw of item i comes from Philox4x32-10 keyed by (seed, item.image_id,
 *     item.index, purpose), so an image does not depend on the batch it ran in, the thread count,
 *     the shard or the backend;
 *   DA_RNG_TORCH: torch.manual_seed(seed) on the CPU and the draws in diffusers' order for the whole
 *     batch (posterior sample, initial latents, each ancestral step's noise), so a diffusers result
 *     with the same seed can be recreated. Items then must share one seed.
 * Tests inject noise through da_gen_params.noise_hook instead.
 */
#ifndef DA_PIPELINE_H
#define DA_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "diffaug.h"
#include "image.h"
#include "modelspec.h"
#include "schedule.h"

typedef struct da_sd da_sd; /* a loaded SD 1.x / InstructPix2Pix / SDXL model (text encoders, UNet, VAE, tokenizers) */

typedef struct da_sd_options {
    const char *model;          /* single file, diffusers folder */
    const char *tokenizer;      /* vocab folder/file when the model has none (single files); NULL: the model's */
    const char *vae;            /* a VAE that replaces the model's (diffusers vae/ folder, or a lone VAE
                                   .safetensors in either naming, e.g. the fp16-fixed SDXL VAE); NULL: the model's */
    const char *backend;        /* da_backend_new's names: "cpu" (default), "cuda", "cuda:N", "auto", "guard" */
    int threads;                /* 0: OpenMP default */
    bool strict;                /* unexpected tensors are an error instead of a warning */
} da_sd_options;
void da_sd_options_init(da_sd_options *o);

da_status da_sd_open(const da_sd_options *o, da_sd **out, da_error *err);
void da_sd_close(da_sd *sd);
const da_model_config *da_sd_config(const da_sd *sd); /* unet.in_channels == 8: InstructPix2Pix */
/* The backend the model runs on ("cpu", "cuda", "cuda:1", "guard"; "auto" resolved), for manifests. */
const char *da_sd_backend(const da_sd *sd);
/* What the checkpoint says about its sampling: an EDM v-prediction model (CosXL: marker tensors
 * edm_vpred.sigma_max / edm_vpred.sigma_min in a single file, or an EDMEulerScheduler
 * scheduler_config.json in a folder) and its sigma range. */
typedef struct da_sd_sampling {
    bool edm;                   /* EDM (continuous sigma) model */
    da_prediction prediction;   /* what the checkpoint predicts (from markers / scheduler config; else epsilon) */
    double sigma_min, sigma_max, sigma_data;
    const char *source;         /* where that came from, for messages ("edm_vpred.sigma_max tensor", ...) */
} da_sd_sampling;
const da_sd_sampling *da_sd_model_sampling(const da_sd *sd);
/* SHA-256 of the model's weight files (hex), computed once on first use; for manifests. */
const char *da_sd_hash(da_sd *sd);

typedef enum da_gen_mode {
    DA_GEN_TXT2IMG,
    DA_GEN_IMG2IMG, /* item.init is the source image; params.strength */
    DA_GEN_EDIT,    /* InstructPix2Pix: item.init is the image to edit; item.image_guidance */
} da_gen_mode;

typedef enum da_rng_mode { DA_RNG_PHILOX, DA_RNG_TORCH } da_rng_mode;

/* Whether to sample as an EDM model: AUTO follows the checkpoint (da_sd_model_sampling), ON forces it
 * (a CosXL file whose markers were stripped), OFF ignores the markers. */
typedef enum da_edm_mode { DA_EDM_AUTO, DA_EDM_ON, DA_EDM_OFF } da_edm_mode;
/* Prediction type: AUTO follows the checkpoint / scheduler config. */
typedef enum da_pred_mode { DA_PREDICT_AUTO, DA_PREDICT_EPSILON, DA_PREDICT_V } da_pred_mode;

/* Which draw a noise request is for (also the Philox purpose). */
typedef enum da_gen_draw {
    DA_DRAW_POSTERIOR, /* img2img: the VAE posterior sample */
    DA_DRAW_LATENT,    /* the initial latents (txt2img) or the img2img noise */
    DA_DRAW_STEP,      /* ancestral / DDIM-eta noise of a step */
} da_gen_draw;

/* One image to produce. */
typedef struct da_gen_item {
    const char *prompt;
    const char *negative;     /* SD 1.x: NULL or "" is the empty prompt. SDXL: NULL is diffusers'
                                 negative_prompt=None, i.e. zero embeddings when the model has
                                 force_zeros_for_empty_prompt (default true); "" is the encoded empty prompt */
    float guidance;           /* text CFG scale (<= 1: no unconditional branch) */
    float image_guidance;     /* DA_GEN_EDIT only */
    const da_image *init;     /* DA_GEN_IMG2IMG / DA_GEN_EDIT source (resized to width x height) */
    uint64_t seed;
    uint64_t image_id;        /* Philox key parts: a dataset image id, or the sample index */
    uint32_t index;           /* prompt / attempt index */
} da_gen_item;
void da_gen_item_init(da_gen_item *it);

/* Called for every draw in DA_RNG_* order; fills out[n] for item `item` (step = -1 unless STEP).
 * Return non-OK to stop. Used by the parity tests to inject the reference's noise. */
typedef da_status (*da_noise_hook)(void *ctx, da_gen_draw draw, int item, int step, float *out, size_t n);
/* Called after every step with the batch's latents [n_items, 4, h, w]; return non-OK to stop
 * (DA_ERR_INTERRUPTED for a user's Ctrl-C). */
typedef da_status (*da_step_hook)(void *ctx, int step, int n_steps, const float *latents, size_t n);

typedef struct da_gen_params {
    da_gen_mode mode;
    da_sampler_kind sampler;  /* DA_SAMPLER_DDIM, _EULER, _EULER_A, _DPMPP_2M, _EDM_EULER (an EDM model
                                 samples only with EDM Euler) */
    bool karras;              /* Karras sigmas (dpmpp_2m_karras; EDM: the Karras schedule instead of the
                                 exponential one an EDM model gets) */
    da_edm_mode edm;          /* DA_EDM_AUTO */
    da_pred_mode prediction;  /* DA_PREDICT_AUTO */
    double sigma_min, sigma_max, sigma_data; /* EDM overrides (0: the checkpoint's, else CosXL's 0.002, 120, 1) */
    /* SDXL micro-conditioning (StableDiffusionXLPipeline original_size, crops_coords_top_left,
     * target_size), each (height, width) / (top, left); 0 x 0 sizes mean (height, width) */
    int original_size[2], crop_top_left[2], target_size[2];
    int steps;
    float strength;           /* img2img */
    bool img2img_mean;        /* img2img: start from the VAE posterior mean (METHODS.md's SGID) instead of a
                                 posterior sample (diffusers); no DA_DRAW_POSTERIOR draw is made */
    float eta;                /* DDIM */
    int width, height;        /* multiples of 8 */
    da_rng_mode rng;
    da_noise_hook noise_hook; void *noise_ctx;
    da_step_hook step_hook;   void *step_ctx;
} da_gen_params;
void da_gen_params_init(da_gen_params *p); /* txt2img, Euler a, 20 steps, 512x512, Philox */

/* The six SDXL time ids of p (diffusers _get_add_time_ids): original (h, w), crop (top, left),
 * target (h, w), zero sizes replaced by (height, width). */
void da_gen_time_ids(const da_gen_params *p, float out[6]);

/* The scheduler configuration a run of p on sd uses (what da_sd_generate builds its schedule from):
 * the model's scheduler_config.json read as p->sampler's class, else the family's defaults (SD 1.x;
 * SDXL: scaled_linear with leading spacing, as SDXL base's file); an EDM model (or p->edm ON): EDM
 * Euler with the checkpoint's sigma range, sigma_data 1 and the exponential schedule (CosXL), Karras
 * with p->karras; then p's prediction and sigma overrides. */
da_status da_gen_sched_config(const da_sd *sd, const da_gen_params *p, da_sched_config *c, da_error *err);

/* Generate n images (all in one batched loop). out[i] receives RGB8 width x height (caller frees
 * with da_image_free); latents (may be NULL) receives the final latents [n, 4, h, w] unscaled
 * (before the 1/scaling_factor of decoding). */
da_status da_sd_generate(da_sd *sd, const da_gen_params *p, const da_gen_item *items, int n, da_image *out,
                         float *latents, da_error *err);

/* The parameters of one output as PNG text chunks (prompt, negative, seed, sampler, steps,
 * guidance, strength, model hash, diffaug version): keys/values valid until the next call. */
int da_gen_text_chunks(da_sd *sd, const da_gen_params *p, const da_gen_item *it, const char ***keys,
                       const char ***values);

#endif /* DA_PIPELINE_H */
