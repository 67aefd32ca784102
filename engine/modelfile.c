/* modelfile.c - model recognition, configuration inference and full tensor verification.
 *
 * Mirrors the rules diffusers' single_file_utils.infer_diffusers_model_type and
 * create_unet_diffusers_config_from_ldm / create_vae_diffusers_config_from_ldm apply to checkpoint
 * keys (SDXL: conditioner.embedders / label_emb; SD 2.x: cond_stage_model.model, cross-attention
 * 1024, linear proj_in), and the config.json fields UNet2DConditionModel, AutoencoderKL,
 * CLIPTextConfig and CLIPConfig define. The rules themselves are written here (see docs/MODELS.md).
 */
#include "modelfile.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "json.h"
#include "util.h"

const char *da_model_kind_name(da_model_kind k) {
    switch (k) {
    case DA_KIND_SD_SINGLE: return "single-file SD checkpoint";
    case DA_KIND_SD_DIFFUSERS: return "diffusers pipeline folder";
    case DA_KIND_CLIP_FOLDER: return "transformers CLIP folder";
    case DA_KIND_COMPONENT_FOLDER: return "component folder";
    case DA_KIND_COMPONENT_FILE: return "component file";
    case DA_KIND_BLIP_FOLDER: return "transformers BLIP folder";
    }
    return "?";
}

bool da_model_key_ignorable(const char *key) {
    if (!strncmp(key, "model_ema.", 10)) return true;
    size_t n = strlen(key);
    return n >= 12 && !strcmp(key + n - 12, "position_ids");
}

static const char *const SD2_MSG = "SD 2.x is not supported yet";

/* ---- file access ----------------------------------------------------------------------------- */

const da_model_part *da_model_part_of(const da_model_file *m, da_component c) {
    for (int i = 0; i < m->n_parts; i++)
        if (m->parts[i].comp == c || m->parts[i].comp == DA_COMP_COUNT) return &m->parts[i];
    return NULL;
}

bool da_model_has(const da_model_file *m, da_component c) {
    if (m->component != DA_COMP_COUNT) return c == m->component;
    if (m->kind == DA_KIND_CLIP_FOLDER) return c == DA_COMP_CLIP;
    if (m->kind == DA_KIND_BLIP_FOLDER) return c == DA_COMP_BLIP;
    if (c == DA_COMP_TEXT_ENCODER_2) return m->cfg.family == DA_FAMILY_SDXL && m->kind != DA_KIND_CLIP_FOLDER;
    if (m->kind == DA_KIND_SD_SINGLE) return c != DA_COMP_CLIP;
    return c == DA_COMP_UNET || c == DA_COMP_VAE || c == DA_COMP_TEXT_ENCODER;
}

/* Look a key up (layout naming) in the file of component c; a lone ldm VAE lacks the prefix. */
static const da_st_tensor *find_key(const da_model_file *m, da_component c, const char *key) {
    const da_model_part *p = da_model_part_of(m, c);
    if (!p) return NULL;
    const char *pre = m->layout == DA_LAYOUT_SINGLE ? m->ldm_prefix : p->strip;
    size_t lp = pre ? strlen(pre) : 0;
    if (lp) {
        if (strncmp(key, pre, lp)) return NULL;
        key += lp;
    }
    return da_st_find(p->st, key);
}

const da_st_tensor *da_model_tensor(const da_model_file *m, const da_tensor_spec *t) {
    if (t->comp == DA_COMP_VAE && m->vae_file) { /* the replacement VAE: same canonical name in its spec */
        const da_tensor_spec *v = da_spec_find(m->vae_file->spec, DA_COMP_VAE, t->name);
        return v ? da_model_tensor(m->vae_file, v) : NULL;
    }
    if (!da_model_has(m, t->comp == DA_COMP_EXTRA ? DA_COMP_UNET : t->comp)) return NULL;
    const char *key = da_spec_key(t, m->layout);
    if (!key || (m->layout == DA_LAYOUT_DIFFUSERS && t->single_only)) return NULL;
    return find_key(m, t->comp == DA_COMP_EXTRA ? DA_COMP_UNET : t->comp, key);
}

