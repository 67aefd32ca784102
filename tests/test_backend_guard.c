/* test_backend_guard.c - the networks and the pipeline as they would run on a device-memory backend,
 * proven without a GPU.
 *
 * The "guard" backend (engine/backend_guard.c) computes with the CPU kernels but keeps all of its
 * memory (activation arenas, scratch, adopted weights) PROT_NONE outside its own ops, and refuses op
 * arguments that are not its memory. So a network that runs on "guard" at all touches activations
 * and weights only through da_op_* (as CUDA needs: every host <-> backend transfer is an
 * upload / download), binds every weight through its backend, and passes no host pointer to an op.
 * Because the arithmetic is the CPU's, the outputs must be bit-identical to the "cpu" backend's:
 * compared with memcmp, no tolerance. The first cases check that the guard really faults and
 * refuses (a guard that caught nothing would make the parity cases worthless).
 *
 * Models: tiny-sd15 / tiny-ip2p / tiny-clip-vit-b32 written by da_mkmodel (f32, and the UNet once in
 * f16 and bf16 so that 16-bit weights are adopted and read through the backend too).
 */
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "backend.h"
#include "modelfile.h"
#include "netcheck.h"
#include "safetensors.h"
#include "testutil.h"
#include "unet.h"
#include "util.h"

static char *g_dir, *g_sd, *g_ip2p, *g_clip, *g_sd16, *g_sdbf, *g_sdxl, *g_blip;

static void make_models(void) {
    da_error err;
    g_dir = da_test_tmpdir("guard");
    g_sd = nc_make_model(g_dir, "sd", "tiny-sd15", DA_F32, 31, &err);
    if (!g_sd) fprintf(stderr, "# mkmodel tiny-sd15: %s\n", err.msg);
    g_ip2p = nc_make_model(g_dir, "ip2p", "tiny-ip2p", DA_F32, 32, &err);
    if (!g_ip2p) fprintf(stderr, "# mkmodel tiny-ip2p: %s\n", err.msg);
    g_clip = nc_make_model(g_dir, "clip", "tiny-clip-vit-b32", DA_F32, 33, &err);
    if (!g_clip) fprintf(stderr, "# mkmodel tiny-clip: %s\n", err.msg);
    g_blip = nc_make_model(g_dir, "blip", "tiny-blip", DA_F16, 34, &err);
    if (!g_blip) fprintf(stderr, "# mkmodel tiny-blip: %s\n", err.msg);
    g_sd16 = nc_make_model(g_dir, "sd16", "tiny-sd15", DA_F16, 34, &err);
    g_sdbf = nc_make_model(g_dir, "sdbf", "tiny-sd15", DA_BF16, 35, &err);
    g_sdxl = nc_make_model(g_dir, "sdxl", "tiny-sdxl", DA_F32, 36, &err);
    if (!g_sdxl) fprintf(stderr, "# mkmodel tiny-sdxl: %s\n", err.msg);
}

/* One thread: the guard makes two mprotect calls per op, and on a loaded machine waking OpenMP
 * workers after each one costs a scheduler slice; parity holds at any fixed thread count. */
static void one_thread(void) { omp_set_num_threads(1); }

static void remove_models(void) {
    da_rmtree(g_dir);
    free(g_dir), free(g_sd), free(g_ip2p), free(g_clip), free(g_sd16), free(g_sdbf), free(g_sdxl), free(g_blip);
}

/* Every output of `guard` must equal the same output of `cpu` bit for bit. */
static void assert_identical(const char *what, const nc_out *cpu, const nc_out *guard) {
    ck_assert_int_eq(cpu->count, guard->count);
    for (int i = 0; i < cpu->count; i++) {
        ck_assert_uint_eq(cpu->n[i], guard->n[i]);
        size_t first = cpu->n[i];
        for (size_t k = 0; k < cpu->n[i]; k++)
            if (memcmp(&cpu->v[i][k], &guard->v[i][k], sizeof(float))) {
                first = k;
                break;
            }
        ck_assert_msg(first == cpu->n[i], "%s %s: guard differs from cpu at element %zu of %zu (%.9g vs %.9g)", what,
                      cpu->name[i], first, cpu->n[i], (double)guard->v[i][first], (double)cpu->v[i][first]);
        /* and not trivially: something non-zero came out */
        double s = 0;
        for (size_t k = 0; k < cpu->n[i]; k++) s += cpu->v[i][k] * (double)cpu->v[i][k];
        ck_assert_msg(s > 0, "%s %s: all zeros", what, cpu->name[i]);
    }
}

