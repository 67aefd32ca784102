/* sampling.h - the per-element arithmetic of the sampling loop, one definition shared by the CPU
 * (engine/rng.c, engine/pipeline.c, engine/backend_cpu.c) and the CUDA kernels
 * (kernels/cuda/sampling.cu), so the latents can stay on the GPU for the whole loop and still follow
 * the CPU's arithmetic operation for operation:
 *   - Philox4x32-10 (Salmon et al., SC'11; Random123's constants) and the Box-Muller normal of
 *     engine/rng.h: element i of stream (seed, stream) uses block i/2; u1 = (53 bits of words 0-1
 *     + 1) 2^-53 in (0, 1], u2 = (53 bits of words 2-3) 2^-53, r = sqrt(-2 ln u1), th = 2 pi u2,
 *     z = r cos th (even i) or r sin th (odd i), out = (float)(mean + std z), all in double;
 *   - classifier-free guidance in torch's evaluation order (pipeline.c);
 *   - the linear combination y = a_0 x_0 + a_1 x_1 + ... (each product rounded to f32, summed left
 *     to right);
 *   - the sampler updates of engine/sampler.c (DDIM, Euler, Euler a, DPM++ 2M, EDM Euler): the host
 *     computes a step's scalars (da_sampler_step_params), dk_step_elem applies them to one element.
 * No fused multiply-add anywhere: the CPU build is ISO C (-std=c11: GCC's -ffp-contract=off) and
 * the device side spells every operation with the _rn intrinsics, which nvcc never contracts.
 *
 * What is bit-identical between CPU and GPU: the Philox words, the uniforms, CFG, lincomb. The
 * normals go through double log / sin / cos, which glibc and CUDA's libdevice each compute to within
 * 1-2 ulp of double but not always to the same last bit; after rounding to float they agree except
 * when a value falls within a few 2^-53 of a float rounding boundary (the GPU test counts them).
 */
#ifndef DK_SAMPLING_H
#define DK_SAMPLING_H

#include <math.h>
#include <stdint.h>

#include "kcommon.h"

#if defined(__CUDA_ARCH__)
#define DK_FMUL(a, b) __fmul_rn((a), (b))
#define DK_FADD(a, b) __fadd_rn((a), (b))
#define DK_FSUB(a, b) __fsub_rn((a), (b))
#define DK_FDIV(a, b) __fdiv_rn((a), (b))
#define DK_DMUL(a, b) __dmul_rn((a), (b))
#define DK_DADD(a, b) __dadd_rn((a), (b))
#else
#define DK_FMUL(a, b) ((a) * (b))
#define DK_FADD(a, b) ((a) + (b))
#define DK_FSUB(a, b) ((a) - (b))
#define DK_FDIV(a, b) ((a) / (b))
#define DK_DMUL(a, b) ((a) * (b))
#define DK_DADD(a, b) ((a) + (b))
#endif

/* ---- Philox4x32-10 ------------------------------------------------------------------------------ */
static inline DK_HD void dk_philox_round(uint32_t c[4], uint32_t k0, uint32_t k1) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k0;
    uint32_t n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
}

/* out = philox4x32-10(counter ctr, key) */
static inline DK_HD void dk_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        dk_philox_round(c, k0, k1);
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
}

/* Block b of stream (seed, stream): counter (b lo, b hi, stream lo, stream hi), key (seed lo, hi). */
static inline DK_HD void dk_philox_block(uint64_t seed, uint64_t stream, uint64_t b, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    dk_philox4x32_10(ctr, key, out);
}

/* Uniform in [lo, hi) from one word: lo + (w >> 8) * ((hi - lo) 2^-24). */
static inline DK_HD float dk_uniform_of(uint32_t w, float lo, float hi) {
    return DK_FADD(lo, DK_FMUL((float)(w >> 8), DK_FMUL(DK_FSUB(hi, lo), 1.0f / 16777216.0f)));
}

