/* test_sdxl_text.c - SDXL's two text encoders (CLIP ViT-L/14 and OpenCLIP ViT-bigG/14, engine/clip.c)
 * against transformers 5.23 on tiny-sdxl random-weight models: tests/reference/make_sdxl_text_fixtures.py
 * wrote the references (tests/data/sdxl_text/) from models made by `diffaug mkmodel` with fixed seeds
 * (and checked there that diffusers' own single-file converters read our single file into the very
 * same models). These tests recreate the models, run them from every form they come in (diffusers
 * pipeline folder, component folders, single file) through the C API and `diffaug run`, and compare
 * last_hidden_state, the penultimate hidden state, pooler_output and text_embeds. Also: the packed
 * in_proj / transposed text_projection of the single file against the folder's tensors (da_xform),
 * tokenizer_2's "!" padding against transformers' ids, detection from config.json and from shapes,
 * and the errors.
 *
 * Measured errors are written to stderr (build/tests/test_sdxl_text.stderr under make test).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip.h"
#include "json.h"
#include "mkmodel.h"
#include "modelfile.h"
#include "safetensors.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

#define DATA "tests/data/sdxl_text"
#define SEED 11
#define JITTER "0.1"

/* Tolerances, as tests/test_clip.c's rows (the same arithmetic: f32 activations, 16-bit weights upcast
 * exactly on both sides, so only f32 summation order differs) and not looser: cosine >= 0.99999 and
 * max abs error <= 1e-4 of max|ref| for every output and dtype. */
static const double MIN_COS = 0.99999, REL_ABS = 1e-4;

static char *tmpdir;
static void setup(void) { tmpdir = da_test_tmpdir("sdxl_text"); }
static void teardown(void) {
    da_rmtree(tmpdir);
    free(tmpdir);
}

/* mkmodel tiny-sdxl into tmpdir/<name> unless an earlier test made it (a name always stands for the
 * same arguments). Diffusers folders get the tokenizer files. */
static char *mkmodel(const char *layout, const char *dtype, const char *name) {
    char *path = malloc(1024);
    snprintf(path, 1024, "%s/%s", tmpdir, name);
    if (access(path, F_OK) == 0) return path;
    char vocab[600] = "";
    if (!strcmp(layout, "diffusers")) snprintf(vocab, sizeof vocab, "--vocab %s/data/clip-tokenizer", da_test_shared());
    int rc = da_test_sh(NULL, "%s mkmodel --config tiny-sdxl --layout %s --dtype %s --seed %d --jitter %s %s -o %s",
                        da_test_cli(), layout, dtype, SEED, JITTER, vocab, path);
    ck_assert_int_eq(rc, 0);
    return path;
}

static void check_out(const char *label, const char *name, const float *got, const da_st_file *ref) {
    const da_st_tensor *r = da_test_st_need(ref, name);
    ck_assert_int_eq(r->dtype, DA_F32);
    const float *rv = r->data;
    double rmax = 0;
    for (uint64_t i = 0; i < r->numel; i++) rmax = fmax(rmax, fabs(rv[i]));
    da_cmp c;
    char lab[256];
    snprintf(lab, sizeof lab, "%s %s", label, name);
    bool ok = da_compare(lab, got, rv, (size_t)r->numel, MIN_COS, REL_ABS * rmax, &c);
    fprintf(stderr, "measured %-46s %-17s max_abs %.3e (%.2e of max|ref| %.3g) cos-1 %+.1e\n", label, name, c.max_abs,
            c.max_abs / rmax, rmax, c.cosine - 1.0);
    ck_assert_msg(ok, "%s", c.text);
}

static int32_t *ids_of(const da_st_file *in, int *B, int *L) {
    const da_st_tensor *t = da_test_st_need(in, "input_ids");
    ck_assert_int_eq(t->rank, 2);
    ck_assert_int_eq(t->dtype, DA_I64);
    *B = (int)t->shape[0], *L = (int)t->shape[1];
    int32_t *ids = malloc(t->numel * sizeof *ids);
    for (uint64_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        ids[i] = (int32_t)v;
    }
    return ids;
}