/* Shape of the tensor named by a printf format; returns its rank or -1 when absent. */
static int shape_of(const da_model_file *m, da_component c, int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int shape_of(const da_model_file *m, da_component c, int64_t *shape, const char *fmt, ...) {
    char key[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    const da_st_tensor *t = find_key(m, c, key);
    if (!t) return -1;
    for (int i = 0; i < t->rank && i < 4; i++) shape[i] = t->shape[i];
    return t->rank;
}

static bool any_prefix(const da_st_file *f, const char *prefix) {
    size_t n = strlen(prefix);
    for (size_t i = 0; i < f->n_tensors; i++)
        if (!strncmp(f->tensors[i].name, prefix, n)) return true;
    return false;
}

/* ---- configuration from tensor shapes -------------------------------------------------------- */

static da_status need(int rank, int want, const char *what, const da_model_file *m, da_error *err) {
    if (rank < 0) return da_err_set(err, DA_ERR_NOT_FOUND, "%s: missing tensor %s", m->path, what);
    if (rank != want)
        return da_err_set(err, DA_ERR_SHAPE, "%s: tensor %s has rank %d, expected %d", m->path, what, rank, want);
    return DA_OK;
}

/* UNet structure from shapes. Heads cannot be read from shapes: SD 1.x uses 8 at every level, SDXL
 * (recognised by its added conditioning) 64-wide heads (sgm num_head_channels 64). */
static da_status infer_unet(const da_model_file *m, da_unet_config *u, da_error *err) {
    const bool S = m->layout == DA_LAYOUT_SINGLE;
    const char *P = S ? "model.diffusion_model." : "";
    const da_component C = DA_COMP_UNET;
    int64_t sh[4];
    int r = shape_of(m, C, sh, S ? "%sinput_blocks.0.0.weight" : "%sconv_in.weight", P);
    da_status st = need(r, 4, "conv_in.weight", m, err);
    if (st) return st;
    u->in_channels = (int)sh[1];
    int c0 = (int)sh[0];
    int n = 0, lpb = 0;
    if (S) {
        int last = 0;
        for (int k = 1; k < 256; k++) {
            bool res = shape_of(m, C, sh, "%sinput_blocks.%d.0.in_layers.2.weight", P, k) >= 0;
            bool op = shape_of(m, C, sh, "%sinput_blocks.%d.0.op.weight", P, k) >= 0;
            if (!res && !op) break;
            last = k;
            n += op;
        }
        n += 1;
        lpb = (last + 1) / n - 1;
        if (last < 1 || (last + 1) % n || lpb < 1)
            return da_err_set(err, DA_ERR_FORMAT, "%s: UNet input_blocks do not form levels (%d blocks, %d levels)",
                              m->path, last, n);
    } else {
        while (n < 64 && shape_of(m, C, sh, "down_blocks.%d.resnets.0.conv1.weight", n) >= 0) n++;
        while (lpb < 64 && shape_of(m, C, sh, "down_blocks.0.resnets.%d.conv1.weight", lpb) >= 0) lpb++;
    }
    if (n < 1 || n > DA_MAX_LEVELS || lpb < 1)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: UNet with %d levels x %d layers is not supported", m->path, n, lpb);
    u->n_levels = n;
    u->layers_per_block = lpb;
    u->cross_attention_dim = 0;
    for (int i = n; i < DA_MAX_LEVELS; i++) /* levels the model lacks: as the presets leave them */
        u->block_out_channels[i] = u->heads[i] = u->transformer_depth[i] = 0, u->level_has_attn[i] = false;
    /* SDXL text_time conditioning: add_embedding.linear_1 <-> label_emb.0.0 [time_embed_dim, adm_in] */
    r = S ? shape_of(m, C, sh, "%slabel_emb.0.0.weight", P) : shape_of(m, C, sh, "add_embedding.linear_1.weight");
    const bool xl = r >= 0;
    if (xl) {
        if ((st = need(r, 2, "add_embedding.linear_1.weight (label_emb.0.0)", m, err))) return st;
        u->addition_embed_dim = (int)sh[1];
        u->addition_time_embed_dim = 256; /* SDXL's; sdxl_fill() derives it from the pooled width */
    }
    u->linear_proj = false;
    for (int i = 0; i < n; i++) {
        int k = 1 + i * (lpb + 1);
        r = S ? shape_of(m, C, sh, "%sinput_blocks.%d.0.in_layers.2.weight", P, k)
              : shape_of(m, C, sh, "down_blocks.%d.resnets.0.conv1.weight", i);
        if ((st = need(r, 4, "first resnet conv1 of a level", m, err))) return st;
        u->block_out_channels[i] = (int)sh[0];
        char ap[128];
        if (S) snprintf(ap, sizeof ap, "%sinput_blocks.%d.1", P, k);
        else snprintf(ap, sizeof ap, "down_blocks.%d.attentions.0", i);
        r = shape_of(m, C, sh, "%s.proj_in.weight", ap);
        u->level_has_attn[i] = r >= 0;
        if (r == 2 && !xl)
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: linear proj_in (SD 2.x UNet): %s", m->path, SD2_MSG);
        if (r == 2) u->linear_proj = true;
        u->heads[i] = xl ? (u->block_out_channels[i] >= 64 ? u->block_out_channels[i] / 64 : 1) : 8;
        u->transformer_depth[i] = 1;
        if (r >= 0) {
            if ((st = need(shape_of(m, C, sh, "%s.transformer_blocks.0.attn2.to_k.weight", ap), 2, "attn2.to_k.weight",
                           m, err)))
                return st;
            if (!u->cross_attention_dim) u->cross_attention_dim = (int)sh[1];
            int d = 0;
            while (d < 64 && shape_of(m, C, sh, "%s.transformer_blocks.%d.norm1.weight", ap, d) >= 0) d++;
            u->transformer_depth[i] = d;
        }
    }
    if (!u->cross_attention_dim)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: UNet without cross-attention is not supported", m->path);
    if (u->cross_attention_dim == 1024)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: cross-attention width 1024 (OpenCLIP text encoder): %s", m->path,
                          SD2_MSG);
    if (u->block_out_channels[0] != c0)
        return da_err_set(err, DA_ERR_SHAPE, "%s: conv_in has %d channels but the first level %d", m->path, c0,
                          u->block_out_channels[0]);
    r = S ? shape_of(m, C, sh, "%sout.2.weight", P) : shape_of(m, C, sh, "conv_out.weight");
    if ((st = need(r, 4, "conv_out.weight", m, err))) return st;
    u->out_channels = (int)sh[0];
    r = S ? shape_of(m, C, sh, "%stime_embed.0.weight", P) : shape_of(m, C, sh, "time_embedding.linear_1.weight");
    if ((st = need(r, 2, "time embedding linear_1", m, err))) return st;
    u->time_embed_dim = (int)sh[0];
    u->norm_num_groups = 32;
    u->norm_eps = 1e-5f;
    u->sample_size = xl ? 128 : 64;
    return DA_OK;
}

static da_status infer_vae(const da_model_file *m, da_vae_config *v, da_error *err) {
    const bool S = m->layout == DA_LAYOUT_SINGLE;
    const char *P = S ? "first_stage_model." : "";
    const da_component C = DA_COMP_VAE;
    int64_t sh[4];
    da_status st;
    int r = shape_of(m, C, sh, "%sencoder.conv_in.weight", P);
    if ((st = need(r, 4, "encoder.conv_in.weight", m, err))) return st;
    v->in_channels = (int)sh[1];
    int n = 0, lpb = 0;
    const char *lvl = S ? "%sencoder.down.%d.block.0.conv1.weight" : "%sencoder.down_blocks.%d.resnets.0.conv1.weight";
    const char *lay = S ? "%sencoder.down.0.block.%d.conv1.weight" : "%sencoder.down_blocks.0.resnets.%d.conv1.weight";
    while (n < 64 && shape_of(m, C, sh, lvl, P, n) >= 0) n++;
    while (lpb < 64 && shape_of(m, C, sh, lay, P, lpb) >= 0) lpb++;
    if (n < 1 || n > DA_MAX_LEVELS || lpb < 1)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: VAE with %d levels x %d layers is not supported", m->path, n, lpb);
    v->n_levels = n;
    v->layers_per_block = lpb;
    for (int i = 0; i < n; i++) {
        shape_of(m, C, sh, lvl, P, i);
        v->block_out_channels[i] = (int)sh[0];
    }
    if ((st = need(shape_of(m, C, sh, "%spost_quant_conv.weight", P), 4, "post_quant_conv.weight", m, err))) return st;
    v->latent_channels = (int)sh[0];
    if ((st = need(shape_of(m, C, sh, "%sdecoder.conv_out.weight", P), 4, "decoder.conv_out.weight", m, err))) return st;
    v->out_channels = (int)sh[0];
    v->norm_num_groups = 32;
    v->norm_eps = 1e-6f;
    v->scaling_factor = 0.18215f; /* SD 1.x; no tensor carries it */
    v->sample_size = 512;
    return DA_OK;
}

/* CLIP text tower from shapes. Heads: 64-wide heads as in every released CLIP (512/8, 768/12,
 * 1024/16, 1280/20); towers narrower than 64 (our tiny models) use 8-wide heads. */
static int heads_rule(int hidden) { return hidden >= 64 && hidden % 64 == 0 ? hidden / 64 : (hidden % 8 ? 1 : hidden / 8); }

/* A CLIP text config from a single file's shapes: SD 1.x's defaults (ids, eps, activation) with the
 * widths, depth and positions found in the tensors; heads by the 64-wide rule. */
static void text_from_shapes(da_clip_text_config *t, int vocab, int hidden, int layers, int inter, int pos, int proj) {
    da_model_config tmp;
    da_config_preset("sd15", &tmp);
    *t = tmp.text;
    t->vocab_size = vocab;
    t->hidden_size = hidden;
    t->num_layers = layers;
    t->num_heads = heads_rule(hidden);
    t->intermediate_size = inter;
    t->max_positions = pos;
    t->projection_dim = proj;
}

static da_status infer_text(const da_model_file *m, da_clip_text_config *t, da_error *err) {
    char lp[96];
    snprintf(lp, sizeof lp, "%s.", da_text_ldm_prefix(m->cfg.family));
    const char *P = m->layout == DA_LAYOUT_SINGLE ? lp : "text_model.";
    const da_component C = DA_COMP_TEXT_ENCODER;
    int64_t sh[4];
    da_status st;
    if ((st = need(shape_of(m, C, sh, "%sembeddings.token_embedding.weight", P), 2, "token_embedding", m, err))) return st;
    int vocab = (int)sh[0], hidden = (int)sh[1];
    if ((st = need(shape_of(m, C, sh, "%sembeddings.position_embedding.weight", P), 2, "position_embedding", m, err)))
        return st;
    int pos = (int)sh[0];
    int layers = 0;
    while (layers < 256 && shape_of(m, C, sh, "%sencoder.layers.%d.layer_norm1.weight", P, layers) >= 0) layers++;
    if ((st = need(shape_of(m, C, sh, "%sencoder.layers.0.mlp.fc1.weight", P), 2, "encoder.layers.0.mlp.fc1", m, err)))
        return st;
    text_from_shapes(t, vocab, hidden, layers, (int)sh[0], pos, hidden);
    return DA_OK;
}

/* SDXL's OpenCLIP ViT-bigG/14 text tower from the shapes of a single file's
 * conditioner.embedders.1.model.* (open_clip naming, see modelspec.c build_text2). Heads by the
 * 64-wide rule (bigG: 1280 / 64 = 20); open_clip's text tower uses exact GELU, and the ids of
 * stable-diffusion-xl-base-1.0's text_encoder_2/config.json (bos 0, eos 2: legacy argmax pooling,
 * pad 1). */
static da_status infer_text2(const da_model_file *m, da_clip_text_config *t, da_error *err) {
    const char *P = "conditioner.embedders.1.model.";
    const da_component C = DA_COMP_TEXT_ENCODER_2;
    int64_t sh[4];
    da_status st;
    if ((st = need(shape_of(m, C, sh, "%stoken_embedding.weight", P), 2, "embedders.1 token_embedding", m, err)))
        return st;
    int vocab = (int)sh[0], hidden = (int)sh[1];
    if ((st = need(shape_of(m, C, sh, "%spositional_embedding", P), 2, "embedders.1 positional_embedding", m, err)))
        return st;
    int pos = (int)sh[0];
    int layers = 0;
    while (layers < 256 && shape_of(m, C, sh, "%stransformer.resblocks.%d.ln_1.weight", P, layers) >= 0) layers++;
    if ((st = need(shape_of(m, C, sh, "%stransformer.resblocks.0.mlp.c_fc.weight", P), 2,
                   "embedders.1 transformer.resblocks.0.mlp.c_fc.weight", m, err)))
        return st;
    int inter = (int)sh[0];
    if ((st = need(shape_of(m, C, sh, "%stext_projection", P), 2, "embedders.1 text_projection", m, err))) return st;
    if (sh[0] != hidden)
        return da_err_set(err, DA_ERR_SHAPE, "%s: %stext_projection is [%lld, %lld]; open_clip stores [width %d, "
                          "projection]", m->path, P, (long long)sh[0], (long long)sh[1], hidden);
    int proj = (int)sh[1];
    if (layers < 1) return da_err_set(err, DA_ERR_FORMAT, "%s: %stransformer has no resblocks", m->path, P);
    text_from_shapes(t, vocab, hidden, layers, inter, pos, proj);
    snprintf(t->hidden_act, sizeof t->hidden_act, "gelu");
    return DA_OK;
}

/* ---- configuration from config.json ---------------------------------------------------------- */

static da_status load_json(const char *path, da_json **out, da_error *err) {
    char *text;
    size_t len;
    *out = NULL;
    da_status st = da_read_file(path, &text, &len, err);
    if (st) return st;
    st = da_json_parse(text, len, path, out, err);
    free(text);
    if (!st && (*out)->type != DA_JSON_OBJECT) {
        da_json_free(*out);
        *out = NULL;
        st = da_err_set(err, DA_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return st;
}

static int jint(const da_json *j, const char *key, int dflt) {
    int64_t v;
    return da_json_get_int(j, key, &v) && v >= 0 && v < (1 << 30) ? (int)v : dflt;
}
static float jnum(const da_json *j, const char *key, float dflt) {
    double v;
    return da_json_get_num(j, key, &v) ? (float)v : dflt;
}

/* An int array (block_out_channels); returns its length or -1. */
static int jints(const da_json *j, const char *key, int *out, int cap) {
    const da_json *a = da_json_get(j, key);
    if (!a || a->type != DA_JSON_ARRAY || a->n > (size_t)cap) return -1;
    for (size_t i = 0; i < a->n; i++) {
        if (a->items[i].type != DA_JSON_NUMBER || !a->items[i].is_int) return -1;
        out[i] = (int)a->items[i].inum;
    }
    return (int)a->n;
}

static da_status unet_from_json(const da_json *j, const char *path, da_unet_config *u, da_error *err) {
    const da_json *aet = da_json_get(j, "addition_embed_type");
    const char *s = da_json_get_str(j, "addition_embed_type");
    u->addition_embed_dim = u->addition_time_embed_dim = 0;
    if (aet && aet->type != DA_JSON_NULL) {
        if (!s || strcmp(s, "text_time"))
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: addition_embed_type %s%s%s is not supported (only \"text_time\", SDXL)",
                              path, s ? "'" : "", s ? s : "(not a string)", s ? "'" : "");
        /* SDXL: add_time_proj width and add_embedding input width (pooled text + 6 x that) */
        u->addition_time_embed_dim = jint(j, "addition_time_embed_dim", -1);
        u->addition_embed_dim = jint(j, "projection_class_embeddings_input_dim", -1);
        if (u->addition_time_embed_dim < 1 || u->addition_embed_dim <= 6 * u->addition_time_embed_dim)
            return da_err_set(err, DA_ERR_FORMAT, "%s: text_time conditioning needs addition_time_embed_dim >= 1 and "
                              "projection_class_embeddings_input_dim > 6 x that (got %d, %d)", path,
                              u->addition_time_embed_dim, u->addition_embed_dim);
    }
    bool b = false;
    u->linear_proj = da_json_get_bool(j, "use_linear_projection", &b) && b;
    if (u->linear_proj && !u->addition_embed_dim)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: use_linear_projection: %s", path, SD2_MSG);
    const da_json *ce = da_json_get(j, "class_embed_type");
    if (ce && ce->type != DA_JSON_NULL)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: UNet with class_embed_type is not supported", path);
    int n = jints(j, "block_out_channels", u->block_out_channels, DA_MAX_LEVELS);
    if (n < 1) return da_err_set(err, DA_ERR_FORMAT, "%s: block_out_channels missing or not 1..%d integers", path, DA_MAX_LEVELS);
    u->n_levels = n;
    for (int i = n; i < DA_MAX_LEVELS; i++) /* levels the model lacks: as the presets leave them */
        u->block_out_channels[i] = u->heads[i] = u->transformer_depth[i] = 0, u->level_has_attn[i] = false;
    const da_json *dt = da_json_get(j, "down_block_types");
    if (!dt || dt->type != DA_JSON_ARRAY || dt->n != (size_t)n)
        return da_err_set(err, DA_ERR_FORMAT, "%s: down_block_types must list %d block types", path, n);
    for (int i = 0; i < n; i++) {
        const da_json *e = &dt->items[i];
        if (e->type != DA_JSON_STRING) return da_err_set(err, DA_ERR_FORMAT, "%s: down_block_types[%d] is not a string", path, i);
        if (!strcmp(e->str, "CrossAttnDownBlock2D")) u->level_has_attn[i] = true;
        else if (!strcmp(e->str, "DownBlock2D")) u->level_has_attn[i] = false;
        else return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: down block type '%s' is not supported", path, e->str);
    }
    u->in_channels = jint(j, "in_channels", 4);
    u->out_channels = jint(j, "out_channels", 4);
    u->layers_per_block = jint(j, "layers_per_block", -1);
    if (u->layers_per_block < 1) return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: layers_per_block must be one integer", path);
    /* attention_head_dim (legacy name of the head count) and transformer_layers_per_block: one
     * integer for every level, or a list with one per level */
    int nh = jints(j, "attention_head_dim", u->heads, DA_MAX_LEVELS);
    if (nh <= 0)
        for (int i = 0; i < n; i++) u->heads[i] = jint(j, "attention_head_dim", 8);
    else if (nh != n)
        return da_err_set(err, DA_ERR_FORMAT, "%s: attention_head_dim lists %d values for %d levels", path, nh, n);
    /* transformer_layers_per_block absent (older configs): 0 here, counted from the tensor names once
     * the weights are open (depth_from_tensors) */
    const da_json *tl = da_json_get(j, "transformer_layers_per_block");
    int nd = jints(j, "transformer_layers_per_block", u->transformer_depth, DA_MAX_LEVELS);
    if (tl && tl->type == DA_JSON_ARRAY && nd < 0)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: transformer_layers_per_block must be an integer or a list of "
                          "%d integers (per-layer lists are not supported)", path, n);
    if (nd <= 0)
        for (int i = 0; i < n; i++) u->transformer_depth[i] = tl ? jint(j, "transformer_layers_per_block", -1) : 0;
    else if (nd != n)
        return da_err_set(err, DA_ERR_FORMAT, "%s: transformer_layers_per_block lists %d values for %d levels", path,
                          nd, n);
    u->cross_attention_dim = jint(j, "cross_attention_dim", 1280);
    if (u->cross_attention_dim == 1024)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: cross_attention_dim 1024: %s", path, SD2_MSG);
    u->norm_num_groups = jint(j, "norm_num_groups", 32);
    u->norm_eps = jnum(j, "norm_eps", 1e-5f);
    for (int i = 0; i < n; i++)
        if (u->heads[i] < 1 || u->transformer_depth[i] < 0 || (tl && u->transformer_depth[i] < 1))
            return da_err_set(err, DA_ERR_FORMAT, "%s: level %d has %d heads and %d transformer layers", path, i,
                              u->heads[i], u->transformer_depth[i]);
    u->sample_size = jint(j, "sample_size", 64);
    u->time_embed_dim = 4 * u->block_out_channels[0];
    return DA_OK;
}

/* Transformer depth of the levels whose config.json did not give it (0): the number of
 * transformer_blocks.N of the level's first attention (1 for levels without attention). */
static da_status depth_from_tensors(da_model_file *m, da_error *err) {
    da_unet_config *u = &m->cfg.unet;
    int64_t sh[4];
    for (int i = 0; i < u->n_levels; i++) {
        if (u->transformer_depth[i] > 0) continue;
        int d = 0;
        while (d < 64 && shape_of(m, DA_COMP_UNET, sh, "down_blocks.%d.attentions.0.transformer_blocks.%d.norm1.weight", i, d) >= 0)
            d++;
        if (!d && u->level_has_attn[i])
            return da_err_set(err, DA_ERR_NOT_FOUND, "%s: down_blocks.%d has attention but no "
                              "down_blocks.%d.attentions.0.transformer_blocks.0 tensors", m->path, i, i);
        u->transformer_depth[i] = d ? d : 1;
    }
    return DA_OK;
}

static da_status vae_from_json(const da_json *j, const char *path, da_vae_config *v, da_error *err) {
    int n = jints(j, "block_out_channels", v->block_out_channels, DA_MAX_LEVELS);
    if (n < 1) return da_err_set(err, DA_ERR_FORMAT, "%s: block_out_channels missing or not 1..%d integers", path, DA_MAX_LEVELS);
    v->n_levels = n;
    v->in_channels = jint(j, "in_channels", 3);
    v->out_channels = jint(j, "out_channels", 3);
    v->latent_channels = jint(j, "latent_channels", 4);
    v->layers_per_block = jint(j, "layers_per_block", 1);
    v->norm_num_groups = jint(j, "norm_num_groups", 32);
    v->norm_eps = 1e-6f;
    v->scaling_factor = jnum(j, "scaling_factor", 0.18215f);
    v->sample_size = jint(j, "sample_size", 512);
    return DA_OK;
}

/* transformers CLIPTextConfig (defaults = the class defaults). */
static void text_from_json(const da_json *j, da_clip_text_config *t) {
    t->vocab_size = jint(j, "vocab_size", 49408);
    t->hidden_size = jint(j, "hidden_size", 512);
    t->num_layers = jint(j, "num_hidden_layers", 12);
    t->num_heads = jint(j, "num_attention_heads", 8);
    t->intermediate_size = jint(j, "intermediate_size", 2048);
    t->max_positions = jint(j, "max_position_embeddings", 77);
    const char *act = da_json_get_str(j, "hidden_act");
    snprintf(t->hidden_act, sizeof t->hidden_act, "%s", act ? act : "quick_gelu");
    t->layer_norm_eps = jnum(j, "layer_norm_eps", 1e-5f);
    t->projection_dim = jint(j, "projection_dim", 512);
    t->bos_token_id = jint(j, "bos_token_id", 49406);
    t->eos_token_id = jint(j, "eos_token_id", 49407);
    t->pad_token_id = jint(j, "pad_token_id", 1);
}

/* SDXL text_encoder_2/config.json (CLIPTextModelWithProjection). The class default hidden_act is
 * quick_gelu; the released bigG config says "gelu" and is followed as written. */
static da_status text2_from_json(const da_json *j, const char *path, da_clip_text_config *t, da_error *err) {
    const da_json *arch = da_json_get(j, "architectures");
    const char *a0 = arch && arch->type == DA_JSON_ARRAY && arch->n && arch->items[0].type == DA_JSON_STRING
                         ? arch->items[0].str
                         : NULL;
    if (!a0 || strcmp(a0, "CLIPTextModelWithProjection"))
        return da_err_set(err, DA_ERR_FORMAT, "%s: text_encoder_2 must be a CLIPTextModelWithProjection (architectures "
                          "says %s)", path, a0 ? a0 : "nothing");
    text_from_json(j, t);
    if (t->projection_dim < 1) return da_err_set(err, DA_ERR_FORMAT, "%s: projection_dim %d", path, t->projection_dim);
    return DA_OK;
}

static void vision_from_json(const da_json *j, da_clip_vision_config *v) {
    v->image_size = jint(j, "image_size", 224);
    v->patch_size = jint(j, "patch_size", 32);
    v->num_channels = jint(j, "num_channels", 3);
    v->hidden_size = jint(j, "hidden_size", 768);
    v->num_layers = jint(j, "num_hidden_layers", 12);
    v->num_heads = jint(j, "num_attention_heads", 12);
    v->intermediate_size = jint(j, "intermediate_size", 3072);
    const char *act = da_json_get_str(j, "hidden_act");
    snprintf(v->hidden_act, sizeof v->hidden_act, "%s", act ? act : "quick_gelu");
    v->layer_norm_eps = jnum(j, "layer_norm_eps", 1e-5f);
    v->projection_dim = jint(j, "projection_dim", 512);
}

/* transformers BlipConfig (BlipForConditionalGeneration): defaults = the class defaults, except
 * that BlipConfig sets text_config.encoder_hidden_size to the vision width, as __post_init__ does. */
static da_status blip_from_json(const da_json *j, const char *path, da_model_config *c, da_error *err) {
    static const da_json empty = {.type = DA_JSON_OBJECT};
    const da_json *tc = da_json_get(j, "text_config"), *vc = da_json_get(j, "vision_config");
    if (!tc || tc->type != DA_JSON_OBJECT) tc = &empty;
    if (!vc || vc->type != DA_JSON_OBJECT) vc = &empty;
    bool b;
    if ((da_json_get_bool(j, "tie_word_embeddings", &b) && !b) || (da_json_get_bool(tc, "tie_word_embeddings", &b) && !b))
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: tie_word_embeddings false (an untied LM head) is not supported",
                          path);
    da_clip_vision_config *v = &c->vision;
    v->image_size = jint(vc, "image_size", 384);
    v->patch_size = jint(vc, "patch_size", 16);
    v->num_channels = 3;
    v->hidden_size = jint(vc, "hidden_size", 768);
    v->num_layers = jint(vc, "num_hidden_layers", 12);
    v->num_heads = jint(vc, "num_attention_heads", 12);
    v->intermediate_size = jint(vc, "intermediate_size", 3072);
    const char *act = da_json_get_str(vc, "hidden_act");
    snprintf(v->hidden_act, sizeof v->hidden_act, "%s", act ? act : "gelu");
    v->layer_norm_eps = jnum(vc, "layer_norm_eps", 1e-5f);
    v->projection_dim = jint(vc, "projection_dim", 512);
    da_blip_text_config *t = &c->blip_text;
    t->vocab_size = jint(tc, "vocab_size", 30524);
    t->hidden_size = jint(tc, "hidden_size", 768);
    t->encoder_hidden_size = v->hidden_size;
    t->num_layers = jint(tc, "num_hidden_layers", 12);
    t->num_heads = jint(tc, "num_attention_heads", 8);
    t->intermediate_size = jint(tc, "intermediate_size", 3072);
    t->max_positions = jint(tc, "max_position_embeddings", 512);
    act = da_json_get_str(tc, "hidden_act");
    snprintf(t->hidden_act, sizeof t->hidden_act, "%s", act ? act : "gelu");
    t->layer_norm_eps = jnum(tc, "layer_norm_eps", 1e-12f);
    t->projection_dim = jint(tc, "projection_dim", 768);
    t->bos_token_id = jint(tc, "bos_token_id", 30522);
    t->eos_token_id = jint(tc, "eos_token_id", 2);
    t->pad_token_id = jint(tc, "pad_token_id", 0);
    t->sep_token_id = jint(tc, "sep_token_id", 102);
    c->projection_dim = jint(j, "projection_dim", 512);
    c->logit_scale_init = jnum(j, "logit_scale_init_value", 2.6592f);
    c->family = DA_FAMILY_BLIP;
    return DA_OK;
}

/* transformers >= 5 saves CLIPTextModel without the "text_model." prefix older versions (and the
 * released SD 1.x folders) use; both name the same tensors. */
static void text_prefix_rule(da_model_part *p) {
    if ((p->comp == DA_COMP_TEXT_ENCODER || p->comp == DA_COMP_CLIP) &&
        !da_st_find(p->st, "text_model.embeddings.token_embedding.weight") &&
        da_st_find(p->st, "embeddings.token_embedding.weight") && !any_prefix(p->st, "vision_model."))
        p->strip = "text_model.";
}

/* ---- opening parts --------------------------------------------------------------------------- */

static da_status add_part(da_model_file *m, da_component c, const char *path, da_error *err) {
    da_model_part *p = &m->parts[m->n_parts];
    p->comp = c;
    p->strip = "";
    p->path = strdup(path);
    if (!p->path) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    m->n_parts++;
    da_status st = da_st_open(path, &p->st, err);
    if (!st) text_prefix_rule(p);
    return st;
}

/* Weights of a component folder: the safetensors file diffusers / transformers write. */
static da_status open_component_dir(da_model_file *m, da_component c, const char *dir, da_error *err) {
    static const char *const names[] = {"diffusion_pytorch_model.safetensors", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        char *w = da_path_join(dir, names[i]);
        if (!w) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
        if (da_is_file(w)) {
            da_status st = add_part(m, c, w, err);
            free(w);
            return st;
        }
        free(w);
    }
    static const char *const bins[] = {"diffusion_pytorch_model.bin", "pytorch_model.bin"};
    for (int i = 0; i < 2; i++) {
        char *w = da_path_join(dir, bins[i]);
        bool has = w && da_is_file(w);
        free(w);
        if (has)
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: only .safetensors weights are supported (found %s)", dir, bins[i]);
    }
    return da_err_set(err, DA_ERR_NOT_FOUND, "%s: %s weights missing (no diffusion_pytorch_model.safetensors or "
                      "model.safetensors)", dir, da_component_name(c));
}

static da_status load_component_json(const char *dir, da_json **j, da_error *err) {
    char *p = da_path_join(dir, "config.json");
    if (!p) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    da_status st = da_is_file(p) ? load_json(p, j, err) : da_err_set(err, DA_ERR_NOT_FOUND, "%s: missing", p);
    free(p);
    return st;
}

/* What kind of component a config.json describes. */
static bool component_of_json(const da_json *j, da_component *c) {
    const char *cls = da_json_get_str(j, "_class_name");
    const char *mt = da_json_get_str(j, "model_type");
    const da_json *arch = da_json_get(j, "architectures");
    const char *a0 = arch && arch->type == DA_JSON_ARRAY && arch->n && arch->items[0].type == DA_JSON_STRING
                         ? arch->items[0].str
                         : NULL;
    if (cls && !strcmp(cls, "UNet2DConditionModel")) *c = DA_COMP_UNET;
    else if (cls && !strcmp(cls, "AutoencoderKL")) *c = DA_COMP_VAE;
    else if ((mt && !strcmp(mt, "clip")) || (a0 && !strcmp(a0, "CLIPModel"))) *c = DA_COMP_CLIP;
    else if ((mt && !strcmp(mt, "blip")) || (a0 && !strncmp(a0, "Blip", 4))) *c = DA_COMP_BLIP;
    else if (a0 && !strcmp(a0, "CLIPTextModelWithProjection")) *c = DA_COMP_TEXT_ENCODER_2;
    else if ((mt && !strcmp(mt, "clip_text_model")) || (a0 && !strcmp(a0, "CLIPTextModel"))) *c = DA_COMP_TEXT_ENCODER;
    else return false;
    return true;
}

static da_status config_component_from_json(da_model_file *m, da_component c, const da_json *j, const char *path,
                                             da_error *err) {
    switch (c) {
    case DA_COMP_UNET: return unet_from_json(j, path, &m->cfg.unet, err);
    case DA_COMP_VAE: return vae_from_json(j, path, &m->cfg.vae, err);
    case DA_COMP_TEXT_ENCODER:
        text_from_json(j, &m->cfg.text);
        if (m->cfg.text.hidden_size == 1024)
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: 1024-wide (OpenCLIP) text encoder: %s", path, SD2_MSG);
        return DA_OK;
    case DA_COMP_TEXT_ENCODER_2: return text2_from_json(j, path, &m->cfg.text2, err);
    case DA_COMP_CLIP: {
        const da_json *tc = da_json_get(j, "text_config"), *vc = da_json_get(j, "vision_config");
        static const da_json empty = {.type = DA_JSON_OBJECT};
        text_from_json(tc && tc->type == DA_JSON_OBJECT ? tc : &empty, &m->cfg.text);
        vision_from_json(vc && vc->type == DA_JSON_OBJECT ? vc : &empty, &m->cfg.vision);
        m->cfg.projection_dim = jint(j, "projection_dim", 512);
        m->cfg.logit_scale_init = jnum(j, "logit_scale_init_value", 2.6592f);
        m->cfg.family = DA_FAMILY_CLIP;
        return DA_OK;
    }
    case DA_COMP_BLIP: {
        const da_json *arch = da_json_get(j, "architectures");
        const char *a0 = arch && arch->type == DA_JSON_ARRAY && arch->n && arch->items[0].type == DA_JSON_STRING
                             ? arch->items[0].str
                             : NULL;
        if (a0 && strcmp(a0, "BlipForConditionalGeneration"))
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: %s is not supported (only the captioner, "
                              "BlipForConditionalGeneration)", path, a0);
        return blip_from_json(j, path, &m->cfg, err);
    }
    default: return da_err_set(err, DA_ERR_INVALID_ARG, "bad component");
    }
}

/* SDXL pipeline folder: tokenizer_2/ (vocab.json + merges.txt; its tokenizer_config.json names the
 * pad token, "!" in the released files), when present or listed by model_index.json (then it must
 * be complete). */
static da_status open_tokenizer_2(da_model_file *m, const da_json *idx, da_error *err) {
    const da_json *tk = idx ? da_json_get(idx, "tokenizer_2") : NULL;
    bool want = tk && tk->type == DA_JSON_ARRAY && tk->n == 2 && tk->items[0].type == DA_JSON_STRING;
    char *td = da_path_join(m->path, "tokenizer_2");
    if (!td) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    da_status st = DA_OK;
    if (want || da_is_dir(td)) {
        static const char *const f[2] = {"vocab.json", "merges.txt"};
        for (int i = 0; i < 2 && !st; i++) {
            char *p = da_path_join(td, f[i]);
            if (!p || !da_is_file(p))
                st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: component tokenizer_2: %s missing", m->path, f[i]);
            free(p);
        }
        if (!st) {
            m->tokenizer_2_dir = td;
            td = NULL;
        }
    }
    free(td);
    return st;
}

/* The family a UNet makes: text_time conditioning -> SDXL (4 input channels), else SD 1.x (4) or
 * InstructPix2Pix (8). */
static da_status family_from_unet(da_model_file *m, da_error *err) {
    int in = m->cfg.unet.in_channels;
    if (m->cfg.unet.addition_embed_dim > 0) {
        if (in != 4)
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: SDXL UNet with %d input channels is not supported (4)",
                              m->path, in);
        m->cfg.family = DA_FAMILY_SDXL;
    } else if (in == 4) m->cfg.family = DA_FAMILY_SD1;
    else if (in == 8) m->cfg.family = DA_FAMILY_IP2P;
    else return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: UNet with %d input channels is not supported (4: SD 1.x, 8: "
                           "InstructPix2Pix)", m->path, in);
    return DA_OK;
}

