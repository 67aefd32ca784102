/* test_schedule.c - engine/schedule.c against diffusers 0.42.1 (fixtures written by
 * tests/reference/make_sampler_fixtures.py): the training tables, every (config, scheduler class,
 * options, step count) schedule's timesteps (exactly) and sigmas (1e-6 relative), init_noise_sigma,
 * the img2img begin index and add_noise coefficients for strengths 0.3/0.5/0.75/1.0, and the
 * config reader's handling of real and bad scheduler_config.json files.
 */
#include <math.h>

#include "samplertest.h"
#include "testutil.h"

START_TEST(test_training_tables) {
    da_json *fx = st_load_json("tests/data/sampler/schedules.json");
    const da_json *tables = da_json_get(fx, "tables");
    ck_assert(tables && tables->n == 2);
    for (size_t k = 0; k < tables->n; k++) {
        da_sched_config c;
        st_config(tables->keys[k], DA_SAMPLER_EULER, NULL, &c);
        da_schedule *s;
        da_error e;
        ck_assert_msg(da_schedule_create(&c, 10, &s, &e) == DA_OK, "%s", e.msg);
        const da_json *acp = da_json_get(&tables->items[k], "alphas_cumprod");
        const da_json *sig = da_json_get(&tables->items[k], "sigmas");
        ck_assert_int_eq((int)acp->n, s->n_train);
        int ulp_off = 0;
        for (int i = 0; i < s->n_train; i++) {
            /* torch's float32 cumprod reproduced exactly */
            ck_assert_msg((float)s->alphas_cumprod[i] == (float)acp->items[i].num,
                          "%s: alphas_cumprod[%d] %.9g, torch %.9g", tables->keys[k], i, s->alphas_cumprod[i],
                          acp->items[i].num);
            /* torch's sqrt is 1 ulp low on a few entries; we round correctly */
            float want = (float)sig->items[i].num, got = s->train_sigmas[i];
            if (got != want) {
                ck_assert_msg(nextafterf(want, INFINITY) == got, "%s: sigma[%d] %.9g, torch %.9g", tables->keys[k], i,
                              got, want);
                ulp_off++;
            }
        }
        ck_assert_int_le(ulp_off, 20);
        da_schedule_free(s);
    }
    da_json_free(fx);
}
END_TEST