/* fixture "xl-te<which>-<dtype>" */
static void fixture(int which, const char *dtype, da_st_file **in, da_st_file **ref) {
    char p[256];
    snprintf(p, sizeof p, DATA "/xl-te%d-%s.in.safetensors", which, dtype);
    *in = da_test_st_open(p);
    snprintf(p, sizeof p, DATA "/xl-te%d-%s.ref.safetensors", which, dtype);
    *ref = da_test_st_open(p);
}

/* Run encoder `which` (1: CLIP-L text_encoder, 2: bigG text_encoder_2) of the model at path through
 * the C API and compare every output; with pen_only, a second forward asking only for the
 * penultimate state must give the same bits (it stops after layer N - 1). */
static void text_case(const char *path, int which, const char *dtype, const char *label) {
    da_st_file *in, *ref;
    fixture(which, dtype, &in, &ref);
    da_model_file *m;
    da_error e;
    ck_assert_msg(da_model_open(path, &m, &e) == DA_OK, "%s: %s", path, e.msg);
    da_component comp = which == 2 ? DA_COMP_TEXT_ENCODER_2 : DA_COMP_TEXT_ENCODER;
    ck_assert(da_model_has(m, comp));
    da_clip_text *t;
    ck_assert_msg(da_clip_text_load(m, comp, &t, &e) == DA_OK, "%s", e.msg);
    int B, L;
    int32_t *ids = ids_of(in, &B, &L);
    const da_clip_text_config *c = da_clip_text_cfg(t);
    int D = c->hidden_size, P = da_clip_text_projection_dim(t);
    ck_assert_int_eq(P, which == 2 ? m->cfg.text2.projection_dim : 0);
    ck_assert_str_eq(c->hidden_act, which == 2 ? "gelu" : "quick_gelu");
    float *hid = malloc(sizeof(float) * B * L * D), *pen = malloc(sizeof(float) * B * L * D);
    float *pool = malloc(sizeof(float) * B * D), *emb = P ? malloc(sizeof(float) * B * P) : NULL;
    da_clip_text_out out = {.last_hidden_state = hid, .penultimate = pen, .pooler_output = pool, .text_embeds = emb};
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    ck_assert_msg(da_clip_text_forward(t, be, &a, ids, B, L, NULL, &out, &e) == DA_OK, "%s", e.msg);
    char lab[256];
    snprintf(lab, sizeof lab, "%s te%d C-API", label, which);
    check_out(lab, "last_hidden_state", hid, ref);
    check_out(lab, "penultimate", pen, ref);
    check_out(lab, "pooler_output", pool, ref);
    if (emb) check_out(lab, "text_embeds", emb, ref);
    /* penultimate alone (what SDXL's encode_prompt asks of text_encoder) stops a layer early and
     * gives the same bits; with clip-skip 1 last_hidden_state is final_layer_norm of the same state */
    float *pen2 = malloc(sizeof(float) * B * L * D);
    da_clip_text_out o2 = {.penultimate = pen2};
    ck_assert_msg(da_clip_text_forward(t, be, &a, ids, B, L, NULL, &o2, &e) == DA_OK, "%s", e.msg);
    ck_assert_mem_eq(pen2, pen, sizeof(float) * B * L * D);
    da_clip_text_opts o;
    da_clip_text_opts_init(&o);
    o.clip_skip = 1;
    da_clip_text_out o3 = {.last_hidden_state = hid, .penultimate = pen2};
    ck_assert_msg(da_clip_text_forward(t, be, &a, ids, B, L, &o, &o3, &e) == DA_OK, "%s", e.msg);
    ck_assert_mem_eq(pen2, pen, sizeof(float) * B * L * D);
    double mean0 = 0;
    for (int i = 0; i < D; i++) mean0 += hid[i];
    ck_assert(fabs(mean0 / D) < 0.2); /* layer-normed row (jittered affine: near, not exactly, zero mean) */
    free(pen2);
    da_arena_free(&a);
    da_backend_free(be);
    free(ids), free(hid), free(pen), free(pool), free(emb);
    da_clip_text_free(t);
    da_model_close(m);
    da_st_close(in), da_st_close(ref);
}

