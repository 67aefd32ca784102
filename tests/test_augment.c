/* test_augment.c - the recipe-independent augment modules against independent oracles: Random123's
 * Philox4x32-10 known answers, FIPS 180-4 / NIST SHA-256 vectors and sha256sum, the DiffuseMix
 * mask/hybrid/blend recomputed here the way the released numpy code builds them (concatenated mask
 * arrays, float32 images), Pillow's L values of primaries, the fractal set's determinism and quality
 * thresholds, dataset scanning with planted bad files, the output-folder rule, shards, the manifest
 * (torn tail, resume, merge) and mkdataset's determinism. Fixtures in tests/data/augment/ come from
 * numpy + Pillow (tests/reference/make_mix_fixtures.py). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "augment/contact_sheet.h"
#include "augment/dataset.h"
#include "augment/draw.h"
#include "rng.h"
#include "augment/fractal.h"
#include "augment/manifest.h"
#include "augment/mix.h"
#include "image.h"
#include "json.h"
#include "sha256.h"
#include "testutil.h"
#include "util.h"

static void random_image(int w, int h, uint32_t seed, da_image *im) {
    da_error err;
    ck_assert_int_eq(da_image_alloc(im, w, h, &err), DA_OK);
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        s = s * 1664525u + 1013904223u;
        im->data[i] = (uint8_t)(s >> 24);
    }
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

/* ---- Philox / draw ----------------------------------------------------------------------------- */

START_TEST(test_draw_stream_layout) {
    /* the Philox core itself is checked against Random123's vectors in test_modelfile */
    /* stream layout: block 0 of (seed, id, index, purpose) is philox(ctr, key) with the documented counter */
    da_draw d;
    uint64_t seed = 0x0123456789abcdefull, id = 0xfedcba9876543210ull;
    da_draw_init(&d, seed, id, 5, DA_DRAW_ORIENT);
    uint32_t ctr[4] = {0, (DA_DRAW_ORIENT << 24) | 5, 0x76543210u, 0xfedcba98u}, key[2] = {0x89abcdefu, 0x01234567u}, o[4];
    da_philox4x32_10(ctr, key, o);
    for (int j = 0; j < 4; j++) ck_assert_uint_eq(da_draw_u32(&d), o[j]);
    ctr[0] = 1;
    da_philox4x32_10(ctr, key, o);
    ck_assert_uint_eq(da_draw_u32(&d), o[0]);
    /* another purpose, index or image gives another stream */
    da_draw a, b, c;
    da_draw_init(&a, 7, 1, 0, DA_DRAW_PROMPT);
    da_draw_init(&b, 7, 1, 0, DA_DRAW_MIX);
    da_draw_init(&c, 7, 1, 1, DA_DRAW_PROMPT);
    uint32_t xa = da_draw_u32(&a), xb = da_draw_u32(&b), xc = da_draw_u32(&c);
    ck_assert(xa != xb && xa != xc && xb != xc);
    /* below(): in range and roughly uniform over 3 values */
    int cnt[3] = {0};
    for (int i = 0; i < 30000; i++) {
        uint32_t k = da_draw_below(&a, 3);
        ck_assert_uint_lt(k, 3);
        cnt[k]++;
    }
    for (int k = 0; k < 3; k++) ck_assert_msg(abs(cnt[k] - 10000) < 500, "bucket %d: %d", k, cnt[k]);
    for (int i = 0; i < 1000; i++) {
        double u = da_draw_uniform(&a);
        ck_assert(u >= 0 && u < 1);
    }
}
END_TEST

/* ---- SHA-256 ----------------------------------------------------------------------------------- */

