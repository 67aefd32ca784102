/* modelspec.c - presets, the tensor enumeration per configuration, and the canonical <-> ldm
 * single-file name table.
 *
 * Mirrors (names and shapes learned from, tables written here):
 *   diffusers UNet2DConditionModel (unet_2d_condition.py, unet_2d_blocks.py, resnet.py,
 *     transformer_2d.py, attention.py)      <-> ldm openaimodel.UNetModel / attention.SpatialTransformer
 *   diffusers AutoencoderKL (autoencoder_kl.py, vae.py) <-> ldm model.Encoder / model.Decoder
 *   transformers CLIPTextModel / CLIPModel (modeling_clip.py) <-> ldm FrozenCLIPEmbedder
 *   the index arithmetic of diffusers' single_file_utils.convert_ldm_unet_checkpoint /
 *   convert_ldm_vae_checkpoint, and ldm ddpm.DDPM.register_schedule for the schedule buffers.
 */
#include "modelspec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- presets ---------------------------------------------------------------------------------- */

static const char *const preset_names[] = {"sd15",      "ip2p",      "sdxl",      "clip-vit-b32",      "clip-vit-l14",
                                           "tiny-sd15", "tiny-ip2p", "tiny-sdxl", "tiny-clip-vit-b32", "tiny-clip-vit-l14",
                                           "blip-base", "blip-large", "tiny-blip", NULL};

const char *const *da_config_preset_names(void) { return preset_names; }

static void text_config(da_clip_text_config *t, int hidden, int layers, int heads, int inter, int proj) {
    memset(t, 0, sizeof *t);
    t->vocab_size = 49408;
    t->hidden_size = hidden;
    t->num_layers = layers;
    t->num_heads = heads;
    t->intermediate_size = inter;
    t->max_positions = 77;
    snprintf(t->hidden_act, sizeof t->hidden_act, "quick_gelu");
    t->layer_norm_eps = 1e-5f;
    t->projection_dim = proj;
    /* the ids in the released OpenAI / SD 1.x configs (transformers takes eos_token_id == 2 as the
     * legacy "argmax of input_ids" pooling rule) */
    t->bos_token_id = 0;
    t->eos_token_id = 2;
    t->pad_token_id = 1;
}

static void vision_config(da_clip_vision_config *v, int image, int patch, int hidden, int layers, int heads,
                          int inter, int proj) {
    memset(v, 0, sizeof *v);
    v->image_size = image;
    v->patch_size = patch;
    v->num_channels = 3;
    v->hidden_size = hidden;
    v->num_layers = layers;
    v->num_heads = heads;
    v->intermediate_size = inter;
    snprintf(v->hidden_act, sizeof v->hidden_act, "quick_gelu");
    v->layer_norm_eps = 1e-5f;
    v->projection_dim = proj;
}

static void sd_config(da_model_config *c, bool tiny, int in_channels) {
    da_unet_config *u = &c->unet;
    static const int full[4] = {320, 640, 1280, 1280}, small[4] = {32, 64, 128, 128};
    static const int vfull[4] = {128, 256, 512, 512};
    u->in_channels = in_channels;
    u->out_channels = 4;
    u->n_levels = 4;
    for (int i = 0; i < 4; i++) {
        u->block_out_channels[i] = tiny ? small[i] : full[i];
        u->level_has_attn[i] = i < 3; /* CrossAttnDownBlock2D x3, DownBlock2D */
    }
    u->layers_per_block = 2;
    for (int i = 0; i < 4; i++) u->heads[i] = 8, u->transformer_depth[i] = 1;
    u->norm_num_groups = 32;
    u->norm_eps = 1e-5f;
    u->sample_size = 64;
    u->time_embed_dim = 4 * u->block_out_channels[0];
    da_vae_config *v = &c->vae;
    v->in_channels = 3;
    v->out_channels = 3;
    v->latent_channels = 4;
    v->n_levels = 4;
    for (int i = 0; i < 4; i++) v->block_out_channels[i] = tiny ? small[i] : vfull[i];
    v->layers_per_block = 2;
    v->norm_num_groups = 32;
    v->norm_eps = 1e-6f;
    v->scaling_factor = 0.18215f;
    v->sample_size = 512;
    if (tiny) text_config(&c->text, 32, 2, 4, 64, 32);
    else text_config(&c->text, 768, 12, 12, 3072, 768);
    u->cross_attention_dim = c->text.hidden_size;
    c->num_train_timesteps = 1000;
    c->beta_start = 0.00085;
    c->beta_end = 0.012;
}

/* SDXL base 1.0 (diffusers stabilityai/stable-diffusion-xl-base-1.0 configs); tiny: the same
 * structure at toy widths, with three transformer depths so that depth, mirroring and the mid
 * block's depth are all exercised. Heads are 64 wide in both, as sgm's num_head_channels 64 (the
 * rule the single-file loader infers heads by), so tiny runs the full model's attention path. */
static void sdxl_config(da_model_config *c, bool tiny) {
    sd_config(c, tiny, 4);
    da_unet_config *u = &c->unet;
    static const int full[3] = {320, 640, 1280}, small[3] = {32, 64, 128};
    static const int hfull[3] = {5, 10, 20}, hsmall[3] = {1, 1, 2};
    static const int dfull[3] = {1, 2, 10}, dsmall[3] = {1, 2, 3};
    memset(u->block_out_channels, 0, sizeof u->block_out_channels);
    memset(u->level_has_attn, 0, sizeof u->level_has_attn);
    u->n_levels = 3;
    for (int i = 0; i < 3; i++) {
        u->block_out_channels[i] = tiny ? small[i] : full[i];
        u->level_has_attn[i] = i > 0; /* DownBlock2D, CrossAttnDownBlock2D x2 */
        u->heads[i] = tiny ? hsmall[i] : hfull[i];
        u->transformer_depth[i] = tiny ? dsmall[i] : dfull[i];
    }
    u->heads[3] = u->transformer_depth[3] = 0;
    u->linear_proj = true;
    u->sample_size = 128;
    u->time_embed_dim = 4 * u->block_out_channels[0];
    if (tiny) {
        text_config(&c->text, 32, 2, 4, 64, 32);
        text_config(&c->text2, 32, 3, 4, 64, 32);
    } else {
        text_config(&c->text, 768, 12, 12, 3072, 768);
        text_config(&c->text2, 1280, 32, 20, 5120, 1280);
    }
    snprintf(c->text2.hidden_act, sizeof c->text2.hidden_act, "gelu");
    u->cross_attention_dim = c->text.hidden_size + c->text2.hidden_size;
    u->addition_time_embed_dim = tiny ? 8 : 256;
    u->addition_embed_dim = c->text2.projection_dim + 6 * u->addition_time_embed_dim;
    c->vae.scaling_factor = 0.13025f;
    c->vae.sample_size = 1024;
}

/* BLIP captioners: Salesforce/blip-image-captioning-base and -large (ViT-B/16 or ViT-L/16 at 384 px,
 * BERT-base decoder with 12 heads); the tiny twin keeps the real vocabulary and special ids. */
static void blip_config(da_model_config *c, bool tiny, bool large) {
    if (tiny) vision_config(&c->vision, 384, 16, 32, 2, 4, 64, 32);
    else if (large) vision_config(&c->vision, 384, 16, 1024, 24, 16, 4096, 512);
    else vision_config(&c->vision, 384, 16, 768, 12, 12, 3072, 512);
    snprintf(c->vision.hidden_act, sizeof c->vision.hidden_act, "gelu");
    da_blip_text_config *t = &c->blip_text;
    memset(t, 0, sizeof *t);
    t->vocab_size = 30524; /* bert-base-uncased 30522 + [DEC] + [ENC] */
    t->hidden_size = tiny ? 32 : 768;
    t->encoder_hidden_size = c->vision.hidden_size;
    t->num_layers = tiny ? 2 : 12;
    t->num_heads = tiny ? 4 : 12;
    t->intermediate_size = tiny ? 64 : 3072;
    t->max_positions = 512;
    snprintf(t->hidden_act, sizeof t->hidden_act, "gelu");
    t->layer_norm_eps = 1e-12f;
    t->projection_dim = tiny ? 32 : 768;
    t->bos_token_id = 30522; /* [DEC] */
    t->eos_token_id = 2;
    t->pad_token_id = 0;
    t->sep_token_id = 102; /* [SEP]: what generate stops on */
    c->projection_dim = tiny ? 32 : 512;
    c->logit_scale_init = 2.6592f;
}

