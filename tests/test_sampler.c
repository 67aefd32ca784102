/* test_sampler.c - engine/sampler.c against diffusers 0.42.1 trajectories (fixtures written by
 * tests/reference/make_sampler_fixtures.py): every sampler run on a 2x4x8x8 latent with the
 * analytic model  model_out = tanh(0.5 x_in) (1 + 0.001 t) + 0.1 sin(x_in)  and the same injected
 * noise (initial latents, DDIM-eta and ancestral noise; one case draws them from torch's generator
 * through engine/torch_rng.c instead), every step's latent within cosine 0.999999 and 1e-5
 * relative to the latent's scale. Also the single-step API, batching and argument errors.
 */
#include <math.h>

#include "sampler.h"
#include "samplertest.h"
#include "testutil.h"
#include "torch_rng.h"

typedef struct traj_ctx {
    const float *data;       /* trajectories.bin */
    const da_json *cs;       /* the case */
    size_t n;                /* elements per latent */
    da_torch_rng *g;         /* when the case draws from torch's generator */
    int calls;               /* denoise calls seen */
    const da_schedule *s;
    int begin;
} traj_ctx;

static da_status analytic_model(void *ctx, const float *x_in, float t, float *out) {
    traj_ctx *c = ctx;
    int i = c->begin + c->calls++;
    /* the sampler hands the model the schedule's own timestep */
    ck_assert_msg(t == c->s->timesteps[i], "denoise call %d got t %.9g, expected %.9g", i, t, c->s->timesteps[i]);
    for (size_t j = 0; j < c->n; j++) {
        double x = x_in[j];
        out[j] = (float)(tanh(0.5 * x) * (1.0 + 0.001 * (double)t) + 0.1 * sin(x));
    }
    return DA_OK;
}

static da_status injected_noise(void *ctx, int step, float *out, size_t n) {
    traj_ctx *c = ctx;
    ck_assert_uint_eq(n, c->n);
    if (c->g) {
        da_torch_randn(c->g, out, n);
        return DA_OK;
    }
    const da_json *sn = da_json_get(c->cs, "step_noise");
    int k = step - c->begin;
    ck_assert_msg(k >= 0 && k < (int)sn->n && sn->items[k].inum >= 0, "noise asked for step %d, none recorded", step);
    memcpy(out, c->data + sn->items[k].inum, n * sizeof *out);
    return DA_OK;
}

static float *load_bin(size_t *n) {
    char *text;
    size_t len;
    da_error e;
    ck_assert_msg(da_read_file("tests/data/sampler/trajectories.bin", &text, &len, &e) == DA_OK, "%s", e.msg);
    *n = len / 4;
    float *f = malloc(len);
    memcpy(f, text, len);
    free(text);
    return f;
}

/* one latent vs the reference: cosine >= 0.999999 and max |err| <= 1e-5 * max |ref| */
static void check_latent(const char *label, const float *got, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(ref[i]));
    DA_ASSERT_CLOSE(label, got, ref, n, 0.999999, 1e-5 * fmax(m, 1.0));
}

