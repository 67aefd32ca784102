/* modelfile.h - recognise a model on disk, infer its configuration, and check every tensor.
 *
 * Recognised (see docs/MODELS.md for the rules):
 *   - an original single-file SD checkpoint (.safetensors with model.diffusion_model.*,
 *     first_stage_model.*, cond_stage_model.transformer.text_model.*): SD 1.x or InstructPix2Pix;
 *   - the SDXL single file (model.diffusion_model.* with label_emb, first_stage_model.*,
 *     conditioner.embedders.0.transformer.text_model.*, conditioner.embedders.1.model.*);
 *   - a diffusers pipeline folder (model_index.json + unet/ vae/ text_encoder/ [text_encoder_2/]
 *     [tokenizer/ scheduler/]), SD 1.x, InstructPix2Pix or SDXL (StableDiffusionXLPipeline);
 *   - a transformers CLIPModel folder (config.json + model.safetensors);
 *   - a transformers BlipForConditionalGeneration folder (config.json + model.safetensors [+ vocab.txt]);
 *   - one component: a folder with config.json + weights (unet/, vae/, text_encoder/), or a lone
 *     .safetensors file of a UNet / VAE (diffusers or ldm naming) / CLIP text encoder.
 * SD 2.x is recognised and refused with DA_ERR_UNSUPPORTED.
 *
 * da_model_open validates everything once: each safetensors file (da_st_open), the configuration
 * (from config.json where present, else from tensor shapes), and both directions of the tensor list
 * (nothing missing, nothing unexpected, every shape), naming the file and tensor in any error.
 * Loaders then walk da_spec_* of m->spec and fetch each tensor with da_model_tensor().
 */
#ifndef DA_MODELFILE_H
#define DA_MODELFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "diffaug.h"
#include "modelspec.h"
#include "safetensors.h"

typedef enum da_model_kind {
    DA_KIND_SD_SINGLE,        /* single-file SD checkpoint */
    DA_KIND_SD_DIFFUSERS,     /* diffusers pipeline folder */
    DA_KIND_CLIP_FOLDER,      /* transformers CLIPModel folder */
    DA_KIND_COMPONENT_FOLDER, /* one diffusers/transformers component folder (config.json + weights) */
    DA_KIND_COMPONENT_FILE,   /* one component's .safetensors without config */
    DA_KIND_BLIP_FOLDER,      /* transformers BlipForConditionalGeneration folder */
} da_model_kind;
const char *da_model_kind_name(da_model_kind k);

typedef struct da_model_part {
    da_component comp;  /* what the file holds (DA_COMP_COUNT: several, i.e. a single file) */
    char *path;
    da_st_file *st;
    const char *strip;  /* canonical prefix the file's keys lack: "text_model." for CLIPTextModel files
                           saved by transformers >= 5, else "" */
} da_model_part;

/* Sampling marker tensors an SDXL single file may carry at its top level (ComfyUI's SDXL.model_type
 * reads them; its checkpoint saver writes them as 0-d float32 tensors):
 *   edm_vpred.sigma_max [, edm_vpred.sigma_min]: an EDM v-prediction model (CosXL) and its sigma range;
 *   v_pred (empty tensor): v-prediction on the discrete schedule; ztsnr: zero terminal SNR;
 *   edm_mean + edm_std: Playground v2.5-style EDM with per-channel latent statistics.
 * They are recorded here instead of being "unexpected"; the pipeline decides what it supports. */
typedef struct da_model_markers {
    bool edm_vpred;                  /* edm_vpred.sigma_max present */
    double sigma_max, sigma_min;     /* their values (sigma_min 0 when absent) */
    bool v_pred, ztsnr, edm_mean_std;
} da_model_markers;

typedef struct da_model_file {
    char *path;
    da_model_kind kind;
    da_layout layout;          /* naming the tensors use */
    da_component component;    /* the component of a component file/folder; DA_COMP_COUNT otherwise */
    da_model_config cfg;       /* inferred configuration (for a component, the other parts are sd15 defaults) */
    bool cfg_from_json;        /* configuration read from config.json files (else from shapes) */
    da_spec *spec;
    int n_parts;
    da_model_part parts[4];   /* SDXL folders: unet, vae, text_encoder, text_encoder_2 */
    const char *ldm_prefix;    /* prefix missing from a lone ldm VAE file ("first_stage_model."), else "" */
    char *tokenizer_dir;       /* folder with vocab.json + merges.txt (BLIP: vocab.txt), or NULL */
    char *tokenizer_2_dir;     /* SDXL: tokenizer_2/ (pad token "!" in the released files), or NULL */
    char *scheduler_config;    /* scheduler/scheduler_config.json, or NULL */
    size_t n_ignored;          /* tolerated keys not used (model_ema.*, position_ids buffers) */
    size_t n_tensors_expected; /* spec entries of the present components (extras excluded) */
    da_model_markers markers;  /* sampling markers of a single file */
    struct da_model_file *vae_file; /* replacement VAE (da_model_open_ex opts.vae): VAE tensors come from
                                       it; NULL: the model's own */
} da_model_file;

/* Recognise path, infer and validate. On error *out is NULL and err says what and where. */
da_status da_model_open(const char *path, da_model_file **out, da_error *err);
void da_model_close(da_model_file *m);

/* Options of da_model_open_ex (zero-initialise or da_model_open_opts_init). */
typedef struct da_model_open_opts {
    /* A separate VAE replacing the model's (e.g. sdxl-vae-fp16-fix, vae-ft-mse-840000): a diffusers
     * vae folder (config.json + weights) or a lone .safetensors in diffusers or ldm naming (with or
     * without the first_stage_model. prefix). Its structure must equal the model's VAE; its
     * scaling_factor is used when it comes with a config.json, else the model's is kept. */
    const char *vae;
} da_model_open_opts;
void da_model_open_opts_init(da_model_open_opts *o);
/* da_model_open with options (opts may be NULL). */
da_status da_model_open_ex(const char *path, const da_model_open_opts *opts, da_model_file **out, da_error *err);

/* Whether the model carries component c. */
bool da_model_has(const da_model_file *m, da_component c);
/* The file tensor holding spec entry t (stored under the model's layout, with that layout's shape),
 * or NULL when absent (only DA_COMP_EXTRA entries and components the model lacks can be absent). */
const da_st_tensor *da_model_tensor(const da_model_file *m, const da_tensor_spec *t);
/* The file that holds component c (NULL if absent). */
const da_model_part *da_model_part_of(const da_model_file *m, da_component c);

/* Keys real files carry that no model reads: ldm EMA copies (model_ema.*) and transformers'
 * position_ids buffers. */
bool da_model_key_ignorable(const char *key);

#endif /* DA_MODELFILE_H */
