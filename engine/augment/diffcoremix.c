/* diffcoremix.c - DiffCoRe-Mix ("Diffusion Curriculum / context-guided generation with CLIP
 * filtering and real-synthetic mixing"; paper + the authors' released generation script) over a
 * dataset, as shared/METHODS.md section 2 restates it:
 *
 *   per class with n real images, floor(0.3 n) attempts (work unit (class id, attempt index)):
 *     prompt = one of the 16 context templates ("A {label}, a {noun}, ...") picked from the PROMPT
 *       stream, with the released negative prompt and CFG 12;
 *     G = text-to-image with the released code's model and sampler: CosXL (SDXL, EDM v-prediction;
 *       EDM Euler, exponential sigmas 120 -> 0.002 then 0, sigma_data 1, 50 steps, CFG 12 on v,
 *       micro-conditioning (512, 512, 0, 0, 512, 512)) decoded by the fp16-fixed SDXL VAE (--vae).
 *       Anything else is a labelled deviation (code_sampling_deviations): an SD 1.x model
 *       ("sd15-instead-of-sdxl"), an SDXL model that is not EDM v-prediction ("sdxl-instead-of-cosxl"),
 *       another sampler ("<sampler>-instead-of-edm-euler") or other EDM settings ("edm-settings-differ"),
 *       no --vae ("model-vae-instead-of-fp16-fix");
 *     filter: cosine of G's CLIP ViT-B/32 image embedding with the class reference, kept when > 0.6
 *       (code). The reference is the centroid of the class's real-image embeddings (ours, default:
 *       deviation "centroid-reference"); --ref-first uses the class's first image as the code does;
 *     mix (paper "pixel and patch levels", no code; constants ours): with a real image R of the class
 *       drawn from the MIX stream, pixel X = lam R + (1 - lam) G, lam ~ U(0.5, 1), or patch: a fraction
 *       r ~ U(0.2, 0.5) of R's cells on a 4 x 4 grid replaced by G's; pixel or patch with probability
 *       1/2 each (--mix pixel|patch|none fixes it);
 *     write <class>/dcm_<kind>_<attempt>.<ext>; every attempt's cosine goes in the manifest.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/draw.h"
#include "augment/recipe_int.h"
#include "util.h"

static const char *const dcm_templates[] = {
    "A {label}, a {noun}, in the garden",
    "A {label}, a {noun}, soaring through a stormy sky with dark clouds.",
    "A {label}, a {noun}, gliding over calm water under a clear blue sky.",
    "A {label}, a {noun}, framed against a vibrant sunset with orange and pink hues.",
    "A {label}, a {noun}, flying through a misty morning with soft, diffused light.",
    "A {label}, a {noun}, navigating between tall, towering mountain peaks.",
    "A {label}, a {noun}, flying low over a dense forest canopy.",
    "A {label}, a {noun}, speeding through a cloudless sky at high altitude.",
    "A {label}, a {noun}, passing through a vast, open desert landscape.",
    "A {label}, a {noun}, flying in the night sky, lit by a full moon.",
    "A {label}, a {noun}, surrounded by lightning in a turbulent storm.",
    "A {label}, a {noun}, casting a shadow over an expansive ocean.",
    "A {label}, a {noun}, flying close to a city skyline during twilight.",
    "A {label}, a {noun}, cruising above fields of golden crops under the afternoon sun.",
    "A {label}, a {noun}, flying through swirling snowflakes in a winter landscape.",
    "A {label}, a {noun}, cutting through thick clouds in an overcast sky.",
};
#define N_DCM_TEMPLATES 16

static const char dcm_negative[] =
    "train, car, newspaper, sunlight, people, human, tree, cityscape, road, landscape, bus, building, desk, "
    "computer, paper texture, windows, streets, rails, traffic, sky, road lines, traffic lights";

typedef struct tmpl_list {
    char **s;
    size_t n;
    char *text; /* the file's text (s points into it) or NULL */
} tmpl_list;