START_TEST(test_trajectories_match_diffusers) {
    da_json *fx = st_load_json("tests/data/sampler/trajectories.json");
    size_t nf;
    float *data = load_bin(&nf);
    const da_json *cases = da_json_get(fx, "cases");
    ck_assert(cases && cases->n >= 15);
    for (size_t ci = 0; ci < cases->n; ci++) {
        const da_json *cs = &cases->items[ci];
        const char *name = da_json_get_str(cs, "name");
        int64_t steps, begin_want;
        double strength, eta;
        ck_assert(da_json_get_int(cs, "steps", &steps) && da_json_get_int(cs, "begin", &begin_want));
        ck_assert(da_json_get_num(cs, "strength", &strength) && da_json_get_num(cs, "eta", &eta));
        const da_json *shape = da_json_get(cs, "shape");
        size_t n = 1;
        for (size_t k = 0; k < shape->n; k++) n *= (size_t)shape->items[k].inum;

        da_sched_config c;
        st_config(da_json_get_str(cs, "config"), st_kind(da_json_get_str(cs, "kind")), da_json_get(cs, "opts"), &c);
        da_schedule *s;
        da_error e;
        ck_assert_msg(da_schedule_create(&c, (int)steps, &s, &e) == DA_OK, "%s: %s", name, e.msg);
        da_sampler_params p;
        da_sampler_params_init(&p);
        p.eta = eta;
        da_sampler *sp;
        ck_assert_msg(da_sampler_create(s, n, &p, &sp, &e) == DA_OK, "%s: %s", name, e.msg);

        da_torch_rng g;
        traj_ctx ctx = {.data = data, .cs = cs, .n = n, .s = s};
        const da_json *seed = da_json_get(cs, "torch_seed");
        if (seed->type == DA_JSON_NUMBER) {
            da_torch_rng_seed(&g, (uint64_t)seed->inum);
            ctx.g = &g;
        }
        float *noise0 = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float));
        int64_t off;
        ck_assert(da_json_get_int(cs, "noise0", &off));
        if (ctx.g) {
            /* the initial noise from our torch generator must be torch's, bit for bit */
            da_torch_randn(&g, noise0, n);
            ck_assert_msg(memcmp(noise0, data + off, n * 4) == 0, "%s: initial torch noise differs", name);
        } else {
            memcpy(noise0, data + off, n * sizeof(float));
        }
        int begin = 0;
        if (strength < 1.0) {
            begin = da_schedule_img2img_begin(s, strength, &e);
            ck_assert_int_eq(begin, (int)begin_want);
            ck_assert(da_json_get_int(cs, "x0", &off));
            da_sampler_add_noise(s, begin, data + off, noise0, x, n);
        } else {
            da_sampler_init_latents(s, noise0, x, n);
        }
        ck_assert(da_json_get_int(cs, "latents0", &off));
        char label[128];
        snprintf(label, sizeof label, "%s initial latents", name);
        check_latent(label, x, data + off, n);
        ctx.begin = begin;

        /* run step by step through da_sampler_run's building blocks so each latent is compared */
        const da_json *lats = da_json_get(cs, "latents");
        ck_assert_int_eq((int)lats->n, s->n_steps - begin);
        float *x_in = malloc(n * sizeof(float)), *m = malloc(n * sizeof(float)), *nz = malloc(n * sizeof(float));
        da_sampler_begin(sp, begin);
        for (int i = begin; i < s->n_steps; i++) {
            da_sampler_model_input(s, i, x, x_in, n);
            ck_assert(analytic_model(&ctx, x_in, da_sampler_timestep(s, i), m) == DA_OK);
            const float *np = NULL;
            if (da_sampler_needs_noise(sp, i)) {
                injected_noise(&ctx, i, nz, n);
                np = nz;
            } else {
                ck_assert_msg(da_json_get(cs, "step_noise")->items[i - begin].inum < 0,
                              "%s: diffusers drew noise at step %d, we do not", name, i);
            }
            ck_assert_msg(da_sampler_step(sp, i, m, np, x, &e) == DA_OK, "%s: %s", name, e.msg);
            snprintf(label, sizeof label, "%s step %d", name, i);
            check_latent(label, x, data + lats->items[i - begin].inum, n);
        }
        /* the whole loop gives the same result */
        float *x2 = malloc(n * sizeof(float));
        if (ctx.g) {
            da_torch_rng_seed(&g, (uint64_t)seed->inum);
            da_torch_randn(&g, noise0, n);
        }
        if (strength < 1.0) {
            ck_assert(da_json_get_int(cs, "x0", &off));
            da_sampler_add_noise(s, begin, data + off, noise0, x2, n);
        } else {
            da_sampler_init_latents(s, noise0, x2, n);
        }
        ctx.calls = 0;
        ck_assert_msg(da_sampler_run(sp, x2, begin, analytic_model, &ctx, injected_noise, &ctx, &e) == DA_OK, "%s: %s",
                      name, e.msg);
        ck_assert_int_eq(ctx.calls, s->n_steps - begin);
        ck_assert_msg(memcmp(x, x2, n * sizeof(float)) == 0, "%s: da_sampler_run differs from stepping", name);
        free(x2);
        free(x_in);
        free(m);
        free(nz);
        free(noise0);
        free(x);
        da_sampler_free(sp);
        da_schedule_free(s);
    }
    free(data);
    da_json_free(fx);
}
END_TEST

