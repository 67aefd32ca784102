/* pipeline.c - Stable Diffusion generation (pipeline.h): txt2img, img2img and InstructPix2Pix
 * edits, every image and guidance branch of a step in one batched UNet call.
 *
 * Mirrors diffusers 0.42.1:
 *   StableDiffusionPipeline.__call__ (encode_prompt, prepare_latents, the CFG loop),
 *   StableDiffusionImg2ImgPipeline (get_timesteps, prepare_latents: retrieve_latents(sample) *
 *     scaling_factor, then scheduler.add_noise at timesteps[:1]),
 *   StableDiffusionInstructPix2PixPipeline (prepare_image_latents: retrieve_latents(argmax), i.e. the
 *     unscaled posterior mean; three branches [text+image, negative+image, negative+zero image]).
 * The schedule and the step arithmetic are schedule.c / sampler.c; the networks clip.c, unet.c,
 * vae.c. See docs/PIPELINES.md for the batch layout, the draw order and the measured parity.
 */
#include "pipeline.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "backend.h"
#include "clip.h"
#include "json.h"
#include "modelfile.h"
#include "rng.h"
#include "sampler.h"
#include "sampling.h"
#include "sha256.h"
#include "tokenizer.h"
#include "torch_rng.h"
#include "unet.h"
#include "util.h"
#include "vae.h"

/* Prompt embeddings kept across calls: recipes generate many images from a few prompts
 * (DiffuseMix's ten edits, the empty negative prompt), and a prompt is encoded alone (batch 1) so
 * its embedding is the same bytes whatever else was asked for. */
#define PROMPT_CACHE 64

/* CosXL's sampling (its model card's EDMEulerScheduler; ComfyUI's ModelSamplingContinuousEDM
 * defaults; DiffCoRe-Mix's generation script): used for what the checkpoint does not say. */
#define COSXL_SIGMA_MIN 0.002
#define COSXL_SIGMA_MAX 120.0
#define COSXL_SIGMA_DATA 1.0
#define N_CHUNKS 24

typedef struct prompt_entry {
    char *text;
    float *emb;    /* [L, D] */
    float *pooled; /* [P]: SDXL's pooled text embedding (text_encoder_2's text_embeds) */
    uint64_t used;
} prompt_entry;

struct da_sd {
    da_model_file *m;
    bool xl;              /* SDXL: two text encoders, pooled text embedding, time ids */
    bool force_zeros;     /* SDXL: model_index force_zeros_for_empty_prompt (negative None -> zeros) */
    da_tokenizer *tok2;   /* SDXL tokenizer_2 (pads with "!") */
    da_clip_text *text2;  /* SDXL text_encoder_2 (OpenCLIP bigG with projection) */
    int D1, P;            /* SDXL: text_encoder's width (the first D1 of each token's D), pooled width */
    float *h1, *h2;       /* SDXL: one prompt's penultimate states of each encoder [L, D1], [L, D - D1] */
    float vae_scale;      /* the latent scaling factor of the VAE in use */
    da_sd_sampling sampling;
    da_tokenizer *tok;
    da_clip_text *text;
    da_unet *unet;
    da_vae *vae;
    da_backend *be;     /* owns the networks' weight copies and activation memory: freed last */
    char backend_name[32];
    da_unet_ctx *uctx;
    da_arena arena; /* CLIP and VAE activations (outside the denoising loop) */
    int threads;
    int L, D;       /* text states: tokens, width (SDXL: both encoders side by side) */
    prompt_entry cache[PROMPT_CACHE];
    uint64_t clock;
    bool hashed;
    char hash[65];
    /* da_gen_text_chunks storage */
    const char *keys[N_CHUNKS], *vals[N_CHUNKS];
    char *owned[N_CHUNKS];
};

void da_sd_options_init(da_sd_options *o) {
    memset(o, 0, sizeof *o);
    o->backend = "cpu";
}

void da_gen_item_init(da_gen_item *it) {
    memset(it, 0, sizeof *it);
    it->guidance = 7.5f;       /* StableDiffusionPipeline's default guidance_scale */
    it->image_guidance = 1.5f; /* StableDiffusionInstructPix2PixPipeline's default */
}

void da_gen_params_init(da_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->mode = DA_GEN_TXT2IMG;
    p->sampler = DA_SAMPLER_EULER_A;
    p->steps = 20;
    p->strength = 0.8f; /* StableDiffusionImg2ImgPipeline's default */
    p->eta = 0.0f;
    p->width = p->height = 512;
    p->rng = DA_RNG_PHILOX;
}

void da_sd_close(da_sd *sd) {
    if (!sd) return;
    for (int i = 0; i < PROMPT_CACHE; i++) {
        free(sd->cache[i].text);
        free(sd->cache[i].emb);
        free(sd->cache[i].pooled);
    }
    free(sd->h1);
    free(sd->h2);
    da_clip_text_free(sd->text2);
    da_tokenizer_free(sd->tok2);
    for (int i = 0; i < N_CHUNKS; i++) free(sd->owned[i]);
    da_arena_free(&sd->arena);
    da_unet_ctx_free(sd->uctx);
    da_vae_free(sd->vae);
    da_unet_free(sd->unet);
    da_clip_text_free(sd->text);
    da_backend_free(sd->be);
    da_tokenizer_free(sd->tok);
    da_model_close(sd->m);
    free(sd);
}

/* How the checkpoint samples (da_sd_sampling): a folder's scheduler_config.json of class
 * EDMEulerScheduler makes an EDM model with that file's constants; else epsilon (the file's
 * prediction_type when it has one a discrete class reads). */
