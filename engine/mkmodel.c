/* mkmodel.c - random-weight models in real file layouts (see mkmodel.h).
 *
 * Mirrors: the file sets of runwayml/stable-diffusion-v1-5 and timbrooks/instruct-pix2pix
 * (v1-5-pruned-emaonly.safetensors; model_index.json, unet/ vae/ text_encoder/ tokenizer/ scheduler/)
 * and openai/clip-vit-base-patch32 / clip-vit-large-patch14 (config.json + model.safetensors).
 * Config files carry the keys diffusers' / transformers' from_pretrained read; the values of the
 * released configs where they matter (scheduler betas, token ids, scaling factor).
 */
#include "mkmodel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "util.h"

void da_mkmodel_params_init(da_mkmodel_params *p) {
    memset(p, 0, sizeof *p);
    p->layout = DA_LAYOUT_DIFFUSERS;
    p->dtype = DA_F32;
}

uint16_t da_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xff, man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0)); /* inf / nan */
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e; /* 24-bit mantissa down to (10 + e) bits */
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++; /* may carry into the exponent: correct */
    return (uint16_t)(sign | half);
}

uint16_t da_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static uint64_t tensor_stream(const da_tensor_spec *t) {
    char key[512];
    snprintf(key, sizeof key, "%s:%s", da_component_name(t->comp), t->name);
    return da_rng_stream_of(key);
}

void da_mkmodel_values(const da_model_config *cfg, const da_tensor_spec *t, uint64_t seed, float jitter,
                       uint64_t first, size_t n, float *out) {
    uint64_t stream = tensor_stream(t);
    switch (t->init) {
    case DA_INIT_UNIFORM:
        da_rng_uniform(seed, stream, first, n, (float)-t->init_a, (float)t->init_a, out);
        return;
    case DA_INIT_NORMAL:
        da_rng_normal(seed, stream, first, n, 0.0f, (float)t->init_a, out);
        return;
    case DA_INIT_ONES:
    case DA_INIT_ZEROS: {
        float base = t->init == DA_INIT_ONES ? 1.0f : 0.0f;
        if (jitter > 0 && (t->is_norm || t->is_bias)) da_rng_uniform(seed, stream, first, n, base - jitter, base + jitter, out);
        else
            for (size_t i = 0; i < n; i++) out[i] = base;
        return;
    }
    case DA_INIT_CONST:
        for (size_t i = 0; i < n; i++) out[i] = (float)t->init_a;
        return;
    case DA_INIT_ARANGE:
        for (size_t i = 0; i < n; i++) out[i] = (float)(first + i);
        return;
    case DA_INIT_SCHEDULE: {
        int T = cfg->num_train_timesteps;
        double *buf = malloc((size_t)T * sizeof *buf);
        if (buf && da_schedule_buffer(cfg, t->name, buf))
            for (size_t i = 0; i < n; i++) out[i] = first + i < (uint64_t)T ? (float)buf[first + i] : 0.0f;
        else
            for (size_t i = 0; i < n; i++) out[i] = NAN;
        free(buf);
        return;
    }
    }
}

/* ---- lazy tensor fill --------------------------------------------------------------------------- */

typedef struct fill_ctx {
    const da_model_config *cfg;
    const da_tensor_spec *t;
    uint64_t seed;
    float jitter;
    da_dtype dtype;
} fill_ctx;

static da_status fill_tensor(void *vctx, void *dst, size_t nbytes, da_error *err) {
    const fill_ctx *c = vctx;
    size_t es = da_dtype_size(c->dtype);
    uint64_t numel = da_spec_numel(c->t);
    if (nbytes != numel * es)
        return da_err_set(err, DA_ERR_SHAPE, "%s: writer asked for %zu bytes, tensor has %llu", c->t->name, nbytes,
                          (unsigned long long)(numel * es));
    if (c->dtype != DA_F32 && c->dtype != DA_F16 && c->dtype != DA_BF16 && c->dtype != DA_I64 && c->dtype != DA_I32)
        return da_err_set(err, DA_ERR_DTYPE, "%s: cannot write dtype %s", c->t->name, da_dtype_name(c->dtype));
    /* chunks are independent (counter-based draws), so threads split them; same bytes either way */
    enum { CHUNK = 16384 };
    const int64_t n_chunks = (int64_t)((numel + CHUNK - 1) / CHUNK);
    unsigned char *d = dst;
#pragma omp parallel for schedule(dynamic, 4) if (n_chunks > 8)
    for (int64_t ci = 0; ci < n_chunks; ci++) {
        float buf[CHUNK];
        uint64_t first = (uint64_t)ci * CHUNK;
        size_t n = numel - first < CHUNK ? (size_t)(numel - first) : CHUNK;
        da_mkmodel_values(c->cfg, c->t, c->seed, c->jitter, first, n, buf);
        for (size_t i = 0; i < n; i++) {
            unsigned char *p = d + (first + i) * es;
            switch (c->dtype) {
            case DA_F32: memcpy(p, &buf[i], 4); break;
            case DA_F16: {
                uint16_t h = da_f32_to_f16(buf[i]);
                memcpy(p, &h, 2);
                break;
            }
            case DA_BF16: {
                uint16_t h = da_f32_to_bf16(buf[i]);
                memcpy(p, &h, 2);
                break;
            }
            case DA_I64: {
                int64_t v = (int64_t)buf[i];
                memcpy(p, &v, 8);
                break;
            }
            default: {
                int32_t v = (int32_t)buf[i];
                memcpy(p, &v, 4);
                break;
            }
            }
        }
    }
    return DA_OK;
}

/* A single-file tensor with a transform (OpenCLIP packed in_proj / transposed text_projection):
 * the stored tensor is assembled from its canonical parts' values, so both layouts of one seed
 * hold the same numbers. */
