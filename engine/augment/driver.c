/* driver.c - the recipe driver shared by DiffuseMix, DiffCoRe-Mix and SGID (METHODS.md section 4):
 * up-front checks, model and CLIP loading, the dataset scan and its problem records, the shard +
 * resume selection of work units, atomic output writing, manifest records carrying the run's
 * common fields (seed, model hashes, version, deviations), progress, the contact sheet and
 * summary.json. The recipe algorithms themselves live in diffusemix.c, diffcoremix.c and sgid.c.
 * Ours (the papers' code runs one process over a folder with none of this). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "augment/contact_sheet.h"
#include "augment/draw.h"
#include "augment/recipe_int.h"
#include "sha256.h"
#include "util.h"

/* ---- names, defaults, small formulas ---------------------------------------------------------- */

const char *da_recipe_name(da_recipe r) {
    switch (r) {
    case DA_RECIPE_DIFFUSEMIX: return "diffusemix";
    case DA_RECIPE_DIFFCOREMIX: return "diffcoremix";
    case DA_RECIPE_SGID: return "sgid";
    default: return "?";
    }
}

da_status da_recipe_parse(const char *s, da_recipe *out, da_error *err) {
    for (int r = 0; r < DA_RECIPE_COUNT; r++)
        if (s && !strcmp(s, da_recipe_name((da_recipe)r))) {
            *out = (da_recipe)r;
            return DA_OK;
        }
    return da_err_set(err, DA_ERR_INVALID_ARG, "unknown recipe '%s' (diffusemix, diffcoremix, sgid)", s ? s : "");
}

void da_augment_opts_init(da_augment_opts *o, da_recipe r) {
    memset(o, 0, sizeof *o);
    o->recipe = r;
    o->batch = 1;
    o->shard.index = 0;
    o->shard.count = 1;
    o->backend = "cpu";
    o->verify = true;
    /* DiffuseMix (code) */
    o->text_guidance = 4.0;
    o->image_guidance = 1.5;
    o->lambda = DA_DMIX_LAMBDA;
    o->n_fractals = 64;
    da_degenerate_opts_init(&o->degenerate);
    /* DiffCoRe-Mix (code; mixing constants ours) */
    o->guidance = 12.0;
    o->budget = 0.3;
    o->filter_threshold = 0.6;
    o->noun = "object";
    o->mix = DA_DCM_MIX_RANDOM;
    o->patch_grid = 4;
    o->lam_lo = 0.5, o->lam_hi = 1.0;
    o->r_lo = 0.2, o->r_hi = 0.5;
    /* SGID (ours, METHODS.md 3) */
    o->strength = 0.5;
    o->w_min = 3, o->w_max = 12, o->s_lo = 0.20, o->s_hi = 0.35;
    o->samples = 1;
    o->prompt_template = "{label}, {caption}";
    o->blip_beams = 1;
    o->blip_max_tokens = 30;
    switch (r) {
    case DA_RECIPE_DIFFUSEMIX: o->steps = 100, o->size = 256, o->sampler = DA_SAMPLER_EULER_A; break;
    case DA_RECIPE_DIFFCOREMIX: o->steps = 50, o->size = 512, o->sampler = DA_AUG_SAMPLER_AUTO; break;
    default: o->steps = 50, o->size = 512, o->sampler = DA_SAMPLER_DDIM; break;
    }
}

static const char *const sampler_names[DA_SAMPLER_COUNT] = {"ddim", "euler", "euler_a", "dpmpp_2m", "edm_euler"};

const char *da_aug_sampler_name(int kind) { return kind >= 0 && kind < DA_SAMPLER_COUNT ? sampler_names[kind] : "?"; }

da_status da_aug_sampler_parse(const char *s, int *kind, da_error *err) {
    for (int k = 0; k < DA_SAMPLER_COUNT; k++)
        if (s && !strcmp(s, sampler_names[k])) {
            *kind = k;
            return DA_OK;
        }
    return da_err_set(err, DA_ERR_INVALID_ARG, "unknown sampler '%s' (ddim, euler, euler_a, dpmpp_2m, edm_euler)",
                      s ? s : "");
}

