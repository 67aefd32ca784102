/* sampler.c - sampler steps mirroring diffusers 0.42.1: DDIMScheduler.step (eta, clip_sample),
 * EulerDiscreteScheduler.step (s_churn = 0), EulerAncestralDiscreteScheduler.step,
 * DPMSolverMultistepScheduler.step (dpmsolver++: convert_model_output, dpm_solver_first_order_update,
 * multistep_dpm_solver_second_order_update) and EDMEulerScheduler.step, plus their
 * scale_model_input and add_noise.
 *
 * Per-step scalars are computed in double; the elementwise updates run in float32 in the same
 * association order as the torch expressions. See docs/SAMPLERS.md.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling.h"
#include "util.h"

struct da_sampler {
    const da_schedule *s;
    size_t n;
    da_sampler_params p;
    int next_step;        /* the step da_sampler_step expects next */
    int lower_order_nums; /* DPM++: steps taken so far, capped at solver_order */
    float *prev_x0;       /* DPM++: the previous converted model output (x0 prediction) */
    float *cur_x0;        /* DPM++: scratch for the current one */
    float *x_in, *model_out, *noise; /* da_sampler_run scratch */
};

void da_sampler_params_init(da_sampler_params *p) { p->eta = 0.0; }

void da_sampler_free(da_sampler *sp) {
    if (!sp) return;
    free(sp->prev_x0);
    free(sp->cur_x0);
    free(sp->x_in);
    free(sp->model_out);
    free(sp->noise);
    free(sp);
}

da_status da_sampler_create(const da_schedule *s, size_t n, const da_sampler_params *p, da_sampler **out,
                            da_error *err) {
    if (!s || !out || n == 0) return da_err_set(err, DA_ERR_INVALID_ARG, "sampler: NULL schedule/out or n = 0");
    *out = NULL;
    size_t bytes;
    if (!da_mul_size(n, sizeof(float), &bytes)) return da_err_set(err, DA_ERR_OVERFLOW, "sampler: n = %zu", n);
    da_sampler *sp = da_calloc(1, sizeof *sp, err);
    if (!sp) return DA_ERR_NOMEM;
    sp->s = s;
    sp->n = n;
    if (p) sp->p = *p;
    else da_sampler_params_init(&sp->p);
    if (!(sp->p.eta >= 0 && sp->p.eta <= 1e6)) {
        double eta = sp->p.eta;
        da_sampler_free(sp);
        return da_err_set(err, DA_ERR_INVALID_ARG, "sampler: eta %g must be >= 0", eta);
    }
    sp->x_in = da_malloc(bytes, err);
    sp->model_out = da_malloc(bytes, err);
    sp->noise = da_malloc(bytes, err);
    bool ok = sp->x_in && sp->model_out && sp->noise;
    if (ok && s->cfg.kind == DA_SAMPLER_DPMPP_2M) {
        sp->prev_x0 = da_malloc(bytes, err);
        sp->cur_x0 = da_malloc(bytes, err);
        ok = sp->prev_x0 && sp->cur_x0;
    }
    if (!ok) {
        da_sampler_free(sp);
        return DA_ERR_NOMEM;
    }
    *out = sp;
    return DA_OK;
}

void da_sampler_init_latents(const da_schedule *s, const float *noise, float *x, size_t n) {
    float k = s->init_noise_sigma;
    for (size_t j = 0; j < n; j++) x[j] = noise[j] * k;
}

void da_sampler_add_noise(const da_schedule *s, int begin, const float *x0, const float *noise, float *x,
                          size_t n) {
    float a, b;
    da_schedule_noise_coeffs(s, begin, &a, &b);
    if (s->cfg.kind == DA_SAMPLER_DDIM || s->cfg.kind == DA_SAMPLER_DPMPP_2M) {
        for (size_t j = 0; j < n; j++) x[j] = a * x0[j] + b * noise[j];
    } else { /* original_samples + noise * sigma */
        for (size_t j = 0; j < n; j++) x[j] = x0[j] + noise[j] * b;
    }
}

void da_sampler_begin(da_sampler *sp, int begin) {
    sp->next_step = begin;
    sp->lower_order_nums = 0;
}

float da_sampler_timestep(const da_schedule *s, int i) { return s->timesteps[i]; }

void da_sampler_model_input_params(const da_schedule *s, int i, dk_model_input *p) {
    float sg = s->sigmas[i];
    p->mode = 0, p->k = 1.0f;
    switch (s->cfg.kind) {
    case DA_SAMPLER_EULER:
    case DA_SAMPLER_EULER_A:
        p->mode = 1, p->k = sqrtf(sg * sg + 1.0f); /* sample / ((sigma**2 + 1) ** 0.5) */
        break;
    case DA_SAMPLER_EDM_EULER: {
        float sd = (float)s->cfg.sigma_data;
        p->mode = 2, p->k = 1.0f / sqrtf(sg * sg + sd * sd);
        break;
    }
    default: break;
    }
}

