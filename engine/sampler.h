/* sampler.h - samplers as pure functions of (latents, a schedule, a denoise callback, a noise source).
 *
 * Mirrors the step() / scale_model_input() / add_noise() / init_noise_sigma of diffusers 0.42.1
 * DDIMScheduler (eta, clip_sample), EulerDiscreteScheduler (s_churn 0), EulerAncestralDiscreteScheduler,
 * DPMSolverMultistepScheduler (dpmsolver++, orders 1-2, midpoint/heun, lower_order_final,
 * euler_at_final, final_sigmas_type) and EDMEulerScheduler (precondition_inputs / _noise / _outputs),
 * for epsilon and v prediction. The networks live elsewhere: the sampler only calls `denoise`.
 *
 * Two ways to drive it:
 *  - da_sampler_run(): the whole loop, one denoise call per step with the whole batch;
 *  - the single-step functions (da_sampler_model_input, da_sampler_step, ...) so a pipeline can put
 *    several images / CFG branches / recipes into one UNet call itself.
 * Elementwise over n floats: a batch is just a longer vector (each image's noise comes from the
 * noise source, which knows the layout). All scratch is sized at create; nothing is allocated in
 * the loop.
 */
#ifndef DA_SAMPLER_H
#define DA_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>

#include "diffaug.h"
#include "schedule.h"

/* The network: model_out = net(x_in, t) over the whole batch; x_in is already scaled
 * (scale_model_input / EDM c_in), t is the model timestep (fractional for Euler linspace/Karras,
 * 0.25 ln sigma for EDM). Classifier-free guidance is the callback's business. */
typedef da_status (*da_denoise_fn)(void *ctx, const float *x_in, float t, float *model_out);
/* The noise source: fill out[0..n) with N(0,1). step is the schedule step index the draw belongs to,
 * or DA_NOISE_INIT for the initial latent noise (txt2img) / the img2img noising draw. */
typedef da_status (*da_noise_fn)(void *ctx, int step, float *out, size_t n);
#define DA_NOISE_INIT (-1)

typedef struct da_sampler_params {
    double eta; /* DDIM eta (0 = deterministic DDIM); other samplers ignore it */
} da_sampler_params;
void da_sampler_params_init(da_sampler_params *p);

typedef struct da_sampler da_sampler;

/* A sampler over schedule s (borrowed: it must outlive the sampler) for vectors of n floats. */
da_status da_sampler_create(const da_schedule *s, size_t n, const da_sampler_params *p, da_sampler **out,
                            da_error *err);
void da_sampler_free(da_sampler *sp);

/* ---- initial latents ---------------------------------------------------------------------- */
/* txt2img: x = noise * init_noise_sigma. */
void da_sampler_init_latents(const da_schedule *s, const float *noise, float *x, size_t n);
/* img2img: x = a x0 + b noise at step `begin` (da_schedule_img2img_begin): DDIM sqrt(acp) x0 +
 * sqrt(1-acp) eps; Euler family / EDM x0 + sigma eps; DPM++ alpha_t x0 + sigma_t eps. */
void da_sampler_add_noise(const da_schedule *s, int begin, const float *x0, const float *noise, float *x,
                          size_t n);

/* ---- one step at a time ------------------------------------------------------------------- */
/* Start (or restart) a trajectory at step `begin` (0 for txt2img): clears multistep history. */
void da_sampler_begin(da_sampler *sp, int begin);
/* The model timestep of step i. */
float da_sampler_timestep(const da_schedule *s, int i);
/* scale_model_input: x_in = x / sqrt(sigma^2+1) (Euler family), x * c_in (EDM), x (DDIM, DPM++). */
void da_sampler_model_input(const da_schedule *s, int i, const float *x, float *x_in, size_t n);
/* The same as a (mode, k) pair for a backend's model_input op (dk_model_input of sampling.h). */
struct dk_model_input;
void da_sampler_model_input_params(const da_schedule *s, int i, struct dk_model_input *p);
/* Whether step i of this sampler draws noise (Euler a: every step, the last too, as diffusers
 * draws it; DDIM: when eta > 0). */
bool da_sampler_needs_noise(const da_sampler *sp, int i);
/* Advance x (in place) from step i to i+1 given the model output at step i. noise: n N(0,1) values
 * when da_sampler_needs_noise, else ignored (may be NULL). Steps must be taken in order. */
da_status da_sampler_step(da_sampler *sp, int i, const float *model_out, const float *noise, float *x,
                          da_error *err);

/* The same step for a caller that applies it elsewhere (a backend's sampler_step op, e.g. on the
 * GPU): checks i like da_sampler_step, fills *st with the step's scalars (the per-element update is
 * dk_step_elem of kernels/cpu/sampling.h) and advances the sampler exactly as da_sampler_step does.
 * When st->noisy the step needs N(0,1) noise; when st->uses_x0 (DPM++) the caller keeps two x0
 * buffers, passes (cur, prev) and swaps them after the step. */
struct dk_step;
da_status da_sampler_step_params(da_sampler *sp, int i, struct dk_step *st, da_error *err);

/* ---- the whole loop ----------------------------------------------------------------------- */
/* Run steps [begin, n_steps) on x in place: per step scale input, one denoise call, noise if needed,
 * step. x must already hold the initial latents (da_sampler_init_latents / da_sampler_add_noise). */
da_status da_sampler_run(da_sampler *sp, float *x, int begin, da_denoise_fn denoise, void *dctx,
                         da_noise_fn noise, void *nctx, da_error *err);

#endif /* DA_SAMPLER_H */
