/* test_clip.c - the CLIP networks (engine/clip.c) against transformers 5.23 on our random-weight
 * models: tests/reference/make_clip_fixtures.py wrote the references (tests/data/clip/) from models
 * made by `diffaug mkmodel` with fixed seeds; these tests recreate the same models (mkmodel is
 * deterministic), run them through the C API and through `diffaug run`, and compare every output.
 * Also the errors (input names, shapes, ids out of range, clip-skip range, wrong component).
 *
 * Measured errors are written to stderr (build/tests/test_clip.stderr under make test).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip.h"
#include "json.h"
#include "safetensors.h"
#include "testutil.h"
#include "util.h"

#define DATA "tests/data/clip"
#define SEED 11
#define JITTER "0.1"

/* Tolerances, one row per weight dtype. The reference runs float32 arithmetic on the same weight
 * values (16-bit files are upcast by transformers; our kernels convert 16-bit weights exactly while
 * packing), so all three rows measure the same thing: f32 summation order (GEMM blocking, the
 * online softmax, LayerNorm's shifted sums) over 2 layers. max_abs is relative to max|ref| of the
 * output. Measured worst cases (stderr of this test, 2026-11-22): f32 2.1e-6, f16 1.5e-6, bf16 1.4e-6
 * of max|ref| (all on the ViT-B/32 vision last_hidden_state), cosine 1 - 6e-13. */
static const struct tol {
    const char *dtype;
    double min_cos, rel_abs;
    const char *why;
} tols[] = {
    {"f32", 0.99999, 1e-4, "f32 weights: only summation order differs from torch"},
    {"f16", 0.99999, 1e-4, "f16 weights upcast exactly on both sides; f32 activations: as f32"},
    {"bf16", 0.99999, 1e-4, "bf16 weights upcast exactly on both sides; f32 activations: as f32"},
};

static const struct tol *tol_of(const char *dtype) {
    for (size_t i = 0; i < sizeof tols / sizeof tols[0]; i++)
        if (!strcmp(tols[i].dtype, dtype)) return &tols[i];
    ck_abort_msg("no tolerance row for %s", dtype);
    return NULL;
}

/* The pixel generator of make_clip_fixtures.py (hash_pixels): uint32 hash of the flat index, top 12
 * bits -> k/1024 - 2, exact in f32. */
static float *hash_pixels(size_t n, uint32_t seed) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)i * 2654435761u + seed * 97531u;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        h *= 3266489917u;
        h ^= h >> 16;
        p[i] = (float)(h >> 20) / 1024.0f - 2.0f;
    }
    return p;
}

/* One directory per TCase, made in the parent process (unchecked fixture), so the models the
 * forked tests write are reused by later tests under the same name: mkmodel is deterministic. */
static char *tmpdir;

static void setup(void) { tmpdir = da_test_tmpdir("clip"); }
static void teardown(void) {
    da_rmtree(tmpdir);
    free(tmpdir);
}

/* mkmodel into tmpdir/<name> unless an earlier test made it; returns the path (malloc'd). A name
 * always stands for the same arguments (the callers below keep it so). */
static char *mkmodel(const char *config, const char *layout, const char *dtype, const char *name) {
    char *path = malloc(1024);
    snprintf(path, 1024, "%s/%s", tmpdir, name);
    if (access(path, F_OK) == 0) return path;
    int rc = da_test_sh(NULL, "%s mkmodel --config %s --layout %s --dtype %s --seed %d --jitter %s -o %s", da_test_cli(),
                        config, layout, dtype, SEED, JITTER, path);
    ck_assert_int_eq(rc, 0);
    return path;
}

/* Compare got with the reference tensor `name` of ref under the dtype's tolerance row. */
static void check_out(const char *label, const char *name, const float *got, const da_st_file *ref,
                      const char *dtype) {
    const da_st_tensor *r = da_test_st_need(ref, name);
    ck_assert_int_eq(r->dtype, DA_F32);
    const float *rv = r->data;
    double rmax = 0;
    for (uint64_t i = 0; i < r->numel; i++) rmax = fmax(rmax, fabs(rv[i]));
    const struct tol *t = tol_of(dtype);
    da_cmp c;
    char lab[256];
    snprintf(lab, sizeof lab, "%s %s", label, name);
    bool ok = da_compare(lab, got, rv, (size_t)r->numel, t->min_cos, t->rel_abs * rmax, &c);
    fprintf(stderr, "measured %-44s %-17s max_abs %.3e (%.2e of max|ref| %.3g) cos-1 %+.1e\n", label, name, c.max_abs,
            c.max_abs / rmax, rmax, c.cosine - 1.0);
    ck_assert_msg(ok, "%s", c.text);
}