static da_status detect_sampling(da_sd *sd, da_error *err) {
    da_sd_sampling *ms = &sd->sampling;
    memset(ms, 0, sizeof *ms);
    ms->prediction = DA_PRED_EPSILON;
    ms->source = "default";
    const da_model_markers *mk = &sd->m->markers;
    if (mk->ztsnr)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: carries the ztsnr marker (zero terminal SNR schedule), which is "
                          "not supported", sd->m->path);
    if (mk->edm_mean_std)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: carries edm_mean/edm_std (Playground v2.5-style EDM with latent "
                          "statistics), which is not supported", sd->m->path);
    if (mk->edm_vpred) { /* CosXL single file: ComfyUI's V_PREDICTION_EDM with ModelSamplingContinuousEDM */
        ms->edm = true;
        ms->prediction = DA_PRED_V;
        ms->sigma_max = mk->sigma_max;
        ms->sigma_min = mk->sigma_min > 0 ? mk->sigma_min : COSXL_SIGMA_MIN;
        ms->sigma_data = COSXL_SIGMA_DATA;
        ms->source = "edm_vpred.sigma_max marker tensor";
        return DA_OK;
    }
    if (mk->v_pred) {
        ms->prediction = DA_PRED_V;
        ms->source = "v_pred marker tensor";
        return DA_OK;
    }
    const char *sc = sd->m->scheduler_config;
    if (!sc) return DA_OK;
    da_sampler_kind k;
    da_sched_config c;
    da_status st = da_sched_config_file_kind(sc, &k, err);
    if (st) return st;
    if (k == DA_SAMPLER_EDM_EULER) {
        if ((st = da_sched_config_load(sc, DA_SAMPLER_EDM_EULER, &c, err))) return st;
        ms->edm = true;
        ms->sigma_min = c.sigma_min;
        ms->sigma_max = c.sigma_max;
        ms->sigma_data = c.sigma_data;
    } else if ((st = da_sched_config_load(sc, DA_SAMPLER_EULER, &c, err))) {
        return st;
    }
    ms->prediction = c.prediction;
    ms->source = "scheduler/scheduler_config.json";
    return DA_OK;
}

/* model_index.json's force_zeros_for_empty_prompt (StableDiffusionXLPipeline registers it, default
 * true, as for a single file). */
static da_status read_force_zeros(da_sd *sd, da_error *err) {
    sd->force_zeros = true;
    if (sd->m->kind != DA_KIND_SD_DIFFUSERS) return DA_OK;
    char *path = da_path_join(sd->m->path, "model_index.json"), *text = NULL;
    size_t len;
    da_json *j = NULL;
    da_status st = path ? da_read_file(path, &text, &len, err) : da_err_set(err, DA_ERR_NOMEM, "out of memory");
    if (!st) st = da_json_parse(text, len, path, &j, err);
    const da_json *v = st ? NULL : da_json_get(j, "force_zeros_for_empty_prompt");
    if (v && v->type != DA_JSON_TRUE && v->type != DA_JSON_FALSE)
        st = da_err_set(err, DA_ERR_FORMAT, "%s: force_zeros_for_empty_prompt must be true or false", path);
    else if (v)
        sd->force_zeros = v->type == DA_JSON_TRUE;
    da_json_free(j);
    free(text);
    free(path);
    return st;
}

/* SDXL's second text encoder and tokenizer (tokenizer_2/ or, for a single file, the first
 * tokenizer's vocabulary padding with "!" as stabilityai's tokenizer_2 does), the widths, and the
 * add_embedding check of diffusers' _get_add_time_ids. */
static da_status open_xl_text(da_sd *sd, const char *tokp, da_error *err) {
    const da_model_file *m = sd->m;
    da_status st;
    if (m->tokenizer_2_dir) {
        st = da_tokenizer_load(m->tokenizer_2_dir, &sd->tok2, err);
    } else {
        st = da_tokenizer_load(tokp, &sd->tok2, err);
        if (!st) st = da_tokenizer_set_pad(sd->tok2, "!", err);
    }
    if (st) return st;
    if ((st = da_clip_text_load_on(m, DA_COMP_TEXT_ENCODER_2, sd->be, &sd->text2, err))) return st;
    const da_clip_text_config *c2 = da_clip_text_cfg(sd->text2);
    if (c2->max_positions != sd->L || da_tokenizer_max_length(sd->tok2) != sd->L)
        return da_err_set(err, DA_ERR_FORMAT, "%s: text_encoder_2 / tokenizer_2 take %d / %d tokens, text_encoder %d",
                          m->path, c2->max_positions, da_tokenizer_max_length(sd->tok2), sd->L);
    sd->D = sd->D1 + c2->hidden_size;
    sd->P = da_clip_text_projection_dim(sd->text2);
    const da_unet_config *u = da_unet_config_of(sd->unet);
    if (sd->P <= 0 || u->addition_embed_dim != sd->P + 6 * u->addition_time_embed_dim)
        return da_err_set(err, DA_ERR_SHAPE, "%s: the UNet's added embedding takes %d values, the pooled text (%d) and "
                          "6 time ids x %d make %d", m->path, u->addition_embed_dim, sd->P, u->addition_time_embed_dim,
                          sd->P + 6 * u->addition_time_embed_dim);
    sd->h1 = da_malloc((size_t)sd->L * sd->D1 * sizeof(float), err);
    sd->h2 = da_malloc((size_t)sd->L * c2->hidden_size * sizeof(float), err);
    if (!sd->h1 || !sd->h2) return DA_ERR_NOMEM;
    return read_force_zeros(sd, err);
}

