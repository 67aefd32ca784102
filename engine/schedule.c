/* schedule.c - noise schedules reproducing diffusers 0.42.1 (DDIMScheduler, EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler, EDMEulerScheduler): __init__ tables,
 * set_timesteps, init_noise_sigma, _sigma_to_t, _convert_to_karras / _convert_to_exponential,
 * EDMEulerScheduler._compute_karras_sigmas / _compute_exponential_sigmas, and
 * StableDiffusionImg2ImgPipeline.get_timesteps.
 *
 * Numerics follow the reference step by step: torch float32 where diffusers computes in torch
 * float32 (betas, alphas_cumprod, the sigma table), numpy float64 where it computes in numpy
 * (spacing, np.interp, Karras), then the float32 casts diffusers makes.
 */
#include "schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

static const char *const kind_names[DA_SAMPLER_COUNT] = {
    "DDIMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
    "DPMSolverMultistepScheduler", "EDMEulerScheduler"};

const char *da_sampler_kind_name(da_sampler_kind k) {
    return (k >= 0 && k < DA_SAMPLER_COUNT) ? kind_names[k] : "unknown sampler";
}

void da_sched_config_defaults(da_sched_config *c, da_sampler_kind kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->prediction = DA_PRED_EPSILON;
    c->num_train_timesteps = 1000;
    c->beta_schedule = DA_BETA_LINEAR;
    c->beta_start = 0.0001;
    c->beta_end = 0.02;
    c->spacing = kind == DA_SAMPLER_DDIM ? DA_SPACING_LEADING : DA_SPACING_LINSPACE;
    c->steps_offset = 0;
    c->set_alpha_to_one = true;
    c->clip_sample = kind == DA_SAMPLER_DDIM;
    c->clip_sample_range = 1.0;
    c->sigmas = DA_SIGMAS_INTERP;
    c->final_sigma_zero = true;
    c->solver_order = 2;
    c->lower_order_final = true;
    c->euler_at_final = false;
    c->sigma_min = 0.002;
    c->sigma_max = 80.0;
    c->sigma_data = 0.5;
    c->rho = 7.0;
    c->edm_exponential = false;
}

void da_sched_config_sd1x(da_sched_config *c, da_sampler_kind kind) {
    da_sched_config_defaults(c, kind);
    if (kind == DA_SAMPLER_EDM_EULER) return;
    c->beta_schedule = DA_BETA_SCALED_LINEAR;
    c->beta_start = 0.00085;
    c->beta_end = 0.012;
    c->steps_offset = 1;
    if (kind == DA_SAMPLER_DDIM) { /* keys only DDIMScheduler takes from the SD 1.x file */
        c->set_alpha_to_one = false;
        c->clip_sample = false;
    }
}

void da_sched_config_sdxl(da_sched_config *c, da_sampler_kind kind) {
    da_sched_config_sd1x(c, kind);
    if (kind == DA_SAMPLER_EDM_EULER) return;
    c->spacing = DA_SPACING_LEADING; /* the SDXL file's "timestep_spacing": every discrete class takes it */
}

/* ---- config parsing ------------------------------------------------------------------------- */

/* Which classes' __init__ take a key (bit per da_sampler_kind): from_config ignores the rest. */
#define K_DDIM (1u << DA_SAMPLER_DDIM)
#define K_EUL (1u << DA_SAMPLER_EULER)
#define K_EA (1u << DA_SAMPLER_EULER_A)
#define K_DPM (1u << DA_SAMPLER_DPMPP_2M)
#define K_EDM (1u << DA_SAMPLER_EDM_EULER)
#define K_BETA (K_DDIM | K_EUL | K_EA | K_DPM)

static bool has_key(da_sampler_kind kind, unsigned mask) { return (mask >> kind) & 1u; }

/* Classes whose config files we accept as a source of constants. */
static const char *const known_classes[] = {
    "DDIMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
    "DPMSolverMultistepScheduler", "EDMEulerScheduler", "PNDMScheduler", "LMSDiscreteScheduler",
    "DDPMScheduler", "HeunDiscreteScheduler", "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler",
    "DPMSolverSinglestepScheduler", "DPMSolverSDEScheduler", "EDMDPMSolverMultistepScheduler",
    "LCMScheduler", "TCDScheduler", NULL};

static da_status get_bool_key(const da_json *j, const char *key, bool *dst, const char *what, da_error *err) {
    const da_json *v = da_json_get(j, key);
    if (!v) return DA_OK;
    if (v->type == DA_JSON_TRUE || v->type == DA_JSON_FALSE) {
        *dst = v->type == DA_JSON_TRUE;
        return DA_OK;
    }
    return da_err_set(err, DA_ERR_FORMAT, "%s: \"%s\" must be true or false", what, key);
}

static da_status get_num_key(const da_json *j, const char *key, double *dst, const char *what, da_error *err) {
    const da_json *v = da_json_get(j, key);
    if (!v) return DA_OK;
    if (v->type == DA_JSON_NUMBER) {
        *dst = v->num;
        return DA_OK;
    }
    return da_err_set(err, DA_ERR_FORMAT, "%s: \"%s\" must be a number", what, key);
}