/* SDXL: the parts of the configuration no UNet / VAE / CLIP-L tensor or config carries.
 * - VAE scaling_factor 0.13025 (single files carry no config);
 * - text_encoder_2 (OpenCLIP bigG) when nothing described it yet: the sdxl preset's values with
 *   the width the UNet implies (cross_attention_dim = CLIP-L width + bigG width) and the projection
 *   width of conditioner.embedders.1.model.text_projection [width, proj] where present;
 * - addition_time_embed_dim when no config gave it: addition_embed_dim = pooled (projection) + 6 d. */
static da_status sdxl_fill(da_model_file *m, da_error *err) {
    da_model_config *c = &m->cfg;
    da_unet_config *u = &c->unet;
    c->family = DA_FAMILY_SDXL;
    if (!m->cfg_from_json) {
        c->vae.scaling_factor = 0.13025f;
        c->vae.sample_size = 1024;
    }
    /* a single file's conditioner.embedders.1.model.* describes the second encoder exactly */
    if (c->text2.hidden_size <= 0 && m->layout == DA_LAYOUT_SINGLE && da_model_has(m, DA_COMP_TEXT_ENCODER_2)) {
        da_status st = infer_text2(m, &c->text2, err);
        if (st) return st;
    }
    if (c->text2.hidden_size <= 0) {
        da_model_config p;
        da_config_preset("sdxl", &p);
        int cross = u->cross_attention_dim;
        if (!da_model_has(m, DA_COMP_TEXT_ENCODER)) { /* a lone UNet: split as SDXL does when possible */
            c->text.hidden_size = cross > 1280 ? cross - 1280 : cross / 2;
            c->text.num_heads = heads_rule(c->text.hidden_size);
        }
        c->text2 = p.text2;
        c->text2.hidden_size = cross - c->text.hidden_size;
        c->text2.num_heads = heads_rule(c->text2.hidden_size > 0 ? c->text2.hidden_size : 1);
        c->text2.projection_dim = c->text2.hidden_size;
    }
    if (!m->cfg_from_json) {
        int rest = u->addition_embed_dim - c->text2.projection_dim;
        if (rest < 6 || rest % 6)
            return da_err_set(err, DA_ERR_SHAPE, "%s: SDXL add embedding input width %d is not the pooled text width "
                              "%d + 6 x a time embedding width", m->path, u->addition_embed_dim,
                              c->text2.projection_dim);
        u->addition_time_embed_dim = rest / 6;
    }
    return DA_OK;
}