da_status da_sd_open(const da_sd_options *o, da_sd **out, da_error *err) {
    *out = NULL;
    if (!o || !o->model || !*o->model) return da_err_set(err, DA_ERR_INVALID_ARG, "sd: no model path given");
    const char *bk = o->backend && *o->backend ? o->backend : "cpu";
    if (o->threads < 0) return da_err_set(err, DA_ERR_INVALID_ARG, "sd: threads %d must be >= 0", o->threads);
    da_sd *sd = calloc(1, sizeof *sd);
    if (!sd) return da_err_set(err, DA_ERR_NOMEM, "sd: out of memory");
    sd->threads = o->threads;
    /* the backend first: "cuda" without a GPU (or a CUDA build) is DA_ERR_CUDA before any loading */
    if (!(sd->be = da_backend_new(bk, err))) {
        da_status bst = err->code ? err->code : DA_ERR_NOMEM;
        free(sd);
        return bst;
    }
    snprintf(sd->backend_name, sizeof sd->backend_name, "%s", strcmp(bk, "auto") ? bk : sd->be->ops->name);
    /* options.vae: da_model_open_ex binds the VAE tensors to the replacement (same structure required)
     * and takes its scaling factor when it has a config.json (diffusers reads
     * AutoencoderKL.config.scaling_factor), else keeps the model's */
    da_model_open_opts mo;
    da_model_open_opts_init(&mo);
    mo.vae = o->vae && *o->vae ? o->vae : NULL;
    da_status st = da_model_open_ex(o->model, &mo, &sd->m, err);
    if (st) goto fail;
    const da_model_file *m = sd->m;
    if (m->cfg.family != DA_FAMILY_SD1 && m->cfg.family != DA_FAMILY_IP2P && m->cfg.family != DA_FAMILY_SDXL) {
        st = da_err_set(err, DA_ERR_UNSUPPORTED, "%s: a %s model, not Stable Diffusion 1.x / InstructPix2Pix / SDXL",
                        m->path, da_family_name(m->cfg.family));
        goto fail;
    }
    sd->xl = m->cfg.family == DA_FAMILY_SDXL;
    static const da_component need[] = {DA_COMP_UNET, DA_COMP_VAE, DA_COMP_TEXT_ENCODER, DA_COMP_TEXT_ENCODER_2};
    for (size_t i = 0; i < (sd->xl ? 4u : 3u); i++)
        if (!da_model_has(m, need[i])) {
            st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: the model has no %s (a generation model needs unet, vae and "
                            "text_encoder%s)", m->path, da_component_name(need[i]), sd->xl ? ", text_encoder_2" : "");
            goto fail;
        }
    if (o->strict && m->n_ignored) {
        st = da_err_set(err, DA_ERR_FORMAT, "%s: %zu tensors no network reads (EMA copies, position_ids) and strict "
                        "loading refuses them", m->path, m->n_ignored);
        goto fail;
    }
    const char *tokp = o->tokenizer && *o->tokenizer ? o->tokenizer : m->tokenizer_dir;
    if (!tokp) {
        st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: the model has no tokenizer/ folder; give one (vocab.json + "
                        "merges.txt) with the tokenizer option (--tokenizer DIR)", m->path);
        goto fail;
    }
    if ((st = da_tokenizer_load(tokp, &sd->tok, err))) goto fail;
    if ((st = da_clip_text_load_on(m, DA_COMP_TEXT_ENCODER, sd->be, &sd->text, err))) goto fail;
    if ((st = da_unet_load_on(m, sd->be, &sd->unet, err))) goto fail;
    sd->vae_scale = m->cfg.vae.scaling_factor;
    if ((st = da_vae_load_on(m, sd->be, &sd->vae, err))) goto fail;
    if ((st = detect_sampling(sd, err))) goto fail;
    sd->L = da_clip_text_cfg(sd->text)->max_positions;
    sd->D = sd->D1 = da_clip_text_cfg(sd->text)->hidden_size;
    if (da_tokenizer_max_length(sd->tok) != sd->L) {
        st = da_err_set(err, DA_ERR_FORMAT, "%s: tokenizer model_max_length %d differs from the text encoder's %d "
                        "positions", tokp, da_tokenizer_max_length(sd->tok), sd->L);
        goto fail;
    }
    if (sd->xl && (st = open_xl_text(sd, tokp, err))) goto fail;
    if (da_unet_config_of(sd->unet)->cross_attention_dim != sd->D) {
        st = da_err_set(err, DA_ERR_SHAPE, "%s: UNet cross_attention_dim %d differs from the text encoder width %d%s",
                        m->path, da_unet_config_of(sd->unet)->cross_attention_dim, sd->D,
                        sd->xl ? " (text_encoder + text_encoder_2)" : "");
        goto fail;
    }
    if (!(sd->uctx = da_unet_ctx_new(sd->unet, sd->be))) {
        st = da_err_set(err, DA_ERR_NOMEM, "sd: out of memory for the UNet context");
        goto fail;
    }
    *out = sd;
    return DA_OK;
fail:
    da_sd_close(sd);
    return st;
}

const da_model_config *da_sd_config(const da_sd *sd) { return &sd->m->cfg; }
const char *da_sd_backend(const da_sd *sd) { return sd->backend_name; }

const da_sd_sampling *da_sd_model_sampling(const da_sd *sd) { return &sd->sampling; }

/* One file and the model's own VAE: that file's SHA-256. Otherwise the SHA-256 of the sha256sum-style
 * lines "<hex>  <part>\n": the components in the order unet, vae, text_encoder, text_encoder_2 (a
 * single file is one line "model"), then "vae" for a replacement VAE, so the value names the exact files. */
const char *da_sd_hash(da_sd *sd) {
    if (sd->hashed) return sd->hash;
    const da_model_file *m = sd->m;
    uint8_t dg[32];
    da_error e;
    if (m->n_parts == 1 && !m->vae_file) {
        if (da_sha256_file(m->parts[0].path, dg, &e)) return "";
        da_sha256_hex(dg, sd->hash);
    } else {
        const char *label[8], *path[8];
        int k = 0;
        if (m->n_parts == 1) {
            label[k] = "model", path[k++] = m->parts[0].path;
        } else {
            static const da_component order[] = {DA_COMP_UNET, DA_COMP_VAE, DA_COMP_TEXT_ENCODER, DA_COMP_TEXT_ENCODER_2};
            for (int i = 0; i < 4; i++) {
                const da_model_part *p = da_model_part_of(m, order[i]);
                if (p && !(m->vae_file && order[i] == DA_COMP_VAE)) label[k] = da_component_name(order[i]), path[k++] = p->path;
            }
        }
        const da_model_part *vp = m->vae_file ? da_model_part_of(m->vae_file, DA_COMP_VAE) : NULL;
        if (vp) label[k] = "vae", path[k++] = vp->path;
        da_sha256 h;
        da_sha256_init(&h);
        for (int i = 0; i < k; i++) {
            char hex[65], line[128];
            if (da_sha256_file(path[i], dg, &e)) return "";
            da_sha256_hex(dg, hex);
            int n = snprintf(line, sizeof line, "%s  %s\n", hex, label[i]);
            da_sha256_update(&h, line, (size_t)n);
        }
        da_sha256_final(&h, dg);
        da_sha256_hex(dg, sd->hash);
    }
    sd->hashed = true;
    return sd->hash;
}