bool da_config_preset(const char *name, da_model_config *out) {
    memset(out, 0, sizeof *out);
    if (!name) return false;
    bool tiny = !strncmp(name, "tiny-", 5);
    const char *base = tiny ? name + 5 : name;
    if (!strcmp(base, "sd15") || !strcmp(base, "ip2p")) {
        out->family = !strcmp(base, "sd15") ? DA_FAMILY_SD1 : DA_FAMILY_IP2P;
        sd_config(out, tiny, out->family == DA_FAMILY_SD1 ? 4 : 8);
    } else if (!strcmp(base, "sdxl")) {
        out->family = DA_FAMILY_SDXL;
        sdxl_config(out, tiny);
    } else if (!strcmp(base, "clip-vit-b32")) {
        out->family = DA_FAMILY_CLIP;
        if (tiny) {
            text_config(&out->text, 32, 2, 4, 64, 32);
            vision_config(&out->vision, 224, 32, 32, 2, 4, 64, 32);
            out->projection_dim = 32;
        } else {
            text_config(&out->text, 512, 12, 8, 2048, 512);
            vision_config(&out->vision, 224, 32, 768, 12, 12, 3072, 512);
            out->projection_dim = 512;
        }
    } else if (!strcmp(base, "clip-vit-l14")) {
        out->family = DA_FAMILY_CLIP;
        if (tiny) {
            text_config(&out->text, 32, 2, 4, 64, 32);
            vision_config(&out->vision, 224, 14, 48, 2, 4, 96, 32);
            out->projection_dim = 32;
        } else {
            text_config(&out->text, 768, 12, 12, 3072, 768);
            vision_config(&out->vision, 224, 14, 1024, 24, 16, 4096, 768);
            out->projection_dim = 768;
        }
    } else if ((tiny && !strcmp(base, "blip")) || (!tiny && (!strcmp(base, "blip-base") || !strcmp(base, "blip-large")))) {
        out->family = DA_FAMILY_BLIP;
        blip_config(out, tiny, !strcmp(base, "blip-large"));
    } else {
        return false;
    }
    if (out->family == DA_FAMILY_CLIP) out->logit_scale_init = 2.6592f;
    snprintf(out->name, sizeof out->name, "%s", name);
    return true;
}

const char *da_family_name(da_model_family f) {
    switch (f) {
    case DA_FAMILY_SD1: return "SD 1.x";
    case DA_FAMILY_IP2P: return "InstructPix2Pix";
    case DA_FAMILY_CLIP: return "CLIP";
    case DA_FAMILY_SDXL: return "SDXL";
    case DA_FAMILY_BLIP: return "BLIP";
    }
    return "?";
}

const char *da_component_name(da_component c) {
    static const char *const n[DA_COMP_COUNT] = {"unet", "vae", "text_encoder", "text_encoder_2", "clip",
                                                         "extra", "blip"};
    return (unsigned)c < DA_COMP_COUNT ? n[c] : "?";
}

const char *da_layout_name(da_layout l) { return l == DA_LAYOUT_SINGLE ? "single" : "diffusers"; }

static da_status check_text(const da_clip_text_config *t, const char *what, da_error *err) {
    if (t->vocab_size <= 0 || t->hidden_size <= 0 || t->num_layers <= 0 || t->num_heads <= 0 ||
        t->intermediate_size <= 0 || t->max_positions <= 0)
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: sizes must be positive", what);
    if (t->hidden_size % t->num_heads)
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: hidden size %d not divisible by %d heads", what,
                          t->hidden_size, t->num_heads);
    if (strcmp(t->hidden_act, "quick_gelu") && strcmp(t->hidden_act, "gelu"))
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: activation '%s' is not supported", what, t->hidden_act);
    return DA_OK;
}

static da_status check_vision(const da_clip_vision_config *v, da_error *err) {
    if (v->image_size <= 0 || v->patch_size <= 0 || v->image_size % v->patch_size || v->hidden_size <= 0 ||
        v->num_layers <= 0 || v->num_heads <= 0 || v->hidden_size % v->num_heads || v->intermediate_size <= 0 ||
        v->num_channels <= 0)
        return da_err_set(err, DA_ERR_INVALID_ARG, "vision tower: inconsistent sizes (image %d, patch %d, "
                          "hidden %d, heads %d)", v->image_size, v->patch_size, v->hidden_size, v->num_heads);
    return DA_OK;
}

static da_status check_blip(const da_model_config *c, da_error *err) {
    da_status st = check_vision(&c->vision, err);
    if (st) return st;
    const da_blip_text_config *t = &c->blip_text;
    if (t->vocab_size <= 0 || t->hidden_size <= 0 || t->num_layers <= 0 || t->num_heads <= 0 ||
        t->intermediate_size <= 0 || t->max_positions <= 1 || t->encoder_hidden_size <= 0)
        return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP text decoder: sizes must be positive");
    if (t->hidden_size % t->num_heads)
        return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP text decoder: hidden size %d not divisible by %d heads",
                          t->hidden_size, t->num_heads);
    if (t->encoder_hidden_size != c->vision.hidden_size)
        return da_err_set(err, DA_ERR_SHAPE, "BLIP text decoder: encoder_hidden_size %d != vision width %d",
                          t->encoder_hidden_size, c->vision.hidden_size);
    const int ids[4] = {t->bos_token_id, t->eos_token_id, t->pad_token_id, t->sep_token_id};
    for (int i = 0; i < 4; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP text decoder: special token id %d outside the vocabulary "
                              "[0, %d)", ids[i], t->vocab_size);
    if (strcmp(t->hidden_act, "gelu") || strcmp(c->vision.hidden_act, "gelu"))
        return da_err_set(err, DA_ERR_UNSUPPORTED, "BLIP: activation '%s' / '%s' is not supported (gelu)", t->hidden_act,
                          c->vision.hidden_act);
    return DA_OK;
}

da_status da_config_validate(const da_model_config *c, da_error *err) {
    if (c->family == DA_FAMILY_BLIP) return check_blip(c, err);
    da_status st = check_text(&c->text, "text encoder", err);
    if (st) return st;
    if (c->family == DA_FAMILY_CLIP) {
        const da_clip_vision_config *v = &c->vision;
        if (v->image_size <= 0 || v->patch_size <= 0 || v->image_size % v->patch_size || v->hidden_size <= 0 ||
            v->num_layers <= 0 || v->num_heads <= 0 || v->hidden_size % v->num_heads || v->intermediate_size <= 0 ||
            v->num_channels <= 0)
            return da_err_set(err, DA_ERR_INVALID_ARG, "vision tower: inconsistent sizes (image %d, patch %d, "
                              "hidden %d, heads %d)", v->image_size, v->patch_size, v->hidden_size, v->num_heads);
        if (c->projection_dim <= 0) return da_err_set(err, DA_ERR_INVALID_ARG, "CLIP projection_dim must be positive");
        return DA_OK;
    }
    const da_unet_config *u = &c->unet;
    if (u->n_levels < 1 || u->n_levels > DA_MAX_LEVELS || u->layers_per_block < 1 || u->in_channels < 1 ||
        u->out_channels < 1 || u->norm_num_groups < 1)
        return da_err_set(err, DA_ERR_INVALID_ARG, "unet: inconsistent configuration");
    for (int i = 0; i < u->n_levels; i++) {
        int ch = u->block_out_channels[i];
        if (ch <= 0 || ch % u->norm_num_groups)
            return da_err_set(err, DA_ERR_INVALID_ARG, "unet: level %d width %d not divisible by %d groups", i, ch,
                              u->norm_num_groups);
        if (u->level_has_attn[i] && (u->heads[i] < 1 || ch % u->heads[i] || u->transformer_depth[i] < 1))
            return da_err_set(err, DA_ERR_INVALID_ARG, "unet: level %d width %d with %d heads, %d transformer layers", i,
                              ch, u->heads[i], u->transformer_depth[i]);
    }
    const int text_width = c->text.hidden_size + (c->family == DA_FAMILY_SDXL ? c->text2.hidden_size : 0);
    if (u->cross_attention_dim != text_width)
        return da_err_set(err, DA_ERR_SHAPE, "unet cross_attention_dim %d != text encoder width %d",
                          u->cross_attention_dim, text_width);
    if (c->family == DA_FAMILY_SDXL) {
        if ((st = check_text(&c->text2, "text encoder 2", err))) return st;
        if (u->addition_embed_dim != c->text2.projection_dim + 6 * u->addition_time_embed_dim)
            return da_err_set(err, DA_ERR_SHAPE, "unet addition embedding width %d != pooled text %d + 6 x %d",
                              u->addition_embed_dim, c->text2.projection_dim, u->addition_time_embed_dim);
    }
    const da_vae_config *v = &c->vae;
    if (v->n_levels < 1 || v->n_levels > DA_MAX_LEVELS || v->layers_per_block < 1 || v->latent_channels < 1 ||
        v->norm_num_groups < 1)
        return da_err_set(err, DA_ERR_INVALID_ARG, "vae: inconsistent configuration");
    for (int i = 0; i < v->n_levels; i++)
        if (v->block_out_channels[i] <= 0 || v->block_out_channels[i] % v->norm_num_groups)
            return da_err_set(err, DA_ERR_INVALID_ARG, "vae: level %d width %d not divisible by %d groups", i,
                              v->block_out_channels[i], v->norm_num_groups);
    return DA_OK;
}

