/* recipe_int.h - what the recipe files (diffusemix.c, diffcoremix.c, sgid.c) share with the driver
 * (driver.c): the run context, work units, the shard + resume selection, atomic output writing,
 * manifest records with the run's common fields, messages, progress and the contact sheet.
 * Internal to engine/augment. Ours. */
#ifndef DA_AUGMENT_RECIPE_INT_H
#define DA_AUGMENT_RECIPE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "augment/augment.h"
#include "augment/manifest.h"
#include "backend.h"
#include "blip.h"
#include "clip.h"
#include "modelfile.h"
#include "pipeline.h"
#include "tokenizer.h"

/* unit_index of the record that reports an input problem (never a real unit's index). */
#define DA_UNIT_PROBLEM 0xffffffffu
#define DA_AUG_MAX_DEV 8

/* One work unit: (image id, prompt/sample index) or (class id, attempt index). */
typedef struct da_aug_unit {
    uint64_t id;
    uint32_t index;
    size_t image; /* index into ds->images (SIZE_MAX for class-level units) */
    size_t cls;
} da_aug_unit;

typedef struct da_aug_sheet_row {
    da_image cell[4]; /* original, generated, hybrid, final (w == 0: empty) */
} da_aug_sheet_row;

typedef struct da_aug_ctx {
    const da_augment_opts *o;
    da_dataset *ds;
    da_sd *sd;
    int sampler; /* the sampler in force (o->sampler, DA_AUG_SAMPLER_AUTO resolved for the model) */
    /* CLIP (DiffCoRe-Mix, SGID) */
    da_model_file *clip_m;
    da_clip_vision *cv;
    da_clip_text *ct;
    da_tokenizer *ctok;
    da_backend *cbe;
    da_arena carena;
    /* BLIP (SGID --blip) */
    da_model_file *blip_m;
    da_blip *blip;
    da_wordpiece *bwp;
    da_backend *bbe;
    da_arena barena;
    char blip_hash[65];
    /* output */
    char *out_root;
    da_manifest_writer *mw;
    da_resume resume;
    da_model_hash models[3];
    size_t n_models;
    char clip_hash[65];
    const char *dev[DA_AUG_MAX_DEV];
    size_t n_dev;
    char dev_text[64]; /* storage for one run-built deviation label */
    /* progress */
    double t0;
    uint64_t total, done, kept, dropped;
    uint64_t units_all, units_shard, skipped;
    da_aug_sheet_row *rows;
    int n_rows;
} da_aug_ctx;

/* Recipe entry points, called by da_augment_run after the common setup. */
da_status da_aug_diffusemix(da_aug_ctx *c, da_error *err);
da_status da_aug_diffcoremix(da_aug_ctx *c, da_error *err);
da_status da_aug_sgid(da_aug_ctx *c, da_error *err);
/* Option checks each recipe does before any model is opened. */
da_status da_aug_diffusemix_check(const da_augment_opts *o, da_error *err);
da_status da_aug_diffcoremix_check(const da_augment_opts *o, da_error *err);
da_status da_aug_sgid_check(const da_augment_opts *o, da_error *err);

/* A message for the user (printf-style). */
void da_aug_msg(da_aug_ctx *c, da_msg_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Add a labelled deviation (static string) to every record of the run and say it once. */
void da_aug_deviation(da_aug_ctx *c, const char *label, const char *explanation);

/* Keep the units of this shard that are not finished yet (in order); sets c->total. *sel is
 * malloc'd. */
da_status da_aug_select(da_aug_ctx *c, const da_aug_unit *all, size_t n_all, da_aug_unit **sel, size_t *n_sel,
                        da_error *err);
/* Whether the user asked to stop. */
bool da_aug_stopped(const da_aug_ctx *c);
/* da_sd_generate with the stop flag checked after every step. */
da_status da_aug_generate(da_aug_ctx *c, const da_gen_params *p, const da_gen_item *items, int n, da_image *out,
                          da_error *err);
/* Default generation parameters of the run (size, steps, sampler from the options). */
void da_aug_gen_params(const da_aug_ctx *c, da_gen_mode mode, da_gen_params *p);

/* The output extension ("png" / "jpg"). */
const char *da_aug_ext(const da_aug_ctx *c);
/* Write im under out_root/rel (parents created), atomically, PNG or JPEG. */
da_status da_aug_write(da_aug_ctx *c, const char *rel, const da_image *im, da_error *err);
/* Fill the run's common fields of r (recipe, seed, models, version, deviations), append it and count
 * it (kept / dropped, progress). */
da_status da_aug_record(da_aug_ctx *c, da_manifest_rec *r, da_error *err);
/* Offer a sheet row (copied while rows are wanted; NULL cells are empty). */
void da_aug_sheet_offer(da_aug_ctx *c, const da_image *orig, const da_image *gen, const da_image *hyb,
                        const da_image *fin);

/* Load an input image (RGB8); on failure writes the drop record (reason "unreadable: ...") and
 * returns DA_OK with *ok = false, so the run goes on; other errors (manifest write) are returned. */
da_status da_aug_load_input(da_aug_ctx *c, const da_aug_unit *u, da_manifest_rec *proto, da_image *im, bool *ok,
                            da_error *err);
/* CLIP image embedding (L2-normalised, P floats) of one image, batch of one so that it never
 * depends on --batch. */
da_status da_aug_clip_image(da_aug_ctx *c, const da_image *im, float *emb, da_error *err);
/* CLIP text embedding (L2-normalised) of one prompt. */
da_status da_aug_clip_text(da_aug_ctx *c, const char *prompt, float *emb, da_error *err);
int da_aug_clip_dim(const da_aug_ctx *c);
/* Resize to size x size (Pillow bicubic; a copy when already that size). */
da_status da_aug_resize(const da_image *src, int size, da_image *dst, da_error *err);

#endif