/* ---- the guard itself ------------------------------------------------------------------------------ */

static da_backend *guard_with_arena(da_arena *a, size_t floats, float **buf) {
    da_error err;
    da_backend *be = da_backend_new("guard", &err);
    ck_assert_msg(be != NULL, "guard: %s", err.msg);
    ck_assert_str_eq(be->ops->name, "guard");
    da_arena_on_backend(a, be);
    da_arena_plan(a);
    da_arena_floats(a, floats);
    ck_assert_int_eq(da_arena_commit(a, 0, &err), DA_OK);
    *buf = da_arena_floats(a, floats);
    ck_assert_ptr_nonnull(*buf);
    return be;
}

/* Reading an activation from the host outside an op faults (the test expects SIGSEGV). */
START_TEST(test_guard_host_read_faults) {
    da_arena a = {0};
    float *x;
    da_backend *be = guard_with_arena(&a, 256, &x);
    float h[256];
    for (int i = 0; i < 256; i++) h[i] = (float)i;
    da_op_upload(be, x, h, 256); /* through the backend: fine */
    da_op_download(be, h, x, 256);
    ck_assert(be->st == DA_OK && h[255] == 255.0f);
    volatile float v = x[3]; /* direct host read: must fault here */
    (void)v;
    ck_abort_msg("reading backend memory from the host did not fault");
}
END_TEST

START_TEST(test_guard_host_write_faults) {
    da_arena a = {0};
    float *x;
    da_backend *be = guard_with_arena(&a, 64, &x);
    (void)be;
    x[0] = 1.0f; /* e.g. a network writing a timestep straight into the arena */
    ck_abort_msg("writing backend memory from the host did not fault");
}
END_TEST

/* Ops refuse host pointers where backend memory is expected, and backend memory where host memory is. */
START_TEST(test_guard_refuses_wrong_memory) {
    da_arena a = {0};
    float *x;
    da_error err;
    da_backend *be = guard_with_arena(&a, 128, &x);
    float h[128] = {0};
    da_op_add(be, x, x, h, 128); /* h is host memory */
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "add") && strstr(err.msg, "'b'") && strstr(err.msg, "not backend memory"), "%s",
                  err.msg);
    da_op_upload(be, x, x + 64, 64); /* the host side of an upload is backend memory */
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "upload") && strstr(err.msg, "host"), "%s", err.msg);
    da_op_download(be, h, h + 64, 64); /* the source of a download is host memory */
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_INVALID_ARG);
    da_op_scale(be, x, x, 2.0f, 1.0f, 128); /* and a correct op still works afterwards */
    ck_assert_int_eq(be->st, DA_OK);
    da_arena_free(&a);
    da_backend_free(be);
}
END_TEST

/* Weights bound without the backend (host views) cannot be used by a guard forward: a clear error,
 * never a fault; weights bound on one backend cannot be used by another. */
START_TEST(test_guard_weights_must_be_adopted) {
    ck_assert_ptr_nonnull(g_sd);
    da_error err;
    da_model_file *m;
    ck_assert_int_eq(da_model_open(g_sd, &m, &err), DA_OK);
    da_unet *u;
    ck_assert_int_eq(da_unet_load(m, &u, &err), DA_OK);
    da_backend *g = da_backend_new("guard", &err), *g2 = da_backend_new("guard", &err);
    da_unet_ctx *c = da_unet_ctx_new(u, g);
    da_unet_shape s = {1, 4, 8, 8, 77, da_unet_config_of(u)->cross_attention_dim};
    ck_assert_int_eq(da_unet_plan(c, &s, &err), DA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "host memory") && strstr(err.msg, "guard"), "%s", err.msg);
    da_unet_ctx_free(c);
    da_unet_free(u);
    ck_assert_int_eq(da_unet_load_on(m, g, &u, &err), DA_OK);
    c = da_unet_ctx_new(u, g2);
    ck_assert_int_eq(da_unet_plan(c, &s, &err), DA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "different"), "%s", err.msg);
    da_unet_ctx_free(c);
    c = da_unet_ctx_new(u, g);
    ck_assert_int_eq(da_unet_plan(c, &s, &err), DA_OK);
    da_unet_ctx_free(c);
    da_unet_free(u);
    da_backend_free(g2);
    da_backend_free(g);
    da_model_close(m);
}
END_TEST