static void cli_case(const char *path, const char *component, int which, const char *dtype, const char *label) {
    char inp[256], outp[1024], *log = NULL;
    snprintf(inp, sizeof inp, DATA "/xl-te%d-%s.in.safetensors", which, dtype);
    snprintf(outp, sizeof outp, "%s/out.safetensors", tmpdir);
    int rc = da_test_sh(&log, "%s run --model %s --component %s --inputs %s -o %s 2>&1", da_test_cli(), path, component,
                        inp, outp);
    ck_assert_msg(rc == 0, "diffaug run %s: %s", component, log ? log : "");
    free(log);
    da_st_file *in, *ref;
    fixture(which, dtype, &in, &ref);
    da_st_file *out = da_test_st_open(outp);
    char lab[256];
    snprintf(lab, sizeof lab, "%s %s CLI", label, component);
    for (size_t i = 0; i < ref->n_tensors; i++) {
        const da_st_tensor *r = &ref->tensors[i], *o = da_test_st_need(out, r->name);
        ck_assert_int_eq(o->rank, r->rank);
        for (int d = 0; d < r->rank; d++) ck_assert_int_eq(o->shape[d], r->shape[d]);
        check_out(lab, r->name, o->data, ref);
    }
    ck_assert_uint_eq(out->n_tensors, ref->n_tensors);
    da_st_close(out), da_st_close(in), da_st_close(ref);
}

static const char *const dtypes[] = {"f32", "f16", "bf16"};

START_TEST(test_component_folders) {
    /* text_encoder/ (CLIPTextModel) and text_encoder_2/ (CLIPTextModelWithProjection) on their own */
    for (int i = 0; i < 3; i++) {
        char name[64], label[64], p[1100];
        snprintf(name, sizeof name, "xl-d-%s", dtypes[i]);
        char *path = mkmodel("diffusers", dtypes[i], name);
        snprintf(label, sizeof label, "text_encoder_2/ %s", dtypes[i]);
        snprintf(p, sizeof p, "%s/text_encoder_2", path);
        text_case(p, 2, dtypes[i], label);
        cli_case(p, "text_encoder_2", 2, dtypes[i], label);
        snprintf(label, sizeof label, "text_encoder/ %s", dtypes[i]);
        snprintf(p, sizeof p, "%s/text_encoder", path);
        text_case(p, 1, dtypes[i], label);
        cli_case(p, "text_encoder", 1, dtypes[i], label);
        free(path);
    }
}
END_TEST

START_TEST(test_pipeline_and_single_file) {
    /* the whole model in both layouts: the same numbers from the pipeline folder and the single
     * file (packed q/k/v, transposed text_projection bound through da_xform) */
    for (int i = 0; i < 3; i++) {
        char name[64], label[64];
        snprintf(name, sizeof name, "xl-d-%s", dtypes[i]);
        char *d = mkmodel("diffusers", dtypes[i], name);
        snprintf(name, sizeof name, "xl-s-%s.safetensors", dtypes[i]);
        char *s = mkmodel("single", dtypes[i], name);
        for (int which = 1; which <= 2; which++) {
            snprintf(label, sizeof label, "diffusers %s", dtypes[i]);
            text_case(d, which, dtypes[i], label);
            cli_case(d, which == 2 ? "text_encoder_2" : "text_encoder", which, dtypes[i], label);
            snprintf(label, sizeof label, "single %s", dtypes[i]);
            text_case(s, which, dtypes[i], label);
            cli_case(s, which == 2 ? "text_encoder_2" : "text_encoder", which, dtypes[i], label);
        }
        free(d), free(s);
    }
}
END_TEST

/* The single file's open_clip tensors against the folder's transformers tensors, element by element:
 * in_proj_weight rows [0, D) / [D, 2D) / [2D, 3D) are q / k / v (bias likewise), text_projection
 * [D, P] is text_projection.weight [P, D] transposed; da_spec_xform_apply gives the folder's bytes
 * for every text_encoder_2 entry. */
