/* test_torch_rng.c - engine/torch_rng.c against torch 2.15's own randn streams
 * (tests/reference/make_sampler_fixtures.py -> tests/data/sampler/torch_rng*.{json,bin}): every
 * float bit-identical, for single calls after manual_seed and successive calls on one generator.
 * The mt19937 core is also checked against the C++ standard's published value.
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "testutil.h"
#include "torch_rng.h"
#include "util.h"

typedef struct rng_fixture {
    da_json *idx;
    float *data;
    size_t n;
} rng_fixture;

static void load_fixture(const char *stem, rng_fixture *f) {
    char path[256];
    char *text;
    size_t len;
    da_error e;
    snprintf(path, sizeof path, "tests/data/sampler/%s.json", stem);
    ck_assert_msg(da_read_file(path, &text, &len, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(da_json_parse(text, len, path, &f->idx, &e) == DA_OK, "%s", e.msg);
    free(text);
    snprintf(path, sizeof path, "tests/data/sampler/%s.bin", stem);
    ck_assert_msg(da_read_file(path, &text, &len, &e) == DA_OK, "%s", e.msg);
    int64_t nf = 0;
    ck_assert(da_json_get_int(f->idx, "n_floats", &nf));
    ck_assert_uint_eq(len, (size_t)nf * 4);
    f->data = (float *)malloc(len);
    memcpy(f->data, text, len);
    f->n = (size_t)nf;
    free(text);
}

static void free_fixture(rng_fixture *f) {
    da_json_free(f->idx);
    free(f->data);
}

/* Every case: seed, then successive randn(sizes[k]) compared bit for bit with offsets[k]. */
static void check_fixture(const char *stem, void (*randn)(da_torch_rng *, float *, size_t)) {
    rng_fixture f;
    load_fixture(stem, &f);
    const da_json *cases = da_json_get(f.idx, "cases");
    ck_assert(cases && cases->n >= 10);
    size_t checked = 0;
    for (size_t c = 0; c < cases->n; c++) {
        const da_json *cs = &cases->items[c];
        int64_t seed;
        ck_assert(da_json_get_int(cs, "seed", &seed));
        const da_json *sizes = da_json_get(cs, "sizes"), *offs = da_json_get(cs, "offsets");
        da_torch_rng g;
        da_torch_rng_seed(&g, (uint64_t)seed);
        for (size_t k = 0; k < sizes->n; k++) {
            size_t n = (size_t)sizes->items[k].inum, off = (size_t)offs->items[k].inum;
            ck_assert(off + n <= f.n);
            float *got = malloc(n * sizeof *got);
            randn(&g, got, n);
            for (size_t i = 0; i < n; i++) {
                uint32_t a, b;
                memcpy(&a, got + i, 4);
                memcpy(&b, f.data + off + i, 4);
                ck_assert_msg(a == b, "%s: seed %lld, call %zu (randn(%zu)): element %zu is %.9g (0x%08x), torch %.9g (0x%08x)",
                              stem, (long long)seed, k, n, i, got[i], a, f.data[off + i], b);
            }
            checked += n;
            free(got);
        }
    }
    ck_assert_uint_eq(checked, f.n);
    free_fixture(&f);
}

START_TEST(test_randn_matches_torch) { check_fixture("torch_rng", da_torch_randn); }
END_TEST

START_TEST(test_randn_scalar_kernel_matches_torch) { check_fixture("torch_rng_scalar", da_torch_randn_scalar); }
END_TEST

/* The C++ standard (std::mt19937 with its default seed 5489) requires the 10000th output to be
 * 4123659995; torch's engine is that generator. */
START_TEST(test_mt19937_reference_value) {
    da_torch_rng g;
    da_torch_rng_seed(&g, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = da_torch_rng_u32(&g);
    ck_assert_uint_eq(v, 4123659995u);
    /* the seed is truncated to 32 bits, as torch does */
    da_torch_rng a, b;
    da_torch_rng_seed(&a, 7);
    da_torch_rng_seed(&b, (UINT64_C(1) << 32) + 7);
    ck_assert_uint_eq(da_torch_rng_u32(&a), da_torch_rng_u32(&b));
    /* random64 = first draw in the high half */
    da_torch_rng_seed(&a, 3);
    da_torch_rng_seed(&b, 3);
    uint64_t hi = da_torch_rng_u32(&a), lo = da_torch_rng_u32(&a);
    ck_assert(da_torch_rng_u64(&b) == ((hi << 32) | lo));
}
END_TEST

/* The small-tensor path caches the second Box-Muller value in the generator; a re-seed drops it. */
START_TEST(test_reseed_clears_cached_normal) {
    da_torch_rng g;
    float a[1], b[1];
    da_torch_rng_seed(&g, 99);
    da_torch_randn(&g, a, 1); /* leaves a cached sample */
    da_torch_rng_seed(&g, 99);
    da_torch_randn(&g, b, 1);
    ck_assert(memcmp(a, b, 4) == 0);
}
END_TEST

static Suite *torch_rng_suite(void) {
    Suite *s = suite_create("torch_rng");
    TCase *tc = da_tcase("torch_rng", "fast", 30);
    tcase_add_test(tc, test_randn_matches_torch);
    tcase_add_test(tc, test_randn_scalar_kernel_matches_torch);
    tcase_add_test(tc, test_mt19937_reference_value);
    tcase_add_test(tc, test_reseed_clears_cached_normal);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(torch_rng_suite)
