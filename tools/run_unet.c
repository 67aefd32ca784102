/* run_unet.c - `diffaug run --component unet`: the SD 1.x / InstructPix2Pix / SDXL UNet on tensors
 * from a file, with diffusers UNet2DConditionModel.forward's argument names:
 *   sample [B, in_channels, h, w], timestep [B] (or one value for every sample, as diffusers
 *   broadcasts a scalar), encoder_hidden_states [B, L, cross_attention_dim], and for SDXL the
 *   added_cond_kwargs text_embeds [B, pooled width] + time_ids [B, 6]  ->  sample [B, 4, h, w].
 * Any float dtype is accepted for the inputs; they are converted to f32. */
#include <stdlib.h>

#include "run.h"
#include "unet.h"
#include "util.h"

da_status run_unet(run_ctx *ctx, const char *component, da_error *err) {
    da_unet *u = NULL;
    da_unet_ctx *uc = NULL;
    float *x = NULL, *t = NULL, *tb = NULL, *e = NULL, *y = NULL, *te = NULL, *ti = NULL;
    da_status st = da_unet_load(ctx->model, &u, err);
    if (st) return st;
    const da_unet_config *c = da_unet_config_of(u);
    int64_t xd[4] = {-1, c->in_channels, -1, -1}, ed[3] = {-1, -1, c->cross_attention_dim};
    if ((st = run_input_f32(ctx, "sample", 4, xd, &x, err))) goto done;
    ed[0] = xd[0];
    if ((st = run_input_f32(ctx, "encoder_hidden_states", 3, ed, &e, err))) goto done;
    /* SDXL added conditioning: required exactly when the UNet has it */
    const bool xl = c->addition_embed_dim > 0;
    if (!xl && (da_st_find(ctx->inputs, "text_embeds") || da_st_find(ctx->inputs, "time_ids"))) {
        st = da_err_set(err, DA_ERR_INVALID_ARG, "%s: inputs text_embeds/time_ids given, but the UNet of %s has no "
                        "added conditioning (not SDXL)", ctx->inputs->path, ctx->model_path);
        goto done;
    }
    if (xl) {
        int64_t ted[2] = {xd[0], c->addition_embed_dim - 6 * c->addition_time_embed_dim}, tid[2] = {xd[0], 6};
        if ((st = run_input_f32(ctx, "text_embeds", 2, ted, &te, err))) goto done;
        if ((st = run_input_f32(ctx, "time_ids", 2, tid, &ti, err))) goto done;
    }
    /* timestep: [B], [1] or a scalar */
    const da_st_tensor *tt = da_st_find(ctx->inputs, "timestep");
    if (!tt) {
        st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: input tensor 'timestep' is missing (expected [%lld] float)",
                        ctx->inputs->path, (long long)xd[0]);
        goto done;
    }
    if (tt->rank > 1 || (tt->numel != 1 && tt->numel != (uint64_t)xd[0])) {
        st = da_err_set(err, DA_ERR_SHAPE, "%s: input 'timestep' has %llu elements (rank %d), expected [%lld] or one value",
                        ctx->inputs->path, (unsigned long long)tt->numel, tt->rank, (long long)xd[0]);
        goto done;
    }
    int64_t td[1] = {(int64_t)tt->numel};
    if ((st = run_input_f32(ctx, "timestep", tt->rank, td, &t, err))) goto done;
    tb = da_malloc((size_t)xd[0] * sizeof *tb, err);
    if (!tb) {
        st = DA_ERR_NOMEM;
        goto done;
    }
    for (int64_t b = 0; b < xd[0]; b++) tb[b] = t[tt->numel == 1 ? 0 : b];
    if (xd[0] > 1 << 20 || xd[2] > 1 << 16 || xd[3] > 1 << 16 || ed[1] > 1 << 20) {
        st = da_err_set(err, DA_ERR_SHAPE, "%s: input 'sample' or 'encoder_hidden_states' is too large",
                        ctx->inputs->path);
        goto done;
    }
    da_unet_shape s = {(int)xd[0], (int)xd[1], (int)xd[2], (int)xd[3], (int)ed[1], (int)ed[2]};
    if ((st = da_unet_check_shape(u, &s, err))) goto done;
    size_t n_out = (size_t)xd[0] * c->out_channels * xd[2] * xd[3];
    y = da_malloc(n_out * sizeof *y, err);
    uc = da_unet_ctx_new(u, ctx->be);
    if (!y || !uc) {
        st = da_err_set(err, DA_ERR_NOMEM, "unet: out of memory");
        goto done;
    }
    da_unet_added added = {te, ti};
    if ((st = da_unet_forward_added(uc, &s, x, tb, e, xl ? &added : NULL, y, err))) goto done;
    int64_t od[4] = {xd[0], c->out_channels, xd[2], xd[3]};
    st = run_output(ctx, "sample", 4, od, y, err);
done:
    da_unet_ctx_free(uc);
    da_unet_free(u);
    free(x), free(t), free(tb), free(e), free(y), free(te), free(ti);
    return st;
}
