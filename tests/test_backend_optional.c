/* test_backend_optional.c - the optional backend ops appended for a device-resident sampling loop
 * (lincomb, cfg_combine, philox_normal, sampler_step, model_input) on the CPU backend, bit for bit against the
 * code they stand in for: da_sampler_step / da_sampler_model_input for every sampler, engine/rng.c's da_rng_normal (and known answers from the Philox / Box-Muller code as it
 * was before its per-element math moved into kernels/cpu/sampling.h), the sampler's add_noise and
 * init_latents, and the pipeline's guidance formula in torch's order. Also: graphs are not offered
 * by the CPU (a clear DA_ERR_UNSUPPORTED), bad term counts are refused, planning computes nothing.
 * The CUDA versions are compared against these in tests/test_gpu.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "rng.h"
#include "sampler.h"
#include "schedule.h"
#include "testutil.h"
#include "util.h"

static float *buf(size_t n, float lo, float hi) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (da_test_frand() + 0.5f);
    return p;
}

static void assert_bits_eq(const char *what, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(dk_f32_bits(a[i]) == dk_f32_bits(b[i]), "%s: element %zu: %a != %a", what, i, (double)a[i],
                      (double)b[i]);
}

START_TEST(test_philox_normal_op_equals_rng) {
    da_backend *be = da_backend_cpu_new();
    ck_assert_ptr_nonnull(be->ops->philox_normal);
    /* known answers: da_rng_normal(7, 99, 0, .., 0, 1) as rng.c computed it before the refactor */
    const uint32_t kat[4] = {3206155739u, 1063558937u, 3199557028u, 1060055831u};
    float y[4];
    da_op_philox_normal(be, y, 7, 99, 0, 4, 0.0f, 1.0f);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(dk_f32_bits(y[i]), kat[i]);
    da_op_philox_normal(be, y, 7, 99, 1000001, 1, 0.0f, 1.0f);
    ck_assert_uint_eq(dk_f32_bits(y[0]), 1054332970u);
    /* odd and even starting offsets, a mean and a std, long runs */
    const uint64_t firsts[] = {0, 1, 2, 12345, 4 * 64 * 64 + 3};
    const size_t ns[] = {1, 2, 3, 4 * 64 * 64, 1001};
    for (size_t f = 0; f < 5; f++)
        for (size_t k = 0; k < 5; k++) {
            size_t n = ns[k];
            float *a = malloc(n * 4), *b = malloc(n * 4);
            da_op_philox_normal(be, a, 0x1234567890abcdefull, da_rng_stream_of("noise"), firsts[f], n, 0.25f, 2.0f);
            da_rng_normal(0x1234567890abcdefull, da_rng_stream_of("noise"), firsts[f], n, 0.25f, 2.0f, b);
            assert_bits_eq("philox_normal", a, b, n);
            /* element i is a function of (seed, stream, first + i) alone */
            if (n > 2) {
                float c;
                da_rng_normal(0x1234567890abcdefull, da_rng_stream_of("noise"), firsts[f] + n - 1, 1, 0.25f, 2.0f, &c);
                ck_assert_uint_eq(dk_f32_bits(c), dk_f32_bits(a[n - 1]));
            }
            free(a), free(b);
        }
    ck_assert_int_eq(be->st, DA_OK);
    da_backend_free(be);
}
END_TEST

/* the sampler's own linear combinations, done by the lincomb op, bit for bit */
START_TEST(test_lincomb_op_equals_sampler) {
    da_backend *be = da_backend_cpu_new();
    const size_t n = 4 * 64 * 64 + 5;
    float *x0 = buf(n, -3, 3), *nz = buf(n, -4, 4), *ref = malloc(n * 4), *y = malloc(n * 4);
    const da_sampler_kind kinds[] = {DA_SAMPLER_DDIM, DA_SAMPLER_EULER, DA_SAMPLER_DPMPP_2M, DA_SAMPLER_EULER_A,
                                     DA_SAMPLER_EDM_EULER};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        da_sched_config c;
        da_sched_config_sd1x(&c, kinds[k]);
        da_schedule *s;
        da_error e;
        ck_assert_msg(da_schedule_create(&c, 20, &s, &e) == DA_OK, "%s", e.msg);
        for (int begin = 0; begin < 20; begin += 7) {
            /* img2img noising: a x0 + b noise (DDIM, DPM++) or x0 + noise b (Euler family, EDM) */
            float a, b;
            da_schedule_noise_coeffs(s, begin, &a, &b);
            da_sampler_add_noise(s, begin, x0, nz, ref, n);
            bool ab = kinds[k] == DA_SAMPLER_DDIM || kinds[k] == DA_SAMPLER_DPMPP_2M;
            const float coef[2] = {ab ? a : 1.0f, b};
            const float *xs[2] = {x0, nz};
            da_op_lincomb(be, y, 2, coef, xs, n);
            assert_bits_eq("add_noise as lincomb", y, ref, n);
        }
        /* txt2img: noise * init_noise_sigma */
        da_sampler_init_latents(s, nz, ref, n);
        const float sg = s->init_noise_sigma;
        const float *xs1[1] = {nz};
        da_op_lincomb(be, y, 1, &sg, xs1, n);
        assert_bits_eq("init_latents as lincomb", y, ref, n);
        da_schedule_free(s);
    }
    /* three and four terms, in place: ((a0 x0 + a1 x1) + a2 x2) + a3 x3, products rounded */
    float *x2 = buf(n, -1, 1), *x3 = buf(n, -1, 1), *acc = malloc(n * 4);
    memcpy(acc, x0, n * 4);
    const float c4[4] = {0.9f, -0.3f, 1.7f, -2.5f};
    const float *xs4[4] = {acc, nz, x2, x3};
    for (size_t j = 0; j < n; j++) {
        float t = c4[0] * x0[j];
        t = t + c4[1] * nz[j];
        t = t + c4[2] * x2[j];
        ref[j] = t + c4[3] * x3[j];
    }
    da_op_lincomb(be, acc, 4, c4, xs4, n);
    assert_bits_eq("lincomb 4 terms in place", acc, ref, n);
    ck_assert_int_eq(be->st, DA_OK);
    /* refused term counts */
    da_error err;
    da_op_lincomb(be, y, 0, c4, xs4, n);
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "lincomb"));
    da_op_lincomb(be, y, DK_LINCOMB_MAX + 1, c4, xs4, n);
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_INVALID_ARG);
    free(x0), free(nz), free(ref), free(y), free(x2), free(x3), free(acc);
    da_backend_free(be);
}
END_TEST

