/* diffusemix.c - DiffuseMix (Islam et al., "DiffuseMix: Label-Preserving Data Augmentation with
 * Diffusion Models", CVPR 2024) over a dataset, as shared/METHODS.md section 1 restates the released
 * code (main.py + augment/diffuseMix.py + augment/utils.py):
 *
 *   for every image I (resized to RES) and prompt p (work unit (image id, prompt index)):
 *     G = InstructPix2Pix(I, p), Euler ancestral, 100 steps, g_txt 4.0, g_img 1.5;
 *     drop G when degenerate (mean luminance < 5 or > 250, or flat: ours, the code's check is broken);
 *     H = hybrid(I, G) with the 20 px ramp, orientation vertical/horizontal from the ORIENT stream;
 *     A = (1 - 0.2) H + 0.2 F, F a fractal picked from the FRACTAL_PICK stream (procedural set by
 *         default: deviation "procedural-fractals"; --fractals DIR uses a folder);
 *     write blended/<class>/<stem>_<prompt>_0.<ext> (intermediates generated/, concatenated/, fractal/).
 *
 * Batching: consecutive units of the shard go to one da_sd_generate call; every draw is keyed by
 * (seed, image id, prompt index), so results do not depend on the batch.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/draw.h"
#include "augment/fractal.h"
#include "augment/recipe_int.h"
#include "util.h"

/* The released code's prompt list (all 10; its README shows 9, without "rain"). */
static const char *const dmix_prompts[] = {"Autumn", "snowy", "sunset", "watercolor art", "rain", "rainbow",
                                           "aurora", "mosaic", "ukiyo-e", "a sketch with crayon"};
#define N_DMIX_PROMPTS 10

/* ---- prompt lists (also used by the option check) -------------------------------------------------- */

typedef struct str_list {
    char **s;
    size_t n;
} str_list;

static void str_list_free(str_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

static bool str_list_push(str_list *l, const char *s, size_t len) {
    char **ns = realloc(l->s, (l->n + 1) * sizeof *ns);
    if (!ns) return false;
    l->s = ns;
    if (!(l->s[l->n] = strndup(s, len))) return false;
    l->n++;
    return true;
}

/* Trim spaces at both ends of [s, s+len). */
static void trim(const char **s, size_t *len) {
    while (*len && (**s == ' ' || **s == '\t' || **s == '\r')) (*s)++, (*len)--;
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\r')) (*len)--;
}

/* --prompts: a readable file (one prompt a line, blank lines and '#' lines skipped) or a
 * comma-separated list; NULL: the 10 of the code. */
static da_status load_prompts(const char *spec, str_list *out, da_error *err) {
    memset(out, 0, sizeof *out);
    if (!spec) {
        for (int i = 0; i < N_DMIX_PROMPTS; i++)
            if (!str_list_push(out, dmix_prompts[i], strlen(dmix_prompts[i]))) goto nomem;
        return DA_OK;
    }
    char *text = NULL;
    size_t len = 0;
    char sep = ',';
    if (da_is_file(spec)) {
        da_status st = da_read_file(spec, &text, &len, err);
        if (st) return st;
        sep = '\n';
    } else if (!(text = strdup(spec))) goto nomem;
    else len = strlen(text);
    for (const char *p = text, *end = text + len; p < end;) {
        const char *q = memchr(p, sep, (size_t)(end - p));
        if (!q) q = end;
        const char *s = p;
        size_t n = (size_t)(q - p);
        trim(&s, &n);
        if (n && !(sep == '\n' && s[0] == '#') && !str_list_push(out, s, n)) {
            free(text);
            goto nomem;
        }
        p = q + 1;
    }
    free(text);
    if (out->n == 0) return da_err_set(err, DA_ERR_INVALID_ARG, "--prompts %s: no prompt in it", spec);
    return DA_OK;
nomem:
    str_list_free(out);
    return da_err_set(err, DA_ERR_NOMEM, "out of memory reading the prompts");
}

/* The image files of a fractal folder, sorted bytewise (content-sniffed, hidden files skipped). */
static da_status list_images(const char *dir, str_list *out, da_error *err) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return da_err_set(err, DA_ERR_IO, "--fractals %s: cannot open the folder", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = da_path_join(dir, e->d_name);
        if (!p) break;
        FILE *fp = da_is_file(p) ? fopen(p, "rb") : NULL;
        unsigned char head[16];
        size_t n = fp ? fread(head, 1, sizeof head, fp) : 0;
        if (fp) fclose(fp);
        if (n && da_image_sniff(head, n) != DA_IMAGE_UNKNOWN && !str_list_push(out, p, strlen(p))) {
            free(p);
            closedir(d);
            str_list_free(out);
            return da_err_set(err, DA_ERR_NOMEM, "out of memory");
        }
        free(p);
    }
    closedir(d);
    for (size_t i = 1; i < out->n; i++) /* insertion sort: folders are small */
        for (size_t j = i; j > 0 && strcmp(out->s[j - 1], out->s[j]) > 0; j--) {
            char *t = out->s[j];
            out->s[j] = out->s[j - 1];
            out->s[j - 1] = t;
        }
    if (out->n == 0) return da_err_set(err, DA_ERR_NOT_FOUND, "--fractals %s: no PNG or JPEG image in the folder", dir);
    return DA_OK;
}

