/* sgid.c - SGID ("Semantic-Guided Generative Image augmentation": label + caption prompts with a
 * guidance scale set from CLIP similarity; paper only, no code released) over a dataset, with the
 * components and constants of shared/METHODS.md section 3:
 *
 *   per image I and sample k (work unit (image id, k)):
 *     caption c from --captions ("<class>/<file>\t<caption>", which wins), else from the BLIP
 *       captioner given by --blip (greedy, 30 new tokens by default; cached per image in
 *       OUT/captions/<class>/<file>.txt, written atomically, so resumed runs and other shards reuse
 *       it), else none: the prompt is the label alone (deviation "label-only-prompts", or a note on
 *       the record for an image the file lacks);
 *     prompt = "{label}, {caption}" (--prompt-template);
 *     s = cosine(CLIP image embedding of I, CLIP text embedding of the prompt);
 *     w = clamp(w_min + (w_max - w_min)(s - s_lo)/(s_hi - s_lo), w_min, w_max), defaults 3, 12, 0.20, 0.35;
 *     img2img on SD 1.x: DDIM 50 steps, strength 0.5, CFG w, empty negative prompt;
 *     write <class>/<stem>_sgid_<r>_<k>.<ext>.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/recipe_int.h"
#include "util.h"

typedef struct caption {
    char *path, *text; /* point into the file's text */
} caption;

typedef struct captions {
    char *data;
    caption *e;
    size_t n;
} captions;

static int cmp_caption(const void *a, const void *b) {
    return strcmp(((const caption *)a)->path, ((const caption *)b)->path);
}

static void captions_free(captions *cs) {
    free(cs->data);
    free(cs->e);
    memset(cs, 0, sizeof *cs);
}

/* Read "path<TAB>caption" lines (blank lines skipped). A path may carry the dataset root as a
 * prefix ("<input>/<class>/<file>"), which is removed. A line without a tab, or one path twice, is an
 * error naming the file and line. */
static da_status load_captions(const char *path, const char *root, captions *cs, da_error *err) {
    memset(cs, 0, sizeof *cs);
    size_t len;
    da_status st = da_read_file(path, &cs->data, &len, err);
    if (st) {
        da_err_prefix(err, "--captions");
        return st;
    }
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += cs->data[i] == '\n';
    if (!(cs->e = malloc(cap * sizeof *cs->e))) {
        captions_free(cs);
        return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    }
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/') rl--;
    int lineno = 0;
    for (char *p = cs->data; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        lineno++;
        size_t n = strlen(p);
        while (n && p[n - 1] == '\r') p[--n] = 0;
        if (n) {
            char *tab = strchr(p, '\t');
            if (!tab) {
                captions_free(cs);
                return da_err_set(err, DA_ERR_FORMAT, "--captions %s: line %d has no tab (expected path<TAB>caption)", path, lineno);
            }
            *tab = 0;
            char *key = p;
            if (!strncmp(key, root, rl) && key[rl] == '/') key += rl + 1;
            while (!strncmp(key, "./", 2)) key += 2;
            cs->e[cs->n++] = (caption){key, tab + 1};
        }
        p = nl ? nl + 1 : NULL;
    }
    qsort(cs->e, cs->n, sizeof *cs->e, cmp_caption);
    for (size_t i = 1; i < cs->n; i++)
        if (!strcmp(cs->e[i].path, cs->e[i - 1].path)) {
            da_status s2 = da_err_set(err, DA_ERR_DUPLICATE, "--captions %s: '%s' appears twice", path, cs->e[i].path);
            captions_free(cs);
            return s2;
        }
    return DA_OK;
}

static const char *find_caption(const captions *cs, const char *rel) {
    caption key = {(char *)rel, NULL};
    const caption *f = cs->n ? bsearch(&key, cs->e, cs->n, sizeof *cs->e, cmp_caption) : NULL;
    return f ? f->text : NULL;
}

/* The BLIP caption of one image: from OUT/captions/<class>/<file>.txt when a run with the same
 * weights and settings wrote it (its first line is that key), else computed alone (a batch of one, so
 * never dependent on --batch) and written there atomically. *out is malloc'd. */