typedef struct xform_ctx {
    fill_ctx base;             /* base.t: the first part */
    const da_tensor_spec *parts[4];
    size_t n_parts;
    uint64_t stored_numel;
} xform_ctx;

static da_status fill_xform(void *vctx, void *dst, size_t nbytes, da_error *err) {
    const xform_ctx *x = vctx;
    const fill_ctx *c = &x->base;
    size_t es = da_dtype_size(c->dtype);
    if (nbytes != x->stored_numel * es || (c->dtype != DA_F32 && c->dtype != DA_F16 && c->dtype != DA_BF16))
        return da_err_set(err, DA_ERR_SHAPE, "%s: writer asked for %zu bytes of %s", c->t->ldm_name, nbytes,
                          da_dtype_name(c->dtype));
    float *v = malloc(x->stored_numel * sizeof *v);
    float *tmp = c->t->xf.kind == DA_XF_TRANSPOSE ? malloc(x->stored_numel * sizeof *tmp) : NULL;
    if (!v || (c->t->xf.kind == DA_XF_TRANSPOSE && !tmp)) {
        free(v), free(tmp);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", c->t->ldm_name);
    }
    if (c->t->xf.kind == DA_XF_ROWS) {
        /* parts in row order; each fills its rows [r0, r1) */
        uint64_t row = x->stored_numel / (uint64_t)c->t->ldm_shape[0];
        for (size_t k = 0; k < x->n_parts; k++) {
            const da_tensor_spec *p = x->parts[k];
            da_mkmodel_values(c->cfg, p, c->seed, c->jitter, 0, da_spec_numel(p), v + (uint64_t)p->xf.r0 * row);
        }
    } else { /* transpose: canonical [a, b] -> stored [b, a] */
        const da_tensor_spec *p = c->t;
        uint64_t a = (uint64_t)p->shape[0], b = (uint64_t)p->shape[1];
        da_mkmodel_values(c->cfg, p, c->seed, c->jitter, 0, a * b, tmp);
        for (uint64_t i = 0; i < a; i++)
            for (uint64_t j = 0; j < b; j++) v[j * a + i] = tmp[i * b + j];
    }
    unsigned char *d = dst;
    for (uint64_t i = 0; i < x->stored_numel; i++) {
        if (c->dtype == DA_F32) memcpy(d + i * 4, &v[i], 4);
        else {
            uint16_t h = c->dtype == DA_F16 ? da_f32_to_f16(v[i]) : da_f32_to_bf16(v[i]);
            memcpy(d + i * 2, &h, 2);
        }
    }
    free(v), free(tmp);
    return DA_OK;
}

/* Write the tensors of `comp` (DA_COMP_COUNT: every tensor with a single-file form) into one file. */
static da_status write_weights(const da_spec *spec, const da_mkmodel_params *p, da_layout layout, da_component comp,
                               const char *path, da_error *err) {
    size_t n = da_spec_count(spec), k = 0, kx = 0;
    fill_ctx *ctx = calloc(n ? n : 1, sizeof *ctx);
    xform_ctx *xctx = calloc(n ? n : 1, sizeof *xctx);
    da_st_writer *w = da_st_writer_new();
    if (!ctx || !xctx || !w) {
        free(ctx);
        free(xctx);
        da_st_writer_free(w);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    }
    da_status st = DA_OK;
    if (layout == DA_LAYOUT_DIFFUSERS) st = da_st_writer_meta(w, "format", "pt", err);
    for (size_t i = 0; i < n && !st; i++) {
        const da_tensor_spec *t = da_spec_at(spec, i);
        if (t->optional || (layout == DA_LAYOUT_SINGLE ? !t->ldm_name : (t->comp != comp || t->single_only))) continue;
        int rank;
        const int64_t *shape;
        da_spec_shape(t, layout, &rank, &shape);
        if (layout == DA_LAYOUT_SINGLE && t->xf.kind != DA_XF_NONE) {
            if (t->xf.kind == DA_XF_ROWS && t->xf.r0 != 0) continue; /* written with its first part */
            xform_ctx *x = &xctx[kx++];
            x->base = (fill_ctx){da_spec_config(spec), t, p->seed, p->jitter, p->dtype};
            x->n_parts = t->xf.kind == DA_XF_ROWS ? da_spec_parts(spec, t->ldm_name, x->parts, 4) : 1;
            x->parts[0] = x->n_parts == 1 ? t : x->parts[0];
            x->stored_numel = 1;
            for (int d = 0; d < rank; d++) x->stored_numel *= (uint64_t)shape[d];
            if (x->n_parts > 4) {
                st = da_err_set(err, DA_ERR_INVALID_ARG, "%s: %zu parts packed in one tensor", t->ldm_name, x->n_parts);
                break;
            }
            st = da_st_writer_add_lazy(w, t->ldm_name, p->dtype, rank, shape, fill_xform, x, err);
            continue;
        }
        fill_ctx *c = &ctx[k++];
        c->cfg = da_spec_config(spec);
        c->t = t;
        c->seed = p->seed;
        c->jitter = p->jitter;
        c->dtype = t->fixed_dtype != DA_DTYPE_COUNT ? t->fixed_dtype : p->dtype;
        st = da_st_writer_add_lazy(w, da_spec_key(t, layout), c->dtype, rank, shape, fill_tensor, c, err);
    }
    /* CosXL's sampling markers, top-level F32 scalars */
    static const float cosxl_sigma[2] = {120.0f, 0.002f};
    if (!st && layout == DA_LAYOUT_SINGLE && p->cosxl)
        st = da_st_writer_add(w, "edm_vpred.sigma_max", DA_F32, 0, NULL, &cosxl_sigma[0], 4, false, err);
    if (!st && layout == DA_LAYOUT_SINGLE && p->cosxl)
        st = da_st_writer_add(w, "edm_vpred.sigma_min", DA_F32, 0, NULL, &cosxl_sigma[1], 4, false, err);
    if (!st) st = da_st_writer_write(w, path, err);
    da_st_writer_free(w);
    free(ctx);
    free(xctx);
    return st;
}