void da_augment_shard_name(const char *base, const char *ext, da_shard s, char *buf, size_t cap) {
    if (s.count <= 1) snprintf(buf, cap, "%s.%s", base, ext);
    else snprintf(buf, cap, "%s-%u-of-%u.%s", base, s.index, s.count, ext);
}

double da_sgid_guidance(double s, double w_min, double w_max, double s_lo, double s_hi) {
    double w = s_hi > s_lo ? w_min + (w_max - w_min) * (s - s_lo) / (s_hi - s_lo) : (s >= s_hi ? w_max : w_min);
    if (!(w >= w_min)) w = w_min; /* NaN too */
    if (w > w_max) w = w_max;
    return w;
}

uint32_t da_dcm_attempts(double budget, size_t n) {
    double a = floor(budget * (double)n + 1e-9);
    return a < 0 ? 0 : a > (double)DA_DRAW_MAX_INDEX ? DA_DRAW_MAX_INDEX : (uint32_t)a;
}

char *da_template_fill(const char *tmpl, const char *label, const char *noun, const char *caption) {
    da_buf b = {0};
    for (const char *p = tmpl; *p;) {
        const char *sub = NULL;
        size_t skip = 0;
        if (!strncmp(p, "{label}", 7)) sub = label, skip = 7;
        else if (!strncmp(p, "{noun}", 6)) sub = noun, skip = 6;
        else if (!strncmp(p, "{caption}", 9)) sub = caption, skip = 9;
        if (skip) {
            if (sub) da_buf_append(&b, sub, strlen(sub));
            p += skip;
        } else da_buf_append(&b, p++, 1);
    }
    da_buf_append(&b, "", 1);
    if (b.failed) {
        da_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* ---- messages ------------------------------------------------------------------------------------ */

void da_aug_msg(da_aug_ctx *c, da_msg_level level, const char *fmt, ...) {
    if (!c->o->on_msg) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->o->on_msg(c->o->cb_ctx, level, line);
}

void da_aug_deviation(da_aug_ctx *c, const char *label, const char *explanation) {
    for (size_t i = 0; i < c->n_dev; i++)
        if (!strcmp(c->dev[i], label)) return;
    if (c->n_dev < DA_AUG_MAX_DEV) c->dev[c->n_dev++] = label;
    da_aug_msg(c, DA_MSG_WARN, "deviation '%s': %s", label, explanation);
}

/* ---- units --------------------------------------------------------------------------------------- */

da_status da_aug_select(da_aug_ctx *c, const da_aug_unit *all, size_t n_all, da_aug_unit **sel, size_t *n_sel,
                        da_error *err) {
    *sel = NULL;
    *n_sel = 0;
    da_aug_unit *s = malloc((n_all ? n_all : 1) * sizeof *s);
    if (!s) return da_err_set(err, DA_ERR_NOMEM, "out of memory listing %zu work units", n_all);
    size_t k = 0, shard_n = 0, skipped = 0;
    for (size_t u = 0; u < n_all; u++) {
        if (!da_shard_has(c->o->shard, u)) continue;
        shard_n++;
        if (da_resume_has(&c->resume, all[u].id, all[u].index)) {
            skipped++;
            continue;
        }
        s[k++] = all[u];
    }
    *sel = s;
    *n_sel = k;
    c->total = k;
    c->units_all = n_all, c->units_shard = shard_n, c->skipped = skipped;
    if (n_all == 0)
        da_aug_msg(c, DA_MSG_WARN, "no work units in %s%s", c->o->input,
                   c->o->recipe == DA_RECIPE_DIFFCOREMIX
                       ? ": floor(--budget x class size) is 0 for every class (raise --budget for small classes)"
                       : ": no usable image");
    if (skipped)
        da_aug_msg(c, DA_MSG_INFO, "resume: %zu of %zu work units of this shard are already finished", skipped, shard_n);
    return DA_OK;
}

bool da_aug_stopped(const da_aug_ctx *c) { return c->o->stop && *c->o->stop; }

static da_status step_hook(void *ctx, int step, int n_steps, const float *latents, size_t n) {
    const da_aug_ctx *c = ctx;
    return da_aug_stopped(c) ? DA_ERR_INTERRUPTED : DA_OK;
}

void da_aug_gen_params(const da_aug_ctx *c, da_gen_mode mode, da_gen_params *p) {
    da_gen_params_init(p);
    p->mode = mode;
    p->sampler = (da_sampler_kind)c->sampler;
    p->steps = c->o->steps;
    p->width = p->height = c->o->size;
    p->strength = (float)c->o->strength;
    p->eta = 0.0f;
    p->rng = DA_RNG_PHILOX;
    p->step_hook = step_hook;
    p->step_ctx = (void *)c;
}

da_status da_aug_generate(da_aug_ctx *c, const da_gen_params *p, const da_gen_item *items, int n, da_image *out,
                          da_error *err) {
    if (da_aug_stopped(c)) return da_err_set(err, DA_ERR_INTERRUPTED, "interrupted");
    da_status st = da_sd_generate(c->sd, p, items, n, out, NULL, err);
    if (st == DA_ERR_INTERRUPTED) da_err_set(err, DA_ERR_INTERRUPTED, "interrupted");
    return st;
}

/* ---- outputs ------------------------------------------------------------------------------------- */

const char *da_aug_ext(const da_aug_ctx *c) { return c->o->jpeg ? "jpg" : "png"; }

da_status da_aug_write(da_aug_ctx *c, const char *rel, const da_image *im, da_error *err) {
    char *path = da_path_join(c->out_root, rel);
    if (!path) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    char *slash = strrchr(path, '/');
    da_status st = DA_OK;
    if (slash) {
        *slash = 0;
        st = da_mkdirs(path, err);
        *slash = '/';
    }
    if (!st) st = c->o->jpeg ? da_image_save_jpeg(path, im, 95, err) : da_image_save_png(path, im, NULL, NULL, 0, err);
    free(path);
    return st;
}

da_status da_aug_record(da_aug_ctx *c, da_manifest_rec *r, da_error *err) {
    r->recipe = da_recipe_name(c->o->recipe);
    r->seed = c->o->seed;
    r->models = c->models;
    r->n_models = c->n_models;
    r->deviations = c->dev;
    r->n_deviations = c->n_dev;
    r->backend = c->sd ? da_sd_backend(c->sd) : NULL;
    da_status st = da_manifest_append(c->mw, r, err);
    if (st) return st;
    if (r->kept) c->kept++;
    else c->dropped++;
    c->done++;
    if (c->o->on_progress) c->o->on_progress(c->o->cb_ctx, c->done, c->total, c->kept, da_now() - c->t0);
    return DA_OK;
}

void da_aug_sheet_offer(da_aug_ctx *c, const da_image *orig, const da_image *gen, const da_image *hyb,
                        const da_image *fin) {
    if (c->n_rows >= c->o->sheet_rows || !c->rows) return;
    da_aug_sheet_row *row = &c->rows[c->n_rows];
    const da_image *src[4] = {orig, gen, hyb, fin};
    for (int k = 0; k < 4; k++) {
        memset(&row->cell[k], 0, sizeof row->cell[k]);
        if (!src[k] || !src[k]->data) continue;
        da_error e;
        if (da_image_alloc(&row->cell[k], src[k]->w, src[k]->h, &e) == DA_OK)
            memcpy(row->cell[k].data, src[k]->data, (size_t)src[k]->w * src[k]->h * 3);
    }
    c->n_rows++;
}

da_status da_aug_load_input(da_aug_ctx *c, const da_aug_unit *u, da_manifest_rec *proto, da_image *im, bool *ok,
                            da_error *err) {
    *ok = false;
    const da_ds_image *di = &c->ds->images[u->image];
    da_error e;
    if (da_image_load(di->path, im, &e) == DA_OK) {
        *ok = true;
        return DA_OK;
    }
    da_aug_msg(c, DA_MSG_WARN, "%s: %s (skipped)", di->rel, e.msg);
    char reason[1200];
    snprintf(reason, sizeof reason, "unreadable: %s", e.msg);
    proto->kept = false;
    proto->reason = reason;
    proto->output = NULL;
    return da_aug_record(c, proto, err);
}

da_status da_aug_resize(const da_image *src, int size, da_image *dst, da_error *err) {
    if (src->w == size && src->h == size) {
        da_status st = da_image_alloc(dst, size, size, err);
        if (!st) memcpy(dst->data, src->data, (size_t)size * size * 3);
        return st;
    }
    return da_image_resize_bicubic(src, size, size, dst, err);
}

/* ---- CLIP ---------------------------------------------------------------------------------------- */

int da_aug_clip_dim(const da_aug_ctx *c) { return da_clip_vision_projection_dim(c->cv); }

static void l2norm(float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    double inv = s > 0 ? 1.0 / sqrt(s) : 0;
    for (int i = 0; i < n; i++) v[i] = (float)(v[i] * inv);
}

da_status da_aug_clip_image(da_aug_ctx *c, const da_image *im, float *emb, da_error *err) {
    const da_image *one = im;
    da_status st = da_clip_vision_encode_images(c->cv, c->cbe, &c->carena, &one, 1, emb, err);
    if (st) {
        da_err_prefix(err, "CLIP image embedding (%s)", c->o->clip);
        return st;
    }
    l2norm(emb, da_aug_clip_dim(c));
    return DA_OK;
}

da_status da_aug_clip_text(da_aug_ctx *c, const char *prompt, float *emb, da_error *err) {
    da_clip_text_out out = {.text_embeds = emb};
    da_status st = da_clip_text_encode_prompts(c->ct, c->cbe, &c->carena, c->ctok, &prompt, 1, NULL, &out, err);
    if (st) {
        da_err_prefix(err, "CLIP text embedding (%s)", c->o->clip);
        return st;
    }
    l2norm(emb, da_clip_text_projection_dim(c->ct));
    return DA_OK;
}

static da_status open_clip(da_aug_ctx *c, da_error *err) {
    const da_augment_opts *o = c->o;
    da_status st = da_model_open(o->clip, &c->clip_m, err);
    if (st) {
        da_err_prefix(err, "--clip %s", o->clip);
        return st;
    }
    if (!da_model_has(c->clip_m, DA_COMP_CLIP))
        return da_err_set(err, DA_ERR_INVALID_ARG,
                          "--clip %s: not a CLIP model with both towers (a transformers CLIPModel folder, e.g. "
                          "openai/clip-vit-base-patch32), found a %s",
                          o->clip, da_model_kind_name(c->clip_m->kind));
    /* the CLIP towers run on a backend of the same kind as the generation (its own instance) */
    if (!(c->cbe = da_backend_new(o->backend ? o->backend : "cpu", err))) return err->code ? err->code : DA_ERR_NOMEM;
    if ((st = da_clip_vision_load_on(c->clip_m, c->cbe, &c->cv, err)) ||
        (st = da_clip_text_load_on(c->clip_m, DA_COMP_CLIP, c->cbe, &c->ct, err))) {
        da_err_prefix(err, "--clip %s", o->clip);
        return st;
    }
    if (da_clip_vision_projection_dim(c->cv) <= 0 || da_clip_vision_projection_dim(c->cv) != da_clip_text_projection_dim(c->ct))
        return da_err_set(err, DA_ERR_SHAPE, "--clip %s: the image and text projections differ (%d vs %d)", o->clip,
                          da_clip_vision_projection_dim(c->cv), da_clip_text_projection_dim(c->ct));
    if (!c->clip_m->tokenizer_dir)
        return da_err_set(err, DA_ERR_NOT_FOUND, "--clip %s: no tokenizer (vocab.json + merges.txt) in the folder", o->clip);
    if ((st = da_tokenizer_load(c->clip_m->tokenizer_dir, &c->ctok, err))) return st;
    /* the hash of the CLIP weights: of the one file, or of the files' hashes in order */
    da_sha256 h;
    da_sha256_init(&h);
    uint8_t d[32];
    for (int i = 0; i < c->clip_m->n_parts; i++) {
        if ((st = da_sha256_file(c->clip_m->parts[i].path, d, err))) return st;
        if (c->clip_m->n_parts == 1) break;
        char hex[65];
        da_sha256_hex(d, hex);
        da_sha256_update(&h, hex, 64);
    }
    if (c->clip_m->n_parts != 1) da_sha256_final(&h, d);
    da_sha256_hex(d, c->clip_hash);
    c->models[c->n_models++] = (da_model_hash){"clip", c->clip_hash};
    return DA_OK;
}

/* ---- problems, summary, sheet -------------------------------------------------------------------- */

static da_status write_problems(da_aug_ctx *c, uint64_t *n_out, da_error *err) {
    *n_out = 0;
    for (size_t i = 0; i < c->ds->n_problems; i++) {
        const da_problem *p = &c->ds->problems[i];
        da_aug_msg(c, DA_MSG_WARN, "input %s: %s: %s", da_problem_name(p->kind), p->path, p->msg);
        (*n_out)++;
        /* problem records go to shard 0 only, so the shards' union is one run's manifest */
        if (c->o->shard.count > 1 && c->o->shard.index != 0) continue;
        uint64_t id = da_image_id(p->path);
        if (da_resume_has(&c->resume, id, DA_UNIT_PROBLEM)) continue;
        char cls[1024];
        snprintf(cls, sizeof cls, "%s", p->path);
        char *slash = strchr(cls, '/');
        if (slash) *slash = 0;
        char reason[1400];
        snprintf(reason, sizeof reason, "input %s: %s", da_problem_name(p->kind), p->msg);
        da_manifest_rec r;
        da_manifest_rec_init(&r);
        r.unit_id = id;
        r.unit_index = DA_UNIT_PROBLEM;
        r.source = p->path;
        r.class_name = p->kind == DA_PROBLEM_STRAY_FILE ? NULL : cls;
        r.recipe = da_recipe_name(c->o->recipe);
        r.seed = c->o->seed;
        r.kept = false;
        r.reason = reason;
        r.models = c->models;
        r.n_models = c->n_models;
        r.deviations = c->dev;
        r.n_deviations = c->n_dev;
        da_status st = da_manifest_append(c->mw, &r, err);
        if (st) return st;
    }
    return DA_OK;
}

static da_status write_summary(da_aug_ctx *c, const char *manifest_path, const char *summary_path, uint64_t skipped,
                               uint64_t problems, double wall, da_error *err) {
    da_manifest m;
    da_status st = da_manifest_read(manifest_path, &m, err);
    if (st) return st;
    da_summary s = {0};
    for (size_t i = 0; i < m.n && !st; i++)
        if (m.e[i].unit_index != DA_UNIT_PROBLEM) st = da_summary_add(&s, m.e[i].class_name, m.e[i].kept, err);
    s.skipped_resume = skipped;
    s.problems = problems;
    s.produced = c->kept + c->dropped; /* this run's records only: a resume must not claim the earlier work */
    s.backend = c->sd ? da_sd_backend(c->sd) : NULL;
    if (!st) st = da_summary_write(summary_path, &s, da_recipe_name(c->o->recipe), wall, err);
    da_summary_free(&s);
    da_manifest_free(&m);
    return st;
}

static da_status write_sheet(da_aug_ctx *c, const char *path, da_error *err) {
    int rows = c->n_rows;
    const da_image **cells = calloc((size_t)rows * 4, sizeof *cells);
    if (!cells) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < 4; k++) cells[r * 4 + k] = c->rows[r].cell[k].data ? &c->rows[r].cell[k] : NULL;
    da_sheet_opts so;
    da_sheet_opts_init(&so);
    da_image out = {0};
    da_status st = da_contact_sheet(cells, rows, 4, &so, &out, err);
    if (!st) st = da_image_save_png(path, &out, NULL, NULL, 0, err);
    da_image_free(&out);
    free(cells);
    return st;
}

/* A killed run can leave "<file>.tmp.<pid>.<n>" temporaries (util.h da_atomic_*; never under a final
 * name). An unsharded re-run removes those whose process is gone; sharded runs may share the
 * folder with live processes on other hosts, so they leave them (docs/RECIPES.md). */
static size_t clean_stale_temps(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = da_path_join(dir, e->d_name);
        if (!p) break;
        if (da_is_dir(p)) {
            if (depth > 0) n += clean_stale_temps(p, depth - 1);
        } else {
            const char *t = strstr(e->d_name, ".tmp.");
            long pid = 0;
            unsigned k = 0;
            char tail;
            if (t && sscanf(t, ".tmp.%ld.%u%c", &pid, &k, &tail) == 2 && pid > 0 &&
                kill((pid_t)pid, 0) != 0 && errno == ESRCH && remove(p) == 0)
                n++;
        }
        free(p);
    }
    closedir(d);
    return n;
}