START_TEST(test_sha256_vectors) {
    static const struct {
        const char *msg;
        const char *hex;
    } v[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (int hw = 0; hw < 2; hw++) {
        da_sha256_set_hw(hw);
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            uint8_t d[32];
            char hex[65];
            da_sha256_buf(v[i].msg, strlen(v[i].msg), d);
            da_sha256_hex(d, hex);
            ck_assert_msg(!strcmp(hex, v[i].hex), "hw %d vector %zu: %s", hw, i, hex);
        }
        /* one million 'a', fed in uneven pieces */
        char *a = malloc(1000000);
        memset(a, 'a', 1000000);
        da_sha256 s;
        da_sha256_init(&s);
        size_t off = 0, step = 1;
        while (off < 1000000) {
            size_t k = step < 1000000 - off ? step : 1000000 - off;
            da_sha256_update(&s, a + off, k);
            off += k;
            step = step * 3 % 9973 + 1;
        }
        uint8_t d[32];
        char hex[65];
        da_sha256_final(&s, d);
        da_sha256_hex(d, hex);
        ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
        free(a);
    }
    da_sha256_set_hw(1);
    /* a file against sha256sum, and the error path */
    char *dir = da_test_tmpdir("sha");
    char *p = da_path_join(dir, "f.bin");
    da_image im = {0};
    random_image(333, 77, 9, &im);
    da_error err;
    ck_assert_int_eq(da_write_file_atomic(p, im.data, (size_t)333 * 77 * 3, &err), DA_OK);
    uint8_t d[32];
    char hex[65];
    ck_assert_int_eq(da_sha256_file(p, d, &err), DA_OK);
    da_sha256_hex(d, hex);
    char *out = NULL;
    if (da_test_sh(&out, "sha256sum '%s' 2>/dev/null", p) == 0 && out && strlen(out) >= 64)
        ck_assert_msg(!strncmp(out, hex, 64), "sha256sum says %.64s, we say %s", out, hex);
    free(out);
    ck_assert_int_eq(da_sha256_file("/nonexistent/model.safetensors", d, &err), DA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/model.safetensors"));
    da_image_free(&im);
    free(p);
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- DiffuseMix mask, hybrid, blend ------------------------------------------------------------- */

/* The released code's mask: vstack([zeros(n//2 - bw//2), linspace(0,1,bw), ones(n//2 - bw//2 + bw%2)]),
 * numpy.linspace(0, 1, 20)[j] = j * (1/19) with the last element set to exactly 1. */
static int numpy_mask(int n, double *m) {
    int k = 0;
    for (int j = 0; j < n / 2 - 10; j++) m[k++] = 0.0;
    double step = 1.0 / 19.0;
    for (int j = 0; j < 20; j++) m[k++] = j == 19 ? 1.0 : (double)j * step;
    for (int j = 0; j < n / 2 - 10; j++) m[k++] = 1.0;
    return k;
}

START_TEST(test_dmix_mask) {
    static const int sizes[] = {256, 512, 64, 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s];
        double ref[1024], got[1024];
        ck_assert_int_eq(numpy_mask(n, ref), n);
        da_dmix_mask(n, false, got);
        for (int k = 0; k < n; k++) ck_assert_msg(ref[k] == got[k], "n %d k %d: %.17g vs %.17g", n, k, got[k], ref[k]);
    }
    /* RES 256: zeros up to row 117, ramp 118..137, ones from 138 */
    double m[256];
    da_dmix_mask(256, false, m);
    ck_assert(m[117] == 0.0 && m[118] == 0.0 && m[119] > 0.0 && m[137] == 1.0 && m[136] < 1.0);
    /* odd n: the extra element is 1 (the released code would fail) */
    double mo[257];
    da_dmix_mask(257, false, mo);
    ck_assert(mo[118] == 0.0 && mo[137] == 1.0 && mo[256] == 1.0);
    /* binary */
    da_dmix_mask(256, true, m);
    for (int k = 0; k < 256; k++) ck_assert(m[k] == (k >= 128 ? 1.0 : 0.0));
}
END_TEST

START_TEST(test_dmix_hybrid_blend) {
    const int w = 64, h = 48;
    da_image I = {0}, G = {0}, F = {0}, H = {0}, A = {0};
    random_image(w, h, 1, &I);
    random_image(w, h, 2, &G);
    random_image(w, h, 3, &F);
    da_error err;
    for (int orient = 0; orient < 2; orient++)
        for (int variant = 0; variant < 3; variant++) {
            da_hybrid_opts ho = {.binary_mask = variant == 2, .generated_first = variant == 1};
            ck_assert_int_eq(da_dmix_hybrid(&I, &G, (da_orient)orient, &ho, &H, &err), DA_OK);
            int n = orient == DA_ORIENT_VERTICAL ? h : w;
            double m[128];
            if (variant == 2)
                for (int k = 0; k < n; k++) m[k] = k < n / 2 ? 0.0 : 1.0;
            else
                numpy_mask(n, m);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++) {
                        size_t p = ((size_t)y * w + x) * 3 + c;
                        double mk = m[orient == DA_ORIENT_VERTICAL ? y : x];
                        if (variant == 1) mk = 1.0 - mk;
                        /* numpy: float32 arrays (x / 255 in float32), float64 mask, float64 result */
                        float oi = (float)I.data[p] / 255.0f, og = (float)G.data[p] / 255.0f;
                        double left = (1.0 - mk) * oi;
                        double right = mk * og;
                        double v = (left + right) * 255.0;
                        v = v < 0 ? 0 : v > 255 ? 255 : v;
                        uint8_t want = (uint8_t)v;
                        ck_assert_msg(H.data[p] == want, "orient %d variant %d (%d,%d,%d): %d vs %d", orient, variant, x,
                                      y, c, H.data[p], want);
                        /* x / 255 in float32 times 255 in float64 is exactly x again for every byte, so the
                         * pure halves are copies (the truncation loses nothing there) */
                        if (mk == 0.0) ck_assert_int_eq(H.data[p], I.data[p]);
                        if (mk == 1.0) ck_assert_int_eq(H.data[p], G.data[p]);
                    }
            /* the ordering rule: the original fills the first half (code), the generated image with the flag */
            size_t p0 = 0, plast = ((size_t)(h - 1) * w + (w - 1)) * 3;
            if (variant != 1) {
                ck_assert_int_le(abs((int)H.data[p0] - (int)I.data[p0]), 1);
                ck_assert_int_le(abs((int)H.data[plast] - (int)G.data[plast]), 1);
            } else {
                ck_assert_int_le(abs((int)H.data[p0] - (int)G.data[p0]), 1);
                ck_assert_int_le(abs((int)H.data[plast] - (int)I.data[plast]), 1);
            }
            da_image_free(&H);
        }
    /* blend: float32 throughout, (1 - 0.2) computed in double then rounded to float32 */
    ck_assert_int_eq(da_dmix_hybrid(&I, &G, DA_ORIENT_HORIZONTAL, NULL, &H, &err), DA_OK);
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(da_dmix_blend(&H, &F, 0.2f, round, &A, &err), DA_OK);
        float wh = (float)(1.0 - 0.2), wf = (float)0.2;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) {
            float a = wh * (float)H.data[i];
            float b = wf * (float)F.data[i];
            float s = a + b;
            uint8_t want = round ? (uint8_t)floorf(s + 0.5f) : (uint8_t)s;
            ck_assert_msg(A.data[i] == want, "blend %zu round %d: %d vs %d", i, round, A.data[i], want);
            double exact = 0.8 * H.data[i] + 0.2 * F.data[i];
            ck_assert(fabs((double)A.data[i] - exact) <= 1.0);
        }
        da_image_free(&A);
    }
    /* lambda 0 and 1 give the inputs back exactly */
    ck_assert_int_eq(da_dmix_blend(&H, &F, 0.0f, false, &A, &err), DA_OK);
    ck_assert_mem_eq(A.data, H.data, (size_t)w * h * 3);
    da_image_free(&A);
    ck_assert_int_eq(da_dmix_blend(&H, &F, 1.0f, false, &A, &err), DA_OK);
    ck_assert_mem_eq(A.data, F.data, (size_t)w * h * 3);
    da_image_free(&A);
    /* size mismatch and bad lambda are refused */
    da_image S = {0};
    random_image(w, h + 2, 4, &S);
    ck_assert_int_eq(da_dmix_hybrid(&I, &S, DA_ORIENT_VERTICAL, NULL, &A, &err), DA_ERR_SHAPE);
    ck_assert_int_eq(da_dmix_blend(&H, &S, 0.2f, false, &A, &err), DA_ERR_SHAPE);
    ck_assert_int_eq(da_dmix_blend(&H, &F, 1.5f, false, &A, &err), DA_ERR_INVALID_ARG);
    ck_assert_ptr_null(A.data);
    da_image_free(&S);
    da_image_free(&I), da_image_free(&G), da_image_free(&F), da_image_free(&H);
}
END_TEST

/* pattern() of tests/reference/make_mix_fixtures.py */
static void mix_pattern(int w, int h, int s, da_image *im) {
    da_error err;
    ck_assert_int_eq(da_image_alloc(im, w, h, &err), DA_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                im->data[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)(((long)x * 13 + (long)y * 29 + ((long)x * y % 17) * 9 + c * 71 + s * 101) & 255);
}

static char *load_mix_fixture(const char *name, size_t want_len) {
    char path[256], *data;
    size_t len;
    da_error err;
    snprintf(path, sizeof path, "tests/data/augment/%s.bin", name);
    ck_assert_msg(da_read_file(path, &data, &len, &err) == DA_OK, "%s (regenerate with make_mix_fixtures.py)", err.msg);
    ck_assert_uint_eq(len, want_len);
    return data;
}

/* Against numpy running the released code's arithmetic and Pillow's convert("L"): byte for byte. */
START_TEST(test_dmix_numpy_fixtures) {
    const int w = 64, h = 48;
    size_t n = (size_t)w * h * 3;
    da_image I = {0}, G = {0}, F = {0}, H = {0}, A = {0};
    mix_pattern(w, h, 1, &I);
    mix_pattern(w, h, 2, &G);
    mix_pattern(w, h, 3, &F);
    da_error err;
    const char *names[2][2] = {{"hybrid_vertical", "blend_vertical"}, {"hybrid_horizontal", "blend_horizontal"}};
    for (int o = 0; o < 2; o++) {
        ck_assert_int_eq(da_dmix_hybrid(&I, &G, o == 0 ? DA_ORIENT_VERTICAL : DA_ORIENT_HORIZONTAL, NULL, &H, &err), DA_OK);
        char *want = load_mix_fixture(names[o][0], n);
        for (size_t i = 0; i < n; i++) ck_assert_msg((uint8_t)want[i] == H.data[i], "%s byte %zu: %d vs numpy %d", names[o][0], i, H.data[i], (uint8_t)want[i]);
        free(want);
        ck_assert_int_eq(da_dmix_blend(&H, &F, (float)DA_DMIX_LAMBDA, false, &A, &err), DA_OK);
        want = load_mix_fixture(names[o][1], n);
        for (size_t i = 0; i < n; i++) ck_assert_msg((uint8_t)want[i] == A.data[i], "%s byte %zu: %d vs numpy %d", names[o][1], i, A.data[i], (uint8_t)want[i]);
        free(want);
        da_image_free(&H), da_image_free(&A);
    }
    /* every original byte value across the ramp rows (float32 arithmetic throughout would differ in
     * about 0.7% of these), and every (hybrid, fractal) byte pair of the blend */
    da_image ro = {0}, rg = {0}, pb = {0}, po = {0};
    ck_assert_int_eq(da_image_alloc(&ro, 256, 40, &err), DA_OK);
    ck_assert_int_eq(da_image_alloc(&rg, 256, 40, &err), DA_OK);
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 256; x++)
            for (int c = 0; c < 3; c++) {
                ro.data[((size_t)y * 256 + x) * 3 + c] = (uint8_t)x;
                rg.data[((size_t)y * 256 + x) * 3 + c] = (uint8_t)((x * 37 + y * 11 + c * 85) & 255);
            }
    ck_assert_int_eq(da_dmix_hybrid(&ro, &rg, DA_ORIENT_VERTICAL, NULL, &H, &err), DA_OK);
    char *want = load_mix_fixture("ramp_hybrid_vertical", (size_t)256 * 40 * 3);
    for (size_t i = 0; i < (size_t)256 * 40 * 3; i++)
        ck_assert_msg((uint8_t)want[i] == H.data[i], "ramp byte %zu: %d vs numpy %d", i, H.data[i], (uint8_t)want[i]);
    free(want);
    da_image_free(&H);
    ck_assert_int_eq(da_image_alloc(&pb, 256, 256, &err), DA_OK);
    ck_assert_int_eq(da_image_alloc(&po, 256, 256, &err), DA_OK);
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            uint8_t *b = pb.data + ((size_t)y * 256 + x) * 3, *f = po.data + ((size_t)y * 256 + x) * 3;
            b[0] = b[1] = (uint8_t)x, b[2] = (uint8_t)((x + 128) & 255);
            f[0] = f[2] = (uint8_t)y, f[1] = (uint8_t)((y + 64) & 255);
        }
    ck_assert_int_eq(da_dmix_blend(&pb, &po, (float)DA_DMIX_LAMBDA, false, &A, &err), DA_OK);
    want = load_mix_fixture("pairs_blend", (size_t)256 * 256 * 3);
    ck_assert_mem_eq(want, A.data, (size_t)256 * 256 * 3);
    free(want);
    da_image_free(&A), da_image_free(&ro), da_image_free(&rg), da_image_free(&pb), da_image_free(&po);
    for (int k = 0; k < 2; k++) {
        char *lw = load_mix_fixture(k ? "luma_G" : "luma_I", (size_t)w * h);
        const da_image *src = k ? &G : &I;
        for (size_t i = 0; i < (size_t)w * h; i++) ck_assert_int_eq(da_luma601(src->data + 3 * i), (uint8_t)lw[i]);
        free(lw);
    }
    da_image_free(&I), da_image_free(&G), da_image_free(&F);
}
END_TEST

