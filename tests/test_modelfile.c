/* test_modelfile.c - model configurations, the canonical <-> ldm name table, the Philox generator,
 * mkmodel in every tiny config / layout / dtype, detection and verification (modelfile.c), the
 * refusal of SD 2.x / SDXL, broken folders, and `diffaug inspect` exit codes.
 *
 * That diffusers / transformers load what mkmodel writes is proven separately by
 * tests/reference/check_mkmodel_loads.py (Python); the parameter counts below are those of the
 * reference models (diffusers UNet2DConditionModel with cross_attention_dim 768, AutoencoderKL kl-f8,
 * transformers CLIPTextModel / CLIPModel).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "mkmodel.h"
#include "modelfile.h"
#include "modelspec.h"
#include "rng.h"
#include "safetensors.h"
#include "testutil.h"
#include "util.h"
#include "vae.h"

static const char *const TINY[] = {"tiny-sd15", "tiny-ip2p", "tiny-clip-vit-b32", "tiny-clip-vit-l14", "tiny-sdxl"};
static const da_dtype DTYPES[] = {DA_F32, DA_F16, DA_BF16};

static uint64_t comp_params(const da_spec *s, da_component c, size_t *count) {
    uint64_t n = 0;
    *count = 0;
    for (size_t i = 0; i < da_spec_count(s); i++) {
        const da_tensor_spec *t = da_spec_at(s, i);
        if (t->comp != c) continue;
        n += da_spec_numel(t);
        (*count)++;
    }
    return n;
}

/* ---- configurations and the name table -------------------------------------------------------- */

START_TEST(test_full_size_counts) {
    /* parameter and tensor counts of the reference models */
    static const struct {
        const char *cfg;
        da_component c;
        size_t tensors;
        uint64_t params;
    } want[] = {
        {"sd15", DA_COMP_UNET, 686, 859520964ull},        {"ip2p", DA_COMP_UNET, 686, 859532484ull},
        {"sd15", DA_COMP_VAE, 248, 83653863ull},          {"sd15", DA_COMP_TEXT_ENCODER, 196, 123060480ull},
        {"clip-vit-b32", DA_COMP_CLIP, 398, 151277313ull}, {"clip-vit-l14", DA_COMP_CLIP, 590, 427616513ull},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        da_model_config cfg;
        ck_assert(da_config_preset(want[i].cfg, &cfg));
        da_spec *s;
        da_error e;
        ck_assert_int_eq(da_spec_build(&cfg, &s, &e), DA_OK);
        size_t n;
        uint64_t p = comp_params(s, want[i].c, &n);
        ck_assert_msg(n == want[i].tensors && p == want[i].params, "%s %s: %zu tensors %llu params", want[i].cfg,
                      da_component_name(want[i].c), n, (unsigned long long)p);
        da_spec_free(s);
    }
    da_model_config cfg;
    ck_assert(!da_config_preset("sd21", &cfg));
    ck_assert(!da_config_preset(NULL, &cfg));
}
END_TEST

START_TEST(test_name_table_both_ways) {
    for (const char *const *nm = da_config_preset_names(); *nm; nm++) {
        da_model_config cfg;
        ck_assert(da_config_preset(*nm, &cfg));
        da_spec *s;
        da_error e;
        ck_assert_int_eq(da_spec_build(&cfg, &s, &e), DA_OK);
        size_t n_attn4 = 0;
        for (size_t i = 0; i < da_spec_count(s); i++) {
            const da_tensor_spec *t = da_spec_at(s, i);
            ck_assert_ptr_eq(da_spec_find(s, t->comp, t->name), t);
            if (!t->single_only) ck_assert_ptr_eq(da_spec_map_key(s, DA_LAYOUT_DIFFUSERS, t->comp, t->name), t);
            else ck_assert_ptr_null(da_spec_map_key(s, DA_LAYOUT_DIFFUSERS, t->comp, t->name));
            if (t->ldm_name && t->xf.kind != DA_XF_NONE) {
                /* OpenCLIP packed q/k/v (the key maps to the first part) and transposed projection */
                const da_tensor_spec *first = da_spec_map_key(s, DA_LAYOUT_SINGLE, DA_COMP_COUNT, t->ldm_name);
                ck_assert(first == t || (t->xf.kind == DA_XF_ROWS && first && first->xf.r0 == 0));
                ck_assert_int_eq(t->comp, DA_COMP_TEXT_ENCODER_2);
            } else if (t->ldm_name) {
                ck_assert_ptr_eq(da_spec_map_key(s, DA_LAYOUT_SINGLE, DA_COMP_COUNT, t->ldm_name), t);
                /* a shape change is only ever trailing unit dimensions (bytes identical) */
                ck_assert_uint_eq(da_spec_numel(t), ({
                                      uint64_t k = 1;
                                      for (int d = 0; d < t->ldm_rank; d++) k *= (uint64_t)t->ldm_shape[d];
                                      k;
                                  }));
                if (t->ldm_rank != t->rank) {
                    ck_assert_int_eq(t->ldm_rank, 4);
                    ck_assert(t->ldm_shape[2] == 1 && t->ldm_shape[3] == 1);
                    ck_assert(strstr(t->ldm_name, "mid.attn_1."));
                    n_attn4++;
                }
            } else {
                ck_assert(cfg.family == DA_FAMILY_CLIP || cfg.family == DA_FAMILY_BLIP); /* no single-file form */
            }
        }
        /* kl-f8: q, k, v, proj_out in the encoder and decoder mid attention */
        ck_assert_uint_eq(n_attn4, cfg.family == DA_FAMILY_CLIP || cfg.family == DA_FAMILY_BLIP ? 0 : 8);
        ck_assert_ptr_null(da_spec_map_key(s, DA_LAYOUT_SINGLE, DA_COMP_COUNT, "model.diffusion_model.nope.weight"));
        ck_assert_ptr_null(da_spec_find(s, DA_COMP_UNET, "text_model.final_layer_norm.weight"));
        da_spec_free(s);
    }
    /* spot checks of the ldm index arithmetic (sd15: 2 layers per level) */
    da_model_config cfg;
    da_config_preset("sd15", &cfg);
    da_spec *s;
    da_error e;
    ck_assert_int_eq(da_spec_build(&cfg, &s, &e), DA_OK);
    static const char *const pairs[][2] = {
        {"down_blocks.1.resnets.0.conv_shortcut.weight", "model.diffusion_model.input_blocks.4.0.skip_connection.weight"},
        {"down_blocks.2.downsamplers.0.conv.weight", "model.diffusion_model.input_blocks.9.0.op.weight"},
        {"up_blocks.0.upsamplers.0.conv.bias", "model.diffusion_model.output_blocks.2.1.conv.bias"},
        {"up_blocks.1.upsamplers.0.conv.bias", "model.diffusion_model.output_blocks.5.2.conv.bias"},
        {"up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight",
         "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight"},
        {"mid_block.resnets.1.time_emb_proj.weight", "model.diffusion_model.middle_block.2.emb_layers.1.weight"},
        {"time_embedding.linear_2.weight", "model.diffusion_model.time_embed.2.weight"},
        {"conv_norm_out.bias", "model.diffusion_model.out.0.bias"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const da_tensor_spec *t = da_spec_find(s, DA_COMP_UNET, pairs[i][0]);
        ck_assert_msg(t && !strcmp(t->ldm_name, pairs[i][1]), "%s -> %s", pairs[i][0], t ? t->ldm_name : "(none)");
    }
    const da_tensor_spec *t = da_spec_find(s, DA_COMP_VAE, "decoder.up_blocks.0.resnets.2.conv2.weight");
    ck_assert_str_eq(t->ldm_name, "first_stage_model.decoder.up.3.block.2.conv2.weight");
    t = da_spec_find(s, DA_COMP_VAE, "encoder.mid_block.attentions.0.to_out.0.weight");
    ck_assert_str_eq(t->ldm_name, "first_stage_model.encoder.mid.attn_1.proj_out.weight");
    int64_t lin[2] = {512, 512}, conv[4] = {512, 512, 1, 1};
    ck_assert(da_spec_shape_matches(t, DA_LAYOUT_DIFFUSERS, 2, lin));
    ck_assert(!da_spec_shape_matches(t, DA_LAYOUT_DIFFUSERS, 4, conv));
    ck_assert(da_spec_shape_matches(t, DA_LAYOUT_SINGLE, 4, conv));
    ck_assert(!da_spec_shape_matches(t, DA_LAYOUT_SINGLE, 2, lin));
    ck_assert_uint_eq(da_spec_count_in(s, DA_COMP_EXTRA, DA_LAYOUT_SINGLE), 15);
    ck_assert_uint_eq(da_spec_count_in(s, DA_COMP_EXTRA, DA_LAYOUT_DIFFUSERS), 0);
    /* the schedule: SD 1.x scaled_linear endpoints */
    double *buf = malloc(1000 * sizeof *buf);
    ck_assert(da_schedule_buffer(&cfg, "betas", buf));
    ck_assert(fabs(buf[0] - 0.00085) < 1e-12 && fabs(buf[999] - 0.012) < 1e-12);
    ck_assert(da_schedule_buffer(&cfg, "alphas_cumprod", buf));
    ck_assert(fabs(buf[999] - 0.0046600985) < 1e-9); /* torch float64 linspace^2, cumprod */
    ck_assert(!da_schedule_buffer(&cfg, "nope", buf));
    free(buf);
    da_spec_free(s);
    /* an inconsistent configuration is refused */
    cfg.unet.block_out_channels[1] = 100;
    ck_assert_int_eq(da_spec_build(&cfg, &s, &e), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "level 1"));
}
END_TEST

