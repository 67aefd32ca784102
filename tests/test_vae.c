/* test_vae.c - the SD kl-f8 VAE (engine/vae.c) against diffusers AutoencoderKL.
 *
 * References: the files in tests/data/vae, made by tests/reference/make_vae_fixtures.py from the
 * models `diffaug mkmodel` writes (deterministic: the same command here recreates the same weights
 * in a temporary folder), in both layouts and all three dtypes, through the C API and through
 * `diffaug run`. Error cases: sizes that are not multiples of 8, wrong channels, a missing input,
 * a model without a VAE. The slow case proves the real widths on the full-size sd15 VAE.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelfile.h"
#include "safetensors.h"
#include "testutil.h"
#include "util.h"
#include "vae.h"

#define FIX_DIR "tests/data/vae"

/* One row per weight dtype. The reference always computes in float32 on the file's weights (16-bit
 * weights upcast exactly, as our kernels do while packing), so every row compares f32 arithmetic
 * with f32 arithmetic in a different summation order; max_abs is relative to max|reference|. */
static const struct tol {
    const char *dtype;
    double min_cos, rel_abs;
    const char *why;
} TOLS[] = {
    {"f32", 0.99999, 1e-4, "f32 both sides; blocked GEMM / two-pass GroupNorm / flash softmax order differ"},
    {"f16", 0.99999, 1e-4, "f16 weights upcast exactly on both sides, f32 arithmetic: same bound as f32"},
    {"bf16", 0.99999, 1e-4, "bf16 weights upcast exactly on both sides, f32 arithmetic: same bound as f32"},
};

static const char *const LAYOUTS[] = {"single", "diffusers"};

static float *fix_get(const da_st_file *f, const char *name, int64_t *shape) {
    const da_st_tensor *t = da_st_find(f, name);
    ck_assert_msg(t != NULL, "fixture %s lacks '%s'", f->path, name);
    ck_assert_int_eq(t->rank, 4);
    for (int i = 0; i < 4; i++) shape[i] = t->shape[i];
    float *p;
    da_error err;
    ck_assert_msg(da_st_tensor_to_f32(t, &p, &err) == DA_OK, "%s", err.msg);
    return p;
}

static size_t numel4(const int64_t *s) { return (size_t)(s[0] * s[1] * s[2] * s[3]); }

static void check_close(const char *label, const float *got, const float *ref, size_t n, const struct tol *t) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(ref[i]));
    da_cmp c;
    bool ok = da_compare(label, got, ref, n, t->min_cos, t->rel_abs * m, &c);
    fprintf(stderr, "# %s [%s: %s]\n", c.text, t->dtype, t->why);
    ck_assert_msg(ok, "%s", c.text);
}

/* mkmodel the fixture's model (the command the fixture generator ran) into dir; returns the path. */
static char *make_model(const char *dir, const char *config, const char *layout, const char *dtype, int seed) {
    char *path = NULL;
    ck_assert(asprintf(&path, "%s/%s-%s-%s%s", dir, config, layout, dtype,
                       strcmp(layout, "single") ? "" : ".safetensors") > 0);
    ck_assert_int_eq(da_test_sh(NULL, "%s mkmodel --config %s --layout %s --dtype %s --seed %d --jitter 0.1 -o %s",
                                da_test_cli(), config, layout, dtype, seed, path),
                     0);
    return path;
}

static da_st_file *open_fix(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", FIX_DIR, name);
    da_st_file *f;
    da_error err;
    ck_assert_msg(da_st_open(path, &f, &err) == DA_OK, "%s", err.msg);
    return f;
}