/* Pipeline folder: model_index.json + unet/ vae/ text_encoder/ [text_encoder_2/] (+ tokenizer/
 * scheduler/). */
static da_status open_pipeline(da_model_file *m, const char *index_path, da_error *err) {
    da_json *idx;
    da_status st = load_json(index_path, &idx, err);
    if (st) return st;
    const char *cls = da_json_get_str(idx, "_class_name");
    /* SDXL (and CosXL, which ships as StableDiffusionXLPipeline): a second text encoder */
    const bool xl = cls && (!strcmp(cls, "StableDiffusionXLPipeline") || !strcmp(cls, "StableDiffusionXLImg2ImgPipeline"));
    if (!cls) st = da_err_set(err, DA_ERR_FORMAT, "%s: no _class_name", index_path);
    else if (!xl && strcmp(cls, "StableDiffusionPipeline") && strcmp(cls, "StableDiffusionImg2ImgPipeline") &&
             strcmp(cls, "StableDiffusionInstructPix2PixPipeline"))
        st = da_err_set(err, DA_ERR_UNSUPPORTED, "%s: pipeline %s is not supported", m->path, cls);
    static const char *const subs[4] = {"unet", "vae", "text_encoder", "text_encoder_2"};
    static const da_component comps[4] = {DA_COMP_UNET, DA_COMP_VAE, DA_COMP_TEXT_ENCODER, DA_COMP_TEXT_ENCODER_2};
    for (int i = 0; i < (xl ? 4 : 3) && !st; i++) {
        char *d = da_path_join(m->path, subs[i]);
        da_json *cj = NULL;
        if (!d) st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
        else if (!da_is_dir(d)) st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: component %s/ is missing", m->path, subs[i]);
        else if (!(st = load_component_json(d, &cj, err))) {
            st = config_component_from_json(m, comps[i], cj, subs[i], err);
            if (!st) st = open_component_dir(m, comps[i], d, err);
            if (!st && comps[i] == DA_COMP_UNET) st = depth_from_tensors(m, err);
            if (st) da_err_prefix(err, "component %s", subs[i]);
        } else {
            da_err_prefix(err, "component %s", subs[i]);
        }
        da_json_free(cj);
        free(d);
    }
    /* optional parts: present when model_index lists them (then they must be complete) */
    const da_json *tk = da_json_get(idx, "tokenizer");
    bool want_tok = tk && tk->type == DA_JSON_ARRAY && tk->n == 2 && tk->items[0].type == DA_JSON_STRING;
    char *td = da_path_join(m->path, "tokenizer");
    if (!st && td && (want_tok || da_is_dir(td))) {
        static const char *const f[2] = {"vocab.json", "merges.txt"};
        for (int i = 0; i < 2 && !st; i++) {
            char *p = da_path_join(td, f[i]);
            if (!p || !da_is_file(p)) st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: component tokenizer: %s missing", m->path, f[i]);
            free(p);
        }
        if (!st) {
            m->tokenizer_dir = td;
            td = NULL;
        }
    }
    free(td);
    const da_json *sc = da_json_get(idx, "scheduler");
    bool want_sched = sc && sc->type == DA_JSON_ARRAY && sc->n == 2 && sc->items[0].type == DA_JSON_STRING;
    char *sp = da_path_join(m->path, "scheduler/scheduler_config.json");
    if (!st && sp && want_sched) {
        da_json *sj = NULL;
        if (!da_is_file(sp)) st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: component scheduler: scheduler_config.json missing", m->path);
        else if ((st = load_json(sp, &sj, err))) da_err_prefix(err, "component scheduler");
        da_json_free(sj);
        if (!st) {
            m->scheduler_config = sp;
            sp = NULL;
        }
    }
    free(sp);
    if (!st && xl) st = open_tokenizer_2(m, idx, err);
    da_json_free(idx);
    if (!st) {
        m->cfg_from_json = true;
        st = family_from_unet(m, err);
        if (!st && xl != (m->cfg.family == DA_FAMILY_SDXL))
            st = da_err_set(err, DA_ERR_FORMAT, "%s: %s with a UNet %s text_time conditioning", m->path, cls,
                            xl ? "without" : "with");
    }
    return st;
}