static void ints_str(const int *v, int n, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? "/" : "", v[i]);
}

void da_config_describe_part(const da_model_config *c, da_component comp, char *buf, size_t n) {
    char a[64], h[64], d[64];
    const da_clip_text_config *t = &c->text;
    switch (comp) {
    case DA_COMP_UNET:
        ints_str(c->unet.block_out_channels, c->unet.n_levels, a, sizeof a);
        ints_str(c->unet.heads, c->unet.n_levels, h, sizeof h);
        ints_str(c->unet.transformer_depth, c->unet.n_levels, d, sizeof d);
        snprintf(buf, n,
                 "unet in=%d out=%d channels %s x%d layers, heads %s, transformer depth %s, cross-attention %d, "
                 "%d groups%s%s",
                 c->unet.in_channels, c->unet.out_channels, a, c->unet.layers_per_block, h, d,
                 c->unet.cross_attention_dim, c->unet.norm_num_groups, c->unet.linear_proj ? ", linear proj" : "",
                 c->unet.addition_embed_dim ? ", text_time conditioning" : "");
        return;
    case DA_COMP_VAE:
        ints_str(c->vae.block_out_channels, c->vae.n_levels, a, sizeof a);
        snprintf(buf, n, "vae %s x%d layers, latent %d, scale %g", a, c->vae.layers_per_block, c->vae.latent_channels,
                 (double)c->vae.scaling_factor);
        return;
    case DA_COMP_TEXT_ENCODER:
        snprintf(buf, n, "text width %d x %d layers %d heads mlp %d vocab %d ctx %d %s", t->hidden_size, t->num_layers,
                 t->num_heads, t->intermediate_size, t->vocab_size, t->max_positions, t->hidden_act);
        return;
    case DA_COMP_TEXT_ENCODER_2:
        t = &c->text2;
        snprintf(buf, n, "text_2 width %d x %d layers %d heads mlp %d vocab %d ctx %d %s, projection %d", t->hidden_size,
                 t->num_layers, t->num_heads, t->intermediate_size, t->vocab_size, t->max_positions, t->hidden_act,
                 t->projection_dim);
        return;
    case DA_COMP_CLIP: {
        const da_clip_vision_config *v = &c->vision;
        snprintf(buf, n,
                 "CLIP: vision %dpx patch %d width %d x %d layers %d heads mlp %d; text width %d x %d layers %d heads "
                 "mlp %d vocab %d ctx %d; projection %d",
                 v->image_size, v->patch_size, v->hidden_size, v->num_layers, v->num_heads, v->intermediate_size,
                 t->hidden_size, t->num_layers, t->num_heads, t->intermediate_size, t->vocab_size, t->max_positions,
                 c->projection_dim);
        return;
    }
    case DA_COMP_BLIP: {
        const da_clip_vision_config *v = &c->vision;
        const da_blip_text_config *b = &c->blip_text;
        snprintf(buf, n,
                 "BLIP captioner: vision %dpx patch %d width %d x %d layers %d heads mlp %d; decoder width %d x %d "
                 "layers %d heads mlp %d vocab %d positions %d, bos %d sep %d pad %d",
                 v->image_size, v->patch_size, v->hidden_size, v->num_layers, v->num_heads, v->intermediate_size,
                 b->hidden_size, b->num_layers, b->num_heads, b->intermediate_size, b->vocab_size, b->max_positions,
                 b->bos_token_id, b->sep_token_id, b->pad_token_id);
        return;
    }
    default: snprintf(buf, n, "-");
    }
}

void da_config_describe(const da_model_config *c, char *buf, size_t n) {
    if (c->family == DA_FAMILY_BLIP) {
        da_config_describe_part(c, DA_COMP_BLIP, buf, n);
        return;
    }
    if (c->family == DA_FAMILY_CLIP) {
        da_config_describe_part(c, DA_COMP_CLIP, buf, n);
        return;
    }
    char u[256], v[128], t[160], t2[192] = "";
    da_config_describe_part(c, DA_COMP_UNET, u, sizeof u);
    da_config_describe_part(c, DA_COMP_VAE, v, sizeof v);
    da_config_describe_part(c, DA_COMP_TEXT_ENCODER, t, sizeof t);
    if (c->family == DA_FAMILY_SDXL) {
        t2[0] = ';', t2[1] = ' ';
        da_config_describe_part(c, DA_COMP_TEXT_ENCODER_2, t2 + 2, sizeof t2 - 2);
    }
    snprintf(buf, n, "%s: %s; %s; %s%s", da_family_name(c->family), u, v, t, t2);
}

/* ---- the spec ------------------------------------------------------------------------------- */

struct da_spec {
    da_model_config cfg;
    da_tensor_spec *t;
    size_t n, cap;
    char **strings; /* every name string, owned */
    size_t n_strings, cap_strings;
    /* open-addressing tables of indices + 1 (0 = empty) */
    size_t hcap;
    uint32_t *by_canon, *by_ldm;
    bool failed;
};

static uint64_t fnv1a(const char *s, uint64_t h) {
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t canon_hash(da_component c, const char *name) {
    return fnv1a(name, (0xcbf29ce484222325ULL ^ (uint64_t)(c + 1)) * 0x100000001b3ULL);
}

static const char *keep(da_spec *s, const char *str) {
    if (s->failed) return NULL;
    if (s->n_strings == s->cap_strings) {
        size_t cap = s->cap_strings ? 2 * s->cap_strings : 512;
        char **p = realloc(s->strings, cap * sizeof *p);
        if (!p) {
            s->failed = true;
            return NULL;
        }
        s->strings = p;
        s->cap_strings = cap;
    }
    char *d = strdup(str);
    if (!d) {
        s->failed = true;
        return NULL;
    }
    s->strings[s->n_strings++] = d;
    return d;
}

/* Builder context: canonical prefix and ldm prefix of the module being enumerated. */
typedef struct bctx {
    da_spec *s;
    da_component comp;
} bctx;

static da_tensor_spec *add(bctx *b, const char *cname, const char *lname, int rank, const int64_t *shape,
                           da_init_kind init, double a) {
    da_spec *s = b->s;
    if (s->failed) return NULL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        da_tensor_spec *p = realloc(s->t, cap * sizeof *p);
        if (!p) {
            s->failed = true;
            return NULL;
        }
        s->t = p;
        s->cap = cap;
    }
    da_tensor_spec *t = &s->t[s->n++];
    memset(t, 0, sizeof *t);
    t->comp = b->comp;
    t->name = keep(s, cname);
    t->ldm_name = lname ? keep(s, lname) : NULL;
    t->rank = t->ldm_rank = rank;
    for (int i = 0; i < rank; i++) t->shape[i] = t->ldm_shape[i] = shape[i];
    t->fixed_dtype = DA_DTYPE_COUNT;
    t->init = init;
    t->init_a = a;
    return t;
}

/* Join "prefix" "." "suffix" into buf (prefix may be empty). */
static const char *pjoin(char *buf, size_t n, const char *prefix, const char *suffix) {
    size_t a = strlen(prefix), b = strlen(suffix), k = 0;
    if (a + b + 2 > n) { /* names here are < 120 bytes; keep the result a valid, visibly cut string */
        a = a < n - 1 ? a : n - 1;
        b = 0;
    }
    memmove(buf, prefix, a);
    k = a;
    if (a && b) buf[k++] = '.';
    memcpy(buf + k, suffix, b);
    buf[k + b] = 0;
    return buf;
}

/* A Linear / Conv with PyTorch's default init (U(+-1/sqrt(fan_in)) for weight and bias).
 * k = 0: Linear [out, in]; k > 0: Conv2d [out, in, k, k]. */