da_status da_aug_diffusemix_check(const da_augment_opts *o, da_error *err) {
    str_list l;
    da_status st = load_prompts(o->prompts, &l, err);
    if (st) return st;
    size_t n = l.n;
    str_list_free(&l);
    if (n > DA_DRAW_MAX_INDEX) return da_err_set(err, DA_ERR_INVALID_ARG, "--prompts: at most %u prompts", DA_DRAW_MAX_INDEX);
    if (o->fractals) {
        if ((st = list_images(o->fractals, &l, err))) return st;
        str_list_free(&l);
    } else if (o->n_fractals < 1 || o->n_fractals > 100000)
        return da_err_set(err, DA_ERR_INVALID_ARG, "--n-fractals %d: must be 1..100000", o->n_fractals);
    if (!(o->lambda >= 0 && o->lambda <= 1)) return da_err_set(err, DA_ERR_INVALID_ARG, "--lambda %g: must be in [0, 1]", o->lambda);
    return DA_OK;
}

/* ---- the recipe ---------------------------------------------------------------------------------- */

typedef struct dmix {
    str_list prompts;
    str_list fractal_files; /* --fractals */
    size_t n_fractals;
    da_image *fractals;     /* cache, resized to RES; w == 0 until used */
} dmix;

static da_status get_fractal(da_aug_ctx *c, dmix *m, size_t k, const da_image **out, da_error *err) {
    da_image *f = &m->fractals[k];
    if (!f->data) {
        da_status st;
        if (m->fractal_files.n) {
            da_image raw = {0};
            if ((st = da_image_load(m->fractal_files.s[k], &raw, err))) return st;
            st = da_aug_resize(&raw, c->o->size, f, err);
            da_image_free(&raw);
        } else {
            da_fractal_opts fo;
            da_fractal_opts_init(&fo);
            fo.size = c->o->size;
            fo.seed = c->o->seed;
            st = da_fractal_render(&fo, k, f, NULL, err);
        }
        if (st) return st;
    }
    *out = f;
    return DA_OK;
}

static da_status write_inter(da_aug_ctx *c, const char *dir, const char *name, const da_image *im, da_error *err) {
    char *rel = da_path_join(dir, name);
    if (!rel) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    da_status st = da_aug_write(c, rel, im, err);
    free(rel);
    return st;
}

/* Everything after generation for one unit: check, hybrid, blend, write, record. */
static da_status finish_unit(da_aug_ctx *c, dmix *m, const da_aug_unit *u, const da_image *I, const da_image *G,
                             da_manifest_rec *r, da_error *err) {
    const da_augment_opts *o = c->o;
    const char *why = NULL;
    if (da_is_degenerate(G, &o->degenerate, &why, NULL, NULL)) {
        char reason[64];
        snprintf(reason, sizeof reason, "degenerate: %s", why);
        r->kept = false;
        r->reason = reason;
        return da_aug_record(c, r, err);
    }
    da_draw d;
    da_draw_init(&d, o->seed, u->id, u->index, DA_DRAW_ORIENT);
    da_orient orient = da_draw_below(&d, 2) ? DA_ORIENT_HORIZONTAL : DA_ORIENT_VERTICAL;
    da_hybrid_opts ho = {.binary_mask = o->binary_mask, .generated_first = o->paper_halves && da_draw_below(&d, 2)};
    da_draw_init(&d, o->seed, u->id, u->index, DA_DRAW_FRACTAL_PICK);
    size_t fk = da_draw_below(&d, (uint32_t)m->n_fractals);
    const da_image *F = NULL;
    da_image H = {0}, A = {0};
    const da_ds_image *di = &c->ds->images[u->image];
    char *name = da_output_name(c->ds->classes[u->cls].name, di->stem, m->prompts.s[u->index], 0, da_aug_ext(c));
    char *out = name ? da_path_join("blended", name) : NULL;
    da_status st = !out ? da_err_set(err, DA_ERR_NOMEM, "out of memory") : DA_OK;
    if (!st) st = get_fractal(c, m, fk, &F, err);
    if (!st) st = da_dmix_hybrid(I, G, orient, &ho, &H, err);
    if (!st) st = da_dmix_blend(&H, F, (float)o->lambda, o->round_blend, &A, err);
    if (!st && o->intermediates) {
        if (!(st = write_inter(c, "generated", name, G, err)) && !(st = write_inter(c, "concatenated", name, &H, err)))
            st = write_inter(c, "fractal", name, F, err);
    }
    if (!st) st = da_aug_write(c, out, &A, err);
    if (!st) {
        char notes[128];
        snprintf(notes, sizeof notes, "orientation %s%s, fractal %zu",
                 orient == DA_ORIENT_VERTICAL ? "vertical" : "horizontal", ho.generated_first ? " generated-first" : "",
                 fk);
        r->kept = true;
        r->output = out;
        r->notes = notes;
        st = da_aug_record(c, r, err);
        da_aug_sheet_offer(c, I, G, &H, &A);
    }
    da_image_free(&H);
    da_image_free(&A);
    free(out);
    free(name);
    return st;
}