/* The BLIP captioner of SGID (--blip): model, tokenizer and the hash that keys the caption cache. */
static da_status open_blip(da_aug_ctx *c, da_error *err) {
    const da_augment_opts *o = c->o;
    /* the captioner runs on a backend of the same kind as the generation (its own instance) */
    da_status st = DA_OK;
    if (!(c->bbe = da_backend_new(o->backend ? o->backend : "cpu", err))) st = err->code ? err->code : DA_ERR_NOMEM;
    if (!st) st = da_model_open(o->blip, &c->blip_m, err);
    if (!st && !da_model_has(c->blip_m, DA_COMP_BLIP))
        st = da_err_set(err, DA_ERR_INVALID_ARG, "not a BLIP captioner (a transformers BlipForConditionalGeneration "
                        "folder, e.g. Salesforce/blip-image-captioning-base), found a %s",
                        da_model_kind_name(c->blip_m->kind));
    if (!st) st = da_blip_load(c->blip_m, c->bbe, &c->blip, err);
    if (!st && !c->blip_m->tokenizer_dir) st = da_err_set(err, DA_ERR_NOT_FOUND, "no vocab.txt in the folder");
    if (!st) st = da_wordpiece_load(c->blip_m->tokenizer_dir, &c->bwp, err);
    if (!st) {
        uint8_t d[32];
        st = da_sha256_file(c->blip_m->parts[0].path, d, err);
        if (!st) da_sha256_hex(d, c->blip_hash);
    }
    if (st) {
        da_err_prefix(err, "--blip %s", o->blip);
        return st;
    }
    c->models[c->n_models++] = (da_model_hash){"blip", c->blip_hash};
    return DA_OK;
}