static void lin_conv(bctx *b, const char *cp, const char *lp, int64_t out, int64_t in, int k, bool bias) {
    char c1[256], l1[256];
    double fan = (double)in * (k ? k * k : 1);
    double a = 1.0 / sqrt(fan);
    int64_t sh[4] = {out, in, k, k};
    add(b, pjoin(c1, sizeof c1, cp, "weight"), lp ? pjoin(l1, sizeof l1, lp, "weight") : NULL, k ? 4 : 2, sh,
        DA_INIT_UNIFORM, a);
    if (bias) {
        da_tensor_spec *t = add(b, pjoin(c1, sizeof c1, cp, "bias"), lp ? pjoin(l1, sizeof l1, lp, "bias") : NULL, 1, sh,
                                DA_INIT_UNIFORM, a);
        if (t) t->is_bias = true;
    }
}

static void norm(bctx *b, const char *cp, const char *lp, int64_t ch) {
    char c1[256], l1[256];
    da_tensor_spec *t = add(b, pjoin(c1, sizeof c1, cp, "weight"), lp ? pjoin(l1, sizeof l1, lp, "weight") : NULL, 1, &ch,
                            DA_INIT_ONES, 0);
    if (t) t->is_norm = true;
    t = add(b, pjoin(c1, sizeof c1, cp, "bias"), lp ? pjoin(l1, sizeof l1, lp, "bias") : NULL, 1, &ch, DA_INIT_ZEROS, 0);
    if (t) t->is_norm = t->is_bias = true;
}

/* Sub-name helper: "<p>.<suffix>" for both namings. */
#define SUB(buf, p, suffix) pjoin(buf, sizeof buf, p, suffix)

/* ---- UNet ------------------------------------------------------------------------------------ */

/* diffusers ResnetBlock2D <-> ldm openaimodel.ResBlock */
static void unet_resnet(bctx *b, const char *cp, const char *lp, int in, int out, int temb) {
    char c[256], l[256];
    norm(b, SUB(c, cp, "norm1"), SUB(l, lp, "in_layers.0"), in);
    lin_conv(b, SUB(c, cp, "conv1"), SUB(l, lp, "in_layers.2"), out, in, 3, true);
    lin_conv(b, SUB(c, cp, "time_emb_proj"), SUB(l, lp, "emb_layers.1"), out, temb, 0, true);
    norm(b, SUB(c, cp, "norm2"), SUB(l, lp, "out_layers.0"), out);
    lin_conv(b, SUB(c, cp, "conv2"), SUB(l, lp, "out_layers.3"), out, out, 3, true);
    if (in != out) lin_conv(b, SUB(c, cp, "conv_shortcut"), SUB(l, lp, "skip_connection"), out, in, 1, true);
}

/* diffusers Transformer2DModel <-> ldm attention.SpatialTransformer; the inner names
 * (transformer_blocks.N.attn1.to_q, ...) are the same in both. proj_in/proj_out are 1x1 convs
 * [C, C, 1, 1] (SD 1.x) or, with use_linear_projection (SDXL: use_linear_in_transformer), Linear
 * [C, C] in both namings. */
static void unet_transformer(bctx *b, const char *cp, const char *lp, int ch, int cross, int layers, bool linear) {
    char c[256], l[256], cb[256], lb[256], c2[256], l2[256];
    const int pk = linear ? 0 : 1;
    norm(b, SUB(c, cp, "norm"), SUB(l, lp, "norm"), ch);
    lin_conv(b, SUB(c, cp, "proj_in"), SUB(l, lp, "proj_in"), ch, ch, pk, true);
    for (int t = 0; t < layers; t++) {
        char tb[64];
        snprintf(tb, sizeof tb, "transformer_blocks.%d", t);
        SUB(cb, cp, tb);
        SUB(lb, lp, tb);
        static const char *const attn[2] = {"attn1", "attn2"};
        static const char *const nrm[3] = {"norm1", "norm2", "norm3"};
        for (int a = 0; a < 2; a++) {
            norm(b, SUB(c, cb, nrm[a]), SUB(l, lb, nrm[a]), ch);
            int kv = a == 0 ? ch : cross;
            char ca[256], la[256];
            SUB(ca, cb, attn[a]);
            SUB(la, lb, attn[a]);
            lin_conv(b, SUB(c2, ca, "to_q"), SUB(l2, la, "to_q"), ch, ch, 0, false);
            lin_conv(b, SUB(c2, ca, "to_k"), SUB(l2, la, "to_k"), ch, kv, 0, false);
            lin_conv(b, SUB(c2, ca, "to_v"), SUB(l2, la, "to_v"), ch, kv, 0, false);
            lin_conv(b, SUB(c2, ca, "to_out.0"), SUB(l2, la, "to_out.0"), ch, ch, 0, true);
        }
        norm(b, SUB(c, cb, "norm3"), SUB(l, lb, "norm3"), ch);
        /* GEGLU: one projection to 2 x 4C (value and gate halves) */
        lin_conv(b, SUB(c, cb, "ff.net.0.proj"), SUB(l, lb, "ff.net.0.proj"), 8 * ch, ch, 0, true);
        lin_conv(b, SUB(c, cb, "ff.net.2"), SUB(l, lb, "ff.net.2"), ch, 4 * ch, 0, true);
    }
    lin_conv(b, SUB(c, cp, "proj_out"), SUB(l, lp, "proj_out"), ch, ch, pk, true);
}

static void build_unet(da_spec *s, const da_unet_config *u) {
    bctx b = {s, DA_COMP_UNET};
    const char *P = "model.diffusion_model";
    char c[256], l[256];
    const int n = u->n_levels, lpb = u->layers_per_block, temb = u->time_embed_dim;
    const int *boc = u->block_out_channels;
    const int cross = u->cross_attention_dim;
    const int *depth = u->transformer_depth;

    snprintf(l, sizeof l, "%s.input_blocks.0.0", P);
    lin_conv(&b, "conv_in", l, boc[0], u->in_channels, 3, true);
    snprintf(l, sizeof l, "%s.time_embed.0", P);
    lin_conv(&b, "time_embedding.linear_1", l, temb, boc[0], 0, true);
    snprintf(l, sizeof l, "%s.time_embed.2", P);
    lin_conv(&b, "time_embedding.linear_2", l, temb, temb, 0, true);
    if (u->addition_embed_dim > 0) {
        /* SDXL text_time: diffusers add_embedding (TimestepEmbedding) <-> sgm label_emb.0 (Sequential
         * of Linear, SiLU, Linear) */
        snprintf(l, sizeof l, "%s.label_emb.0.0", P);
        lin_conv(&b, "add_embedding.linear_1", l, temb, u->addition_embed_dim, 0, true);
        snprintf(l, sizeof l, "%s.label_emb.0.2", P);
        lin_conv(&b, "add_embedding.linear_2", l, temb, temb, 0, true);
    }

    /* down: ldm input_blocks.k, k = 1 + level * (lpb + 1) + layer; the downsampler takes the slot
     * after the last layer of every level but the last */
    int ch_in = boc[0];
    for (int i = 0; i < n; i++) {
        int out = boc[i];
        if (u->level_has_attn[i])
            for (int j = 0; j < lpb; j++) {
                snprintf(c, sizeof c, "down_blocks.%d.attentions.%d", i, j);
                snprintf(l, sizeof l, "%s.input_blocks.%d.1", P, 1 + i * (lpb + 1) + j);
                unet_transformer(&b, c, l, out, cross, depth[i], u->linear_proj);
            }
        for (int j = 0; j < lpb; j++) {
            snprintf(c, sizeof c, "down_blocks.%d.resnets.%d", i, j);
            snprintf(l, sizeof l, "%s.input_blocks.%d.0", P, 1 + i * (lpb + 1) + j);
            unet_resnet(&b, c, l, j == 0 ? ch_in : out, out, temb);
        }
        if (i < n - 1) {
            snprintf(c, sizeof c, "down_blocks.%d.downsamplers.0.conv", i);
            snprintf(l, sizeof l, "%s.input_blocks.%d.0.op", P, 1 + i * (lpb + 1) + lpb);
            lin_conv(&b, c, l, out, out, 3, true);
        }
        ch_in = out;
    }

    /* mid: ldm middle_block.0 (res) .1 (transformer) .2 (res) */
    int mid = boc[n - 1];
    snprintf(l, sizeof l, "%s.middle_block.1", P);
    unet_transformer(&b, "mid_block.attentions.0", l, mid, cross, depth[n - 1], u->linear_proj);
    snprintf(l, sizeof l, "%s.middle_block.0", P);
    unet_resnet(&b, "mid_block.resnets.0", l, mid, mid, temb);
    snprintf(l, sizeof l, "%s.middle_block.2", P);
    unet_resnet(&b, "mid_block.resnets.1", l, mid, mid, temb);

    /* up: ldm output_blocks.k, k = level * (lpb + 1) + layer; resnet inputs concatenate the skip */
    int prev = boc[n - 1];
    for (int i = 0; i < n; i++) {
        int out = boc[n - 1 - i];
        int skip_in = boc[n - 1 - (i + 1 < n ? i + 1 : n - 1)];
        bool attn = u->level_has_attn[n - 1 - i];
        if (attn)
            for (int j = 0; j <= lpb; j++) {
                snprintf(c, sizeof c, "up_blocks.%d.attentions.%d", i, j);
                snprintf(l, sizeof l, "%s.output_blocks.%d.1", P, i * (lpb + 1) + j);
                unet_transformer(&b, c, l, out, cross, depth[n - 1 - i], u->linear_proj);
            }
        for (int j = 0; j <= lpb; j++) {
            int res_in = (j == 0 ? prev : out) + (j == lpb ? skip_in : out);
            snprintf(c, sizeof c, "up_blocks.%d.resnets.%d", i, j);
            snprintf(l, sizeof l, "%s.output_blocks.%d.0", P, i * (lpb + 1) + j);
            unet_resnet(&b, c, l, res_in, out, temb);
        }
        if (i < n - 1) {
            snprintf(c, sizeof c, "up_blocks.%d.upsamplers.0.conv", i);
            snprintf(l, sizeof l, "%s.output_blocks.%d.%d.conv", P, i * (lpb + 1) + lpb, attn ? 2 : 1);
            lin_conv(&b, c, l, out, out, 3, true);
        }
        prev = out;
    }
    snprintf(l, sizeof l, "%s.out.0", P);
    norm(&b, "conv_norm_out", l, boc[0]);
    snprintf(l, sizeof l, "%s.out.2", P);
    lin_conv(&b, "conv_out", l, u->out_channels, boc[0], 3, true);
}