/* Lone .safetensors or a single-file checkpoint: decide by key prefixes. */
static da_status classify_file(da_model_file *m, da_error *err) {
    const da_st_file *f = m->parts[0].st;
    if (any_prefix(f, "conditioner.embedders.") || any_prefix(f, "model.diffusion_model.label_emb.")) {
        /* sgm's SDXL checkpoint: the UNet with label_emb, two text encoders under conditioner. */
        if (!any_prefix(f, "model.diffusion_model."))
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: SDXL conditioner.* tensors without the UNet "
                              "(model.diffusion_model.*): only whole SDXL checkpoints are supported", m->path);
        m->cfg.family = DA_FAMILY_SDXL;
        m->kind = DA_KIND_SD_SINGLE;
        m->layout = DA_LAYOUT_SINGLE;
        m->ldm_prefix = "";
        m->parts[0].comp = DA_COMP_COUNT;
        return DA_OK;
    }
    if (any_prefix(f, "cond_stage_model.model."))
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: OpenCLIP text encoder (cond_stage_model.model.*): %s", m->path,
                          SD2_MSG);
    m->ldm_prefix = "";
    if (any_prefix(f, "model.diffusion_model.")) {
        m->kind = DA_KIND_SD_SINGLE;
        m->layout = DA_LAYOUT_SINGLE;
        m->parts[0].comp = DA_COMP_COUNT;
        return DA_OK;
    }
    m->kind = DA_KIND_COMPONENT_FILE;
    if (any_prefix(f, "first_stage_model.")) {
        m->layout = DA_LAYOUT_SINGLE;
        m->component = DA_COMP_VAE;
    } else if (da_st_find(f, "encoder.down.0.block.0.conv1.weight")) {
        m->layout = DA_LAYOUT_SINGLE; /* a lone ldm VAE (e.g. vae-ft-mse-840000-ema-pruned) */
        m->ldm_prefix = "first_stage_model.";
        m->component = DA_COMP_VAE;
    } else if (da_st_find(f, "encoder.down_blocks.0.resnets.0.conv1.weight")) {
        m->layout = DA_LAYOUT_DIFFUSERS;
        m->component = DA_COMP_VAE;
    } else if (da_st_find(f, "conv_in.weight") && da_st_find(f, "time_embedding.linear_1.weight")) {
        m->layout = DA_LAYOUT_DIFFUSERS;
        m->component = DA_COMP_UNET;
    } else if (da_st_find(f, "text_model.embeddings.token_embedding.weight") ||
               da_st_find(f, "embeddings.token_embedding.weight")) {
        if (any_prefix(f, "vision_model."))
            return da_err_set(err, DA_ERR_NOT_FOUND, "%s: CLIP weights need their folder with config.json", m->path);
        m->layout = DA_LAYOUT_DIFFUSERS;
        m->component = DA_COMP_TEXT_ENCODER;
    } else if (any_prefix(f, "cond_stage_model.transformer.")) {
        m->layout = DA_LAYOUT_SINGLE;
        m->component = DA_COMP_TEXT_ENCODER;
    } else {
        return da_err_set(err, DA_ERR_FORMAT, "%s: not a recognised model (first tensor '%s')", m->path,
                          f->n_tensors ? f->tensors[0].name : "(none)");
    }
    m->parts[0].comp = m->layout == DA_LAYOUT_SINGLE ? DA_COMP_COUNT : m->component;
    text_prefix_rule(&m->parts[0]);
    return DA_OK;
}