START_TEST(test_degenerate) {
    /* Pillow: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0)) */
    static const uint8_t prim[][4] = {{255, 0, 0, 76}, {0, 255, 0, 150}, {0, 0, 255, 29}, {255, 255, 255, 255},
                                      {128, 128, 128, 128}, {10, 200, 30, 124}};
    for (size_t i = 0; i < sizeof prim / sizeof prim[0]; i++)
        ck_assert_int_eq(da_luma601(prim[i]), prim[i][3]);
    da_image im = {0};
    da_error err;
    ck_assert_int_eq(da_image_alloc(&im, 32, 32, &err), DA_OK);
    const char *why;
    double mean, var;
    memset(im.data, 0, 32 * 32 * 3);
    ck_assert(da_is_degenerate(&im, NULL, &why, &mean, &var));
    ck_assert_str_eq(why, "too dark");
    memset(im.data, 255, 32 * 32 * 3);
    ck_assert(da_is_degenerate(&im, NULL, &why, NULL, NULL));
    ck_assert_str_eq(why, "too bright");
    memset(im.data, 128, 32 * 32 * 3);
    ck_assert(da_is_degenerate(&im, NULL, &why, &mean, &var));
    ck_assert_str_eq(why, "flat");
    ck_assert(mean == 128.0 && var == 0.0);
    /* mean 4.5 (half 0, half 9) is too dark; mean 9 with a little variance is not */
    for (int i = 0; i < 32 * 32; i++) memset(im.data + 3 * i, i & 1 ? 9 : 0, 3);
    ck_assert(da_is_degenerate(&im, NULL, &why, &mean, &var));
    ck_assert_str_eq(why, "too dark");
    ck_assert(fabs(mean - 4.5) < 1e-9 && fabs(var - 20.25) < 1e-9);
    for (int i = 0; i < 32 * 32; i++) memset(im.data + 3 * i, i & 1 ? 10 : 8, 3);
    ck_assert(!da_is_degenerate(&im, NULL, &why, &mean, &var));
    ck_assert_ptr_null(why);
    da_image_free(&im);
    random_image(40, 30, 5, &im);
    ck_assert(!da_is_degenerate(&im, NULL, NULL, NULL, NULL));
    da_image_free(&im);
}
END_TEST

/* ---- DiffCoRe-Mix pixel / patch ------------------------------------------------------------------ */

START_TEST(test_pixel_patch_mix) {
    const int w = 50, h = 37;
    da_image R = {0}, G = {0}, X = {0};
    random_image(w, h, 11, &R);
    random_image(w, h, 12, &G);
    da_error err;
    const float lams[] = {0.5f, 0.73f, 1.0f};
    for (size_t li = 0; li < 3; li++)
        for (int trunc = 0; trunc < 2; trunc++) {
            ck_assert_int_eq(da_pixel_mix(&R, &G, lams[li], trunc, &X, &err), DA_OK);
            for (size_t i = 0; i < (size_t)w * h * 3; i++) {
                double exact = lams[li] * (double)R.data[i] + (1.0 - lams[li]) * (double)G.data[i];
                double want = trunc ? floor(exact) : floor(exact + 0.5);
                /* float32 arithmetic may differ from the exact value only next to a rounding boundary
                 * (integers when truncating, half-integers when rounding) */
                double frac = exact - floor(exact);
                double to_edge = trunc ? fmin(frac, 1.0 - frac) : fabs(frac - 0.5);
                ck_assert_msg(fabs(X.data[i] - want) <= (to_edge < 1e-4 ? 1 : 0),
                              "lam %g i %zu: %d vs %g (R %d G %d exact %.9f)", lams[li], i, X.data[i], want, R.data[i], G.data[i], exact);
            }
            if (lams[li] == 1.0f) ck_assert_mem_eq(X.data, R.data, (size_t)w * h * 3);
            da_image_free(&X);
        }
    /* counts: round half up of r * P^2 */
    ck_assert_int_eq(da_patch_count(4, 0.2), 3);
    ck_assert_int_eq(da_patch_count(4, 0.5), 8);
    ck_assert_int_eq(da_patch_count(4, 0.21875), 4); /* 3.5 -> 4 */
    ck_assert_int_eq(da_patch_count(4, 0.0), 0);
    ck_assert_int_eq(da_patch_count(4, 2.0), 16);
    /* choice: exactly count distinct cells, driven only by the words */
    for (int P = 1; P <= 7; P++)
        for (int count = 0; count <= P * P; count++) {
            da_draw d;
            da_draw_init(&d, 99, (uint64_t)P, (uint32_t)count, DA_DRAW_MIX);
            uint32_t words[64];
            for (int t = 0; t < count; t++) words[t] = da_draw_u32(&d);
            uint8_t cells[64], again[64];
            da_patch_choose(P, count, words, cells);
            da_patch_choose(P, count, words, again);
            int n = 0;
            for (int i = 0; i < P * P; i++) n += cells[i];
            ck_assert_int_eq(n, count);
            ck_assert_mem_eq(cells, again, (size_t)P * P);
            if (P == 4 && count >= 3 && count <= 8) {
                ck_assert_int_eq(da_patch_mix(&R, &G, P, cells, &X, &err), DA_OK);
                /* each pixel comes from the image its cell says; cells tile 50 x 37 exactly */
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++) {
                        int ci = -1, cj = -1;
                        for (int i = 0; i < P; i++)
                            if (y >= i * h / P && y < (i + 1) * h / P) ci = i;
                        for (int j = 0; j < P; j++)
                            if (x >= j * w / P && x < (j + 1) * w / P) cj = j;
                        ck_assert(ci >= 0 && cj >= 0);
                        const da_image *src = cells[ci * P + cj] ? &G : &R;
                        size_t p = ((size_t)y * w + x) * 3;
                        ck_assert_mem_eq(X.data + p, src->data + p, 3);
                    }
                da_image_free(&X);
            }
        }
    uint8_t none[16] = {0};
    ck_assert_int_eq(da_patch_mix(&R, &G, 4, none, &X, &err), DA_OK);
    ck_assert_mem_eq(X.data, R.data, (size_t)w * h * 3);
    da_image_free(&X);
    ck_assert_int_eq(da_patch_mix(&R, &G, 0, none, &X, &err), DA_ERR_INVALID_ARG);
    da_image_free(&R), da_image_free(&G);
}
END_TEST

