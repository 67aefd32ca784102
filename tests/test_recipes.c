/* test_recipes.c - `diffaug augment` end to end on tiny random-weight models (mkmodel tiny-ip2p,
 * tiny-sd15, tiny-clip-vit-b32) and a synthetic dataset (mkdataset): each recipe's outputs, counts
 * and manifest; DiffuseMix's hybrid and blend recomputed from its intermediates with the mix.h
 * oracle-tested functions; byte-identical outputs across batch sizes, thread counts and shard
 * counts; kill -9 and resume; every bad input of the issue; a write error (RLIMIT_FSIZE). Plus the
 * recipe formulas (SGID guidance, DiffCoRe-Mix budget, templates) as fast unit tests.
 *
 * The CLI runs with OMP_WAIT_POLICY=passive: on a loaded 2-core machine libgomp's spinning
 * barriers made a tiny generation 10x slower (4.3 s vs 0.36 s measured). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "augment/augment.h"
#include "augment/dataset.h"
#include "augment/manifest.h"
#include "augment/mix.h"
#include "image.h"
#include "testutil.h"
#include "util.h"

/* ---- fast: formulas ------------------------------------------------------------------------------ */

START_TEST(test_formulas) {
    /* SGID: w = clamp(3 + 9 (s - 0.2)/0.15, 3, 12) */
    ck_assert(fabs(da_sgid_guidance(0.20, 3, 12, 0.2, 0.35) - 3.0) < 1e-12);
    ck_assert(fabs(da_sgid_guidance(0.35, 3, 12, 0.2, 0.35) - 12.0) < 1e-12);
    ck_assert(fabs(da_sgid_guidance(0.275, 3, 12, 0.2, 0.35) - 7.5) < 1e-12);
    ck_assert(da_sgid_guidance(-0.5, 3, 12, 0.2, 0.35) == 3.0);
    ck_assert(da_sgid_guidance(0.9, 3, 12, 0.2, 0.35) == 12.0);
    ck_assert(da_sgid_guidance(NAN, 3, 12, 0.2, 0.35) == 3.0);
    /* DiffCoRe-Mix: floor(0.3 n) */
    ck_assert_uint_eq(da_dcm_attempts(0.3, 10), 3);
    ck_assert_uint_eq(da_dcm_attempts(0.3, 4), 1);
    ck_assert_uint_eq(da_dcm_attempts(0.3, 3), 0);
    ck_assert_uint_eq(da_dcm_attempts(0.3, 60), 18);
    ck_assert_uint_eq(da_dcm_attempts(1.0, 7), 7);
    ck_assert_uint_eq(da_dcm_attempts(0.3, 0), 0);
    /* templates */
    char *t = da_template_fill("A {label}, a {noun}, in the garden", "Black footed Albatross", "bird", "");
    ck_assert_str_eq(t, "A Black footed Albatross, a bird, in the garden");
    free(t);
    t = da_template_fill("{label}, {caption}", "Red circles", NULL, "two red discs");
    ck_assert_str_eq(t, "Red circles, two red discs");
    free(t);
    /* names */
    char buf[64];
    da_augment_shard_name("manifest", "jsonl", (da_shard){0, 1}, buf, sizeof buf);
    ck_assert_str_eq(buf, "manifest.jsonl");
    da_augment_shard_name("manifest", "jsonl", (da_shard){2, 3}, buf, sizeof buf);
    ck_assert_str_eq(buf, "manifest-2-of-3.jsonl");
    da_recipe r;
    da_error err;
    ck_assert_int_eq(da_recipe_parse("sgid", &r, &err), DA_OK);
    ck_assert_int_eq(r, DA_RECIPE_SGID);
    ck_assert_int_eq(da_recipe_parse("mixup", &r, &err), DA_ERR_INVALID_ARG);
    int k;
    ck_assert_int_eq(da_aug_sampler_parse("euler_a", &k, &err), DA_OK);
    ck_assert_str_eq(da_aug_sampler_name(k), "euler_a");
    ck_assert_int_eq(da_aug_sampler_parse("plms", &k, &err), DA_ERR_INVALID_ARG);
    /* defaults per METHODS.md */
    da_augment_opts o;
    da_augment_opts_init(&o, DA_RECIPE_DIFFUSEMIX);
    ck_assert(o.steps == 100 && o.size == 256 && o.sampler == 2 && o.text_guidance == 4.0 && o.image_guidance == 1.5 &&
              o.lambda == 0.20);
    da_augment_opts_init(&o, DA_RECIPE_DIFFCOREMIX);
    ck_assert(o.steps == 50 && o.guidance == 12 && o.budget == 0.3 && o.filter_threshold == 0.6 && o.patch_grid == 4);
    da_augment_opts_init(&o, DA_RECIPE_SGID);
    ck_assert(o.strength == 0.5 && o.w_min == 3 && o.w_max == 12 && o.s_lo == 0.20 && o.s_hi == 0.35 && o.steps == 50);
}
END_TEST

/* ---- fixture: tiny models + a dataset --------------------------------------------------------------- */

static char *g_dir, *g_ip2p, *g_sd, *g_clip, *g_ds;
static char *g_cosxl, *g_xlvae; /* tiny-sdxl --cosxl single file; another tiny-sdxl whose vae/ plays the fp16-fixed VAE */

static void setup(void) {
    g_dir = da_test_tmpdir("recipes");
    g_ip2p = da_path_join(g_dir, "ip2p");
    g_sd = da_path_join(g_dir, "sd15");
    g_clip = da_path_join(g_dir, "clip");
    g_ds = da_path_join(g_dir, "ds");
    g_cosxl = da_path_join(g_dir, "cosxl.safetensors");
    g_xlvae = da_path_join(g_dir, "xlvae");
    const char *cli = da_test_cli(), *sh = da_test_shared();
    int rc = da_test_sh(NULL,
                        "%s mkmodel --config tiny-ip2p --layout diffusers --vocab %s/data/clip-tokenizer -o %s >/dev/null 2>&1 && "
                        "%s mkmodel --config tiny-sd15 --layout diffusers --vocab %s/data/clip-tokenizer -o %s >/dev/null 2>&1 && "
                        "%s mkmodel --config tiny-clip-vit-b32 --layout diffusers --vocab %s/data/clip-tokenizer -o %s >/dev/null 2>&1 && "
                        "%s mkdataset --classes 3 --per-class 3 --size 40 --seed 3 -o %s >/dev/null 2>&1",
                        cli, sh, g_ip2p, cli, sh, g_sd, cli, sh, g_clip, cli, g_ds);
    if (rc != 0) fprintf(stderr, "test_recipes: fixture setup failed (%d)\n", rc);
    rc = da_test_sh(NULL,
                    "%s mkmodel --config tiny-sdxl --layout single --cosxl --seed 7 -o %s >/dev/null 2>&1 && "
                    "%s mkmodel --config tiny-sdxl --layout diffusers --seed 8 -o %s >/dev/null 2>&1",
                    cli, g_cosxl, cli, g_xlvae);
    if (rc != 0) fprintf(stderr, "test_recipes: SDXL fixture setup failed (%d)\n", rc);
}