/* ---- RNG and rounding ---------------------------------------------------------------------------- */

START_TEST(test_philox_known_answers) {
    /* Random123 kat_vectors, philox4x32 with 10 rounds */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        da_philox4x32_10(kat[i], kat[i] + 4, out);
        for (int k = 0; k < 4; k++) ck_assert_msg(out[k] == kat[i][6 + k], "kat %d word %d: %08x", i, k, out[k]);
    }
}
END_TEST

START_TEST(test_rng_draws) {
    enum { N = 200000 };
    float *u = malloc(N * sizeof *u), *z = malloc(N * sizeof *z), *part = malloc(1000 * sizeof *part);
    da_rng_uniform(42, 7, 0, N, -2.0f, 3.0f, u);
    da_rng_normal(42, 7, 0, N, 1.0f, 2.0f, z);
    double su = 0, sz = 0, sz2 = 0;
    float lo = 1e9f, hi = -1e9f;
    for (int i = 0; i < N; i++) {
        su += u[i];
        lo = fminf(lo, u[i]);
        hi = fmaxf(hi, u[i]);
        sz += z[i];
        sz2 += (double)z[i] * z[i];
        ck_assert(isfinite(z[i]));
    }
    ck_assert(lo >= -2.0f && hi < 3.0f && lo < -1.99f && hi > 2.99f);
    ck_assert(fabs(su / N - 0.5) < 0.02);
    double mean = sz / N, var = sz2 / N - mean * mean;
    ck_assert_msg(fabs(mean - 1.0) < 0.02 && fabs(sqrt(var) - 2.0) < 0.02, "normal mean %g std %g", mean, sqrt(var));
    /* any slice reproduces the same elements: order does not matter (odd offsets included) */
    da_rng_normal(42, 7, 12345, 1000, 1.0f, 2.0f, part);
    ck_assert_mem_eq(part, z + 12345, 1000 * sizeof *part);
    da_rng_uniform(42, 7, 777, 1000, -2.0f, 3.0f, part);
    ck_assert_mem_eq(part, u + 777, 1000 * sizeof *part);
    /* other seed / stream: different values */
    da_rng_uniform(43, 7, 0, 1000, -2.0f, 3.0f, part);
    ck_assert(memcmp(part, u, 1000 * sizeof *part) != 0);
    da_rng_uniform(42, 8, 0, 1000, -2.0f, 3.0f, part);
    ck_assert(memcmp(part, u, 1000 * sizeof *part) != 0);
    ck_assert(da_rng_stream_of("unet:conv_in.weight") != da_rng_stream_of("unet:conv_in.bias"));
    free(u);
    free(z);
    free(part);
}
END_TEST

