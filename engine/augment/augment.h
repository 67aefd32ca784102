/* augment.h - `diffaug augment`: apply one generative data-augmentation recipe to a whole
 * ImageFolder dataset (shared/METHODS.md; docs/RECIPES.md):
 *
 *   DiffuseMix   (Islam et al., CVPR 2024; released code augment/ + utils.py): InstructPix2Pix edit
 *                per (image, prompt), 20 px ramp hybrid with the original, fractal blend;
 *   DiffCoRe-Mix (paper + released code): context-template text-to-image per class, CLIP ViT-B/32
 *                hard-cosine filter against a class reference, pixel / patch mixing with real images;
 *   SGID         (paper; no code released): img2img DDIM with a per-image guidance scale from the CLIP
 *                similarity of the image and its "{label}, {caption}" prompt.
 *
 * The run is deterministic (every draw keyed by seed, image/class id, index and purpose; batch size,
 * thread count and shard count change no byte), resumable (the manifest says what is finished;
 * outputs are written atomically before their record), sharded (--shard I/N over work units) and
 * never writes into the input. The library prints nothing: messages and progress go through the
 * callbacks below.
 */
#ifndef DA_AUGMENT_AUGMENT_H
#define DA_AUGMENT_AUGMENT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "augment/dataset.h"
#include "augment/mix.h"
#include "diffaug.h"

typedef enum da_recipe { DA_RECIPE_DIFFUSEMIX, DA_RECIPE_DIFFCOREMIX, DA_RECIPE_SGID, DA_RECIPE_COUNT } da_recipe;
/* "diffusemix", "diffcoremix", "sgid" */
const char *da_recipe_name(da_recipe r);
/* Parse a recipe name (DA_ERR_INVALID_ARG listing the three otherwise). */
da_status da_recipe_parse(const char *s, da_recipe *out, da_error *err);

typedef enum da_msg_level { DA_MSG_INFO, DA_MSG_WARN } da_msg_level;
/* A line for the user (no trailing newline): input problems, deviations in force, missing captions. */
typedef void (*da_aug_msg_fn)(void *ctx, da_msg_level level, const char *text);
/* After every finished unit: done of total units of this run (resume-skipped ones excluded),
 * outputs kept so far in this run. */
typedef void (*da_aug_progress_fn)(void *ctx, uint64_t done, uint64_t total, uint64_t kept, double elapsed_s);

/* Which DiffCoRe-Mix mixing produces the output of a kept generation. */
typedef enum da_dcm_mix { DA_DCM_MIX_RANDOM, DA_DCM_MIX_PIXEL, DA_DCM_MIX_PATCH, DA_DCM_MIX_NONE } da_dcm_mix;