/* A batch is a longer vector: two images stepped together equal each stepped alone (DPM++ keeps
 * history, Euler a draws per-element noise). */
static da_status batch_model(void *ctx, const float *x_in, float t, float *out) {
    size_t n = *(size_t *)ctx;
    for (size_t j = 0; j < n; j++) out[j] = (float)(tanh(0.5 * x_in[j]) * (1.0 + 0.001 * t) + 0.1 * sin(x_in[j]));
    return DA_OK;
}

typedef struct batch_noise {
    size_t per_image, images;
    int which; /* -1: all images, else only that image's noise */
} batch_noise;

static da_status batch_noise_fn(void *ctx, int step, float *out, size_t n) {
    batch_noise *b = ctx;
    for (size_t k = 0; k < n; k++) {
        size_t img = b->which < 0 ? k / b->per_image : (size_t)b->which, j = k % b->per_image;
        out[k] = (float)sin(0.37 * (double)(j + 1) + 1.7 * (double)img + 0.11 * (double)(step + 2));
    }
    return DA_OK;
}

START_TEST(test_batch_equals_single) {
    const da_sampler_kind kinds[] = {DA_SAMPLER_DDIM, DA_SAMPLER_EULER, DA_SAMPLER_EULER_A, DA_SAMPLER_DPMPP_2M,
                                     DA_SAMPLER_EDM_EULER};
    enum { per = 37 };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        da_sched_config c;
        da_sched_config_sd1x(&c, kinds[k]);
        da_schedule *s;
        da_error e;
        ck_assert(da_schedule_create(&c, 12, &s, &e) == DA_OK);
        da_sampler_params p;
        da_sampler_params_init(&p);
        p.eta = 0.3;
        da_sampler *both, *one;
        ck_assert(da_sampler_create(s, 2 * per, &p, &both, &e) == DA_OK);
        ck_assert(da_sampler_create(s, per, &p, &one, &e) == DA_OK);
        float xb[2 * per], xs[2][per], z[2 * per];
        batch_noise bn = {per, 2, -1};
        batch_noise_fn(&bn, DA_NOISE_INIT, z, 2 * per);
        da_sampler_init_latents(s, z, xb, 2 * per);
        size_t nb = 2 * per, n1 = per;
        ck_assert(da_sampler_run(both, xb, 0, batch_model, &nb, batch_noise_fn, &bn, &e) == DA_OK);
        for (int img = 0; img < 2; img++) {
            batch_noise b1 = {per, 1, img};
            da_sampler_init_latents(s, z + img * per, xs[img], per);
            ck_assert(da_sampler_run(one, xs[img], 0, batch_model, &n1, batch_noise_fn, &b1, &e) == DA_OK);
            ck_assert_msg(memcmp(xs[img], xb + img * per, per * sizeof(float)) == 0, "%s: image %d differs in a batch",
                          da_sampler_kind_name(kinds[k]), img);
        }
        da_sampler_free(both);
        da_sampler_free(one);
        da_schedule_free(s);
    }
}
END_TEST

static da_status failing_model(void *ctx, const float *x_in, float t, float *out) {
    (void)ctx;
    (void)x_in;
    (void)t;
    (void)out;
    return DA_ERR_INTERRUPTED;
}