/* Box-Muller radius and angle of one block (see the header comment). */
static inline DK_HD void dk_box_muller(const uint32_t w[4], double *r, double *th) {
    uint64_t a = (((uint64_t)w[0] << 32) | w[1]) >> 11, b = (((uint64_t)w[2] << 32) | w[3]) >> 11;
    double u1 = DK_DMUL((double)a + 1.0, 0x1p-53), u2 = DK_DMUL((double)b, 0x1p-53);
    *r = sqrt(DK_DMUL(-2.0, log(u1)));
    *th = DK_DMUL(6.283185307179586476925, u2);
}

/* Element idx of the normal stream given its block's (r, th). */
static inline DK_HD float dk_normal_of(uint64_t idx, double r, double th, float mean, float std) {
    double z = (idx & 1) ? DK_DMUL(r, sin(th)) : DK_DMUL(r, cos(th));
    return (float)DK_DADD((double)mean, DK_DMUL((double)std, z));
}

/* Element idx of the normal stream (seed, stream), from scratch. */
static inline DK_HD float dk_philox_normal_at(uint64_t seed, uint64_t stream, uint64_t idx, float mean, float std) {
    uint32_t w[4];
    double r, th;
    dk_philox_block(seed, stream, idx / 2, w);
    dk_box_muller(w, &r, &th);
    return dk_normal_of(idx, r, th, mean, std);
}

/* ---- classifier-free guidance (torch's order: uncond + g * (cond - uncond)) --------------------- */
static inline DK_HD float dk_cfg_elem(float u, float c, float g) { return DK_FADD(u, DK_FMUL(g, DK_FSUB(c, u))); }
/* InstructPix2Pix: a = u + gt (c - i); e = a + gi (i - u) (u: uncond, i: image-only, c: text+image) */
static inline DK_HD float dk_cfg_edit_elem(float u, float c, float i, float gt, float gi) {
    float a = DK_FADD(u, DK_FMUL(gt, DK_FSUB(c, i)));
    return DK_FADD(a, DK_FMUL(gi, DK_FSUB(i, u)));
}

/* ---- y = sum_i a_i x_i over up to DK_LINCOMB_MAX terms ------------------------------------------ */
#define DK_LINCOMB_MAX 4
static inline DK_HD float dk_lincomb_elem(int k, const float *a, const float *const *x, size_t j) {
    float acc = DK_FMUL(a[0], x[0][j]);
    for (int i = 1; i < k; i++) acc = DK_FADD(acc, DK_FMUL(a[i], x[i][j]));
    return acc;
}

/* ---- the model input of a step (scale_model_input / EDM c_in) ---------------------------------------
 * mode 0: x (DDIM, DPM++); 1: x / k (Euler family, k = sqrt(sigma^2 + 1)); 2: x * k (EDM, k = c_in) */
typedef struct dk_model_input {
    int mode;
    float k;
} dk_model_input;
static inline DK_HD float dk_model_input_elem(const dk_model_input *p, float x) {
    return p->mode == 1 ? DK_FDIV(x, p->k) : p->mode == 2 ? DK_FMUL(x, p->k) : x;
}

/* ---- sampler updates ------------------------------------------------------------------------------
 * One element of one step, in diffusers' association order (engine/sampler.c and docs/SAMPLERS.md
 * give the formulas and where the scalars come from). c[] per kind:
 *   EULER      sigma, cv, dv, dt           x0 = eps ? x - sigma m : m cv + x / dv; x += ((x - x0) / sigma) dt
 *   EULER_A    sigma, cv, dv, dt, up       the same, then + noise up
 *   DDIM       sa, sb, sap, cdir, std, r   x0, e from (x, m); clip to [-r, r]; sap x0 + cdir e (+ std noise)
 *   DPM_*      fa, fs, ca, cb, inv_r0, cd1 x0 = eps ? (x - fs m) / fa : fa x - fs m, stored in cur_x0; then
 *              X0: x = x0 (final sigma 0); FIRST: ca x - cb x0; SECOND: v = ca x - cb x0,
 *              d1 = inv_r0 (x0 - prev_x0), x = heun ? v + cd1 d1 : v - cd1 d1
 *   EDM        c_skip, c_out, sigma, dt    x0 = c_skip x + c_out m; x += ((x - x0) / sigma) dt */