void da_sampler_model_input(const da_schedule *s, int i, const float *x, float *x_in, size_t n) {
    dk_model_input p;
    da_sampler_model_input_params(s, i, &p);
    if (p.mode == 0) {
        if (x_in != x) memcpy(x_in, x, n * sizeof *x);
        return;
    }
    for (size_t j = 0; j < n; j++) x_in[j] = dk_model_input_elem(&p, x[j]);
}

bool da_sampler_needs_noise(const da_sampler *sp, int i) {
    (void)i;
    switch (sp->s->cfg.kind) {
    case DA_SAMPLER_EULER_A: return true;
    case DA_SAMPLER_DDIM: return sp->p.eta > 0;
    default: return false;
    }
}

/* ---- the scalars of a step (double where diffusers computes them in float64, then float) and the
 * per-element update of kernels/cpu/sampling.h, which the device backends run too ------------------ */
static void params_euler(const da_schedule *s, int i, dk_step *st) {
    float sigma = s->sigmas[i], next = s->sigmas[i + 1];
    float dv = sigma * sigma + 1.0f, cv = -sigma / sqrtf(dv);
    st->kind = DK_STEP_EULER;
    st->c[0] = sigma, st->c[1] = cv, st->c[2] = dv, st->c[3] = next - sigma;
}

static void params_euler_a(const da_schedule *s, int i, dk_step *st) {
    float sigma = s->sigmas[i], to = s->sigmas[i + 1];
    float up = sqrtf(to * to * (sigma * sigma - to * to) / (sigma * sigma));
    float down = sqrtf(to * to - up * up);
    float dv = sigma * sigma + 1.0f, cv = -sigma / sqrtf(dv);
    st->kind = DK_STEP_EULER_A;
    st->noisy = 1;
    st->c[0] = sigma, st->c[1] = cv, st->c[2] = dv, st->c[3] = down - sigma, st->c[4] = up;
}

static void params_ddim(const da_sampler *sp, int i, dk_step *st) {
    const da_schedule *s = sp->s;
    float a = (float)s->acp_t[i], ap = (float)s->acp_prev[i];
    float b = 1.0f - a, bp = 1.0f - ap;
    float variance = bp / b * (1.0f - a / ap);
    float std = (float)sp->p.eta * sqrtf(variance);
    st->kind = DK_STEP_DDIM;
    st->clip = s->cfg.clip_sample;
    st->noisy = sp->p.eta > 0;
    st->c[0] = sqrtf(a), st->c[1] = sqrtf(b), st->c[2] = sqrtf(ap);
    st->c[3] = sqrtf(1.0f - ap - std * std), st->c[4] = std, st->c[5] = (float)s->cfg.clip_sample_range;
}

static void dpm_alpha_sigma(double sigma, double *alpha_t, double *sigma_t) {
    *alpha_t = 1.0 / sqrt(sigma * sigma + 1.0);
    *sigma_t = sigma * *alpha_t;
}

/* DPM++ (dpmsolver++): convert_model_output to x0, then the first- or second-order update */
static void params_dpm(da_sampler *sp, int i, dk_step *st) {
    const da_schedule *s = sp->s;
    const da_sched_config *c = &s->cfg;
    int N = s->n_steps;
    double a_s0, s_s0;
    dpm_alpha_sigma(s->sigmas[i], &a_s0, &s_s0);
    st->uses_x0 = 1;
    st->c[0] = (float)a_s0, st->c[1] = (float)s_s0;
    bool lower_final = i == N - 1 && (c->euler_at_final || (c->lower_order_final && N < 15) || c->final_sigma_zero);
    bool first = c->solver_order == 1 || sp->lower_order_nums < 1 || lower_final;
    double next = s->sigmas[i + 1];
    if (next == 0.0) {
        /* sigma_t = 0: alpha_t = 1, lambda_t = +inf, exp(-h) = 0, so x_t = x0 exactly (first order) */
        st->kind = DK_STEP_DPM_X0;
    } else {
        double a_t, s_t;
        dpm_alpha_sigma(next, &a_t, &s_t);
        double l_t = log(a_t) - log(s_t), l_s0 = log(a_s0) - log(s_s0);
        double h = l_t - l_s0;
        double em1 = exp(-h) - 1.0;
        st->c[2] = (float)(s_t / s_s0), st->c[3] = (float)(a_t * em1);
        if (first) {
            st->kind = DK_STEP_DPM_FIRST;
        } else {
            double a_s1, s_s1;
            dpm_alpha_sigma(s->sigmas[i - 1], &a_s1, &s_s1);
            double l_s1 = log(a_s1) - log(s_s1);
            double r0 = (l_s0 - l_s1) / h;
            st->kind = DK_STEP_DPM_SECOND;
            st->heun = c->solver_heun;
            st->c[4] = (float)(1.0 / r0);
            st->c[5] = c->solver_heun ? (float)(a_t * (em1 / h + 1.0)) : (float)(0.5 * (a_t * em1));
        }
    }
    if (sp->lower_order_nums < c->solver_order) sp->lower_order_nums++;
}