/* ---- VAE ------------------------------------------------------------------------------------- */

/* diffusers ResnetBlock2D (temb None) <-> ldm model.ResnetBlock */
static void vae_resnet(bctx *b, const char *cp, const char *lp, int in, int out) {
    char c[256], l[256];
    norm(b, SUB(c, cp, "norm1"), SUB(l, lp, "norm1"), in);
    lin_conv(b, SUB(c, cp, "conv1"), SUB(l, lp, "conv1"), out, in, 3, true);
    norm(b, SUB(c, cp, "norm2"), SUB(l, lp, "norm2"), out);
    lin_conv(b, SUB(c, cp, "conv2"), SUB(l, lp, "conv2"), out, out, 3, true);
    if (in != out) lin_conv(b, SUB(c, cp, "conv_shortcut"), SUB(l, lp, "nin_shortcut"), out, in, 1, true);
}

/* diffusers Attention (group_norm, to_q/k/v, to_out.0: Linear [C,C]) <-> ldm model.AttnBlock
 * (norm, q/k/v, proj_out: Conv2d 1x1 [C,C,1,1]). Same values, the ldm shape has two unit dims. */
static void vae_attention(bctx *b, const char *cp, const char *lp, int ch) {
    char c[256], l[256], c2[256], l2[256];
    norm(b, SUB(c, cp, "group_norm"), SUB(l, lp, "norm"), ch);
    static const char *const cn[4] = {"to_q", "to_k", "to_v", "to_out.0"}, *const ln[4] = {"q", "k", "v", "proj_out"};
    for (int i = 0; i < 4; i++) {
        size_t first = b->s->n;
        lin_conv(b, SUB(c, cp, cn[i]), SUB(l, lp, ln[i]), ch, ch, 0, true);
        if (b->s->failed) return;
        da_tensor_spec *w = &b->s->t[first]; /* the weight: ldm stores a 1x1 conv */
        w->ldm_rank = 4;
        w->ldm_shape[2] = w->ldm_shape[3] = 1;
        (void)c2;
        (void)l2;
    }
}

static void vae_mid(bctx *b, const char *cp, const char *lp, int ch) {
    char c[256], l[256];
    vae_attention(b, SUB(c, cp, "mid_block.attentions.0"), SUB(l, lp, "mid.attn_1"), ch);
    vae_resnet(b, SUB(c, cp, "mid_block.resnets.0"), SUB(l, lp, "mid.block_1"), ch, ch);
    vae_resnet(b, SUB(c, cp, "mid_block.resnets.1"), SUB(l, lp, "mid.block_2"), ch, ch);
}

static void build_vae(da_spec *s, const da_vae_config *v) {
    bctx b = {s, DA_COMP_VAE};
    const char *P = "first_stage_model";
    char c[256], l[256];
    const int n = v->n_levels, lpb = v->layers_per_block, *boc = v->block_out_channels, L = v->latent_channels;

    snprintf(l, sizeof l, "%s.encoder.conv_in", P);
    lin_conv(&b, "encoder.conv_in", l, boc[0], v->in_channels, 3, true);
    int ch_in = boc[0];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < lpb; j++) {
            snprintf(c, sizeof c, "encoder.down_blocks.%d.resnets.%d", i, j);
            snprintf(l, sizeof l, "%s.encoder.down.%d.block.%d", P, i, j);
            vae_resnet(&b, c, l, j == 0 ? ch_in : boc[i], boc[i]);
        }
        if (i < n - 1) {
            snprintf(c, sizeof c, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            snprintf(l, sizeof l, "%s.encoder.down.%d.downsample.conv", P, i);
            lin_conv(&b, c, l, boc[i], boc[i], 3, true);
        }
        ch_in = boc[i];
    }
    snprintf(l, sizeof l, "%s.encoder", P);
    vae_mid(&b, "encoder", l, boc[n - 1]);
    snprintf(l, sizeof l, "%s.encoder.norm_out", P);
    norm(&b, "encoder.conv_norm_out", l, boc[n - 1]);
    snprintf(l, sizeof l, "%s.encoder.conv_out", P);
    lin_conv(&b, "encoder.conv_out", l, 2 * L, boc[n - 1], 3, true); /* mean and log-variance */

    snprintf(l, sizeof l, "%s.decoder.conv_in", P);
    lin_conv(&b, "decoder.conv_in", l, boc[n - 1], L, 3, true);
    /* decoder up_blocks.i is ldm decoder.up.(n-1-i): ldm counts from the full-resolution end */
    int prev = boc[n - 1];
    for (int i = 0; i < n; i++) {
        int out = boc[n - 1 - i];
        for (int j = 0; j <= lpb; j++) {
            snprintf(c, sizeof c, "decoder.up_blocks.%d.resnets.%d", i, j);
            snprintf(l, sizeof l, "%s.decoder.up.%d.block.%d", P, n - 1 - i, j);
            vae_resnet(&b, c, l, j == 0 ? prev : out, out);
        }
        if (i < n - 1) {
            snprintf(c, sizeof c, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            snprintf(l, sizeof l, "%s.decoder.up.%d.upsample.conv", P, n - 1 - i);
            lin_conv(&b, c, l, out, out, 3, true);
        }
        prev = out;
    }
    snprintf(l, sizeof l, "%s.decoder", P);
    vae_mid(&b, "decoder", l, boc[n - 1]);
    snprintf(l, sizeof l, "%s.decoder.norm_out", P);
    norm(&b, "decoder.conv_norm_out", l, boc[0]);
    snprintf(l, sizeof l, "%s.decoder.conv_out", P);
    lin_conv(&b, "decoder.conv_out", l, v->out_channels, boc[0], 3, true);

    snprintf(l, sizeof l, "%s.quant_conv", P);
    lin_conv(&b, "quant_conv", l, 2 * L, 2 * L, 1, true);
    snprintf(l, sizeof l, "%s.post_quant_conv", P);
    lin_conv(&b, "post_quant_conv", l, L, L, 1, true);
}

/* ---- CLIP towers ----------------------------------------------------------------------------- */

/* transformers CLIPEncoderLayer with CLIPPreTrainedModel._init_weights stds (initializer_factor 1):
 * q/k/v N(0, d^-0.5 (2L)^-0.5), out_proj N(0, d^-0.5), fc1 N(0, (2d)^-0.5), fc2 N(0, d^-0.5 (2L)^-0.5),
 * linear biases 0 (PreTrainedModel default), LayerNorm 1 / 0. */
static void clip_linear(bctx *b, const char *cp, const char *lp, int out, int in, double std) {
    char c[256], l[256];
    int64_t sh[2] = {out, in};
    add(b, pjoin(c, sizeof c, cp, "weight"), lp ? pjoin(l, sizeof l, lp, "weight") : NULL, 2, sh, DA_INIT_NORMAL, std);
    da_tensor_spec *t = add(b, pjoin(c, sizeof c, cp, "bias"), lp ? pjoin(l, sizeof l, lp, "bias") : NULL, 1, sh,
                            DA_INIT_ZEROS, 0);
    if (t) t->is_bias = true;
}

