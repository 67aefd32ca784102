/* vae.c - the SD kl-f8 autoencoder forwards (see vae.h). Mirrors diffusers 0.42
 * models/autoencoders/vae.py Encoder / Decoder, resnet.py ResnetBlock2D (temb None, "default"
 * norm), downsampling.py Downsample2D (padding 0: F.pad (0,1,0,1) then 3x3 stride 2),
 * upsampling.py Upsample2D (nearest 2x, 3x3 conv), unet_2d_blocks.py UNetMidBlock2D with one
 * single-head Attention, and autoencoder_kl.py AutoencoderKL.encode / decode with
 * DiagonalGaussianDistribution; = ldm modules/diffusionmodules/model.py Encoder / Decoder.
 *
 * Memory plan. A forward keeps two "stage" buffers of the largest activation it will produce
 * (cur and nxt, swapped after every block), and each block takes its temporaries above them
 * with da_arena_mark / da_arena_reset, so the peak is 2 x largest activation + the largest
 * block's temporaries. For the full-size decoder at 512x512 that is 2 x 256 MiB (256 channels at
 * 512^2 after the last upsample) + 256 MiB (the upsample's 2x copy, or a full-resolution resnet's
 * two 128-channel temporaries): 768 MiB, so the decode is exact and untiled (docs/MODELS.md "VAE
 * forwards" has the measured numbers).
 */
#include "vae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "weights.h"

typedef struct vconv {
    da_w w;
    const float *b;
} vconv;

/* ResnetBlock2D: norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, + (1x1 conv_shortcut of) x */
typedef struct vres {
    int cin, cout;
    const float *n1g, *n1b, *n2g, *n2b;
    vconv c1, c2, sc; /* sc.w.p NULL when cin == cout */
} vres;

/* Attention (diffusers) / AttnBlock (ldm): GroupNorm, q/k/v linears, one head over H*W tokens */
typedef struct vattn {
    int c;
    const float *ng, *nb;
    vconv q, k, v, o;
} vattn;

typedef struct vmid {
    vres r0, r1;
    vattn at;
} vmid;

struct da_vae {
    da_vae_config cfg;
    da_binder bind;
    /* encoder */
    vconv e_in, e_down[DA_MAX_LEVELS], e_out, quant;
    vres *e_res; /* [level][layers_per_block] */
    vmid e_mid;
    const float *e_ng, *e_nb;
    /* decoder */
    vconv post, d_in, d_up[DA_MAX_LEVELS], d_out;
    vres *d_res; /* [level][layers_per_block + 1], level = diffusers up_blocks index */
    vmid d_mid;
    const float *d_ng, *d_nb;
};

/* ---- binding ------------------------------------------------------------------------------------ */

static vconv bind_conv(da_binder *b, const char *prefix) {
    vconv c;
    c.w = da_bind(b, "%s.weight", prefix);
    c.b = da_bind_f32(b, "%s.bias", prefix);
    return c;
}

static void bind_res(da_binder *b, vres *r, const char *prefix, int cin, int cout) {
    char n[200];
    r->cin = cin;
    r->cout = cout;
    r->n1g = da_bind_f32(b, "%s.norm1.weight", prefix);
    r->n1b = da_bind_f32(b, "%s.norm1.bias", prefix);
    r->n2g = da_bind_f32(b, "%s.norm2.weight", prefix);
    r->n2b = da_bind_f32(b, "%s.norm2.bias", prefix);
    snprintf(n, sizeof n, "%s.conv1", prefix);
    r->c1 = bind_conv(b, n);
    snprintf(n, sizeof n, "%s.conv2", prefix);
    r->c2 = bind_conv(b, n);
    memset(&r->sc, 0, sizeof r->sc);
    if (cin != cout) {
        snprintf(n, sizeof n, "%s.conv_shortcut", prefix);
        r->sc = bind_conv(b, n);
    }
}