START_TEST(test_sampler_errors) {
    da_sched_config c;
    da_sched_config_sd1x(&c, DA_SAMPLER_EULER_A);
    da_schedule *s;
    da_error e;
    ck_assert(da_schedule_create(&c, 5, &s, &e) == DA_OK);
    da_sampler *sp;
    ck_assert_int_eq(da_sampler_create(s, 0, NULL, &sp, &e), DA_ERR_INVALID_ARG);
    da_sampler_params p;
    da_sampler_params_init(&p);
    p.eta = -1;
    ck_assert_int_eq(da_sampler_create(s, 4, &p, &sp, &e), DA_ERR_INVALID_ARG);
    ck_assert_int_eq(da_sampler_create(s, 4, NULL, &sp, &e), DA_OK);
    float x[4] = {0.1f, -0.2f, 0.3f, 0.4f}, m[4] = {0};
    size_t n = 4;
    /* Euler a needs a noise source */
    ck_assert_int_eq(da_sampler_run(sp, x, 0, batch_model, &n, NULL, NULL, &e), DA_ERR_INVALID_ARG);
    ck_assert_int_eq(da_sampler_run(sp, x, 5, batch_model, &n, NULL, NULL, &e), DA_ERR_INVALID_ARG);
    /* a failing network stops the loop with its status */
    batch_noise bn = {4, 1, 0};
    ck_assert_int_eq(da_sampler_run(sp, x, 0, failing_model, NULL, batch_noise_fn, &bn, &e), DA_ERR_INTERRUPTED);
    ck_assert_ptr_nonnull(strstr(e.msg, "step 0"));
    /* steps in order only */
    da_sampler_begin(sp, 0);
    ck_assert_int_eq(da_sampler_step(sp, 1, m, m, x, &e), DA_ERR_INVALID_ARG);
    ck_assert_int_eq(da_sampler_step(sp, 0, m, NULL, x, &e), DA_ERR_INVALID_ARG); /* no noise given */
    ck_assert_int_eq(da_sampler_step(sp, 0, m, m, x, &e), DA_OK);
    da_sampler_free(sp);
    da_schedule_free(s);
}
END_TEST

/* Final step details diffusers has: DPM++ ends first order with x = x0 exactly when the final sigma
 * is 0; Euler's and EDM's last step lands on the x0 prediction too. */
START_TEST(test_final_step_is_x0) {
    const da_sampler_kind kinds[] = {DA_SAMPLER_EULER, DA_SAMPLER_DPMPP_2M, DA_SAMPLER_EULER_A};
    for (size_t k = 0; k < 3; k++) {
        da_sched_config c;
        da_sched_config_sd1x(&c, kinds[k]);
        da_schedule *s;
        da_error e;
        ck_assert(da_schedule_create(&c, 4, &s, &e) == DA_OK);
        da_sampler *sp;
        ck_assert(da_sampler_create(s, 3, NULL, &sp, &e) == DA_OK);
        float x[3] = {1.0f, -2.0f, 0.5f}, m[3] = {0.25f, 0.5f, -1.0f}, nz[3] = {3, 3, 3};
        da_sampler_begin(sp, 0);
        for (int i = 0; i < 3; i++) ck_assert(da_sampler_step(sp, i, m, nz, x, &e) == DA_OK);
        float sigma = s->sigmas[3];
        float want[3];
        for (int j = 0; j < 3; j++) {
            if (kinds[k] == DA_SAMPLER_DPMPP_2M) {
                float a = 1.0f / sqrtf(sigma * sigma + 1.0f);
                want[j] = (x[j] - sigma * a * m[j]) / a;
            } else {
                want[j] = x[j] - sigma * m[j];
            }
        }
        ck_assert(da_sampler_step(sp, 3, m, nz, x, &e) == DA_OK);
        for (int j = 0; j < 3; j++)
            ck_assert_msg(fabsf(x[j] - want[j]) <= 1e-5f * fabsf(want[j]) + 1e-6f, "%s: %g vs %g",
                          da_sampler_kind_name(kinds[k]), x[j], want[j]);
        da_sampler_free(sp);
        da_schedule_free(s);
    }
}
END_TEST

static Suite *sampler_suite(void) {
    Suite *s = suite_create("sampler");
    TCase *tc = da_tcase("sampler", "fast", 30);
    tcase_add_test(tc, test_trajectories_match_diffusers);
    tcase_add_test(tc, test_batch_equals_single);
    tcase_add_test(tc, test_sampler_errors);
    tcase_add_test(tc, test_final_step_is_x0);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(sampler_suite)
