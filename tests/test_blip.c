/* test_blip.c - the BLIP captioner (engine/blip.c) against transformers 5.23 on a random-weight
 * tiny-blip: tests/reference/make_blip_fixtures.py wrote the references (tests/data/blip/) from the
 * model `diffaug mkmodel --config tiny-blip --seed 11 --jitter 0.1` makes; these tests recreate it
 * (mkmodel is deterministic), repeat the script's config edit (sep_token_id -> the eos recorded in
 * the fixture), and compare: the vision encoder, the decoder's logits on a prefix, the ids of greedy
 * and beam search (identical), and BlipImageProcessorPil's pixel values. Also the errors.
 *
 * Measured errors are written to stderr (build/tests/test_blip.stderr under make test).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blip.h"
#include "json.h"
#include "safetensors.h"
#include "testutil.h"
#include "util.h"

#define DATA "tests/data/blip"

/* Tolerances (reason per row). Reference: float32 arithmetic in torch on the same weights; ours
 * differs only in summation order (GEMM blocking, online softmax, LayerNorm sums) over 2 + 2 layers. */
static const struct {
    const char *what;
    double min_cos, rel_abs;
    const char *why;
} tols[] = {
    {"image_embeds", 0.99999, 1e-4, "f32, summation order only; post-LN output of unit scale"},
    {"pooler_output", 0.99999, 1e-4, "the same, LayerNorm applied twice"},
    {"logits", 0.9999, 1e-4, "f32; the issue asks cosine >= 0.9999, measured far tighter"},
    {"pixel_values", 1.0 - 1e-12, 1e-6, "identical integer resize, then the same f32 normalisation"},
};

static double tol_cos(const char *w) {
    for (size_t i = 0; i < sizeof tols / sizeof tols[0]; i++)
        if (!strcmp(tols[i].what, w)) return tols[i].min_cos;
    return 1;
}
static double tol_abs(const char *w) {
    for (size_t i = 0; i < sizeof tols / sizeof tols[0]; i++)
        if (!strcmp(tols[i].what, w)) return tols[i].rel_abs;
    return 0;
}

/* hash_pixels of make_blip_fixtures.py, then image b scaled and shifted by IMAGE_AFFINE[b] */
static float *pixels(int B) {
    static const float aff[3][2] = {{1.0f, 0.0f}, {0.25f, 1.0f}, {-0.5f, -0.5f}};
    size_t per = 3 * 384 * 384, n = per * B;
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)i * 2654435761u + 5u * 97531u;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        h *= 3266489917u;
        h ^= h >> 16;
        float v = (float)(h >> 20) / 1024.0f - 2.0f;
        size_t b = i / per;
        p[i] = v * aff[b][0] + aff[b][1];
    }
    return p;
}

static char *tmpdir;
static void setup(void) { tmpdir = da_test_tmpdir("blip"); }
static void teardown(void) {
    da_rmtree(tmpdir);
    free(tmpdir);
}

/* The tiny-blip of the fixtures (with sep_token_id set to eos when eos > 0), made once per name. */
static char *model_path(int eos) {
    char *path = malloc(1024);
    snprintf(path, 1024, "%s/tiny-blip-eos%d", tmpdir, eos);
    if (access(path, F_OK) == 0) return path;
    int rc = da_test_sh(NULL, "%s mkmodel --config tiny-blip --layout diffusers --dtype f32 --seed 11 --jitter 0.1 -o %s",
                        da_test_cli(), path);
    ck_assert_int_eq(rc, 0);
    if (eos > 0) {
        rc = da_test_sh(NULL, "sed -i 's/\"sep_token_id\": 102/\"sep_token_id\": %d/' %s/config.json", eos, path);
        ck_assert_int_eq(rc, 0);
    }
    return path;
}

typedef struct loaded {
    da_model_file *m;
    da_blip *b;
    da_backend *be;
    da_arena a;
} loaded;