static da_status blip_caption(da_aug_ctx *c, const da_ds_image *di, const da_image *im, char **out, da_error *err) {
    const da_augment_opts *o = c->o;
    *out = NULL;
    char key[128];
    snprintf(key, sizeof key, "blip %.16s beams %d max-tokens %d", c->blip_hash, o->blip_beams, o->blip_max_tokens);
    size_t kl = strlen(key);
    size_t n = strlen(c->out_root) + strlen(di->rel) + 32;
    char *path = malloc(n);
    if (!path) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    snprintf(path, n, "%s/captions/%s.txt", c->out_root, di->rel);
    char *text = NULL;
    size_t len = 0;
    da_error ignore;
    if (da_is_file(path) && !da_read_file(path, &text, &len, &ignore) && len > kl && !strncmp(text, key, kl) &&
        text[kl] == '\n' && text[len - 1] == '\n') {
        text[len - 1] = 0;
        *out = strdup(text + kl + 1);
        free(text);
        free(path);
        return *out ? DA_OK : da_err_set(err, DA_ERR_NOMEM, "out of memory");
    }
    free(text);
    da_blip_gen_params gp;
    da_blip_gen_params_init(&gp);
    gp.num_beams = o->blip_beams;
    gp.max_new_tokens = o->blip_max_tokens;
    char *cap = NULL;
    da_status st = da_blip_caption(c->blip, c->bbe, &c->barena, c->bwp, &im, 1, NULL, &gp, &cap, err);
    if (st) da_err_prefix(err, "BLIP caption of %s", di->rel);
    for (char *q = cap; q && *q; q++)
        if (*q == '\n' || *q == '\r' || *q == '\t') *q = ' ';
    char *slash = strrchr(path, '/');
    if (!st) {
        *slash = 0;
        st = da_mkdirs(path, err);
        *slash = '/';
    }
    if (!st) {
        da_buf b = {0};
        da_buf_printf(&b, "%s\n%s\n", key, cap);
        st = b.failed ? da_err_set(err, DA_ERR_NOMEM, "out of memory") : da_write_file_atomic(path, b.data, b.len, err);
        da_buf_free(&b);
    }
    free(path);
    if (st) {
        free(cap);
        return st;
    }
    *out = cap;
    return DA_OK;
}

da_status da_aug_sgid_check(const da_augment_opts *o, da_error *err) {
    if (!(o->strength > 0 && o->strength <= 1)) return da_err_set(err, DA_ERR_INVALID_ARG, "--strength %g: must be in (0, 1]", o->strength);
    if (o->samples < 1 || o->samples > 10000) return da_err_set(err, DA_ERR_INVALID_ARG, "--samples %d: must be 1..10000", o->samples);
    if (!(o->w_min <= o->w_max) || !(o->s_lo < o->s_hi))
        return da_err_set(err, DA_ERR_INVALID_ARG, "need --w-min <= --w-max and --s-lo < --s-hi");
    if (!o->prompt_template || !*o->prompt_template) return da_err_set(err, DA_ERR_INVALID_ARG, "--prompt-template is empty");
    if (o->captions) {
        captions cs;
        da_status st = load_captions(o->captions, o->input, &cs, err);
        if (st) return st;
        captions_free(&cs);
    }
    return DA_OK;
}