static void teardown(void) {
    da_rmtree(g_dir);
    free(g_dir), free(g_ip2p), free(g_sd), free(g_clip), free(g_ds), free(g_cosxl), free(g_xlvae);
}

/* Run `diffaug augment ARGS` (stdout + stderr into *out when out != NULL); returns the exit status. */
static int augment(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int augment(char **out, const char *fmt, ...) {
    char *args = NULL;
    va_list ap;
    va_start(ap, fmt);
    int k = vasprintf(&args, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(k, 0);
    char *o = NULL;
    int rc = da_test_sh(&o, "OMP_WAIT_POLICY=passive %s augment -q %s 2>&1", da_test_cli(), args);
    free(args);
    if (out) *out = o;
    else free(o);
    return rc;
}

static char *sub(const char *a, const char *b) { return da_path_join(a, b); }

static size_t count_lines(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t n = 0;
    int ch;
    while ((ch = fgetc(fp)) != EOF) n += ch == '\n';
    fclose(fp);
    return n;
}

/* Outputs of two runs are byte-identical (manifests and summaries aside) and their manifests hold the
 * same records once merged (sorted). */
static void assert_same_run(const char *a, const char *ma, const char *b, const char *mb) {
    char *o = NULL;
    int rc = da_test_sh(&o, "diff -r -x 'manifest*' -x 'summary*' -x 'sheet*' -x 'merged*' '%s' '%s' 2>&1", a, b);
    ck_assert_msg(rc == 0, "outputs differ: %s", o ? o : "");
    free(o);
    rc = da_test_sh(&o,
                    "%s manifest merge -o %s/sorted_a.jsonl %s 2>&1 && %s manifest merge -o %s/sorted_b.jsonl %s 2>&1 && "
                    "cmp %s/sorted_a.jsonl %s/sorted_b.jsonl 2>&1",
                    da_test_cli(), g_dir, ma, da_test_cli(), g_dir, mb, g_dir, g_dir);
    ck_assert_msg(rc == 0, "manifests differ: %s", o ? o : "");
    free(o);
}

/* ---- DiffuseMix ---------------------------------------------------------------------------------- */

#define DMIX_ARGS "--recipe diffusemix --model %s --input %s --steps 3 --size 64 --prompts 'snowy,a sketch with crayon'"

START_TEST(test_diffusemix) {
    char *out = sub(g_dir, "dmix"), *log = NULL;
    int rc = augment(&log, DMIX_ARGS " --output %s --intermediates --sheet 3", g_ip2p, g_ds, out);
    ck_assert_msg(rc == 0, "%s", log);
    ck_assert_ptr_nonnull(strstr(log, "procedural-fractals"));
    free(log);
    char *mp = sub(out, "manifest.jsonl");
    da_manifest m;
    da_error err;
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 9 * 2); /* 9 images x 2 prompts, 1 output each */
    da_dataset *ds;
    da_scan_opts so;
    da_scan_opts_init(&so);
    ck_assert_int_eq(da_dataset_scan(g_ds, &so, &ds, &err), DA_OK);
    size_t kept = 0, checked = 0;
    for (size_t i = 0; i < m.n; i++) {
        const char *line = m.e[i].line;
        ck_assert_ptr_nonnull(strstr(line, "\"recipe\":\"diffusemix\""));
        ck_assert_ptr_nonnull(strstr(line, "\"sampler\":\"euler_a\",\"steps\":3,\"guidance\":4,\"image_guidance\":1.5"));
        ck_assert_ptr_nonnull(strstr(line, "\"models\":{\"model\":\""));
        ck_assert_ptr_nonnull(strstr(line, "\"deviations\":[\"procedural-fractals\"]"));
        if (!m.e[i].kept) {
            ck_assert_ptr_nonnull(strstr(line, "\"reason\":\"degenerate: "));
            continue;
        }
        kept++;
        ck_assert(!strncmp(m.e[i].output, "blended/", 8));
        /* recompute hybrid and blend from the intermediates and the source */
        const char *rel = m.e[i].output + 8;
        char *pg = sub(out, "generated"), *ph = sub(out, "concatenated"), *pf = sub(out, "fractal");
        char *fg = sub(pg, rel), *fh = sub(ph, rel), *ff = sub(pf, rel), *fa = sub(out, m.e[i].output);
        da_image G = {0}, H = {0}, F = {0}, A = {0}, A2 = {0}, src = {0}, I = {0}, H2 = {0};
        ck_assert_int_eq(da_image_load(fg, &G, &err), DA_OK);
        ck_assert_int_eq(da_image_load(fh, &H, &err), DA_OK);
        ck_assert_int_eq(da_image_load(ff, &F, &err), DA_OK);
        ck_assert_int_eq(da_image_load(fa, &A, &err), DA_OK);
        ck_assert(A.w == 64 && A.h == 64 && G.w == 64);
        ck_assert_int_eq(da_dmix_blend(&H, &F, 0.20f, false, &A2, &err), DA_OK);
        ck_assert_msg(!memcmp(A.data, A2.data, 64 * 64 * 3), "%s: blend differs", fa);
        /* the source, resized like the recipe does, is the hybrid with the orientation in the notes */
        const char *src_rel = strstr(line, "\"source\":\"") + 10;
        char srcbuf[256];
        snprintf(srcbuf, sizeof srcbuf, "%.*s", (int)(strchr(src_rel, '"') - src_rel), src_rel);
        char *fs = sub(g_ds, srcbuf);
        ck_assert_int_eq(da_image_load(fs, &src, &err), DA_OK);
        ck_assert_int_eq(da_image_resize_bicubic(&src, 64, 64, &I, &err), DA_OK);
        da_orient ori = strstr(line, "orientation vertical") ? DA_ORIENT_VERTICAL : DA_ORIENT_HORIZONTAL;
        ck_assert(strstr(line, "orientation vertical") || strstr(line, "orientation horizontal"));
        da_hybrid_opts ho = {0};
        ck_assert_int_eq(da_dmix_hybrid(&I, &G, ori, &ho, &H2, &err), DA_OK);
        ck_assert_msg(!memcmp(H.data, H2.data, 64 * 64 * 3), "%s: hybrid differs", fh);
        /* the output name is <class>/<stem>_<prompt tag>_0.png */
        ck_assert(strstr(rel, "_snowy_0.png") || strstr(rel, "_a_sketch_with_crayon_0.png"));
        checked++;
        da_image *all[] = {&G, &H, &F, &A, &A2, &src, &I, &H2};
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) da_image_free(all[j]);
        free(pg), free(ph), free(pf), free(fg), free(fh), free(ff), free(fa), free(fs);
    }
    ck_assert_uint_gt(checked, 0);
    /* summary: counts per class add up */
    char *sp = sub(out, "summary.json"), *text = NULL;
    size_t len;
    ck_assert_int_eq(da_read_file(sp, &text, &len, &err), DA_OK);
    char want[64];
    snprintf(want, sizeof want, "\"kept\": %zu", kept);
    ck_assert_msg(strstr(text, want), "%s", text);
    ck_assert_ptr_nonnull(strstr(text, "\"001.Red_circles\""));
    ck_assert_ptr_nonnull(strstr(text, "\"images_per_s\""));
    char *sheet = sub(out, "sheet.png");
    da_image S = {0};
    ck_assert_int_eq(da_image_load(sheet, &S, &err), DA_OK);
    ck_assert_int_eq(S.w, 4 * 128 + 5 * 2); /* 4 columns of 128 px cells */
    ck_assert_int_eq(S.h, 3 * 128 + 4 * 2);
    da_image_free(&S);
    free(sheet), free(text), free(sp);
    da_dataset_free(ds);
    da_manifest_free(&m);
    free(mp);
    free(out);
}
END_TEST