/* guidance as pipeline.c computes it (torch's order), plain and InstructPix2Pix */
START_TEST(test_cfg_op_equals_pipeline_formula) {
    da_backend *be = da_backend_cpu_new();
    const size_t n = 4 * 64 * 64;
    float *u = buf(n, -2, 2), *c = buf(n, -2, 2), *im = buf(n, -2, 2), *y = malloc(n * 4), *ref = malloc(n * 4);
    const float gs[] = {7.5f, 1.0f, 0.0f, 12.25f};
    for (int g = 0; g < 4; g++) {
        for (size_t j = 0; j < n; j++) ref[j] = u[j] + gs[g] * (c[j] - u[j]);
        da_op_cfg_combine(be, y, u, c, NULL, gs[g], 0.0f, n);
        assert_bits_eq("cfg", y, ref, n);
        const float gi = 1.5f;
        for (size_t j = 0; j < n; j++) {
            float a = u[j] + gs[g] * (c[j] - im[j]);
            ref[j] = a + gi * (im[j] - u[j]);
        }
        da_op_cfg_combine(be, y, u, c, im, gs[g], gi, n);
        assert_bits_eq("cfg edit", y, ref, n);
    }
    /* in place over the uncond branch, as a pipeline would */
    for (size_t j = 0; j < n; j++) ref[j] = u[j] + 7.5f * (c[j] - u[j]);
    da_op_cfg_combine(be, u, u, c, NULL, 7.5f, 0.0f, n);
    assert_bits_eq("cfg in place", u, ref, n);
    ck_assert_int_eq(be->st, DA_OK);
    free(u), free(c), free(im), free(y), free(ref);
    da_backend_free(be);
}
END_TEST

/* Every sampler, both predictions and the variants (DDIM clip + eta, DPM++ order 1 / 2, midpoint /
 * heun, euler_at_final): da_sampler_step on one copy, da_sampler_step_params + the sampler_step op
 * (with the caller's own x0 buffers, swapped as documented) on another, equal bit for bit per step. */