static da_status get_int_key(const da_json *j, const char *key, int *dst, int lo, int hi, const char *what,
                             da_error *err) {
    const da_json *v = da_json_get(j, key);
    if (!v) return DA_OK;
    if (v->type != DA_JSON_NUMBER || !v->is_int || v->inum < lo || v->inum > hi)
        return da_err_set(err, DA_ERR_FORMAT, "%s: \"%s\" must be an integer in [%d, %d]", what, key, lo, hi);
    *dst = (int)v->inum;
    return DA_OK;
}

/* A string key that must be one of names[]; *dst = index. Absent keeps *dst. */
static da_status get_enum_key(const da_json *j, const char *key, const char *const *names, int *dst,
                              const char *what, da_error *err) {
    const da_json *v = da_json_get(j, key);
    if (!v) return DA_OK;
    if (v->type == DA_JSON_STRING)
        for (int i = 0; names[i]; i++)
            if (strcmp(v->str, names[i]) == 0) {
                *dst = i;
                return DA_OK;
            }
    return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: unsupported %s %s%s%s", what, key,
                      v->type == DA_JSON_STRING ? "\"" : "(not a string)",
                      v->type == DA_JSON_STRING ? v->str : "", v->type == DA_JSON_STRING ? "\"" : "");
}

/* A boolean key whose true value we do not implement. */
static da_status reject_true(const da_json *j, const char *key, const char *what, da_error *err) {
    const da_json *v = da_json_get(j, key);
    if (v && v->type == DA_JSON_TRUE)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: %s = true is not supported", what, key);
    return DA_OK;
}

/* A key that must be absent or null. */
static da_status require_null(const da_json *j, const char *key, const char *what, da_error *err) {
    const da_json *v = da_json_get(j, key);
    if (v && v->type != DA_JSON_NULL)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: a non-null %s is not supported", what, key);
    return DA_OK;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        da_status st_ = (x);                                                                       \
        if (st_ != DA_OK) return st_;                                                              \
    } while (0)