START_TEST(test_packed_layout) {
    for (int i = 0; i < 3; i++) {
        char name[64], p[1100];
        snprintf(name, sizeof name, "xl-d-%s", dtypes[i]);
        char *d = mkmodel("diffusers", dtypes[i], name);
        snprintf(name, sizeof name, "xl-s-%s.safetensors", dtypes[i]);
        char *s = mkmodel("single", dtypes[i], name);
        snprintf(p, sizeof p, "%s/text_encoder_2/model.safetensors", d);
        da_st_file *fd = da_test_st_open(p), *fs = da_test_st_open(s);
        da_model_config cfg;
        ck_assert(da_config_preset("tiny-sdxl", &cfg));
        const int D = cfg.text2.hidden_size, P = cfg.text2.projection_dim, NL = cfg.text2.num_layers;
        const size_t es = da_dtype_size(da_test_st_need(fd, "text_projection.weight")->dtype);
        char k[256];
        static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
        for (int l = 0; l < NL; l++) {
            snprintf(k, sizeof k, "conditioner.embedders.1.model.transformer.resblocks.%d.attn.in_proj_weight", l);
            const da_st_tensor *w = da_test_st_need(fs, k);
            snprintf(k, sizeof k, "conditioner.embedders.1.model.transformer.resblocks.%d.attn.in_proj_bias", l);
            const da_st_tensor *b = da_test_st_need(fs, k);
            ck_assert(w->rank == 2 && w->shape[0] == 3 * D && w->shape[1] == D && b->rank == 1 && b->shape[0] == 3 * D);
            for (int j = 0; j < 3; j++) {
                snprintf(k, sizeof k, "text_model.encoder.layers.%d.self_attn.%s.weight", l, qkv[j]);
                const da_st_tensor *cw = da_test_st_need(fd, k);
                ck_assert_mem_eq((const char *)w->data + (size_t)j * D * D * es, cw->data, (size_t)D * D * es);
                snprintf(k, sizeof k, "text_model.encoder.layers.%d.self_attn.%s.bias", l, qkv[j]);
                const da_st_tensor *cb = da_test_st_need(fd, k);
                ck_assert_mem_eq((const char *)b->data + (size_t)j * D * es, cb->data, (size_t)D * es);
            }
        }
        const da_st_tensor *tp = da_test_st_need(fs, "conditioner.embedders.1.model.text_projection"),
                           *tw = da_test_st_need(fd, "text_projection.weight");
        ck_assert(tp->rank == 2 && tp->shape[0] == D && tp->shape[1] == P && tw->shape[0] == P && tw->shape[1] == D);
        size_t differ = 0;
        for (int r = 0; r < D; r++)
            for (int c = 0; c < P; c++) {
                ck_assert_mem_eq((const char *)tp->data + ((size_t)r * P + c) * es,
                                 (const char *)tw->data + ((size_t)c * D + r) * es, es);
                differ += memcmp((const char *)tp->data + ((size_t)r * P + c) * es,
                                 (const char *)tw->data + ((size_t)r * D + c) * es, es) != 0;
            }
        ck_assert_uint_gt(differ, (size_t)D * P / 2); /* not symmetric: the transpose is really checked */
        /* every entry through the spec's transform */
        da_spec *spec;
        da_error e;
        ck_assert(da_spec_build(&cfg, &spec, &e) == DA_OK);
        size_t n = 0, n_xf = 0;
        for (size_t t = 0; t < da_spec_count(spec); t++) {
            const da_tensor_spec *ts = da_spec_at(spec, t);
            if (ts->comp != DA_COMP_TEXT_ENCODER_2) continue;
            const da_st_tensor *st = da_test_st_need(fs, ts->ldm_name), *ct = da_test_st_need(fd, ts->name);
            void *buf = malloc(ct->nbytes);
            ck_assert_msg(da_spec_xform_apply(ts, DA_LAYOUT_SINGLE, st, buf, &e) == DA_OK, "%s", e.msg);
            ck_assert_msg(!memcmp(buf, ct->data, ct->nbytes), "%s differs from %s", ts->ldm_name, ts->name);
            free(buf);
            n++;
            n_xf += ts->xf.kind != DA_XF_NONE;
        }
        ck_assert_uint_eq(n, fd->n_tensors);
        ck_assert_uint_eq(n_xf, (size_t)6 * NL + 1);
        da_spec_free(spec);
        da_st_close(fd), da_st_close(fs);
        free(d), free(s);
    }
}
END_TEST