/* ---- the run ------------------------------------------------------------------------------------- */

static da_status check_opts(const da_augment_opts *o, da_error *err) {
    if (!o->input || !o->output) return da_err_set(err, DA_ERR_INVALID_ARG, "--input and --output are required");
    if (!o->model) return da_err_set(err, DA_ERR_INVALID_ARG, "--model is required");
    if (!da_is_dir(o->input)) return da_err_set(err, DA_ERR_NOT_FOUND, "--input %s: not a folder", o->input);
    if (o->batch < 1 || o->batch > 1024) return da_err_set(err, DA_ERR_INVALID_ARG, "--batch %d: must be 1..1024", o->batch);
    if (o->steps < 1 || o->steps > 1000) return da_err_set(err, DA_ERR_INVALID_ARG, "--steps %d: must be 1..1000", o->steps);
    if (o->size < 8 || o->size > 4096 || o->size % 8)
        return da_err_set(err, DA_ERR_INVALID_ARG, "--size %d: must be a multiple of 8 in 8..4096", o->size);
    if (o->sampler < DA_AUG_SAMPLER_AUTO || o->sampler >= DA_SAMPLER_COUNT)
        return da_err_set(err, DA_ERR_INVALID_ARG, "bad sampler");
    if (o->shard.count < 1 || o->shard.index >= o->shard.count)
        return da_err_set(err, DA_ERR_INVALID_ARG, "--shard %u/%u: need 0 <= I < N", o->shard.index, o->shard.count);
    if (o->sheet_rows < 0 || o->sheet_rows > 256) return da_err_set(err, DA_ERR_INVALID_ARG, "--sheet rows must be 0..256");
    da_status st = da_check_output_dir(o->input, o->output, err);
    if (st) return st;
    if (o->recipe != DA_RECIPE_DIFFUSEMIX && !o->clip)
        return da_err_set(err, DA_ERR_INVALID_ARG,
                          "recipe %s needs a CLIP model: --clip FOLDER (a transformers CLIPModel folder, e.g. "
                          "openai/clip-vit-base-patch32; see weights/README.md)",
                          da_recipe_name(o->recipe));
    if (o->clip && !da_is_dir(o->clip) && !da_is_file(o->clip))
        return da_err_set(err, DA_ERR_NOT_FOUND, "--clip %s: no such file or folder", o->clip);
    if (o->blip && o->recipe != DA_RECIPE_SGID)
        return da_err_set(err, DA_ERR_INVALID_ARG, "--blip: only the sgid recipe captions images");
    if (o->blip && !da_is_dir(o->blip)) return da_err_set(err, DA_ERR_NOT_FOUND, "--blip %s: no such folder", o->blip);
    if (o->blip && (o->blip_beams < 1 || o->blip_beams > 64 || o->blip_max_tokens < 1 || o->blip_max_tokens > 500))
        return da_err_set(err, DA_ERR_INVALID_ARG, "--blip-beams 1..64 and --blip-max-tokens 1..500");
    switch (o->recipe) {
    case DA_RECIPE_DIFFUSEMIX: return da_aug_diffusemix_check(o, err);
    case DA_RECIPE_DIFFCOREMIX: return da_aug_diffcoremix_check(o, err);
    case DA_RECIPE_SGID: return da_aug_sgid_check(o, err);
    default: return da_err_set(err, DA_ERR_INVALID_ARG, "unknown recipe %d", (int)o->recipe);
    }
}