static void bind_mid(da_binder *b, vmid *m, const char *part, int ch) {
    char n[200];
    snprintf(n, sizeof n, "%s.mid_block.resnets.0", part);
    bind_res(b, &m->r0, n, ch, ch);
    snprintf(n, sizeof n, "%s.mid_block.resnets.1", part);
    bind_res(b, &m->r1, n, ch, ch);
    m->at.c = ch;
    m->at.ng = da_bind_f32(b, "%s.mid_block.attentions.0.group_norm.weight", part);
    m->at.nb = da_bind_f32(b, "%s.mid_block.attentions.0.group_norm.bias", part);
    /* ldm stores these as 1x1 convs [C, C, 1, 1]: same bytes as the linear [C, C] */
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.to_q", part);
    m->at.q = bind_conv(b, n);
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.to_k", part);
    m->at.k = bind_conv(b, n);
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.to_v", part);
    m->at.v = bind_conv(b, n);
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.to_out.0", part);
    m->at.o = bind_conv(b, n);
}

da_status da_vae_load(const da_model_file *m, da_vae **out, da_error *err) {
    return da_vae_load_on(m, NULL, out, err);
}

da_status da_vae_load_on(const da_model_file *m, da_backend *be, da_vae **out, da_error *err) {
    *out = NULL;
    if (!da_model_has(m, DA_COMP_VAE))
        return da_err_set(err, DA_ERR_NOT_FOUND, "%s: the model has no VAE (%s)", m->path, da_model_kind_name(m->kind));
    const da_vae_config *c = &m->cfg.vae;
    if (c->n_levels < 1 || c->n_levels > DA_MAX_LEVELS || c->layers_per_block < 1 || c->latent_channels < 1 ||
        c->in_channels < 1 || c->out_channels < 1 || c->norm_num_groups < 1)
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: vae configuration out of range", m->path);
    da_vae *v = da_calloc(1, sizeof *v, err);
    if (!v) return DA_ERR_NOMEM;
    v->cfg = *c;
    const int n = c->n_levels, lpb = c->layers_per_block, *boc = c->block_out_channels;
    v->e_res = calloc((size_t)n * lpb, sizeof *v->e_res);
    v->d_res = calloc((size_t)n * (lpb + 1), sizeof *v->d_res);
    if (!v->e_res || !v->d_res) {
        da_vae_free(v);
        return da_err_set(err, DA_ERR_NOMEM, "vae: out of memory");
    }
    da_binder *b = &v->bind;
    da_binder_init(b, m, DA_COMP_VAE);
    b->be = be;
    char nm[200];

    v->e_in = bind_conv(b, "encoder.conv_in");
    int ch = boc[0];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < lpb; j++) {
            snprintf(nm, sizeof nm, "encoder.down_blocks.%d.resnets.%d", i, j);
            bind_res(b, &v->e_res[i * lpb + j], nm, j == 0 ? ch : boc[i], boc[i]);
        }
        if (i < n - 1) {
            snprintf(nm, sizeof nm, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            v->e_down[i] = bind_conv(b, nm);
        }
        ch = boc[i];
    }
    bind_mid(b, &v->e_mid, "encoder", boc[n - 1]);
    v->e_ng = da_bind_f32(b, "encoder.conv_norm_out.weight");
    v->e_nb = da_bind_f32(b, "encoder.conv_norm_out.bias");
    v->e_out = bind_conv(b, "encoder.conv_out");
    v->quant = bind_conv(b, "quant_conv");

    v->post = bind_conv(b, "post_quant_conv");
    v->d_in = bind_conv(b, "decoder.conv_in");
    bind_mid(b, &v->d_mid, "decoder", boc[n - 1]);
    ch = boc[n - 1];
    for (int i = 0; i < n; i++) {
        int o = boc[n - 1 - i];
        for (int j = 0; j <= lpb; j++) {
            snprintf(nm, sizeof nm, "decoder.up_blocks.%d.resnets.%d", i, j);
            bind_res(b, &v->d_res[i * (lpb + 1) + j], nm, j == 0 ? ch : o, o);
        }
        if (i < n - 1) {
            snprintf(nm, sizeof nm, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            v->d_up[i] = bind_conv(b, nm);
        }
        ch = o;
    }
    v->d_ng = da_bind_f32(b, "decoder.conv_norm_out.weight");
    v->d_nb = da_bind_f32(b, "decoder.conv_norm_out.bias");
    v->d_out = bind_conv(b, "decoder.conv_out");
    if (b->st) {
        da_status st = b->st;
        if (err) *err = b->err;
        da_vae_free(v);
        return st;
    }
    *out = v;
    return DA_OK;
}