START_TEST(test_sampler_step_op_equals_sampler) {
    da_backend *be = da_backend_cpu_new();
    const size_t n = 4 * 32 * 32 + 3;
    const da_sampler_kind kinds[] = {DA_SAMPLER_DDIM, DA_SAMPLER_EULER, DA_SAMPLER_EULER_A, DA_SAMPLER_DPMPP_2M,
                                     DA_SAMPLER_EDM_EULER};
    int seen[DK_STEP_EDM + 1] = {0};
    for (size_t k = 0; k < 5; k++)
        for (int pv = 0; pv < 2; pv++)
            for (int var = 0; var < 3; var++) {
                da_sched_config c;
                da_sched_config_sd1x(&c, kinds[k]);
                c.prediction = pv ? DA_PRED_V : DA_PRED_EPSILON;
                if (var == 1) c.clip_sample = true, c.solver_order = 1;
                if (var == 2) c.solver_heun = true, c.euler_at_final = true;
                da_schedule *s;
                da_error e;
                ck_assert_msg(da_schedule_create(&c, 8, &s, &e) == DA_OK, "%s", e.msg);
                da_sampler_params sp_p;
                da_sampler_params_init(&sp_p);
                if (var) sp_p.eta = 0.6;
                da_sampler *a, *b;
                ck_assert(da_sampler_create(s, n, &sp_p, &a, &e) == DA_OK);
                ck_assert(da_sampler_create(s, n, &sp_p, &b, &e) == DA_OK);
                float *xa = buf(n, -3, 3), *xb = malloc(n * 4), *m = malloc(n * 4), *nz = malloc(n * 4);
                float *x0[2] = {malloc(n * 4), malloc(n * 4)};
                memcpy(xb, xa, n * 4);
                da_sampler_begin(a, 0), da_sampler_begin(b, 0);
                for (int i = 0; i < s->n_steps; i++) {
                    for (size_t j = 0; j < n; j++) m[j] = 0.8f * sinf(xa[j] + 0.1f * (float)i), nz[j] = da_test_frand() * 2;
                    /* the model input first (both copies still equal here) */
                    float *mi_ref = malloc(n * 4), *mi = malloc(n * 4);
                    dk_model_input mp;
                    da_sampler_model_input(s, i, xa, mi_ref, n);
                    da_sampler_model_input_params(s, i, &mp);
                    da_op_model_input(be, &mp, mi, xb, n);
                    assert_bits_eq("model_input", mi, mi_ref, n);
                    free(mi), free(mi_ref);
                    ck_assert_msg(da_sampler_step(a, i, m, nz, xa, &e) == DA_OK, "%s", e.msg);
                    dk_step st;
                    ck_assert_msg(da_sampler_step_params(b, i, &st, &e) == DA_OK, "%s", e.msg);
                    seen[st.kind]++;
                    da_op_sampler_step(be, &st, xb, m, nz, x0[0], x0[1], n);
                    ck_assert_int_eq(be->st, DA_OK);
                    if (st.uses_x0) {
                        float *t = x0[0];
                        x0[0] = x0[1], x0[1] = t;
                    }
                    char lab[96];
                    snprintf(lab, sizeof lab, "%s pred %s variant %d step %d", da_sampler_kind_name(kinds[k]),
                             pv ? "v" : "eps", var, i);
                    assert_bits_eq(lab, xb, xa, n);
                }
                /* out of order is refused by the params too */
                dk_step st;
                ck_assert_int_eq(da_sampler_step_params(b, 0, &st, &e), DA_ERR_INVALID_ARG);
                free(xa), free(xb), free(m), free(nz), free(x0[0]), free(x0[1]);
                da_sampler_free(a), da_sampler_free(b);
                da_schedule_free(s);
            }
    for (int k = 0; k <= DK_STEP_EDM; k++) ck_assert_msg(seen[k] > 0, "step kind %d never exercised", k);
    /* a noisy step without noise is refused */
    dk_step st = {.kind = DK_STEP_EULER_A, .noisy = 1, .c = {1, 1, 1, 1, 1, 1}};
    float x[4] = {0}, mm[4] = {0};
    da_error err;
    da_op_sampler_step(be, &st, x, mm, NULL, NULL, NULL, 4);
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "noise"));
    da_backend_free(be);
}
END_TEST

START_TEST(test_optional_ops_protocol) {
    da_backend *be = da_backend_cpu_new();
    /* no graphs on the CPU: a clear error, not a silent no-op */
    ck_assert(!da_backend_has_graphs(be));
    da_error err;
    ck_assert_int_eq(da_op_graph_begin(be), DA_ERR_UNSUPPORTED);
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "graph_begin"));
    ck_assert_ptr_nonnull(strstr(err.msg, "cpu"));
    /* planning computes nothing */
    float y[8] = {-7, -7, -7, -7, -7, -7, -7, -7}, x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float a = 2.0f;
    const float *xs[1] = {x};
    da_backend_plan(be);
    da_op_lincomb(be, y, 1, &a, xs, 8);
    da_op_cfg_combine(be, y, x, x, NULL, 7.5f, 0, 8);
    da_op_philox_normal(be, y, 1, 2, 0, 8, 0, 1);
    for (int i = 0; i < 8; i++) ck_assert_float_eq(y[i], -7.0f);
    ck_assert_int_eq(da_backend_commit(be, &err), DA_OK);
    /* a sticky error stops the optional ops too */
    da_backend_fail(be, DA_ERR_SHAPE, "earlier failure");
    da_op_lincomb(be, y, 1, &a, xs, 8);
    ck_assert_float_eq(y[0], -7.0f);
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_SHAPE);
    da_op_lincomb(be, y, 1, &a, xs, 8);
    ck_assert_float_eq(y[7], 16.0f);
    da_backend_free(be);
}
END_TEST

static Suite *optional_suite(void) {
    Suite *s = suite_create("backend_optional");
    TCase *tc = da_tcase("sampling-ops", "fast", 60);
    tcase_add_test(tc, test_philox_normal_op_equals_rng);
    tcase_add_test(tc, test_lincomb_op_equals_sampler);
    tcase_add_test(tc, test_cfg_op_equals_pipeline_formula);
    tcase_add_test(tc, test_sampler_step_op_equals_sampler);
    tcase_add_test(tc, test_optional_ops_protocol);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(optional_suite)