/* Encoder case: mean and (clamped) logvar; with a noise tensor also the posterior sample. */
static void run_enc(const da_vae *v, da_backend *be, da_arena *a, const da_st_file *f, const char *c,
                    const struct tol *t, const char *tag) {
    char n[64], label[128];
    int64_t xs[4], ms[4], ls[4];
    snprintf(n, sizeof n, "%s.sample", c);
    float *x = fix_get(f, n, xs);
    snprintf(n, sizeof n, "%s.mean", c);
    float *mref = fix_get(f, n, ms);
    snprintf(n, sizeof n, "%s.logvar", c);
    float *lref = fix_get(f, n, ls);
    size_t nl = numel4(ms);
    float *mean = malloc(nl * sizeof *mean), *lv = malloc(nl * sizeof *lv);
    da_error err;
    ck_assert_msg(da_vae_encode(v, be, a, x, (int)xs[0], (int)xs[2], (int)xs[3], mean, lv, &err) == DA_OK, "%s",
                  err.msg);
    ck_assert(!a->overflow);
    snprintf(label, sizeof label, "%s %s.mean", tag, c);
    check_close(label, mean, mref, nl, t);
    snprintf(label, sizeof label, "%s %s.logvar", tag, c);
    check_close(label, lv, lref, nl, t);
    snprintf(n, sizeof n, "%s.noise", c);
    if (da_st_find(f, n)) {
        int64_t ns[4], ps[4];
        float *noise = fix_get(f, n, ns);
        snprintf(n, sizeof n, "%s.posterior", c);
        float *pref = fix_get(f, n, ps);
        ck_assert_msg(da_vae_encode_sample(v, be, a, x, (int)xs[0], (int)xs[2], (int)xs[3], noise, mean, &err) ==
                          DA_OK,
                      "%s", err.msg);
        snprintf(label, sizeof label, "%s %s.posterior", tag, c);
        check_close(label, mean, pref, nl, t);
        free(noise);
        free(pref);
    }
    free(x), free(mref), free(lref), free(mean), free(lv);
}

static void run_dec(const da_vae *v, da_backend *be, da_arena *a, const da_st_file *f, const char *c,
                    const struct tol *t, const char *tag) {
    char n[64], label[128];
    int64_t zs[4], ys[4];
    snprintf(n, sizeof n, "%s.z", c);
    float *z = fix_get(f, n, zs);
    snprintf(n, sizeof n, "%s.sample", c);
    float *yref = fix_get(f, n, ys);
    size_t ny = numel4(ys);
    float *y = malloc(ny * sizeof *y);
    da_error err;
    ck_assert_msg(da_vae_decode(v, be, a, z, (int)zs[0], (int)zs[2], (int)zs[3], y, &err) == DA_OK, "%s", err.msg);
    ck_assert(!a->overflow);
    snprintf(label, sizeof label, "%s %s.sample", tag, c);
    check_close(label, y, yref, ny, t);
    free(z), free(yref), free(y);
}

/* _i: dtype = i / 2, layout = i % 2 */
START_TEST(test_tiny_api) {
    const struct tol *t = &TOLS[_i / 2];
    const char *layout = LAYOUTS[_i % 2];
    char *dir = da_test_tmpdir("vae");
    char *path = make_model(dir, "tiny-sd15", layout, t->dtype, 11);
    char fname[64], tag[64];
    snprintf(fname, sizeof fname, "tiny-%s.safetensors", t->dtype);
    snprintf(tag, sizeof tag, "%s/%s", layout, t->dtype);
    da_st_file *f = open_fix(fname);
    da_model_file *m;
    da_vae *v;
    da_error err;
    ck_assert_msg(da_model_open(path, &m, &err) == DA_OK, "%s", err.msg);
    ck_assert_msg(da_vae_load(m, &v, &err) == DA_OK, "%s", err.msg);
    ck_assert_int_eq(da_vae_factor(v), 8);
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    run_enc(v, be, &a, f, "enc0", t, tag);
    run_enc(v, be, &a, f, "enc1", t, tag);
    run_dec(v, be, &a, f, "dec0", t, tag);
    run_dec(v, be, &a, f, "dec1", t, tag);
    /* the RGB8 path is the decoder plus diffusers' postprocess: check one pixel's arithmetic */
    int64_t zs[4], ys[4];
    float *z = fix_get(f, "dec1.z", zs), *yref = fix_get(f, "dec1.sample", ys);
    da_image im;
    ck_assert_msg(da_vae_decode_rgb8(v, be, &a, z, 1, (int)zs[2], (int)zs[3], &im, &err) == DA_OK, "%s", err.msg);
    ck_assert_int_eq(im.w, (int)ys[3]);
    ck_assert_int_eq(im.h, (int)ys[2]);
    for (int c = 0; c < 3; c++) {
        double e = fmin(fmax(yref[(size_t)c * im.w * im.h] / 2 + 0.5, 0), 1) * 255;
        ck_assert_msg(fabs(im.data[c] - e) <= 1.0, "pixel 0 channel %d: %d vs %g", c, im.data[c], e);
    }
    da_image_free(&im);
    free(z), free(yref);
    da_arena_free(&a);
    da_backend_free(be);
    da_vae_free(v);
    da_model_close(m);
    da_st_close(f);
    da_rmtree(dir);
    free(dir), free(path);
}
END_TEST

