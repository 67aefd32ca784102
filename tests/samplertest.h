/* samplertest.h - what test_schedule.c and test_sampler.c share: loading the diffusers fixtures of
 * tests/data/sampler and building a config the way the fixture generator built its scheduler
 * (XScheduler.from_config(configs/<name>.json, **opts)).
 */
#ifndef DA_SAMPLERTEST_H
#define DA_SAMPLERTEST_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "schedule.h"
#include "util.h"

static inline da_json *st_load_json(const char *path) {
    char *text;
    size_t len;
    da_error e;
    da_json *j = NULL;
    ck_assert_msg(da_read_file(path, &text, &len, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(da_json_parse(text, len, path, &j, &e) == DA_OK, "%s", e.msg);
    free(text);
    return j;
}

static inline da_sampler_kind st_kind(const char *name) {
    static const char *const names[] = {"ddim", "euler", "euler_a", "dpmpp_2m", "edm_euler"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return (da_sampler_kind)i;
    ck_abort_msg("unknown kind %s", name);
    return DA_SAMPLER_DDIM;
}

/* The from_config keyword overrides the fixtures use. */
static inline void st_apply_opts(da_sched_config *c, const da_json *opts) {
    for (size_t i = 0; opts && i < opts->n; i++) {
        const char *k = opts->keys[i];
        const da_json *v = &opts->items[i];
        if (strcmp(k, "use_karras_sigmas") == 0) {
            if (v->type == DA_JSON_TRUE) c->sigmas = DA_SIGMAS_KARRAS;
        } else if (strcmp(k, "use_exponential_sigmas") == 0) {
            if (v->type == DA_JSON_TRUE) c->sigmas = DA_SIGMAS_EXPONENTIAL;
        } else if (strcmp(k, "timestep_spacing") == 0) {
            c->spacing = strcmp(v->str, "linspace") == 0  ? DA_SPACING_LINSPACE
                         : strcmp(v->str, "leading") == 0 ? DA_SPACING_LEADING
                                                          : DA_SPACING_TRAILING;
        } else if (strcmp(k, "final_sigmas_type") == 0) {
            c->final_sigma_zero = strcmp(v->str, "zero") == 0;
        } else if (strcmp(k, "clip_sample") == 0) {
            c->clip_sample = v->type == DA_JSON_TRUE;
        } else if (strcmp(k, "solver_type") == 0) {
            c->solver_heun = strcmp(v->str, "heun") == 0;
        } else {
            ck_abort_msg("fixture option %s not handled", k);
        }
    }
}

static inline void st_config(const char *cfg_name, da_sampler_kind kind, const da_json *opts, da_sched_config *c) {
    char path[256];
    da_error e;
    snprintf(path, sizeof path, "tests/data/sampler/configs/%s.json", cfg_name);
    ck_assert_msg(da_sched_config_load(path, kind, c, &e) == DA_OK, "%s", e.msg);
    st_apply_opts(c, opts);
}

/* |a-b| <= rel * |b| (+ a tiny absolute floor for values that are 0). */
static inline int st_close(double a, double b, double rel) {
    double d = a - b;
    if (d < 0) d = -d;
    double m = b < 0 ? -b : b;
    return d <= rel * m + 1e-12;
}

#endif