static da_status apply_json(const da_json *j, da_sampler_kind kind, da_sched_config *c, const char *what,
                            da_error *err) {
    static const char *const pred_names[] = {"epsilon", "v_prediction", NULL};
    static const char *const beta_names[] = {"linear", "scaled_linear", NULL};
    static const char *const spacing_names[] = {"linspace", "leading", "trailing", NULL};
    static const char *const final_names[] = {"sigma_min", "zero", NULL};
    int e;
    if (has_key(kind, K_BETA | K_EDM)) {
        e = (int)c->prediction;
        TRY(get_enum_key(j, "prediction_type", pred_names, &e, what, err));
        c->prediction = (da_prediction)e;
    }
    if (has_key(kind, K_BETA)) {
        TRY(get_int_key(j, "num_train_timesteps", &c->num_train_timesteps, 2, 100000, what, err));
        TRY(get_num_key(j, "beta_start", &c->beta_start, what, err));
        TRY(get_num_key(j, "beta_end", &c->beta_end, what, err));
        e = (int)c->beta_schedule;
        TRY(get_enum_key(j, "beta_schedule", beta_names, &e, what, err));
        c->beta_schedule = (da_beta_schedule)e;
        TRY(require_null(j, "trained_betas", what, err));
        TRY(reject_true(j, "rescale_betas_zero_snr", what, err));
        e = (int)c->spacing;
        TRY(get_enum_key(j, "timestep_spacing", spacing_names, &e, what, err));
        c->spacing = (da_spacing)e;
        TRY(get_int_key(j, "steps_offset", &c->steps_offset, 0, 1000, what, err));
    }
    if (has_key(kind, K_DDIM)) {
        TRY(get_bool_key(j, "set_alpha_to_one", &c->set_alpha_to_one, what, err));
        TRY(get_bool_key(j, "clip_sample", &c->clip_sample, what, err));
        TRY(get_num_key(j, "clip_sample_range", &c->clip_sample_range, what, err));
    }
    if (has_key(kind, K_DDIM | K_DPM)) TRY(reject_true(j, "thresholding", what, err));
    if (has_key(kind, K_EUL | K_DPM)) {
        bool karras = c->sigmas == DA_SIGMAS_KARRAS, expo = c->sigmas == DA_SIGMAS_EXPONENTIAL;
        TRY(get_bool_key(j, "use_karras_sigmas", &karras, what, err));
        TRY(get_bool_key(j, "use_exponential_sigmas", &expo, what, err));
        TRY(reject_true(j, "use_beta_sigmas", what, err));
        if (karras && expo)
            return da_err_set(err, DA_ERR_FORMAT, "%s: use_karras_sigmas and use_exponential_sigmas are exclusive", what);
        c->sigmas = karras ? DA_SIGMAS_KARRAS : expo ? DA_SIGMAS_EXPONENTIAL : DA_SIGMAS_INTERP;
    }
    if (has_key(kind, K_EUL | K_DPM | K_EDM)) {
        e = c->final_sigma_zero ? 1 : 0;
        TRY(get_enum_key(j, "final_sigmas_type", final_names, &e, what, err));
        c->final_sigma_zero = e == 1;
    }
    if (has_key(kind, K_EUL)) {
        static const char *const interp_names[] = {"linear", NULL};
        static const char *const ttype_names[] = {"discrete", "continuous", NULL};
        int dummy = 0, ttype = 0;
        TRY(get_enum_key(j, "interpolation_type", interp_names, &dummy, what, err));
        TRY(get_enum_key(j, "timestep_type", ttype_names, &ttype, what, err));
        if (ttype == 1 && c->prediction == DA_PRED_V)
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: timestep_type \"continuous\" with v_prediction is not supported", what);
        const da_json *v;
        if ((v = da_json_get(j, "sigma_min")) && v->type != DA_JSON_NULL)
            TRY(get_num_key(j, "sigma_min", &c->euler_sigma_min, what, err));
        if ((v = da_json_get(j, "sigma_max")) && v->type != DA_JSON_NULL)
            TRY(get_num_key(j, "sigma_max", &c->euler_sigma_max, what, err));
    }
    if (has_key(kind, K_DPM)) {
        static const char *const algo_names[] = {"dpmsolver++", NULL};
        static const char *const solver_names[] = {"midpoint", "heun", NULL};
        int dummy = 0;
        TRY(get_enum_key(j, "algorithm_type", algo_names, &dummy, what, err));
        e = c->solver_heun ? 1 : 0;
        TRY(get_enum_key(j, "solver_type", solver_names, &e, what, err));
        c->solver_heun = e == 1;
        TRY(get_int_key(j, "solver_order", &c->solver_order, 1, 3, what, err));
        if (c->solver_order == 3)
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: solver_order 3 is not supported (1 or 2)", what);
        TRY(get_bool_key(j, "lower_order_final", &c->lower_order_final, what, err));
        TRY(get_bool_key(j, "euler_at_final", &c->euler_at_final, what, err));
        TRY(reject_true(j, "use_lu_lambdas", what, err));
        TRY(reject_true(j, "use_flow_sigmas", what, err));
        TRY(reject_true(j, "use_dynamic_shifting", what, err));
        TRY(require_null(j, "variance_type", what, err));
        const da_json *v = da_json_get(j, "lambda_min_clipped");
        /* -Infinity (written by Python's json) was mapped to -1e308 before parsing. */
        if (v && !(v->type == DA_JSON_NULL || (v->type == DA_JSON_NUMBER && v->num <= -1e300)))
            return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: a finite lambda_min_clipped is not supported", what);
    }
    if (has_key(kind, K_EDM)) {
        static const char *const sched_names[] = {"karras", "exponential", NULL};
        TRY(get_num_key(j, "sigma_min", &c->sigma_min, what, err));
        TRY(get_num_key(j, "sigma_max", &c->sigma_max, what, err));
        TRY(get_num_key(j, "sigma_data", &c->sigma_data, what, err));
        TRY(get_num_key(j, "rho", &c->rho, what, err));
        e = c->edm_exponential ? 1 : 0;
        TRY(get_enum_key(j, "sigma_schedule", sched_names, &e, what, err));
        c->edm_exponential = e == 1;
    }
    return DA_OK;
}

/* Python's json writes the non-standard tokens Infinity / -Infinity / NaN (DPMSolverMultistep's
 * lambda_min_clipped is -Infinity by default). Map them, outside strings, to numbers of the same
 * length so the strict reader accepts the file: -Infinity -> -1e308, Infinity -> 1e308, NaN -> 0. */
static void patch_nonfinite(char *t, size_t len) {
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char ch = t[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = false;
            continue;
        }
        if (ch == '"') {
            in_str = true;
        } else if (len - i >= 9 && memcmp(t + i, "-Infinity", 9) == 0) {
            memcpy(t + i, "-1e308   ", 9);
            i += 8;
        } else if (len - i >= 8 && memcmp(t + i, "Infinity", 8) == 0) {
            memcpy(t + i, "1e308   ", 8);
            i += 7;
        } else if (len - i >= 3 && memcmp(t + i, "NaN", 3) == 0) {
            memcpy(t + i, "0  ", 3);
            i += 2;
        }
    }
}