static int32_t *ids_of(const da_st_file *in, int *B, int *L) {
    const da_st_tensor *t = da_test_st_need(in, "input_ids");
    ck_assert_int_eq(t->rank, 2);
    *B = (int)t->shape[0], *L = (int)t->shape[1];
    int32_t *ids = malloc(t->numel * sizeof *ids);
    for (uint64_t i = 0; i < t->numel; i++) {
        if (t->dtype == DA_I64) {
            int64_t v;
            memcpy(&v, (const char *)t->data + 8 * i, 8);
            ids[i] = (int32_t)v;
        } else
            memcpy(&ids[i], (const char *)t->data + 4 * i, 4);
    }
    return ids;
}

/* ---- text through the C API ------------------------------------------------------------------- */

static void text_case(const char *model_path, da_component comp, const char *fixture, const char *dtype,
                      int clip_skip, const char *label) {
    char p[512];
    snprintf(p, sizeof p, DATA "/%s.in.safetensors", fixture);
    da_st_file *in = da_test_st_open(p);
    snprintf(p, sizeof p, DATA "/%s.ref.safetensors", fixture);
    da_st_file *ref = da_test_st_open(p);
    da_model_file *m;
    da_error e;
    ck_assert_msg(da_model_open(model_path, &m, &e) == DA_OK, "%s", e.msg);
    da_clip_text *t;
    ck_assert_msg(da_clip_text_load(m, comp, &t, &e) == DA_OK, "%s", e.msg);
    int B, L;
    int32_t *ids = ids_of(in, &B, &L);
    int D = da_clip_text_cfg(t)->hidden_size, P = da_clip_text_projection_dim(t);
    float *hid = malloc(sizeof(float) * B * L * D), *pool = malloc(sizeof(float) * B * D);
    float *emb = P ? malloc(sizeof(float) * B * P) : NULL;
    da_clip_text_opts o;
    da_clip_text_opts_init(&o);
    o.clip_skip = clip_skip;
    da_clip_text_out out = {.last_hidden_state = hid, .pooler_output = pool, .text_embeds = emb};
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    ck_assert_msg(da_clip_text_forward(t, be, &a, ids, B, L, &o, &out, &e) == DA_OK, "%s", e.msg);
    char lab[256];
    snprintf(lab, sizeof lab, "%s C-API", label);
    check_out(lab, "last_hidden_state", hid, ref, dtype);
    check_out(lab, "pooler_output", pool, ref, dtype);
    if (emb) check_out(lab, "text_embeds", emb, ref, dtype);

    /* the same forward again reuses the arena block (nothing reallocated) and gives the same bits;
     * asking only for pooled outputs with clip-skip still runs the whole stack */
    void *base = a.base;
    float *pool2 = malloc(sizeof(float) * B * D);
    da_clip_text_out out2 = {.pooler_output = pool2};
    ck_assert_msg(da_clip_text_forward(t, be, &a, ids, B, L, &o, &out2, &e) == DA_OK, "%s", e.msg);
    ck_assert_ptr_eq(a.base, base);
    ck_assert_mem_eq(pool2, pool, sizeof(float) * B * D);

    /* prompts recorded in the fixture, through the tokenizer: the same ids, so the same outputs */
    const char *pj = da_st_meta(ref, "prompts");
    da_json *j = NULL;
    if (pj && L == 77 && da_json_parse(pj, strlen(pj), "prompts", &j, &e) == DA_OK && j->n == (size_t)B) {
        const char **prompts = malloc(sizeof(char *) * B);
        for (int i = 0; i < B; i++) prompts[i] = j->items[i].str;
        da_tokenizer *tok;
        char vocab[512];
        snprintf(vocab, sizeof vocab, "%s/data/clip-tokenizer", da_test_shared());
        ck_assert_msg(da_tokenizer_load(vocab, &tok, &e) == DA_OK, "%s", e.msg);
        float *hid2 = malloc(sizeof(float) * B * L * D);
        da_clip_text_out out3 = {.last_hidden_state = hid2};
        ck_assert_msg(da_clip_text_encode_prompts(t, be, &a, tok, prompts, B, &o, &out3, &e) == DA_OK, "%s", e.msg);
        ck_assert_mem_eq(hid2, hid, sizeof(float) * B * L * D);
        free(hid2);
        free(prompts);
        da_tokenizer_free(tok);
    }
    da_json_free(j);
    free(pool2);
    da_arena_free(&a);
    da_backend_free(be);
    free(ids), free(hid), free(pool), free(emb);
    da_clip_text_free(t);
    da_model_close(m);
    da_st_close(in), da_st_close(ref);
}