typedef struct da_augment_opts {
    da_recipe recipe;
    /* paths */
    const char *model;      /* SD 1.x / SDXL (SGID, DiffCoRe-Mix; CosXL is DiffCoRe-Mix's) or InstructPix2Pix
                               (DiffuseMix): file or diffusers folder */
    const char *vae;        /* a VAE replacing the model's (DiffCoRe-Mix's code: the fp16-fixed SDXL VAE); NULL */
    const char *tokenizer;  /* vocab folder for a single-file model without one; NULL: the model's */
    const char *clip;       /* transformers CLIPModel folder: required by DiffCoRe-Mix and SGID */
    const char *input, *output;
    const char *captions;   /* SGID: "<class>/<file>\t<caption>" lines; NULL: label only */
    const char *prompts;    /* DiffuseMix: comma-separated list or a file (one prompt a line); NULL: all 10 */
    const char *fractals;   /* DiffuseMix: folder of fractal images; NULL: procedural set */
    const char *templates;  /* DiffCoRe-Mix: file of templates (one a line, {label} {noun}); NULL: the 16 */
    const char *negative;   /* DiffCoRe-Mix negative prompt; NULL: the released one */
    /* run */
    uint64_t seed;          /* default 0 */
    int batch;              /* items per generation call; default 1 */
    da_shard shard;         /* default 0/1 */
    int threads;            /* 0: OpenMP default */
    const char *backend;    /* da_backend_new's names: "cpu" (default), "cuda", "cuda:N", "auto", "guard" */
    bool verify;            /* decode every input during the scan; default true */
    bool jpeg;              /* write JPEG (quality 95) instead of PNG; default false */
    bool intermediates;     /* also write generated/ (and DiffuseMix's concatenated/, fractal/) */
    int sheet_rows;         /* > 0: write sheet.png with this many rows original|generated|hybrid|final */
    /* generation; defaults depend on the recipe (da_augment_opts_init) */
    int steps;
    int size;               /* square output side, multiple of 8 */
    int sampler;            /* da_sampler_kind, or DA_AUG_SAMPLER_AUTO (DiffCoRe-Mix's default): EDM Euler on
                               an EDM model (CosXL), DDIM otherwise */
    /* DiffuseMix (METHODS.md 1) */
    double text_guidance;   /* 4.0 */
    double image_guidance;  /* 1.5 */
    double lambda;          /* fractal weight 0.20 */
    bool binary_mask;       /* paper: hard edge instead of the 20 px ramp */
    bool paper_halves;      /* paper: any of the 4 half orders (generated first drawn at random) */
    bool round_blend;       /* round instead of truncating the blend */
    int n_fractals;         /* size of the procedural set; 64 */
    da_degenerate_opts degenerate;
    /* DiffCoRe-Mix (METHODS.md 2) */
    double guidance;        /* DiffCoRe-Mix CFG 12; SGID: unused (per image) */
    double budget;          /* attempts per class = floor(budget x class size); 0.3 */
    double filter_threshold;/* keep when cos > this; 0.6 */
    bool ref_first;         /* code variant: the class's first image as the filter reference */
    const char *noun;       /* {noun}; "object" */
    da_dcm_mix mix;         /* random (default): pixel or patch with probability 1/2 each */
    int patch_grid;         /* P = 4 */
    double lam_lo, lam_hi;  /* pixel mix lam ~ U(0.5, 1.0) */
    double r_lo, r_hi;      /* patch fraction r ~ U(0.2, 0.5) */
    /* SGID (METHODS.md 3) */
    double strength;        /* 0.5 */
    double w_min, w_max, s_lo, s_hi; /* 3, 12, 0.20, 0.35 */
    int samples;            /* outputs per image; 1 */
    const char *prompt_template; /* "{label}, {caption}" */
    const char *blip;       /* SGID: BlipForConditionalGeneration folder captioning each image (cached under
                               OUT/captions/<class>/<file>.txt); --captions overrides; NULL: label only */
    int blip_beams;         /* 1 (greedy, METHODS.md 3) */
    int blip_max_tokens;    /* 30 */
    /* callbacks (any may be NULL) */
    da_aug_msg_fn on_msg;
    da_aug_progress_fn on_progress;
    void *cb_ctx;
    volatile sig_atomic_t *stop; /* set non-zero to stop after the current step (DA_ERR_INTERRUPTED) */
} da_augment_opts;

#define DA_AUG_SAMPLER_AUTO (-1)

/* Defaults for recipe r (METHODS.md tables). */
void da_augment_opts_init(da_augment_opts *o, da_recipe r);

typedef struct da_augment_result {
    uint64_t units_total;   /* work units of the whole dataset */
    uint64_t units_shard;   /* of this shard */
    uint64_t skipped;       /* already finished (resume) */
    uint64_t done;          /* processed in this run */
    uint64_t kept, dropped; /* records written in this run */
    uint64_t problems;      /* input problems found by the scan */
    double wall_s;
    char manifest[512];     /* manifest path */
    char summary[512];
    char sheet[512];        /* "" when none was written */
} da_augment_result;

/* Run the recipe. Refuses at once, before any work: a missing or unreadable input, an output inside
 * the input, a model that does not open or does not fit the recipe, a missing --clip where the
 * recipe needs it, a captions or prompts file that cannot be read. Stops at the first write error
 * (every finished output and record stays). res may be NULL. */
da_status da_augment_run(const da_augment_opts *o, da_augment_result *res, da_error *err);

/* Manifest / summary / sheet names of a shard: "manifest.jsonl" for an unsharded run,
 * "manifest-<I>-of-<N>.jsonl" otherwise (likewise summary, sheet). */
void da_augment_shard_name(const char *base, const char *ext, da_shard s, char *buf, size_t cap);

/* Short sampler names as the manifest writes them: "ddim", "euler", "euler_a", "dpmpp_2m", "edm_euler". */
const char *da_aug_sampler_name(int kind);
da_status da_aug_sampler_parse(const char *s, int *kind, da_error *err);

/* SGID's guidance from the similarity: clamp(w_min + (w_max - w_min)(s - s_lo)/(s_hi - s_lo)). */
double da_sgid_guidance(double s, double w_min, double w_max, double s_lo, double s_hi);
/* DiffCoRe-Mix's attempts for a class of n real images: floor(budget x n) (with a 1e-9 guard so
 * 0.3 x 10 gives 3). */
uint32_t da_dcm_attempts(double budget, size_t n);
/* Substitute {label}, {noun}, {caption} in a template; malloc'd (NULL on out of memory). */
char *da_template_fill(const char *tmpl, const char *label, const char *noun, const char *caption);

#endif