void da_vae_free(da_vae *v) {
    if (!v) return;
    da_binder_release(&v->bind);
    free(v->e_res);
    free(v->d_res);
    free(v);
}

const da_vae_config *da_vae_cfg(const da_vae *v) { return &v->cfg; }
int da_vae_factor(const da_vae *v) { return 1 << (v->cfg.n_levels - 1); }

/* ---- blocks ------------------------------------------------------------------------------------- */

static size_t nel(int N, int C, int H, int W) { return (size_t)N * C * H * W; }

/* GroupNorm of the VAE (eps from the config: 1e-6, as every VAE GroupNorm), optionally + SiLU */
static void gn(const da_vae *v, da_backend *be, float *y, const float *x, int N, int C, int HW, const float *g,
               const float *b, int silu) {
    dk_groupnorm_params p = {(size_t)N, (size_t)C, (size_t)HW, v->cfg.norm_num_groups, v->cfg.norm_eps, g, b,
                             DK_F32, silu};
    da_op_groupnorm(be, y, x, &p);
}

/* x [N, C, H, W] -> y [N, OC, H, W], k x k "same" convolution */
static void conv_same(da_backend *be, const vconv *c, const float *x, int N, int C, int H, int W, int OC, int k,
                      float *y) {
    dk_conv2d s = dk_conv2d_make(N, C, H, W, OC, k, 1, k / 2);
    da_op_conv2d(be, &s, x, &c->w, c->b, y);
}

/* ResnetBlock2D: x [N, cin, H, W] -> y [N, cout, H, W] (y must not alias x).
 * When the width changes, x is clobbered: the 1x1 shortcut is taken first (into y), so norm1 + SiLU
 * can then run in place on x, which every caller passes as a stage buffer it is done with. This
 * saves a cin-wide temporary where it is largest (decoder up level 3: 256 -> 128 channels at full
 * resolution, 256 MiB at 512x512). Otherwise t1 holds norm1(x) and t2 the conv1 output. */
static void resnet(const da_vae *v, da_backend *be, da_arena *a, const vres *r, float *x, int N, int H, int W,
                   float *y) {
    size_t mark = da_arena_mark(a);
    int HW = H * W;
    size_t ny = nel(N, r->cout, H, W);
    if (r->cin != r->cout) {
        float *t1 = da_arena_floats(a, ny), *t2 = da_arena_floats(a, ny);
        conv_same(be, &r->sc, x, N, r->cin, H, W, r->cout, 1, y);
        gn(v, be, x, x, N, r->cin, HW, r->n1g, r->n1b, 1);
        conv_same(be, &r->c1, x, N, r->cin, H, W, r->cout, 3, t2);
        gn(v, be, t2, t2, N, r->cout, HW, r->n2g, r->n2b, 1);
        conv_same(be, &r->c2, t2, N, r->cout, H, W, r->cout, 3, t1);
        da_op_add(be, y, y, t1, ny); /* (shortcut + hidden) / output_scale_factor 1 */
    } else {
        float *t1 = da_arena_floats(a, ny), *t2 = da_arena_floats(a, ny);
        gn(v, be, t1, x, N, r->cin, HW, r->n1g, r->n1b, 1);
        conv_same(be, &r->c1, t1, N, r->cin, H, W, r->cout, 3, t2);
        gn(v, be, t2, t2, N, r->cout, HW, r->n2g, r->n2b, 1);
        conv_same(be, &r->c2, t2, N, r->cout, H, W, r->cout, 3, y);
        da_op_add(be, y, y, x, ny);
    }
    da_arena_reset(a, mark);
}