static void load(loaded *L, int eos) {
    char *p = model_path(eos);
    da_error e;
    memset(L, 0, sizeof *L);
    ck_assert_msg(da_model_open(p, &L->m, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(da_blip_load(L->m, NULL, &L->b, &e) == DA_OK, "%s", e.msg);
    L->be = da_backend_cpu_new();
    free(p);
}

static void unload(loaded *L) {
    da_arena_free(&L->a);
    da_backend_free(L->be);
    da_blip_free(L->b);
    da_model_close(L->m);
}

static void check(const char *label, const char *kind, const float *got, const da_st_tensor *r) {
    const float *rv = r->data;
    double rmax = 0;
    for (uint64_t i = 0; i < r->numel; i++) rmax = fmax(rmax, fabs(rv[i]));
    da_cmp c;
    bool ok = da_compare(label, got, rv, (size_t)r->numel, tol_cos(kind), tol_abs(kind) * rmax, &c);
    fprintf(stderr, "measured %-28s max_abs %.3e (%.2e of max|ref| %.3g) cos-1 %+.1e\n", label, c.max_abs,
            c.max_abs / rmax, rmax, c.cosine - 1.0);
    ck_assert_msg(ok, "%s", c.text);
}

START_TEST(test_vision) {
    loaded L;
    load(&L, 0);
    da_st_file *ref = da_test_st_open(DATA "/vision.ref.safetensors");
    int T = da_blip_image_tokens(L.b), D = da_blip_image_width(L.b);
    ck_assert_int_eq(T, 577);
    float *px = pixels(3), *emb = malloc(sizeof(float) * 3 * T * D), *pool = malloc(sizeof(float) * 3 * D);
    da_error e;
    ck_assert_msg(da_blip_vision_forward(L.b, L.be, &L.a, px, 3, emb, pool, &e) == DA_OK, "%s", e.msg);
    check("vision image_embeds", "image_embeds", emb, da_test_st_need(ref, "image_embeds"));
    check("vision pooler_output", "pooler_output", pool, da_test_st_need(ref, "pooler_output"));
    /* one image alone gives the same tokens as inside the batch */
    float *one = malloc(sizeof(float) * T * D);
    ck_assert_msg(da_blip_vision_forward(L.b, L.be, &L.a, px + 2 * 3 * 384 * 384, 1, one, NULL, &e) == DA_OK, "%s", e.msg);
    for (int i = 0; i < T * D; i++) ck_assert(fabsf(one[i] - emb[2 * T * D + i]) <= 1e-5f);
    free(px), free(emb), free(pool), free(one);
    da_st_close(ref);
    unload(&L);
}
END_TEST

START_TEST(test_decoder_logits) {
    loaded L;
    load(&L, 0);
    da_st_file *vref = da_test_st_open(DATA "/vision.ref.safetensors"), *ref = da_test_st_open(DATA "/decoder.ref.safetensors");
    const da_st_tensor *it = da_test_st_need(ref, "input_ids"), *lt = da_test_st_need(ref, "logits");
    int B = (int)it->shape[0], Lq = (int)it->shape[1], V = da_blip_cfg(L.b)->blip_text.vocab_size;
    ck_assert_int_eq(lt->shape[2], (V + 3) / 4);
    const float *emb = da_test_st_need(vref, "image_embeds")->data;
    float *logits = malloc(sizeof(float) * B * Lq * V), *sub = malloc(sizeof(float) * lt->numel);
    da_error e;
    ck_assert_msg(da_blip_decoder_forward(L.b, L.be, &L.a, it->data, B, Lq, emb, logits, &e) == DA_OK, "%s", e.msg);
    size_t k = 0;
    for (int r = 0; r < B * Lq; r++)
        for (int v = 0; v < V; v += 4) sub[k++] = logits[(size_t)r * V + v];
    ck_assert_uint_eq(k, lt->numel);
    check("decoder logits[..., ::4]", "logits", sub, lt);
    /* bad ids and shapes */
    int32_t bad[2] = {30522, 40000};
    ck_assert_int_eq(da_blip_decoder_forward(L.b, L.be, &L.a, bad, 1, 2, emb, logits, &e), DA_ERR_BOUNDS);
    ck_assert_msg(strstr(e.msg, "outside the vocabulary"), "%s", e.msg);
    ck_assert_int_eq(da_blip_decoder_forward(L.b, L.be, &L.a, bad, 1, 600, emb, logits, &e), DA_ERR_SHAPE);
    free(logits), free(sub);
    da_st_close(vref), da_st_close(ref);
    unload(&L);
}
END_TEST

/* Every generate case of the fixture, ids identical, for the batch of three images and (greedy and
 * beam) for an image alone. */
START_TEST(test_generate) {
    da_st_file *ref = da_test_st_open(DATA "/generate.ref.safetensors"), *vref = da_test_st_open(DATA "/vision.ref.safetensors");
    int eos = atoi(da_st_meta(ref, "eos"));
    ck_assert_int_gt(eos, 0);
    loaded L;
    load(&L, eos);
    ck_assert_int_eq(da_blip_cfg(L.b)->blip_text.sep_token_id, eos);
    const float *emb = da_test_st_need(vref, "image_embeds")->data;
    int T = da_blip_image_tokens(L.b), D = da_blip_image_width(L.b);
    const int32_t prefix[4] = {30522, 1037, 3861, 1997}, bos[1] = {30522};
    static const char *const cases[] = {"greedy", "greedy_prefix_rep_min", "greedy_rep", "beam3", "beam3_prefix_rep_min_lp",
                                        "beam4_early", "beam2_never_lp2"};
    int n_eos_rows = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *js = da_st_meta(ref, cases[c]);
        ck_assert_ptr_nonnull(js);
        da_json *j;
        da_error e;
        ck_assert_msg(da_json_parse(js, strlen(js), cases[c], &j, &e) == DA_OK, "%s", e.msg);
        int64_t v;
        double d;
        bool pre = false;
        da_blip_gen_params p;
        da_blip_gen_params_init(&p);
        ck_assert(da_json_get_int(j, "beams", &v)), p.num_beams = (int)v;
        ck_assert(da_json_get_int(j, "max_new", &v)), p.max_new_tokens = (int)v;
        ck_assert(da_json_get_int(j, "min_new", &v)), p.min_new_tokens = (int)v;
        ck_assert(da_json_get_num(j, "rep", &d)), p.repetition_penalty = (float)d;
        ck_assert(da_json_get_num(j, "lp", &d)), p.length_penalty = (float)d;
        ck_assert(da_json_get_int(j, "early", &v)), p.early_stopping = (int)v;
        ck_assert(da_json_get_bool(j, "prefix", &pre));
        da_json_free(j);
        const int32_t *prompt = pre ? prefix : bos;
        int np = pre ? 4 : 1;
        const da_st_tensor *rt = da_test_st_need(ref, cases[c]);
        const int32_t *rv = rt->data;
        int W = (int)rt->shape[1];
        int cap = p.max_new_tokens, n_out[3];
        int32_t *out = malloc(sizeof(int32_t) * 3 * cap);
        ck_assert_msg(da_blip_generate(L.b, L.be, emb, 3, prompt, np, &p, out, cap, n_out, &e) == DA_OK, "%s: %s",
                      cases[c], e.msg);
        for (int b = 0; b < 3; b++) {
            const int32_t *row = rv + (size_t)b * W;
            int want = 0;
            while (np + want < W && row[np + want] >= 0) want++;
            for (int i = 0; i < np; i++) ck_assert_int_eq(row[i], prompt[i]);
            char got_s[512] = "", want_s[512] = "";
            for (int i = 0; i < n_out[b]; i++) snprintf(got_s + strlen(got_s), 512 - strlen(got_s), " %d", out[b * cap + i]);
            for (int i = 0; i < want; i++) snprintf(want_s + strlen(want_s), 512 - strlen(want_s), " %d", row[np + i]);
            ck_assert_msg(!strcmp(got_s, want_s), "%s image %d:\n  got %s\n want %s", cases[c], b, got_s, want_s);
            n_eos_rows += want > 0 && row[np + want - 1] == eos;
        }
        /* a batch of one gives the same ids as its row in the batch (rows never interact) */
        int n1;
        int32_t *one = malloc(sizeof(int32_t) * cap);
        ck_assert_msg(da_blip_generate(L.b, L.be, emb + (size_t)T * D, 1, prompt, np, &p, one, cap, &n1, &e) == DA_OK,
                      "%s", e.msg);
        ck_assert_int_eq(n1, n_out[1]);
        ck_assert(!memcmp(one, out + cap, sizeof(int32_t) * n1));
        fprintf(stderr, "generate %-24s ids identical for 3 images (%d, %d, %d new tokens)\n", cases[c], n_out[0],
                n_out[1], n_out[2]);
        free(out), free(one);
    }
    ck_assert_int_ge(n_eos_rows, 4); /* the fixtures really exercise stopping on eos */
    da_st_close(ref), da_st_close(vref);
    unload(&L);
}
END_TEST

START_TEST(test_preprocess) {
    loaded L;
    load(&L, 0);
    da_image im;
    da_error e;
    ck_assert_msg(da_image_load(DATA "/cat.png", &im, &e) == DA_OK, "%s", e.msg);
    float *px = malloc(sizeof(float) * 3 * 384 * 384);
    ck_assert_msg(da_blip_preprocess(L.b, &im, px, &e) == DA_OK, "%s", e.msg);
    da_st_file *ref = da_test_st_open(DATA "/preprocess.ref.safetensors");
    const da_st_tensor *r = da_test_st_need(ref, "pixel_values");
    ck_assert_int_eq(r->shape[2], 48);
    float *sub = malloc(sizeof(float) * r->numel);
    size_t k = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 384; y += 8)
            for (int x = 0; x < 384; x += 8) sub[k++] = px[((size_t)c * 384 + y) * 384 + x];
    check("BlipImageProcessorPil", "pixel_values", sub, r);
    free(px), free(sub);
    da_image_free(&im);
    da_st_close(ref);
    unload(&L);
}
END_TEST