/* Write one input tensor for `diffaug run`. */
static void write_input(const char *path, const char *name, const float *x, const int64_t *s) {
    da_st_writer *w = da_st_writer_new();
    da_error err;
    ck_assert_msg(da_st_writer_add(w, name, DA_F32, 4, s, x, numel4(s) * sizeof(float), true, &err) == DA_OK, "%s",
                  err.msg);
    ck_assert_msg(da_st_writer_write(w, path, &err) == DA_OK, "%s", err.msg);
    da_st_writer_free(w);
}

static void cli_compare(const char *out, const char *name, const float *ref, size_t n, const struct tol *t,
                        const char *label) {
    da_st_file *f;
    da_error err;
    ck_assert_msg(da_st_open(out, &f, &err) == DA_OK, "%s", err.msg);
    int64_t s[4];
    float *got = fix_get(f, name, s);
    ck_assert_uint_eq(numel4(s), n);
    check_close(label, got, ref, n, t);
    free(got);
    da_st_close(f);
}

/* `diffaug run` vae_encoder / vae_decoder: f32 single file and bf16 diffusers folder */
START_TEST(test_cli_run) {
    const int dt = _i == 0 ? 0 : 2;
    const struct tol *t = &TOLS[dt];
    char *dir = da_test_tmpdir("vae-cli");
    char *model = make_model(dir, "tiny-sd15", LAYOUTS[_i], t->dtype, 11);
    char fname[64], in[512], out[512];
    snprintf(fname, sizeof fname, "tiny-%s.safetensors", t->dtype);
    da_st_file *f = open_fix(fname);
    int64_t s[4], ms[4];
    float *x = fix_get(f, "enc0.sample", s), *mref = fix_get(f, "enc0.mean", ms), *lref = fix_get(f, "enc0.logvar", ms);
    snprintf(in, sizeof in, "%s/enc-in.safetensors", dir);
    snprintf(out, sizeof out, "%s/enc-out.safetensors", dir);
    write_input(in, "sample", x, s);
    char *log = NULL;
    int rc = da_test_sh(&log, "%s run --model %s --component vae_encoder --inputs %s -o %s --threads 2 2>&1",
                        da_test_cli(), model, in, out);
    ck_assert_msg(rc == 0, "diffaug run vae_encoder: rc %d: %s", rc, log);
    free(log);
    cli_compare(out, "mean", mref, numel4(ms), t, "cli enc0.mean");
    cli_compare(out, "logvar", lref, numel4(ms), t, "cli enc0.logvar");
    free(x), free(mref), free(lref);

    float *z = fix_get(f, "dec0.z", s), *yref = fix_get(f, "dec0.sample", ms);
    snprintf(in, sizeof in, "%s/dec-in.safetensors", dir);
    snprintf(out, sizeof out, "%s/dec-out.safetensors", dir);
    write_input(in, "z", z, s);
    rc = da_test_sh(&log, "%s run --model %s --component vae_decoder --inputs %s -o %s 2>&1", da_test_cli(), model, in,
                    out);
    ck_assert_msg(rc == 0, "diffaug run vae_decoder: rc %d: %s", rc, log);
    free(log);
    cli_compare(out, "sample", yref, numel4(ms), t, "cli dec0.sample");
    free(z), free(yref);
    da_st_close(f);
    da_rmtree(dir);
    free(dir), free(model);
}
END_TEST

