/* schedule.h - noise schedules: the timesteps and sigmas a sampler walks, as diffusers computes them.
 *
 * Mirrors diffusers 0.42.1: DDIMScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
 * DPMSolverMultistepScheduler (dpmsolver++, order <= 2) and EDMEulerScheduler: their __init__ tables
 * (betas, alphas_cumprod, the training sigma table), set_timesteps (leading / trailing / linspace
 * spacing, steps_offset, Karras and exponential sigmas with the timestep recovered by _sigma_to_t,
 * final sigma), init_noise_sigma, and the img2img rules of StableDiffusionImg2ImgPipeline.get_timesteps.
 *
 * A schedule is built once per (config, step count) and is immutable afterwards; samplers
 * (sampler.h) only read it. Tables diffusers keeps in float32 are float here; alphas_cumprod is kept
 * as double holding exactly torch's float32 values (torch's float32 cumprod accumulates in double).
 * See docs/SAMPLERS.md for the formulas.
 */
#ifndef DA_SCHEDULE_H
#define DA_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>

#include "diffaug.h"

typedef enum da_sampler_kind {
    DA_SAMPLER_DDIM,        /* DDIMScheduler */
    DA_SAMPLER_EULER,       /* EulerDiscreteScheduler */
    DA_SAMPLER_EULER_A,     /* EulerAncestralDiscreteScheduler */
    DA_SAMPLER_DPMPP_2M,    /* DPMSolverMultistepScheduler, algorithm_type dpmsolver++ */
    DA_SAMPLER_EDM_EULER,   /* EDMEulerScheduler */
    DA_SAMPLER_COUNT,
    DA_SAMPLER_FROM_CONFIG = -1 /* da_sched_config_parse: take the kind from _class_name */
} da_sampler_kind;

typedef enum da_prediction { DA_PRED_EPSILON, DA_PRED_V } da_prediction;
typedef enum da_beta_schedule { DA_BETA_LINEAR, DA_BETA_SCALED_LINEAR } da_beta_schedule;
typedef enum da_spacing { DA_SPACING_LINSPACE, DA_SPACING_LEADING, DA_SPACING_TRAILING } da_spacing;
typedef enum da_sigma_kind { DA_SIGMAS_INTERP, DA_SIGMAS_KARRAS, DA_SIGMAS_EXPONENTIAL } da_sigma_kind;

/* Everything a schedule and sampler need; field names follow diffusers' config keys. */
typedef struct da_sched_config {
    da_sampler_kind kind;
    da_prediction prediction;          /* prediction_type */
    /* discrete (beta) schedules: DDIM, Euler, Euler a, DPM++ */
    int num_train_timesteps;
    da_beta_schedule beta_schedule;
    double beta_start, beta_end;
    da_spacing spacing;                /* timestep_spacing */
    int steps_offset;
    bool set_alpha_to_one;             /* DDIM: final alpha_cumprod 1 (else alphas_cumprod[0]) */
    bool clip_sample;                  /* DDIM */
    double clip_sample_range;          /* DDIM */
    da_sigma_kind sigmas;              /* Euler / DPM++: use_karras_sigmas / use_exponential_sigmas */
    bool final_sigma_zero;             /* final_sigmas_type "zero" (true) or "sigma_min" */
    double euler_sigma_min, euler_sigma_max; /* Euler's optional sigma_min / sigma_max (0 = unset) */
    /* DPM-Solver++ multistep */
    int solver_order;                  /* 1 or 2 */
    bool solver_heun;                  /* solver_type "heun" (else "midpoint") */
    bool lower_order_final, euler_at_final;
    /* EDM */
    double sigma_min, sigma_max, sigma_data, rho;
    bool edm_exponential;              /* sigma_schedule "exponential" (else "karras") */
} da_sched_config;

/* The diffusers class defaults for kind (what XScheduler() gives with no arguments). */
void da_sched_config_defaults(da_sched_config *c, da_sampler_kind kind);
/* SD 1.x (v1.4/v1.5 scheduler_config.json applied to kind's class): scaled_linear 0.00085..0.012,
 * 1000 steps, steps_offset 1; DDIM also set_alpha_to_one false, clip_sample false. EDM: its own
 * defaults. Timestep spacing stays the class default (the file has none): DDIM leading, others linspace. */
void da_sched_config_sd1x(da_sched_config *c, da_sampler_kind kind);
/* SDXL base 1.0's scheduler_config.json (EulerDiscreteScheduler: scaled_linear 0.00085..0.012,
 * steps_offset 1, timestep_spacing "leading", set_alpha_to_one false, clip_sample false) applied to
 * kind's class: what a single-file SDXL checkpoint gets. EDM: its own defaults. */