/* The spec's transforms on hand-made tensors, and the name table of the packed keys. */
START_TEST(test_xform_unit) {
    da_model_config cfg;
    ck_assert(da_config_preset("tiny-sdxl", &cfg));
    da_spec *s;
    da_error e;
    ck_assert(da_spec_build(&cfg, &s, &e) == DA_OK);
    const char *key = "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight";
    const da_tensor_spec *parts[4];
    ck_assert_uint_eq(da_spec_parts(s, key, parts, 4), 3);
    ck_assert_str_eq(parts[0]->name, "text_model.encoder.layers.1.self_attn.q_proj.weight");
    ck_assert_str_eq(parts[1]->name, "text_model.encoder.layers.1.self_attn.k_proj.weight");
    ck_assert_str_eq(parts[2]->name, "text_model.encoder.layers.1.self_attn.v_proj.weight");
    ck_assert_ptr_eq(da_spec_map_key(s, DA_LAYOUT_SINGLE, DA_COMP_COUNT, key), parts[0]);
    const int D = cfg.text2.hidden_size;
    ck_assert(parts[1]->xf.kind == DA_XF_ROWS && parts[1]->xf.r0 == D && parts[1]->xf.r1 == 2 * D);
    ck_assert(da_spec_xform(parts[1], DA_LAYOUT_DIFFUSERS).kind == DA_XF_NONE);
    int64_t packed[2] = {3 * D, D}, wrong[2] = {3 * D, D + 1};
    ck_assert(da_spec_shape_matches(parts[2], DA_LAYOUT_SINGLE, 2, packed));
    ck_assert(!da_spec_shape_matches(parts[2], DA_LAYOUT_SINGLE, 2, wrong));
    /* rows: f16 elements 0..3D*D-1, the k part is D*D..2D*D-1 */
    size_t n = (size_t)3 * D * D;
    uint16_t *src = malloc(n * 2), *dst = malloc(n * 2);
    for (size_t i = 0; i < n; i++) src[i] = (uint16_t)i;
    da_st_tensor st = {.name = (char *)key, .dtype = DA_F16, .rank = 2, .shape = {3 * D, D}, .numel = n, .nbytes = n * 2,
                       .data = src};
    ck_assert(da_spec_xform_apply(parts[1], DA_LAYOUT_SINGLE, &st, dst, &e) == DA_OK);
    for (size_t i = 0; i < (size_t)D * D; i++) ck_assert_uint_eq(dst[i], D * D + i);
    st.shape[1] = D + 1;
    ck_assert_int_eq(da_spec_xform_apply(parts[1], DA_LAYOUT_SINGLE, &st, dst, &e), DA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "in_proj_weight"));
    /* transpose: stored [D, P] -> canonical [P, D] */
    const da_tensor_spec *tp = da_spec_find(s, DA_COMP_TEXT_ENCODER_2, "text_projection.weight");
    ck_assert(tp && tp->xf.kind == DA_XF_TRANSPOSE);
    ck_assert_str_eq(tp->ldm_name, "conditioner.embedders.1.model.text_projection");
    const int P = cfg.text2.projection_dim;
    float *fs = malloc(sizeof(float) * D * P), *fd = malloc(sizeof(float) * D * P);
    for (int i = 0; i < D * P; i++) fs[i] = (float)i;
    da_st_tensor pt = {.name = "text_projection", .dtype = DA_F32, .rank = 2, .shape = {D, P}, .numel = (uint64_t)D * P,
                       .nbytes = (uint64_t)D * P * 4, .data = fs};
    ck_assert(da_spec_xform_apply(tp, DA_LAYOUT_SINGLE, &pt, fd, &e) == DA_OK);
    for (int r = 0; r < P; r++)
        for (int c = 0; c < D; c++) ck_assert_float_eq(fd[r * D + c], (float)(c * P + r));
    /* every SDXL entry maps both ways; only the text_encoder_2 entries carry transforms */
    size_t te1 = 0, te2 = 0;
    for (size_t i = 0; i < da_spec_count(s); i++) {
        const da_tensor_spec *t = da_spec_at(s, i);
        if (t->xf.kind != DA_XF_NONE) ck_assert_int_eq(t->comp, DA_COMP_TEXT_ENCODER_2);
        if (t->comp == DA_COMP_TEXT_ENCODER) {
            te1++;
            ck_assert(!strncmp(t->ldm_name, "conditioner.embedders.0.transformer.text_model.", 47));
        }
        if (t->comp == DA_COMP_TEXT_ENCODER_2) {
            te2++;
            ck_assert(!strncmp(t->ldm_name, "conditioner.embedders.1.model.", 30));
            const da_tensor_spec *back = da_spec_map_key(s, DA_LAYOUT_SINGLE, DA_COMP_COUNT, t->ldm_name);
            ck_assert(back && (back == t || (t->xf.kind == DA_XF_ROWS && back->xf.r0 == 0)));
        }
    }
    ck_assert_uint_eq(te1, 4 + 16 * (size_t)cfg.text.num_layers);
    ck_assert_uint_eq(te2, 5 + 16 * (size_t)cfg.text2.num_layers);
    free(src), free(dst), free(fs), free(fd);
    da_spec_free(s);
}
END_TEST