/* ---- config files --------------------------------------------------------------------------- */

static const char *torch_dtype_name(da_dtype t) {
    return t == DA_F16 ? "float16" : t == DA_BF16 ? "bfloat16" : "float32";
}

static void json_ints(da_buf *b, const int *v, int n) {
    da_buf_printf(b, "[");
    for (int i = 0; i < n; i++) da_buf_printf(b, "%s%d", i ? ", " : "", v[i]);
    da_buf_printf(b, "]");
}

/* One integer when every level has the same value (as SD 1.x configs write it), else a list. */
static void json_ints_or_one(da_buf *b, const int *v, int n) {
    bool same = true;
    for (int i = 1; i < n; i++) same = same && v[i] == v[0];
    if (same) da_buf_printf(b, "%d", v[0]);
    else json_ints(b, v, n);
}

static void json_strs(da_buf *b, const char *const *v, int n) {
    da_buf_printf(b, "[");
    for (int i = 0; i < n; i++) {
        if (i) da_buf_printf(b, ", ");
        da_buf_json_string(b, v[i]);
    }
    da_buf_printf(b, "]");
}

static da_status write_buf(da_buf *b, const char *dir, const char *name, da_error *err) {
    if (b->failed) {
        da_buf_free(b);
        return da_err_set(err, DA_ERR_NOMEM, "out of memory writing %s", name);
    }
    char *path = da_path_join(dir, name);
    if (!path) {
        da_buf_free(b);
        return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    }
    da_status st = da_write_file_atomic(path, b->data ? b->data : "", b->len, err);
    free(path);
    da_buf_free(b);
    return st;
}

static da_status unet_config_json(const da_model_config *cfg, da_dtype dt, const char *dir, da_error *err) {
    const da_unet_config *u = &cfg->unet;
    const char *down[DA_MAX_LEVELS], *up[DA_MAX_LEVELS];
    for (int i = 0; i < u->n_levels; i++) {
        down[i] = u->level_has_attn[i] ? "CrossAttnDownBlock2D" : "DownBlock2D";
        up[i] = u->level_has_attn[u->n_levels - 1 - i] ? "CrossAttnUpBlock2D" : "UpBlock2D";
    }
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"_class_name\": \"UNet2DConditionModel\",\n  \"_diffusers_version\": \"%s\",\n",
                  u->addition_embed_dim ? "0.19.0" : "0.6.0");
    da_buf_printf(&b, "  \"act_fn\": \"silu\",\n");
    if (u->addition_embed_dim) /* SDXL: text_time added conditioning */
        da_buf_printf(&b, "  \"addition_embed_type\": \"text_time\",\n  \"addition_embed_type_num_heads\": 64,\n"
                          "  \"addition_time_embed_dim\": %d,\n  \"projection_class_embeddings_input_dim\": %d,\n",
                      u->addition_time_embed_dim, u->addition_embed_dim);
    da_buf_printf(&b, "  \"attention_head_dim\": ");
    json_ints_or_one(&b, u->heads, u->n_levels);
    da_buf_printf(&b, ",\n  \"block_out_channels\": ");
    json_ints(&b, u->block_out_channels, u->n_levels);
    da_buf_printf(&b, ",\n  \"center_input_sample\": false,\n  \"cross_attention_dim\": %d,\n  \"down_block_types\": ",
                  u->cross_attention_dim);
    json_strs(&b, down, u->n_levels);
    da_buf_printf(&b, ",\n  \"downsample_padding\": 1,\n  \"flip_sin_to_cos\": true,\n  \"freq_shift\": 0,\n");
    da_buf_printf(&b, "  \"in_channels\": %d,\n  \"layers_per_block\": %d,\n  \"mid_block_scale_factor\": 1,\n",
                  u->in_channels, u->layers_per_block);
    da_buf_printf(&b, "  \"norm_eps\": %.7g,\n  \"norm_num_groups\": %d,\n  \"out_channels\": %d,\n  \"sample_size\": %d,\n",
                  (double)u->norm_eps, u->norm_num_groups, u->out_channels, u->sample_size);
    da_buf_printf(&b, "  \"transformer_layers_per_block\": ");
    json_ints_or_one(&b, u->transformer_depth, u->n_levels);
    da_buf_printf(&b, ",\n  \"use_linear_projection\": %s,\n  \"up_block_types\": ", u->linear_proj ? "true" : "false");
    json_strs(&b, up, u->n_levels);
    da_buf_printf(&b, "\n}\n");
    return write_buf(&b, dir, "config.json", err);
}

static da_status vae_config_json(const da_model_config *cfg, da_dtype dt, const char *dir, da_error *err) {
    const da_vae_config *v = &cfg->vae;
    const char *down[DA_MAX_LEVELS], *up[DA_MAX_LEVELS];
    for (int i = 0; i < v->n_levels; i++) {
        down[i] = "DownEncoderBlock2D";
        up[i] = "UpDecoderBlock2D";
    }
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"_class_name\": \"AutoencoderKL\",\n  \"_diffusers_version\": \"0.6.0\",\n");
    da_buf_printf(&b, "  \"act_fn\": \"silu\",\n  \"block_out_channels\": ");
    json_ints(&b, v->block_out_channels, v->n_levels);
    da_buf_printf(&b, ",\n  \"down_block_types\": ");
    json_strs(&b, down, v->n_levels);
    da_buf_printf(&b, ",\n  \"in_channels\": %d,\n  \"latent_channels\": %d,\n  \"layers_per_block\": %d,\n",
                  v->in_channels, v->latent_channels, v->layers_per_block);
    da_buf_printf(&b, "  \"norm_num_groups\": %d,\n  \"out_channels\": %d,\n  \"sample_size\": %d,\n", v->norm_num_groups,
                  v->out_channels, v->sample_size);
    da_buf_printf(&b, "  \"scaling_factor\": %.7g,\n  \"up_block_types\": ", (double)v->scaling_factor);
    json_strs(&b, up, v->n_levels);
    da_buf_printf(&b, "\n}\n");
    return write_buf(&b, dir, "config.json", err);
}