void da_sched_config_sdxl(da_sched_config *c, da_sampler_kind kind);
/* Parse a diffusers scheduler_config.json as XScheduler.from_config(config) does for the class of
 * kind: keys the class knows override its defaults, others are ignored. _class_name must name a
 * known diffusers scheduler (any of the common ones: the file is a source of constants), else
 * DA_ERR_UNSUPPORTED; with kind DA_SAMPLER_FROM_CONFIG it must be one of the five implemented.
 * Settings this engine does not implement (rescale_betas_zero_snr, thresholding, trained_betas,
 * interpolation_type log_linear, use_beta_sigmas, ...) are an error, never silently ignored. */
da_status da_sched_config_parse(const char *text, size_t len, const char *what, da_sampler_kind kind,
                                da_sched_config *c, da_error *err);
da_status da_sched_config_load(const char *path, da_sampler_kind kind, da_sched_config *c, da_error *err);
/* The class a scheduler_config.json names: its kind when it is one of the five implemented, else
 * DA_SAMPLER_FROM_CONFIG (a known class that is not implemented, e.g. SD 1.5's PNDMScheduler). */
da_status da_sched_config_file_kind(const char *path, da_sampler_kind *kind, da_error *err);
const char *da_sampler_kind_name(da_sampler_kind k); /* the diffusers class name */

/* A schedule for one step count. Arrays are owned by the schedule. */
typedef struct da_schedule {
    da_sched_config cfg;
    int n_train;              /* 0 for EDM */
    double *alphas_cumprod;   /* [n_train], exactly torch's float32 values */
    float *train_sigmas;      /* [n_train] sqrt((1-acp)/acp) in float32, ascending in t */
    int n_steps;              /* len(timesteps): the steps a full run takes */
    int num_inference_steps;  /* the count asked for; differs from n_steps only for trailing
                                 spacing with N = 61, 103, ... (numpy's arange adds a step at t = -1) */
    float *timesteps;         /* [n_steps] the model's timestep per step (integral for DDIM/DPM++) */
    float *sigmas;            /* [n_steps+1] Euler family / DPM++ / EDM sigmas, last = final sigma;
                                 DDIM: the equivalent sqrt((1-acp_t)/acp_t), last 0 (informative) */
    double *acp_t, *acp_prev; /* DDIM: alpha_cumprod at the step and at the previous timestep */
    double final_alpha_cumprod; /* DDIM */
    float init_noise_sigma;   /* scale of the txt2img initial noise */
    int order;                /* scheduler.order (1 for every sampler here) */
} da_schedule;

/* Build the schedule of cfg for num_inference_steps (>= 1). */
da_status da_schedule_create(const da_sched_config *cfg, int num_inference_steps, da_schedule **out,
                             da_error *err);
void da_schedule_free(da_schedule *s);

/* img2img (StableDiffusionImg2ImgPipeline.get_timesteps, N = num_inference_steps as requested):
 * init_timestep = min(int(N*strength), N),
 * t_start = max(N - init_timestep, 0); the steps run are [t_start*order, N). Returns the begin
 * index, or -1 with err set when strength is outside [0,1] or no step would run. */
int da_schedule_img2img_begin(const da_schedule *s, double strength, da_error *err);

/* The noise level at which img2img noises the clean latent for a run beginning at step `begin`:
 * x = a * x0 + b * eps. DDIM: a = sqrt(acp_t), b = sqrt(1-acp_t); Euler family and EDM: a = 1,
 * b = sigma; DPM++: a = 1/sqrt(sigma^2+1), b = sigma a. */
void da_schedule_noise_coeffs(const da_schedule *s, int begin, float *a, float *b);

/* The model-input scale at step i (scale_model_input): DDIM and DPM++ 1; Euler family
 * 1/sqrt(sigma^2+1); EDM c_in = 1/sqrt(sigma^2+sigma_data^2). */
float da_schedule_input_scale(const da_schedule *s, int i);

/* The training sigma table interpolated at a fractional timestep t in [0, n_train-1], as
 * EulerDiscreteScheduler does (np.interp(t, arange(n_train), sigmas)). Not for EDM (returns NAN). */
double da_schedule_sigma_at(const da_schedule *s, double t);

/* Helpers mirroring diffusers internals, exposed for tests and the docs:
 * the torch float32 linspace (CPU kernel: two halves, fused multiply-add), and _sigma_to_t. */
void da_torch_linspace_f32(float start, float end, int n, float *out);
double da_sigma_to_t(const da_schedule *s, double sigma);

#endif /* DA_SCHEDULE_H */