static void tmpl_free(tmpl_list *t) {
    free(t->s);
    free(t->text);
    memset(t, 0, sizeof *t);
}

/* --templates FILE: one template a line (blank and '#' lines skipped); NULL: the released 16. */
static da_status load_templates(const char *path, tmpl_list *t, da_error *err) {
    memset(t, 0, sizeof *t);
    if (!path) {
        if (!(t->s = malloc(N_DCM_TEMPLATES * sizeof *t->s))) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
        for (int i = 0; i < N_DCM_TEMPLATES; i++) t->s[i] = (char *)dcm_templates[i];
        t->n = N_DCM_TEMPLATES;
        return DA_OK;
    }
    size_t len;
    da_status st = da_read_file(path, &t->text, &len, err);
    if (st) return st;
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += t->text[i] == '\n';
    if (!(t->s = malloc(cap * sizeof *t->s))) {
        tmpl_free(t);
        return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    }
    for (char *p = t->text, *save = NULL, *line; (line = strtok_r(p, "\n", &save)); p = NULL) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
        while (*line == ' ' || *line == '\t') line++;
        if (*line && *line != '#') t->s[t->n++] = line;
    }
    if (t->n == 0) {
        tmpl_free(t);
        return da_err_set(err, DA_ERR_INVALID_ARG, "--templates %s: no template in it", path);
    }
    return DA_OK;
}

da_status da_aug_diffcoremix_check(const da_augment_opts *o, da_error *err) {
    tmpl_list t;
    da_status st = load_templates(o->templates, &t, err);
    if (st) return st;
    tmpl_free(&t);
    if (!(o->budget >= 0 && o->budget <= 1000)) return da_err_set(err, DA_ERR_INVALID_ARG, "--budget %g: must be in [0, 1000]", o->budget);
    if (o->patch_grid < 1 || o->patch_grid > DA_PATCH_MAX_P)
        return da_err_set(err, DA_ERR_INVALID_ARG, "--patch-grid %d: must be 1..%d", o->patch_grid, DA_PATCH_MAX_P);
    if (!(o->lam_lo <= o->lam_hi && o->lam_lo >= 0 && o->lam_hi <= 1) || !(o->r_lo <= o->r_hi && o->r_lo >= 0 && o->r_hi <= 1))
        return da_err_set(err, DA_ERR_INVALID_ARG, "mixing ranges must satisfy 0 <= lo <= hi <= 1");
    return DA_OK;
}

typedef struct dcm {
    tmpl_list tmpl;
    const char *negative;
    float **ref; /* per class, the filter reference (L2-normalised), computed on first use */
    int dim;
} dcm;

/* The class reference: the normalised mean of its real images' normalised CLIP embeddings (or the
 * first image's), images encoded one by one in file order. */
static da_status class_ref(da_aug_ctx *c, dcm *m, size_t cls, const float **out, da_error *err) {
    if (m->ref[cls]) {
        *out = m->ref[cls];
        return DA_OK;
    }
    const da_ds_class *k = &c->ds->classes[cls];
    double *acc = calloc((size_t)m->dim, sizeof *acc);
    float *e = malloc((size_t)m->dim * sizeof *e), *ref = malloc((size_t)m->dim * sizeof *ref);
    da_status st = acc && e && ref ? DA_OK : da_err_set(err, DA_ERR_NOMEM, "out of memory");
    size_t used = 0;
    for (size_t i = 0; i < k->count && !st; i++) {
        const da_ds_image *di = &c->ds->images[k->first + i];
        da_image im = {0};
        da_error e2;
        if (da_image_load(di->path, &im, &e2)) {
            da_aug_msg(c, DA_MSG_WARN, "%s: %s (left out of the class reference)", di->rel, e2.msg);
            continue;
        }
        st = da_aug_clip_image(c, &im, e, err);
        da_image_free(&im);
        if (st) break;
        for (int j = 0; j < m->dim; j++) acc[j] += e[j];
        used++;
        if (c->o->ref_first) break;
    }
    if (!st && used == 0) st = da_err_set(err, DA_ERR_NOT_FOUND, "class %s: no readable image for the filter reference", k->name);
    if (!st) {
        double s = 0;
        for (int j = 0; j < m->dim; j++) s += acc[j] * acc[j];
        double inv = s > 0 ? 1.0 / sqrt(s) : 0;
        for (int j = 0; j < m->dim; j++) ref[j] = (float)(acc[j] * inv);
        m->ref[cls] = ref;
        ref = NULL;
        *out = m->ref[cls];
    }
    free(acc), free(e), free(ref);
    return st;
}