/* The body of a transformers CLIPTextConfig (indent = leading spaces). */
static void text_config_body(da_buf *b, const da_clip_text_config *t, const char *ind) {
    da_buf_printf(b, "%s\"attention_dropout\": 0.0,\n%s\"bos_token_id\": %d,\n%s\"dropout\": 0.0,\n", ind, ind,
                  t->bos_token_id, ind);
    da_buf_printf(b, "%s\"eos_token_id\": %d,\n%s\"hidden_act\": \"%s\",\n%s\"hidden_size\": %d,\n", ind, t->eos_token_id,
                  ind, t->hidden_act, ind, t->hidden_size);
    da_buf_printf(b, "%s\"initializer_factor\": 1.0,\n%s\"initializer_range\": 0.02,\n%s\"intermediate_size\": %d,\n",
                  ind, ind, ind, t->intermediate_size);
    da_buf_printf(b, "%s\"layer_norm_eps\": %.7g,\n%s\"max_position_embeddings\": %d,\n%s\"model_type\": \"clip_text_model\",\n",
                  ind, (double)t->layer_norm_eps, ind, t->max_positions, ind);
    da_buf_printf(b, "%s\"num_attention_heads\": %d,\n%s\"num_hidden_layers\": %d,\n%s\"pad_token_id\": %d,\n", ind,
                  t->num_heads, ind, t->num_layers, ind, t->pad_token_id);
    da_buf_printf(b, "%s\"projection_dim\": %d,\n%s\"vocab_size\": %d", ind, t->projection_dim, ind, t->vocab_size);
}

static da_status text_config_json(const da_model_config *cfg, da_dtype dt, const char *dir, da_error *err) {
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"architectures\": [\"CLIPTextModel\"],\n");
    text_config_body(&b, &cfg->text, "  ");
    da_buf_printf(&b, ",\n  \"torch_dtype\": \"%s\"\n}\n", torch_dtype_name(dt));
    return write_buf(&b, dir, "config.json", err);
}

/* SDXL text_encoder_2: transformers CLIPTextModelWithProjection (OpenCLIP bigG converted). */
static da_status text2_config_json(const da_model_config *cfg, da_dtype dt, const char *dir, da_error *err) {
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"architectures\": [\"CLIPTextModelWithProjection\"],\n");
    text_config_body(&b, &cfg->text2, "  ");
    da_buf_printf(&b, ",\n  \"torch_dtype\": \"%s\"\n}\n", torch_dtype_name(dt));
    return write_buf(&b, dir, "config.json", err);
}

static da_status clip_config_json(const da_model_config *cfg, da_dtype dt, const char *dir, da_error *err) {
    const da_clip_vision_config *v = &cfg->vision;
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"architectures\": [\"CLIPModel\"],\n  \"initializer_factor\": 1.0,\n");
    da_buf_printf(&b, "  \"logit_scale_init_value\": %.7g,\n  \"model_type\": \"clip\",\n  \"projection_dim\": %d,\n",
                  (double)cfg->logit_scale_init, cfg->projection_dim);
    da_buf_printf(&b, "  \"text_config\": {\n");
    text_config_body(&b, &cfg->text, "    ");
    da_buf_printf(&b, "\n  },\n  \"torch_dtype\": \"%s\",\n  \"vision_config\": {\n", torch_dtype_name(dt));
    da_buf_printf(&b, "    \"attention_dropout\": 0.0,\n    \"dropout\": 0.0,\n    \"hidden_act\": \"%s\",\n", v->hidden_act);
    da_buf_printf(&b, "    \"hidden_size\": %d,\n    \"image_size\": %d,\n    \"initializer_factor\": 1.0,\n", v->hidden_size,
                  v->image_size);
    da_buf_printf(&b, "    \"initializer_range\": 0.02,\n    \"intermediate_size\": %d,\n    \"layer_norm_eps\": %.7g,\n",
                  v->intermediate_size, (double)v->layer_norm_eps);
    da_buf_printf(&b, "    \"model_type\": \"clip_vision_model\",\n    \"num_attention_heads\": %d,\n", v->num_heads);
    da_buf_printf(&b, "    \"num_channels\": %d,\n    \"num_hidden_layers\": %d,\n    \"patch_size\": %d,\n", v->num_channels,
                  v->num_layers, v->patch_size);
    da_buf_printf(&b, "    \"projection_dim\": %d\n  }\n}\n", v->projection_dim);
    return write_buf(&b, dir, "config.json", err);
}

static da_status clip_preprocessor_json(const da_model_config *cfg, const char *dir, da_error *err) {
    da_buf b = {0};
    int s = cfg->vision.image_size;
    da_buf_printf(&b, "{\n  \"crop_size\": %d,\n  \"do_center_crop\": true,\n  \"do_normalize\": true,\n", s);
    da_buf_printf(&b, "  \"do_resize\": true,\n  \"feature_extractor_type\": \"CLIPFeatureExtractor\",\n");
    da_buf_printf(&b, "  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n");
    da_buf_printf(&b, "  \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n");
    da_buf_printf(&b, "  \"resample\": 3,\n  \"size\": %d\n}\n", s);
    return write_buf(&b, dir, "preprocessor_config.json", err);
}