da_status da_aug_sgid(da_aug_ctx *c, da_error *err) {
    const da_augment_opts *o = c->o;
    captions cs = {0};
    da_aug_unit *all = NULL, *sel = NULL;
    size_t n_sel = 0;
    da_status st = DA_OK;
    if (o->captions) {
        if ((st = load_captions(o->captions, o->input, &cs, err))) return st;
        da_aug_deviation(c, "user-captions-instead-of-blip", "captions come from --captions instead of BLIP");
    } else if (c->blip)
        da_aug_msg(c, DA_MSG_INFO, "captions from BLIP (%s, %s, %d new tokens at most), cached under %s/captions/", o->blip,
                   o->blip_beams > 1 ? "beam search" : "greedy", o->blip_max_tokens, o->output);
    else
        da_aug_deviation(c, "label-only-prompts",
                         "no --captions or --blip: every prompt is the class label alone (the paper captions each image "
                         "with BLIP)");
    char tag[64];
    da_sgid_tag(o->strength, tag, sizeof tag);
    size_t n_all = c->ds->n_images * (size_t)o->samples;
    if (!(all = malloc((n_all ? n_all : 1) * sizeof *all))) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    for (size_t i = 0, u = 0; i < c->ds->n_images; i++)
        for (int k = 0; k < o->samples; k++, u++)
            all[u] = (da_aug_unit){c->ds->images[i].id, (uint32_t)k, i, (size_t)c->ds->images[i].cls};
    if ((st = da_aug_select(c, all, n_all, &sel, &n_sel, err))) goto done;

    int B = o->batch, P = da_aug_clip_dim(c);
    da_image *I = calloc((size_t)B, sizeof *I), *G = calloc((size_t)B, sizeof *G);
    da_gen_item *items = calloc((size_t)B, sizeof *items);
    char **prompts = calloc((size_t)B, sizeof *prompts);
    const char **notes = calloc((size_t)B, sizeof *notes);
    double *sim = calloc((size_t)B, sizeof *sim);
    size_t *which = calloc((size_t)B, sizeof *which);
    float *ei = malloc((size_t)P * sizeof *ei), *et = malloc((size_t)P * sizeof *et);
    if (!I || !G || !items || !prompts || !notes || !sim || !which || !ei || !et) st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
    da_gen_params gp;
    da_aug_gen_params(c, DA_GEN_IMG2IMG, &gp);
    gp.img2img_mean = true; /* METHODS.md: z0 = 0.18215 x VAE-encode(I), the posterior mean */
    uint64_t last_id = 0;
    bool have_last = false;
    double last_s = 0;
    for (size_t b0 = 0; b0 < n_sel && !st; b0 += (size_t)B) {
        size_t nb = n_sel - b0 < (size_t)B ? n_sel - b0 : (size_t)B;
        int n = 0;
        for (size_t j = 0; j < nb && !st; j++) {
            const da_aug_unit *u = &sel[b0 + j];
            const da_ds_image *di = &c->ds->images[u->image];
            const char *label = c->ds->classes[u->cls].label;
            const char *cap = o->captions ? find_caption(&cs, di->rel) : NULL;
            char *prompt = cap ? da_template_fill(o->prompt_template, label, o->noun, cap) : strdup(label);
            if (!prompt) {
                st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
                break;
            }
            const char *note = NULL;
            if (o->captions && !cap) {
                note = "no caption in --captions: label only";
                if (u->index == 0) da_aug_msg(c, DA_MSG_WARN, "%s: no entry in %s; the prompt is the label alone", di->rel, o->captions);
            }
            da_manifest_rec r;
            da_manifest_rec_init(&r);
            r.unit_id = u->id, r.unit_index = u->index, r.source = di->rel, r.class_name = c->ds->classes[u->cls].name;
            r.prompt = prompt, r.negative_prompt = "", r.sampler = da_aug_sampler_name(c->sampler), r.steps = o->steps;
            r.strength = o->strength, r.notes = note;
            da_image raw = {0};
            bool ok;
            if ((st = da_aug_load_input(c, u, &r, &raw, &ok, err)) || !ok) {
                free(prompt);
                continue;
            }
            if (c->blip && !o->captions) {
                char *bc = NULL;
                if ((st = blip_caption(c, di, &raw, &bc, err))) {
                    da_image_free(&raw);
                    free(prompt);
                    break;
                }
                char *p2 = da_template_fill(o->prompt_template, label, o->noun, bc);
                free(bc);
                if (!p2) {
                    da_image_free(&raw);
                    free(prompt);
                    st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
                    break;
                }
                free(prompt);
                prompt = p2;
            }
            double s;
            if (have_last && last_id == u->id) s = last_s; /* samples of one image share s (same prompt) */
            else {
                st = da_aug_clip_image(c, &raw, ei, err);
                if (!st) st = da_aug_clip_text(c, prompt, et, err);
                s = 0;
                for (int q = 0; q < P && !st; q++) s += (double)ei[q] * et[q];
                last_id = u->id, last_s = s, have_last = !st;
            }
            if (!st) st = da_aug_resize(&raw, o->size, &I[n], err);
            da_image_free(&raw);
            if (st) {
                free(prompt);
                break;
            }
            prompts[n] = prompt;
            notes[n] = note;
            sim[n] = s;
            da_gen_item_init(&items[n]);
            items[n].prompt = prompt;
            items[n].negative = "";
            items[n].guidance = (float)da_sgid_guidance(s, o->w_min, o->w_max, o->s_lo, o->s_hi);
            items[n].init = &I[n];
            items[n].seed = o->seed;
            items[n].image_id = u->id;
            items[n].index = u->index;
            which[n++] = b0 + j;
        }
        if (!st && n > 0) st = da_aug_generate(c, &gp, items, n, G, err);
        for (int k = 0; k < n && !st; k++) {
            const da_aug_unit *u = &sel[which[k]];
            const da_ds_image *di = &c->ds->images[u->image];
            char *name = da_output_name(c->ds->classes[u->cls].name, di->stem, tag, u->index, da_aug_ext(c));
            if (!name) {
                st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
                break;
            }
            if (o->intermediates) {
                char *rel = da_path_join("source", name);
                st = rel ? da_aug_write(c, rel, &I[k], err) : da_err_set(err, DA_ERR_NOMEM, "out of memory");
                free(rel);
            }
            if (!st) st = da_aug_write(c, name, &G[k], err);
            if (!st) {
                da_manifest_rec r;
                da_manifest_rec_init(&r);
                r.unit_id = u->id, r.unit_index = u->index, r.source = di->rel, r.class_name = c->ds->classes[u->cls].name;
                r.prompt = prompts[k], r.negative_prompt = "", r.sampler = da_aug_sampler_name(c->sampler);
                r.steps = o->steps, r.guidance = items[k].guidance, r.strength = o->strength, r.filter_score = sim[k];
                r.kept = true, r.output = name, r.notes = notes[k];
                st = da_aug_record(c, &r, err);
                da_aug_sheet_offer(c, &I[k], &G[k], NULL, &G[k]);
            }
            free(name);
        }
        for (int k = 0; k < B; k++) {
            da_image_free(&I[k]), da_image_free(&G[k]);
            free(prompts[k]);
            prompts[k] = NULL;
        }
    }
    free(I), free(G), free(items), free(prompts), free(notes), free(sim), free(which), free(ei), free(et);
done:
    free(all), free(sel);
    captions_free(&cs);
    return st;
}