/* ---- verification ---------------------------------------------------------------------------- */

/* The decimal a float32 marker was written from: the shortest %g form that reads back as the same
 * float (0.002f -> 0.002, as numpy prints np.float32(0.002)), so a CosXL file's sigma_min is the
 * 0.002 diffusers users pass, not 0.0020000000949949026. */
static double f32_decimal(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) return strtod(buf, NULL);
    }
    return f;
}

/* A single file's sampling marker (da_model_markers): recorded and true, or false for other keys.
 * A marker with a value must be one finite positive float (rank 0 or [1]). */
static bool marker_key(da_model_file *m, const da_model_part *part, const da_st_tensor *t, da_status *st,
                       da_error *err) {
    da_model_markers *k = &m->markers;
    *st = DA_OK;
    bool smax = !strcmp(t->name, "edm_vpred.sigma_max"), smin = !strcmp(t->name, "edm_vpred.sigma_min");
    if (!strcmp(t->name, "v_pred")) k->v_pred = true;
    else if (!strcmp(t->name, "ztsnr")) k->ztsnr = true;
    else if (!strcmp(t->name, "edm_mean") || !strcmp(t->name, "edm_std")) k->edm_mean_std = true;
    else if (!smax && !smin) return false;
    if (!smax && !smin) return true;
    double v = NAN;
    if (t->numel == 1 && t->rank <= 1) {
        if (t->dtype == DA_F32) {
            float f;
            memcpy(&f, t->data, 4);
            v = f32_decimal(f);
        } else if (t->dtype == DA_F16 || t->dtype == DA_BF16) {
            uint16_t h;
            float f;
            memcpy(&h, t->data, 2);
            if (t->dtype == DA_F16) dk_f16_to_f32_n(&f, &h, 1);
            else dk_bf16_to_f32_n(&f, &h, 1);
            v = f;
        } else if (t->dtype == DA_F64) {
            memcpy(&v, t->data, 8);
        }
    }
    if (!(v > 0 && v < 1e6)) {
        *st = da_err_set(err, DA_ERR_FORMAT, "%s: marker tensor '%s' must hold one positive float (ComfyUI writes a 0-d "
                         "float32), not %s with %llu elements", part->path, t->name, da_dtype_name(t->dtype),
                         (unsigned long long)t->numel);
        return true;
    }
    if (smax) k->edm_vpred = true, k->sigma_max = v;
    else k->sigma_min = v;
    return true;
}