START_TEST(test_backend_names) {
    da_error err;
    da_backend *be = da_backend_new("guard", &err);
    ck_assert_ptr_nonnull(be);
    da_backend_free(be);
    ck_assert_ptr_null(da_backend_new("gaurd", &err));
    ck_assert_int_eq(err.code, DA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "guard"), "the message lists the names: %s", err.msg);
}
END_TEST

/* ---- parity: guard == cpu, bit for bit ------------------------------------------------------------- */

START_TEST(test_unet_parity) {
    const char *models[3] = {g_sd, g_sd16, g_sdbf};
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_nonnull(models[i]);
        nc_out c, g;
        da_error e;
        ck_assert_msg(nc_unet(models[i], "cpu", 2, 8, 8, &c, &e) == DA_OK, "cpu: %s", e.msg);
        ck_assert_msg(nc_unet(models[i], "guard", 2, 8, 8, &g, &e) == DA_OK, "guard: %s", e.msg);
        assert_identical(i == 0 ? "unet f32" : i == 1 ? "unet f16" : "unet bf16", &c, &g);
        nc_out_free(&c), nc_out_free(&g);
    }
    /* InstructPix2Pix: 8 input channels */
    nc_out c, g;
    da_error e;
    ck_assert_msg(nc_unet(g_ip2p, "cpu", 3, 8, 16, &c, &e) == DA_OK, "cpu: %s", e.msg);
    ck_assert_msg(nc_unet(g_ip2p, "guard", 3, 8, 16, &g, &e) == DA_OK, "guard: %s", e.msg);
    assert_identical("ip2p unet", &c, &g);
    nc_out_free(&c), nc_out_free(&g);
    /* SDXL: linear projections, several transformer layers, the text_time added conditioning */
    ck_assert_ptr_nonnull(g_sdxl);
    ck_assert_msg(nc_unet(g_sdxl, "cpu", 2, 8, 8, &c, &e) == DA_OK, "cpu: %s", e.msg);
    ck_assert_msg(nc_unet(g_sdxl, "guard", 2, 8, 8, &g, &e) == DA_OK, "guard: %s", e.msg);
    assert_identical("sdxl unet", &c, &g);
    nc_out_free(&c), nc_out_free(&g);
}
END_TEST

START_TEST(test_vae_parity) {
    ck_assert_ptr_nonnull(g_sd);
    nc_out c, g;
    da_error e;
    ck_assert_msg(nc_vae(g_sd, "cpu", &c, &e) == DA_OK, "cpu: %s", e.msg);
    ck_assert_msg(nc_vae(g_sd, "guard", &g, &e) == DA_OK, "guard: %s", e.msg);
    assert_identical("vae", &c, &g);
    nc_out_free(&c), nc_out_free(&g);
}
END_TEST

START_TEST(test_clip_parity) {
    ck_assert_ptr_nonnull(g_clip);
    nc_out c, g;
    da_error e;
    ck_assert_msg(nc_clip_text(g_clip, "cpu", &c, &e) == DA_OK, "cpu: %s", e.msg);
    ck_assert_msg(nc_clip_text(g_clip, "guard", &g, &e) == DA_OK, "guard: %s", e.msg);
    assert_identical("clip text", &c, &g);
    nc_out_free(&c), nc_out_free(&g);
    ck_assert_msg(nc_clip_vision(g_clip, "cpu", &c, &e) == DA_OK, "cpu: %s", e.msg);
    ck_assert_msg(nc_clip_vision(g_clip, "guard", &g, &e) == DA_OK, "guard: %s", e.msg);
    assert_identical("clip vision", &c, &g);
    nc_out_free(&c), nc_out_free(&g);
}
END_TEST