/* CosXL as diffusers runs it (stabilityai/cosxl model card): EDMEulerScheduler(sigma_min=0.002,
 * sigma_max=120.0, sigma_data=1.0, prediction_type="v_prediction", sigma_schedule="exponential"). */
static da_status cosxl_scheduler_json(const char *dir, da_error *err) {
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"_class_name\": \"EDMEulerScheduler\",\n  \"_diffusers_version\": \"0.42.1\",\n");
    da_buf_printf(&b, "  \"final_sigmas_type\": \"zero\",\n  \"num_train_timesteps\": 1000,\n");
    da_buf_printf(&b, "  \"prediction_type\": \"v_prediction\",\n  \"rho\": 7.0,\n  \"sigma_data\": 1.0,\n");
    da_buf_printf(&b, "  \"sigma_max\": 120.0,\n  \"sigma_min\": 0.002,\n  \"sigma_schedule\": \"exponential\"\n}\n");
    return write_buf(&b, dir, "scheduler_config.json", err);
}

static da_status scheduler_json(const da_model_config *cfg, const char *dir, da_error *err) {
    da_buf b = {0};
    if (cfg->family == DA_FAMILY_IP2P) {
        da_buf_printf(&b, "{\n  \"_class_name\": \"EulerAncestralDiscreteScheduler\",\n  \"_diffusers_version\": \"0.15.0\",\n");
    } else if (cfg->family == DA_FAMILY_SDXL) { /* stable-diffusion-xl-base-1.0's scheduler */
        da_buf_printf(&b, "{\n  \"_class_name\": \"EulerDiscreteScheduler\",\n  \"_diffusers_version\": \"0.19.0\",\n");
        da_buf_printf(&b, "  \"clip_sample\": false,\n  \"interpolation_type\": \"linear\",\n  \"sample_max_value\": 1.0,\n");
        da_buf_printf(&b, "  \"set_alpha_to_one\": false,\n  \"skip_prk_steps\": true,\n  \"timestep_spacing\": \"leading\",\n");
        da_buf_printf(&b, "  \"use_karras_sigmas\": false,\n");
    } else {
        da_buf_printf(&b, "{\n  \"_class_name\": \"PNDMScheduler\",\n  \"_diffusers_version\": \"0.6.0\",\n");
        da_buf_printf(&b, "  \"clip_sample\": false,\n  \"set_alpha_to_one\": false,\n  \"skip_prk_steps\": true,\n");
    }
    da_buf_printf(&b, "  \"beta_end\": %.7g,\n  \"beta_schedule\": \"scaled_linear\",\n  \"beta_start\": %.7g,\n",
                  cfg->beta_end, cfg->beta_start);
    da_buf_printf(&b, "  \"num_train_timesteps\": %d,\n  \"prediction_type\": \"epsilon\",\n", cfg->num_train_timesteps);
    da_buf_printf(&b, "  \"steps_offset\": 1,\n  \"trained_betas\": null\n}\n");
    return write_buf(&b, dir, "scheduler_config.json", err);
}

/* StableDiffusionXLPipeline's model_index.json (stable-diffusion-xl-base-1.0). */
static da_status model_index_xl_json(bool tokenizer, bool cosxl, const char *dir, da_error *err) {
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"_class_name\": \"StableDiffusionXLPipeline\",\n  \"_diffusers_version\": \"0.19.0\",\n");
    da_buf_printf(&b, "  \"force_zeros_for_empty_prompt\": true,\n");
    da_buf_printf(&b, "  \"scheduler\": [\"diffusers\", \"%s\"],\n", cosxl ? "EDMEulerScheduler" : "EulerDiscreteScheduler");
    da_buf_printf(&b, "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n");
    da_buf_printf(&b, "  \"text_encoder_2\": [\"transformers\", \"CLIPTextModelWithProjection\"],\n");
    if (tokenizer)
        da_buf_printf(&b, "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                          "  \"tokenizer_2\": [\"transformers\", \"CLIPTokenizer\"],\n");
    else da_buf_printf(&b, "  \"tokenizer\": [null, null],\n  \"tokenizer_2\": [null, null],\n");
    da_buf_printf(&b, "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n}\n");
    return write_buf(&b, dir, "model_index.json", err);
}

static da_status model_index_json(const da_model_config *cfg, bool tokenizer, bool cosxl, const char *dir, da_error *err) {
    if (cfg->family == DA_FAMILY_SDXL) return model_index_xl_json(tokenizer, cosxl, dir, err);
    da_buf b = {0};
    bool ip2p = cfg->family == DA_FAMILY_IP2P;
    da_buf_printf(&b, "{\n  \"_class_name\": \"%s\",\n  \"_diffusers_version\": \"0.6.0\",\n",
                  ip2p ? "StableDiffusionInstructPix2PixPipeline" : "StableDiffusionPipeline");
    da_buf_printf(&b, "  \"feature_extractor\": [null, null],\n  \"requires_safety_checker\": false,\n");
    da_buf_printf(&b, "  \"safety_checker\": [null, null],\n  \"scheduler\": [\"diffusers\", \"%s\"],\n",
                  ip2p ? "EulerAncestralDiscreteScheduler" : "PNDMScheduler");
    da_buf_printf(&b, "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n");
    if (tokenizer) da_buf_printf(&b, "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n");
    else da_buf_printf(&b, "  \"tokenizer\": [null, null],\n");
    da_buf_printf(&b, "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n}\n");
    return write_buf(&b, dir, "model_index.json", err);
}

/* tokenizer files: vocab.json + merges.txt copied from vocab_dir, plus the CLIPTokenizer configs;
 * pad is the padding token (SDXL's tokenizer_2 pads with "!", the others with <|endoftext|>). */