/* Mid-block attention: x [N, C, H, W] -> y = x + to_out(attn(norm(x))) [N, C, H, W] (y != x).
 * Tokens are the H*W positions, one head of width C, scale 1/sqrt(C). */
static void attention(const da_vae *v, da_backend *be, da_arena *a, const vattn *t, const float *x, int N, int H,
                      int W, float *y) {
    size_t mark = da_arena_mark(a);
    int C = t->c, HW = H * W, M = N * HW;
    size_t n = nel(N, C, H, W);
    float *h = da_arena_floats(a, n), *tok = da_arena_floats(a, n);
    float *q = da_arena_floats(a, n), *k = da_arena_floats(a, n), *vv = da_arena_floats(a, n);
    gn(v, be, h, x, N, C, HW, t->ng, t->nb, 0);
    da_op_transpose(be, tok, h, (size_t)N, (size_t)C, (size_t)HW); /* [N, C, HW] -> [N, HW, C] */
    da_op_linear(be, M, C, C, tok, &t->q.w, t->q.b, q);
    da_op_linear(be, M, C, C, tok, &t->k.w, t->k.b, k);
    da_op_linear(be, M, C, C, tok, &t->v.w, t->v.b, vv);
    dk_attn_params p = dk_attn_params_packed(N, 1, HW, HW, C, 0);
    da_op_attention(be, &p, q, k, vv, tok);
    da_op_linear(be, M, C, C, tok, &t->o.w, t->o.b, q);
    da_op_transpose(be, h, q, (size_t)N, (size_t)HW, (size_t)C); /* back to [N, C, HW] */
    da_op_add(be, y, h, x, n);
    da_arena_reset(a, mark);
}

/* UNetMidBlock2D: resnet, attention, resnet. In cur [N, C, H, W]; the result is left in *cur. */
static void mid_block(const da_vae *v, da_backend *be, da_arena *a, const vmid *m, float **cur, float **nxt, int N,
                      int H, int W) {
    float *s;
    resnet(v, be, a, &m->r0, *cur, N, H, W, *nxt);
    s = *cur, *cur = *nxt, *nxt = s;
    attention(v, be, a, &m->at, *cur, N, H, W, *nxt);
    s = *cur, *cur = *nxt, *nxt = s;
    resnet(v, be, a, &m->r1, *cur, N, H, W, *nxt);
    s = *cur, *cur = *nxt, *nxt = s;
}

static void upd(size_t *m, int N, int C, int H, int W) {
    size_t e = nel(N, C, H, W);
    if (e > *m) *m = e;
}

/* Image-side shape check shared by the forwards and the host calls; names the tensor. */
static bool shape_ok(const da_vae *v, da_backend *be, const char *what, int B, int C, int H, int W, int want_c,
                     int f) {
    if (B < 1 || H < 1 || W < 1 || B > 65536 || H > 65536 || W > 65536)
        return da_backend_fail(be, DA_ERR_SHAPE, "vae: %s shape [%d, %d, %d, %d] has an empty or oversized dimension",
                               what, B, C, H, W) == DA_OK;
    if (C != want_c)
        return da_backend_fail(be, DA_ERR_SHAPE, "vae: %s has %d channels, expected %d", what, C, want_c) == DA_OK;
    if (H % f || W % f)
        return da_backend_fail(be, DA_ERR_SHAPE, "vae: %s is %dx%d (H x W); both must be multiples of %d", what, H, W,
                               f) == DA_OK;
    return true;
}

/* ---- forwards ----------------------------------------------------------------------------------- */