/* --fractals DIR: the user's images (resized to RES) instead of the procedural set, no deviation */
START_TEST(test_diffusemix_user_fractals) {
    char *fdir = sub(g_dir, "myfractals"), *out = sub(g_dir, "dmix_userfr"), *log = NULL;
    ck_assert_int_eq(da_test_sh(NULL, "%s fractals -n 2 --size 48 --seed 9 -o %s >/dev/null 2>&1", da_test_cli(), fdir), 0);
    int rc = augment(&log, "--recipe diffusemix --model %s --input %s --output %s --steps 2 --size 64 --prompts rainbow "
                           "--fractals %s --intermediates",
                     g_ip2p, g_ds, out, fdir);
    ck_assert_msg(rc == 0, "%s", log);
    ck_assert_ptr_null(strstr(log, "procedural-fractals"));
    free(log);
    da_error err;
    da_image F0 = {0}, F1 = {0}, R0 = {0}, R1 = {0};
    char *f0 = sub(fdir, "fractal_00000.png"), *f1 = sub(fdir, "fractal_00001.png");
    ck_assert_int_eq(da_image_load(f0, &F0, &err), DA_OK);
    ck_assert_int_eq(da_image_load(f1, &F1, &err), DA_OK);
    ck_assert_int_eq(da_image_resize_bicubic(&F0, 64, 64, &R0, &err), DA_OK);
    ck_assert_int_eq(da_image_resize_bicubic(&F1, 64, 64, &R1, &err), DA_OK);
    char *mp = sub(out, "manifest.jsonl");
    da_manifest m;
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 9);
    int used[2] = {0, 0};
    for (size_t i = 0; i < m.n; i++) {
        if (!m.e[i].kept) continue;
        ck_assert_ptr_nonnull(strstr(m.e[i].line, "\"deviations\":[]"));
        char *fd = sub(out, "fractal"), *ff = sub(fd, m.e[i].output + 8);
        da_image F = {0};
        ck_assert_int_eq(da_image_load(ff, &F, &err), DA_OK);
        int k = strstr(m.e[i].line, ", fractal 0\"") ? 0 : 1;
        ck_assert_msg(!memcmp(F.data, (k ? R1 : R0).data, 64 * 64 * 3), "%s is not fractal %d resized", ff, k);
        used[k]++;
        da_image_free(&F);
        free(fd), free(ff);
    }
    ck_assert_int_gt(used[0] + used[1], 0);
    da_manifest_free(&m);
    da_image_free(&F0), da_image_free(&F1), da_image_free(&R0), da_image_free(&R1);
    free(f0), free(f1), free(mp), free(fdir), free(out);
}
END_TEST

/* ---- determinism across batch size and threads ----------------------------------------------------- */

START_TEST(test_determinism) {
    char *a = sub(g_dir, "det_a"), *b = sub(g_dir, "det_b"), *c = sub(g_dir, "det_c"), *log = NULL;
    ck_assert_msg(augment(&log, DMIX_ARGS " --output %s --batch 1 --threads 2", g_ip2p, g_ds, a) == 0, "%s", log);
    free(log);
    ck_assert_msg(augment(&log, DMIX_ARGS " --output %s --batch 4 --threads 1", g_ip2p, g_ds, b) == 0, "%s", log);
    free(log);
    char *ma = sub(a, "manifest.jsonl"), *mb = sub(b, "manifest.jsonl");
    assert_same_run(a, ma, b, mb);
    /* a different seed changes the outputs (the comparison can fail) */
    ck_assert_msg(augment(&log, DMIX_ARGS " --output %s --seed 5", g_ip2p, g_ds, c) == 0, "%s", log);
    free(log);
    ck_assert_int_ne(da_test_sh(NULL, "diff -r -q -x 'manifest*' -x 'summary*' '%s' '%s' >/dev/null 2>&1", a, c), 0);
    free(ma), free(mb), free(a), free(b), free(c);

    /* DiffCoRe-Mix (txt2img + CLIP filter + mixing) and SGID (img2img) across batches too */
    const char *rec[2] = {"diffcoremix --budget 1", "sgid"};
    for (int r = 0; r < 2; r++) {
        char *x = sub(g_dir, r ? "sg_x" : "dcm_x"), *y = sub(g_dir, r ? "sg_y" : "dcm_y");
        ck_assert_msg(augment(&log, "--recipe %s --model %s --clip %s --input %s --output %s --steps 3 --size 64 --batch 1",
                              rec[r], g_sd, g_clip, g_ds, x) == 0, "%s", log);
        free(log);
        ck_assert_msg(augment(&log, "--recipe %s --model %s --clip %s --input %s --output %s --steps 3 --size 64 --batch 5 --threads 1",
                              rec[r], g_sd, g_clip, g_ds, y) == 0, "%s", log);
        free(log);
        char *mx = sub(x, "manifest.jsonl"), *my = sub(y, "manifest.jsonl");
        ck_assert_uint_eq(count_lines(mx), 9);
        if (r == 1) { /* SGID without --captions: the label alone, said in every record */
            da_manifest m;
            da_error err;
            ck_assert_int_eq(da_manifest_read(mx, &m, &err), DA_OK);
            for (size_t i = 0; i < m.n; i++) {
                ck_assert_ptr_nonnull(strstr(m.e[i].line, "\"deviations\":[\"label-only-prompts\"]"));
                ck_assert(strstr(m.e[i].line, "\"prompt\":\"Red circles\"") || strstr(m.e[i].line, "\"prompt\":\"Orange stripes\"") ||
                          strstr(m.e[i].line, "\"prompt\":\"Yellow triangles\""));
            }
            da_manifest_free(&m);
        }
        assert_same_run(x, mx, y, my);
        free(mx), free(my), free(x), free(y);
    }
}
END_TEST