static da_status tokenizer_files(const char *vocab_dir, const char *dir, int max_len, const char *pad, da_error *err) {
    da_status st = da_mkdirs(dir, err);
    if (st) return st;
    static const char *const files[2] = {"vocab.json", "merges.txt"};
    for (int i = 0; i < 2; i++) {
        char *src = da_path_join(vocab_dir, files[i]), *dst = da_path_join(dir, files[i]);
        char *data = NULL;
        size_t len = 0;
        st = src && dst ? da_read_file(src, &data, &len, err) : da_err_set(err, DA_ERR_NOMEM, "out of memory");
        if (!st) st = da_write_file_atomic(dst, data, len, err);
        free(data);
        free(src);
        free(dst);
        if (st) return st;
    }
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"add_prefix_space\": false,\n  \"bos_token\": \"<|startoftext|>\",\n  \"do_lower_case\": true,\n");
    da_buf_printf(&b, "  \"eos_token\": \"<|endoftext|>\",\n  \"errors\": \"replace\",\n  \"model_max_length\": %d,\n", max_len);
    da_buf_printf(&b, "  \"pad_token\": \"%s\",\n  \"tokenizer_class\": \"CLIPTokenizer\",\n", pad);
    da_buf_printf(&b, "  \"unk_token\": \"<|endoftext|>\"\n}\n");
    st = write_buf(&b, dir, "tokenizer_config.json", err);
    if (st) return st;
    da_buf_printf(&b, "{\n  \"bos_token\": \"<|startoftext|>\",\n  \"eos_token\": \"<|endoftext|>\",\n");
    da_buf_printf(&b, "  \"pad_token\": \"%s\",\n  \"unk_token\": \"<|endoftext|>\"\n}\n", pad);
    return write_buf(&b, dir, "special_tokens_map.json", err);
}

/* ---- BLIP ------------------------------------------------------------------------------------ */

static da_status blip_config_json(const da_model_config *cfg, da_dtype dt, const char *dir, da_error *err) {
    const da_clip_vision_config *v = &cfg->vision;
    const da_blip_text_config *t = &cfg->blip_text;
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"architectures\": [\"BlipForConditionalGeneration\"],\n  \"dtype\": \"%s\",\n",
                  torch_dtype_name(dt));
    da_buf_printf(&b, "  \"image_text_hidden_size\": 256,\n  \"initializer_factor\": 1.0,\n  \"initializer_range\": 0.02,\n");
    da_buf_printf(&b, "  \"label_smoothing\": 0.0,\n  \"logit_scale_init_value\": %.7g,\n  \"model_type\": \"blip\",\n",
                  (double)cfg->logit_scale_init);
    da_buf_printf(&b, "  \"projection_dim\": %d,\n  \"text_config\": {\n", cfg->projection_dim);
    da_buf_printf(&b, "    \"attention_probs_dropout_prob\": 0.0,\n    \"bos_token_id\": %d,\n    \"encoder_hidden_size\": %d,\n",
                  t->bos_token_id, t->encoder_hidden_size);
    da_buf_printf(&b, "    \"eos_token_id\": %d,\n    \"hidden_act\": \"%s\",\n    \"hidden_dropout_prob\": 0.0,\n",
                  t->eos_token_id, t->hidden_act);
    da_buf_printf(&b, "    \"hidden_size\": %d,\n    \"initializer_range\": 0.02,\n    \"intermediate_size\": %d,\n",
                  t->hidden_size, t->intermediate_size);
    da_buf_printf(&b, "    \"is_decoder\": true,\n    \"label_smoothing\": 0.0,\n    \"layer_norm_eps\": %.7g,\n",
                  (double)t->layer_norm_eps);
    da_buf_printf(&b, "    \"max_position_embeddings\": %d,\n    \"model_type\": \"blip_text_model\",\n", t->max_positions);
    da_buf_printf(&b, "    \"num_attention_heads\": %d,\n    \"num_hidden_layers\": %d,\n    \"pad_token_id\": %d,\n",
                  t->num_heads, t->num_layers, t->pad_token_id);
    da_buf_printf(&b, "    \"projection_dim\": %d,\n    \"sep_token_id\": %d,\n    \"tie_word_embeddings\": true,\n",
                  t->projection_dim, t->sep_token_id);
    da_buf_printf(&b, "    \"use_cache\": true,\n    \"vocab_size\": %d\n  },\n  \"tie_word_embeddings\": true,\n",
                  t->vocab_size);
    da_buf_printf(&b, "  \"vision_config\": {\n    \"attention_dropout\": 0.0,\n    \"hidden_act\": \"%s\",\n", v->hidden_act);
    da_buf_printf(&b, "    \"hidden_size\": %d,\n    \"image_size\": %d,\n    \"initializer_range\": 1e-10,\n",
                  v->hidden_size, v->image_size);
    da_buf_printf(&b, "    \"intermediate_size\": %d,\n    \"layer_norm_eps\": %.7g,\n    \"model_type\": \"blip_vision_model\",\n",
                  v->intermediate_size, (double)v->layer_norm_eps);
    da_buf_printf(&b, "    \"num_attention_heads\": %d,\n    \"num_hidden_layers\": %d,\n    \"patch_size\": %d,\n",
                  v->num_heads, v->num_layers, v->patch_size);
    da_buf_printf(&b, "    \"projection_dim\": %d\n  }\n}\n", v->projection_dim);
    return write_buf(&b, dir, "config.json", err);
}

static da_status blip_preprocessor_json(const da_model_config *cfg, const char *dir, da_error *err) {
    da_buf b = {0};
    int s = cfg->vision.image_size;
    da_buf_printf(&b, "{\n  \"do_convert_rgb\": true,\n  \"do_normalize\": true,\n  \"do_rescale\": true,\n");
    da_buf_printf(&b, "  \"do_resize\": true,\n  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n");
    da_buf_printf(&b, "  \"image_processor_type\": \"BlipImageProcessor\",\n");
    da_buf_printf(&b, "  \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n  \"processor_class\": \"BlipProcessor\",\n");
    da_buf_printf(&b, "  \"resample\": 3,\n  \"rescale_factor\": 0.00392156862745098,\n");
    da_buf_printf(&b, "  \"size\": {\"height\": %d, \"width\": %d}\n}\n", s, s);
    return write_buf(&b, dir, "preprocessor_config.json", err);
}