START_TEST(test_errors) {
    loaded L;
    load(&L, 0);
    da_error e;
    float *emb = calloc((size_t)577 * 32, sizeof(float));
    int32_t out[8], n;
    da_blip_gen_params p;
    da_blip_gen_params_init(&p);
    p.max_new_tokens = 8;
    const int32_t nobos[1] = {101};
    ck_assert_int_eq(da_blip_generate(L.b, L.be, emb, 1, nobos, 1, &p, out, 8, &n, &e), DA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(e.msg, "bos_token_id"), "%s", e.msg);
    const int32_t bos[1] = {30522};
    p.max_new_tokens = 600;
    ck_assert_int_eq(da_blip_generate(L.b, L.be, emb, 1, bos, 1, &p, out, 8, &n, &e), DA_ERR_INVALID_ARG);
    p.max_new_tokens = 8;
    p.num_beams = 0;
    ck_assert_int_eq(da_blip_generate(L.b, L.be, emb, 1, bos, 1, &p, out, 8, &n, &e), DA_ERR_INVALID_ARG);
    p.num_beams = 1;
    ck_assert_int_eq(da_blip_generate(L.b, L.be, emb, 1, bos, 1, &p, out, 4, &n, &e), DA_ERR_INVALID_ARG);
    /* a CLIP folder is not a BLIP */
    char clip[1024];
    snprintf(clip, sizeof clip, "%s/clip", tmpdir);
    ck_assert_int_eq(da_test_sh(NULL, "%s mkmodel --config tiny-clip-vit-b32 --layout diffusers -o %s", da_test_cli(), clip), 0);
    da_model_file *m;
    ck_assert_msg(da_model_open(clip, &m, &e) == DA_OK, "%s", e.msg);
    da_blip *b;
    ck_assert_int_eq(da_blip_load(m, NULL, &b, &e), DA_ERR_NOT_FOUND);
    ck_assert_msg(strstr(e.msg, "not a BLIP"), "%s", e.msg);
    da_model_close(m);
    /* a broken folder: a missing tensor and an unsupported architecture */
    char *good = model_path(0);
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/vqa", tmpdir);
    ck_assert_int_eq(da_test_sh(NULL, "rm -rf %s && cp -r %s %s && sed -i 's/BlipForConditionalGeneration/"
                                      "BlipForQuestionAnswering/' %s/config.json", bad, good, bad, bad), 0);
    ck_assert_int_eq(da_model_open(bad, &m, &e), DA_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(e.msg, "BlipForQuestionAnswering"), "%s", e.msg);
    ck_assert_int_eq(da_test_sh(NULL, "rm -rf %s && cp -r %s %s && sed -i 's/\"hidden_size\": 32,/\"hidden_size\": 48,/' "
                                      "%s/config.json", bad, good, bad, bad), 0);
    ck_assert_int_ne(da_model_open(bad, &m, &e), DA_OK);
    ck_assert_msg(strstr(e.msg, "shape") || strstr(e.msg, "configuration"), "%s", e.msg);
    /* malformed configurations: each refused with the reason */
    static const char *const edits[][2] = {
        {"s/\"tie_word_embeddings\": true,/\"tie_word_embeddings\": false,/", "tie_word_embeddings"},
        {"s/\"vocab_size\": 30524/\"vocab_size\": 30000/", "special token id"},
        {"s/\"hidden_act\": \"gelu\"/\"hidden_act\": \"relu\"/", "relu"},
        {"s/\"num_attention_heads\": 4,/\"num_attention_heads\": 3,/", "heads"},
        {"s/\"patch_size\": 16/\"patch_size\": 7/", "patch"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        ck_assert_int_eq(da_test_sh(NULL, "rm -rf %s && cp -r %s %s && sed -i '%s' %s/config.json", bad, good, bad,
                                    edits[i][0], bad), 0);
        ck_assert_int_ne(da_model_open(bad, &m, &e), DA_OK);
        ck_assert_msg(strstr(e.msg, edits[i][1]), "%s: %s", edits[i][0], e.msg);
    }
    free(good), free(emb);
    unload(&L);
}
END_TEST

/* diffaug caption end to end: a dataset with a corrupt file, greedy and beam, batch 1 vs 3 give
 * byte-identical TSVs, the bad image is reported and skipped, errors leave no file behind. */
START_TEST(test_cli_caption) {
    char model[1024], ds[1024], tsv[1024], tsv2[1024];
    snprintf(model, sizeof model, "%s/blip-vocab", tmpdir);
    snprintf(ds, sizeof ds, "%s/ds", tmpdir);
    snprintf(tsv, sizeof tsv, "%s/out/captions.tsv", tmpdir);
    snprintf(tsv2, sizeof tsv2, "%s/out/captions2.tsv", tmpdir);
    const char *cli = da_test_cli();
    ck_assert_int_eq(da_test_sh(NULL, "%s mkmodel --config tiny-blip --layout diffusers --seed 4 --vocab tests/data/blip/vocab "
                                      "-o %s", cli, model), 0);
    ck_assert_int_eq(da_test_sh(NULL, "%s mkdataset --classes 2 --per-class 3 --size 40 -o %s && cp %s %s/002.*/ && "
                                      "mkdir -p %s/out", cli, ds, "tests/data/images/bad_png_bad_crc.png", ds, tmpdir), 0);
    char *out = NULL;
    int rc = da_test_sh(&out, "OMP_WAIT_POLICY=passive %s caption --model %s --input %s -o %s --max-tokens 8 --batch 3 2>&1",
                        cli, model, ds, tsv);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, "skipping 002.Orange_stripes/bad_png_bad_crc.png"), "%s", out);
    ck_assert_msg(strstr(out, "6 captions, 1 skipped"), "%s", out);
    free(out);
    char *a = NULL, *b = NULL;
    size_t la, lb;
    da_error e;
    ck_assert_msg(da_read_file(tsv, &a, &la, &e) == DA_OK, "%s", e.msg);
    int lines = 0;
    for (size_t i = 0; i < la; i++) lines += a[i] == '\n';
    ck_assert_int_eq(lines, 6);
    ck_assert(!strncmp(a, "001.Red_circles/img_000.png\t", 28));
    ck_assert_int_eq(da_test_sh(NULL, "OMP_WAIT_POLICY=passive %s caption --model %s --input %s -o %s --max-tokens 8 --batch 1 "
                                      "2>/dev/null", cli, model, ds, tsv2), 0);
    ck_assert_msg(da_read_file(tsv2, &b, &lb, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(la == lb && !memcmp(a, b, la), "batch 1 and batch 3 differ:\n%s\n---\n%s", a, b);
    free(b);
    /* the guard backend (device-memory discipline: every host <-> backend transfer through da_op_*,
     * tests/test_backend_guard.c) computes with the CPU kernels: the same bytes */
    ck_assert_int_eq(da_test_sh(NULL, "OMP_WAIT_POLICY=passive %s caption --model %s --input %s -o %s --max-tokens 8 --batch 3 "
                                      "--backend guard 2>/dev/null", cli, model, ds, tsv2), 0);
    ck_assert_msg(da_read_file(tsv2, &b, &lb, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(la == lb && !memcmp(a, b, la), "guard and cpu backends differ:\n%s\n---\n%s", a, b);
    free(b);
    /* a prefix starts every caption; beam search runs */
    ck_assert_int_eq(da_test_sh(NULL, "OMP_WAIT_POLICY=passive %s caption --model %s --input %s -o %s --max-tokens 6 --beams 3 "
                                      "--prefix 'a picture of' 2>/dev/null", cli, model, ds, tsv2), 0);
    ck_assert_msg(da_read_file(tsv2, &b, &lb, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(strstr(b, "\ta picture of"), "%s", b);
    free(a);
    /* beam search on the guard backend too (its key/value cache reordering is backend-side copies) */
    ck_assert_int_eq(da_test_sh(NULL, "OMP_WAIT_POLICY=passive %s caption --model %s --input %s -o %s --max-tokens 6 --beams 3 "
                                      "--prefix 'a picture of' --backend guard 2>/dev/null", cli, model, ds, tsv), 0);
    ck_assert_msg(da_read_file(tsv, &a, &la, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(la == lb && !memcmp(a, b, la), "beam search: guard and cpu backends differ:\n%s\n---\n%s", a, b);
    free(a), free(b);
    /* errors: exit 1 with the reason, no output file, no temporary left */
    const char *bad[][2] = {
        {"--backend cuda", "CUDA"}, /* no GPU here: an error naming CUDA, never a silent CPU run */
        {"--backend nosuch", "nosuch"},
        {"--model /nonexistent/blip", "/nonexistent/blip"},
        {"--tokenizer /nonexistent/vocab", "/nonexistent/vocab"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *o = NULL;
        rc = da_test_sh(&o, "%s caption --model %s --input %s -o %s/out/bad.tsv %s 2>&1", cli, model, ds, tmpdir, bad[i][0]);
        ck_assert_msg(rc == 1 && strstr(o, bad[i][1]), "%s: rc %d: %s", bad[i][0], rc, o);
        free(o);
    }
    ck_assert_int_eq(da_test_sh(&out, "ls %s/out", tmpdir), 0);
    ck_assert_msg(!strstr(out, "bad") && !strstr(out, "tmp"), "%s", out);
    free(out);
    ck_assert_int_eq(da_test_sh(NULL, "%s caption --model %s --input %s 2>/dev/null", cli, model, ds), 2);
}
END_TEST

/* The whole path against transformers: BlipProcessor (PIL images, the tokenizer mkmodel wrote) ->
 * generate -> processor.decode(skip_special_tokens=True), captions.json from the fixture script,
 * equal to the TSV `diffaug caption` writes, greedy and beam search with a prefix. */
START_TEST(test_caption_text) {
    char model[1024], tsv[1024];
    snprintf(model, sizeof model, "%s/blip-vocab4", tmpdir);
    snprintf(tsv, sizeof tsv, "%s/text.tsv", tmpdir);
    const char *cli = da_test_cli();
    ck_assert_int_eq(da_test_sh(NULL, "%s mkmodel --config tiny-blip --layout diffusers --seed 4 --vocab tests/data/blip/vocab "
                                      "-o %s >/dev/null", cli, model), 0);
    char *js = NULL;
    size_t jl;
    da_error e;
    ck_assert_int_eq(da_read_file(DATA "/captions.json", &js, &jl, &e), DA_OK);
    da_json *j;
    ck_assert_msg(da_json_parse(js, jl, "captions.json", &j, &e) == DA_OK, "%s", e.msg);
    const char *modes[2][2] = {{"greedy", "--max-tokens 8"}, {"beam3_prefix", "--max-tokens 6 --beams 3 --prefix 'a picture of'"}};
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(da_test_sh(NULL, "OMP_WAIT_POLICY=passive %s caption --model %s --input " DATA "/ds -o %s %s 2>/dev/null",
                                    cli, model, tsv, modes[k][1]), 0);
        const da_json *want = da_json_get(j, modes[k][0]);
        ck_assert_ptr_nonnull(want);
        char *t = NULL;
        size_t tl;
        ck_assert_int_eq(da_read_file(tsv, &t, &tl, &e), DA_OK);
        int n = 0;
        for (char *line = t; *line; n++) {
            char *nl = strchr(line, '\n'), *tab = strchr(line, '\t');
            ck_assert(nl && tab && tab < nl);
            *nl = *tab = 0;
            const char *w = da_json_get_str(want, line);
            ck_assert_msg(w && !strcmp(w, tab + 1), "%s %s:\n  got  '%s'\n  want '%s'", modes[k][0], line, tab + 1, w ? w : "(none)");
            line = nl + 1;
        }
        ck_assert_int_eq(n, 3);
        free(t);
    }
    da_json_free(j);
    free(js);
}
END_TEST

static Suite *blip_suite(void) {
    Suite *s = suite_create("blip");
    TCase *tm = da_tcase("blip-models", "model", 240);
    tcase_add_unchecked_fixture(tm, setup, teardown);
    tcase_add_test(tm, test_vision);
    tcase_add_test(tm, test_decoder_logits);
    tcase_add_test(tm, test_generate);
    tcase_add_test(tm, test_preprocess);
    tcase_add_test(tm, test_errors);
    tcase_add_test(tm, test_cli_caption);
    tcase_add_test(tm, test_caption_text);
    suite_add_tcase(s, tm);
    return s;
}

DA_TEST_MAIN(blip_suite)