START_TEST(test_schedules_match_diffusers) {
    da_json *fx = st_load_json("tests/data/sampler/schedules.json");
    const da_json *cases = da_json_get(fx, "cases");
    ck_assert(cases && cases->n > 100);
    size_t n_frac_inexact = 0;
    for (size_t ci = 0; ci < cases->n; ci++) {
        const da_json *cs = &cases->items[ci];
        const char *cfg_name = da_json_get_str(cs, "config"), *kname = da_json_get_str(cs, "kind");
        int64_t steps;
        ck_assert(da_json_get_int(cs, "steps", &steps));
        da_sched_config c;
        st_config(cfg_name, st_kind(kname), da_json_get(cs, "opts"), &c);
        da_schedule *s;
        da_error e;
        ck_assert_msg(da_schedule_create(&c, (int)steps, &s, &e) == DA_OK, "%s", e.msg);
        char label[160];
        snprintf(label, sizeof label, "case %zu (%s, %s, %lld steps)", ci, cfg_name, kname, (long long)steps);

        const da_json *ts = da_json_get(cs, "timesteps");
        ck_assert_msg((int)ts->n == s->n_steps, "%s: %d timesteps, diffusers %zu", label, s->n_steps, ts->n);
        for (int i = 0; i < s->n_steps; i++) {
            float want = (float)ts->items[i].num, got = s->timesteps[i];
            if (c.kind == DA_SAMPLER_EDM_EULER) {
                /* 0.25 ln sigma: exact when sigma is; torch's vectorised expf in the exponential
                 * schedule is 1 ulp off glibc's on some sigmas, i.e. 1.5e-8 here */
                ck_assert_msg(fabsf(got - want) <= 3e-8f, "%s: timestep %d is %.9g, diffusers %.9g", label, i, got, want);
            } else if (want == floorf(want)) {
                ck_assert_msg(got == want, "%s: timestep %d is %.9g, diffusers %.9g", label, i, got, want);
            } else {
                /* fractional timesteps recovered from Karras/exponential sigmas through numpy's
                 * float32 log table: equal up to that table's last-bit differences */
                ck_assert_msg(st_close(got, want, 2e-6), "%s: timestep %d is %.9g, diffusers %.9g", label, i, got, want);
                n_frac_inexact += got != want;
            }
        }
        const da_json *sg = da_json_get(cs, "sigmas");
        if (sg) {
            ck_assert_int_eq((int)sg->n, s->n_steps + 1);
            for (int i = 0; i <= s->n_steps; i++)
                ck_assert_msg(st_close(s->sigmas[i], sg->items[i].num, 1e-6), "%s: sigma %d is %.9g, diffusers %.9g",
                              label, i, s->sigmas[i], sg->items[i].num);
        }
        double ins;
        ck_assert(da_json_get_num(cs, "init_noise_sigma", &ins));
        ck_assert_msg(st_close(s->init_noise_sigma, ins, 1e-6), "%s: init_noise_sigma %.9g, diffusers %.9g", label,
                      s->init_noise_sigma, ins);

        const da_json *img = da_json_get(cs, "img2img");
        for (size_t k = 0; k < img->n; k++) {
            double strength, a, b;
            int64_t begin;
            ck_assert(da_json_get_num(&img->items[k], "strength", &strength));
            ck_assert(da_json_get_int(&img->items[k], "begin", &begin));
            da_error e2;
            int got = da_schedule_img2img_begin(s, strength, &e2);
            ck_assert_msg(got == begin, "%s: strength %g begins at %d, diffusers %lld", label, strength, got,
                          (long long)begin);
            if (begin < 0) {
                ck_assert_int_eq(e2.code, DA_ERR_INVALID_ARG);
                continue;
            }
            ck_assert(da_json_get_num(&img->items[k], "a", &a) && da_json_get_num(&img->items[k], "b", &b));
            float fa, fb;
            da_schedule_noise_coeffs(s, got, &fa, &fb);
            ck_assert_msg(st_close(fa, a, 1e-6) && st_close(fb, b, 1e-6),
                          "%s: strength %g add_noise coefficients %.9g %.9g, diffusers %.9g %.9g", label, strength, fa,
                          fb, a, b);
        }
        da_schedule_free(s);
    }
    /* most fractional timesteps are bit-exact too */
    ck_assert_uint_le(n_frac_inexact, 60); /* 36 of 1040 with numpy 2.4.6 */
    da_json_free(fx);
}
END_TEST

START_TEST(test_sd15_config_equals_builtin_defaults) {
    for (int k = 0; k < DA_SAMPLER_COUNT; k++) {
        if (k == DA_SAMPLER_EDM_EULER) continue;
        da_sched_config a, b;
        st_config("sd15", (da_sampler_kind)k, NULL, &a);
        da_sched_config_sd1x(&b, (da_sampler_kind)k);
        ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "%s: sd15.json differs from da_sched_config_sd1x",
                      da_sampler_kind_name((da_sampler_kind)k));
    }
    /* class defaults differ per class, as in diffusers: DDIM leading + clip, Euler linspace */
    da_sched_config c;
    da_sched_config_defaults(&c, DA_SAMPLER_DDIM);
    ck_assert(c.spacing == DA_SPACING_LEADING && c.clip_sample && c.set_alpha_to_one);
    da_sched_config_defaults(&c, DA_SAMPLER_EULER);
    ck_assert(c.spacing == DA_SPACING_LINSPACE && c.beta_schedule == DA_BETA_LINEAR);
}
END_TEST