/* ---- fractals ---------------------------------------------------------------------------------- */

START_TEST(test_fractal_deterministic) {
    da_fractal_opts o;
    da_fractal_opts_init(&o);
    o.size = 96, o.seed = 42;
    da_error err;
    da_image a = {0}, b = {0}, c = {0};
    da_fractal_info ia, ib;
    ck_assert_int_eq(da_fractal_render(&o, 0, &a, &ia, &err), DA_OK);
    ck_assert_int_eq(da_fractal_render(&o, 0, &b, &ib, &err), DA_OK);
    ck_assert_mem_eq(a.data, b.data, (size_t)96 * 96 * 3);
    ck_assert_int_eq(da_fractal_render(&o, 1, &c, NULL, &err), DA_OK);
    ck_assert_msg(memcmp(a.data, c.data, (size_t)96 * 96 * 3) != 0, "k = 0 and k = 1 gave the same image");
    da_image_free(&b), da_image_free(&c);
    o.seed = 43;
    ck_assert_int_eq(da_fractal_render(&o, 0, &c, NULL, &err), DA_OK);
    ck_assert_msg(memcmp(a.data, c.data, (size_t)96 * 96 * 3) != 0, "seeds 42 and 43 gave the same image");
    da_image_free(&a), da_image_free(&c);
    /* the set: image k independent of N and of the thread count */
    char *dir = da_test_tmpdir("fractal");
    char *d1 = da_path_join(dir, "n3"), *d2 = da_path_join(dir, "n5");
    o.seed = 7, o.size = 48;
    omp_set_num_threads(1);
    ck_assert_int_eq(da_fractal_write_set(d1, 0, 3, &o, &err), DA_OK);
    omp_set_num_threads(2);
    ck_assert_int_eq(da_fractal_write_set(d2, 0, 5, &o, &err), DA_OK);
    for (int k = 0; k < 3; k++) {
        char name[64];
        da_fractal_name((uint64_t)k, name, sizeof name);
        char want_name[64];
        snprintf(want_name, sizeof want_name, "fractal_0000%d.png", k);
        ck_assert_str_eq(name, want_name);
        char *p1 = da_path_join(d1, name), *p2 = da_path_join(d2, name), *x1, *x2;
        size_t l1, l2;
        ck_assert_int_eq(da_read_file(p1, &x1, &l1, &err), DA_OK);
        ck_assert_int_eq(da_read_file(p2, &x2, &l2, &err), DA_OK);
        ck_assert_uint_eq(l1, l2);
        ck_assert_mem_eq(x1, x2, l1);
        free(x1), free(x2), free(p1), free(p2);
    }
    char *extra = da_path_join(d1, "fractal_00003.png");
    ck_assert(!da_is_file(extra));
    free(extra);
    free(d1), free(d2);
    da_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_fractal_quality) {
    /* Thresholds (docs/RECIPES.md): an accepted image lights >= 10% of its pixels (a collapsed
     * attractor - a point or a thin curve - lights under 2% at these sizes) and has an RGB standard
     * deviation >= 20 (a flat or monochrome-dim frame is far below; accepted flames measure 25-60).
     * Recomputed here from the pixels, not taken from the generator's report. */
    da_fractal_opts o;
    da_fractal_opts_init(&o);
    o.size = 64, o.seed = 2024;
    da_error err;
    for (uint64_t k = 0; k < 24; k++) {
        da_image im = {0};
        da_fractal_info info;
        ck_assert_int_eq(da_fractal_render(&o, k, &im, &info, &err), DA_OK);
        size_t n = (size_t)64 * 64, lit = 0;
        double mean[3] = {0}, var = 0;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = im.data + 3 * i;
            if (p[0] >= 16 || p[1] >= 16 || p[2] >= 16) lit++;
            for (int c = 0; c < 3; c++) mean[c] += p[c] / (double)n;
        }
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) var += (im.data[3 * i + c] - mean[c]) * (im.data[3 * i + c] - mean[c]) / (3.0 * n);
        ck_assert_msg((double)lit / n >= 0.10, "fractal %d: coverage %.3f", (int)k, (double)lit / n);
        ck_assert_msg(sqrt(var) >= 20.0, "fractal %d: colour std %.2f", (int)k, sqrt(var));
        ck_assert(fabs(info.coverage - (double)lit / n) < 1e-12 && fabs(info.color_std - sqrt(var)) < 1e-6);
        ck_assert(info.n_maps >= 2 && info.n_maps <= 8);
        da_image_free(&im);
    }
    /* the redraw path: with a 60% coverage floor, redraws happen and the result meets the floor */
    da_fractal_opts strict = o;
    strict.min_coverage = 0.6, strict.max_attempts = 200;
    da_image im = {0};
    da_fractal_info info;
    int redrawn = 0;
    for (uint64_t k = 0; k < 8; k++) {
        ck_assert_int_eq(da_fractal_render(&strict, k, &im, &info, &err), DA_OK);
        double cov, cstd;
        da_fractal_stats(&im, &cov, &cstd);
        ck_assert(cov >= 0.6);
        redrawn += info.attempts > 1;
        da_image_free(&im);
    }
    ck_assert_int_gt(redrawn, 0);
    strict.min_coverage = 1.01, strict.max_attempts = 2;
    ck_assert_int_eq(da_fractal_render(&strict, 0, &im, &info, &err), DA_ERR_UNSUPPORTED);
    ck_assert_ptr_null(im.data);
    o.size = 4;
    ck_assert_int_eq(da_fractal_render(&o, 0, &im, NULL, &err), DA_ERR_INVALID_ARG);
}
END_TEST

/* ---- dataset ----------------------------------------------------------------------------------- */

static char *make_dataset(const char *dir, const char *name, int classes, int per, int size, int seed) {
    char *root = da_path_join(dir, name);
    char *out = NULL;
    int rc = da_test_sh(&out, "'%s' mkdataset --classes %d --per-class %d --size %d --seed %d -o '%s' 2>&1", da_test_cli(),
                        classes, per, size, seed, root);
    ck_assert_msg(rc == 0, "mkdataset failed: %s", out ? out : "");
    free(out);
    return root;
}