da_status da_augment_run(const da_augment_opts *o, da_augment_result *res, da_error *err) {
    da_augment_result local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    da_aug_ctx C, *c = &C;
    memset(c, 0, sizeof C);
    c->o = o;
    c->t0 = da_now();
    da_status st = check_opts(o, err);
    if (st) return st;
    if (o->threads > 0) omp_set_num_threads(o->threads);

    /* models first: a bad path stops the run before any work */
    da_sd_options so;
    da_sd_options_init(&so);
    so.model = o->model;
    so.tokenizer = o->tokenizer;
    so.vae = o->vae;
    so.backend = o->backend ? o->backend : "cpu";
    so.threads = o->threads;
    if ((st = da_sd_open(&so, &c->sd, err))) {
        da_err_prefix(err, "--model %s", o->model);
        goto done;
    }
    int in_ch = da_sd_config(c->sd)->unet.in_channels;
    if (o->recipe == DA_RECIPE_DIFFUSEMIX && in_ch != 8) {
        st = da_err_set(err, DA_ERR_INVALID_ARG,
                        "--model %s: DiffuseMix edits with InstructPix2Pix (a UNet with 8 input channels); this "
                        "model's UNet has %d (see weights/README.md)",
                        o->model, in_ch);
        goto done;
    }
    if (o->recipe != DA_RECIPE_DIFFUSEMIX && in_ch != 4) {
        st = da_err_set(err, DA_ERR_INVALID_ARG,
                        "--model %s: %s needs a text-to-image SD 1.x / SDXL model (UNet with 4 input channels); this "
                        "one has %d", o->model, da_recipe_name(o->recipe), in_ch);
        goto done;
    }
    c->sampler = o->sampler != DA_AUG_SAMPLER_AUTO ? o->sampler
                 : da_sd_model_sampling(c->sd)->edm   ? DA_SAMPLER_EDM_EULER
                                                      : DA_SAMPLER_DDIM;
    {
        /* the sampler must suit the model (an EDM model takes EDM Euler only): refuse before any work */
        da_gen_params gp;
        da_sched_config sc;
        da_aug_gen_params(c, DA_GEN_TXT2IMG, &gp);
        if ((st = da_gen_sched_config(c->sd, &gp, &sc, err))) {
            da_err_prefix(err, "--model %s", o->model);
            goto done;
        }
    }
    const char *sd_hash = da_sd_hash(c->sd);
    c->models[c->n_models++] = (da_model_hash){"model", sd_hash ? sd_hash : ""};
    if (o->clip && o->recipe != DA_RECIPE_DIFFUSEMIX && (st = open_clip(c, err))) goto done;
    if (o->blip && o->recipe == DA_RECIPE_SGID && !o->captions && (st = open_blip(c, err))) goto done;

    da_scan_opts sco;
    da_scan_opts_init(&sco);
    sco.verify = o->verify;
    if ((st = da_dataset_scan(o->input, &sco, &c->ds, err))) goto done;
    res->problems = c->ds->n_problems;

    if ((st = da_mkdirs(o->output, err))) goto done;
    c->out_root = strdup(o->output);
    char name[128];
    da_augment_shard_name("manifest", "jsonl", o->shard, name, sizeof name);
    char *mpath = da_path_join(o->output, name);
    da_augment_shard_name("summary", "json", o->shard, name, sizeof name);
    char *spath = da_path_join(o->output, name);
    da_augment_shard_name("sheet", "png", o->shard, name, sizeof name);
    char *shpath = da_path_join(o->output, name);
    if (!c->out_root || !mpath || !spath || !shpath) {
        st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
        goto done_paths;
    }
    snprintf(res->manifest, sizeof res->manifest, "%s", mpath);
    snprintf(res->summary, sizeof res->summary, "%s", spath);
    {
        da_manifest m;
        if ((st = da_manifest_read(mpath, &m, err))) goto done_paths;
        if (m.torn_tail) da_aug_msg(c, DA_MSG_INFO, "%s: a torn last record (killed run) is dropped and redone", mpath);
        st = da_resume_build(&m, o->output, &c->resume, err);
        da_manifest_free(&m);
        if (st) goto done_paths;
    }
    if (o->shard.count <= 1) {
        size_t n_tmp = clean_stale_temps(o->output, 3);
        if (n_tmp) da_aug_msg(c, DA_MSG_INFO, "removed %zu temporary files left by a killed run", n_tmp);
    }
    if ((st = da_manifest_open(mpath, &c->mw, err))) goto done_paths;
    if (o->sheet_rows > 0 && !(c->rows = calloc((size_t)o->sheet_rows, sizeof *c->rows))) {
        st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
        goto done_paths;
    }

    uint64_t n_problems = 0;
    if ((st = write_problems(c, &n_problems, err))) goto done_paths;
    switch (o->recipe) {
    case DA_RECIPE_DIFFUSEMIX: st = da_aug_diffusemix(c, err); break;
    case DA_RECIPE_DIFFCOREMIX: st = da_aug_diffcoremix(c, err); break;
    default: st = da_aug_sgid(c, err); break;
    }
    res->done = c->done, res->kept = c->kept, res->dropped = c->dropped;
    res->units_total = c->units_all, res->units_shard = c->units_shard, res->skipped = c->skipped;
    res->wall_s = da_now() - c->t0;
    if (st == DA_OK) {
        /* the summary of what the manifest holds now */
        da_manifest_close(c->mw);
        c->mw = NULL;
        st = write_summary(c, mpath, spath, c->skipped, n_problems, res->wall_s, err);
        if (!st && c->n_rows > 0) {
            if (!(st = write_sheet(c, shpath, err))) snprintf(res->sheet, sizeof res->sheet, "%s", shpath);
        }
    }
done_paths:
    free(mpath), free(spath), free(shpath);
done:
    res->wall_s = da_now() - c->t0;
    if (c->mw) da_manifest_close(c->mw);
    da_resume_free(&c->resume);
    for (int r = 0; r < c->n_rows; r++)
        for (int k = 0; k < 4; k++) da_image_free(&c->rows[r].cell[k]);
    free(c->rows);
    free(c->out_root);
    da_dataset_free(c->ds);
    da_arena_free(&c->carena);
    da_tokenizer_free(c->ctok);
    da_clip_text_free(c->ct);
    da_clip_vision_free(c->cv);
    if (c->cbe) da_backend_free(c->cbe); /* after the towers whose weights it holds */
    if (c->clip_m) da_model_close(c->clip_m);
    da_arena_free(&c->barena);
    da_wordpiece_free(c->bwp);
    da_blip_free(c->blip);
    if (c->bbe) da_backend_free(c->bbe); /* after the captioner whose weights it holds */
    if (c->blip_m) da_model_close(c->blip_m);
    if (c->sd) da_sd_close(c->sd);
    return st;
}