/* tokenizer/ pads with <|endoftext|>, tokenizer_2 with "!" (id 0): the ids transformers'
 * CLIPTokenizer gave on the written folders (the fixtures' input_ids) from engine/tokenizer.c. */
START_TEST(test_tokenizers) {
    char *d = mkmodel("diffusers", "f32", "xl-d-f32");
    for (int which = 1; which <= 2; which++) {
        da_st_file *in, *ref;
        fixture(which, "f32", &in, &ref);
        const char *pj = da_st_meta(ref, "prompts");
        da_json *j = NULL;
        da_error e;
        ck_assert(pj && da_json_parse(pj, strlen(pj), "prompts", &j, &e) == DA_OK);
        int B, L;
        int32_t *want = ids_of(in, &B, &L);
        ck_assert_uint_eq(j->n, (size_t)B);
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/%s", d, which == 2 ? "tokenizer_2" : "tokenizer");
        da_tokenizer *tok;
        ck_assert_msg(da_tokenizer_load(dir, &tok, &e) == DA_OK, "%s", e.msg);
        ck_assert_int_eq(da_tokenizer_pad_id(tok), which == 2 ? 0 : 49407);
        int32_t got[77];
        for (int b = 0; b < B; b++) {
            da_tok_output to;
            ck_assert_msg(da_tokenizer_encode(tok, j->items[b].str, L, true, got, NULL, &to, &e) == DA_OK, "%s", e.msg);
            for (int i = 0; i < L; i++)
                ck_assert_msg(got[i] == want[b * L + i], "tokenizer%s prompt %d id %d: %d, transformers %d",
                              which == 2 ? "_2" : "", b, i, got[i], want[b * L + i]);
        }
        /* the same tokenizer_2 from the CLIP vocabulary alone plus da_tokenizer_set_pad("!") (single
         * files carry no tokenizer) */
        char vocab[600];
        snprintf(vocab, sizeof vocab, "%s/data/clip-tokenizer", da_test_shared());
        da_tokenizer *t2;
        ck_assert_msg(da_tokenizer_load(vocab, &t2, &e) == DA_OK, "%s", e.msg);
        ck_assert_int_eq(da_tokenizer_pad_id(t2), 49407);
        if (which == 2) ck_assert_msg(da_tokenizer_set_pad(t2, "!", &e) == DA_OK, "%s", e.msg);
        for (int b = 0; b < B; b++) {
            da_tok_output to;
            ck_assert(da_tokenizer_encode(t2, j->items[b].str, L, true, got, NULL, &to, &e) == DA_OK);
            ck_assert_mem_eq(got, want + (size_t)b * L, sizeof(int32_t) * L);
        }
        /* back to <|endoftext|>: "!" is ordinary text again (256 = "!</w>") */
        ck_assert(da_tokenizer_set_pad(t2, "<|endoftext|>", &e) == DA_OK);
        da_tok_output to;
        ck_assert(da_tokenizer_encode(t2, "wow!", 8, true, got, NULL, &to, &e) == DA_OK);
        ck_assert_int_eq(got[to.length - 2], 256);
        ck_assert_int_eq(got[to.length], 49407);
        ck_assert_int_eq(da_tokenizer_set_pad(t2, "no-such-token-here", &e), DA_ERR_NOT_FOUND);
        ck_assert_ptr_nonnull(strstr(e.msg, "no-such-token-here"));
        da_tokenizer_free(t2);
        da_tokenizer_free(tok);
        free(want);
        da_json_free(j);
        da_st_close(in), da_st_close(ref);
    }
    free(d);
}
END_TEST