/* BLIP: the ViT encoder and the BERT decoder with cross-attention (f16 weights adopted by the backend).
 * Generation with its key/value caches is covered end to end by tests/test_blip.c (`caption --backend
 * guard`, greedy and beam, equal TSVs). */
START_TEST(test_blip_parity) {
    ck_assert_ptr_nonnull(g_blip);
    nc_out c, g;
    da_error e;
    ck_assert_msg(nc_blip(g_blip, "cpu", &c, &e) == DA_OK, "cpu: %s", e.msg);
    ck_assert_msg(nc_blip(g_blip, "guard", &g, &e) == DA_OK, "guard: %s", e.msg);
    assert_identical("blip", &c, &g);
    nc_out_free(&c), nc_out_free(&g);
}
END_TEST

static void generate_parity(const char *model, da_gen_mode mode, da_sampler_kind sampler, const char *what) {
    ck_assert_ptr_nonnull(model);
    nc_out c, g;
    da_error e;
    ck_assert_msg(nc_generate(model, "cpu", mode, sampler, 3, &c, &e) == DA_OK, "cpu %s: %s", what, e.msg);
    ck_assert_msg(nc_generate(model, "guard", mode, sampler, 3, &g, &e) == DA_OK, "guard %s: %s", what, e.msg);
    assert_identical(what, &c, &g);
    nc_out_free(&c), nc_out_free(&g);
}

START_TEST(test_generate_txt2img_parity) { generate_parity(g_sd, DA_GEN_TXT2IMG, DA_SAMPLER_EULER_A, "txt2img"); }
END_TEST
START_TEST(test_generate_img2img_parity) { generate_parity(g_sd, DA_GEN_IMG2IMG, DA_SAMPLER_DPMPP_2M, "img2img"); }
END_TEST
START_TEST(test_generate_edit_parity) { generate_parity(g_ip2p, DA_GEN_EDIT, DA_SAMPLER_DDIM, "edit"); }
END_TEST

/* The pipeline refuses unknown backends and, here, CUDA without a GPU, before loading anything. */
START_TEST(test_sd_open_backend_errors) {
    ck_assert_ptr_nonnull(g_sd);
    da_sd_options o;
    da_sd_options_init(&o);
    o.model = g_sd;
    da_sd *sd = NULL;
    da_error err;
    o.backend = "tpu";
    ck_assert_int_eq(da_sd_open(&o, &sd, &err), DA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "tpu"), "%s", err.msg);
    da_backend *probe = da_backend_new("cuda", &err);
    o.backend = "cuda";
    if (probe) { /* a GPU machine: CUDA is served, by CUDA */
        da_backend_free(probe);
        ck_assert_int_eq(da_sd_open(&o, &sd, &err), DA_OK);
        ck_assert_str_eq(da_sd_backend(sd), "cuda");
        da_sd_close(sd);
    } else {
        char why[sizeof err.msg];
        snprintf(why, sizeof why, "%s", err.msg);
        ck_assert_int_eq(da_sd_open(&o, &sd, &err), DA_ERR_CUDA);
        ck_assert_ptr_null(sd);
        ck_assert_msg(strstr(err.msg, why) != NULL, "the reason is passed on: '%s' vs '%s'", err.msg, why);
    }
    o.backend = "auto";
    ck_assert_int_eq(da_sd_open(&o, &sd, &err), DA_OK);
    ck_assert_msg(!strcmp(da_sd_backend(sd), "cpu") || !strcmp(da_sd_backend(sd), "cuda"), "%s", da_sd_backend(sd));
    da_sd_close(sd);
    o.backend = "guard";
    ck_assert_int_eq(da_sd_open(&o, &sd, &err), DA_OK);
    ck_assert_str_eq(da_sd_backend(sd), "guard");
    da_sd_close(sd);
}
END_TEST

/* The CLI: --backend on run, generate and augment. cuda without a GPU exits 1 with the reason and
 * writes nothing; guard gives the bytes cpu gives; the backend is recorded in the outputs. */
static bool have_gpu(void) {
    da_error err;
    da_backend *be = da_backend_new("cuda", &err);
    da_backend_free(be);
    return be != NULL;
}

static int file_exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