/* x [B, 3, H, W] -> moments [B, 2L, H/f, W/f] */
void da_vae_encode_fwd(const da_vae *v, da_backend *be, da_arena *a, const float *x, int B, int H, int W,
                       float *moments) {
    const da_vae_config *c = &v->cfg;
    const int n = c->n_levels, lpb = c->layers_per_block, *boc = c->block_out_channels, L = c->latent_channels;
    if (!shape_ok(v, be, "encoder input 'sample'", B, c->in_channels, H, W, c->in_channels, da_vae_factor(v))) return;
    size_t maxel = 0;
    for (int i = 0; i < n; i++) {
        upd(&maxel, B, boc[i], H >> i, W >> i);
        upd(&maxel, B, i ? boc[i - 1] : boc[0], H >> i, W >> i);
    }
    upd(&maxel, B, 2 * L, H >> (n - 1), W >> (n - 1));
    size_t mark = da_arena_mark(a);
    float *cur = da_arena_floats(a, maxel), *nxt = da_arena_floats(a, maxel), *s;

    conv_same(be, &v->e_in, x, B, c->in_channels, H, W, boc[0], 3, cur);
    int ch = boc[0], h = H, w = W;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < lpb; j++) {
            resnet(v, be, a, &v->e_res[i * lpb + j], cur, B, h, w, nxt);
            s = cur, cur = nxt, nxt = s;
        }
        ch = boc[i];
        if (i < n - 1) {
            /* Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then a 3x3 stride-2 unpadded conv */
            dk_conv2d sd = dk_conv2d_make(B, ch, h, w, ch, 3, 2, 0);
            sd.pad_b = sd.pad_r = 1;
            da_op_conv2d(be, &sd, cur, &v->e_down[i].w, v->e_down[i].b, nxt);
            s = cur, cur = nxt, nxt = s;
            h /= 2, w /= 2;
        }
    }
    mid_block(v, be, a, &v->e_mid, &cur, &nxt, B, h, w);
    gn(v, be, cur, cur, B, ch, h * w, v->e_ng, v->e_nb, 1);
    conv_same(be, &v->e_out, cur, B, ch, h, w, 2 * L, 3, nxt);
    conv_same(be, &v->quant, nxt, B, 2 * L, h, w, 2 * L, 1, moments);
    da_arena_reset(a, mark);
}

/* z [B, L, h, w] -> y [B, 3, f*h, f*w] */
void da_vae_decode_fwd(const da_vae *v, da_backend *be, da_arena *a, const float *z, int B, int h, int w, float *y) {
    const da_vae_config *c = &v->cfg;
    const int n = c->n_levels, lpb = c->layers_per_block, *boc = c->block_out_channels, L = c->latent_channels;
    if (!shape_ok(v, be, "decoder input 'z'", B, L, h, w, L, 1)) return;
    if ((int64_t)h * da_vae_factor(v) > 65536 || (int64_t)w * da_vae_factor(v) > 65536) {
        da_backend_fail(be, DA_ERR_SHAPE, "vae: decoder input 'z' %dx%d is too large", h, w);
        return;
    }
    size_t maxel = 0;
    upd(&maxel, B, L, h, w);
    for (int i = 0; i < n; i++) {
        upd(&maxel, B, i ? boc[n - i] : boc[n - 1], h << i, w << i); /* the level's input */
        upd(&maxel, B, boc[n - 1 - i], h << i, w << i);
        if (i < n - 1) upd(&maxel, B, boc[n - 1 - i], h << (i + 1), w << (i + 1));
    }
    size_t mark = da_arena_mark(a);
    float *cur = da_arena_floats(a, maxel), *nxt = da_arena_floats(a, maxel), *s;

    conv_same(be, &v->post, z, B, L, h, w, L, 1, nxt);
    conv_same(be, &v->d_in, nxt, B, L, h, w, boc[n - 1], 3, cur);
    mid_block(v, be, a, &v->d_mid, &cur, &nxt, B, h, w);
    int ch = boc[n - 1];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j <= lpb; j++) {
            resnet(v, be, a, &v->d_res[i * (lpb + 1) + j], cur, B, h, w, nxt);
            s = cur, cur = nxt, nxt = s;
        }
        ch = boc[n - 1 - i];
        if (i < n - 1) {
            /* Upsample2D: nearest 2x, then a 3x3 conv at the new size */
            size_t m2 = da_arena_mark(a);
            float *up = da_arena_floats(a, nel(B, ch, 2 * h, 2 * w));
            da_op_upsample2x(be, up, cur, (size_t)B, (size_t)ch, (size_t)h, (size_t)w);
            h *= 2, w *= 2;
            conv_same(be, &v->d_up[i], up, B, ch, h, w, ch, 3, nxt);
            s = cur, cur = nxt, nxt = s;
            da_arena_reset(a, m2);
        }
    }
    gn(v, be, cur, cur, B, ch, h * w, v->d_ng, v->d_nb, 1);
    conv_same(be, &v->d_out, cur, B, ch, h, w, c->out_channels, 3, y);
    da_arena_reset(a, mark);
}

