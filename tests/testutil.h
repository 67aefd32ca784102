/* testutil.h - what every Check suite shares: the main() that runs suites with TAP output, the
 * one tensor comparator (max abs error, max relative error, cosine, first mismatches), temporary
 * directories and paths to the built CLI and the shared data.
 *
 * Tags: every TCase carries one of "fast", "model", "slow", "gpu" (tcase_set_tags); make test
 * excludes slow and gpu through CK_EXCLUDE_TAGS.
 */
#ifndef DA_TESTUTIL_H
#define DA_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>

#include "kcommon.h"
#include "safetensors.h"

/* int main(void) running the given Suite *(*)(void) constructors. */
#define DA_TEST_MAIN(...)                                                                          \
    int main(void) {                                                                               \
        Suite *(*fns[])(void) = {__VA_ARGS__};                                                     \
        return da_test_run(fns, sizeof fns / sizeof fns[0]);                                       \
    }
int da_test_run(Suite *(**fns)(void), size_t n);

/* A TCase with a tag and a timeout (seconds, scaled by CK_TIMEOUT_MULTIPLIER as usual). */
TCase *da_tcase(const char *name, const char *tag, double timeout_s);

/* Compare two f32 tensors; fills a report and returns whether both tolerances hold:
 * cosine >= min_cos and max|a-b| <= max_abs. label names the tensor in the failure text. */
typedef struct da_cmp {
    double max_abs, max_rel, cosine, ref_max_abs;
    size_t worst;       /* index of the largest abs error */
    size_t n_bad;       /* elements with |a-b| > max_abs */
    size_t first_bad[4];
    bool nonfinite;     /* a NaN or Inf in the candidate where the reference is finite */
    char text[512];
} da_cmp;
bool da_compare(const char *label, const float *got, const float *ref, size_t n, double min_cos,
                double max_abs, da_cmp *out);
/* ck_assert wrapper: fails the test with the comparator's report. */
#define DA_ASSERT_CLOSE(label, got, ref, n, min_cos, max_abs)                                      \
    do {                                                                                           \
        da_cmp cmp_;                                                                               \
        bool ok_ = da_compare((label), (got), (ref), (n), (min_cos), (max_abs), &cmp_);            \
        ck_assert_msg(ok_, "%s", cmp_.text);                                                       \
    } while (0)

/* A fresh temporary directory (removed by da_rmtree); caller frees the string. */
char *da_test_tmpdir(const char *tag);
void da_rmtree(const char *path);
/* Path of the built CLI (env DIFFAUG, default build/diffaug) and of ../shared (env DIFFAUG_SHARED). */
const char *da_test_cli(void);
const char *da_test_shared(void);
/* Run a shell command line; returns its exit status (or -1); output captured into *out if non-NULL
 * (malloc'd, NUL-terminated). */
int da_test_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Deterministic test data: a small LCG (state reset per forked test, so every test sees the same
 * sequence) giving floats in [-0.5, 0.5). */
float da_test_frand(void);
float *da_test_rand_buf(size_t n);                              /* malloc'd */
void *da_test_rand_weights(size_t n, dk_wtype t, float scale); /* rounded to t, malloc'd */
const char *da_test_wname(dk_wtype t);                         /* "f32", "f16", "bf16" */

/* A fixture file opened (the test fails with the reader's message otherwise) and a tensor of it
 * that must be there. */
da_st_file *da_test_st_open(const char *path);
const da_st_tensor *da_test_st_need(const da_st_file *f, const char *name);

#endif