/* A CLI run that must fail with exit 1 and a message containing want. */
static void cli_fails(const char *dir, const char *model, const char *comp, const char *name, const int64_t *s,
                      const char *want) {
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/bad-in.safetensors", dir);
    snprintf(out, sizeof out, "%s/bad-out.safetensors", dir);
    float *x = calloc(numel4(s), sizeof *x);
    write_input(in, name, x, s);
    free(x);
    char *log = NULL;
    int rc = da_test_sh(&log, "%s run --model %s --component %s --inputs %s -o %s 2>&1", da_test_cli(), model, comp, in,
                        out);
    ck_assert_msg(rc == 1, "%s with %s [%lld,%lld,%lld,%lld]: rc %d (%s)", comp, name, (long long)s[0],
                  (long long)s[1], (long long)s[2], (long long)s[3], rc, log);
    ck_assert_msg(strstr(log, want) != NULL, "%s: expected '%s' in: %s", comp, want, log);
    ck_assert(!da_is_file(out));
    free(log);
}

START_TEST(test_errors) {
    char *dir = da_test_tmpdir("vae-err");
    char *model = make_model(dir, "tiny-sd15", "single", "f32", 11);
    cli_fails(dir, model, "vae_encoder", "sample", (int64_t[]){1, 3, 20, 24}, "multiples of 8");
    cli_fails(dir, model, "vae_encoder", "sample", (int64_t[]){1, 3, 16, 12}, "'sample' is 16x12");
    cli_fails(dir, model, "vae_encoder", "sample", (int64_t[]){1, 4, 16, 16}, "'sample' dimension 1 is 4, expected 3");
    cli_fails(dir, model, "vae_encoder", "x", (int64_t[]){1, 3, 16, 16}, "'sample' is missing");
    cli_fails(dir, model, "vae_decoder", "z", (int64_t[]){1, 3, 2, 2}, "'z' dimension 1 is 3, expected 4");
    cli_fails(dir, model, "vae_decoder", "sample", (int64_t[]){1, 4, 2, 2}, "'z' is missing");

    da_model_file *m;
    da_vae *v;
    da_error err;
    ck_assert_msg(da_model_open(model, &m, &err) == DA_OK, "%s", err.msg);
    ck_assert_msg(da_vae_load(m, &v, &err) == DA_OK, "%s", err.msg);
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    float x[3 * 16 * 20] = {0}, mean[4 * 2 * 2];
    ck_assert_int_eq(da_vae_encode(v, be, &a, x, 1, 16, 20, mean, NULL, &err), DA_ERR_SHAPE);
    ck_assert_msg(strstr(err.msg, "multiples of 8") && strstr(err.msg, "sample"), "%s", err.msg);
    ck_assert_int_eq(da_vae_encode(v, be, &a, x, 0, 16, 16, mean, NULL, &err), DA_ERR_SHAPE);
    ck_assert_int_eq(da_vae_decode(v, be, &a, x, 1, 0, 2, mean, &err), DA_ERR_SHAPE);
    ck_assert_msg(strstr(err.msg, "'z'"), "%s", err.msg);
    /* the backend is usable again after a failed call */
    ck_assert_int_eq(be->st, DA_OK);
    ck_assert_msg(da_vae_encode(v, be, &a, x, 1, 8, 8, mean, NULL, &err) == DA_OK, "%s", err.msg);
    da_image im = {12, 8, (uint8_t *)x};
    ck_assert_int_eq(da_vae_encode_image(v, be, &a, &im, mean, &err), DA_ERR_SHAPE);
    da_arena_free(&a);
    da_backend_free(be);
    da_vae_free(v);
    da_model_close(m);

    /* a model without a VAE */
    char *clip = make_model(dir, "tiny-clip-vit-b32", "diffusers", "f32", 1);
    ck_assert_msg(da_model_open(clip, &m, &err) == DA_OK, "%s", err.msg);
    ck_assert_int_eq(da_vae_load(m, &v, &err), DA_ERR_NOT_FOUND);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(err.msg, "no VAE"), "%s", err.msg);
    da_model_close(m);
    da_rmtree(dir);
    free(dir), free(model), free(clip);
}
END_TEST