static bool is_float_dtype(da_dtype t) { return t == DA_F32 || t == DA_F16 || t == DA_BF16; }

static da_status verify(da_model_file *m, da_error *err) {
    const da_spec *s = m->spec;
    char a[96], b[96];
    m->n_ignored = 0;
    for (int p = 0; p < m->n_parts; p++) {
        const da_st_file *f = m->parts[p].st;
        for (size_t i = 0; i < f->n_tensors; i++) {
            const da_st_tensor *t = &f->tensors[i];
            const da_tensor_spec *e;
            if (m->layout == DA_LAYOUT_SINGLE) {
                char key[600];
                snprintf(key, sizeof key, "%s%s", m->ldm_prefix, t->name);
                e = da_spec_map_key(s, DA_LAYOUT_SINGLE, DA_COMP_COUNT, key);
                if (e && !da_model_has(m, e->comp == DA_COMP_EXTRA ? DA_COMP_UNET : e->comp)) e = NULL;
            } else {
                char key[600];
                snprintf(key, sizeof key, "%s%s", m->parts[p].strip, t->name);
                e = da_spec_map_key(s, DA_LAYOUT_DIFFUSERS, m->parts[p].comp, key);
            }
            if (!e && m->layout == DA_LAYOUT_SINGLE && m->n_parts == 1) {
                da_status ms;
                if (marker_key(m, &m->parts[p], t, &ms, err)) {
                    if (ms) return ms;
                    continue;
                }
            }
            if (!e) {
                if (da_model_key_ignorable(t->name)) {
                    m->n_ignored++;
                    continue;
                }
                return da_err_set(err, DA_ERR_FORMAT, "%s: unexpected tensor '%s' (not part of the detected %s %s)",
                                  m->parts[p].path, t->name, da_family_name(m->cfg.family),
                                  m->component == DA_COMP_COUNT ? "model" : da_component_name(m->component));
            }
            if (!da_spec_shape_matches(e, m->layout, t->rank, t->shape)) {
                int r;
                const int64_t *sh;
                da_spec_shape(e, m->layout, &r, &sh);
                da_shape_str(t->rank, t->shape, a, sizeof a);
                da_shape_str(r, sh, b, sizeof b);
                return da_err_set(err, DA_ERR_SHAPE, "%s: tensor '%s' has shape %s, the detected configuration needs %s",
                                  m->parts[p].path, t->name, a, b);
            }
            if (e->fixed_dtype == DA_DTYPE_COUNT && !is_float_dtype(t->dtype))
                return da_err_set(err, DA_ERR_DTYPE, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16",
                                  m->parts[p].path, t->name, da_dtype_name(t->dtype));
        }
    }
    size_t missing = 0;
    const da_tensor_spec *first = NULL;
    m->n_tensors_expected = 0;
    for (size_t i = 0; i < da_spec_count(s); i++) {
        const da_tensor_spec *e = da_spec_at(s, i);
        if (e->comp == DA_COMP_EXTRA || e->optional || !da_model_has(m, e->comp)) continue;
        m->n_tensors_expected++;
        if (!da_model_tensor(m, e)) {
            if (!first) first = e;
            missing++;
        }
    }
    if (missing) {
        const da_model_part *p = da_model_part_of(m, first->comp);
        return da_err_set(err, DA_ERR_NOT_FOUND, "%s: missing tensor '%s' (%s)%s", p ? p->path : m->path,
                          da_spec_key(first, m->layout), da_component_name(first->comp),
                          missing > 1 ? " and more" : "");
    }
    return DA_OK;
}

/* ---- open ------------------------------------------------------------------------------------ */

void da_model_close(da_model_file *m) {
    if (!m) return;
    for (int i = 0; i < m->n_parts; i++) {
        da_st_close(m->parts[i].st);
        free(m->parts[i].path);
    }
    da_spec_free(m->spec);
    da_model_close(m->vae_file);
    free(m->tokenizer_dir);
    free(m->tokenizer_2_dir);
    free(m->scheduler_config);
    free(m->path);
    free(m);
}