da_status da_sched_config_parse(const char *text, size_t len, const char *what, da_sampler_kind kind,
                                da_sched_config *c, da_error *err) {
    if (!what) what = "scheduler_config.json";
    if (!text || !c) return da_err_set(err, DA_ERR_INVALID_ARG, "%s: NULL argument", what);
    if (kind != DA_SAMPLER_FROM_CONFIG && (kind < 0 || kind >= DA_SAMPLER_COUNT))
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: bad sampler kind %d", what, (int)kind);
    char *copy = da_malloc(len + 1, err);
    if (!copy) return DA_ERR_NOMEM;
    memcpy(copy, text, len);
    copy[len] = 0;
    patch_nonfinite(copy, len);
    da_json *j = NULL;
    da_status st = da_json_parse(copy, len, what, &j, err);
    free(copy);
    if (st != DA_OK) return st;
    if (j->type != DA_JSON_OBJECT) {
        da_json_free(j);
        return da_err_set(err, DA_ERR_FORMAT, "%s: not a JSON object", what);
    }
    const char *cls = da_json_get_str(j, "_class_name");
    if (!cls) {
        da_json_free(j);
        return da_err_set(err, DA_ERR_FORMAT, "%s: no \"_class_name\"", what);
    }
    int known = -1;
    for (int i = 0; known_classes[i]; i++)
        if (strcmp(cls, known_classes[i]) == 0) known = i;
    if (known < 0) {
        da_err_set(err, DA_ERR_UNSUPPORTED, "%s: unknown scheduler class \"%s\"", what, cls);
        da_json_free(j);
        return DA_ERR_UNSUPPORTED;
    }
    if (kind == DA_SAMPLER_FROM_CONFIG) {
        if (known >= DA_SAMPLER_COUNT) {
            da_err_set(err, DA_ERR_UNSUPPORTED,
                       "%s: scheduler class \"%s\" is not implemented (DDIM, Euler, Euler ancestral, "
                       "DPM-Solver++ multistep and EDM Euler are; choose one explicitly)", what, cls);
            da_json_free(j);
            return DA_ERR_UNSUPPORTED;
        }
        kind = (da_sampler_kind)known;
    }
    da_sched_config_defaults(c, kind);
    st = apply_json(j, kind, c, what, err);
    da_json_free(j);
    return st;
}

da_status da_sched_config_file_kind(const char *path, da_sampler_kind *kind, da_error *err) {
    char *text;
    size_t len;
    da_status st = da_read_file(path, &text, &len, err);
    if (st != DA_OK) return st;
    patch_nonfinite(text, len);
    da_json *j = NULL;
    st = da_json_parse(text, len, path, &j, err);
    free(text);
    if (st != DA_OK) return st;
    const char *cls = j->type == DA_JSON_OBJECT ? da_json_get_str(j, "_class_name") : NULL;
    int known = -1;
    for (int i = 0; cls && known_classes[i]; i++)
        if (strcmp(cls, known_classes[i]) == 0) known = i;
    if (!cls)
        st = da_err_set(err, DA_ERR_FORMAT, "%s: no \"_class_name\"", path);
    else if (known < 0)
        st = da_err_set(err, DA_ERR_UNSUPPORTED, "%s: unknown scheduler class \"%s\"", path, cls);
    else
        *kind = known < DA_SAMPLER_COUNT ? (da_sampler_kind)known : DA_SAMPLER_FROM_CONFIG;
    da_json_free(j);
    return st;
}

da_status da_sched_config_load(const char *path, da_sampler_kind kind, da_sched_config *c, da_error *err) {
    char *text;
    size_t len;
    da_status st = da_read_file(path, &text, &len, err);
    if (st != DA_OK) return st;
    st = da_sched_config_parse(text, len, path, kind, c, err);
    free(text);
    return st;
}

/* ---- numeric helpers mirroring torch / numpy ---------------------------------------------- */

/* torch.linspace on the CPU for float32: step = (end-start)/(n-1) in float; the first half counts
 * up from start, the second down from end; the build contracts `start + step*i` into an FMA. */
void da_torch_linspace_f32(float start, float end, int n, float *out) {
    if (n == 1) {
        out[0] = start;
        return;
    }
    float step = (end - start) / (float)(n - 1);
    int half = n / 2;
    for (int i = 0; i < n; i++)
        out[i] = i < half ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - 1 - i), end);
}

/* The same kernel for float64. */
static void torch_linspace_f64(double start, double end, int n, double *out) {
    if (n == 1) {
        out[0] = start;
        return;
    }
    double step = (end - start) / (double)(n - 1);
    int half = n / 2;
    for (int i = 0; i < n; i++)
        out[i] = i < half ? fma(step, (double)i, start) : fma(-step, (double)(n - 1 - i), end);
}

/* numpy.linspace(start, stop, n) (float64, endpoint): i*step + start, last = stop; n == 1 -> start. */
static double np_linspace_at(double start, double stop, int n, int i) {
    if (n == 1) return start;
    if (i == n - 1) return stop;
    double step = (stop - start) / (double)(n - 1);
    return (double)i * step + start;
}

/* numpy.arange(start, stop, step) element i for floats: start + i*delta, delta = (start+step)-start. */
static double np_arange_at(double start, double step, int i) {
    if (i == 0) return start;
    double delta = (start + step) - start;
    return start + (double)i * delta;
}

static int np_arange_len(double start, double stop, double step) {
    double l = ceil((stop - start) / step);
    return l > 0 ? (int)l : 0;
}