/* ---- through `diffaug run` ---------------------------------------------------------------------- */

static void cli_case(const char *model_path, const char *component, const char *inputs, const char *fixture,
                     const char *dtype, const char *label) {
    char p[512], outp[1024], *log = NULL;
    snprintf(outp, sizeof outp, "%s/out.safetensors", tmpdir);
    int rc = da_test_sh(&log, "%s run --model %s --component %s --inputs %s -o %s 2>&1", da_test_cli(), model_path,
                        component, inputs, outp);
    ck_assert_msg(rc == 0, "diffaug run %s: %s", component, log ? log : "");
    free(log);
    snprintf(p, sizeof p, DATA "/%s.ref.safetensors", fixture);
    da_st_file *ref = da_test_st_open(p), *out = da_test_st_open(outp);
    char lab[256];
    snprintf(lab, sizeof lab, "%s CLI", label);
    for (size_t i = 0; i < ref->n_tensors; i++) {
        const da_st_tensor *r = &ref->tensors[i], *o = da_test_st_need(out, r->name);
        ck_assert_int_eq(o->dtype, DA_F32);
        ck_assert_int_eq(o->rank, r->rank);
        for (int d = 0; d < r->rank; d++) ck_assert_int_eq(o->shape[d], r->shape[d]);
        check_out(lab, r->name, o->data, ref, dtype);
    }
    da_st_close(ref), da_st_close(out);
}

static const char *const dtypes[] = {"f32", "f16", "bf16"};

START_TEST(test_sd_text_encoder) {
    /* single-file and diffusers layouts (their tensors are byte-identical for one seed, so one layout
     * per dtype covers the name mapping); clip-skip and a short random-id input on f32 */
    static const struct {
        const char *layout, *dtype;
    } models[] = {{"single", "f32"}, {"single", "f16"}, {"diffusers", "bf16"}};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char name[64], fx[64], label[128], inp[256];
        bool single = !strcmp(models[i].layout, "single");
        snprintf(name, sizeof name, "sd-%s-%s%s", models[i].layout, models[i].dtype, single ? ".safetensors" : "");
        char *path = mkmodel("tiny-sd15", models[i].layout, models[i].dtype, name);
        snprintf(fx, sizeof fx, "sd15-text-%s", models[i].dtype);
        snprintf(label, sizeof label, "sd15 %s %s", models[i].layout, models[i].dtype);
        text_case(path, DA_COMP_TEXT_ENCODER, fx, models[i].dtype, 0, label);
        snprintf(inp, sizeof inp, DATA "/%s.in.safetensors", fx);
        cli_case(path, "text_encoder", inp, fx, models[i].dtype, label);
        if (!single) {
            /* the text_encoder/ folder alone, and its weights file alone (no config: shapes decide) */
            char comp[1024];
            snprintf(comp, sizeof comp, "%s/text_encoder", path);
            snprintf(label, sizeof label, "sd15 text_encoder/ %s", models[i].dtype);
            cli_case(comp, "text_encoder", inp, fx, models[i].dtype, label);
            snprintf(comp, sizeof comp, "%s/text_encoder/model.safetensors", path);
            snprintf(label, sizeof label, "sd15 text_encoder/model.safetensors %s", models[i].dtype);
            cli_case(comp, "text_encoder", inp, fx, models[i].dtype, label);
        }
        if (!strcmp(models[i].dtype, "f32")) {
            snprintf(label, sizeof label, "sd15 %s f32 clip_skip=1", models[i].layout);
            text_case(path, DA_COMP_TEXT_ENCODER, "sd15-text-f32-skip1", "f32", 1, label);
            cli_case(path, "text_encoder", DATA "/sd15-text-f32-skip1.in.safetensors", "sd15-text-f32-skip1", "f32",
                     label);
            snprintf(label, sizeof label, "sd15 %s f32 ids[2,16]", models[i].layout);
            text_case(path, DA_COMP_COUNT, "sd15-text-f32-short", "f32", 0, label);
            cli_case(path, "text_encoder", DATA "/sd15-text-f32-short.in.safetensors", "sd15-text-f32-short", "f32",
                     label);
        }
        free(path);
    }
}
END_TEST