static void clip_encoder(bctx *b, const char *cp, const char *lp, int d, int layers, int inter) {
    char c[256], l[256], c2[256], l2[256];
    double in_std = pow(d, -0.5) * pow(2.0 * layers, -0.5), out_std = pow(d, -0.5), fc_std = pow(2.0 * d, -0.5);
    for (int i = 0; i < layers; i++) {
        snprintf(c, sizeof c, "%s.encoder.layers.%d", cp, i);
        if (lp) snprintf(l, sizeof l, "%s.encoder.layers.%d", lp, i);
        const char *L = lp ? l : NULL;
#define LS(suf) (L ? SUB(l2, L, suf) : NULL)
        clip_linear(b, SUB(c2, c, "self_attn.k_proj"), LS("self_attn.k_proj"), d, d, in_std);
        clip_linear(b, SUB(c2, c, "self_attn.v_proj"), LS("self_attn.v_proj"), d, d, in_std);
        clip_linear(b, SUB(c2, c, "self_attn.q_proj"), LS("self_attn.q_proj"), d, d, in_std);
        clip_linear(b, SUB(c2, c, "self_attn.out_proj"), LS("self_attn.out_proj"), d, d, out_std);
        norm(b, SUB(c2, c, "layer_norm1"), LS("layer_norm1"), d);
        clip_linear(b, SUB(c2, c, "mlp.fc1"), LS("mlp.fc1"), inter, d, fc_std);
        clip_linear(b, SUB(c2, c, "mlp.fc2"), LS("mlp.fc2"), d, inter, in_std);
        norm(b, SUB(c2, c, "layer_norm2"), LS("layer_norm2"), d);
#undef LS
    }
}

/* transformers CLIPTextTransformer, stored as "text_model.*" (CLIPTextModel / CLIPModel files) and
 * under lp in single files (NULL: none): da_text_ldm_prefix(). */
static void build_text(bctx *b, const da_clip_text_config *t, const char *lp) {
    char c[256], l[256];
    int64_t tok[2] = {t->vocab_size, t->hidden_size}, pos[2] = {t->max_positions, t->hidden_size};
    add(b, "text_model.embeddings.token_embedding.weight",
        lp ? SUB(l, lp, "embeddings.token_embedding.weight") : NULL, 2, tok, DA_INIT_NORMAL, 0.02);
    add(b, "text_model.embeddings.position_embedding.weight",
        lp ? SUB(l, lp, "embeddings.position_embedding.weight") : NULL, 2, pos, DA_INIT_NORMAL, 0.02);
    clip_encoder(b, "text_model", lp, t->hidden_size, t->num_layers, t->intermediate_size);
    norm(b, "text_model.final_layer_norm", lp ? SUB(l, lp, "final_layer_norm") : NULL, t->hidden_size);
    (void)c;
}

static void build_clip(da_spec *s, const da_model_config *cfg) {
    bctx b = {s, DA_COMP_CLIP};
    build_text(&b, &cfg->text, NULL);
    const da_clip_vision_config *v = &cfg->vision;
    int64_t d = v->hidden_size, np = (int64_t)(v->image_size / v->patch_size) * (v->image_size / v->patch_size);
    add(&b, "vision_model.embeddings.class_embedding", NULL, 1, &d, DA_INIT_NORMAL, pow((double)d, -0.5));
    int64_t pe[4] = {d, v->num_channels, v->patch_size, v->patch_size}, pos[2] = {np + 1, d};
    add(&b, "vision_model.embeddings.patch_embedding.weight", NULL, 4, pe, DA_INIT_NORMAL, 0.02);
    add(&b, "vision_model.embeddings.position_embedding.weight", NULL, 2, pos, DA_INIT_NORMAL, 0.02);
    norm(&b, "vision_model.pre_layrnorm", NULL, d); /* sic: the transformers attribute name */
    clip_encoder(&b, "vision_model", NULL, (int)d, v->num_layers, v->intermediate_size);
    norm(&b, "vision_model.post_layernorm", NULL, d);
    int64_t vp[2] = {cfg->projection_dim, d}, tp[2] = {cfg->projection_dim, cfg->text.hidden_size};
    add(&b, "visual_projection.weight", NULL, 2, vp, DA_INIT_NORMAL, pow((double)d, -0.5));
    add(&b, "text_projection.weight", NULL, 2, tp, DA_INIT_NORMAL, pow((double)cfg->text.hidden_size, -0.5));
    add(&b, "logit_scale", NULL, 0, NULL, DA_INIT_CONST, cfg->logit_scale_init);
}

/* ---- BLIP ------------------------------------------------------------------------------------ */

/* transformers BlipForConditionalGeneration: vision_model (BlipVisionModel) + text_decoder
 * (BlipTextLMHeadModel). Values: PyTorch module defaults (nn.Linear / nn.Conv2d uniform, embeddings
 * and BLIP's class / position parameters N(0, 1) as torch.randn creates them), not BLIP's
 * _init_weights (whose vision initializer_range 1e-10 would make every image look alike). */
static void build_blip(da_spec *s, const da_model_config *cfg) {
    bctx b = {s, DA_COMP_BLIP};
    char c[256], c2[256];
    const da_clip_vision_config *v = &cfg->vision;
    int64_t d = v->hidden_size, g = v->image_size / v->patch_size;
    int64_t ce[3] = {1, 1, d}, pe[3] = {1, g * g + 1, d};
    add(&b, "vision_model.embeddings.class_embedding", NULL, 3, ce, DA_INIT_NORMAL, 1.0);
    lin_conv(&b, "vision_model.embeddings.patch_embedding", NULL, d, v->num_channels, v->patch_size, true);
    add(&b, "vision_model.embeddings.position_embedding", NULL, 3, pe, DA_INIT_NORMAL, 1.0);
    for (int i = 0; i < v->num_layers; i++) {
        snprintf(c, sizeof c, "vision_model.encoder.layers.%d", i);
        lin_conv(&b, SUB(c2, c, "self_attn.qkv"), NULL, 3 * d, d, 0, true);
        lin_conv(&b, SUB(c2, c, "self_attn.projection"), NULL, d, d, 0, true);
        norm(&b, SUB(c2, c, "layer_norm1"), NULL, d);
        lin_conv(&b, SUB(c2, c, "mlp.fc1"), NULL, v->intermediate_size, d, 0, true);
        lin_conv(&b, SUB(c2, c, "mlp.fc2"), NULL, d, v->intermediate_size, 0, true);
        norm(&b, SUB(c2, c, "layer_norm2"), NULL, d);
    }
    norm(&b, "vision_model.post_layernorm", NULL, d);

    const da_blip_text_config *t = &cfg->blip_text;
    int64_t h = t->hidden_size, e = t->encoder_hidden_size;
    int64_t we[2] = {t->vocab_size, h}, pos[2] = {t->max_positions, h};
    add(&b, "text_decoder.bert.embeddings.word_embeddings.weight", NULL, 2, we, DA_INIT_NORMAL, 1.0);
    add(&b, "text_decoder.bert.embeddings.position_embeddings.weight", NULL, 2, pos, DA_INIT_NORMAL, 1.0);
    norm(&b, "text_decoder.bert.embeddings.LayerNorm", NULL, h);
    for (int i = 0; i < t->num_layers; i++) {
        snprintf(c, sizeof c, "text_decoder.bert.encoder.layer.%d", i);
        static const char *const att[2] = {"attention", "crossattention"};
        for (int a = 0; a < 2; a++) {
            char ca[256], cs[256];
            SUB(ca, c, att[a]);
            lin_conv(&b, SUB(cs, ca, "self.query"), NULL, h, h, 0, true);
            lin_conv(&b, SUB(cs, ca, "self.key"), NULL, h, a ? e : h, 0, true);
            lin_conv(&b, SUB(cs, ca, "self.value"), NULL, h, a ? e : h, 0, true);
            lin_conv(&b, SUB(cs, ca, "output.dense"), NULL, h, h, 0, true);
            norm(&b, SUB(cs, ca, "output.LayerNorm"), NULL, h);
        }
        lin_conv(&b, SUB(c2, c, "intermediate.dense"), NULL, t->intermediate_size, h, 0, true);
        lin_conv(&b, SUB(c2, c, "output.dense"), NULL, h, t->intermediate_size, 0, true);
        norm(&b, SUB(c2, c, "output.LayerNorm"), NULL, h);
    }
    lin_conv(&b, "text_decoder.cls.predictions.transform.dense", NULL, h, h, 0, true);
    norm(&b, "text_decoder.cls.predictions.transform.LayerNorm", NULL, h);
    int64_t vb = t->vocab_size;
    da_tensor_spec *x = add(&b, "text_decoder.cls.predictions.bias", NULL, 1, &vb, DA_INIT_UNIFORM, 1.0 / sqrt((double)h));
    if (x) x->is_bias = true;
    /* tied to word_embeddings / cls.predictions.bias (tie_word_embeddings): transformers 5 saves
     * neither; released files carry decoder.weight */
    x = add(&b, "text_decoder.cls.predictions.decoder.weight", NULL, 2, we, DA_INIT_NORMAL, 1.0);
    if (x) x->optional = true;
    x = add(&b, "text_decoder.cls.predictions.decoder.bias", NULL, 1, &vb, DA_INIT_ZEROS, 0);
    if (x) x->optional = x->is_bias = true;
}