/* np.interp(x, arange(n), fp) with fp float32 */
static double np_interp_arange(double x, const float *fp, int n) {
    if (x <= 0) return fp[0];
    if (x >= n - 1) return fp[n - 1];
    int j = (int)floor(x);
    if ((double)j == x) return fp[j];
    double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

/* diffusers _sigma_to_t over the schedule's float32 log-sigma table. */
static double sigma_to_t(const float *log_sigmas, int n, double sigma) {
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int low = 0;
    for (int j = 0; j < n; j++)
        if (ls - (double)log_sigmas[j] >= 0) low = j;
    /* argmax of cumsum(dists >= 0) is the last index where the prefix count grows; when no dist is
     * >= 0 it is 0. The table is ascending so the >= 0 entries form a prefix. */
    if (low > n - 2) low = n - 2;
    int high = low + 1;
    double lo = log_sigmas[low], hi = log_sigmas[high];
    double w = (lo - ls) / (lo - hi);
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    return (1 - w) * low + w * high;
}

static float *log_sigma_table(const da_schedule *s, da_error *err) {
    float *ls = da_malloc((size_t)s->n_train * sizeof *ls, err);
    if (!ls) return NULL;
    /* numpy's float32 log; computed here in double and rounded (it can differ by 1 ulp). */
    for (int j = 0; j < s->n_train; j++) ls[j] = (float)log((double)s->train_sigmas[j]);
    return ls;
}

double da_sigma_to_t(const da_schedule *s, double sigma) {
    if (!s->n_train) return 0.25 * log(sigma);
    float *ls = log_sigma_table(s, NULL);
    if (!ls) return NAN;
    double t = sigma_to_t(ls, s->n_train, sigma);
    free(ls);
    return t;
}

/* ---- schedule construction ---------------------------------------------------------------- */

void da_schedule_free(da_schedule *s) {
    if (!s) return;
    free(s->alphas_cumprod);
    free(s->train_sigmas);
    free(s->timesteps);
    free(s->sigmas);
    free(s->acp_t);
    free(s->acp_prev);
    free(s);
}

/* betas, alphas_cumprod and the sigma table as torch computes them in float32. */
static da_status build_train_tables(da_schedule *s, da_error *err) {
    const da_sched_config *c = &s->cfg;
    int T = c->num_train_timesteps;
    s->n_train = T;
    s->alphas_cumprod = da_malloc((size_t)T * sizeof(double), err);
    s->train_sigmas = da_malloc((size_t)T * sizeof(float), err);
    float *betas = da_malloc((size_t)T * sizeof(float), err);
    if (!s->alphas_cumprod || !s->train_sigmas || !betas) {
        free(betas);
        return DA_ERR_NOMEM;
    }
    if (c->beta_schedule == DA_BETA_LINEAR) {
        da_torch_linspace_f32((float)c->beta_start, (float)c->beta_end, T, betas);
    } else {
        /* Python computes beta_start**0.5 in double; torch casts the ends to float32. */
        da_torch_linspace_f32((float)sqrt(c->beta_start), (float)sqrt(c->beta_end), T, betas);
        for (int i = 0; i < T; i++) betas[i] = betas[i] * betas[i];
    }
    /* torch.cumprod on float32 accumulates in double and rounds each output to float32. */
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        acc *= (double)(1.0f - betas[i]);
        float a = (float)acc;
        s->alphas_cumprod[i] = a;
        /* ((1 - acp) / acp) ** 0.5 in float32. torch's vectorised sqrt is 1 ulp low on a few
         * inputs; we use the correctly rounded one (see docs/SAMPLERS.md). */
        s->train_sigmas[i] = sqrtf((1.0f - a) / a);
    }
    free(betas);
    return DA_OK;
}

/* Integral timesteps per diffusers' spacing rules for DDIM (round of float64 values). */
static da_status ddim_timesteps(da_schedule *s, int N, da_error *err) {
    const da_sched_config *c = &s->cfg;
    int T = c->num_train_timesteps;
    if (N > T)
        return da_err_set(err, DA_ERR_INVALID_ARG, "DDIM: %d inference steps exceed the %d training steps", N, T);
    for (int i = 0; i < N; i++) {
        double t;
        if (c->spacing == DA_SPACING_LINSPACE) {
            t = nearbyint(np_linspace_at(0, T - 1, N, N - 1 - i));
        } else if (c->spacing == DA_SPACING_LEADING) {
            t = (double)(N - 1 - i) * (T / N) + c->steps_offset;
        } else {
            t = nearbyint(np_arange_at(T, -(double)T / N, i)) - 1;
        }
        s->timesteps[i] = (float)t;
    }
    if (c->spacing == DA_SPACING_TRAILING && np_arange_len(T, 0, -(double)T / N) != N)
        /* diffusers gets N+1 timesteps ending at -1 here and indexes alphas_cumprod[-1], i.e. the
         * LAST training step, for the extra one: a bug we do not reproduce */
        return da_err_set(err, DA_ERR_UNSUPPORTED,
                          "DDIMScheduler: trailing spacing with %d steps gives diffusers %d timesteps ending at -1 "
                          "(it then uses alphas_cumprod[-1]); choose another step count", N, N + 1);
    return DA_OK;
}