/* ---- prompts --------------------------------------------------------------------------------- */

/* One prompt alone (batch 1). SD 1.x: the text encoder's last hidden state. SDXL (diffusers
 * encode_prompt): hidden_states[-2] of text_encoder and text_encoder_2 concatenated per token
 * (torch.concat(dim=-1)), pooled = text_encoder_2's text_embeds. */
static da_status encode_prompt(da_sd *sd, const char *text, float *emb, float *pooled, da_error *err) {
    const char *p1[1] = {text};
    if (!sd->xl) {
        da_clip_text_out o = {.last_hidden_state = emb};
        return da_clip_text_encode_prompts(sd->text, sd->be, &sd->arena, sd->tok, p1, 1, NULL, &o, err);
    }
    da_clip_text_out o1 = {.penultimate = sd->h1}, o2 = {.penultimate = sd->h2, .text_embeds = pooled};
    da_status st = da_clip_text_encode_prompts(sd->text, sd->be, &sd->arena, sd->tok, p1, 1, NULL, &o1, err);
    if (!st) st = da_clip_text_encode_prompts(sd->text2, sd->be, &sd->arena, sd->tok2, p1, 1, NULL, &o2, err);
    if (st) return st;
    const size_t D1 = (size_t)sd->D1, D2 = (size_t)(sd->D - sd->D1);
    for (int l = 0; l < sd->L; l++) {
        memcpy(emb + (size_t)l * sd->D, sd->h1 + l * D1, D1 * sizeof(float));
        memcpy(emb + (size_t)l * sd->D + D1, sd->h2 + l * D2, D2 * sizeof(float));
    }
    return DA_OK;
}

/* The embeddings of one prompt, from the cache or encoded now. */
static const prompt_entry *prompt_embedding(da_sd *sd, const char *text, da_error *err) {
    if (!text) text = "";
    prompt_entry *slot = &sd->cache[0];
    for (int i = 0; i < PROMPT_CACHE; i++) {
        prompt_entry *c = &sd->cache[i];
        if (c->text && !strcmp(c->text, text)) {
            c->used = ++sd->clock;
            return c;
        }
        if (!c->text || c->used < slot->used) slot = c; /* an empty slot, else the least recently used */
        if (!c->text) break;
    }
    size_t n = (size_t)sd->L * sd->D;
    if (!slot->emb) slot->emb = da_malloc(n * sizeof(float), err);
    if (sd->xl && !slot->pooled) slot->pooled = da_malloc((size_t)sd->P * sizeof(float), err);
    char *copy = strdup(text);
    if (!slot->emb || (sd->xl && !slot->pooled) || !copy) {
        free(copy);
        da_err_set(err, DA_ERR_NOMEM, "sd: out of memory for a prompt");
        return NULL;
    }
    free(slot->text);
    slot->text = NULL;
    if (encode_prompt(sd, text, slot->emb, slot->pooled, err)) {
        free(copy);
        return NULL;
    }
    slot->text = copy;
    slot->used = ++sd->clock;
    return slot;
}

/* ---- noise ------------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The Philox stream of one draw of one item: a hash of (image_id, index, purpose, step), so the
 * values depend on nothing else (not the batch, the position in it, the threads or the backend). */
static uint64_t philox_stream(const da_gen_item *it, da_gen_draw d, int step) {
    uint64_t h = splitmix64(it->image_id);
    h = splitmix64(h ^ it->index);
    h = splitmix64(h ^ ((uint64_t)d << 32 | (uint32_t)(step + 1)));
    return h;
}

typedef struct noise_src {
    const da_gen_params *p;
    const da_gen_item *items;
    int n;
    size_t per;      /* floats per item */
    da_torch_rng *g; /* torch mode */
} noise_src;

/* Fill out[n * per] for one draw: per item from the hook or Philox, or one torch.randn over the
 * whole batch (diffusers draws each tensor for the batch at once with a single generator). */
static da_status draw(const noise_src *ns, da_gen_draw d, int step, float *out, da_error *err) {
    const da_gen_params *p = ns->p;
    if (p->noise_hook) {
        for (int i = 0; i < ns->n; i++) {
            da_status st = p->noise_hook(p->noise_ctx, d, i, step, out + (size_t)i * ns->per, ns->per);
            if (st) return da_err_set(err, st, "generation stopped by the noise hook (item %d, step %d)", i, step);
        }
        return DA_OK;
    }
    if (p->rng == DA_RNG_TORCH) {
        da_torch_randn(ns->g, out, (size_t)ns->n * ns->per);
        return DA_OK;
    }
    for (int i = 0; i < ns->n; i++)
        da_rng_normal(ns->items[i].seed, philox_stream(&ns->items[i], d, step), 0, ns->per, 0.0f, 1.0f,
                      out + (size_t)i * ns->per);
    return DA_OK;
}

/* ---- schedule and conditioning ------------------------------------------------------------------ */

void da_gen_time_ids(const da_gen_params *p, float out[6]) {
    const int *o = p->original_size, *c = p->crop_top_left, *t = p->target_size;
    bool od = o[0] <= 0 || o[1] <= 0, td = t[0] <= 0 || t[1] <= 0;
    out[0] = (float)(od ? p->height : o[0]);
    out[1] = (float)(od ? p->width : o[1]);
    out[2] = (float)c[0];
    out[3] = (float)c[1];
    out[4] = (float)(td ? p->height : t[0]);
    out[5] = (float)(td ? p->width : t[1]);
}