/* pixel input of a vision fixture, regenerated from its metadata and written for the CLI */
static float *fixture_pixels(const da_st_file *ref, int *B, const char *write_to) {
    const char *seed = da_st_meta(ref, "pixel_seed"), *shape = da_st_meta(ref, "pixel_shape");
    ck_assert(seed && shape);
    int b, c, h, w;
    ck_assert_int_eq(sscanf(shape, "%d,%d,%d,%d", &b, &c, &h, &w), 4);
    size_t n = (size_t)b * c * h * w;
    float *px = hash_pixels(n, (uint32_t)atoi(seed));
    da_st_writer *wr = da_st_writer_new();
    da_error e;
    int64_t dims[4] = {b, c, h, w};
    ck_assert(da_st_writer_add(wr, "pixel_values", DA_F32, 4, dims, px, n * sizeof(float), false, &e) == DA_OK);
    ck_assert_msg(da_st_writer_write(wr, write_to, &e) == DA_OK, "%s", e.msg);
    da_st_writer_free(wr);
    *B = b;
    return px;
}

static void vision_case(const char *model_path, const char *fixture, const char *dtype, const char *label) {
    char p[512], inp[1024];
    snprintf(p, sizeof p, DATA "/%s.ref.safetensors", fixture);
    da_st_file *ref = da_test_st_open(p);
    snprintf(inp, sizeof inp, "%s/pixels.safetensors", tmpdir);
    int B;
    float *px = fixture_pixels(ref, &B, inp);
    da_model_file *m;
    da_error e;
    ck_assert_msg(da_model_open(model_path, &m, &e) == DA_OK, "%s", e.msg);
    da_clip_vision *v;
    ck_assert_msg(da_clip_vision_load(m, &v, &e) == DA_OK, "%s", e.msg);
    int T = da_clip_vision_tokens(v), D = da_clip_vision_cfg(v)->hidden_size, P = da_clip_vision_projection_dim(v);
    float *hid = malloc(sizeof(float) * B * T * D), *pool = malloc(sizeof(float) * B * D);
    float *emb = malloc(sizeof(float) * B * P);
    da_clip_vision_out out = {hid, pool, emb};
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    ck_assert_msg(da_clip_vision_forward(v, be, &a, px, B, &out, &e) == DA_OK, "%s", e.msg);
    char lab[256];
    snprintf(lab, sizeof lab, "%s C-API", label);
    check_out(lab, "image_embeds", emb, ref, dtype);
    check_out(lab, "last_hidden_state", hid, ref, dtype);
    check_out(lab, "pooler_output", pool, ref, dtype);
    da_arena_free(&a);
    da_backend_free(be);
    free(px), free(hid), free(pool), free(emb);
    da_clip_vision_free(v);
    da_model_close(m);
    cli_case(model_path, "clip_vision", inp, fixture, dtype, label);
    da_st_close(ref);
}