START_TEST(test_cli_backend) {
    ck_assert_ptr_nonnull(g_sd);
    ck_assert_ptr_nonnull(g_ip2p);
    const char *cli = da_test_cli();
    char *dir = da_test_tmpdir("guard-cli"), *out = NULL;
    const bool gpu = have_gpu();
    /* diffaug run: inputs for the UNet */
    {
        float x[1 * 4 * 8 * 8], ctx[77 * 32], t = 10.0f;
        for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
        for (size_t i = 0; i < sizeof ctx / sizeof ctx[0]; i++) ctx[i] = (float)((i * 11) % 13) / 13.0f - 0.5f;
        da_model_file *m;
        da_error err;
        ck_assert_int_eq(da_model_open(g_sd, &m, &err), DA_OK);
        int64_t D = m->cfg.unet.cross_attention_dim;
        da_model_close(m);
        ck_assert_int_le(D, 32);
        int64_t xs[4] = {1, 4, 8, 8}, cs[3] = {1, 77, D}, ts[1] = {1};
        da_st_writer *w = da_st_writer_new();
        char *in = da_path_join(dir, "in.safetensors");
        ck_assert_int_eq(da_st_writer_add(w, "sample", DA_F32, 4, xs, x, sizeof x, true, &err), DA_OK);
        ck_assert_int_eq(da_st_writer_add(w, "encoder_hidden_states", DA_F32, 3, cs, ctx, 77 * D * sizeof(float), true, &err), DA_OK);
        ck_assert_int_eq(da_st_writer_add(w, "timestep", DA_F32, 1, ts, &t, sizeof t, true, &err), DA_OK);
        ck_assert_int_eq(da_st_writer_write(w, in, &err), DA_OK);
        da_st_writer_free(w);
        int rc = da_test_sh(&out, "OMP_NUM_THREADS=1 %s run --model %s --component unet --inputs %s -o %s/cuda.st --backend cuda 2>&1", cli,
                            g_sd, in, dir);
        if (!gpu) {
            ck_assert_msg(rc == 1 && strstr(out, "cuda") && strstr(out, "CUDA"), "run --backend cuda: rc %d: %s", rc, out);
            char *p = da_path_join(dir, "cuda.st");
            ck_assert_msg(!file_exists(p), "run --backend cuda wrote an output without a GPU");
            free(p);
        }
        free(out), out = NULL;
        ck_assert_int_eq(da_test_sh(NULL, "OMP_NUM_THREADS=1 %s run --model %s --component unet --inputs %s -o %s/cpu.st", cli, g_sd, in, dir), 0);
        ck_assert_int_eq(da_test_sh(NULL, "OMP_NUM_THREADS=1 %s run --model %s --component unet --inputs %s -o %s/guard.st --backend guard",
                                    cli, g_sd, in, dir), 0);
        da_st_file *a, *b;
        char *pa = da_path_join(dir, "cpu.st"), *pb = da_path_join(dir, "guard.st");
        ck_assert_int_eq(da_st_open(pa, &a, &err), DA_OK);
        ck_assert_int_eq(da_st_open(pb, &b, &err), DA_OK);
        const da_st_tensor *ya = da_st_find(a, "sample");
        ck_assert_ptr_nonnull(ya);
        const da_st_tensor *yb = da_st_find(b, ya->name);
        ck_assert_ptr_nonnull(yb);
        ck_assert_uint_eq(ya->nbytes, yb->nbytes);
        ck_assert_msg(!memcmp(ya->data, yb->data, ya->nbytes), "run --backend guard differs from cpu");
        ck_assert_str_eq(da_st_meta(a, "backend"), "cpu");
        ck_assert_str_eq(da_st_meta(b, "backend"), "guard");
        da_st_close(a), da_st_close(b);
        free(pa), free(pb), free(in);
    }
    /* diffaug generate */
    {
        int rc = da_test_sh(&out, "%s generate --model %s --prompt fox --steps 2 --width 64 --height 64 -q -o %s/g.png "
                                  "--backend cuda 2>&1", cli, g_sd, dir);
        if (!gpu) {
            ck_assert_msg(rc == 1 && strstr(out, "CUDA"), "generate --backend cuda: rc %d: %s", rc, out);
            char *p = da_path_join(dir, "g.png");
            ck_assert_msg(!file_exists(p), "generate --backend cuda wrote an image without a GPU");
            free(p);
        }
        free(out), out = NULL;
        rc = da_test_sh(&out, "%s generate --model %s --prompt fox --steps 2 --width 64 --height 64 -q -o %s/g.png "
                              "--backend tpu 2>&1", cli, g_sd, dir);
        ck_assert_msg(rc == 1 && strstr(out, "unknown backend 'tpu'"), "rc %d: %s", rc, out);
        free(out), out = NULL;
        ck_assert_int_eq(da_test_sh(NULL, "OMP_NUM_THREADS=1 %s generate --model %s --prompt fox --steps 2 --width 64 --height 64 -q "
                                          "-o %s/c.png --backend cpu", cli, g_sd, dir), 0);
        ck_assert_int_eq(da_test_sh(NULL, "OMP_NUM_THREADS=1 %s generate --model %s --prompt fox --steps 2 --width 64 --height 64 -q "
                                          "-o %s/gd.png --backend guard", cli, g_sd, dir), 0);
        ck_assert_int_eq(da_test_sh(NULL, "cmp -s %s/c.png %s/gd.png", dir, dir), 0);
    }
    /* diffaug augment: DiffuseMix on a two-image dataset */
    {
        ck_assert_int_eq(da_test_sh(NULL, "%s mkdataset --classes 2 --per-class 1 --size 64 --seed 3 -o %s/ds >/dev/null",
                                    cli, dir), 0);
        int rc = da_test_sh(&out, "%s augment -q --recipe diffusemix --model %s --input %s/ds --output %s/aug-cuda "
                                  "--prompts snowy --size 64 --steps 2 --backend cuda 2>&1", cli, g_ip2p, dir, dir);
        if (!gpu) {
            ck_assert_msg(rc == 1 && strstr(out, "CUDA"), "augment --backend cuda: rc %d: %s", rc, out);
            char *p = da_path_join(dir, "aug-cuda/manifest.jsonl");
            ck_assert_msg(!file_exists(p), "augment --backend cuda started without a GPU");
            free(p);
        }
        free(out), out = NULL;
        ck_assert_int_eq(da_test_sh(NULL, "OMP_NUM_THREADS=1 %s augment -q --recipe diffusemix --model %s --input %s/ds --output %s/aug "
                                          "--prompts snowy --size 64 --steps 2 --backend guard", cli, g_ip2p, dir, dir), 0);
        ck_assert_int_eq(da_test_sh(NULL, "grep -q '\"backend\":\"guard\"' %s/aug/manifest.jsonl", dir), 0);
        ck_assert_int_eq(da_test_sh(NULL, "grep -q '\"backend\": \"guard\"' %s/aug/summary.json", dir), 0);
    }
    da_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *guard_suite(void) {
    Suite *s = suite_create("backend_guard");
    TCase *tf = da_tcase("guard", "fast", 60);
    tcase_add_test_raise_signal(tf, test_guard_host_read_faults, SIGSEGV);
    tcase_add_test_raise_signal(tf, test_guard_host_write_faults, SIGSEGV);
    tcase_add_test(tf, test_guard_refuses_wrong_memory);
    tcase_add_test(tf, test_backend_names);
    suite_add_tcase(s, tf);
    TCase *tm = da_tcase("guard-networks", "model", 600);
    tcase_add_unchecked_fixture(tm, make_models, remove_models);
    tcase_add_checked_fixture(tm, one_thread, NULL);
    tcase_add_test(tm, test_guard_weights_must_be_adopted);
    tcase_add_test(tm, test_unet_parity);
    tcase_add_test(tm, test_vae_parity);
    tcase_add_test(tm, test_clip_parity);
    tcase_add_test(tm, test_blip_parity);
    tcase_add_test(tm, test_generate_txt2img_parity);
    tcase_add_test(tm, test_generate_img2img_parity);
    tcase_add_test(tm, test_generate_edit_parity);
    tcase_add_test(tm, test_sd_open_backend_errors);
    tcase_add_test(tm, test_cli_backend);
    suite_add_tcase(s, tm);
    return s;
}

DA_TEST_MAIN(guard_suite)