/* A lone text_encoder_2 folder: the SDXL defaults for the other parts, made consistent with it. */
static void lone_text2_defaults(da_model_config *c) {
    da_model_config xl;
    da_config_preset("sdxl", &xl);
    xl.text2 = c->text2;
    xl.unet.cross_attention_dim = xl.text.hidden_size + xl.text2.hidden_size;
    xl.unet.addition_embed_dim = xl.text2.projection_dim + 6 * xl.unet.addition_time_embed_dim;
    snprintf(xl.name, sizeof xl.name, "%s", c->name);
    *c = xl;
}

da_status da_model_open(const char *path, da_model_file **out, da_error *err) {
    *out = NULL;
    da_model_file *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    }
    m->component = DA_COMP_COUNT;
    m->ldm_prefix = "";
    da_config_preset("sd15", &m->cfg);
    snprintf(m->cfg.name, sizeof m->cfg.name, "detected");
    da_status st = DA_OK;
    if (da_is_dir(path)) {
        char *idx = da_path_join(path, "model_index.json"), *cj = da_path_join(path, "config.json");
        if (!idx || !cj) st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
        else if (da_is_file(idx)) {
            m->kind = DA_KIND_SD_DIFFUSERS;
            m->layout = DA_LAYOUT_DIFFUSERS;
            st = open_pipeline(m, idx, err);
        } else if (da_is_file(cj)) {
            da_json *j = NULL;
            da_component c = DA_COMP_COUNT;
            st = load_json(cj, &j, err);
            if (!st && !component_of_json(j, &c))
                st = da_err_set(err, DA_ERR_UNSUPPORTED, "%s: config.json describes no supported model (SD UNet, "
                                "AutoencoderKL, CLIPTextModel, CLIPModel, BlipForConditionalGeneration)", path);
            if (!st) {
                m->layout = DA_LAYOUT_DIFFUSERS;
                bool whole = c == DA_COMP_CLIP || c == DA_COMP_BLIP;
                m->kind = c == DA_COMP_CLIP   ? DA_KIND_CLIP_FOLDER
                          : c == DA_COMP_BLIP ? DA_KIND_BLIP_FOLDER
                                              : DA_KIND_COMPONENT_FOLDER;
                m->component = whole ? DA_COMP_COUNT : c;
                m->cfg_from_json = true;
                st = config_component_from_json(m, c, j, cj, err);
                if (!st) st = open_component_dir(m, c, path, err);
                if (!st && c == DA_COMP_UNET) st = depth_from_tensors(m, err);
                if (!st && (c == DA_COMP_CLIP || c == DA_COMP_BLIP)) {
                    char *v = da_path_join(path, c == DA_COMP_BLIP ? "vocab.txt" : "vocab.json");
                    if (v && da_is_file(v)) m->tokenizer_dir = strdup(path);
                    free(v);
                }
            }
            da_json_free(j);
        } else {
            st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: not a model folder (no model_index.json or config.json)", path);
        }
        free(idx);
        free(cj);
    } else if (da_is_file(path)) {
        m->n_parts = 1;
        m->parts[0].strip = "";
        m->parts[0].path = strdup(path);
        if (!m->parts[0].path) st = da_err_set(err, DA_ERR_NOMEM, "out of memory");
        else st = da_st_open(path, &m->parts[0].st, err);
        if (!st) st = classify_file(m, err);
        if (!st && da_model_has(m, DA_COMP_UNET)) st = infer_unet(m, &m->cfg.unet, err);
        if (!st && da_model_has(m, DA_COMP_VAE)) st = infer_vae(m, &m->cfg.vae, err);
        if (!st && da_model_has(m, DA_COMP_TEXT_ENCODER)) st = infer_text(m, &m->cfg.text, err);
        if (!st && da_model_has(m, DA_COMP_UNET)) st = family_from_unet(m, err);
    } else {
        st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: no such file or folder", path);
    }
    if (!st && da_model_has(m, DA_COMP_UNET) && m->cfg.unet.addition_embed_dim > 0) st = sdxl_fill(m, err);
    /* a lone component borrows the sd15 defaults for the other parts; keep them consistent */
    if (!st && m->cfg.family == DA_FAMILY_SDXL) {
        /* sdxl_fill made text + text2 match the UNet */
    } else if (!st && m->component == DA_COMP_UNET) {
        m->cfg.text.hidden_size = m->cfg.unet.cross_attention_dim;
        m->cfg.text.num_heads = heads_rule(m->cfg.text.hidden_size);
    } else if (!st && m->component == DA_COMP_TEXT_ENCODER) {
        m->cfg.unet.cross_attention_dim = m->cfg.text.hidden_size;
    } else if (!st && m->component == DA_COMP_TEXT_ENCODER_2) {
        lone_text2_defaults(&m->cfg);
    }
    if (!st && m->cfg.family != DA_FAMILY_CLIP && m->cfg.family != DA_FAMILY_SDXL && da_model_has(m, DA_COMP_UNET) &&
        da_model_has(m, DA_COMP_TEXT_ENCODER) &&
        m->cfg.unet.cross_attention_dim != m->cfg.text.hidden_size)
        st = da_err_set(err, DA_ERR_SHAPE, "%s: UNet cross-attention width %d does not match the text encoder width %d", path,
                        m->cfg.unet.cross_attention_dim, m->cfg.text.hidden_size);
    if (!st) {
        st = da_spec_build(&m->cfg, &m->spec, err);
        if (st) da_err_prefix(err, "%s: inconsistent configuration", path);
    }
    if (!st) st = verify(m, err);
    if (st) {
        da_model_close(m);
        return st;
    }
    *out = m;
    return DA_OK;
}

/* ---- a replacement VAE -------------------------------------------------------------------------- */

void da_model_open_opts_init(da_model_open_opts *o) { memset(o, 0, sizeof *o); }

static bool same_vae_structure(const da_vae_config *a, const da_vae_config *b) {
    if (a->n_levels != b->n_levels || a->layers_per_block != b->layers_per_block || a->in_channels != b->in_channels ||
        a->out_channels != b->out_channels || a->latent_channels != b->latent_channels ||
        a->norm_num_groups != b->norm_num_groups)
        return false;
    for (int i = 0; i < a->n_levels; i++)
        if (a->block_out_channels[i] != b->block_out_channels[i]) return false;
    return true;
}

da_status da_model_open_ex(const char *path, const da_model_open_opts *opts, da_model_file **out, da_error *err) {
    da_status st = da_model_open(path, out, err);
    if (st || !opts || !opts->vae) return st;
    da_model_file *m = *out, *v = NULL;
    char a[128], b[128];
    if (!da_model_has(m, DA_COMP_VAE)) {
        st = da_err_set(err, DA_ERR_INVALID_ARG, "%s: a replacement VAE (%s) was given, but the model has no VAE", path,
                        opts->vae);
    } else if ((st = da_model_open(opts->vae, &v, err))) {
        da_err_prefix(err, "replacement VAE");
    } else if (v->component != DA_COMP_VAE) {
        st = da_err_set(err, DA_ERR_FORMAT, "%s: not a VAE (it is a %s%s%s); a replacement VAE is an AutoencoderKL "
                        "folder or a lone VAE .safetensors", opts->vae, da_model_kind_name(v->kind),
                        v->component != DA_COMP_COUNT ? " holding a " : "",
                        v->component != DA_COMP_COUNT ? da_component_name(v->component) : "");
    } else if (!same_vae_structure(&v->cfg.vae, &m->cfg.vae)) {
        da_config_describe_part(&v->cfg, DA_COMP_VAE, a, sizeof a);
        da_config_describe_part(&m->cfg, DA_COMP_VAE, b, sizeof b);
        st = da_err_set(err, DA_ERR_SHAPE, "%s: the replacement VAE (%s) does not match the VAE of %s (%s)", opts->vae, a,
                        path, b);
    }
    if (st) {
        da_model_close(v);
        da_model_close(m);
        *out = NULL;
        return st;
    }
    if (v->cfg_from_json) m->cfg.vae.scaling_factor = v->cfg.vae.scaling_factor;
    m->vae_file = v;
    return DA_OK;
}