START_TEST(test_dataset_scan) {
    char *dir = da_test_tmpdir("dataset");
    char *root = make_dataset(dir, "ds", 3, 4, 32, 5);
    char path[4096];
    da_error err;
    /* planted problems */
    snprintf(path, sizeof path, "%s/001.Red_circles/notes.txt", root);
    write_text(path, "not an image\n");
    snprintf(path, sizeof path, "%s/001.Red_circles/.DS_Store", root);
    write_text(path, "hidden");
    snprintf(path, sizeof path, "%s/README", root);
    write_text(path, "stray");
    char *png;
    size_t len;
    snprintf(path, sizeof path, "%s/002.Orange_stripes/img_000.png", root);
    ck_assert_int_eq(da_read_file(path, &png, &len, &err), DA_OK);
    snprintf(path, sizeof path, "%s/002.Orange_stripes/img_cut.png", root);
    ck_assert_int_eq(da_write_file_atomic(path, png, len / 2, &err), DA_OK);
    free(png);
    da_image tiny = {0};
    random_image(4, 4, 3, &tiny);
    snprintf(path, sizeof path, "%s/003.Yellow_triangles/tiny.png", root);
    ck_assert_int_eq(da_image_save_png(path, &tiny, NULL, NULL, 0, &err), DA_OK);
    da_image_free(&tiny);
    snprintf(path, sizeof path, "%s/004.Empty", root);
    ck_assert_int_eq(da_mkdirs(path, &err), DA_OK);
    snprintf(path, sizeof path, "%s/.hidden_class", root);
    ck_assert_int_eq(da_mkdirs(path, &err), DA_OK);

    for (int verify = 1; verify >= 0; verify--) {
        da_scan_opts so = {.verify = verify};
        da_dataset *ds = NULL;
        ck_assert_int_eq(da_dataset_scan(root, &so, &ds, &err), DA_OK);
        ck_assert_uint_eq(ds->n_classes, 4);
        ck_assert_str_eq(ds->classes[0].name, "001.Red_circles");
        ck_assert_str_eq(ds->classes[0].label, "Red circles");
        ck_assert_str_eq(ds->classes[3].name, "004.Empty");
        ck_assert_uint_eq(ds->classes[3].count, 0);
        ck_assert_uint_eq(ds->n_images, verify ? 12 : 14); /* without decoding, the cut and tiny files pass */
        for (size_t c = 0; c < 3; c++) ck_assert_uint_eq(ds->classes[c].count, verify ? 4 : 4 + (c > 0));
        for (size_t i = 1; i < ds->n_images; i++) {
            ck_assert(ds->images[i - 1].cls < ds->images[i].cls ||
                      (ds->images[i - 1].cls == ds->images[i].cls && strcmp(ds->images[i - 1].rel, ds->images[i].rel) < 0));
        }
        const struct {
            da_problem_kind kind;
            const char *path;
        } want[] = {
            {DA_PROBLEM_STRAY_FILE, "README"},
            {DA_PROBLEM_NOT_IMAGE, "001.Red_circles/notes.txt"},
            {DA_PROBLEM_UNREADABLE, "002.Orange_stripes/img_cut.png"},
            {DA_PROBLEM_TOO_SMALL, "003.Yellow_triangles/tiny.png"},
            {DA_PROBLEM_EMPTY_CLASS, "004.Empty"},
        };
        size_t k = 0;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            if (!verify && (want[i].kind == DA_PROBLEM_UNREADABLE || want[i].kind == DA_PROBLEM_TOO_SMALL)) continue;
            ck_assert_msg(k < ds->n_problems, "missing problem %s", want[i].path);
            ck_assert_msg(ds->problems[k].kind == want[i].kind && !strcmp(ds->problems[k].path, want[i].path),
                          "problem %zu: %s %s (%s), expected %s %s", k, da_problem_name(ds->problems[k].kind),
                          ds->problems[k].path, ds->problems[k].msg, da_problem_name(want[i].kind), want[i].path);
            ck_assert(strlen(ds->problems[k].msg) > 0);
            k++;
        }
        ck_assert_uint_eq(ds->n_problems, k);
        if (verify) {
            ck_assert_ptr_nonnull(strstr(ds->problems[3].msg, "4x4"));
            /* the grey JPEG and the RGBA PNG of mkdataset decoded */
            ck_assert_str_eq(ds->images[1].rel, "001.Red_circles/img_001.jpg");
            ck_assert_int_eq(ds->images[1].format, DA_IMAGE_JPEG);
            ck_assert_int_eq(ds->images[1].w, 32);
            ck_assert_int_eq(ds->images[2].format, DA_IMAGE_PNG);
        }
        /* ids: the first 8 bytes of sha256("<class>/<file>"), checked against sha256sum */
        char *out = NULL;
        if (da_test_sh(&out, "printf '%%s' '%s' | sha256sum 2>/dev/null", ds->images[0].rel) == 0 && out &&
            strlen(out) >= 16) {
            char hex[17];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)ds->images[0].id);
            ck_assert_msg(!strncmp(out, hex, 16), "id %s, sha256sum %.16s", hex, out);
        }
        free(out);
        ck_assert(ds->images[0].id == da_image_id("001.Red_circles/img_000.png"));
        for (size_t i = 0; i < ds->n_images; i++)
            for (size_t j = i + 1; j < ds->n_images; j++) ck_assert(ds->images[i].id != ds->images[j].id);
        da_dataset_free(ds);
    }
    /* output stems: a.png + a.jpg in one class fall back to the full name; other classes unaffected */
    {
        char *png2;
        size_t l2;
        snprintf(path, sizeof path, "%s/003.Yellow_triangles/img_000.png", root);
        ck_assert_int_eq(da_read_file(path, &png2, &l2, &err), DA_OK);
        snprintf(path, sizeof path, "%s/003.Yellow_triangles/img_000.jpg.png", root);
        ck_assert_int_eq(da_write_file_atomic(path, png2, l2, &err), DA_OK);
        snprintf(path, sizeof path, "%s/003.Yellow_triangles/img_000.jpg", root);
        ck_assert_int_eq(da_write_file_atomic(path, png2, l2, &err), DA_OK); /* PNG content, .jpg name */
        free(png2);
        da_dataset *d2;
        ck_assert_int_eq(da_dataset_scan(root, NULL, &d2, &err), DA_OK);
        const char *want_stem[][2] = {{"001.Red_circles/img_000.png", "img_000"},
                                      {"003.Yellow_triangles/img_000.jpg", "img_000_jpg"},
                                      {"003.Yellow_triangles/img_000.png", "img_000_png"},
                                      {"003.Yellow_triangles/img_000.jpg.png", "img_000.jpg"},
                                      {"003.Yellow_triangles/img_001.jpg", "img_001"}};
        for (size_t t = 0; t < sizeof want_stem / sizeof want_stem[0]; t++) {
            size_t i = 0;
            while (i < d2->n_images && strcmp(d2->images[i].rel, want_stem[t][0])) i++;
            ck_assert_msg(i < d2->n_images, "%s not scanned", want_stem[t][0]);
            ck_assert_str_eq(d2->images[i].stem, want_stem[t][1]);
            if (t >= 1 && t <= 3) ck_assert_int_eq(d2->images[i].format, DA_IMAGE_PNG); /* sniffed, not named */
        }
        da_dataset_free(d2);
    }
    const char *tags[][2] = {{"a sketch with crayon", "a_sketch_with_crayon"}, {"ukiyo-e", "ukiyo-e"},
                             {"  Autumn!! ", "Autumn"}, {"../x/..", "x"}, {"", "empty"}, {"\xc3\xa9t\xc3\xa9", "t"}};
    for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++) {
        char *g = da_name_tag(tags[t][0]);
        ck_assert_str_eq(g, tags[t][1]);
        free(g);
    }
    char *on = da_output_name("001.Red_circles", "img_000", "watercolor art", 0, "png");
    ck_assert_str_eq(on, "001.Red_circles/img_000_watercolor_art_0.png");
    free(on);
    char sg[32];
    da_sgid_tag(0.5, sg, sizeof sg);
    on = da_output_name("c", "s", sg, 2, "jpg");
    ck_assert_str_eq(on, "c/s_sgid_0.5_2.jpg");
    free(on);
    /* the CLI reports the same problems and does not fail on them */
    char *cli_out = NULL;
    ck_assert_int_eq(da_test_sh(&cli_out, "'%s' scan --shard 1/3 '%s' 2>/dev/null", da_test_cli(), root), 0);
    ck_assert_ptr_nonnull(strstr(cli_out, "class 0\t4\t001.Red_circles\tRed circles\n"));
    ck_assert_ptr_nonnull(strstr(cli_out, "problem too_small\t003.Yellow_triangles/tiny.png\t"));
    ck_assert_ptr_nonnull(strstr(cli_out, "problem empty_class\t004.Empty\t"));
    ck_assert_ptr_nonnull(strstr(cli_out, "shard 1/3 takes 5 images")); /* 14 images (2 added above): 4 + 5 + 5 */
    free(cli_out);
    /* labels */
    const char *lab[][2] = {{"001.Black_footed_Albatross", "Black footed Albatross"},
                            {"n01440764", "n01440764"},
                            {"12.x", "x"},
                            {".5", ".5"},
                            {"Boeing_737-800", "Boeing 737-800"},
                            {"007.", ""}};
    for (size_t i = 0; i < sizeof lab / sizeof lab[0]; i++) {
        char *l = da_class_label(lab[i][0]);
        ck_assert_str_eq(l, lab[i][1]);
        free(l);
    }
    da_dataset *ds = NULL;
    snprintf(path, sizeof path, "%s/missing", dir);
    ck_assert_int_eq(da_dataset_scan(path, NULL, &ds, &err), DA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing"));
    free(root);
    da_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_output_dir_rule) {
    char *dir = da_test_tmpdir("outrule");
    char in[4096], p[4096];
    da_error err;
    snprintf(in, sizeof in, "%s/in", dir);
    snprintf(p, sizeof p, "%s/in/cls", dir);
    ck_assert_int_eq(da_mkdirs(p, &err), DA_OK);
    ck_assert_int_eq(da_check_output_dir(in, in, &err), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "same as"));
    snprintf(p, sizeof p, "%s/in/", dir);
    ck_assert_int_eq(da_check_output_dir(in, p, &err), DA_ERR_INVALID_ARG);
    snprintf(p, sizeof p, "%s/in/cls", dir);
    ck_assert_int_eq(da_check_output_dir(in, p, &err), DA_ERR_INVALID_ARG);
    snprintf(p, sizeof p, "%s/in/new/deeper", dir); /* does not exist yet */
    ck_assert_int_eq(da_check_output_dir(in, p, &err), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "inside"));
    snprintf(p, sizeof p, "%s/out/../in/x", dir);
    ck_assert_int_eq(da_check_output_dir(in, p, &err), DA_ERR_INVALID_ARG);
    snprintf(p, sizeof p, "%s/in/new/../../out", dir); /* leaves the input */
    ck_assert_int_eq(da_check_output_dir(in, p, &err), DA_OK);
    snprintf(p, sizeof p, "%s/in2", dir); /* a prefix of the name is not inside */
    ck_assert_int_eq(da_check_output_dir(in, p, &err), DA_OK);
    snprintf(p, sizeof p, "%s/out", dir);
    ck_assert_int_eq(da_check_output_dir(in, p, &err), DA_OK);
    /* a symlink into the input */
    char link[4096];
    snprintf(link, sizeof link, "%s/link", dir);
    ck_assert_int_eq(symlink(in, link), 0);
    snprintf(p, sizeof p, "%s/link/out", dir);
    ck_assert_int_eq(da_check_output_dir(in, p, &err), DA_ERR_INVALID_ARG);
    ck_assert_int_eq(da_check_output_dir(link, in, &err), DA_ERR_INVALID_ARG);
    snprintf(p, sizeof p, "%s/nope", dir);
    ck_assert_int_eq(da_check_output_dir(p, in, &err), DA_ERR_IO);
    da_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_shards) {
    static const uint32_t Ns[] = {1, 2, 3, 7};
    static const uint64_t Us[] = {0, 1, 5, 7, 17, 100, 1001};
    for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
        for (size_t b = 0; b < sizeof Us / sizeof Us[0]; b++) {
            uint32_t N = Ns[a];
            uint64_t U = Us[b];
            int *owner = calloc(U ? U : 1, sizeof *owner);
            uint64_t mn = UINT64_MAX, mx = 0;
            for (uint32_t I = 0; I < N; I++) {
                char txt[32];
                snprintf(txt, sizeof txt, "%u/%u", I, N);
                da_shard s;
                da_error err;
                ck_assert_int_eq(da_shard_parse(txt, &s, &err), DA_OK);
                uint64_t n = 0;
                for (uint64_t u = 0; u < U; u++)
                    if (da_shard_has(s, u)) {
                        ck_assert_msg(owner[u] == 0, "unit %llu in two shards", (unsigned long long)u);
                        owner[u] = (int)I + 1;
                        ck_assert_uint_eq(da_shard_unit(s, n), u);
                        n++;
                    }
                ck_assert_uint_eq(n, da_shard_size(s, U));
                mn = n < mn ? n : mn, mx = n > mx ? n : mx;
            }
            for (uint64_t u = 0; u < U; u++) ck_assert_msg(owner[u] != 0, "unit %llu in no shard", (unsigned long long)u);
            ck_assert_uint_le(mx - mn, 1);
            free(owner);
        }
    const char *bad[] = {"3/3", "a/2", "1/0", "-1/2", "1/2x", "", "1", "0/70000", " 0/2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        da_shard s;
        da_error err;
        ck_assert_msg(da_shard_parse(bad[i], &s, &err) == DA_ERR_INVALID_ARG, "accepted '%s'", bad[i]);
    }
}
END_TEST