/* ---- host convenience ----------------------------------------------------------------------------- */

typedef struct job {
    const da_vae *v;
    int decode;
    const float *in;
    int B, H, W; /* the input's spatial size */
    float *o1, *o2;
} job;

/* One pass: inputs uploaded into the arena, the forward, outputs downloaded. */
static void job_run(da_backend *be, da_arena *a, const job *j) {
    const da_vae *v = j->v;
    int f = da_vae_factor(v), L = v->cfg.latent_channels;
    size_t mark = da_arena_mark(a);
    if (!j->decode) {
        size_t hw = (size_t)(j->H / f) * (j->W / f);
        float *x = da_arena_floats(a, nel(j->B, v->cfg.in_channels, j->H, j->W));
        float *mom = da_arena_floats(a, (size_t)j->B * 2 * L * hw);
        da_op_upload(be, x, j->in, nel(j->B, v->cfg.in_channels, j->H, j->W));
        da_vae_encode_fwd(v, be, a, x, j->B, j->H, j->W, mom);
        for (int b = 0; b < j->B; b++) {
            da_op_download(be, j->o1 + (size_t)b * L * hw, mom + (size_t)b * 2 * L * hw, (size_t)L * hw);
            if (j->o2) da_op_download(be, j->o2 + (size_t)b * L * hw, mom + ((size_t)b * 2 + 1) * L * hw, (size_t)L * hw);
        }
    } else {
        float *z = da_arena_floats(a, nel(j->B, L, j->H, j->W));
        float *y = da_arena_floats(a, nel(j->B, v->cfg.out_channels, j->H * f, j->W * f));
        da_op_upload(be, z, j->in, nel(j->B, L, j->H, j->W));
        da_vae_decode_fwd(v, be, a, z, j->B, j->H, j->W, y);
        da_op_download(be, j->o1, y, nel(j->B, v->cfg.out_channels, j->H * f, j->W * f));
    }
    da_arena_reset(a, mark);
}

static da_status two_pass(da_backend *be, da_arena *a, const job *j, da_error *err) {
    const da_vae *v = j->v;
    /* reject bad shapes before any size is computed from them */
    bool ok = j->decode ? shape_ok(v, be, "decoder input 'z'", j->B, v->cfg.latent_channels, j->H, j->W,
                                   v->cfg.latent_channels, 1)
                        : shape_ok(v, be, "encoder input 'sample'", j->B, v->cfg.in_channels, j->H, j->W,
                                   v->cfg.in_channels, da_vae_factor(v));
    if (!ok) return da_backend_take_error(be, err);
    da_status st = da_backend_check_weights(v->bind.be, be, "vae", err);
    if (st) return st;
    da_arena_on_backend(a, be); /* activations in backend memory, before planning */
    da_backend_plan(be);
    da_arena_plan(a);
    job_run(be, a, j);
    if ((st = da_backend_commit(be, err))) return st;
    if ((st = da_arena_commit(a, 0, err))) return st;
    job_run(be, a, j);
    if (be->st) return da_backend_take_error(be, err);
    if (a->overflow)
        return da_err_set(err, DA_ERR_INVALID_ARG, "vae: activation arena overflow (the plan was smaller than the run)");
    return DA_OK;
}