da_status da_gen_sched_config(const da_sd *sd, const da_gen_params *p, da_sched_config *c, da_error *err) {
    const da_sd_sampling *ms = &sd->sampling;
    if ((unsigned)p->edm > DA_EDM_OFF || (unsigned)p->prediction > DA_PREDICT_V)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: bad edm (%d) or prediction (%d) setting", (int)p->edm,
                          (int)p->prediction);
    if ((int)p->sampler < 0 || p->sampler >= DA_SAMPLER_COUNT)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: unknown sampler %d", (int)p->sampler);
    bool edm = p->edm == DA_EDM_ON || (p->edm == DA_EDM_AUTO && ms->edm);
    da_status st;
    if (edm && p->sampler != DA_SAMPLER_EDM_EULER)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: %s is sampled as an EDM model (%s): it needs the EDM Euler "
                          "sampler, not %s", sd->m->path, p->edm == DA_EDM_ON ? "asked for" : ms->source,
                          da_sampler_kind_name(p->sampler));
    if (edm && ms->edm && sd->m->scheduler_config) {
        if ((st = da_sched_config_load(sd->m->scheduler_config, DA_SAMPLER_EDM_EULER, c, err))) return st;
    } else if (edm) {
        da_sched_config_defaults(c, DA_SAMPLER_EDM_EULER);
        c->prediction = ms->edm ? ms->prediction : DA_PRED_V;
        c->sigma_min = ms->edm && ms->sigma_min > 0 ? ms->sigma_min : COSXL_SIGMA_MIN;
        c->sigma_max = ms->edm && ms->sigma_max > 0 ? ms->sigma_max : COSXL_SIGMA_MAX;
        c->sigma_data = ms->edm && ms->sigma_data > 0 ? ms->sigma_data : COSXL_SIGMA_DATA;
        c->edm_exponential = true;
    } else if (sd->m->scheduler_config) {
        if ((st = da_sched_config_load(sd->m->scheduler_config, p->sampler, c, err))) return st;
    } else {
        if (sd->xl) da_sched_config_sdxl(c, p->sampler);
        else da_sched_config_sd1x(c, p->sampler);
        c->prediction = ms->prediction; /* a single file's v_pred marker */
    }
    if (p->karras) {
        if (c->kind == DA_SAMPLER_EDM_EULER) c->edm_exponential = false;
        else c->sigmas = DA_SIGMAS_KARRAS;
    }
    if (p->prediction != DA_PREDICT_AUTO) c->prediction = p->prediction == DA_PREDICT_V ? DA_PRED_V : DA_PRED_EPSILON;
    const double ov[3] = {p->sigma_min, p->sigma_max, p->sigma_data};
    for (int i = 0; i < 3; i++)
        if (!(ov[i] >= 0 && ov[i] < 1e6))
            return da_err_set(err, DA_ERR_INVALID_ARG, "generate: EDM sigma setting %g must be >= 0 (0: the model's)", ov[i]);
    if (c->kind == DA_SAMPLER_EDM_EULER) {
        if (p->sigma_min > 0) c->sigma_min = p->sigma_min;
        if (p->sigma_max > 0) c->sigma_max = p->sigma_max;
        if (p->sigma_data > 0) c->sigma_data = p->sigma_data;
        if (!(c->sigma_min < c->sigma_max))
            return da_err_set(err, DA_ERR_INVALID_ARG, "generate: EDM sigma_min %g must be below sigma_max %g",
                              c->sigma_min, c->sigma_max);
    } else if (ov[0] > 0 || ov[1] > 0 || ov[2] > 0) {
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: sigma_min / sigma_max / sigma_data apply to EDM sampling only");
    }
    return DA_OK;
}

/* ---- generation ------------------------------------------------------------------------------- */

/* What one UNet row of a step is: which item's latent, which text states, which image latent. */
enum { IMG_NONE, IMG_LATENT, IMG_ZERO };
typedef struct row_desc {
    int item;
    const float *ctx; /* [L, D] */
    int img;
} row_desc;

typedef struct gen_bufs {
    float *x, *xin, *noise, *eps;     /* [n * per] */
    float *x0;                        /* img2img clean latents / edit image latents [n * per] */
    float *sample, *out, *ctx, *tsteps;
    float *pooled, *tids;             /* SDXL per row: [R, P], [R, 6] */
    row_desc *rows;
    int *cond_row, *uncond_row, *img_row; /* per item: rows of its branches (-1: none) */
    float *pixels;                    /* one init image [3, H, W] */
} gen_bufs;

static void bufs_free(gen_bufs *b) {
    free(b->x); free(b->xin); free(b->noise); free(b->eps); free(b->x0);
    free(b->sample); free(b->out); free(b->ctx); free(b->tsteps); free(b->pooled); free(b->tids);
    free(b->rows); free(b->cond_row); free(b->uncond_row); free(b->img_row); free(b->pixels);
}

static da_status check_args(const da_sd *sd, const da_gen_params *p, const da_gen_item *items, int n, da_error *err) {
    if (!p || !items || n < 1) return da_err_set(err, DA_ERR_INVALID_ARG, "generate: no items");
    int f = da_vae_factor(sd->vae);
    if (p->width < f || p->height < f || p->width % f || p->height % f || p->width > 16384 || p->height > 16384)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: size %dx%d must be positive multiples of %d", p->width,
                          p->height, f);
    if (p->steps < 1 || p->steps > 10000)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: steps %d outside 1..10000", p->steps);
    if ((int)p->sampler < 0 || p->sampler >= DA_SAMPLER_COUNT)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: unknown sampler %d", (int)p->sampler);
    if (p->karras && p->sampler == DA_SAMPLER_DDIM)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: Karras sigmas do not apply to DDIM");
    const int *mc[3] = {p->original_size, p->crop_top_left, p->target_size};
    static const char *const mcn[3] = {"original size", "crop top-left", "target size"};
    for (int i = 0; i < 3; i++) {
        bool pair_ok = i == 1 || (mc[i][0] > 0) == (mc[i][1] > 0);
        if (mc[i][0] < 0 || mc[i][1] < 0 || mc[i][0] > 1 << 20 || mc[i][1] > 1 << 20 || !pair_ok)
            return da_err_set(err, DA_ERR_INVALID_ARG, "generate: %s %d,%d: values in [0, 2^20]%s", mcn[i], mc[i][0],
                              mc[i][1], i == 1 ? "" : ", both or neither zero");
    }
    if (p->rng != DA_RNG_PHILOX && p->rng != DA_RNG_TORCH)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: unknown rng mode %d", (int)p->rng);
    int cin = da_unet_config_of(sd->unet)->in_channels;
    if (p->mode == DA_GEN_EDIT && cin != 8)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: editing needs an InstructPix2Pix model (UNet with 8 input "
                          "channels); %s has %d", sd->m->path, cin);
    if (p->mode != DA_GEN_EDIT && cin != 4)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: %s is an InstructPix2Pix model (8 input channels): use "
                          "edit mode", sd->m->path);
    if (p->mode != DA_GEN_TXT2IMG && p->mode != DA_GEN_IMG2IMG && p->mode != DA_GEN_EDIT)
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: unknown mode %d", (int)p->mode);
    for (int i = 0; i < n; i++) {
        const da_gen_item *it = &items[i];
        if (!isfinite(it->guidance) || (p->mode == DA_GEN_EDIT && !isfinite(it->image_guidance)))
            return da_err_set(err, DA_ERR_INVALID_ARG, "generate: item %d: guidance is not finite", i);
        if (p->mode != DA_GEN_TXT2IMG && (!it->init || !it->init->data || it->init->w < 1 || it->init->h < 1))
            return da_err_set(err, DA_ERR_INVALID_ARG, "generate: item %d: %s needs a source image", i,
                              p->mode == DA_GEN_EDIT ? "editing" : "img2img");
        if (p->rng == DA_RNG_TORCH && !p->noise_hook && it->seed != items[0].seed)
            return da_err_set(err, DA_ERR_INVALID_ARG, "generate: torch rng mode draws one stream for the batch, but "
                              "item %d has seed %llu and item 0 %llu", i, (unsigned long long)it->seed,
                              (unsigned long long)items[0].seed);
    }
    if (p->mode == DA_GEN_IMG2IMG && !(p->strength >= 0.0f && p->strength <= 1.0f))
        return da_err_set(err, DA_ERR_INVALID_ARG, "generate: strength %g outside [0, 1]", (double)p->strength);
    return DA_OK;
}