START_TEST(test_config_reader) {
    da_sched_config c;
    da_error e;
    /* a config diffusers saved itself: -Infinity, unrelated keys kept from the source config */
    ck_assert_msg(da_sched_config_load("tests/data/sampler/configs/dpm_saved.json", DA_SAMPLER_FROM_CONFIG, &c, &e) ==
                      DA_OK, "%s", e.msg);
    ck_assert_int_eq(c.kind, DA_SAMPLER_DPMPP_2M);
    ck_assert_int_eq(c.sigmas, DA_SIGMAS_KARRAS);
    ck_assert_int_eq(c.steps_offset, 1);
    ck_assert(c.beta_schedule == DA_BETA_SCALED_LINEAR);
    /* the class in the file decides with FROM_CONFIG */
    ck_assert(da_sched_config_load("tests/data/sampler/configs/ip2p.json", DA_SAMPLER_FROM_CONFIG, &c, &e) == DA_OK);
    ck_assert_int_eq(c.kind, DA_SAMPLER_EULER_A);
    ck_assert(da_sched_config_load("tests/data/sampler/configs/edm_cosxl.json", DA_SAMPLER_FROM_CONFIG, &c, &e) == DA_OK);
    ck_assert(c.kind == DA_SAMPLER_EDM_EULER && c.edm_exponential && c.prediction == DA_PRED_V && c.sigma_max == 120.0 &&
              c.sigma_data == 1.0);
    /* SD 1.5's PNDM file is a source of constants only */
    ck_assert_int_eq(da_sched_config_load("tests/data/sampler/configs/sd15.json", DA_SAMPLER_FROM_CONFIG, &c, &e),
                     DA_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e.msg, "PNDMScheduler"));

    struct {
        const char *text;
        da_sampler_kind kind;
        da_status want;
        const char *needle;
    } bad[] = {
        {"{\"_class_name\": \"FancyNewScheduler\"}", DA_SAMPLER_EULER, DA_ERR_UNSUPPORTED, "unknown scheduler class"},
        {"{\"beta_start\": 0.001}", DA_SAMPLER_EULER, DA_ERR_FORMAT, "_class_name"},
        {"[1, 2]", DA_SAMPLER_EULER, DA_ERR_FORMAT, "object"},
        {"{\"_class_name\": \"DDIMScheduler\", \"rescale_betas_zero_snr\": true}", DA_SAMPLER_DDIM, DA_ERR_UNSUPPORTED,
         "rescale_betas_zero_snr"},
        {"{\"_class_name\": \"DDIMScheduler\", \"timestep_spacing\": \"sideways\"}", DA_SAMPLER_DDIM, DA_ERR_UNSUPPORTED,
         "sideways"},
        {"{\"_class_name\": \"DDIMScheduler\", \"beta_schedule\": \"squaredcos_cap_v2\"}", DA_SAMPLER_EULER,
         DA_ERR_UNSUPPORTED, "squaredcos_cap_v2"},
        {"{\"_class_name\": \"DDIMScheduler\", \"trained_betas\": [0.1, 0.2]}", DA_SAMPLER_DDIM, DA_ERR_UNSUPPORTED,
         "trained_betas"},
        {"{\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": \"sde-dpmsolver++\"}",
         DA_SAMPLER_DPMPP_2M, DA_ERR_UNSUPPORTED, "sde-dpmsolver++"},
        {"{\"_class_name\": \"DPMSolverMultistepScheduler\", \"solver_order\": 3}", DA_SAMPLER_DPMPP_2M,
         DA_ERR_UNSUPPORTED, "solver_order"},
        {"{\"_class_name\": \"EulerDiscreteScheduler\", \"use_karras_sigmas\": true, \"use_exponential_sigmas\": true}",
         DA_SAMPLER_EULER, DA_ERR_FORMAT, "exclusive"},
        {"{\"_class_name\": \"EulerDiscreteScheduler\", \"steps_offset\": 1.5}", DA_SAMPLER_EULER, DA_ERR_FORMAT,
         "steps_offset"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        da_err_clear(&e);
        da_status st = da_sched_config_parse(bad[i].text, strlen(bad[i].text), "cfg.json", bad[i].kind, &c, &e);
        ck_assert_msg(st == bad[i].want, "bad config %zu: status %s, want %s (%s)", i, da_status_name(st),
                      da_status_name(bad[i].want), e.msg);
        ck_assert_msg(strstr(e.msg, bad[i].needle) && strstr(e.msg, "cfg.json"), "bad config %zu: message \"%s\"", i,
                      e.msg);
    }
    /* keys another class owns are ignored, as from_config does: DDIM's thresholding means nothing to Euler */
    const char *t = "{\"_class_name\": \"DDIMScheduler\", \"thresholding\": true, \"set_alpha_to_one\": false}";
    ck_assert(da_sched_config_parse(t, strlen(t), "x", DA_SAMPLER_EULER, &c, &e) == DA_OK);
    ck_assert_int_eq(da_sched_config_parse(t, strlen(t), "x", DA_SAMPLER_DDIM, &c, &e), DA_ERR_UNSUPPORTED);
    /* a string value "-Infinity" stays a string */
    t = "{\"_class_name\": \"EulerDiscreteScheduler\", \"note\": \"-Infinity\", \"beta_end\": 0.03}";
    ck_assert(da_sched_config_parse(t, strlen(t), "x", DA_SAMPLER_EULER, &c, &e) == DA_OK);
    ck_assert(c.beta_end == 0.03);
}
END_TEST