static void proto_rec(da_aug_ctx *c, dmix *m, const da_aug_unit *u, da_manifest_rec *r) {
    da_manifest_rec_init(r);
    r->unit_id = u->id;
    r->unit_index = u->index;
    r->source = c->ds->images[u->image].rel;
    r->class_name = c->ds->classes[u->cls].name;
    r->prompt = m->prompts.s[u->index];
    r->negative_prompt = "";
    r->sampler = da_aug_sampler_name(c->sampler);
    r->steps = c->o->steps;
    r->guidance = c->o->text_guidance;
    r->image_guidance = c->o->image_guidance;
}

da_status da_aug_diffusemix(da_aug_ctx *c, da_error *err) {
    const da_augment_opts *o = c->o;
    dmix m;
    memset(&m, 0, sizeof m);
    da_aug_unit *all = NULL, *sel = NULL;
    size_t n_sel = 0;
    da_status st = load_prompts(o->prompts, &m.prompts, err);
    if (st) return st;
    if (o->fractals) {
        if ((st = list_images(o->fractals, &m.fractal_files, err))) goto done;
        m.n_fractals = m.fractal_files.n;
    } else {
        m.n_fractals = (size_t)o->n_fractals;
        da_aug_deviation(c, "procedural-fractals",
                         "fractals are generated procedurally (IFS flames) instead of the authors' downloaded set; "
                         "--fractals DIR uses a folder");
    }
    if (o->binary_mask) da_aug_deviation(c, "binary-mask", "hard edge between the halves (paper) instead of the code's 20 px ramp");
    if (o->paper_halves) da_aug_deviation(c, "paper-halves", "any of the 4 half orders (paper) instead of the original always first (code)");
    if (!(m.fractals = calloc(m.n_fractals, sizeof *m.fractals))) {
        st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* units: image in scan order, then prompt */
    size_t n_all = c->ds->n_images * m.prompts.n;
    if (!(all = malloc((n_all ? n_all : 1) * sizeof *all))) {
        st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0, u = 0; i < c->ds->n_images; i++)
        for (size_t p = 0; p < m.prompts.n; p++, u++)
            all[u] = (da_aug_unit){c->ds->images[i].id, (uint32_t)p, i, (size_t)c->ds->images[i].cls};
    if ((st = da_aug_select(c, all, n_all, &sel, &n_sel, err))) goto done;

    int B = o->batch;
    da_image *I = calloc((size_t)B, sizeof *I), *G = calloc((size_t)B, sizeof *G);
    da_gen_item *items = calloc((size_t)B, sizeof *items);
    size_t *which = calloc((size_t)B, sizeof *which);
    if (!I || !G || !items || !which) st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
    da_gen_params gp;
    da_aug_gen_params(c, DA_GEN_EDIT, &gp);
    for (size_t b0 = 0; b0 < n_sel && !st; b0 += (size_t)B) {
        size_t nb = n_sel - b0 < (size_t)B ? n_sel - b0 : (size_t)B;
        int n = 0;
        for (size_t j = 0; j < nb && !st; j++) {
            const da_aug_unit *u = &sel[b0 + j];
            da_manifest_rec r;
            proto_rec(c, &m, u, &r);
            da_image raw = {0};
            bool ok;
            if ((st = da_aug_load_input(c, u, &r, &raw, &ok, err)) || !ok) continue;
            st = da_aug_resize(&raw, o->size, &I[n], err);
            da_image_free(&raw);
            if (st) break;
            da_gen_item_init(&items[n]);
            items[n].prompt = m.prompts.s[u->index];
            items[n].negative = "";
            items[n].guidance = (float)o->text_guidance;
            items[n].image_guidance = (float)o->image_guidance;
            items[n].init = &I[n];
            items[n].seed = o->seed;
            items[n].image_id = u->id;
            items[n].index = u->index;
            which[n++] = b0 + j;
        }
        if (!st && n > 0 && !(st = da_aug_generate(c, &gp, items, n, G, err)))
            for (int k = 0; k < n && !st; k++) {
                da_manifest_rec r;
                proto_rec(c, &m, &sel[which[k]], &r);
                st = finish_unit(c, &m, &sel[which[k]], &I[k], &G[k], &r, err);
            }
        for (int k = 0; k < B; k++) da_image_free(&I[k]), da_image_free(&G[k]);
    }
    free(I), free(G), free(items), free(which);
done:
    free(all);
    free(sel);
    if (m.fractals)
        for (size_t k = 0; k < m.n_fractals; k++) da_image_free(&m.fractals[k]);
    free(m.fractals);
    str_list_free(&m.prompts);
    str_list_free(&m.fractal_files);
    return st;
}