/* ---- DiffCoRe-Mix ---------------------------------------------------------------------------------- */

/* DiffCoRe-Mix on a CosXL-style model (tiny-sdxl single file with the edm_vpred markers) with --vae
 * and --ref-first: EDM Euler v-prediction is chosen by itself and the records carry no deviation.
 * Without --vae / --ref-first exactly those two deviations appear; a discrete sampler is refused
 * before any work; naming edm_euler explicitly gives the same bytes as the automatic choice. */
START_TEST(test_diffcoremix_cosxl) {
    char *out = sub(g_dir, "dcm_cosxl"), *out2 = sub(g_dir, "dcm_cosxl_dev"), *out3 = sub(g_dir, "dcm_cosxl_named");
    char *vae = sub(g_xlvae, "vae"), *log = NULL;
    const char *common = "--recipe diffcoremix --clip %s --input %s --steps 3 --size 64 --budget 1 --filter-threshold -1 "
                         "--noun shape --intermediates --tokenizer %s/data/clip-tokenizer --model %s";
    char fmt[512];
    snprintf(fmt, sizeof fmt, "%s --vae %%s --ref-first --output %%s", common);
    int rc = augment(&log, fmt, g_clip, g_ds, da_test_shared(), g_cosxl, vae, out);
    ck_assert_msg(rc == 0, "%s", log);
    ck_assert_msg(!strstr(log, "deviation"), "%s", log);
    free(log);
    char *mp = sub(out, "manifest.jsonl");
    da_manifest m;
    da_error err;
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 9);
    for (size_t i = 0; i < m.n; i++) {
        const char *line = m.e[i].line;
        ck_assert(m.e[i].kept);
        ck_assert_ptr_nonnull(strstr(line, "\"deviations\":[]"));
        ck_assert_ptr_nonnull(strstr(line, "\"sampler\":\"edm_euler\""));
        ck_assert_ptr_nonnull(strstr(line, "\"guidance\":12"));
        ck_assert_ptr_nonnull(strstr(line, "\"negative_prompt\":\"train, car, newspaper"));
    }
    da_manifest_free(&m);
    /* the model's own VAE and the centroid reference: two labelled deviations, nothing else */
    snprintf(fmt, sizeof fmt, "%s --output %%s --steps 1", common);
    rc = augment(&log, fmt, g_clip, g_ds, da_test_shared(), g_cosxl, out2);
    ck_assert_msg(rc == 0, "%s", log);
    free(log);
    char *mp2 = sub(out2, "manifest.jsonl");
    ck_assert_int_eq(da_manifest_read(mp2, &m, &err), DA_OK);
    for (size_t i = 0; i < m.n; i++)
        ck_assert_ptr_nonnull(strstr(m.e[i].line, "\"deviations\":[\"model-vae-instead-of-fp16-fix\",\"centroid-reference\"]"));
    da_manifest_free(&m);
    /* a discrete sampler on an EDM model: refused before any output */
    snprintf(fmt, sizeof fmt, "%s --sampler ddim --output %%s", common);
    char *out4 = sub(g_dir, "dcm_cosxl_ddim");
    rc = augment(&log, fmt, g_clip, g_ds, da_test_shared(), g_cosxl, out4);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(log, "EDM Euler"), "%s", log);
    ck_assert(!da_is_dir(out4) || count_lines(out4) == 0);
    free(log);
    /* --sampler edm_euler named: the same bytes as the automatic choice */
    snprintf(fmt, sizeof fmt, "%s --vae %%s --ref-first --sampler edm_euler --output %%s", common);
    rc = augment(&log, fmt, g_clip, g_ds, da_test_shared(), g_cosxl, vae, out3);
    ck_assert_msg(rc == 0, "%s", log);
    free(log);
    char *mp3 = sub(out3, "manifest.jsonl");
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    da_manifest m3;
    ck_assert_int_eq(da_manifest_read(mp3, &m3, &err), DA_OK);
    ck_assert_uint_eq(m3.n, m.n);
    for (size_t i = 0; i < m.n; i++) {
        char *a = sub(out, m.e[i].output), *b = sub(out3, m3.e[i].output);
        char *da, *db;
        size_t la, lb;
        ck_assert(da_read_file(a, &da, &la, &err) == DA_OK && da_read_file(b, &db, &lb, &err) == DA_OK);
        ck_assert(la == lb && !memcmp(da, db, la));
        free(da), free(db), free(a), free(b);
    }
    da_manifest_free(&m), da_manifest_free(&m3);
    free(mp), free(mp2), free(mp3), free(out), free(out2), free(out3), free(out4), free(vae);
}
END_TEST