START_TEST(test_half_rounding) {
    ck_assert_uint_eq(da_f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(da_f32_to_f16(-2.0f), 0xc000);
    ck_assert_uint_eq(da_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(da_f32_to_f16(65520.0f), 0x7c00); /* rounds up to infinity */
    ck_assert_uint_eq(da_f32_to_f16(5.9604645e-8f), 0x0001); /* smallest subnormal */
    ck_assert_uint_eq(da_f32_to_f16(2.9802322e-8f), 0x0000); /* half of it: tie to even (0) */
    ck_assert_uint_eq(da_f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie: to even */
    ck_assert_uint_eq(da_f32_to_f16(1.0f + 0x1p-10f + 0x1p-11f), 0x3c02);
    ck_assert_uint_eq(da_f32_to_f16(6.097555e-05f), 0x03ff); /* largest subnormal */
    ck_assert_uint_eq(da_f32_to_bf16(1.0f), 0x3f80);
    float tie, tie2;
    uint32_t b1 = 0x3f808000u, b2 = 0x3f818000u;
    memcpy(&tie, &b1, 4);
    memcpy(&tie2, &b2, 4);
    ck_assert_uint_eq(da_f32_to_bf16(tie), 0x3f80);
    ck_assert_uint_eq(da_f32_to_bf16(tie2), 0x3f82);
    ck_assert(da_f32_to_bf16(NAN) & 0x7f);
    /* the f32 reader of the safetensors module inverts both exactly on representable values */
    uint16_t h = da_f32_to_f16(0.333251953125f);
    float back;
    da_convert_to_f32(DA_F16, &h, &back, 1);
    ck_assert(back == 0.333251953125f);
}
END_TEST

/* ---- mkmodel + detection over every tiny config, layout and dtype ------------------------------ */

static char *mk(const char *dir, const char *cfg, da_layout l, da_dtype dt, uint64_t seed, const char *vocab) {
    char name[128];
    snprintf(name, sizeof name, "%s-%s-%s-%llu%s", cfg, da_layout_name(l), da_dtype_name(dt), (unsigned long long)seed,
             l == DA_LAYOUT_SINGLE ? ".safetensors" : "");
    char *path = da_path_join(dir, name);
    da_mkmodel_params p;
    da_mkmodel_params_init(&p);
    p.config = cfg;
    p.layout = l;
    p.dtype = dt;
    p.seed = seed;
    p.vocab_dir = vocab;
    da_error e;
    da_err_clear(&e);
    ck_assert_msg(da_mkmodel(&p, path, &e) == DA_OK, "mkmodel %s: %s", name, e.msg);
    return path;
}

static bool same_config(const da_model_config *a, const da_model_config *b, da_component c) {
    switch (c) {
    case DA_COMP_UNET: return !memcmp(&a->unet, &b->unet, sizeof a->unet);
    case DA_COMP_VAE: return !memcmp(&a->vae, &b->vae, sizeof a->vae);
    case DA_COMP_TEXT_ENCODER: return !memcmp(&a->text, &b->text, sizeof a->text);
    default:
        return !memcmp(&a->text, &b->text, sizeof a->text) && !memcmp(&a->vision, &b->vision, sizeof a->vision) &&
               a->projection_dim == b->projection_dim && fabsf(a->logit_scale_init - b->logit_scale_init) < 1e-6f;
    }
}

/* Every spec entry of the model present with its shape and dtype; files hold nothing else. */
static void check_complete(const da_model_file *m, da_dtype dt) {
    const da_spec *s = m->spec;
    size_t found = 0, in_files = 0;
    for (int p = 0; p < m->n_parts; p++) in_files += m->parts[p].st->n_tensors;
    for (size_t i = 0; i < da_spec_count(s); i++) {
        const da_tensor_spec *t = da_spec_at(s, i);
        bool expect = t->comp == DA_COMP_EXTRA ? m->layout == DA_LAYOUT_SINGLE && m->kind == DA_KIND_SD_SINGLE
                                               : da_model_has(m, t->comp);
        const da_st_tensor *ft = da_model_tensor(m, t);
        ck_assert_msg(expect == (ft != NULL), "%s: %s %s", m->path, t->name, expect ? "missing" : "unexpected");
        if (!ft) continue;
        /* the parts of a packed open_clip tensor (q/k/v rows of in_proj) share one file tensor */
        found += da_spec_xform(t, m->layout).kind != DA_XF_ROWS || t->xf.r0 == 0;
        ck_assert_msg(da_spec_shape_matches(t, m->layout, ft->rank, ft->shape), "%s: shape of %s", m->path, t->name);
        da_dtype want = t->fixed_dtype != DA_DTYPE_COUNT ? t->fixed_dtype : dt;
        ck_assert_msg(ft->dtype == want, "%s: %s is %s, asked %s", m->path, t->name, da_dtype_name(ft->dtype),
                      da_dtype_name(want));
    }
    ck_assert_uint_eq(found, in_files);
}

/* Byte-compare every shared tensor of two opened models (single vs diffusers of one seed). */
static void check_same_values(const da_model_file *a, const da_model_file *b, bool want_equal) {
    size_t compared = 0, differ = 0;
    for (size_t i = 0; i < da_spec_count(a->spec); i++) {
        const da_tensor_spec *t = da_spec_at(a->spec, i);
        const da_tensor_spec *tb = da_spec_find(b->spec, t->comp, t->name);
        const da_st_tensor *x = da_model_tensor(a, t), *y = da_model_tensor(b, tb);
        if (!x || !y) continue;
        /* canonical bytes (open_clip's packed / transposed tensors through their da_xform) */
        size_t n = (size_t)da_spec_numel(t) * da_dtype_size(x->dtype);
        ck_assert_uint_eq(n, (size_t)da_spec_numel(tb) * da_dtype_size(y->dtype));
        void *cx = malloc(n), *cy = malloc(n);
        da_error e;
        ck_assert_msg(da_spec_xform_apply(t, a->layout, x, cx, &e) == DA_OK, "%s", e.msg);
        ck_assert_msg(da_spec_xform_apply(tb, b->layout, y, cy, &e) == DA_OK, "%s", e.msg);
        compared++;
        if (memcmp(cx, cy, n)) {
            differ++;
            ck_assert_msg(!want_equal, "%s differs between %s and %s", t->name, a->path, b->path);
        }
        free(cx), free(cy);
    }
    ck_assert_uint_gt(compared, 30);
    if (!want_equal) ck_assert_uint_gt(differ, compared / 2); /* only constants (norms, zero biases) coincide */
}

/* Values are the generator's: spot-check a uniform, a normal and a norm tensor against da_mkmodel_values. */
static void check_generator_values(const da_model_file *m, uint64_t seed) {
    int checked = 0;
    for (size_t i = 0; i < da_spec_count(m->spec) && checked < 40; i += 7) {
        const da_tensor_spec *t = da_spec_at(m->spec, i);
        const da_st_tensor *ft = da_model_tensor(m, t);
        /* open_clip's packed / transposed tensors are checked by tests/test_sdxl_text.c */
        if (!ft || t->fixed_dtype != DA_DTYPE_COUNT || da_spec_xform(t, m->layout).kind != DA_XF_NONE) continue;
        size_t n = ft->numel < 512 ? (size_t)ft->numel : 512;
        float *want = malloc(n * sizeof *want), *got = malloc(ft->numel * sizeof *got);
        da_mkmodel_values(&m->cfg, t, seed, 0, 0, n, want);
        da_convert_to_f32(ft->dtype, ft->data, got, (size_t)ft->numel);
        for (size_t k = 0; k < n; k++) {
            float w = want[k];
            if (ft->dtype == DA_F16) da_convert_to_f32(DA_F16, &(uint16_t){da_f32_to_f16(w)}, &w, 1);
            if (ft->dtype == DA_BF16) da_convert_to_f32(DA_BF16, &(uint16_t){da_f32_to_bf16(w)}, &w, 1);
            ck_assert_msg(got[k] == w, "%s[%zu]: %g vs %g", t->name, k, got[k], w);
        }
        /* the init distribution is the one named: bounds for uniform, 1/0 for norms */
        if (t->init == DA_INIT_UNIFORM)
            for (uint64_t k = 0; k < ft->numel; k++) ck_assert(fabsf(got[k]) <= t->init_a * 1.01 + 1e-6);
        if (t->init == DA_INIT_ONES)
            for (uint64_t k = 0; k < ft->numel; k++) ck_assert(got[k] == 1.0f);
        free(want);
        free(got);
        checked++;
    }
    ck_assert_int_gt(checked, 10);
}

START_TEST(test_mkmodel_every_tiny_layout_dtype) {
    char *dir = da_test_tmpdir("model");
    char *vocab = da_path_join(da_test_shared(), "data/clip-tokenizer");
    const char *voc = da_is_file(vocab) || da_is_dir(vocab) ? vocab : NULL;
    const char *cfgname = TINY[_i];
    da_model_config want;
    ck_assert(da_config_preset(cfgname, &want));
    for (size_t d = 0; d < 3; d++) {
        da_dtype dt = DTYPES[d];
        da_model_file *ms = NULL, *md = NULL;
        da_error e;
        char *pd = mk(dir, cfgname, DA_LAYOUT_DIFFUSERS, dt, 11, voc);
        ck_assert_msg(da_model_open(pd, &md, &e) == DA_OK, "%s: %s", pd, e.msg);
        check_complete(md, dt);
        ck_assert_int_eq(md->cfg.family, want.family);
        if (want.family == DA_FAMILY_CLIP) {
            ck_assert_int_eq(md->kind, DA_KIND_CLIP_FOLDER);
            ck_assert(same_config(&md->cfg, &want, DA_COMP_CLIP));
            ck_assert(voc == NULL || md->tokenizer_dir != NULL);
            /* CLIP has no single-file form */
            da_mkmodel_params p;
            da_mkmodel_params_init(&p);
            p.config = cfgname;
            p.layout = DA_LAYOUT_SINGLE;
            char *ps = da_path_join(dir, "clip.safetensors");
            ck_assert_int_eq(da_mkmodel(&p, ps, &e), DA_ERR_UNSUPPORTED);
            ck_assert(!da_is_file(ps));
            free(ps);
        } else {
            ck_assert_int_eq(md->kind, DA_KIND_SD_DIFFUSERS);
            ck_assert(md->cfg_from_json);
            for (da_component c = DA_COMP_UNET; c <= DA_COMP_TEXT_ENCODER; c++)
                ck_assert_msg(same_config(&md->cfg, &want, c), "%s: %s config", pd, da_component_name(c));
            ck_assert_ptr_nonnull(md->scheduler_config);
            ck_assert(voc == NULL || md->tokenizer_dir != NULL);

            char *ps = mk(dir, cfgname, DA_LAYOUT_SINGLE, dt, 11, NULL);
            ck_assert_msg(da_model_open(ps, &ms, &e) == DA_OK, "%s: %s", ps, e.msg);
            ck_assert_int_eq(ms->kind, DA_KIND_SD_SINGLE);
            ck_assert(!ms->cfg_from_json);
            check_complete(ms, dt);
            /* shapes alone give back the configuration (SD 1.x heads rule included) */
            for (da_component c = DA_COMP_UNET; c <= DA_COMP_TEXT_ENCODER; c++)
                ck_assert_msg(same_config(&ms->cfg, &want, c), "%s: %s config from shapes", ps, da_component_name(c));
            check_same_values(ms, md, true);
            check_generator_values(ms, 11);
            if (d == 0) {
                /* another seed: other values */
                char *p2 = mk(dir, cfgname, DA_LAYOUT_SINGLE, dt, 12, NULL);
                da_model_file *m2;
                ck_assert_int_eq(da_model_open(p2, &m2, &e), DA_OK);
                check_same_values(ms, m2, false);
                da_model_close(m2);
                unlink(p2);
                free(p2);
            }
            da_model_close(ms);
            unlink(ps);
            free(ps);
        }
        check_generator_values(md, 11);
        da_model_close(md);
        da_rmtree(pd);
        free(pd);
    }
    free(vocab);
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- components, broken folders, unsupported models ------------------------------------------ */

/* Rewrite src (safetensors) into dst: drop `drop` (may be NULL), strip `strip` from names, add an
 * extra tensor `extra` (may be NULL). */
static void rewrite(const char *src, const char *dst, const char *drop, const char *strip, const char *extra) {
    da_st_file *f;
    da_error e;
    ck_assert_int_eq(da_st_open(src, &f, &e), DA_OK);
    da_st_writer *w = da_st_writer_new();
    size_t ls = strip ? strlen(strip) : 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const da_st_tensor *t = &f->tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        const char *name = t->name;
        if (strip) {
            if (strncmp(name, strip, ls)) continue;
            name += ls;
        }
        ck_assert_int_eq(da_st_writer_add(w, name, t->dtype, t->rank, t->shape, t->data, t->nbytes, false, &e), DA_OK);
    }
    float one = 1;
    int64_t sh[1] = {1};
    if (extra) ck_assert_int_eq(da_st_writer_add(w, extra, DA_F32, 1, sh, &one, 4, true, &e), DA_OK);
    ck_assert_int_eq(da_st_writer_write(w, dst, &e), DA_OK);
    da_st_writer_free(w);
    da_st_close(f);
}

static void expect_open_error(const char *path, da_status code, const char *needle) {
    da_model_file *m = NULL;
    da_error e;
    da_err_clear(&e);
    da_status st = da_model_open(path, &m, &e);
    ck_assert_msg(st == code && m == NULL, "%s: got %s (%s), want %s", path, da_status_name(st), e.msg,
                  da_status_name(code));
    ck_assert_msg(strstr(e.msg, needle), "%s: message '%s' lacks '%s'", path, e.msg, needle);
}

static void edit_json(const char *path, const char *from, const char *to) {
    char *text;
    size_t len;
    da_error e;
    ck_assert_int_eq(da_read_file(path, &text, &len, &e), DA_OK);
    char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "%s has no '%s'", path, from);
    da_buf b = {0};
    da_buf_append(&b, text, (size_t)(at - text));
    da_buf_append(&b, to, strlen(to));
    da_buf_append(&b, at + strlen(from), strlen(at + strlen(from)));
    ck_assert_int_eq(da_write_file_atomic(path, b.data, b.len, &e), DA_OK);
    da_buf_free(&b);
    free(text);
}

START_TEST(test_components_and_broken_models) {
    char *dir = da_test_tmpdir("model");
    char *pd = mk(dir, "tiny-sd15", DA_LAYOUT_DIFFUSERS, DA_F16, 5, NULL);
    char *ps = mk(dir, "tiny-sd15", DA_LAYOUT_SINGLE, DA_F16, 5, NULL);
    char path[1024], path2[1024];
    da_model_file *m;
    da_error e;

    /* component folders and files, in both namings */
    static const struct {
        const char *sub;
        da_component c;
        da_model_kind kind;
    } comps[] = {
        {"unet", DA_COMP_UNET, DA_KIND_COMPONENT_FOLDER},
        {"vae", DA_COMP_VAE, DA_KIND_COMPONENT_FOLDER},
        {"text_encoder", DA_COMP_TEXT_ENCODER, DA_KIND_COMPONENT_FOLDER},
        {"unet/diffusion_pytorch_model.safetensors", DA_COMP_UNET, DA_KIND_COMPONENT_FILE},
        {"vae/diffusion_pytorch_model.safetensors", DA_COMP_VAE, DA_KIND_COMPONENT_FILE},
        {"text_encoder/model.safetensors", DA_COMP_TEXT_ENCODER, DA_KIND_COMPONENT_FILE},
    };
    da_model_config want;
    da_config_preset("tiny-sd15", &want);
    for (size_t i = 0; i < sizeof comps / sizeof comps[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", pd, comps[i].sub);
        ck_assert_msg(da_model_open(path, &m, &e) == DA_OK, "%s: %s", path, e.msg);
        ck_assert_int_eq(m->kind, comps[i].kind);
        ck_assert_int_eq(m->component, comps[i].c);
        ck_assert(same_config(&m->cfg, &want, comps[i].c));
        check_complete(m, DA_F16);
        da_model_close(m);
    }
    /* a lone ldm VAE (first_stage_model. stripped, as vae-ft-mse-840000 ships) */
    snprintf(path, sizeof path, "%s/ldm-vae.safetensors", dir);
    rewrite(ps, path, NULL, "first_stage_model.", NULL);
    ck_assert_msg(da_model_open(path, &m, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(m->component, DA_COMP_VAE);
    ck_assert_int_eq(m->layout, DA_LAYOUT_SINGLE);
    ck_assert(same_config(&m->cfg, &want, DA_COMP_VAE));
    check_complete(m, DA_F16);
    da_model_close(m);

    /* CLIPTextModel as transformers >= 5 saves it: no "text_model." prefix */
    snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", pd);
    snprintf(path2, sizeof path2, "%s/te5.safetensors", dir);
    rewrite(path, path2, NULL, "text_model.", NULL);
    ck_assert_msg(da_model_open(path2, &m, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(m->component, DA_COMP_TEXT_ENCODER);
    ck_assert(same_config(&m->cfg, &want, DA_COMP_TEXT_ENCODER));
    check_complete(m, DA_F16);
    const da_st_tensor *tt = da_model_tensor(m, da_spec_find(m->spec, DA_COMP_TEXT_ENCODER, "text_model.final_layer_norm.bias"));
    ck_assert(tt && !strcmp(tt->name, "final_layer_norm.bias"));
    da_model_close(m);

    /* single file: a missing tensor, an unexpected one, tolerated EMA keys */
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    rewrite(ps, path, "model.diffusion_model.middle_block.1.proj_out.weight", NULL, NULL);
    expect_open_error(path, DA_ERR_NOT_FOUND, "model.diffusion_model.middle_block.1.proj_out.weight");
    rewrite(ps, path, NULL, NULL, "model.diffusion_model.bogus.weight");
    expect_open_error(path, DA_ERR_FORMAT, "model.diffusion_model.bogus.weight");
    rewrite(ps, path, "betas", NULL, "model_ema.diffusion_modelconv_inweight");
    ck_assert_msg(da_model_open(path, &m, &e) == DA_OK, "%s", e.msg);
    ck_assert_uint_eq(m->n_ignored, 1);
    da_model_close(m);

    /* diffusers folder: missing component, corrupt component, missing tensor, wrong config */
    snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", pd);
    snprintf(path2, sizeof path2, "%s/vae.moved", dir);
    ck_assert_int_eq(rename(path, path2), 0);
    expect_open_error(pd, DA_ERR_NOT_FOUND, "vae");
    ck_assert_int_eq(rename(path2, path), 0);
    snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", pd);
    snprintf(path2, sizeof path2, "%s/te.safetensors", dir);
    rewrite(path, path2, NULL, NULL, NULL); /* keep a good copy */
    ck_assert_int_eq(truncate(path, 1000), 0);
    expect_open_error(pd, DA_ERR_TRUNCATED, "text_encoder");
    rewrite(path2, path, "text_model.encoder.layers.1.mlp.fc2.bias", NULL, NULL);
    expect_open_error(pd, DA_ERR_NOT_FOUND, "text_model.encoder.layers.1.mlp.fc2.bias");
    rewrite(path2, path, NULL, NULL, NULL);
    ck_assert_int_eq(da_model_open(pd, &m, &e), DA_OK);
    da_model_close(m);
    snprintf(path, sizeof path, "%s/unet/config.json", pd);
    edit_json(path, "\"layers_per_block\": 2", "\"layers_per_block\": 3");
    expect_open_error(pd, DA_ERR_SHAPE, "the detected configuration needs");
    edit_json(path, "\"layers_per_block\": 3", "\"layers_per_block\": 2");
    snprintf(path, sizeof path, "%s/model_index.json", pd);
    snprintf(path2, sizeof path2, "%s/scheduler/scheduler_config.json", pd);
    ck_assert_int_eq(unlink(path2), 0);
    expect_open_error(pd, DA_ERR_NOT_FOUND, "scheduler");

    /* unsupported: SD 2.x (cross-attention 1024 / OpenCLIP keys), SDXL (pipeline class, keys) */
    snprintf(path, sizeof path, "%s/unet/config.json", pd);
    edit_json(path, "\"cross_attention_dim\": 32", "\"cross_attention_dim\": 1024");
    expect_open_error(pd, DA_ERR_UNSUPPORTED, "SD 2.x is not supported yet");
    edit_json(path, "\"cross_attention_dim\": 1024", "\"cross_attention_dim\": 32");
    /* SDXL is recognised (pipeline class, single-file keys): an SD 1.x model dressed up as one fails
     * with what SDXL needs and is missing */
    snprintf(path, sizeof path, "%s/model_index.json", pd);
    edit_json(path, "StableDiffusionPipeline", "StableDiffusionXLPipeline");
    expect_open_error(pd, DA_ERR_NOT_FOUND, "component text_encoder_2/ is missing");
    edit_json(path, "StableDiffusionXLPipeline", "StableDiffusionPipeline");
    snprintf(path, sizeof path, "%s/sdxl.safetensors", dir);
    rewrite(ps, path, NULL, NULL, "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight");
    expect_open_error(path, DA_ERR_NOT_FOUND, "missing tensor token_embedding");
    rewrite(ps, path, NULL, NULL, "model.diffusion_model.label_emb.0.0.weight");
    expect_open_error(path, DA_ERR_SHAPE, "label_emb.0.0");
    snprintf(path, sizeof path, "%s/unet/config.json", pd);
    edit_json(path, "\"cross_attention_dim\": 32", "\"cross_attention_dim\": 1024");
    snprintf(path, sizeof path, "%s/sd2.safetensors", dir);
    rewrite(ps, path, NULL, NULL, "cond_stage_model.model.ln_final.weight");
    expect_open_error(path, DA_ERR_UNSUPPORTED, "SD 2.x is not supported yet");
    {
        /* a hand-made SD 2.x-like UNet: conv_in plus a cross-attention of width 1024 */
        da_st_writer *w = da_st_writer_new();
        static float z[32 * 1024];
        int64_t a[4] = {32, 4, 3, 3}, b[4] = {32, 32, 3, 3}, c[2] = {32, 1024}, d[4] = {32, 32, 1, 1};
        const char *P = "model.diffusion_model.";
        char k[256];
#define ADD(name, r, sh)                                                                                              \
    snprintf(k, sizeof k, "%s%s", P, name);                                                                          \
    ck_assert_int_eq(da_st_writer_add(w, k, DA_F32, r, sh, z, 4 * (size_t)(sh[0] * sh[1] * (r > 2 ? sh[2] * sh[3] : 1)), \
                                      false, &e),                                                                    \
                     DA_OK)
        ADD("input_blocks.0.0.weight", 4, a);
        ADD("input_blocks.1.0.in_layers.2.weight", 4, b);
        ADD("input_blocks.1.1.proj_in.weight", 4, d);
        ADD("input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, c);
#undef ADD
        ck_assert_int_eq(da_st_writer_write(w, path, &e), DA_OK);
        da_st_writer_free(w);
        expect_open_error(path, DA_ERR_UNSUPPORTED, "SD 2.x is not supported yet");
    }
    /* not a model at all */
    snprintf(path, sizeof path, "%s/other.safetensors", dir);
    {
        da_st_writer *w = da_st_writer_new();
        float x = 0;
        int64_t sh[1] = {1};
        ck_assert_int_eq(da_st_writer_add(w, "foo", DA_F32, 1, sh, &x, 4, true, &e), DA_OK);
        ck_assert_int_eq(da_st_writer_write(w, path, &e), DA_OK);
        da_st_writer_free(w);
    }
    expect_open_error(path, DA_ERR_FORMAT, "not a recognised model");
    expect_open_error(dir, DA_ERR_NOT_FOUND, "not a model folder");
    snprintf(path, sizeof path, "%s/nothing-here", dir);
    expect_open_error(path, DA_ERR_NOT_FOUND, "no such file");

    free(pd);
    free(ps);
    da_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_cli_mkmodel_inspect) {
    char *dir = da_test_tmpdir("model");
    const char *cli = da_test_cli();
    char *out = NULL;
    int rc = da_test_sh(&out, "%s mkmodel --config tiny-ip2p --layout single --dtype bf16 --seed 3 -o %s/ip2p.safetensors",
                        cli, dir);
    ck_assert_msg(rc == 0, "mkmodel: %s", out);
    free(out);
    rc = da_test_sh(&out, "%s inspect %s/ip2p.safetensors", cli, dir);
    ck_assert_msg(rc == 0, "inspect: %s", out);
    ck_assert_ptr_nonnull(strstr(out, "InstructPix2Pix"));
    ck_assert_ptr_nonnull(strstr(out, "unet in=8"));
    ck_assert_ptr_nonnull(strstr(out, "model.diffusion_model.input_blocks.0.0.weight"));
    ck_assert_ptr_nonnull(strstr(out, "BF16"));
    ck_assert_ptr_nonnull(strstr(out, "totals:"));
    free(out);
    rc = da_test_sh(&out, "%s inspect --tensors %s/ip2p.safetensors | wc -l", cli, dir);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(atoi(out), 985);
    free(out);
    rc = da_test_sh(&out, "%s mkmodel --config tiny-clip-vit-b32 --layout diffusers -o %s/clip && %s inspect --summary %s/clip",
                    cli, dir, cli, dir);
    ck_assert_msg(rc == 0 && strstr(out, "patch 32") && !strstr(out, "text_model.embeddings"), "%s", out);
    free(out);
    /* corrupt file: exit 1 with the validator's reason */
    rc = da_test_sh(&out, "head -c 3000 %s/ip2p.safetensors > %s/bad.safetensors; %s inspect %s/bad.safetensors 2>&1", dir, dir,
                    cli, dir);
    ck_assert_msg(rc == 1 && strstr(out, "bad.safetensors"), "rc %d: %s", rc, out);
    free(out);
    rc = da_test_sh(&out, "%s inspect %s/none 2>&1", cli, dir);
    ck_assert_int_eq(rc, 1);
    free(out);
    /* bad command lines: exit 2 */
    rc = da_test_sh(&out, "%s mkmodel --config nope --layout single -o %s/x 2>&1", cli, dir);
    ck_assert_int_eq(rc, 2);
    free(out);
    rc = da_test_sh(&out, "%s mkmodel --config tiny-sd15 --layout single --dtype f8 -o %s/x 2>&1", cli, dir);
    ck_assert_int_eq(rc, 2);
    free(out);
    rc = da_test_sh(&out, "%s inspect 2>&1", cli);
    ck_assert_int_eq(rc, 2);
    free(out);
    da_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_jitter) {
    /* with jitter, norms and zero-initialised biases are no longer constants, so a loader that
     * drops them changes the output */
    da_model_config cfg;
    da_config_preset("tiny-clip-vit-b32", &cfg);
    da_spec *s;
    da_error e;
    ck_assert_int_eq(da_spec_build(&cfg, &s, &e), DA_OK);
    const da_tensor_spec *ln = da_spec_find(s, DA_COMP_CLIP, "vision_model.post_layernorm.weight");
    const da_tensor_spec *b = da_spec_find(s, DA_COMP_CLIP, "text_model.encoder.layers.0.mlp.fc1.bias");
    float v[64];
    da_mkmodel_values(&cfg, ln, 1, 0, 0, 32, v);
    for (int i = 0; i < 32; i++) ck_assert(v[i] == 1.0f);
    da_mkmodel_values(&cfg, ln, 1, 0.1f, 0, 32, v);
    int off = 0;
    for (int i = 0; i < 32; i++) {
        ck_assert(fabsf(v[i] - 1.0f) <= 0.1f);
        off += v[i] != 1.0f;
    }
    ck_assert_int_gt(off, 28);
    da_mkmodel_values(&cfg, b, 1, 0.1f, 0, 64, v);
    for (int i = 0; i < 64; i++) ck_assert(fabsf(v[i]) <= 0.1f && v[i] != 0.0f);
    da_spec_free(s);
}
END_TEST

/* ---- SDXL ------------------------------------------------------------------------------------- */

/* The SDXL UNet's canonical <-> sgm single-file names: 3 levels of 2 layers, DownBlock2D first (no
 * attention at level 0), no downsampler at the last level, depth 1/2/10 (mid: 10), linear
 * proj_in/out, label_emb; and the full-size counts of stabilityai/stable-diffusion-xl-base-1.0's
 * UNet (1680 tensors, 2,567,463,684 parameters). */
START_TEST(test_sdxl_names) {
    da_model_config cfg;
    ck_assert(da_config_preset("sdxl", &cfg));
    da_spec *s;
    da_error e;
    ck_assert_int_eq(da_spec_build(&cfg, &s, &e), DA_OK);
    size_t n;
    ck_assert_uint_eq(comp_params(s, DA_COMP_UNET, &n), 2567463684ull);
    ck_assert_uint_eq(n, 1680);
    ck_assert_uint_eq(comp_params(s, DA_COMP_VAE, &n), 83653863ull);
    static const char *const pairs[][2] = {
        {"add_embedding.linear_1.weight", "model.diffusion_model.label_emb.0.0.weight"},
        {"add_embedding.linear_2.bias", "model.diffusion_model.label_emb.0.2.bias"},
        {"down_blocks.0.resnets.1.conv2.weight", "model.diffusion_model.input_blocks.2.0.out_layers.3.weight"},
        {"down_blocks.0.downsamplers.0.conv.weight", "model.diffusion_model.input_blocks.3.0.op.weight"},
        {"down_blocks.1.attentions.1.transformer_blocks.1.ff.net.2.weight",
         "model.diffusion_model.input_blocks.5.1.transformer_blocks.1.ff.net.2.weight"},
        {"down_blocks.1.downsamplers.0.conv.weight", "model.diffusion_model.input_blocks.6.0.op.weight"},
        {"down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k.weight",
         "model.diffusion_model.input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight"},
        {"mid_block.attentions.0.transformer_blocks.9.attn1.to_q.weight",
         "model.diffusion_model.middle_block.1.transformer_blocks.9.attn1.to_q.weight"},
        {"up_blocks.0.attentions.2.proj_out.weight", "model.diffusion_model.output_blocks.2.1.proj_out.weight"},
        {"up_blocks.0.upsamplers.0.conv.weight", "model.diffusion_model.output_blocks.2.2.conv.weight"},
        {"up_blocks.1.upsamplers.0.conv.bias", "model.diffusion_model.output_blocks.5.2.conv.bias"},
        {"up_blocks.2.resnets.2.conv1.weight", "model.diffusion_model.output_blocks.8.0.in_layers.2.weight"},
        {"up_blocks.2.resnets.0.conv_shortcut.weight", "model.diffusion_model.output_blocks.6.0.skip_connection.weight"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const da_tensor_spec *t = da_spec_find(s, DA_COMP_UNET, pairs[i][0]);
        ck_assert_msg(t && !strcmp(t->ldm_name, pairs[i][1]), "%s -> %s", pairs[i][0], t ? t->ldm_name : "(none)");
    }
    static const char *const absent[] = {"down_blocks.0.attentions.0.norm.weight", "down_blocks.2.downsamplers.0.conv.weight",
                                         "up_blocks.2.attentions.0.norm.weight", "up_blocks.2.upsamplers.0.conv.weight",
                                         "down_blocks.1.attentions.0.transformer_blocks.2.norm1.weight",
                                         "mid_block.attentions.0.transformer_blocks.10.norm1.weight"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        ck_assert_msg(!da_spec_find(s, DA_COMP_UNET, absent[i]), "%s should not exist", absent[i]);
    /* linear projections: [C, C] in both namings; label_emb in: pooled 1280 + 6 x 256 */
    const da_tensor_spec *t = da_spec_find(s, DA_COMP_UNET, "up_blocks.0.attentions.2.proj_in.weight");
    int64_t lin[2] = {1280, 1280}, adm[2] = {1280, 2816};
    ck_assert(da_spec_shape_matches(t, DA_LAYOUT_DIFFUSERS, 2, lin) && da_spec_shape_matches(t, DA_LAYOUT_SINGLE, 2, lin));
    t = da_spec_find(s, DA_COMP_UNET, "add_embedding.linear_1.weight");
    ck_assert(da_spec_shape_matches(t, DA_LAYOUT_SINGLE, 2, adm));
    t = da_spec_find(s, DA_COMP_UNET, "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_v.weight");
    int64_t kv[2] = {1280, 2048};
    ck_assert(da_spec_shape_matches(t, DA_LAYOUT_DIFFUSERS, 2, kv));
    /* CLIP-L under conditioner.embedders.0; no DDPM buffers or EMA counters in SDXL files */
    t = da_spec_find(s, DA_COMP_TEXT_ENCODER, "text_model.final_layer_norm.weight");
    ck_assert_str_eq(t->ldm_name, "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight");
    ck_assert_ptr_null(da_spec_map_key(s, DA_LAYOUT_SINGLE, DA_COMP_COUNT, "alphas_cumprod"));
    /* extras: CLIP-L's position_ids and open_clip's logit_scale (conditioner.embedders.1.model.) */
    ck_assert_uint_eq(da_spec_count_in(s, DA_COMP_EXTRA, DA_LAYOUT_SINGLE), 2);
    ck_assert_ptr_nonnull(da_spec_map_key(s, DA_LAYOUT_SINGLE, DA_COMP_COUNT, "conditioner.embedders.1.model.logit_scale"));
    da_spec_free(s);
}
END_TEST

/* What decides SDXL: the single file's keys, the folder's unet config (text_time, linear projection,
 * per-level depth). Depth comes from the tensor names when config.json lacks
 * transformer_layers_per_block; a lone SDXL UNet (folder or file) opens too; SD 1.x is unchanged. */
START_TEST(test_sdxl_recognition) {
    char *dir = da_test_tmpdir("model");
    char *pd = mk(dir, "tiny-sdxl", DA_LAYOUT_DIFFUSERS, DA_F32, 3, NULL);
    char *ps = mk(dir, "tiny-sdxl", DA_LAYOUT_SINGLE, DA_BF16, 3, NULL);
    da_model_config want;
    ck_assert(da_config_preset("tiny-sdxl", &want));
    da_model_file *m;
    da_error e;
    const char *paths[2] = {pd, ps};
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(da_model_open(paths[k], &m, &e) == DA_OK, "%s", e.msg);
        ck_assert_int_eq(m->cfg.family, DA_FAMILY_SDXL);
        const da_unet_config *u = &m->cfg.unet;
        ck_assert_int_eq(u->n_levels, 3);
        ck_assert(!u->level_has_attn[0] && u->level_has_attn[1] && u->level_has_attn[2]);
        ck_assert(u->linear_proj);
        ck_assert_int_eq(u->transformer_depth[2], 3);
        ck_assert_int_eq(u->addition_time_embed_dim, 8);
        ck_assert_int_eq(u->addition_embed_dim, 80);
        ck_assert_int_eq(u->cross_attention_dim, 64);
        ck_assert_float_eq_tol(m->cfg.vae.scaling_factor, 0.13025f, 1e-7f);
        ck_assert(da_model_has(m, DA_COMP_TEXT_ENCODER) && da_model_has(m, DA_COMP_TEXT_ENCODER_2));
        char d[512];
        da_config_describe(&m->cfg, d, sizeof d);
        ck_assert_msg(strstr(d, "SDXL") && strstr(d, "transformer depth 1/2/3") && strstr(d, "text_time"), "%s", d);
        da_vae *va; /* the SD VAE binds from either layout of an SDXL model */
        ck_assert_msg(da_vae_load(m, &va, &e) == DA_OK, "%s", e.msg);
        da_vae_free(va);
        da_model_close(m);
    }
    /* no transformer_layers_per_block in config.json: counted from the tensor names */
    char path[1024];
    snprintf(path, sizeof path, "%s/unet/config.json", pd);
    edit_json(path, "\"transformer_layers_per_block\": [1, 2, 3],", "");
    ck_assert_msg(da_model_open(pd, &m, &e) == DA_OK, "%s", e.msg);
    ck_assert(same_config(&m->cfg, &want, DA_COMP_UNET));
    da_model_close(m);
    /* a lone SDXL UNet: its folder, and its weights file */
    snprintf(path, sizeof path, "%s/unet", pd);
    ck_assert_msg(da_model_open(path, &m, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(m->cfg.family, DA_FAMILY_SDXL);
    ck_assert(same_config(&m->cfg, &want, DA_COMP_UNET));
    ck_assert(!da_model_has(m, DA_COMP_TEXT_ENCODER_2));
    da_model_close(m);
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", pd);
    ck_assert_msg(da_model_open(path, &m, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(m->cfg.unet.addition_embed_dim, 80);
    ck_assert(m->cfg.unet.linear_proj);
    da_model_close(m);
    /* malformed text_time configurations */
    snprintf(path, sizeof path, "%s/unet/config.json", pd);
    edit_json(path, "\"text_time\"", "\"image\"");
    expect_open_error(pd, DA_ERR_UNSUPPORTED, "addition_embed_type 'image'");
    edit_json(path, "\"image\"", "\"text_time\"");
    edit_json(path, "\"projection_class_embeddings_input_dim\": 80", "\"projection_class_embeddings_input_dim\": 40");
    expect_open_error(pd, DA_ERR_FORMAT, "projection_class_embeddings_input_dim");
    edit_json(path, "\"projection_class_embeddings_input_dim\": 40", "\"projection_class_embeddings_input_dim\": 86");
    expect_open_error(pd, DA_ERR_SHAPE, "addition embedding width 86");
    edit_json(path, "\"projection_class_embeddings_input_dim\": 86", "\"projection_class_embeddings_input_dim\": 80");
    edit_json(path, "\"attention_head_dim\": [1, 1, 2]", "\"attention_head_dim\": [1, 1, 2],\n  \"transformer_layers_per_block\": [[1], [2, 2], [3, 3, 3]]");
    expect_open_error(pd, DA_ERR_UNSUPPORTED, "per-layer lists");
    /* an SDXL model_index over an SD 1.x UNet, and the other way round */
    char *p15 = mk(dir, "tiny-sd15", DA_LAYOUT_DIFFUSERS, DA_F32, 3, NULL);
    snprintf(path, sizeof path, "%s/model_index.json", p15);
    edit_json(path, "StableDiffusionPipeline", "StableDiffusionXLPipeline");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -r %s/text_encoder %s/text_encoder_2", p15, p15);
    ck_assert_int_eq(system(cmd), 0);
    /* text_encoder_2/ must say CLIPTextModelWithProjection */
    expect_open_error(p15, DA_ERR_FORMAT, "text_encoder_2 must be a CLIPTextModelWithProjection");
    snprintf(path, sizeof path, "%s/text_encoder_2/config.json", p15);
    edit_json(path, "\"CLIPTextModel\"", "\"CLIPTextModelWithProjection\"");
    expect_open_error(p15, DA_ERR_FORMAT, "without text_time conditioning");
    da_rmtree(p15);
    free(p15);
    da_rmtree(dir);
    free(dir);
    free(pd);
    free(ps);
}
END_TEST

/* da_model_open_ex with a replacement VAE: its tensors replace the model's (byte for byte, whatever
 * its naming), its config's scaling_factor wins, a file without config keeps the model's; a
 * non-VAE or a VAE of another structure is refused naming the file. */
START_TEST(test_replacement_vae) {
    char *dir = da_test_tmpdir("model");
    char *ps = mk(dir, "tiny-sdxl", DA_LAYOUT_SINGLE, DA_F16, 3, NULL);
    char *p15 = mk(dir, "tiny-sd15", DA_LAYOUT_DIFFUSERS, DA_F32, 4, NULL); /* same kl-f8 structure, scale 0.18215 */
    char *p15s = mk(dir, "tiny-sd15", DA_LAYOUT_SINGLE, DA_BF16, 5, NULL);
    char vdir[1024], vfile[1024], lone[1024], unet[1024];
    snprintf(vdir, sizeof vdir, "%s/vae", p15);
    snprintf(vfile, sizeof vfile, "%s/vae/diffusion_pytorch_model.safetensors", p15);
    snprintf(lone, sizeof lone, "%s/ldm-vae.safetensors", dir);
    snprintf(unet, sizeof unet, "%s/unet", p15);
    rewrite(p15s, lone, NULL, "first_stage_model.", NULL); /* a lone ldm VAE (vae-ft-mse style) */
    const char *srcs[3] = {vdir, vfile, lone};
    const float scale[3] = {0.18215f, 0.13025f, 0.13025f};
    da_error e;
    for (int k = 0; k < 3; k++) {
        da_model_open_opts o;
        da_model_open_opts_init(&o);
        o.vae = srcs[k];
        da_model_file *m, *v;
        ck_assert_msg(da_model_open_ex(ps, &o, &m, &e) == DA_OK, "%s", e.msg);
        ck_assert_msg(da_model_open(srcs[k], &v, &e) == DA_OK, "%s", e.msg);
        ck_assert_float_eq_tol(m->cfg.vae.scaling_factor, scale[k], 1e-7f);
        size_t n = 0;
        for (size_t i = 0; i < da_spec_count(m->spec); i++) {
            const da_tensor_spec *t = da_spec_at(m->spec, i);
            if (t->comp != DA_COMP_VAE) continue;
            const da_st_tensor *x = da_model_tensor(m, t), *y = da_model_tensor(v, da_spec_find(v->spec, DA_COMP_VAE, t->name));
            ck_assert_msg(x && y && x->nbytes == y->nbytes && x->dtype == y->dtype && !memcmp(x->data, y->data, x->nbytes),
                          "%s: %s not taken from %s", ps, t->name, srcs[k]);
            n++;
        }
        ck_assert_uint_eq(n, da_spec_count_in(m->spec, DA_COMP_VAE, DA_LAYOUT_DIFFUSERS));
        /* the VAE binds from the replacement whatever its naming (mixed layouts) and decodes like it */
        da_vae *va, *vb;
        ck_assert_msg(da_vae_load(m, &va, &e) == DA_OK, "%s", e.msg);
        ck_assert_msg(da_vae_load(v, &vb, &e) == DA_OK, "%s", e.msg);
        static float z[4 * 8 * 8], ya[3 * 64 * 64], yb[3 * 64 * 64];
        for (size_t i = 0; i < sizeof z / sizeof z[0]; i++) z[i] = sinf(0.3f * (float)i);
        da_backend *be = da_backend_cpu_new();
        da_arena ar = {0};
        ck_assert_msg(da_vae_decode(va, be, &ar, z, 1, 8, 8, ya, &e) == DA_OK, "%s", e.msg);
        ck_assert_msg(da_vae_decode(vb, be, &ar, z, 1, 8, 8, yb, &e) == DA_OK, "%s", e.msg);
        ck_assert_mem_eq(ya, yb, sizeof ya);
        da_arena_free(&ar);
        da_backend_free(be);
        da_vae_free(va);
        da_vae_free(vb);
        /* the rest stays the model's */
        ck_assert_ptr_eq(da_model_tensor(m, da_spec_find(m->spec, DA_COMP_UNET, "conv_in.weight"))->data,
                         da_st_find(m->parts[0].st, "model.diffusion_model.input_blocks.0.0.weight")->data);
        da_model_close(v);
        da_model_close(m);
    }
    da_model_open_opts o;
    da_model_open_opts_init(&o);
    da_model_file *m = (da_model_file *)1;
    o.vae = unet;
    ck_assert_int_eq(da_model_open_ex(ps, &o, &m, &e), DA_ERR_FORMAT);
    ck_assert_msg(m == NULL && strstr(e.msg, "not a VAE") && strstr(e.msg, unet), "%s", e.msg);
    char *pxl = mk(dir, "tiny-sdxl", DA_LAYOUT_DIFFUSERS, DA_F32, 6, NULL);
    char other[1024];
    snprintf(other, sizeof other, "%s/vae/config.json", pxl);
    edit_json(other, "\"block_out_channels\": [32, 64, 128, 128]", "\"block_out_channels\": [32, 64, 128, 96]");
    snprintf(other, sizeof other, "%s/vae", pxl);
    o.vae = other;
    ck_assert_int_ne(da_model_open_ex(ps, &o, &m, &e), DA_OK); /* its own weights no longer match its config */
    ck_assert_ptr_null(m);
    o.vae = "/nonexistent/vae";
    ck_assert_int_eq(da_model_open_ex(ps, &o, &m, &e), DA_ERR_NOT_FOUND);
    ck_assert_msg(strstr(e.msg, "replacement VAE"), "%s", e.msg);
    da_rmtree(dir);
    free(dir), free(ps), free(p15), free(p15s), free(pxl);
}
END_TEST

static Suite *modelfile_suite(void) {
    Suite *s = suite_create("modelfile");
    TCase *fast = da_tcase("spec", "fast", 30);
    tcase_add_test(fast, test_full_size_counts);
    tcase_add_test(fast, test_name_table_both_ways);
    tcase_add_test(fast, test_philox_known_answers);
    tcase_add_test(fast, test_rng_draws);
    tcase_add_test(fast, test_half_rounding);
    tcase_add_test(fast, test_jitter);
    tcase_add_test(fast, test_sdxl_names);
    suite_add_tcase(s, fast);
    TCase *model = da_tcase("files", "model", 60);
    tcase_add_loop_test(model, test_mkmodel_every_tiny_layout_dtype, 0, (int)(sizeof TINY / sizeof TINY[0]));
    tcase_add_test(model, test_sdxl_recognition);
    tcase_add_test(model, test_replacement_vae);
    tcase_add_test(model, test_components_and_broken_models);
    tcase_add_test(model, test_cli_mkmodel_inspect);
    suite_add_tcase(s, model);
    return s;
}

DA_TEST_MAIN(modelfile_suite)