/* ---- manifest ---------------------------------------------------------------------------------- */

static void fill_rec(da_manifest_rec *r, int u, char *outbuf, size_t cap) {
    static const da_model_hash models[] = {{"unet", "aa11"}, {"vae", "bb22"}};
    static const char *devs[] = {"procedural-fractals"};
    da_manifest_rec_init(r);
    r->unit_id = 0x1000000000000000ull + (uint64_t)(u / 3) * 0x123456789ull;
    r->unit_index = (uint32_t)(u % 3);
    r->source = "001.Red_circles/img_000.png";
    r->class_name = u % 2 ? "001.Red_circles" : "002.Orange \"stripes\"";
    r->recipe = "diffusemix";
    r->prompt = u % 3 == 0 ? "Autumn" : "watercolor art";
    r->seed = 42;
    r->sampler = "euler_a";
    r->steps = 100;
    r->guidance = 4.0, r->image_guidance = 1.5;
    r->kept = u % 4 != 3;
    r->reason = r->kept ? NULL : "degenerate: too dark";
    snprintf(outbuf, cap, "blended/cls/img_%d.png", u);
    r->output = r->kept ? outbuf : NULL;
    r->models = models, r->n_models = 2;
    r->deviations = devs, r->n_deviations = 1;
}

START_TEST(test_manifest_roundtrip_resume) {
    char *dir = da_test_tmpdir("manifest");
    char *mpath = da_path_join(dir, "manifest.jsonl");
    da_error err;
    da_manifest_writer *w;
    ck_assert_int_eq(da_manifest_open(mpath, &w, &err), DA_OK);
    char ob[128];
    for (int u = 0; u < 6; u++) {
        da_manifest_rec r;
        fill_rec(&r, u, ob, sizeof ob);
        ck_assert_int_eq(da_manifest_append(w, &r, &err), DA_OK);
        /* the record is on disk before the next one is formed */
        da_manifest m;
        ck_assert_int_eq(da_manifest_read(mpath, &m, &err), DA_OK);
        ck_assert_uint_eq(m.n, (size_t)u + 1);
        da_manifest_free(&m);
    }
    da_manifest_close(w);
    /* a kill mid-record: half a line at the end */
    FILE *fp = fopen(mpath, "ab");
    fputs("{\"unit_id\":\"1000000000000000\",\"unit_index\":7,\"source\":\"001.Red_ci", fp);
    fclose(fp);
    da_manifest m;
    ck_assert_int_eq(da_manifest_read(mpath, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 6);
    ck_assert(m.torn_tail);
    /* fields came back */
    da_json *j;
    ck_assert_int_eq(da_json_parse(m.e[0].line, strlen(m.e[0].line), "rec", &j, &err), DA_OK);
    ck_assert_str_eq(da_json_get_str(j, "prompt"), "Autumn");
    ck_assert_str_eq(da_json_get_str(j, "class"), "002.Orange \"stripes\"");
    ck_assert_str_eq(da_json_get_str(j, "version"), DIFFAUG_VERSION);
    ck_assert_str_eq(da_json_get_str(da_json_get(j, "models"), "vae"), "bb22");
    ck_assert_int_eq(da_json_get(j, "filter_score")->type, DA_JSON_NULL);
    double g;
    ck_assert(da_json_get_num(j, "guidance", &g) && g == 4.0);
    da_json_free(j);
    /* resume: outputs 0, 2 exist; 1 and 4, 5 do not (kept, so not finished); 3 is a drop (finished);
     * a temporary file under 1's name does not count */
    for (int u = 0; u < 3; u += 2) {
        char rel[128], *p;
        snprintf(rel, sizeof rel, "blended/cls/img_%d.png", u);
        p = da_path_join(dir, rel);
        char *pdir = da_path_join(dir, "blended/cls");
        ck_assert_int_eq(da_mkdirs(pdir, &err), DA_OK);
        write_text(p, "png");
        free(p), free(pdir);
    }
    char *tmpf = da_path_join(dir, "blended/cls/img_1.png.tmp.123.0");
    write_text(tmpf, "partial");
    free(tmpf);
    da_resume rs;
    ck_assert_int_eq(da_resume_build(&m, dir, &rs, &err), DA_OK);
    for (int u = 0; u < 6; u++) {
        da_manifest_rec r;
        fill_rec(&r, u, ob, sizeof ob);
        bool want = u == 0 || u == 2 || u == 3;
        ck_assert_msg(da_resume_has(&rs, r.unit_id, r.unit_index) == want, "unit %d", u);
    }
    ck_assert(!da_resume_has(&rs, 0x1000000000000000ull, 7));
    da_resume_free(&rs);
    da_manifest_free(&m);
    /* reopening cuts the torn tail; the next record is a clean line */
    ck_assert_int_eq(da_manifest_open(mpath, &w, &err), DA_OK);
    da_manifest_rec r;
    fill_rec(&r, 6, ob, sizeof ob);
    ck_assert_int_eq(da_manifest_append(w, &r, &err), DA_OK);
    da_manifest_close(w);
    ck_assert_int_eq(da_manifest_read(mpath, &m, &err), DA_OK);
    ck_assert_uint_eq(m.n, 7);
    ck_assert(!m.torn_tail);
    da_manifest_free(&m);
    /* a bad line in the middle is an error naming the line */
    char *bad = da_path_join(dir, "bad.jsonl");
    write_text(bad, "{\"unit_id\":\"0000000000000001\",\"unit_index\":0,\"kept\":true}\nnot json\n"
                    "{\"unit_id\":\"0000000000000002\",\"unit_index\":0,\"kept\":true}\n");
    ck_assert_int_eq(da_manifest_read(bad, &m, &err), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad.jsonl:2"));
    free(bad);
    /* summary */
    ck_assert_int_eq(da_manifest_read(mpath, &m, &err), DA_OK);
    da_summary s = {0};
    ck_assert_int_eq(da_summary_from_manifest(&s, &m, &err), DA_OK);
    char *sp = da_path_join(dir, "summary.json");
    ck_assert_int_eq(da_summary_write(sp, &s, "diffusemix", 2.0, &err), DA_OK);
    char *txt;
    size_t len;
    ck_assert_int_eq(da_read_file(sp, &txt, &len, &err), DA_OK);
    ck_assert_int_eq(da_json_parse(txt, len, "summary", &j, &err), DA_OK);
    int64_t kept, dropped;
    ck_assert(da_json_get_int(j, "kept", &kept) && da_json_get_int(j, "dropped", &dropped));
    ck_assert_int_eq(kept, 6); /* units 0..6 minus the drop at 3 */
    ck_assert_int_eq(dropped, 1);
    double rate;
    ck_assert(da_json_get_num(j, "images_per_s", &rate) && fabs(rate - 3.5) < 1e-9);
    const da_json *cls = da_json_get(j, "classes");
    ck_assert_ptr_nonnull(cls);
    ck_assert_uint_eq(cls->n, 2);
    ck_assert_str_eq(cls->keys[0], "001.Red_circles");
    ck_assert(da_json_get_int(da_json_get(cls, "001.Red_circles"), "dropped", &dropped) && dropped == 1);
    da_json_free(j);
    free(txt), free(sp);
    da_summary_free(&s);
    da_manifest_free(&m);
    char line[128];
    da_progress_format(37, 120, 29.6, line, sizeof line);
    ck_assert_str_eq(line, "37/120 units (30.8%), 1.25 units/s, ETA 00:01:06");
    da_progress_format(0, 10, 1.0, line, sizeof line);
    ck_assert_str_eq(line, "0/10 units (0.0%), 0.00 units/s, ETA --:--:--");
    da_progress_format(1, 4000000, 3600.0, line, sizeof line);
    ck_assert_str_eq(line, "1/4000000 units (0.0%), 0.00 units/s, ETA 99:59:59");
    free(mpath);
    da_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_manifest_merge) {
    char *dir = da_test_tmpdir("merge");
    da_error err;
    const int U = 20;
    char *single = da_path_join(dir, "single.jsonl");
    char *shard[3];
    da_manifest_writer *ws, *wsh[3];
    ck_assert_int_eq(da_manifest_open(single, &ws, &err), DA_OK);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "shard%d.jsonl", i);
        shard[i] = da_path_join(dir, name);
        ck_assert_int_eq(da_manifest_open(shard[i], &wsh[i], &err), DA_OK);
    }
    char ob[128];
    /* the single run writes in unit order; the shards in their own (reversed) order, as threads might */
    for (int u = 0; u < U; u++) {
        da_manifest_rec r;
        fill_rec(&r, u, ob, sizeof ob);
        ck_assert_int_eq(da_manifest_append(ws, &r, &err), DA_OK);
    }
    for (int u = U - 1; u >= 0; u--) {
        da_manifest_rec r;
        fill_rec(&r, u, ob, sizeof ob);
        da_shard s = {(uint32_t)(u % 3), 3};
        ck_assert(da_shard_has(s, (uint64_t)u));
        ck_assert_int_eq(da_manifest_append(wsh[u % 3], &r, &err), DA_OK);
    }
    /* shard 1 also repeats one record (a resumed unit) and was killed mid-record */
    da_manifest_rec r;
    fill_rec(&r, 4, ob, sizeof ob);
    ck_assert_int_eq(da_manifest_append(wsh[1], &r, &err), DA_OK);
    da_manifest_close(ws);
    for (int i = 0; i < 3; i++) da_manifest_close(wsh[i]);
    FILE *fp = fopen(shard[1], "ab");
    fputs("{\"unit_id\":", fp);
    fclose(fp);
    char *m1 = da_path_join(dir, "merged_single.jsonl"), *m3 = da_path_join(dir, "merged_shards.jsonl");
    const char *in1[] = {single};
    const char *in3[] = {shard[2], shard[0], shard[1]};
    size_t n1, n3;
    ck_assert_int_eq(da_manifest_merge(in1, 1, m1, &n1, &err), DA_OK);
    ck_assert_int_eq(da_manifest_merge(in3, 3, m3, &n3, &err), DA_OK);
    ck_assert_uint_eq(n1, (size_t)U);
    ck_assert_uint_eq(n3, (size_t)U);
    char *t1, *t3;
    size_t l1, l3;
    ck_assert_int_eq(da_read_file(m1, &t1, &l1, &err), DA_OK);
    ck_assert_int_eq(da_read_file(m3, &t3, &l3, &err), DA_OK);
    ck_assert_uint_eq(l1, l3);
    ck_assert_mem_eq(t1, t3, l1);
    free(t1), free(t3);
    /* the merge is sorted by (unit_id, unit_index) */
    da_manifest m;
    ck_assert_int_eq(da_manifest_read(m3, &m, &err), DA_OK);
    for (size_t i = 1; i < m.n; i++)
        ck_assert(m.e[i - 1].unit_id < m.e[i].unit_id ||
                  (m.e[i - 1].unit_id == m.e[i].unit_id && m.e[i - 1].unit_index < m.e[i].unit_index));
    da_manifest_free(&m);
    /* the CLI does the same */
    char *m3c = da_path_join(dir, "merged_cli.jsonl"), *out = NULL;
    int rc = da_test_sh(&out, "'%s' manifest merge -o '%s' '%s' '%s' '%s' 2>&1", da_test_cli(), m3c, shard[0], shard[1],
                        shard[2]);
    ck_assert_msg(rc == 0, "%s", out ? out : "");
    free(out);
    ck_assert_int_eq(da_read_file(m3c, &t3, &l3, &err), DA_OK);
    ck_assert_int_eq(da_read_file(m1, &t1, &l1, &err), DA_OK);
    ck_assert_uint_eq(l1, l3);
    ck_assert_mem_eq(t1, t3, l1);
    free(t1), free(t3), free(m3c);
    /* a conflicting record for one unit is refused, and nothing is written */
    char *conf = da_path_join(dir, "conflict.jsonl");
    ck_assert_int_eq(da_manifest_open(conf, &ws, &err), DA_OK);
    fill_rec(&r, 5, ob, sizeof ob);
    r.prompt = "snowy";
    ck_assert_int_eq(da_manifest_append(ws, &r, &err), DA_OK);
    da_manifest_close(ws);
    char *bad = da_path_join(dir, "bad_merge.jsonl");
    const char *inc[] = {shard[0], shard[1], shard[2], conf};
    ck_assert_int_eq(da_manifest_merge(inc, 4, bad, NULL, &err), DA_ERR_DUPLICATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "conflict.jsonl"));
    ck_assert(!da_is_file(bad));
    out = NULL;
    rc = da_test_sh(&out, "'%s' manifest merge -o '%s' '%s' '%s' 2>&1", da_test_cli(), bad, shard[2], conf);
    ck_assert_msg(rc == 1 && out && strstr(out, "conflicting"), "rc %d: %s", rc, out ? out : "");
    free(out);
    /* a missing input is an error, not an empty manifest */
    char *missing = da_path_join(dir, "nope.jsonl");
    const char *inm[] = {missing};
    ck_assert_int_eq(da_manifest_merge(inm, 1, bad, NULL, &err), DA_ERR_IO);
    free(missing), free(bad), free(conf);
    for (int i = 0; i < 3; i++) free(shard[i]);
    free(single), free(m1), free(m3);
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- mkdataset, CLI, contact sheet ------------------------------------------------------------- */