/* The source image of an item at width x height, as [-1, 1] CHW floats. */
static da_status init_pixels(const da_image *im, int W, int H, float *out, da_error *err) {
    if (im->w == W && im->h == H) {
        da_image_to_pm1(im, out);
        return DA_OK;
    }
    da_image r;
    da_status st = da_image_resize_bicubic(im, W, H, &r, err);
    if (st) return st;
    da_image_to_pm1(&r, out);
    da_image_free(&r);
    return DA_OK;
}

static bool rows_have_cfg(const da_gen_params *p, const da_gen_item *it) {
    if (p->mode == DA_GEN_EDIT) return it->guidance > 1.0f && it->image_guidance >= 1.0f; /* do_classifier_free_guidance */
    return it->guidance > 1.0f;
}

static da_status generate(da_sd *sd, const da_gen_params *p, const da_gen_item *items, int n, da_image *out,
                          float *latents, da_error *err) {
    da_status st = check_args(sd, p, items, n, err);
    if (st) return st;
    const da_vae_config *vc = da_vae_cfg(sd->vae);
    const int f = da_vae_factor(sd->vae), lc = vc->latent_channels;
    const int h = p->height / f, w = p->width / f, cin = da_unet_config_of(sd->unet)->in_channels;
    const size_t hw = (size_t)h * w, per = (size_t)lc * hw, N = per * n;
    const size_t Ld = (size_t)sd->L * sd->D;
    if (lc != 4) return da_err_set(err, DA_ERR_UNSUPPORTED, "generate: VAE with %d latent channels", lc);

    da_sched_config sc;
    if ((st = da_gen_sched_config(sd, p, &sc, err))) return st;
    da_schedule *s = NULL;
    da_sampler *sp = NULL;
    gen_bufs b = {0};
    if ((st = da_schedule_create(&sc, p->steps, &s, err))) return st;
    int begin = 0;
    if (p->mode == DA_GEN_IMG2IMG && (begin = da_schedule_img2img_begin(s, p->strength, err)) < 0) {
        st = err->code ? err->code : DA_ERR_INVALID_ARG;
        goto done;
    }
    da_sampler_params spp;
    da_sampler_params_init(&spp);
    spp.eta = p->eta;
    if ((st = da_sampler_create(s, N, &spp, &sp, err))) goto done;

    /* the rows of one UNet call, in diffusers' order:
     *   txt2img / img2img: [negative of each item with CFG] [prompt of every item]   (torch.cat([neg, pos]))
     *   edit: [prompt+image of every item] [negative+image of CFG items] [negative+zeros of CFG items] */
    int R = 0;
    for (int i = 0; i < n; i++) R += rows_have_cfg(p, &items[i]) ? (p->mode == DA_GEN_EDIT ? 3 : 2) : 1;
    b.rows = calloc((size_t)R, sizeof *b.rows);
    b.cond_row = malloc(sizeof(int) * n);
    b.uncond_row = malloc(sizeof(int) * n);
    b.img_row = malloc(sizeof(int) * n);
    b.x = malloc(N * sizeof(float));
    b.xin = malloc(N * sizeof(float));
    b.noise = malloc(N * sizeof(float));
    b.eps = malloc(N * sizeof(float));
    b.x0 = calloc(N, sizeof(float));
    b.sample = calloc((size_t)R * cin * hw, sizeof(float));
    b.out = malloc((size_t)R * per * sizeof(float));
    b.ctx = malloc((size_t)R * Ld * sizeof(float));
    b.tsteps = malloc((size_t)R * sizeof(float));
    if (sd->xl) {
        b.pooled = malloc((size_t)R * sd->P * sizeof(float));
        b.tids = malloc((size_t)R * 6 * sizeof(float));
    }
    b.pixels = p->mode != DA_GEN_TXT2IMG ? malloc((size_t)3 * p->width * p->height * sizeof(float)) : NULL;
    if (!b.rows || !b.cond_row || !b.uncond_row || !b.img_row || !b.x || !b.xin || !b.noise || !b.eps || !b.x0 ||
        !b.sample || !b.out || !b.ctx || !b.tsteps || (p->mode != DA_GEN_TXT2IMG && !b.pixels) ||
        (sd->xl && (!b.pooled || !b.tids))) {
        st = da_err_set(err, DA_ERR_NOMEM, "generate: out of memory for %d items at %dx%d", n, p->width, p->height);
        goto done;
    }
    int r = 0;
    for (int i = 0; i < n; i++) b.uncond_row[i] = b.img_row[i] = -1;
    if (p->mode == DA_GEN_EDIT) {
        for (int i = 0; i < n; i++) b.cond_row[i] = r, b.rows[r++] = (row_desc){i, NULL, IMG_LATENT};
        for (int i = 0; i < n; i++)
            if (rows_have_cfg(p, &items[i])) b.img_row[i] = r, b.rows[r++] = (row_desc){i, NULL, IMG_LATENT};
        for (int i = 0; i < n; i++)
            if (rows_have_cfg(p, &items[i])) b.uncond_row[i] = r, b.rows[r++] = (row_desc){i, NULL, IMG_ZERO};
    } else {
        for (int i = 0; i < n; i++)
            if (rows_have_cfg(p, &items[i])) b.uncond_row[i] = r, b.rows[r++] = (row_desc){i, NULL, IMG_NONE};
        for (int i = 0; i < n; i++) b.cond_row[i] = r, b.rows[r++] = (row_desc){i, NULL, IMG_NONE};
    }
    /* text states: each distinct prompt encoded once (the cache spans calls). SDXL: a negative row of
     * an item without a negative prompt holds zeros (force_zeros_for_empty_prompt), and every row the
     * pooled embedding and the time ids (negative_add_time_ids = add_time_ids) */
    float tid[6];
    da_gen_time_ids(p, tid);
    for (r = 0; r < R; r++) {
        const da_gen_item *it = &items[b.rows[r].item];
        bool cond = b.cond_row[b.rows[r].item] == r;
        if (sd->xl) memcpy(b.tids + (size_t)r * 6, tid, sizeof tid);
        if (sd->xl && !cond && !it->negative && sd->force_zeros) {
            memset(b.ctx + (size_t)r * Ld, 0, Ld * sizeof(float));
            memset(b.pooled + (size_t)r * sd->P, 0, (size_t)sd->P * sizeof(float));
            continue;
        }
        const prompt_entry *e = prompt_embedding(sd, cond ? it->prompt : it->negative, err);
        if (!e) {
            st = err->code ? err->code : DA_ERR_NOMEM;
            goto done;
        }
        memcpy(b.ctx + (size_t)r * Ld, e->emb, Ld * sizeof(float));
        if (sd->xl) memcpy(b.pooled + (size_t)r * sd->P, e->pooled, (size_t)sd->P * sizeof(float));
    }
    const da_unet_added added = {b.pooled, b.tids};

    da_torch_rng g;
    if (p->rng == DA_RNG_TORCH) da_torch_rng_seed(&g, items[0].seed);
    noise_src ns = {p, items, n, per, &g};

    /* source images: edit -> unscaled posterior mean (retrieve_latents sample_mode="argmax");
     * img2img -> posterior sample (drawn before the initial noise) * scaling_factor, or the posterior
     * mean * scaling_factor when asked (img2img_mean) */
    const bool use_mean = p->mode == DA_GEN_EDIT || p->img2img_mean;
    if (p->mode == DA_GEN_IMG2IMG && !use_mean && (st = draw(&ns, DA_DRAW_POSTERIOR, -1, b.noise, err))) goto done;
    for (int i = 0; i < n && p->mode != DA_GEN_TXT2IMG; i++) {
        if ((st = init_pixels(items[i].init, p->width, p->height, b.pixels, err))) goto done;
        if (use_mean)
            st = da_vae_encode(sd->vae, sd->be, &sd->arena, b.pixels, 1, p->height, p->width, b.x0 + per * i, NULL, err);
        else
            st = da_vae_encode_sample(sd->vae, sd->be, &sd->arena, b.pixels, 1, p->height, p->width, b.noise + per * i,
                                      b.x0 + per * i, err);
        if (st) goto done;
    }
    if (p->mode == DA_GEN_IMG2IMG)
        for (size_t k = 0; k < N; k++) b.x0[k] *= sd->vae_scale;

    /* initial latents */
    if ((st = draw(&ns, DA_DRAW_LATENT, -1, b.noise, err))) goto done;
    if (p->mode == DA_GEN_IMG2IMG)
        da_sampler_add_noise(s, begin, b.x0, b.noise, b.x, N);
    else
        da_sampler_init_latents(s, b.noise, b.x, N);

    /* constant parts of the UNet input: the edit image latents in channels 4..7 */
    if (cin == 8)
        for (r = 0; r < R; r++)
            if (b.rows[r].img == IMG_LATENT)
                memcpy(b.sample + ((size_t)r * cin + lc) * hw, b.x0 + per * b.rows[r].item, per * sizeof(float));

    da_unet_shape us = {R, cin, h, w, sd->L, sd->D};
    if ((st = da_unet_plan(sd->uctx, &us, err))) goto done; /* all activation memory, before the loop */
    da_sampler_begin(sp, begin);

    for (int i = begin; i < s->n_steps; i++) {
        da_sampler_model_input(s, i, b.x, b.xin, N);
        float t = da_sampler_timestep(s, i);
        for (r = 0; r < R; r++) {
            memcpy(b.sample + (size_t)r * cin * hw, b.xin + per * b.rows[r].item, per * sizeof(float));
            b.tsteps[r] = t;
        }
        st = da_unet_forward_added(sd->uctx, &us, b.sample, b.tsteps, b.ctx, sd->xl ? &added : NULL, b.out, err);
        if (st) goto done;
        /* guidance, in torch's evaluation order (float arithmetic like the f32 tensors; sampling.h, shared
         * with the backends' cfg_combine op) */
        for (int k = 0; k < n; k++) {
            const float *ec = b.out + per * b.cond_row[k];
            float *e = b.eps + per * k;
            if (b.uncond_row[k] < 0) {
                memcpy(e, ec, per * sizeof(float));
            } else if (p->mode == DA_GEN_EDIT) {
                const float *ei = b.out + per * b.img_row[k], *eu = b.out + per * b.uncond_row[k];
                const float gt = items[k].guidance, gi = items[k].image_guidance;
                for (size_t j = 0; j < per; j++) e[j] = dk_cfg_edit_elem(eu[j], ec[j], ei[j], gt, gi);
            } else {
                const float *eu = b.out + per * b.uncond_row[k];
                const float gt = items[k].guidance;
                for (size_t j = 0; j < per; j++) e[j] = dk_cfg_elem(eu[j], ec[j], gt);
            }
        }
        const float *nz = NULL;
        if (da_sampler_needs_noise(sp, i)) {
            if ((st = draw(&ns, DA_DRAW_STEP, i, b.noise, err))) goto done;
            nz = b.noise;
        }
        if ((st = da_sampler_step(sp, i, b.eps, nz, b.x, err))) goto done;
        if (p->step_hook) {
            da_status hs = p->step_hook(p->step_ctx, i - begin, s->n_steps - begin, b.x, N);
            if (hs) {
                st = da_err_set(err, hs, hs == DA_ERR_INTERRUPTED ? "generation interrupted at step %d of %d"
                                                                  : "generation stopped by the step hook at step %d of %d",
                                i - begin + 1, s->n_steps - begin);
                goto done;
            }
        }
    }
    if (latents) memcpy(latents, b.x, N * sizeof(float));
    if (out) {
        /* decode one image at a time: bounded memory at 512x512 and the same bytes in any batch */
        for (size_t k = 0; k < N; k++) b.xin[k] = b.x[k] / sd->vae_scale; /* latents / scaling_factor */
        for (int i = 0; i < n; i++) {
            st = da_vae_decode_rgb8(sd->vae, sd->be, &sd->arena, b.xin + per * i, 1, h, w, &out[i], err);
            if (st) {
                for (int k = 0; k < i; k++) da_image_free(&out[k]);
                goto done;
            }
        }
    }
done:
    bufs_free(&b);
    da_sampler_free(sp);
    da_schedule_free(s);
    return st;
}

