/* run_vae.c - `diffaug run` components of the SD kl-f8 VAE (diffusers AutoencoderKL):
 *   vae_encoder: input 'sample' [B, 3, H, W] in [-1, 1] (H, W multiples of 8) -> 'mean' and 'logvar'
 *                [B, 4, H/8, W/8], unscaled (AutoencoderKL.encode(x).latent_dist.mean / .logvar,
 *                logvar clamped to [-30, 20])
 *   vae_decoder: input 'z' [B, 4, h, w] unscaled -> 'sample' [B, 3, 8h, 8w] (AutoencoderKL.decode(z).sample)
 */
#include <stdlib.h>

#include "run.h"
#include "util.h"
#include "vae.h"

da_status run_vae(run_ctx *ctx, const char *component, da_error *err) {
    bool dec = component[4] == 'd'; /* "vae_decoder" */
    da_vae *v = NULL;
    float *x = NULL, *o1 = NULL, *o2 = NULL;
    da_arena a = {0};
    da_status st = da_vae_load_on(ctx->model, ctx->be, &v, err);
    if (st) return st;
    const da_vae_config *c = da_vae_cfg(v);
    int f = da_vae_factor(v), L = c->latent_channels;
    const char *name = dec ? "z" : "sample";
    int64_t dims[4] = {-1, dec ? L : c->in_channels, -1, -1};
    if ((st = run_input_f32(ctx, name, 4, dims, &x, err))) goto done;
    if (dims[0] > 65536 || dims[2] > 65536 / (dec ? f : 1) || dims[3] > 65536 / (dec ? f : 1)) {
        st = da_err_set(err, DA_ERR_SHAPE, "%s: input '%s' [%lld, %lld, %lld, %lld] is too large", ctx->inputs->path,
                        name, (long long)dims[0], (long long)dims[1], (long long)dims[2], (long long)dims[3]);
        goto done;
    }
    int B = (int)dims[0], H = (int)dims[2], W = (int)dims[3];
    if (!dec && (H % f || W % f)) {
        st = da_err_set(err, DA_ERR_SHAPE, "%s: input 'sample' is %dx%d (H x W); both must be multiples of %d",
                        ctx->inputs->path, H, W, f);
        goto done;
    }
    if (dec) {
        int64_t od[4] = {B, c->out_channels, (int64_t)H * f, (int64_t)W * f};
        o1 = da_malloc((size_t)(od[0] * od[1] * od[2] * od[3]) * sizeof *o1, err);
        if (!o1) {
            st = DA_ERR_NOMEM;
            goto done;
        }
        if ((st = da_vae_decode(v, ctx->be, &a, x, B, H, W, o1, err))) goto done;
        st = run_output(ctx, "sample", 4, od, o1, err);
    } else {
        int64_t od[4] = {B, L, H / f, W / f};
        size_t n = (size_t)(od[0] * od[1] * od[2] * od[3]);
        o1 = da_malloc(n * sizeof *o1, err);
        o2 = o1 ? da_malloc(n * sizeof *o2, err) : NULL;
        if (!o2) {
            st = DA_ERR_NOMEM;
            goto done;
        }
        if ((st = da_vae_encode(v, ctx->be, &a, x, B, H, W, o1, o2, err))) goto done;
        if (!(st = run_output(ctx, "mean", 4, od, o1, err))) st = run_output(ctx, "logvar", 4, od, o2, err);
    }
done:
    free(x);
    free(o1);
    free(o2);
    da_arena_free(&a);
    da_vae_free(v);
    return st;
}