START_TEST(test_schedule_argument_errors) {
    da_sched_config c;
    da_schedule *s = (da_schedule *)1;
    da_error e;
    da_sched_config_sd1x(&c, DA_SAMPLER_DDIM);
    ck_assert_int_eq(da_schedule_create(&c, 0, &s, &e), DA_ERR_INVALID_ARG);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(da_schedule_create(&c, 1001, &s, &e), DA_ERR_INVALID_ARG);
    /* leading with steps_offset 1 and 1000 steps puts the first timestep at 1000: out of range */
    ck_assert_int_eq(da_schedule_create(&c, 1000, &s, &e), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "out of range"));
    ck_assert_int_eq(da_schedule_create(&c, 50, &s, &e), DA_OK);
    ck_assert_int_eq(da_schedule_img2img_begin(s, 1.5, &e), -1);
    ck_assert_int_eq(da_schedule_img2img_begin(s, NAN, &e), -1);
    ck_assert_int_eq(da_schedule_img2img_begin(s, 0.01, &e), -1); /* int(50 * 0.01) = 0 steps */
    /* SGID: 50 DDIM steps, strength 0.5: begin at step 25, t = 481 */
    ck_assert_int_eq(da_schedule_img2img_begin(s, 0.5, &e), 25);
    ck_assert(s->timesteps[25] == 481.0f);
    da_schedule_free(s);
    /* DDIM trailing with 61 steps: diffusers' extra timestep -1 would read alphas_cumprod[-1] */
    c.spacing = DA_SPACING_TRAILING;
    ck_assert_int_eq(da_schedule_create(&c, 61, &s, &e), DA_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e.msg, "-1"));
    ck_assert_int_eq(da_schedule_create(&c, 60, &s, &e), DA_OK);
    da_schedule_free(s);
    c.kind = DA_SAMPLER_EULER;
    ck_assert_int_eq(da_schedule_create(&c, 61, &s, &e), DA_OK);
    ck_assert(s->n_steps == 62 && s->num_inference_steps == 61 && s->timesteps[61] == -1.0f);
    ck_assert(s->sigmas[61] == s->train_sigmas[0] && s->sigmas[62] == 0.0f);
    da_schedule_free(s);
    c.kind = DA_SAMPLER_EULER_A;
    c.spacing = DA_SPACING_LINSPACE;
    c.sigmas = DA_SIGMAS_KARRAS;
    ck_assert_int_eq(da_schedule_create(&c, 10, &s, &e), DA_ERR_INVALID_ARG);
    da_sched_config_defaults(&c, DA_SAMPLER_EDM_EULER);
    c.sigma_min = 100;
    ck_assert_int_eq(da_schedule_create(&c, 10, &s, &e), DA_ERR_INVALID_ARG);
}
END_TEST