/* Euler / Euler ancestral: float32 timesteps. */
static int euler_timesteps(da_schedule *s, int N, double *tout) {
    const da_sched_config *c = &s->cfg;
    int T = c->num_train_timesteps;
    if (c->spacing == DA_SPACING_LINSPACE) {
        for (int i = 0; i < N; i++) tout[i] = (float)np_linspace_at(0, T - 1, N, N - 1 - i);
        return N;
    }
    if (c->spacing == DA_SPACING_LEADING) {
        for (int i = 0; i < N; i++) tout[i] = (float)((double)(N - 1 - i) * (T / N)) + (float)c->steps_offset;
        return N;
    }
    int n = np_arange_len(T, 0, -(double)T / N);
    for (int i = 0; i < n; i++) tout[i] = (float)nearbyint(np_arange_at(T, -(double)T / N, i)) - 1.0f;
    return n;
}

/* DPMSolverMultistep: integral timesteps, its own leading/linspace rules (N+1 points, last dropped). */
static int dpm_timesteps(da_schedule *s, int N, double *tout) {
    const da_sched_config *c = &s->cfg;
    int T = c->num_train_timesteps, last = T; /* lambda_min_clipped = -inf: no clipping */
    if (c->spacing == DA_SPACING_LINSPACE) {
        for (int i = 0; i < N; i++) tout[i] = nearbyint(np_linspace_at(0, last - 1, N + 1, N - i));
        return N;
    }
    if (c->spacing == DA_SPACING_LEADING) {
        int ratio = last / (N + 1);
        for (int i = 0; i < N; i++) tout[i] = (double)(N - i) * ratio + c->steps_offset;
        return N;
    }
    int n = np_arange_len(last, 0, -(double)T / N);
    for (int i = 0; i < n; i++) tout[i] = nearbyint(np_arange_at(last, -(double)T / N, i)) - 1;
    return n;
}

/* k-diffusion Karras ramp in float64 (numpy). */
static void karras(double smin, double smax, double rho, int N, double *out) {
    double min_inv = pow(smin, 1.0 / rho), max_inv = pow(smax, 1.0 / rho);
    for (int i = 0; i < N; i++) {
        double ramp = np_linspace_at(0, 1, N, i);
        out[i] = pow(max_inv + ramp * (min_inv - max_inv), rho);
    }
}

static void exponential(double smin, double smax, int N, double *out) {
    for (int i = 0; i < N; i++) out[i] = exp(np_linspace_at(log(smax), log(smin), N, i));
}

static da_status discrete_sigma_schedule(da_schedule *s, int N, da_error *err) {
    const da_sched_config *c = &s->cfg;
    bool dpm = c->kind == DA_SAMPLER_DPMPP_2M;
    int T = c->num_train_timesteps;
    size_t cap = (size_t)T + 2 > (size_t)N + 2 ? (size_t)T + 2 : (size_t)N + 2;
    double *t = da_malloc(cap * sizeof(double), err);
    double *sg = da_malloc(cap * sizeof(double), err);
    if (!t || !sg) {
        free(t);
        free(sg);
        return DA_ERR_NOMEM;
    }
    int n = dpm ? dpm_timesteps(s, N, t) : euler_timesteps(s, N, t);
    for (int i = 0; i < n; i++) {
        /* trailing: numpy's arange(T, 0, -T/N) has N+1 elements for some N (61, 103, ...), the
         * extra one rounding to 0, i.e. timestep -1; diffusers runs it (np.interp clamps its sigma
         * to sigma_table[0]) and so do we */
        bool trailing_extra = c->spacing == DA_SPACING_TRAILING && i == n - 1 && n == N + 1 && t[i] == -1;
        if ((t[i] < 0 && !trailing_extra) || t[i] > T - 1) {
            double bad = t[i];
            free(t);
            free(sg);
            return da_err_set(err, DA_ERR_INVALID_ARG, "%s: timestep %g out of range for %d steps (steps_offset %d)",
                              da_sampler_kind_name(c->kind), bad, N, c->steps_offset);
        }
        sg[i] = np_interp_arange(t[i], s->train_sigmas, T);
    }
    if (c->sigmas != DA_SIGMAS_INTERP) {
        double smin, smax;
        if (dpm) { /* DPM flips the whole training table */
            smin = s->train_sigmas[0];
            smax = s->train_sigmas[T - 1];
        } else { /* Euler converts the interpolated schedule; config sigma_min/max win */
            smin = c->euler_sigma_min > 0 ? c->euler_sigma_min : sg[n - 1];
            smax = c->euler_sigma_max > 0 ? c->euler_sigma_max : sg[0];
        }
        n = N;
        if (c->sigmas == DA_SIGMAS_KARRAS) karras(smin, smax, 7.0, N, sg);
        else exponential(smin, smax, N, sg);
        float *ls = log_sigma_table(s, err);
        if (!ls) {
            free(t);
            free(sg);
            return DA_ERR_NOMEM;
        }
        for (int i = 0; i < N; i++) {
            t[i] = sigma_to_t(ls, T, sg[i]);
            if (dpm && c->sigmas == DA_SIGMAS_KARRAS) t[i] = nearbyint(t[i]);
            if (dpm) t[i] = (double)(long long)t[i]; /* astype(int64) truncates */
        }
        free(ls);
    }
    s->n_steps = n;
    s->timesteps = da_malloc((size_t)n * sizeof(float), err);
    s->sigmas = da_malloc(((size_t)n + 1) * sizeof(float), err);
    if (!s->timesteps || !s->sigmas) {
        free(t);
        free(sg);
        return DA_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        s->timesteps[i] = (float)t[i];
        s->sigmas[i] = (float)sg[i];
    }
    s->sigmas[n] = c->final_sigma_zero ? 0.0f : s->train_sigmas[0];
    free(t);
    free(sg);
    if (!dpm) {
        float mx = 0;
        for (int i = 0; i <= n; i++) mx = s->sigmas[i] > mx ? s->sigmas[i] : mx;
        s->init_noise_sigma = c->spacing == DA_SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    } else {
        s->init_noise_sigma = 1.0f;
    }
    return DA_OK;
}