START_TEST(test_clip_models) {
    const char *cfgs[] = {"b32", "l14"};
    for (int c = 0; c < 2; c++)
        for (int d = 0; d < 3; d++) {
            char config[64], name[64], fx[64], label[64], inp[256];
            snprintf(config, sizeof config, "tiny-clip-vit-%s", cfgs[c]);
            snprintf(name, sizeof name, "clip-%s-%s", cfgs[c], dtypes[d]);
            char *path = mkmodel(config, "diffusers", dtypes[d], name);
            snprintf(fx, sizeof fx, "clip-%s-text-%s", cfgs[c], dtypes[d]);
            snprintf(label, sizeof label, "clip-%s %s text", cfgs[c], dtypes[d]);
            text_case(path, DA_COMP_CLIP, fx, dtypes[d], 0, label);
            snprintf(inp, sizeof inp, DATA "/%s.in.safetensors", fx);
            cli_case(path, "clip_text", inp, fx, dtypes[d], label);
            snprintf(fx, sizeof fx, "clip-%s-vision-%s", cfgs[c], dtypes[d]);
            snprintf(label, sizeof label, "clip-%s %s vision", cfgs[c], dtypes[d]);
            vision_case(path, fx, dtypes[d], label);
            free(path);
        }
}
END_TEST