START_TEST(test_diffcoremix) {
    char *out = sub(g_dir, "dcm"), *log = NULL;
    /* budget 1: 3 attempts per class; threshold -1 keeps everything */
    int rc = augment(&log, "--recipe diffcoremix --model %s --clip %s --input %s --output %s --steps 3 --size 64 --budget 1 "
                           "--filter-threshold -1 --noun shape --intermediates",
                     g_sd, g_clip, g_ds, out);
    ck_assert_msg(rc == 0, "%s", log);
    ck_assert_ptr_nonnull(strstr(log, "sd15-instead-of-sdxl"));
    ck_assert_ptr_nonnull(strstr(log, "ddim-instead-of-edm-euler"));
    free(log);
    char *mp = sub(out, "manifest.jsonl");
    da_manifest m;
    da_error err;
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 9);
    int pixel = 0, patch = 0;
    for (size_t i = 0; i < m.n; i++) {
        const char *line = m.e[i].line;
        ck_assert(m.e[i].kept);
        ck_assert_ptr_nonnull(strstr(line, "\"source\":null"));
        ck_assert_ptr_nonnull(strstr(line, ", a shape, "));
        ck_assert_ptr_nonnull(strstr(line, "\"negative_prompt\":\"train, car, newspaper"));
        ck_assert_ptr_nonnull(strstr(line, "\"guidance\":12"));
        ck_assert_ptr_nonnull(strstr(line, "\"deviations\":[\"sd15-instead-of-sdxl\",\"ddim-instead-of-edm-euler\",\"centroid-reference\"]"));
        ck_assert_ptr_nonnull(strstr(line, "\"filter_score\":"));
        ck_assert_ptr_null(strstr(line, "\"filter_score\":null"));
        ck_assert_ptr_nonnull(strstr(line, "\"clip\":\""));
        /* the prompt names the class label */
        ck_assert(strstr(line, "A Red circles,") || strstr(line, "A Orange stripes,") || strstr(line, "A Yellow triangles,"));
        da_image X = {0}, G = {0};
        char *fx = sub(out, m.e[i].output), *gd = sub(out, "generated"), *fg = sub(gd, m.e[i].output);
        ck_assert_int_eq(da_image_load(fx, &X, &err), DA_OK);
        ck_assert_int_eq(da_image_load(fg, &G, &err), DA_OK);
        if (strstr(m.e[i].output, "dcm_pixel_")) {
            pixel++;
            ck_assert_ptr_nonnull(strstr(line, "pixel mix with "));
        } else {
            ck_assert_ptr_nonnull(strstr(m.e[i].output, "dcm_patch_"));
            ck_assert_ptr_nonnull(strstr(line, "patch mix with "));
            patch++;
            /* a patch mix copies whole cells of G: at least one 16x16 cell equals G */
            int same_cells = 0;
            for (int ci = 0; ci < 4; ci++)
                for (int cj = 0; cj < 4; cj++) {
                    int eq = 1;
                    for (int y = ci * 16; y < ci * 16 + 16 && eq; y++)
                        eq = !memcmp(X.data + ((size_t)y * 64 + cj * 16) * 3, G.data + ((size_t)y * 64 + cj * 16) * 3, 48);
                    same_cells += eq;
                }
            ck_assert_int_ge(same_cells, 3);
            ck_assert_int_le(same_cells, 15);
        }
        da_image_free(&X), da_image_free(&G);
        free(fx), free(gd), free(fg);
    }
    ck_assert_int_eq(pixel + patch, 9);
    da_manifest_free(&m);
    /* threshold 2 (> any cosine) drops every attempt with the reason, no output */
    char *out2 = sub(g_dir, "dcm_drop");
    rc = augment(&log, "--recipe diffcoremix --model %s --clip %s --input %s --output %s --steps 2 --size 64 "
                       "--filter-threshold 2 --ref-first --budget 0.7",
                 g_sd, g_clip, g_ds, out2);
    ck_assert_msg(rc == 0, "%s", log);
    free(log);
    char *mp2 = sub(out2, "manifest.jsonl");
    ck_assert_int_eq(da_manifest_read(mp2, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 6); /* floor(0.7 x 3) = 2 attempts per class */
    for (size_t i = 0; i < m.n; i++) {
        ck_assert(!m.e[i].kept && !m.e[i].output);
        ck_assert_ptr_nonnull(strstr(m.e[i].line, "\"reason\":\"filter: cos "));
        ck_assert_ptr_nonnull(strstr(m.e[i].line, " <= 2\""));
        ck_assert_ptr_null(strstr(m.e[i].line, "centroid-reference"));
    }
    da_manifest_free(&m);
    free(mp), free(mp2), free(out), free(out2);
}
END_TEST

/* ---- SGID with captions and bad inputs ------------------------------------------------------------ */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