da_status da_sd_generate(da_sd *sd, const da_gen_params *p, const da_gen_item *items, int n, da_image *out,
                         float *latents, da_error *err) {
    if (!sd) return da_err_set(err, DA_ERR_INVALID_ARG, "generate: no model");
    if (out && n > 0) memset(out, 0, sizeof *out * (size_t)n);
    /* the thread count is the calling thread's OpenMP setting for the parallel regions it starts */
    int saved = omp_get_max_threads();
    if (sd->threads > 0) omp_set_num_threads(sd->threads);
    da_status st = generate(sd, p, items, n, out, latents, err);
    if (sd->threads > 0) omp_set_num_threads(saved);
    return st;
}

/* ---- PNG text chunks ------------------------------------------------------------------------------ */

static void chunk(da_sd *sd, int *k, const char *key, const char *fmt, ...) DA_PRINTF(4, 5);
static void chunk(da_sd *sd, int *k, const char *key, const char *fmt, ...) {
    if (*k >= N_CHUNKS) return;
    va_list ap;
    va_start(ap, fmt);
    char *v = NULL;
    if (vasprintf(&v, fmt, ap) < 0) v = NULL;
    va_end(ap);
    if (!v) return;
    free(sd->owned[*k]);
    sd->owned[*k] = v;
    sd->keys[*k] = key;
    sd->vals[*k] = v;
    (*k)++;
}