static char *make_prompt(da_aug_ctx *c, dcm *m, const da_aug_unit *u) {
    da_draw d;
    da_draw_init(&d, c->o->seed, u->id, u->index, DA_DRAW_PROMPT);
    const char *t = m->tmpl.s[da_draw_below(&d, (uint32_t)m->tmpl.n)];
    return da_template_fill(t, c->ds->classes[u->cls].label, c->o->noun, "");
}

static void proto_rec(da_aug_ctx *c, dcm *m, const da_aug_unit *u, const char *prompt, da_manifest_rec *r) {
    da_manifest_rec_init(r);
    r->unit_id = u->id;
    r->unit_index = u->index;
    r->class_name = c->ds->classes[u->cls].name;
    r->prompt = prompt;
    r->negative_prompt = m->negative;
    r->sampler = da_aug_sampler_name(c->sampler);
    r->steps = c->o->steps;
    r->guidance = c->o->guidance;
}

static da_status finish_unit(da_aug_ctx *c, dcm *m, const da_aug_unit *u, const da_image *G, da_manifest_rec *r,
                             da_error *err) {
    const da_augment_opts *o = c->o;
    const float *ref;
    float *e = malloc((size_t)m->dim * sizeof *e);
    if (!e) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    da_status st = class_ref(c, m, u->cls, &ref, err);
    if (!st) st = da_aug_clip_image(c, G, e, err);
    double cosv = 0;
    if (!st)
        for (int j = 0; j < m->dim; j++) cosv += (double)e[j] * ref[j];
    free(e);
    if (st) return st;
    r->filter_score = cosv;
    if (!(cosv > o->filter_threshold)) {
        char reason[96];
        snprintf(reason, sizeof reason, "filter: cos %.4f <= %g", cosv, o->filter_threshold);
        r->kept = false;
        r->reason = reason;
        return da_aug_record(c, r, err);
    }
    /* mixing draws, in a fixed order: kind, partner, lam, r, cell words */
    const da_ds_class *k = &c->ds->classes[u->cls];
    da_draw d;
    da_draw_init(&d, o->seed, u->id, u->index, DA_DRAW_MIX);
    da_dcm_mix kind = o->mix == DA_DCM_MIX_RANDOM ? (da_draw_below(&d, 2) ? DA_DCM_MIX_PATCH : DA_DCM_MIX_PIXEL) : o->mix;
    size_t partner = k->first + da_draw_below(&d, (uint32_t)k->count);
    double lam = da_draw_range(&d, o->lam_lo, o->lam_hi);
    double rr = da_draw_range(&d, o->r_lo, o->r_hi);
    int P = o->patch_grid, nc = da_patch_count(P, rr);
    uint32_t words[DA_PATCH_MAX_P * DA_PATCH_MAX_P];
    for (int t = 0; t < nc; t++) words[t] = da_draw_u32(&d);

    const char *kname = kind == DA_DCM_MIX_PIXEL ? "pixel" : kind == DA_DCM_MIX_PATCH ? "patch" : "gen";
    da_image R = {0}, Rs = {0}, X = {0};
    char notes[1400] = "";
    if (kind != DA_DCM_MIX_NONE) {
        da_error e2;
        if (da_image_load(c->ds->images[partner].path, &R, &e2)) {
            char reason[1200];
            snprintf(reason, sizeof reason, "unreadable mixing partner %s: %s", c->ds->images[partner].rel, e2.msg);
            da_aug_msg(c, DA_MSG_WARN, "%s", reason);
            r->kept = false;
            r->reason = reason;
            return da_aug_record(c, r, err);
        }
        st = da_image_resize_bicubic(&R, G->w, G->h, &Rs, err);
        if (!st && kind == DA_DCM_MIX_PIXEL) {
            st = da_pixel_mix(&Rs, G, (float)lam, false, &X, err);
            snprintf(notes, sizeof notes, "pixel mix with %s, lam %.4f", c->ds->images[partner].rel, lam);
        } else if (!st) {
            uint8_t cells[DA_PATCH_MAX_P * DA_PATCH_MAX_P];
            da_patch_choose(P, nc, words, cells);
            st = da_patch_mix(&Rs, G, P, cells, &X, err);
            snprintf(notes, sizeof notes, "patch mix with %s, %d of %d cells from the generation (r %.4f)",
                     c->ds->images[partner].rel, nc, P * P, rr);
        }
    } else if (!(st = da_image_alloc(&X, G->w, G->h, err)))
        memcpy(X.data, G->data, (size_t)G->w * G->h * 3);
    char stem[32];
    snprintf(stem, sizeof stem, "dcm");
    char *name = st ? NULL : da_output_name(k->name, stem, kname, u->index, da_aug_ext(c));
    if (!st && !name) st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
    if (!st && o->intermediates) {
        char *rel = da_path_join("generated", name);
        st = rel ? da_aug_write(c, rel, G, err) : da_err_set(err, DA_ERR_NOMEM, "out of memory");
        free(rel);
    }
    if (!st) st = da_aug_write(c, name, &X, err);
    if (!st) {
        r->kept = true;
        r->output = name;
        r->notes = notes[0] ? notes : NULL;
        st = da_aug_record(c, r, err);
        da_aug_sheet_offer(c, Rs.data ? &Rs : NULL, G, &X, &X);
    }
    free(name);
    da_image_free(&R), da_image_free(&Rs), da_image_free(&X);
    return st;
}