START_TEST(test_mkdataset_deterministic) {
    char *dir = da_test_tmpdir("mkds");
    char *a = make_dataset(dir, "a", 4, 3, 40, 11);
    char *b = make_dataset(dir, "b", 4, 3, 40, 11);
    char *c = make_dataset(dir, "c", 4, 3, 40, 12);
    ck_assert_int_eq(da_test_sh(NULL, "diff -r '%s' '%s' >/dev/null 2>&1", a, b), 0);
    ck_assert_int_ne(da_test_sh(NULL, "diff -r '%s' '%s' >/dev/null 2>&1", a, c), 0);
    da_dataset *ds;
    da_error err;
    ck_assert_int_eq(da_dataset_scan(a, NULL, &ds, &err), DA_OK);
    ck_assert_uint_eq(ds->n_images, 12);
    ck_assert_uint_eq(ds->n_problems, 0);
    int n_png = 0, n_jpg = 0;
    for (size_t i = 0; i < ds->n_images; i++) {
        n_png += ds->images[i].format == DA_IMAGE_PNG, n_jpg += ds->images[i].format == DA_IMAGE_JPEG;
        ck_assert(ds->images[i].w == 40 && ds->images[i].h == 40);
    }
    ck_assert(n_png >= 4 && n_jpg >= 4);
    /* classes differ: the mean colour of class 0 and class 3 images is far apart */
    double mean[2][3] = {{0}};
    for (int k = 0; k < 2; k++) {
        da_image im = {0};
        ck_assert_int_eq(da_image_load(ds->images[k == 0 ? 0 : 9].path, &im, &err), DA_OK);
        for (size_t i = 0; i < (size_t)40 * 40; i++)
            for (int ch = 0; ch < 3; ch++) mean[k][ch] += im.data[3 * i + ch] / 1600.0;
        da_image_free(&im);
    }
    double dist = 0;
    for (int ch = 0; ch < 3; ch++) dist += fabs(mean[0][ch] - mean[1][ch]);
    ck_assert_msg(dist > 20, "class colours too close (%g)", dist);
    /* the contact sheet of the first 4 images plus an empty cell */
    const da_image *cells[6] = {0};
    da_image ims[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(da_image_load(ds->images[i].path, &ims[i], &err), DA_OK);
        cells[i] = &ims[i];
    }
    da_sheet_opts so;
    da_sheet_opts_init(&so);
    so.cell = 20, so.border = 1;
    da_image sheet = {0};
    ck_assert_int_eq(da_contact_sheet(cells, 2, 3, &so, &sheet, &err), DA_OK);
    ck_assert_int_eq(sheet.w, 3 * 20 + 4);
    ck_assert_int_eq(sheet.h, 2 * 20 + 3);
    ck_assert(sheet.data[0] == 128 && sheet.data[((size_t)(sheet.h - 1) * sheet.w + 5) * 3] == 128);
    da_image small = {0};
    ck_assert_int_eq(da_image_resize_bicubic(&ims[1], 20, 20, &small, &err), DA_OK);
    for (int y = 0; y < 20; y++) /* cell (0, 1) holds image 1 resized */
        ck_assert_mem_eq(sheet.data + ((size_t)(1 + y) * sheet.w + 22) * 3, small.data + (size_t)y * 60, 60);
    size_t last = ((size_t)(22 + 10) * sheet.w + 43 + 10) * 3; /* middle of the empty cell (1, 2) */
    ck_assert(sheet.data[last] == 0 && sheet.data[last + 1] == 0);
    da_image_free(&small), da_image_free(&sheet);
    for (int i = 0; i < 4; i++) da_image_free(&ims[i]);
    da_dataset_free(ds);
    free(a), free(b), free(c);
    da_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_cli_fractals) {
    char *dir = da_test_tmpdir("clifr");
    char *out = NULL;
    int rc = da_test_sh(&out, "OMP_NUM_THREADS=1 '%s' fractals -n 3 --size 32 --seed 5 -o '%s/a' 2>&1 && "
                              "OMP_NUM_THREADS=2 '%s' fractals -n 4 --size 32 --seed 5 -o '%s/b' 2>&1 && "
                              "cmp '%s/a/fractal_00002.png' '%s/b/fractal_00002.png' && ls '%s/a' | wc -l",
                        da_test_cli(), dir, da_test_cli(), dir, dir, dir, dir);
    ck_assert_msg(rc == 0, "%s", out ? out : "");
    ck_assert_ptr_nonnull(strstr(out, "\n3\n"));
    free(out);
    rc = da_test_sh(&out, "'%s' fractals -n 3 --size 2 -o '%s/c' 2>&1", da_test_cli(), dir);
    ck_assert_int_eq(rc, 2);
    free(out);
    da_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *augment_suite(void) {
    Suite *s = suite_create("augment");
    TCase *tc = da_tcase("augment", "fast", 60);
    tcase_add_test(tc, test_draw_stream_layout);
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_dmix_mask);
    tcase_add_test(tc, test_dmix_hybrid_blend);
    tcase_add_test(tc, test_dmix_numpy_fixtures);
    tcase_add_test(tc, test_degenerate);
    tcase_add_test(tc, test_pixel_patch_mix);
    tcase_add_test(tc, test_fractal_deterministic);
    tcase_add_test(tc, test_fractal_quality);
    tcase_add_test(tc, test_dataset_scan);
    tcase_add_test(tc, test_output_dir_rule);
    tcase_add_test(tc, test_shards);
    tcase_add_test(tc, test_manifest_roundtrip_resume);
    tcase_add_test(tc, test_manifest_merge);
    tcase_add_test(tc, test_mkdataset_deterministic);
    tcase_add_test(tc, test_cli_fractals);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(augment_suite)