static const char *sampler_cli_name(const da_gen_params *p) {
    switch (p->sampler) {
    case DA_SAMPLER_DDIM: return "ddim";
    case DA_SAMPLER_EULER: return "euler";
    case DA_SAMPLER_EULER_A: return "euler_a";
    case DA_SAMPLER_DPMPP_2M: return p->karras ? "dpmpp_2m_karras" : "dpmpp_2m";
    case DA_SAMPLER_EDM_EULER: return p->karras ? "edm_euler_karras" : "edm_euler";
    default: return "unknown";
    }
}

int da_gen_text_chunks(da_sd *sd, const da_gen_params *p, const da_gen_item *it, const char ***keys,
                       const char ***values) {
    int k = 0;
    static const char *const modes[] = {"txt2img", "img2img", "edit"};
    chunk(sd, &k, "prompt", "%s", it->prompt ? it->prompt : "");
    chunk(sd, &k, "negative_prompt", "%s", it->negative ? it->negative : "");
    chunk(sd, &k, "mode", "%s", (unsigned)p->mode < 3 ? modes[p->mode] : "unknown");
    chunk(sd, &k, "seed", "%llu", (unsigned long long)it->seed);
    chunk(sd, &k, "rng", "%s", p->rng == DA_RNG_TORCH ? "torch" : "philox");
    if (p->rng == DA_RNG_PHILOX) chunk(sd, &k, "image_id", "%llu/%u", (unsigned long long)it->image_id, it->index);
    chunk(sd, &k, "sampler", "%s", sampler_cli_name(p));
    chunk(sd, &k, "steps", "%d", p->steps);
    if (p->sampler == DA_SAMPLER_DDIM && p->eta > 0) chunk(sd, &k, "eta", "%g", (double)p->eta);
    chunk(sd, &k, "guidance", "%g", (double)it->guidance);
    if (p->mode == DA_GEN_EDIT) chunk(sd, &k, "image_guidance", "%g", (double)it->image_guidance);
    if (p->mode == DA_GEN_IMG2IMG) chunk(sd, &k, "strength", "%g", (double)p->strength);
    chunk(sd, &k, "size", "%dx%d", p->width, p->height);
    da_sched_config sc;
    da_error e;
    if (da_gen_sched_config(sd, p, &sc, &e) == DA_OK) {
        chunk(sd, &k, "prediction", "%s", sc.prediction == DA_PRED_V ? "v_prediction" : "epsilon");
        if (sc.kind == DA_SAMPLER_EDM_EULER)
            chunk(sd, &k, "edm", "sigma_min %g, sigma_max %g, sigma_data %g, %s", sc.sigma_min, sc.sigma_max,
                  sc.sigma_data, sc.edm_exponential ? "exponential" : "karras");
    }
    if (sd->xl) {
        float t[6];
        da_gen_time_ids(p, t);
        chunk(sd, &k, "sdxl_time_ids", "original_size (%g, %g), crops_coords_top_left (%g, %g), target_size (%g, %g)",
              t[0], t[1], t[2], t[3], t[4], t[5]);
    }
    chunk(sd, &k, "model_sha256", "%s", da_sd_hash(sd));
    chunk(sd, &k, "software", "diffaug %s", DIFFAUG_VERSION);
    *keys = sd->keys;
    *values = sd->vals;
    return k;
}