typedef enum dk_step_kind {
    DK_STEP_EULER,
    DK_STEP_EULER_A,
    DK_STEP_DDIM,
    DK_STEP_DPM_X0,
    DK_STEP_DPM_FIRST,
    DK_STEP_DPM_SECOND,
    DK_STEP_EDM
} dk_step_kind;

typedef struct dk_step {
    int kind;        /* dk_step_kind */
    int eps;         /* epsilon prediction (else v) */
    int clip;        /* DDIM clip_sample */
    int noisy;       /* the step adds noise (Euler a; DDIM with eta > 0): noise must be given */
    int heun;        /* DPM++ second order: solver_type heun (else midpoint) */
    int uses_x0;     /* DPM++: writes cur_x0; the caller swaps cur and prev x0 after the step */
    float c[6];
} dk_step;

static inline DK_HD void dk_step_elem(const dk_step *s, float *x, const float *m, const float *noise, float *cur_x0,
                                      const float *prev_x0, size_t j) {
    const float *c = s->c;
    float xj = x[j], mj = m[j];
    switch (s->kind) {
    case DK_STEP_EULER:
    case DK_STEP_EULER_A: {
        float x0 = s->eps ? DK_FSUB(xj, DK_FMUL(c[0], mj)) : DK_FADD(DK_FMUL(mj, c[1]), DK_FDIV(xj, c[2]));
        float d = DK_FDIV(DK_FSUB(xj, x0), c[0]);
        float prev = DK_FADD(xj, DK_FMUL(d, c[3]));
        x[j] = s->kind == DK_STEP_EULER ? prev : DK_FADD(prev, DK_FMUL(noise[j], c[4]));
        break;
    }
    case DK_STEP_DDIM: {
        float x0, e;
        if (s->eps) {
            x0 = DK_FDIV(DK_FSUB(xj, DK_FMUL(c[1], mj)), c[0]);
            e = mj;
        } else {
            x0 = DK_FSUB(DK_FMUL(c[0], xj), DK_FMUL(c[1], mj));
            e = DK_FADD(DK_FMUL(c[0], mj), DK_FMUL(c[1], xj));
        }
        if (s->clip) x0 = x0 < -c[5] ? -c[5] : x0 > c[5] ? c[5] : x0;
        float prev = DK_FADD(DK_FMUL(c[2], x0), DK_FMUL(c[3], e));
        if (s->noisy) prev = DK_FADD(prev, DK_FMUL(c[4], noise[j]));
        x[j] = prev;
        break;
    }
    case DK_STEP_DPM_X0:
    case DK_STEP_DPM_FIRST:
    case DK_STEP_DPM_SECOND: {
        float x0 = s->eps ? DK_FDIV(DK_FSUB(xj, DK_FMUL(c[1], mj)), c[0]) : DK_FSUB(DK_FMUL(c[0], xj), DK_FMUL(c[1], mj));
        cur_x0[j] = x0;
        if (s->kind == DK_STEP_DPM_X0) {
            x[j] = x0;
        } else if (s->kind == DK_STEP_DPM_FIRST) {
            x[j] = DK_FSUB(DK_FMUL(c[2], xj), DK_FMUL(c[3], x0));
        } else {
            float d1 = DK_FMUL(c[4], DK_FSUB(x0, prev_x0[j]));
            float v = DK_FSUB(DK_FMUL(c[2], xj), DK_FMUL(c[3], x0));
            x[j] = s->heun ? DK_FADD(v, DK_FMUL(c[5], d1)) : DK_FSUB(v, DK_FMUL(c[5], d1));
        }
        break;
    }
    default: { /* DK_STEP_EDM */
        float x0 = DK_FADD(DK_FMUL(c[0], xj), DK_FMUL(c[1], mj));
        float d = DK_FDIV(DK_FSUB(xj, x0), c[2]);
        x[j] = DK_FADD(xj, DK_FMUL(d, c[3]));
        break;
    }
    }
}

#endif /* DK_SAMPLING_H */