/* How far the run is from the released code's generation (CosXL, EDM Euler exponential 120 -> 0.002,
 * sigma_data 1, v-prediction, fp16-fixed SDXL VAE): one labelled deviation per difference. */
static da_status code_sampling_deviations(da_aug_ctx *c, da_error *err) {
    const da_model_config *mc = da_sd_config(c->sd);
    const da_sd_sampling *ms = da_sd_model_sampling(c->sd);
    if (mc->family != DA_FAMILY_SDXL)
        da_aug_deviation(c, "sd15-instead-of-sdxl",
                         "DiffCoRe-Mix's code generates with CosXL (SDXL); the given SD 1.x model runs text-to-image "
                         "with the same prompts, negative prompt and CFG");
    else if (!ms->edm)
        da_aug_deviation(c, "sdxl-instead-of-cosxl",
                         "the given SDXL checkpoint is not EDM v-prediction (no edm_vpred marker tensors or EDM "
                         "scheduler config); DiffCoRe-Mix's code generates with CosXL");
    if (c->sampler != DA_SAMPLER_EDM_EULER) {
        snprintf(c->dev_text, sizeof c->dev_text, "%s-instead-of-edm-euler", da_aug_sampler_name(c->sampler));
        da_aug_deviation(c, c->dev_text, "the code samples with EDM Euler (CosXL's v-prediction EDM); another sampler runs");
    } else {
        da_gen_params gp;
        da_sched_config sc;
        da_aug_gen_params(c, DA_GEN_TXT2IMG, &gp);
        da_status st = da_gen_sched_config(c->sd, &gp, &sc, err);
        if (st) return st;
        if (!(sc.prediction == DA_PRED_V && sc.edm_exponential && sc.sigma_min == 0.002 && sc.sigma_max == 120.0 &&
              sc.sigma_data == 1.0 && sc.final_sigma_zero))
            da_aug_deviation(c, "edm-settings-differ",
                             "the code's EDM Euler: v-prediction, sigmas exp(linspace(ln 120, ln 0.002)) then 0, "
                             "sigma_data 1; this model's EDM settings differ");
    }
    if (mc->family == DA_FAMILY_SDXL && !c->o->vae)
        da_aug_deviation(c, "model-vae-instead-of-fp16-fix",
                         "the code decodes with the fp16-fixed SDXL VAE (madebyollin/sdxl-vae-fp16-fix); give it with "
                         "--vae to match, the model's own VAE decodes instead");
    return DA_OK;
}