/* SDXL's second text encoder: transformers CLIPTextModelWithProjection (text_encoder_2/, canonical
 * names "text_model.*" + "text_projection.weight") <-> sgm FrozenOpenCLIPEmbedder2 in open_clip
 * naming under "conditioner.embedders.1.model." (the mapping of diffusers' single_file_utils
 * convert_open_clip_checkpoint). open_clip's nn.MultiheadAttention packs q, k, v into
 * in_proj_weight [3D, D] / in_proj_bias [3D] (rows q, then k, then v): three canonical entries share
 * that key with DA_XF_ROWS. text_projection is an nn.Parameter [D, P] used as x @ P, the transpose
 * of transformers' Linear weight [P, D]: DA_XF_TRANSPOSE. */
static void build_text2(da_spec *s, const da_clip_text_config *t) {
    bctx b = {s, DA_COMP_TEXT_ENCODER_2};
    const char *P = "conditioner.embedders.1.model";
    const int64_t d = t->hidden_size, inter = t->intermediate_size, L = t->num_layers;
    char c[256], l[256], c2[256], l2[256];
    int64_t tok[2] = {t->vocab_size, d}, pos[2] = {t->max_positions, d};
    add(&b, "text_model.embeddings.token_embedding.weight", SUB(l, P, "token_embedding.weight"), 2, tok, DA_INIT_NORMAL,
        0.02);
    add(&b, "text_model.embeddings.position_embedding.weight", SUB(l, P, "positional_embedding"), 2, pos,
        DA_INIT_NORMAL, 0.02);
    /* the init stds of clip_encoder (transformers CLIPPreTrainedModel._init_weights) */
    double in_std = pow((double)d, -0.5) * pow(2.0 * L, -0.5), out_std = pow((double)d, -0.5),
           fc_std = pow(2.0 * d, -0.5);
    static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
    for (int64_t i = 0; i < L; i++) {
        snprintf(c, sizeof c, "text_model.encoder.layers.%lld", (long long)i);
        snprintf(l, sizeof l, "%s.transformer.resblocks.%lld", P, (long long)i);
        for (int k = 0; k < 3; k++) { /* q first: da_spec_map_key of the packed key finds it */
            char cw[300], cb[300];
            snprintf(cw, sizeof cw, "%s.self_attn.%s.weight", c, qkv[k]);
            snprintf(cb, sizeof cb, "%s.self_attn.%s.bias", c, qkv[k]);
            int64_t wsh[2] = {d, d}, bsh[1] = {d};
            da_tensor_spec *w = add(&b, cw, SUB(l2, l, "attn.in_proj_weight"), 2, wsh, DA_INIT_NORMAL, in_std);
            da_tensor_spec *bi = add(&b, cb, SUB(l2, l, "attn.in_proj_bias"), 1, bsh, DA_INIT_ZEROS, 0);
            if (!w || !bi) return;
            bi->is_bias = true;
            w->ldm_shape[0] = bi->ldm_shape[0] = 3 * d;
            w->xf = bi->xf = (da_xform){DA_XF_ROWS, k * d, (k + 1) * d};
        }
        clip_linear(&b, SUB(c2, c, "self_attn.out_proj"), SUB(l2, l, "attn.out_proj"), (int)d, (int)d, out_std);
        norm(&b, SUB(c2, c, "layer_norm1"), SUB(l2, l, "ln_1"), d);
        clip_linear(&b, SUB(c2, c, "mlp.fc1"), SUB(l2, l, "mlp.c_fc"), (int)inter, (int)d, fc_std);
        clip_linear(&b, SUB(c2, c, "mlp.fc2"), SUB(l2, l, "mlp.c_proj"), (int)d, (int)inter, in_std);
        norm(&b, SUB(c2, c, "layer_norm2"), SUB(l2, l, "ln_2"), d);
    }
    norm(&b, "text_model.final_layer_norm", SUB(l, P, "ln_final"), d);
    int64_t tp[2] = {t->projection_dim, d};
    da_tensor_spec *pj = add(&b, "text_projection.weight", SUB(l, P, "text_projection"), 2, tp, DA_INIT_NORMAL,
                             pow((double)d, -0.5));
    if (pj) {
        pj->ldm_shape[0] = d;
        pj->ldm_shape[1] = t->projection_dim;
        pj->xf.kind = DA_XF_TRANSPOSE;
    }
    /* open_clip's CLIP keeps its logit_scale after sgm deletes the vision tower; nothing reads it */
    b.comp = DA_COMP_EXTRA;
    const char *k = "conditioner.embedders.1.model.logit_scale";
    da_tensor_spec *ls = add(&b, k, k, 0, NULL, DA_INIT_CONST, 4.6052);
    if (ls) ls->single_only = true;
    (void)c2;
}

/* ---- single-file extras ---------------------------------------------------------------------- */

static const char *const schedule_names[] = {
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", NULL};

const char *da_text_ldm_prefix(da_model_family f) {
    return f == DA_FAMILY_SDXL ? "conditioner.embedders.0.transformer.text_model" : "cond_stage_model.transformer.text_model";
}

static void build_extras(da_spec *s, const da_model_config *cfg) {
    bctx b = {s, DA_COMP_EXTRA};
    da_tensor_spec *t;
    char k[160];
    if (cfg->family == DA_FAMILY_SDXL) {
        /* sgm's DiffusionEngine registers no DDPM schedule buffers and the released SDXL files carry
         * no EMA counters; only the CLIP-L position_ids of older transformers versions */
        int64_t pid[2] = {1, cfg->text.max_positions};
        snprintf(k, sizeof k, "%s.embeddings.position_ids", da_text_ldm_prefix(cfg->family));
        t = add(&b, k, k, 2, pid, DA_INIT_ARANGE, 0);
        if (t) {
            t->single_only = true;
            t->fixed_dtype = DA_I64;
        }
        return;
    }
    int64_t T = cfg->num_train_timesteps;
    for (int i = 0; schedule_names[i]; i++) {
        t = add(&b, schedule_names[i], schedule_names[i], 1, &T, DA_INIT_SCHEDULE, 0);
        if (t) t->single_only = true;
    }
    /* ldm LitEma counters kept by the released "pruned-emaonly" files */
    t = add(&b, "model_ema.decay", "model_ema.decay", 0, NULL, DA_INIT_CONST, 0.9999);
    if (t) t->single_only = true;
    t = add(&b, "model_ema.num_updates", "model_ema.num_updates", 0, NULL, DA_INIT_CONST, 0);
    if (t) {
        t->single_only = true;
        t->fixed_dtype = DA_I32;
    }
    /* transformers registers position_ids non-persistent today; single files from older versions
     * carry it */
    int64_t pid[2] = {1, cfg->text.max_positions};
    snprintf(k, sizeof k, "%s.embeddings.position_ids", da_text_ldm_prefix(cfg->family));
    t = add(&b, k, k, 2, pid, DA_INIT_ARANGE, 0);
    if (t) {
        t->single_only = true;
        t->fixed_dtype = DA_I64;
    }
}

bool da_schedule_buffer(const da_model_config *cfg, const char *name, double *out) {
    int T = cfg->num_train_timesteps;
    int which = -1;
    for (int i = 0; schedule_names[i]; i++)
        if (!strcmp(name, schedule_names[i])) which = i;
    if (which < 0 || T < 2) return false;
    double s0 = sqrt(cfg->beta_start), s1 = sqrt(cfg->beta_end), ac = 1.0;
    for (int t = 0; t < T; t++) {
        double beta = s0 + (s1 - s0) * t / (T - 1);
        beta *= beta;
        double prev = ac;
        ac *= 1.0 - beta;
        double v;
        switch (which) {
        case 0: v = beta; break;
        case 1: v = ac; break;
        case 2: v = prev; break;
        case 3: v = sqrt(ac); break;
        case 4: v = sqrt(1.0 - ac); break;
        case 5: v = log(1.0 - ac); break;
        case 6: v = sqrt(1.0 / ac); break;
        case 7: v = sqrt(1.0 / ac - 1.0); break;
        case 8: v = beta * (1.0 - prev) / (1.0 - ac); break;
        case 9: {
            double pv = beta * (1.0 - prev) / (1.0 - ac);
            v = log(pv > 1e-20 ? pv : 1e-20);
            break;
        }
        case 10: v = beta * sqrt(prev) / (1.0 - ac); break;
        default: v = (1.0 - prev) * sqrt(1.0 - beta) / (1.0 - ac); break;
        }
        out[t] = v;
    }
    return true;
}

/* ---- lookup tables --------------------------------------------------------------------------- */

static bool index_tables(da_spec *s) {
    size_t cap = 16;
    while (cap < 2 * s->n + 2) cap *= 2;
    s->hcap = cap;
    s->by_canon = calloc(cap, sizeof *s->by_canon);
    s->by_ldm = calloc(cap, sizeof *s->by_ldm);
    if (!s->by_canon || !s->by_ldm) return false;
    for (size_t i = 0; i < s->n; i++) {
        const da_tensor_spec *t = &s->t[i];
        size_t h = canon_hash(t->comp, t->name) & (cap - 1);
        while (s->by_canon[h]) h = (h + 1) & (cap - 1);
        s->by_canon[h] = (uint32_t)(i + 1);
        if (t->ldm_name) {
            h = fnv1a(t->ldm_name, 0xcbf29ce484222325ULL) & (cap - 1);
            while (s->by_ldm[h]) h = (h + 1) & (cap - 1);
            s->by_ldm[h] = (uint32_t)(i + 1);
        }
    }
    return true;
}

da_status da_spec_build(const da_model_config *cfg, da_spec **out, da_error *err) {
    *out = NULL;
    da_status st = da_config_validate(cfg, err);
    if (st) return st;
    da_spec *s = calloc(1, sizeof *s);
    if (!s) return da_err_set(err, DA_ERR_NOMEM, "out of memory building the tensor list");
    s->cfg = *cfg;
    if (cfg->family == DA_FAMILY_CLIP) {
        build_clip(s, cfg);
    } else if (cfg->family == DA_FAMILY_BLIP) {
        build_blip(s, cfg);
    } else {
        build_unet(s, &cfg->unet);
        build_vae(s, &cfg->vae);
        bctx b = {s, DA_COMP_TEXT_ENCODER};
        build_text(&b, &cfg->text, da_text_ldm_prefix(cfg->family));
        if (cfg->family == DA_FAMILY_SDXL) build_text2(s, &cfg->text2);
        build_extras(s, cfg);
    }
    if (s->failed || !index_tables(s)) {
        da_spec_free(s);
        return da_err_set(err, DA_ERR_NOMEM, "out of memory building the tensor list");
    }
    *out = s;
    return DA_OK;
}

void da_spec_free(da_spec *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_strings; i++) free(s->strings[i]);
    free(s->strings);
    free(s->t);
    free(s->by_canon);
    free(s->by_ldm);
    free(s);
}