da_status da_vae_encode(const da_vae *v, da_backend *be, da_arena *a, const float *img, int B, int H, int W,
                        float *mean, float *logvar, da_error *err) {
    job j = {v, 0, img, B, H, W, mean, logvar};
    da_status st = two_pass(be, a, &j, err);
    if (st || !logvar) return st;
    /* DiagonalGaussianDistribution: torch.clamp(logvar, -30.0, 20.0) */
    size_t n = nel(B, v->cfg.latent_channels, H / da_vae_factor(v), W / da_vae_factor(v));
    for (size_t i = 0; i < n; i++) logvar[i] = logvar[i] < -30.0f ? -30.0f : logvar[i] > 20.0f ? 20.0f : logvar[i];
    return DA_OK;
}

da_status da_vae_encode_sample(const da_vae *v, da_backend *be, da_arena *a, const float *img, int B, int H, int W,
                               const float *noise, float *latent, da_error *err) {
    if (B < 1 || H < 1 || W < 1) return da_err_set(err, DA_ERR_SHAPE, "vae: encoder input 'sample' is empty");
    size_t n = nel(B, v->cfg.latent_channels, H / da_vae_factor(v), W / da_vae_factor(v));
    float *lv = da_malloc(n * sizeof *lv, err);
    if (!lv) return DA_ERR_NOMEM;
    da_status st = da_vae_encode(v, be, a, img, B, H, W, latent, lv, err);
    /* std = exp(0.5 * logvar); sample = mean + std * noise, in f32 as torch does */
    if (!st)
        for (size_t i = 0; i < n; i++) latent[i] = latent[i] + expf(0.5f * lv[i]) * noise[i];
    free(lv);
    return st;
}

da_status da_vae_encode_image(const da_vae *v, da_backend *be, da_arena *a, const da_image *im, float *mean,
                              da_error *err) {
    if (!im || !im->data || im->w < 1 || im->h < 1) return da_err_set(err, DA_ERR_INVALID_ARG, "vae: empty image");
    int f = da_vae_factor(v);
    if (im->w % f || im->h % f)
        return da_err_set(err, DA_ERR_SHAPE, "vae: image is %dx%d (W x H); both must be multiples of %d", im->w, im->h,
                          f);
    float *x = da_malloc(nel(1, 3, im->h, im->w) * sizeof *x, err);
    if (!x) return DA_ERR_NOMEM;
    da_image_to_pm1(im, x);
    da_status st = da_vae_encode(v, be, a, x, 1, im->h, im->w, mean, NULL, err);
    free(x);
    return st;
}

da_status da_vae_decode(const da_vae *v, da_backend *be, da_arena *a, const float *z, int B, int h, int w,
                        float *img, da_error *err) {
    job j = {v, 1, z, B, h, w, img, NULL};
    return two_pass(be, a, &j, err);
}

da_status da_vae_decode_rgb8(const da_vae *v, da_backend *be, da_arena *a, const float *z, int B, int h, int w,
                             da_image *out, da_error *err) {
    if (B < 1 || h < 1 || w < 1) return da_err_set(err, DA_ERR_SHAPE, "vae: decoder input 'z' is empty");
    if (v->cfg.out_channels != 3)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "vae: decoder has %d output channels, RGB needs 3",
                          v->cfg.out_channels);
    int f = da_vae_factor(v);
    size_t per = nel(1, 3, h * f, w * f);
    float *img = da_malloc(per * B * sizeof *img, err);
    if (!img) return DA_ERR_NOMEM;
    da_status st = da_vae_decode(v, be, a, z, B, h, w, img, err);
    for (int b = 0; b < B && !st; b++) {
        st = da_pm1_to_image(img + per * b, w * f, h * f, &out[b], err);
        if (st)
            for (int k = 0; k < b; k++) da_image_free(&out[k]);
    }
    free(img);
    return st;
}