START_TEST(test_sgid_bad_inputs) {
    /* a copy of the dataset with every kind of bad input */
    char *bad = sub(g_dir, "bad"), *log = NULL;
    ck_assert_int_eq(da_test_sh(NULL, "cp -r '%s' '%s' && mkdir '%s/004.Empty'", g_ds, bad, bad), 0);
    char *c1 = sub(bad, "001.Red_circles"), *f;
    f = sub(c1, "notes.png");
    write_file(f, "this is not an image\n", 21);
    free(f);
    /* a truncated PNG: the first 200 bytes of a real one */
    char *src = sub(c1, "img_000.png"), *data = NULL;
    size_t len;
    da_error err;
    ck_assert_int_eq(da_read_file(src, &data, &len, &err), DA_OK);
    ck_assert_uint_gt(len, 300);
    f = sub(c1, "trunc.png");
    write_file(f, data, 200);
    free(f), free(data), free(src);
    da_image tiny = {0};
    ck_assert_int_eq(da_image_alloc(&tiny, 5, 20, &err), DA_OK);
    memset(tiny.data, 90, 5 * 20 * 3);
    f = sub(c1, "tiny.png");
    ck_assert_int_eq(da_image_save_png(f, &tiny, NULL, NULL, 0, &err), DA_OK);
    free(f);
    da_image_free(&tiny);
    f = sub(bad, "README.txt");
    write_file(f, "stray\n", 6);
    free(f);
    /* captions for two images only; one path written with the dataset root in front */
    char *cap = sub(g_dir, "captions.tsv");
    char text[1024];
    int n = snprintf(text, sizeof text, "001.Red_circles/img_000.png\tthree red discs on pink\n%s/002.Orange_stripes/img_001.jpg\tstriped card\n", bad);
    write_file(cap, text, (size_t)n);
    char *out = sub(g_dir, "sgid");
    int rc = augment(&log, "--recipe sgid --model %s --clip %s --input %s --output %s --steps 4 --size 64 --captions %s --samples 2 --strength 0.75",
                     g_sd, g_clip, bad, out, cap);
    ck_assert_msg(rc == 0, "%s", log);
    /* every problem is on stderr */
    ck_assert_msg(strstr(log, "not_image: 001.Red_circles/notes.png"), "%s", log);
    ck_assert_msg(strstr(log, "unreadable: 001.Red_circles/trunc.png"), "%s", log);
    ck_assert_msg(strstr(log, "too_small: 001.Red_circles/tiny.png"), "%s", log);
    ck_assert_msg(strstr(log, "empty_class: 004.Empty"), "%s", log);
    ck_assert_msg(strstr(log, "stray_file: README.txt"), "%s", log);
    ck_assert_msg(strstr(log, "001.Red_circles/img_001.jpg: no entry in"), "%s", log);
    ck_assert_ptr_nonnull(strstr(log, "user-captions-instead-of-blip"));
    free(log);
    /* and in the manifest: 9 images x 2 samples kept + 5 problem records */
    char *mp = sub(out, "manifest.jsonl");
    da_manifest m;
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 18 + 5);
    int problems = 0, kept = 0, captioned = 0, no_caption = 0;
    for (size_t i = 0; i < m.n; i++) {
        const char *line = m.e[i].line;
        if (!m.e[i].kept) {
            problems++;
            ck_assert_ptr_nonnull(strstr(line, "\"reason\":\"input "));
            continue;
        }
        kept++;
        ck_assert_ptr_nonnull(strstr(line, "\"sampler\":\"ddim\",\"steps\":4"));
        ck_assert_ptr_nonnull(strstr(line, "\"strength\":0.75"));
        ck_assert_ptr_null(strstr(line, "\"filter_score\":null"));
        ck_assert_ptr_nonnull(strstr(m.e[i].output, "_sgid_0.75_"));
        if (strstr(line, "\"prompt\":\"Red circles, three red discs on pink\"") ||
            strstr(line, "\"prompt\":\"Orange stripes, striped card\""))
            captioned++;
        if (strstr(line, "no caption in --captions: label only")) no_caption++;
        /* the guidance is the formula of the recorded similarity */
        double s = atof(strstr(line, "\"filter_score\":") + 15), g = atof(strstr(line, "\"guidance\":") + 11);
        ck_assert_msg(fabs(g - da_sgid_guidance(s, 3, 12, 0.2, 0.35)) < 1e-5, "s %g g %g", s, g);
        char *fo = sub(out, m.e[i].output);
        da_image im = {0};
        ck_assert_int_eq(da_image_load(fo, &im, &err), DA_OK);
        ck_assert(im.w == 64 && im.h == 64);
        da_image_free(&im);
        free(fo);
    }
    ck_assert_int_eq(problems, 5);
    ck_assert_int_eq(kept, 18);
    ck_assert_int_eq(captioned, 4);
    ck_assert_int_eq(no_caption, 14);
    /* the names k = 0, 1 */
    char *o0 = sub(out, "003.Yellow_triangles/img_002_sgid_0.75_1.png");
    ck_assert(da_is_file(o0));
    free(o0);
    /* the input was never written: no file beyond what we put there */
    char *o = NULL;
    ck_assert_int_eq(da_test_sh(&o, "find '%s' -type f | wc -l", bad), 0);
    ck_assert_int_eq(atoi(o), 9 + 4);
    free(o);
    da_manifest_free(&m);
    free(mp), free(out), free(cap), free(c1), free(bad);
}
END_TEST

START_TEST(test_refusals) {
    char *log = NULL, *out = sub(g_dir, "refused");
    /* a bad model path stops at once, before the output folder is made */
    int rc = augment(&log, "--recipe sgid --model %s/nope --clip %s --input %s --output %s", g_dir, g_clip, g_ds, out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(log, "--model") && strstr(log, "/nope"), "%s", log);
    ck_assert(!da_is_dir(out));
    free(log);
    /* DiffCoRe-Mix and SGID need --clip */
    rc = augment(&log, "--recipe diffcoremix --model %s --input %s --output %s", g_sd, g_ds, out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(log, "needs a CLIP model: --clip"), "%s", log);
    ck_assert(!da_is_dir(out));
    free(log);
    /* a CLIP path that is an SD model */
    rc = augment(&log, "--recipe sgid --model %s --clip %s --input %s --output %s", g_sd, g_sd, g_ds, out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(log, "not a CLIP model"), "%s", log);
    free(log);
    /* the wrong model family */
    rc = augment(&log, "--recipe diffusemix --model %s --input %s --output %s", g_sd, g_ds, out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(log, "8 input channels"), "%s", log);
    free(log);
    /* an output inside the input */
    rc = augment(&log, "--recipe diffusemix --model %s --input %s --output %s/001.Red_circles/aug", g_ip2p, g_ds, g_ds);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(log, "inside"), "%s", log);
    free(log);
    char *inner = sub(g_ds, "001.Red_circles/aug");
    ck_assert(!da_is_dir(inner));
    free(inner);
    /* a captions file that does not exist */
    rc = augment(&log, "--recipe sgid --model %s --clip %s --input %s --output %s --captions %s/none.tsv", g_sd, g_clip, g_ds, out, g_dir);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(log, "--captions") && strstr(log, "none.tsv"), "%s", log);
    free(log);
    /* bad command lines */
    ck_assert_int_eq(augment(NULL, "--recipe mixup --model x --input %s --output %s", g_ds, out), 2);
    ck_assert_int_eq(augment(NULL, "--recipe sgid --model x --input %s --output %s --shard 3/3", g_ds, out), 2);
    ck_assert(!da_is_dir(out));
    free(out);
}
END_TEST

/* ---- kill -9 and resume ---------------------------------------------------------------------------- */

static pid_t spawn_augment(const char *args) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char *cmd = NULL;
        if (asprintf(&cmd, "exec %s augment -q %s >/dev/null 2>&1", da_test_cli(), args) < 0) _exit(127);
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