/* BLIP's tokenizer: bert-base-uncased's vocab.txt with [DEC] (bos) and [ENC] added after it when
 * the file lacks them, as Salesforce's BlipProcessor folders do. */
typedef struct blip_vocab {
    char *data;
    size_t len;
    int n_lines;
    int id_of[7]; /* [PAD] [UNK] [CLS] [SEP] [MASK] [DEC] [ENC]; -1 absent */
} blip_vocab;
static const char *const blip_special[7] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]"};

static da_status blip_vocab_read(const char *vocab_dir, blip_vocab *v, da_error *err) {
    memset(v, 0, sizeof *v);
    char *p = da_path_join(vocab_dir, "vocab.txt");
    if (!p) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    da_status st = da_read_file(p, &v->data, &v->len, err);
    if (st) {
        da_err_prefix(err, "--vocab (BLIP wants a folder with bert-base-uncased's vocab.txt)");
        free(p);
        return st;
    }
    for (int i = 0; i < 7; i++) v->id_of[i] = -1;
    size_t a = 0;
    while (a < v->len) {
        size_t e = a;
        while (e < v->len && v->data[e] != '\n') e++;
        size_t n = e - a;
        if (n && v->data[a + n - 1] == '\r') n--;
        for (int i = 0; i < 7; i++)
            if (v->id_of[i] < 0 && n == strlen(blip_special[i]) && !memcmp(v->data + a, blip_special[i], n))
                v->id_of[i] = v->n_lines;
        v->n_lines++;
        a = e + 1;
    }
    for (int i = 0; i < 5 && !st; i++)
        if (v->id_of[i] < 0) st = da_err_set(err, DA_ERR_FORMAT, "%s: no %s token (not a BERT vocabulary)", p, blip_special[i]);
    free(p);
    if (st) {
        free(v->data);
        v->data = NULL;
        return st;
    }
    int next = v->n_lines;
    for (int i = 5; i < 7; i++)
        if (v->id_of[i] < 0) v->id_of[i] = next++;
    v->n_lines = next; /* the vocabulary size, added tokens included */
    return DA_OK;
}

static da_status blip_tokenizer_files(const blip_vocab *v, const char *dir, int max_len, da_error *err) {
    char *dst = da_path_join(dir, "vocab.txt");
    if (!dst) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    da_status st = da_write_file_atomic(dst, v->data, v->len, err);
    free(dst);
    if (st) return st;
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"added_tokens_decoder\": {");
    int order[7];
    for (int i = 0; i < 7; i++) order[i] = i;
    for (int i = 1; i < 7; i++) /* by id, as transformers writes them */
        for (int j = i; j > 0 && v->id_of[order[j]] < v->id_of[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int k = 0; k < 7; k++) {
        int i = order[k];
        da_buf_printf(&b, "%s\n    \"%d\": {\"content\": \"%s\", \"lstrip\": false, \"normalized\": false, "
                      "\"rstrip\": false, \"single_word\": false, \"special\": true}", k ? "," : "", v->id_of[i],
                      blip_special[i]);
    }
    da_buf_printf(&b, "\n  },\n  \"additional_special_tokens\": [\"[ENC]\"],\n  \"bos_token\": \"[DEC]\",\n");
    da_buf_printf(&b, "  \"clean_up_tokenization_spaces\": true,\n  \"cls_token\": \"[CLS]\",\n  \"do_basic_tokenize\": true,\n");
    da_buf_printf(&b, "  \"do_lower_case\": true,\n  \"mask_token\": \"[MASK]\",\n  \"model_max_length\": %d,\n", max_len);
    da_buf_printf(&b, "  \"never_split\": null,\n  \"pad_token\": \"[PAD]\",\n  \"processor_class\": \"BlipProcessor\",\n");
    da_buf_printf(&b, "  \"sep_token\": \"[SEP]\",\n  \"strip_accents\": null,\n  \"tokenize_chinese_chars\": true,\n");
    da_buf_printf(&b, "  \"tokenizer_class\": \"BertTokenizer\",\n  \"unk_token\": \"[UNK]\"\n}\n");
    st = write_buf(&b, dir, "tokenizer_config.json", err);
    if (st) return st;
    da_buf_printf(&b, "{\n  \"additional_special_tokens\": [\"[ENC]\"],\n  \"bos_token\": \"[DEC]\",\n  \"cls_token\": \"[CLS]\",\n");
    da_buf_printf(&b, "  \"mask_token\": \"[MASK]\",\n  \"pad_token\": \"[PAD]\",\n  \"sep_token\": \"[SEP]\",\n");
    da_buf_printf(&b, "  \"unk_token\": \"[UNK]\"\n}\n");
    return write_buf(&b, dir, "special_tokens_map.json", err);
}

/* Make dir/sub, write its config (cfg_fn) and weights (file name wname, component comp). */
static da_status component_folder(const da_spec *spec, const da_mkmodel_params *p, const char *dir, const char *sub,
                                  da_status (*cfg_fn)(const da_model_config *, da_dtype, const char *, da_error *),
                                  const char *wname, da_component comp, da_error *err) {
    char *d = da_path_join(dir, sub);
    char *w = d ? da_path_join(d, wname) : NULL;
    da_status st = !w ? da_err_set(err, DA_ERR_NOMEM, "out of memory") : da_mkdirs(d, err);
    if (!st) st = cfg_fn(da_spec_config(spec), p->dtype, d, err);
    if (!st) st = write_weights(spec, p, DA_LAYOUT_DIFFUSERS, comp, w, err);
    if (st) da_err_prefix(err, "%s", sub);
    free(w);
    free(d);
    return st;
}