static void params_edm(const da_schedule *s, int i, dk_step *st) {
    double sigma = s->sigmas[i], next = s->sigmas[i + 1], sd = s->cfg.sigma_data;
    double c_out = sigma * sd / sqrt(sigma * sigma + sd * sd);
    if (s->cfg.prediction == DA_PRED_V) c_out = -c_out;
    st->kind = DK_STEP_EDM;
    st->c[0] = (float)(sd * sd / (sigma * sigma + sd * sd)), st->c[1] = (float)c_out;
    st->c[2] = (float)sigma, st->c[3] = (float)(next - sigma);
}

da_status da_sampler_step_params(da_sampler *sp, int i, dk_step *st, da_error *err) {
    const da_schedule *s = sp->s;
    if (i < 0 || i >= s->n_steps)
        return da_err_set(err, DA_ERR_INVALID_ARG, "sampler: step %d outside [0, %d)", i, s->n_steps);
    if (i != sp->next_step)
        return da_err_set(err, DA_ERR_INVALID_ARG, "sampler: step %d taken out of order (expected %d)", i,
                          sp->next_step);
    memset(st, 0, sizeof *st);
    st->eps = s->cfg.prediction == DA_PRED_EPSILON;
    switch (s->cfg.kind) {
    case DA_SAMPLER_DDIM: params_ddim(sp, i, st); break;
    case DA_SAMPLER_EULER: params_euler(s, i, st); break;
    case DA_SAMPLER_EULER_A: params_euler_a(s, i, st); break;
    case DA_SAMPLER_DPMPP_2M: params_dpm(sp, i, st); break;
    case DA_SAMPLER_EDM_EULER: params_edm(s, i, st); break;
    default: return da_err_set(err, DA_ERR_INVALID_ARG, "sampler: bad kind %d", (int)s->cfg.kind);
    }
    sp->next_step = i + 1;
    return DA_OK;
}

da_status da_sampler_step(da_sampler *sp, int i, const float *model_out, const float *noise, float *x,
                          da_error *err) {
    if (i >= 0 && i < sp->s->n_steps && i == sp->next_step && da_sampler_needs_noise(sp, i) && !noise)
        return da_err_set(err, DA_ERR_INVALID_ARG, "sampler: step %d of %s needs noise", i,
                          da_sampler_kind_name(sp->s->cfg.kind));
    dk_step st;
    da_status rc = da_sampler_step_params(sp, i, &st, err);
    if (rc != DA_OK) return rc;
    for (size_t j = 0; j < sp->n; j++) dk_step_elem(&st, x, model_out, noise, sp->cur_x0, sp->prev_x0, j);
    if (st.uses_x0) {
        float *t = sp->prev_x0;
        sp->prev_x0 = sp->cur_x0;
        sp->cur_x0 = t;
    }
    return DA_OK;
}

da_status da_sampler_run(da_sampler *sp, float *x, int begin, da_denoise_fn denoise, void *dctx,
                         da_noise_fn noise, void *nctx, da_error *err) {
    const da_schedule *s = sp->s;
    if (!x || !denoise) return da_err_set(err, DA_ERR_INVALID_ARG, "sampler: NULL latents or denoise callback");
    if (begin < 0 || begin >= s->n_steps)
        return da_err_set(err, DA_ERR_INVALID_ARG, "sampler: begin step %d outside [0, %d)", begin, s->n_steps);
    da_sampler_begin(sp, begin);
    for (int i = begin; i < s->n_steps; i++) {
        da_sampler_model_input(s, i, x, sp->x_in, sp->n);
        da_status st = denoise(dctx, sp->x_in, s->timesteps[i], sp->model_out);
        if (st != DA_OK) {
            da_err_set(err, st, "sampler: denoise failed at step %d", i);
            return st;
        }
        const float *nz = NULL;
        if (da_sampler_needs_noise(sp, i)) {
            if (!noise)
                return da_err_set(err, DA_ERR_INVALID_ARG, "sampler: %s needs a noise source",
                                  da_sampler_kind_name(s->cfg.kind));
            st = noise(nctx, i, sp->noise, sp->n);
            if (st != DA_OK) {
                da_err_set(err, st, "sampler: noise source failed at step %d", i);
                return st;
            }
            nz = sp->noise;
        }
        st = da_sampler_step(sp, i, sp->model_out, nz, x, err);
        if (st != DA_OK) return st;
    }
    return DA_OK;
}