/* Full-size sd15 VAE (f16 weights, f32 reference on the upcast weights): decoder 8x8 -> 64x64 and
 * encoder 64x64, proving the real widths (128/256/512/512, single-head attention over 512). */
START_TEST(test_full_size) {
    const struct tol *t = &TOLS[1];
    char *dir = da_test_tmpdir("vae-full");
    char *model = make_model(dir, "sd15", "diffusers", "f16", 5);
    char vae_dir[600];
    snprintf(vae_dir, sizeof vae_dir, "%s/vae", model);
    da_st_file *f = open_fix("sd15-f16.safetensors");
    da_model_file *m;
    da_vae *v;
    da_error err;
    ck_assert_msg(da_model_open(vae_dir, &m, &err) == DA_OK, "%s", err.msg);
    ck_assert_msg(da_vae_load(m, &v, &err) == DA_OK, "%s", err.msg);
    ck_assert_int_eq(da_vae_cfg(v)->block_out_channels[3], 512);
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    run_dec(v, be, &a, f, "dec0", t, "sd15/f16");
    run_enc(v, be, &a, f, "enc0", t, "sd15/f16");
    /* the memory plan of a 512x512 decode and encode (planning only: nothing is computed): 2 stage
     * buffers of 256 MiB + 256 MiB of block temporaries (docs/MODELS.md), inputs and outputs */
    for (int dec = 0; dec < 2; dec++) {
        da_arena p = {0};
        da_backend *pb = da_backend_cpu_new();
        da_backend_plan(pb);
        da_arena_plan(&p);
        float *in = da_arena_floats(&p, dec ? 4 * 64 * 64 : 3 * 512 * 512);
        float *o = da_arena_floats(&p, dec ? 3 * 512 * 512 : 8 * 64 * 64);
        if (dec) da_vae_decode_fwd(v, pb, &p, in, 1, 64, 64, o);
        else da_vae_encode_fwd(v, pb, &p, in, 1, 512, 512, o);
        ck_assert_int_eq(pb->st, DA_OK);
        double mib = p.peak / 1048576.0;
        fprintf(stderr, "# sd15 %s 512x512 planned arena %.1f MiB, scratch %.1f MiB\n", dec ? "decoder" : "encoder", mib,
                pb->ws_need / 1048576.0);
        ck_assert_msg(mib <= (dec ? 772 : 516), "%s arena %.1f MiB", dec ? "decoder" : "encoder", mib);
        da_arena_free(&p);
        da_backend_free(pb);
    }
    da_arena_free(&a);
    da_backend_free(be);
    da_vae_free(v);
    da_model_close(m);
    da_st_close(f);
    da_rmtree(dir);
    free(dir), free(model);
}
END_TEST

static Suite *vae_suite(void) {
    Suite *s = suite_create("vae");
    TCase *tm = da_tcase("vae", "model", 120);
    tcase_add_loop_test(tm, test_tiny_api, 0, 6);
    tcase_add_loop_test(tm, test_cli_run, 0, 2);
    tcase_add_test(tm, test_errors);
    suite_add_tcase(s, tm);
    TCase *ts = da_tcase("vae_full", "slow", 900);
    tcase_add_test(ts, test_full_size);
    suite_add_tcase(s, ts);
    return s;
}

DA_TEST_MAIN(vae_suite)