START_TEST(test_kill_resume) {
    char *ref = sub(g_dir, "res_ref"), *out = sub(g_dir, "res_out"), *log = NULL;
    ck_assert_msg(augment(&log, DMIX_ARGS " --output %s --steps 6", g_ip2p, g_ds, ref) == 0, "%s", log);
    free(log);
    char args[2048];
    snprintf(args, sizeof args, DMIX_ARGS " --output %s --steps 6", g_ip2p, g_ds, out);
    char *mp = sub(out, "manifest.jsonl");
    /* kill twice at different points, then let it finish */
    for (int round = 0; round < 2; round++) {
        size_t before = count_lines(mp);
        pid_t pid = spawn_augment(args);
        for (int t = 0; t < 12000 && count_lines(mp) < before + 3; t++) usleep(5000);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        ck_assert_msg(WIFSIGNALED(status), "the run finished before it was killed");
        size_t after = count_lines(mp);
        ck_assert_uint_ge(after, before + 3);
        ck_assert_uint_lt(after, 18);
    }
    /* Ctrl-C: a clean stop after the current step, exit 130, nothing half-written */
    {
        size_t before = count_lines(mp);
        pid_t pid = spawn_augment(args);
        for (int t = 0; t < 12000 && count_lines(mp) < before + 1; t++) usleep(5000);
        kill(pid, SIGINT);
        int status;
        waitpid(pid, &status, 0);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d", status);
        ck_assert_uint_lt(count_lines(mp), 18);
    }
    ck_assert_msg(augment(&log, "%s", args) == 0, "%s", log);
    ck_assert_msg(strstr(log, "already done") != NULL, "%s", log);
    free(log);
    char *mr = sub(ref, "manifest.jsonl");
    ck_assert_uint_eq(count_lines(mp), 18);
    assert_same_run(ref, mr, out, mp);
    /* no temporary file is left */
    char *o = NULL;
    ck_assert_int_eq(da_test_sh(&o, "find '%s' -name '*.tmp.*' | wc -l", out), 0);
    ck_assert_int_eq(atoi(o), 0);
    free(o);
    /* a deleted output is redone, byte-identical */
    char *victim = sub(out, "blended/002.Orange_stripes/img_001_snowy_0.png");
    ck_assert_int_eq(remove(victim), 0);
    ck_assert_msg(augment(&log, "%s", args) == 0, "%s", log);
    free(log);
    ck_assert(da_is_file(victim));
    assert_same_run(ref, mr, out, mp);
    /* that run made one image: its rate counts that one, not the 18 records of the manifest */
    char *sp = sub(out, "summary.json"), *text = NULL;
    size_t len;
    da_error err;
    ck_assert_int_eq(da_read_file(sp, &text, &len, &err), DA_OK);
    ck_assert_msg(strstr(text, "\"produced\": 1,"), "%s", text);
    free(text), free(sp);
    free(victim), free(mr), free(mp), free(ref), free(out);
}
END_TEST

/* ---- shards ----------------------------------------------------------------------------------------- */

START_TEST(test_shards) {
    char *one = sub(g_dir, "sh_one"), *three = sub(g_dir, "sh_three"), *log = NULL;
    /* DiffCoRe-Mix: class-level units and shared class references */
    const char *args = "--recipe diffcoremix --model %s --clip %s --input %s --output %s --steps 2 --size 64 --budget 1 %s";
    ck_assert_msg(augment(&log, args, g_sd, g_clip, g_ds, one, "") == 0, "%s", log);
    free(log);
    for (int i = 0; i < 3; i++) {
        char sh[32];
        snprintf(sh, sizeof sh, "--shard %d/3", i);
        ck_assert_msg(augment(&log, args, g_sd, g_clip, g_ds, three, sh) == 0, "%s", log);
        free(log);
        char name[64];
        snprintf(name, sizeof name, "manifest-%d-of-3.jsonl", i);
        char *p = sub(three, name);
        ck_assert_uint_eq(count_lines(p), 3); /* 9 units, balanced */
        free(p);
    }
    char *o = NULL;
    int rc = da_test_sh(&o, "%s manifest merge -o %s/merged.jsonl %s/manifest-0-of-3.jsonl %s/manifest-1-of-3.jsonl "
                            "%s/manifest-2-of-3.jsonl 2>&1",
                        da_test_cli(), three, three, three, three);
    ck_assert_msg(rc == 0, "%s", o);
    free(o);
    char *m1 = sub(one, "manifest.jsonl"), *m3 = sub(three, "merged.jsonl");
    assert_same_run(one, m1, three, m3);
    free(m1), free(m3), free(one), free(three);
}
END_TEST

/* ---- a write error ------------------------------------------------------------------------------------ */

START_TEST(test_write_error) {
    char *out = sub(g_dir, "wfail"), *o = NULL;
    /* RLIMIT_FSIZE of 8 KiB: JPEG outputs (a few KiB) fit, the manifest outgrows it after ~10 records */
    int rc = da_test_sh(&o, "bash -c \"trap '' XFSZ; ulimit -f 8; OMP_WAIT_POLICY=passive exec %s augment -q " DMIX_ARGS
                            " --output %s --jpeg\" 2>&1",
                        da_test_cli(), g_ip2p, g_ds, out);
    ck_assert_msg(rc == 1, "rc %d: %s", rc, o);
    ck_assert_msg(strstr(o, "manifest.jsonl") && strstr(o, "File too large"), "%s", o);
    ck_assert_msg(strstr(o, "finished outputs are intact"), "%s", o);
    free(o);
    /* every record written names an output that decodes */
    char *mp = sub(out, "manifest.jsonl");
    da_manifest m;
    da_error err;
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    ck_assert_uint_gt(m.n, 2);
    ck_assert_uint_lt(m.n, 18);
    size_t n_before = m.n;
    char **kept = calloc(m.n, sizeof *kept);
    for (size_t i = 0; i < m.n; i++) {
        ck_assert(m.e[i].kept);
        char *f = sub(out, m.e[i].output);
        da_image im = {0};
        ck_assert_int_eq(da_image_load(f, &im, &err), DA_OK);
        da_image_free(&im);
        kept[i] = f;
    }
    da_manifest_free(&m);
    /* the same command without the limit finishes the job */
    char *log = NULL;
    ck_assert_msg(augment(&log, DMIX_ARGS " --output %s --jpeg", g_ip2p, g_ds, out) == 0, "%s", log);
    free(log);
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 18);
    da_manifest_free(&m);
    for (size_t i = 0; i < n_before; i++) ck_assert(da_is_file(kept[i])), free(kept[i]);
    free(kept), free(mp), free(out);
}
END_TEST

/* SGID --blip: every image captioned by BLIP once, cached in OUT/captions/<class>/<file>.txt; the
 * prompts hold those captions (the same `diffaug caption` writes); a resumed or second run reads the
 * cache (a planted caption shows up), a cache entry of other settings is recomputed; --captions
 * still overrides. */