da_status da_mkmodel(const da_mkmodel_params *p, const char *path, da_error *err) {
    da_model_config cfg;
    if (p->cfg) cfg = *p->cfg;
    else if (!da_config_preset(p->config, &cfg))
        return da_err_set(err, DA_ERR_INVALID_ARG, "unknown model config '%s'", p->config ? p->config : "(null)");
    if (p->dtype != DA_F32 && p->dtype != DA_F16 && p->dtype != DA_BF16)
        return da_err_set(err, DA_ERR_DTYPE, "mkmodel writes F32, F16 or BF16, not %s", da_dtype_name(p->dtype));
    if (!(p->jitter >= 0 && p->jitter < 1)) return da_err_set(err, DA_ERR_INVALID_ARG, "jitter must be in [0, 1)");
    if (p->cosxl && cfg.family != DA_FAMILY_SDXL)
        return da_err_set(err, DA_ERR_INVALID_ARG, "--cosxl marks SDXL models; %s is a %s model", cfg.name,
                          da_family_name(cfg.family));
    if (p->layout == DA_LAYOUT_SINGLE && (cfg.family == DA_FAMILY_CLIP || cfg.family == DA_FAMILY_BLIP))
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: %s models ship as transformers folders; there is no single-file layout",
                          cfg.name, da_family_name(cfg.family));
    blip_vocab bv = {0};
    if (cfg.family == DA_FAMILY_BLIP && p->vocab_dir) {
        /* the model's vocabulary and special ids follow the tokenizer it ships with */
        da_status vs = blip_vocab_read(p->vocab_dir, &bv, err);
        if (vs) return vs;
        cfg.blip_text.vocab_size = bv.n_lines;
        cfg.blip_text.pad_token_id = bv.id_of[0];
        cfg.blip_text.sep_token_id = bv.id_of[3];
        cfg.blip_text.bos_token_id = bv.id_of[5];
        if (cfg.blip_text.eos_token_id >= bv.n_lines) cfg.blip_text.eos_token_id = bv.id_of[3];
    }
    da_spec *spec;
    da_status st = da_spec_build(&cfg, &spec, err);
    if (st) {
        free(bv.data);
        return st;
    }
    if (p->layout == DA_LAYOUT_SINGLE) {
        st = write_weights(spec, p, DA_LAYOUT_SINGLE, DA_COMP_COUNT, path, err);
        da_spec_free(spec);
        return st;
    }
    st = da_mkdirs(path, err);
    if (!st && cfg.family == DA_FAMILY_CLIP) {
        char *w = da_path_join(path, "model.safetensors");
        st = w ? clip_config_json(&cfg, p->dtype, path, err) : da_err_set(err, DA_ERR_NOMEM, "out of memory");
        if (!st) st = clip_preprocessor_json(&cfg, path, err);
        if (!st) st = write_weights(spec, p, DA_LAYOUT_DIFFUSERS, DA_COMP_CLIP, w, err);
        if (!st && p->vocab_dir) st = tokenizer_files(p->vocab_dir, path, cfg.text.max_positions, "<|endoftext|>", err);
        free(w);
    } else if (!st && cfg.family == DA_FAMILY_BLIP) {
        char *w = da_path_join(path, "model.safetensors");
        st = w ? blip_config_json(&cfg, p->dtype, path, err) : da_err_set(err, DA_ERR_NOMEM, "out of memory");
        if (!st) st = blip_preprocessor_json(&cfg, path, err);
        if (!st) st = write_weights(spec, p, DA_LAYOUT_DIFFUSERS, DA_COMP_BLIP, w, err);
        if (!st && bv.data) st = blip_tokenizer_files(&bv, path, cfg.blip_text.max_positions, err);
        free(w);
    } else if (!st) {
        st = component_folder(spec, p, path, "unet", unet_config_json, "diffusion_pytorch_model.safetensors", DA_COMP_UNET,
                              err);
        if (!st)
            st = component_folder(spec, p, path, "vae", vae_config_json, "diffusion_pytorch_model.safetensors", DA_COMP_VAE,
                                  err);
        if (!st)
            st = component_folder(spec, p, path, "text_encoder", text_config_json, "model.safetensors",
                                  DA_COMP_TEXT_ENCODER, err);
        if (!st && cfg.family == DA_FAMILY_SDXL)
            st = component_folder(spec, p, path, "text_encoder_2", text2_config_json, "model.safetensors",
                                  DA_COMP_TEXT_ENCODER_2, err);
        char *sd = st ? NULL : da_path_join(path, "scheduler");
        if (!st) st = sd ? da_mkdirs(sd, err) : da_err_set(err, DA_ERR_NOMEM, "out of memory");
        if (!st) st = p->cosxl ? cosxl_scheduler_json(sd, err) : scheduler_json(&cfg, sd, err);
        free(sd);
        if (!st && p->vocab_dir) {
            char *td = da_path_join(path, "tokenizer");
            st = td ? tokenizer_files(p->vocab_dir, td, cfg.text.max_positions, "<|endoftext|>", err)
                    : da_err_set(err, DA_ERR_NOMEM, "out of memory");
            free(td);
            if (!st && cfg.family == DA_FAMILY_SDXL) {
                td = da_path_join(path, "tokenizer_2");
                st = td ? tokenizer_files(p->vocab_dir, td, cfg.text2.max_positions, "!", err)
                        : da_err_set(err, DA_ERR_NOMEM, "out of memory");
                free(td);
            }
        }
        if (!st) st = model_index_json(&cfg, p->vocab_dir != NULL, p->cosxl, path, err);
    }
    free(bv.data);
    da_spec_free(spec);
    return st;
}