static void same_text_config(const da_clip_text_config *a, const da_clip_text_config *b) {
    ck_assert_int_eq(a->hidden_size, b->hidden_size);
    ck_assert_int_eq(a->num_layers, b->num_layers);
    ck_assert_int_eq(a->num_heads, b->num_heads);
    ck_assert_int_eq(a->intermediate_size, b->intermediate_size);
    ck_assert_int_eq(a->projection_dim, b->projection_dim);
    ck_assert_int_eq(a->vocab_size, b->vocab_size);
    ck_assert_int_eq(a->max_positions, b->max_positions);
    ck_assert_int_eq(a->eos_token_id, b->eos_token_id);
    ck_assert_str_eq(a->hidden_act, b->hidden_act);
}

/* text_encoder_2's configuration read from config.json and from the single file's shapes. */
START_TEST(test_detection) {
    char *d = mkmodel("diffusers", "f32", "xl-d-f32");
    char p[1100];
    snprintf(p, sizeof p, "%s/text_encoder_2", d);
    da_model_config want;
    ck_assert(da_config_preset("tiny-sdxl", &want));
    da_model_file *m;
    da_error e;
    ck_assert_msg(da_model_open(p, &m, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(m->component, DA_COMP_TEXT_ENCODER_2);
    ck_assert(m->cfg_from_json);
    same_text_config(&m->cfg.text2, &want.text2);
    ck_assert(fabsf(m->cfg.text2.layer_norm_eps - want.text2.layer_norm_eps) < 1e-12f);
    ck_assert_int_eq(m->cfg.text2.bos_token_id, 0);
    ck_assert_int_eq(m->cfg.text2.pad_token_id, 1);
    ck_assert(!da_model_has(m, DA_COMP_TEXT_ENCODER));
    da_model_close(m);
    /* a text_encoder_2 config that is not CLIPTextModelWithProjection is refused by name */
    char *log = NULL;
    char bad[1100];
    snprintf(bad, sizeof bad - 20, "%s/bad-te2", tmpdir);
    int rc = da_test_sh(&log, "rm -rf %s && cp -r %s %s && sed -i 's/CLIPTextModelWithProjection/CLIPTextModel/' "
                        "%s/text_encoder_2/config.json 2>&1", bad, d, bad, bad);
    ck_assert_int_eq(rc, 0);
    free(log);
    char p2[1200];
    snprintf(p2, sizeof p2, "%s/text_encoder_2", bad);
    /* alone it reads as a CLIPTextModel folder, whose file then holds a tensor it cannot have */
    ck_assert_int_eq(da_model_open(p2, &m, &e), DA_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "unexpected tensor 'text_projection.weight'") != NULL, "%s", e.msg);
    free(d);
}
END_TEST

START_TEST(test_single_file_detection) {
    char *s = mkmodel("single", "bf16", "xl-s-bf16.safetensors");
    da_model_config want;
    ck_assert(da_config_preset("tiny-sdxl", &want));
    da_model_file *m;
    da_error e;
    ck_assert_msg(da_model_open(s, &m, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(m->cfg.family, DA_FAMILY_SDXL);
    ck_assert(!m->cfg_from_json);
    same_text_config(&m->cfg.text2, &want.text2);
    ck_assert_int_eq(m->cfg.text.num_layers, want.text.num_layers);
    ck_assert_str_eq(m->cfg.text.hidden_act, "quick_gelu");
    da_model_close(m);
    /* a packed in_proj_weight of the wrong height is refused naming the tensor */
    char bad[1100], *log = NULL;
    snprintf(bad, sizeof bad, "%s/bad-packed.safetensors", tmpdir);
    {
        da_st_file *f = da_test_st_open(s);
        da_st_writer *w = da_st_writer_new();
        for (size_t i = 0; i < f->n_tensors; i++) {
            const da_st_tensor *t = &f->tensors[i];
            int64_t sh[4];
            for (int k = 0; k < t->rank; k++) sh[k] = t->shape[k];
            uint64_t nb = t->nbytes;
            bool cut = strstr(t->name, "resblocks.1.attn.in_proj_weight") != NULL;
            if (cut) sh[0] -= 1, nb -= (uint64_t)t->shape[1] * da_dtype_size(t->dtype);
            ck_assert(da_st_writer_add(w, t->name, t->dtype, t->rank, sh, t->data, nb, false, &e) == DA_OK);
        }
        ck_assert_msg(da_st_writer_write(w, bad, &e) == DA_OK, "%s", e.msg);
        da_st_writer_free(w);
        da_st_close(f);
    }
    ck_assert_int_eq(da_model_open(bad, &m, &e), DA_ERR_SHAPE);
    ck_assert_msg(strstr(e.msg, "resblocks.1.attn.in_proj_weight") != NULL, "%s", e.msg);
    free(log);
    free(s);
}
END_TEST

START_TEST(test_errors) {
    char *d = mkmodel("diffusers", "f32", "xl-d-f32");
    char p[1100], *log = NULL;
    /* text_encoder_2 asked of a model without one */
    snprintf(p, sizeof p, "%s/text_encoder", d);
    int rc = da_test_sh(&log, "%s run --model %s --component text_encoder_2 --inputs " DATA
                        "/xl-te2-f32.in.safetensors -o %s/o.safetensors 2>&1", da_test_cli(), p, tmpdir);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(log && strstr(log, "text_encoder_2") && strstr(log, "SDXL"), "%s", log ? log : "");
    free(log);
    da_model_file *m;
    da_error e;
    ck_assert_msg(da_model_open(p, &m, &e) == DA_OK, "%s", e.msg);
    da_clip_text *t = NULL;
    ck_assert_int_eq(da_clip_text_load(m, DA_COMP_TEXT_ENCODER_2, &t, &e), DA_ERR_NOT_FOUND);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(e.msg, "text_encoder_2"));
    da_model_close(m);
    /* a text_encoder_2 weights file missing its projection names the tensor */
    snprintf(p, sizeof p, "%s/noproj", tmpdir);
    rc = da_test_sh(&log, "rm -rf %s && mkdir -p %s && cp %s/text_encoder_2/config.json %s/", p, p, d, p);
    ck_assert_int_eq(rc, 0);
    free(log);
    {
        char src[1200], dst[1200];
        snprintf(src, sizeof src, "%s/text_encoder_2/model.safetensors", d);
        snprintf(dst, sizeof dst, "%s/model.safetensors", p);
        da_st_file *f = da_test_st_open(src);
        da_st_writer *w = da_st_writer_new();
        for (size_t i = 0; i < f->n_tensors; i++) {
            const da_st_tensor *x = &f->tensors[i];
            if (!strcmp(x->name, "text_projection.weight")) continue;
            ck_assert(da_st_writer_add(w, x->name, x->dtype, x->rank, x->shape, x->data, x->nbytes, false, &e) == DA_OK);
        }
        ck_assert(da_st_writer_write(w, dst, &e) == DA_OK);
        da_st_writer_free(w);
        da_st_close(f);
    }
    ck_assert_int_eq(da_model_open(p, &m, &e), DA_ERR_NOT_FOUND);
    ck_assert_msg(strstr(e.msg, "text_projection.weight") != NULL, "%s", e.msg);
    free(d);
}
END_TEST

static Suite *sdxl_text_suite(void) {
    Suite *s = suite_create("sdxl_text");
    TCase *tc = da_tcase("sdxl-text-unit", "fast", 10);
    tcase_add_test(tc, test_xform_unit);
    suite_add_tcase(s, tc);
    TCase *tm = da_tcase("sdxl-text-models", "model", 180);
    tcase_add_unchecked_fixture(tm, setup, teardown);
    tcase_add_test(tm, test_component_folders);
    tcase_add_test(tm, test_packed_layout);
    tcase_add_test(tm, test_tokenizers);
    tcase_add_test(tm, test_detection);
    tcase_add_test(tm, test_errors);
    tcase_add_test(tm, test_pipeline_and_single_file);
    tcase_add_test(tm, test_single_file_detection);
    suite_add_tcase(s, tm);
    return s;
}

DA_TEST_MAIN(sdxl_text_suite)