START_TEST(test_clip_edited_config) {
    /* eos_token_id 49407 (first-eos pooling; a row without eos pools position 0) and exact GELU */
    char *path = mkmodel("tiny-clip-vit-b32", "diffusers", "f32", "clip-mod");
    ck_assert_int_eq(da_test_sh(NULL, "sed -i 's/\"eos_token_id\": 2/\"eos_token_id\": 49407/; s/\"quick_gelu\"/\"gelu\"/g' %s/config.json",
                                path),
                     0);
    da_model_file *m;
    da_error e;
    ck_assert_msg(da_model_open(path, &m, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(m->cfg.text.eos_token_id, 49407);
    ck_assert_str_eq(m->cfg.vision.hidden_act, "gelu");
    da_model_close(m);
    text_case(path, DA_COMP_CLIP, "clip-b32mod-text-f32", "f32", 0, "clip-b32 eos49407+gelu text");
    cli_case(path, "clip_text", DATA "/clip-b32mod-text-f32.in.safetensors", "clip-b32mod-text-f32", "f32",
             "clip-b32 eos49407+gelu text");
    vision_case(path, "clip-b32mod-vision-f32", "f32", "clip-b32 gelu vision");
    free(path);
}
END_TEST

START_TEST(test_eos_position) {
    da_clip_text_config c = {0};
    int32_t ids[6] = {49406, 320, 49407, 49407, 5, 49407};
    c.eos_token_id = 2; /* legacy: first position of the largest id */
    ck_assert_int_eq(da_clip_text_eos_pos(&c, ids, 6), 2);
    int32_t r[4] = {7, 900, 12, 900};
    ck_assert_int_eq(da_clip_text_eos_pos(&c, r, 4), 1);
    c.eos_token_id = 49407; /* first eos; none -> 0 */
    ck_assert_int_eq(da_clip_text_eos_pos(&c, ids, 6), 2);
    ck_assert_int_eq(da_clip_text_eos_pos(&c, r, 4), 0);
    c.eos_token_id = 5;
    ck_assert_int_eq(da_clip_text_eos_pos(&c, ids, 6), 4);
}
END_TEST

START_TEST(test_encode_images) {
    /* the convenience (CLIPImageProcessor preprocessing + forward) equals the two steps by hand */
    char *path = mkmodel("tiny-clip-vit-b32", "diffusers", "f16", "clip-b32-f16");
    da_model_file *m;
    da_error e;
    ck_assert_msg(da_model_open(path, &m, &e) == DA_OK, "%s", e.msg);
    da_clip_vision *v;
    ck_assert_msg(da_clip_vision_load(m, &v, &e) == DA_OK, "%s", e.msg);
    da_image im[2] = {{0}, {0}};
    ck_assert_msg(da_image_load("tests/data/images/png_rgb8.png", &im[0], &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(da_image_load("tests/data/images/jpg_baseline.jpg", &im[1], &e) == DA_OK, "%s", e.msg);
    const da_image *ims[2] = {&im[0], &im[1]};
    int P = da_clip_vision_projection_dim(v);
    float emb[2 * 64], emb2[2 * 64];
    ck_assert_int_le(P, 64);
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    ck_assert_msg(da_clip_vision_encode_images(v, be, &a, ims, 2, emb, &e) == DA_OK, "%s", e.msg);
    float *px = malloc(sizeof(float) * 2 * 3 * 224 * 224);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(da_image_clip_preprocess(ims[i], 224, px + (size_t)i * 3 * 224 * 224, &e) == DA_OK, "%s", e.msg);
    da_clip_vision_out out = {.image_embeds = emb2};
    ck_assert_msg(da_clip_vision_forward(v, be, &a, px, 2, &out, &e) == DA_OK, "%s", e.msg);
    ck_assert_mem_eq(emb, emb2, sizeof(float) * 2 * P);
    /* the two images differ, and the embeddings are finite */
    bool differ = false;
    for (int i = 0; i < P; i++) {
        ck_assert(isfinite(emb[i]) && isfinite(emb[P + i]));
        differ |= emb[i] != emb[P + i];
    }
    ck_assert(differ);
    free(px);
    da_image_free(&im[0]), da_image_free(&im[1]);
    da_arena_free(&a);
    da_backend_free(be);
    da_clip_vision_free(v);
    da_model_close(m);
    free(path);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------------- */

static void write_ids(const char *path, const char *name, int B, int L, int32_t fill, int32_t last) {
    int32_t *ids = malloc(sizeof(int32_t) * B * L);
    for (int i = 0; i < B * L; i++) ids[i] = fill;
    ids[B * L - 1] = last;
    int64_t dims[2] = {B, L};
    da_st_writer *w = da_st_writer_new();
    da_error e;
    ck_assert(da_st_writer_add(w, name, DA_I32, 2, dims, ids, sizeof(int32_t) * B * L, false, &e) == DA_OK);
    ck_assert_msg(da_st_writer_write(w, path, &e) == DA_OK, "%s", e.msg);
    da_st_writer_free(w);
    free(ids);
}

/* `diffaug run` must exit 1 with a message containing each of the given words */
static void cli_fails(const char *model, const char *component, const char *inputs, const char *w1, const char *w2) {
    char *log = NULL;
    int rc = da_test_sh(&log, "%s run --model %s --component %s --inputs %s -o %s/never.safetensors 2>&1",
                        da_test_cli(), model, component, inputs, tmpdir);
    ck_assert_msg(rc == 1, "expected exit 1, got %d: %s", rc, log ? log : "");
    ck_assert_msg(log && strstr(log, w1) && (!w2 || strstr(log, w2)), "message lacks '%s'/'%s': %s", w1,
                  w2 ? w2 : "", log ? log : "");
    free(log);
    char never[1024];
    snprintf(never, sizeof never, "%s/never.safetensors", tmpdir);
    ck_assert(access(never, F_OK) != 0);
}

START_TEST(test_errors) {
    char *sd = mkmodel("tiny-sd15", "single", "f32", "sd-single-f32.safetensors");
    char *clip = mkmodel("tiny-clip-vit-b32", "diffusers", "f32", "clip-b32-f32");
    char p[1024];
    /* wrong input name; a misspelt optional input */
    snprintf(p, sizeof p, "%s/ids.safetensors", tmpdir);
    write_ids(p, "ids", 1, 77, 49407, 49407);
    cli_fails(sd, "text_encoder", p, "'ids'", "input_ids");
    snprintf(p, sizeof p, "%s/ids2.safetensors", tmpdir);
    {
        int32_t ids[3] = {49406, 320, 49407}, sk = 1;
        int64_t d2[2] = {1, 3}, d1[1] = {1};
        da_st_writer *w = da_st_writer_new();
        da_error e;
        ck_assert(da_st_writer_add(w, "input_ids", DA_I32, 2, d2, ids, sizeof ids, false, &e) == DA_OK);
        ck_assert(da_st_writer_add(w, "clip_skp", DA_I32, 1, d1, &sk, 4, false, &e) == DA_OK);
        ck_assert(da_st_writer_write(w, p, &e) == DA_OK);
        da_st_writer_free(w);
    }
    cli_fails(sd, "text_encoder", p, "'clip_skp'", "clip_skip");
    /* too many tokens; ids out of the vocabulary; pixel_values of the wrong size */
    snprintf(p, sizeof p, "%s/long.safetensors", tmpdir);
    write_ids(p, "input_ids", 1, 78, 320, 49407);
    cli_fails(sd, "text_encoder", p, "input_ids", "77");
    snprintf(p, sizeof p, "%s/oov.safetensors", tmpdir);
    write_ids(p, "input_ids", 2, 77, 320, 49408);
    cli_fails(clip, "clip_text", p, "input_ids", "49408");
    snprintf(p, sizeof p, "%s/px.safetensors", tmpdir);
    {
        float px[3 * 32 * 32] = {0};
        int64_t d[4] = {1, 3, 32, 32};
        da_st_writer *w = da_st_writer_new();
        da_error e;
        ck_assert(da_st_writer_add(w, "pixel_values", DA_F32, 4, d, px, sizeof px, false, &e) == DA_OK);
        ck_assert(da_st_writer_write(w, p, &e) == DA_OK);
        da_st_writer_free(w);
    }
    cli_fails(clip, "clip_vision", p, "pixel_values", "224");
    /* components the model lacks */
    cli_fails(sd, "clip_vision", p, "vision", NULL);
    snprintf(p, sizeof p, "%s/ok.safetensors", tmpdir);
    write_ids(p, "input_ids", 1, 77, 49407, 49407);
    cli_fails(sd, "clip_text", p, "CLIPModel", NULL);

    /* the C API checks what the CLI cannot: clip-skip range, missing projection, ids, shapes */
    da_model_file *m;
    da_error e;
    ck_assert_msg(da_model_open(sd, &m, &e) == DA_OK, "%s", e.msg);
    da_clip_text *t;
    ck_assert_msg(da_clip_text_load(m, DA_COMP_COUNT, &t, &e) == DA_OK, "%s", e.msg);
    da_clip_vision *v = NULL;
    ck_assert_int_eq(da_clip_vision_load(m, &v, &e), DA_ERR_NOT_FOUND);
    ck_assert_ptr_null(v);
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    int32_t ids[4] = {49406, 320, 49407, 49407};
    float hid[4 * 32], emb[32];
    da_clip_text_opts o;
    da_clip_text_opts_init(&o);
    o.clip_skip = 2;
    da_clip_text_out out = {.last_hidden_state = hid};
    ck_assert_int_eq(da_clip_text_forward(t, be, &a, ids, 1, 4, &o, &out, &e), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "clip_skip"));
    o.clip_skip = 0;
    da_clip_text_out out_e = {.text_embeds = emb};
    ck_assert_int_eq(da_clip_text_forward(t, be, &a, ids, 1, 4, &o, &out_e, &e), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "text_projection"));
    ids[1] = -1;
    ck_assert_int_eq(da_clip_text_forward(t, be, &a, ids, 1, 4, &o, &out, &e), DA_ERR_BOUNDS);
    ck_assert_ptr_nonnull(strstr(e.msg, "input_ids[0][1] = -1"));
    ids[1] = 320;
    ck_assert_int_eq(da_clip_text_forward(t, be, &a, ids, 0, 4, &o, &out, &e), DA_ERR_SHAPE);
    ck_assert_int_eq(da_clip_text_forward(t, be, &a, ids, 1, 78, &o, &out, &e), DA_ERR_SHAPE);
    /* and after the errors the network still works */
    ck_assert_msg(da_clip_text_forward(t, be, &a, ids, 1, 4, &o, &out, &e) == DA_OK, "%s", e.msg);
    for (int i = 0; i < 4 * 32; i++) ck_assert(isfinite(hid[i]));
    da_arena_free(&a);
    da_backend_free(be);
    da_clip_text_free(t);
    da_model_close(m);
    free(sd), free(clip);
}
END_TEST

static Suite *clip_suite(void) {
    Suite *s = suite_create("clip");
    TCase *tc = da_tcase("clip-unit", "fast", 10);
    tcase_add_test(tc, test_eos_position);
    suite_add_tcase(s, tc);
    TCase *tm = da_tcase("clip-models", "model", 120);
    tcase_add_unchecked_fixture(tm, setup, teardown);
    tcase_add_test(tm, test_sd_text_encoder);
    tcase_add_test(tm, test_clip_models);
    tcase_add_test(tm, test_clip_edited_config);
    tcase_add_test(tm, test_encode_images);
    tcase_add_test(tm, test_errors);
    suite_add_tcase(s, tm);
    return s;
}

DA_TEST_MAIN(clip_suite)