/* DiffuseMix's schedule: Euler a, 100 linspace steps, fractional t, sigma = the table interpolated
 * at t, final 0, initial noise scaled by sigma_0 (linspace: init_noise_sigma = max sigma). */
START_TEST(test_diffusemix_schedule) {
    da_sched_config c;
    da_error e;
    ck_assert(da_sched_config_load("tests/data/sampler/configs/ip2p.json", DA_SAMPLER_FROM_CONFIG, &c, &e) == DA_OK);
    da_schedule *s;
    ck_assert(da_schedule_create(&c, 100, &s, &e) == DA_OK);
    ck_assert(s->timesteps[0] == 999.0f && s->timesteps[99] == 0.0f);
    ck_assert(s->timesteps[1] != floorf(s->timesteps[1])); /* 988.9091 */
    for (int i = 0; i < 100; i++) {
        ck_assert(s->sigmas[i] == (float)da_schedule_sigma_at(s, s->timesteps[i]));
        double lo = floor(s->timesteps[i]);
        double w = s->timesteps[i] - lo;
        double want = lo >= 999 ? s->train_sigmas[999]
                                : (1 - w) * s->train_sigmas[(int)lo] + w * s->train_sigmas[(int)lo + 1];
        ck_assert(st_close(s->sigmas[i], want, 1e-6));
    }
    ck_assert(s->sigmas[100] == 0.0f && s->init_noise_sigma == s->sigmas[0]);
    da_schedule_free(s);
}
END_TEST

/* DiffCoRe-Mix's schedule: EDM exponential with sigma_max 120, sigma_min 0.002, 50 steps, then 0:
 * exp(linspace(ln 120, ln 0.002, 50)); model timestep 0.25 ln sigma; c_in = 1/sqrt(sigma^2+1). */
START_TEST(test_diffcoremix_edm_schedule) {
    da_sched_config c;
    da_error e;
    ck_assert(da_sched_config_load("tests/data/sampler/configs/edm_cosxl.json", DA_SAMPLER_EDM_EULER, &c, &e) == DA_OK);
    da_schedule *s;
    ck_assert(da_schedule_create(&c, 50, &s, &e) == DA_OK);
    for (int i = 0; i < 50; i++) {
        double want = exp(log(120.0) + (log(0.002) - log(120.0)) * i / 49.0);
        ck_assert_msg(st_close(s->sigmas[i], want, 2e-6), "sigma %d %.9g vs %.9g", i, s->sigmas[i], want);
        ck_assert(st_close(s->timesteps[i], 0.25 * log(want), 1e-5));
        ck_assert(st_close(da_schedule_input_scale(s, i), 1.0 / sqrt(want * want + 1.0), 1e-6));
    }
    ck_assert(s->sigmas[50] == 0.0f);
    ck_assert(isnan(da_schedule_sigma_at(s, 3.0)));
    ck_assert(st_close(s->init_noise_sigma, sqrt(120.0 * 120.0 + 1.0), 1e-7));
    da_schedule_free(s);
}
END_TEST

static Suite *schedule_suite(void) {
    Suite *s = suite_create("schedule");
    TCase *tc = da_tcase("schedule", "fast", 30);
    tcase_add_test(tc, test_training_tables);
    tcase_add_test(tc, test_schedules_match_diffusers);
    tcase_add_test(tc, test_sd15_config_equals_builtin_defaults);
    tcase_add_test(tc, test_config_reader);
    tcase_add_test(tc, test_schedule_argument_errors);
    tcase_add_test(tc, test_diffcoremix_edm_schedule);
    tcase_add_test(tc, test_diffusemix_schedule);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(schedule_suite)