static da_status edm_schedule(da_schedule *s, int N, da_error *err) {
    const da_sched_config *c = &s->cfg;
    s->n_steps = N;
    s->timesteps = da_malloc((size_t)N * sizeof(float), err);
    s->sigmas = da_malloc(((size_t)N + 1) * sizeof(float), err);
    double *ramp = da_malloc((size_t)N * sizeof(double), err);
    if (!s->timesteps || !s->sigmas || !ramp) {
        free(ramp);
        return DA_ERR_NOMEM;
    }
    if (!c->edm_exponential) {
        /* ramp = torch.linspace(0, 1, N, float64); sigmas in float64 then cast */
        torch_linspace_f64(0.0, 1.0, N, ramp);
        double min_inv = pow(c->sigma_min, 1.0 / c->rho), max_inv = pow(c->sigma_max, 1.0 / c->rho);
        for (int i = 0; i < N; i++) s->sigmas[i] = (float)pow(max_inv + ramp[i] * (min_inv - max_inv), c->rho);
    } else {
        /* torch.linspace(log(sigma_min), log(sigma_max), N) in float32, exp, flip */
        float *lin = (float *)ramp; /* N doubles hold N floats */
        da_torch_linspace_f32((float)log(c->sigma_min), (float)log(c->sigma_max), N, lin);
        for (int i = 0; i < N; i++) s->timesteps[i] = expf(lin[N - 1 - i]);
        memcpy(s->sigmas, s->timesteps, (size_t)N * sizeof(float));
    }
    free(ramp);
    for (int i = 0; i < N; i++) s->timesteps[i] = 0.25f * logf(s->sigmas[i]);
    s->sigmas[N] = c->final_sigma_zero ? 0.0f : s->sigmas[N - 1];
    s->init_noise_sigma = (float)sqrt(c->sigma_max * c->sigma_max + 1.0);
    return DA_OK;
}

static da_status check_config(const da_sched_config *c, da_error *err) {
    if (c->kind < 0 || c->kind >= DA_SAMPLER_COUNT)
        return da_err_set(err, DA_ERR_INVALID_ARG, "schedule: bad sampler kind %d", (int)c->kind);
    if (c->kind == DA_SAMPLER_EDM_EULER) {
        if (!(c->sigma_min > 0 && c->sigma_max > c->sigma_min && c->sigma_data > 0 && c->rho > 0))
            return da_err_set(err, DA_ERR_INVALID_ARG,
                              "EDMEulerScheduler: need 0 < sigma_min < sigma_max, sigma_data > 0, rho > 0");
        return DA_OK;
    }
    if (c->num_train_timesteps < 2 || c->num_train_timesteps > 100000)
        return da_err_set(err, DA_ERR_INVALID_ARG, "schedule: num_train_timesteps %d out of range", c->num_train_timesteps);
    if (!(c->beta_start > 0 && c->beta_end < 1 && c->beta_start <= c->beta_end))
        return da_err_set(err, DA_ERR_INVALID_ARG, "schedule: need 0 < beta_start <= beta_end < 1");
    if (c->kind == DA_SAMPLER_DPMPP_2M && (c->solver_order < 1 || c->solver_order > 2))
        return da_err_set(err, DA_ERR_UNSUPPORTED, "DPMSolverMultistepScheduler: solver_order %d (1 or 2 supported)",
                          c->solver_order);
    if (c->kind == DA_SAMPLER_EULER_A && c->sigmas != DA_SIGMAS_INTERP)
        return da_err_set(err, DA_ERR_INVALID_ARG, "EulerAncestralDiscreteScheduler has no Karras/exponential sigmas");
    return DA_OK;
}