size_t da_spec_count(const da_spec *s) { return s->n; }
const da_tensor_spec *da_spec_at(const da_spec *s, size_t i) { return i < s->n ? &s->t[i] : NULL; }
const da_model_config *da_spec_config(const da_spec *s) { return &s->cfg; }

size_t da_spec_count_in(const da_spec *s, da_component c, da_layout l) {
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].comp == c && (l == DA_LAYOUT_SINGLE ? s->t[i].ldm_name != NULL : !s->t[i].single_only)) k++;
    return k;
}

const da_tensor_spec *da_spec_find(const da_spec *s, da_component c, const char *name) {
    size_t h = canon_hash(c, name) & (s->hcap - 1);
    for (uint32_t k; (k = s->by_canon[h]); h = (h + 1) & (s->hcap - 1)) {
        const da_tensor_spec *t = &s->t[k - 1];
        if (t->comp == c && !strcmp(t->name, name)) return t;
    }
    return NULL;
}

const da_tensor_spec *da_spec_map_key(const da_spec *s, da_layout l, da_component c, const char *key) {
    if (l == DA_LAYOUT_DIFFUSERS) {
        const da_tensor_spec *t = da_spec_find(s, c, key);
        return t && !t->single_only ? t : NULL;
    }
    size_t h = fnv1a(key, 0xcbf29ce484222325ULL) & (s->hcap - 1);
    for (uint32_t k; (k = s->by_ldm[h]); h = (h + 1) & (s->hcap - 1)) {
        const da_tensor_spec *t = &s->t[k - 1];
        if (!strcmp(t->ldm_name, key)) return t;
    }
    return NULL;
}

const char *da_spec_key(const da_tensor_spec *t, da_layout l) { return l == DA_LAYOUT_SINGLE ? t->ldm_name : t->name; }

void da_spec_shape(const da_tensor_spec *t, da_layout l, int *rank, const int64_t **shape) {
    *rank = l == DA_LAYOUT_SINGLE ? t->ldm_rank : t->rank;
    *shape = l == DA_LAYOUT_SINGLE ? t->ldm_shape : t->shape;
}

bool da_spec_shape_matches(const da_tensor_spec *t, da_layout l, int rank, const int64_t *shape) {
    int r;
    const int64_t *sh;
    da_spec_shape(t, l, &r, &sh);
    if (r != rank) return false;
    for (int i = 0; i < r; i++)
        if (sh[i] != shape[i]) return false;
    return true;
}

uint64_t da_spec_numel(const da_tensor_spec *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= (uint64_t)t->shape[i];
    return n;
}

void da_shape_str(int rank, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

da_xform da_spec_xform(const da_tensor_spec *t, da_layout l) {
    return l == DA_LAYOUT_SINGLE ? t->xf : (da_xform){DA_XF_NONE, 0, 0};
}

size_t da_spec_parts(const da_spec *s, const char *ldm_key, const da_tensor_spec **out, size_t max) {
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        const da_tensor_spec *t = &s->t[i];
        if (!t->ldm_name || strcmp(t->ldm_name, ldm_key)) continue;
        /* insertion sort by first row: parts come back in stored order */
        if (k < max) {
            size_t j = k;
            while (j > 0 && out[j - 1]->xf.r0 > t->xf.r0) {
                out[j] = out[j - 1];
                j--;
            }
            out[j] = t;
        }
        k++;
    }
    return k;
}

da_status da_spec_xform_apply(const da_tensor_spec *t, da_layout l, const da_st_tensor *stored, void *dst,
                              da_error *err) {
    if (!da_spec_shape_matches(t, l, stored->rank, stored->shape)) {
        char a[96], b[96];
        int r;
        const int64_t *sh;
        da_spec_shape(t, l, &r, &sh);
        da_shape_str(stored->rank, stored->shape, a, sizeof a);
        da_shape_str(r, sh, b, sizeof b);
        return da_err_set(err, DA_ERR_SHAPE, "tensor '%s' has shape %s, expected %s", stored->name, a, b);
    }
    const size_t es = da_dtype_size(stored->dtype);
    const uint64_t n = da_spec_numel(t);
    const unsigned char *src = stored->data;
    da_xform xf = da_spec_xform(t, l);
    switch (xf.kind) {
    case DA_XF_NONE: memcpy(dst, src, n * es); return DA_OK;
    case DA_XF_ROWS: {
        /* row-major: rows [r0, r1) are one contiguous run */
        uint64_t row = stored->shape[0] ? stored->numel / (uint64_t)stored->shape[0] : 0;
        if (xf.r0 < 0 || xf.r1 > stored->shape[0] || (uint64_t)(xf.r1 - xf.r0) * row != n)
            return da_err_set(err, DA_ERR_SHAPE, "tensor '%s': rows [%lld, %lld) do not fit its %lld rows", stored->name,
                              (long long)xf.r0, (long long)xf.r1, (long long)stored->shape[0]);
        memcpy(dst, src + (uint64_t)xf.r0 * row * es, n * es);
        return DA_OK;
    }
    case DA_XF_TRANSPOSE: {
        if (stored->rank != 2) return da_err_set(err, DA_ERR_SHAPE, "tensor '%s': transpose needs rank 2", stored->name);
        const uint64_t R = (uint64_t)stored->shape[0], C = (uint64_t)stored->shape[1];
        unsigned char *d = dst;
        for (uint64_t i = 0; i < R; i++)
            for (uint64_t j = 0; j < C; j++) memcpy(d + (j * R + i) * es, src + (i * C + j) * es, es);
        return DA_OK;
    }
    }
    return da_err_set(err, DA_ERR_INVALID_ARG, "tensor '%s': unknown transform", stored->name);
}