da_status da_aug_diffcoremix(da_aug_ctx *c, da_error *err) {
    const da_augment_opts *o = c->o;
    dcm m;
    memset(&m, 0, sizeof m);
    da_aug_unit *all = NULL, *sel = NULL;
    size_t n_sel = 0;
    da_status st = load_templates(o->templates, &m.tmpl, err);
    if (st) return st;
    m.negative = o->negative ? o->negative : dcm_negative;
    m.dim = da_aug_clip_dim(c);
    if ((st = code_sampling_deviations(c, err))) goto done;
    if (!o->ref_first)
        da_aug_deviation(c, "centroid-reference",
                         "the CLIP filter compares with the class centroid of the real images' embeddings (ours); "
                         "--ref-first uses the class's first image as the code does");
    if (!(m.ref = calloc(c->ds->n_classes ? c->ds->n_classes : 1, sizeof *m.ref))) {
        st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t n_all = 0;
    for (size_t k = 0; k < c->ds->n_classes; k++) n_all += da_dcm_attempts(o->budget, c->ds->classes[k].count);
    if (!(all = malloc((n_all ? n_all : 1) * sizeof *all))) {
        st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t k = 0, u = 0; k < c->ds->n_classes; k++) {
        uint64_t id = da_image_id(c->ds->classes[k].name);
        uint32_t a = da_dcm_attempts(o->budget, c->ds->classes[k].count);
        for (uint32_t i = 0; i < a; i++) all[u++] = (da_aug_unit){id, i, SIZE_MAX, k};
    }
    if ((st = da_aug_select(c, all, n_all, &sel, &n_sel, err))) goto done;

    int B = o->batch;
    da_image *G = calloc((size_t)B, sizeof *G);
    da_gen_item *items = calloc((size_t)B, sizeof *items);
    char **prompts = calloc((size_t)B, sizeof *prompts);
    if (!G || !items || !prompts) st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
    da_gen_params gp;
    da_aug_gen_params(c, DA_GEN_TXT2IMG, &gp);
    for (size_t b0 = 0; b0 < n_sel && !st; b0 += (size_t)B) {
        int n = (int)(n_sel - b0 < (size_t)B ? n_sel - b0 : (size_t)B);
        for (int j = 0; j < n && !st; j++) {
            const da_aug_unit *u = &sel[b0 + (size_t)j];
            if (!(prompts[j] = make_prompt(c, &m, u))) {
                st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
                break;
            }
            da_gen_item_init(&items[j]);
            items[j].prompt = prompts[j];
            items[j].negative = m.negative;
            items[j].guidance = (float)o->guidance;
            items[j].seed = o->seed;
            items[j].image_id = u->id;
            items[j].index = u->index;
        }
        if (!st) st = da_aug_generate(c, &gp, items, n, G, err);
        for (int j = 0; j < n && !st; j++) {
            da_manifest_rec r;
            proto_rec(c, &m, &sel[b0 + (size_t)j], prompts[j], &r);
            st = finish_unit(c, &m, &sel[b0 + (size_t)j], &G[j], &r, err);
        }
        for (int j = 0; j < B; j++) da_image_free(&G[j]), free(prompts[j]), prompts[j] = NULL;
    }
    free(G), free(items), free(prompts);
done:
    if (m.ref)
        for (size_t k = 0; k < c->ds->n_classes; k++) free(m.ref[k]);
    free(m.ref);
    free(all), free(sel);
    tmpl_free(&m.tmpl);
    return st;
}