da_status da_schedule_create(const da_sched_config *cfg, int num_inference_steps, da_schedule **out,
                             da_error *err) {
    if (!cfg || !out) return da_err_set(err, DA_ERR_INVALID_ARG, "schedule: NULL argument");
    *out = NULL;
    TRY(check_config(cfg, err));
    if (num_inference_steps < 1 || num_inference_steps > 100000)
        return da_err_set(err, DA_ERR_INVALID_ARG, "schedule: %d inference steps (need >= 1)", num_inference_steps);
    da_schedule *s = da_calloc(1, sizeof *s, err);
    if (!s) return DA_ERR_NOMEM;
    s->cfg = *cfg;
    s->order = 1;
    s->num_inference_steps = num_inference_steps;
    int N = num_inference_steps;
    da_status st = DA_OK;
    if (cfg->kind == DA_SAMPLER_EDM_EULER) {
        st = edm_schedule(s, N, err);
    } else {
        st = build_train_tables(s, err);
        if (st == DA_OK && cfg->kind == DA_SAMPLER_DDIM) {
            s->n_steps = N;
            s->timesteps = da_malloc((size_t)N * sizeof(float), err);
            s->sigmas = da_malloc(((size_t)N + 1) * sizeof(float), err);
            s->acp_t = da_malloc((size_t)N * sizeof(double), err);
            s->acp_prev = da_malloc((size_t)N * sizeof(double), err);
            if (!s->timesteps || !s->sigmas || !s->acp_t || !s->acp_prev) st = DA_ERR_NOMEM;
            if (st == DA_OK) st = ddim_timesteps(s, N, err);
            if (st == DA_OK) {
                int T = cfg->num_train_timesteps;
                s->final_alpha_cumprod = cfg->set_alpha_to_one ? 1.0 : s->alphas_cumprod[0];
                for (int i = 0; i < N && st == DA_OK; i++) {
                    int t = (int)s->timesteps[i], prev = t - T / N;
                    if (t < 0 || t >= T) {
                        st = da_err_set(err, DA_ERR_INVALID_ARG,
                                        "DDIMScheduler: timestep %d out of range for %d steps (steps_offset %d)", t,
                                        N, cfg->steps_offset);
                        break;
                    }
                    s->acp_t[i] = s->alphas_cumprod[t];
                    s->acp_prev[i] = prev >= 0 ? s->alphas_cumprod[prev] : s->final_alpha_cumprod;
                    s->sigmas[i] = s->train_sigmas[t];
                }
                s->sigmas[N] = 0;
                s->init_noise_sigma = 1.0f;
            }
        } else if (st == DA_OK) {
            st = discrete_sigma_schedule(s, N, err);
        }
    }
    if (st != DA_OK) {
        da_schedule_free(s);
        return st;
    }
    *out = s;
    return DA_OK;
}

double da_schedule_sigma_at(const da_schedule *s, double t) {
    if (!s->n_train) return NAN;
    return np_interp_arange(t, s->train_sigmas, s->n_train);
}

int da_schedule_img2img_begin(const da_schedule *s, double strength, da_error *err) {
    if (!(strength >= 0 && strength <= 1)) {
        da_err_set(err, DA_ERR_INVALID_ARG, "img2img: strength %g outside [0, 1]", strength);
        return -1;
    }
    int N = s->num_inference_steps;
    int init = (int)((double)N * strength); /* Python int() truncates */
    if (init > N) init = N;
    int t_start = N - init > 0 ? N - init : 0;
    int begin = t_start * s->order;
    if (begin >= s->n_steps) {
        da_err_set(err, DA_ERR_INVALID_ARG,
                   "img2img: strength %g with %d steps runs no step (int(%d * %g) = 0)", strength, N, N, strength);
        return -1;
    }
    return begin;
}

void da_schedule_noise_coeffs(const da_schedule *s, int begin, float *a, float *b) {
    switch (s->cfg.kind) {
    case DA_SAMPLER_DDIM: {
        float acp = (float)s->acp_t[begin];
        *a = sqrtf(acp);
        *b = sqrtf(1.0f - acp);
        break;
    }
    case DA_SAMPLER_DPMPP_2M: {
        float sg = s->sigmas[begin];
        float al = 1.0f / sqrtf(sg * sg + 1.0f);
        *a = al;
        *b = sg * al;
        break;
    }
    default:
        *a = 1.0f;
        *b = s->sigmas[begin];
        break;
    }
}

float da_schedule_input_scale(const da_schedule *s, int i) {
    float sg = s->sigmas[i];
    switch (s->cfg.kind) {
    case DA_SAMPLER_EULER:
    case DA_SAMPLER_EULER_A:
        return 1.0f / sqrtf(sg * sg + 1.0f);
    case DA_SAMPLER_EDM_EULER: {
        float sd = (float)s->cfg.sigma_data;
        return 1.0f / sqrtf(sg * sg + sd * sd);
    }
    default:
        return 1.0f;
    }
}