START_TEST(test_sgid_blip) {
    const char *cli = da_test_cli();
    char *blip = sub(g_dir, "blip"), *out = sub(g_dir, "sgid-blip"), *out2 = sub(g_dir, "sgid-blip2");
    char *tsv = sub(g_dir, "blip.tsv");
    ck_assert_int_eq(da_test_sh(NULL, "%s mkmodel --config tiny-blip --layout diffusers --seed 2 --vocab "
                                      "tests/data/blip/vocab -o %s >/dev/null", cli, blip), 0);
    char *log = NULL;
    int rc = augment(&log, "--recipe sgid --model %s --clip %s --blip %s --blip-max-tokens 6 --input %s --output %s "
                           "--steps 2 --size 64 --samples 2", g_sd, g_clip, blip, g_ds, out);
    ck_assert_msg(rc == 0, "%s", log);
    ck_assert_msg(strstr(log, "captions from BLIP"), "%s", log);
    ck_assert_msg(!strstr(log, "label-only-prompts"), "%s", log);
    free(log);
    ck_assert_int_eq(da_test_sh(NULL, "OMP_WAIT_POLICY=passive %s caption --model %s --input %s -o %s --max-tokens 6 "
                                      "2>/dev/null", cli, blip, g_ds, tsv), 0);
    char *tt = NULL;
    size_t tl;
    da_error err;
    ck_assert_int_eq(da_read_file(tsv, &tt, &tl, &err), DA_OK);
    da_manifest m;
    char *mp = sub(out, "manifest.jsonl");
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 18);
    int n_lines = 0;
    for (char *line = tt; line && *line; n_lines++) {
        char *nl = strchr(line, '\n'), *tab = strchr(line, '\t');
        ck_assert(nl && tab && tab < nl);
        *nl = *tab = 0;
        /* the cache file: key line, then the caption diffaug caption wrote */
        char rel[512], *ct = NULL;
        size_t cl;
        snprintf(rel, sizeof rel, "%s/captions/%s.txt", out, line);
        ck_assert_msg(da_read_file(rel, &ct, &cl, &err) == DA_OK, "%s", err.msg);
        ck_assert_msg(!strncmp(ct, "blip ", 5) && strstr(ct, "beams 1 max-tokens 6\n"), "%s", ct);
        ck_assert_str_eq(strchr(ct, '\n') + 1, ({
                             static char want[512];
                             snprintf(want, sizeof want, "%s\n", tab + 1);
                             want;
                         }));
        free(ct);
        /* both samples' prompts are "<label>, <caption>" */
        int found = 0;
        for (size_t i = 0; i < m.n; i++)
            if (strstr(m.e[i].line, line) && strstr(m.e[i].line, tab + 1)) found++;
        ck_assert_msg(found == 2, "%s: %d records with caption '%s'", line, found, tab + 1);
        line = nl + 1;
    }
    ck_assert_int_eq(n_lines, 9);
    da_manifest_free(&m);
    /* a second output folder seeded with the cache: one caption planted, one entry of other settings */
    ck_assert_int_eq(da_test_sh(NULL, "mkdir -p %s && cp -r %s/captions %s/ && f=%s/captions/001.Red_circles/img_000.png.txt && "
                                      "head -1 $f > $f.new && echo 'planted words' >> $f.new && mv $f.new $f && "
                                      "sed -i '1s/beams 1/beams 7/' %s/captions/002.Orange_stripes/img_001.jpg.txt",
                                out2, out, out2, out2, out2), 0);
    rc = augment(&log, "--recipe sgid --model %s --clip %s --blip %s --blip-max-tokens 6 --input %s --output %s "
                       "--steps 2 --size 64", g_sd, g_clip, blip, g_ds, out2);
    ck_assert_msg(rc == 0, "%s", log);
    free(log);
    free(mp);
    mp = sub(out2, "manifest.jsonl");
    ck_assert_int_eq(da_manifest_read(mp, &m, &err), DA_OK);
    int planted = 0;
    for (size_t i = 0; i < m.n; i++) planted += strstr(m.e[i].line, "\"prompt\":\"Red circles, planted words\"") != NULL;
    ck_assert_int_eq(planted, 1);
    da_manifest_free(&m);
    char *fixed = NULL;
    ck_assert_int_eq(da_test_sh(&fixed, "head -1 %s/captions/002.Orange_stripes/img_001.jpg.txt", out2), 0);
    ck_assert_msg(strstr(fixed, "beams 1 max-tokens 6"), "%s", fixed);
    free(fixed);
    /* --captions overrides --blip */
    char *cap = sub(g_dir, "one.tsv"), *out3 = sub(g_dir, "sgid-blip3");
    write_file(cap, "001.Red_circles/img_000.png\tgiven words\n", 40);
    rc = augment(&log, "--recipe sgid --model %s --clip %s --blip %s --captions %s --input %s --output %s --steps 2 --size 64",
                 g_sd, g_clip, blip, cap, g_ds, out3);
    ck_assert_msg(rc == 0, "%s", log);
    ck_assert_ptr_nonnull(strstr(log, "user-captions-instead-of-blip"));
    free(log);
    char *cd = sub(out3, "captions");
    ck_assert(!da_is_dir(cd));
    /* --blip with another recipe, or a folder that is not BLIP, is refused */
    rc = augment(&log, "--recipe sgid --model %s --clip %s --blip %s --input %s --output %s/x", g_sd, g_clip, g_clip, g_ds, g_dir);
    ck_assert_msg(rc == 1 && strstr(log, "not a BLIP captioner"), "%s", log);
    free(log);
    free(cd), free(cap), free(out3), free(mp), free(tt), free(tsv), free(blip), free(out), free(out2);
}
END_TEST

static Suite *recipes_suite(void) {
    Suite *s = suite_create("recipes");
    TCase *tf = da_tcase("recipes-unit", "fast", 10);
    tcase_add_test(tf, test_formulas);
    suite_add_tcase(s, tf);
    TCase *tm = da_tcase("recipes-e2e", "model", 240);
    tcase_add_unchecked_fixture(tm, setup, teardown);
    tcase_add_test(tm, test_diffusemix);
    tcase_add_test(tm, test_diffusemix_user_fractals);
    tcase_add_test(tm, test_determinism);
    tcase_add_test(tm, test_diffcoremix);
    tcase_add_test(tm, test_diffcoremix_cosxl);
    tcase_add_test(tm, test_sgid_bad_inputs);
    tcase_add_test(tm, test_sgid_blip);
    tcase_add_test(tm, test_refusals);
    tcase_add_test(tm, test_kill_resume);
    tcase_add_test(tm, test_shards);
    tcase_add_test(tm, test_write_error);
    suite_add_tcase(s, tm);
    return s;
}

DA_TEST_MAIN(recipes_suite)
