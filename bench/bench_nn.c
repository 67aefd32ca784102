/* bench_nn.c - normalisation, elementwise and conversion kernels at SD 1.5 shapes (UNet at a
 * 64x64 latent and at 32x32, VAE decoder at 64x64 / 512 channels, CLIP text). These are all
 * memory-bound, so the rate is GB/s of compulsory traffic (bytes read once + written once;
 * GroupNorm's and LayerNorm's statistics passes re-read from cache and are not counted) and the
 * peer is the plain *_ref twin (vs_peer = ref_time / our_time).
 *
 * Usage: bench_nn [--quick]
 */
#include <stdint.h>
#include <string.h>

#include "bench.h"
#include "convert.h"
#include "norm.h"
#include "ops.h"

typedef struct {
    int op;
    int ref;
    size_t a, b, c, d;
    float *x, *y, *z;
    void *g, *be;
    uint16_t *h;
} nctx;

enum { GN, GN_SILU, LN, SOFTMAX, SILU, GELU, GEGLU, ADD, BIAS, UPS, CAT, F16TO32, F32TO16, BF16TO32 };

static void run(void *p) {
    nctx *c = p;
    switch (c->op) {
    case GN:
    case GN_SILU: {
        dk_groupnorm_params gp = {1, c->a, c->b, 32, 1e-5f, c->g, c->be, DK_F32, c->op == GN_SILU};
        (c->ref ? dk_groupnorm_ref : dk_groupnorm)(c->y, c->x, &gp);
        break;
    }
    case LN: (c->ref ? dk_layernorm_ref : dk_layernorm)(c->y, c->x, c->a, c->b, 1e-5f, c->g, c->be, DK_F32); break;
    case SOFTMAX: (c->ref ? dk_softmax_ref : dk_softmax)(c->y, c->x, c->a, c->b); break;
    case SILU: (c->ref ? dk_silu_ref : dk_silu)(c->y, c->x, c->a * c->b); break;
    case GELU: (c->ref ? dk_gelu_ref : dk_gelu)(c->y, c->x, c->a * c->b); break;
    case GEGLU: (c->ref ? dk_geglu_ref : dk_geglu)(c->y, c->x, c->a, c->b); break;
    case ADD: (c->ref ? dk_add_ref : dk_add)(c->y, c->x, c->z, c->a * c->b); break;
    case BIAS: (c->ref ? dk_add_channel_bias_ref : dk_add_channel_bias)(c->y, c->x, c->g, DK_F32, 1, c->a, c->b); break;
    case UPS: (c->ref ? dk_upsample2x_nearest_ref : dk_upsample2x_nearest)(c->y, c->x, 1, c->a, c->c, c->d); break;
    case CAT: (c->ref ? dk_concat_channels_ref : dk_concat_channels)(c->y, c->x, c->a, c->z, c->a, 1, c->b); break;
    case F16TO32: (c->ref ? dk_f16_to_f32_n_ref : dk_f16_to_f32_n)(c->y, c->h, c->a * c->b); break;
    case F32TO16: (c->ref ? dk_f32_to_f16_n_ref : dk_f32_to_f16_n)(c->h, c->x, c->a * c->b); break;
    case BF16TO32: (c->ref ? dk_bf16_to_f32_n_ref : dk_bf16_to_f32_n)(c->y, c->h, c->a * c->b); break;
    }
}

static float *rnd(size_t n, uint32_t s) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = 4.0f * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
    return x;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    struct { const char *name; int op; size_t a, b, c, d; double bytes_per_elem; const char *shape; } cs[] = {
        {"groupnorm+silu", GN_SILU, 320, 64 * 64, 0, 0, 8, "320x64x64 (unet64)"},
        {"groupnorm", GN, 320, 64 * 64, 0, 0, 8, "320x64x64 (unet64 attn)"},
        {"groupnorm+silu", GN_SILU, 640, 32 * 32, 0, 0, 8, "640x32x32 (unet32)"},
        {"groupnorm+silu", GN_SILU, 1280, 8 * 8, 0, 0, 8, "1280x8x8 (unet8)"},
        {"groupnorm+silu", GN_SILU, 512, 64 * 64, 0, 0, 8, "512x64x64 (vae64)"},
        {"groupnorm+silu", GN_SILU, 256, 256 * 256, 0, 0, 8, "256x256x256 (vae256)"},
        {"layernorm", LN, 4096, 320, 0, 0, 8, "4096x320 (unet64)"},
        {"layernorm", LN, 1024, 640, 0, 0, 8, "1024x640 (unet32)"},
        {"layernorm", LN, 77, 768, 0, 0, 8, "77x768 (clip)"},
        {"softmax", SOFTMAX, 8 * 4096, 77, 0, 0, 8, "32768x77"},
        {"silu", SILU, 1280, 64 * 64, 0, 0, 8, "1280x64x64"},
        {"gelu", GELU, 4096, 1280, 0, 0, 8, "4096x1280"},
        {"geglu", GEGLU, 4096, 1280, 0, 0, 12, "4096x2560->1280"},
        {"add", ADD, 320, 64 * 64, 0, 0, 12, "320x64x64 residual"},
        {"add_channel_bias", BIAS, 320, 64 * 64, 0, 0, 8, "320x64x64"},
        {"upsample2x", UPS, 1280, 16 * 16, 16, 16, 20, "1280x16x16->32x32"},
        {"upsample2x", UPS, 512, 128 * 128, 128, 128, 20, "512x128x128 (vae)"},
        {"concat_channels", CAT, 640, 32 * 32, 0, 0, 16, "640+640 x32x32"},
        {"f16->f32", F16TO32, 2560, 10240, 0, 0, 6, "26M weights"},
        {"f32->f16", F32TO16, 2560, 10240, 0, 0, 6, "26M weights"},
        {"bf16->f32", BF16TO32, 2560, 10240, 0, 0, 6, "26M weights"},
    };
    bench_header();
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        nctx c = {cs[i].op, 0, cs[i].a, cs[i].b, cs[i].c, cs[i].d, NULL, NULL, NULL, NULL, NULL, NULL};
        size_t n = cs[i].a * cs[i].b;
        size_t nx = cs[i].op == GEGLU ? 2 * n : n, ny = cs[i].op == UPS ? 4 * n : cs[i].op == CAT ? 2 * n : n;
        c.x = rnd(nx, 1);
        c.z = rnd(n, 2);
        c.y = malloc(ny * sizeof(float));
        c.g = rnd(cs[i].op == LN ? cs[i].b : cs[i].a, 3);
        c.be = rnd(cs[i].op == LN ? cs[i].b : cs[i].a, 4);
        c.h = malloc(n * 2);
        dk_f32_to_bf16_n(c.h, c.x, n);
        double bytes = cs[i].bytes_per_elem * (double)n;
        int reps = quick ? 3 : 9;
        double mins = quick ? 0.1 : 0.5;
        c.ref = 1;
        double tr = bench_median(run, &c, 3, quick ? 0.05 : 0.2);
        c.ref = 0;
        double tf = bench_median(run, &c, reps, mins);
        bench_row(cs[i].name, cs[i].shape, "ref", tr, bytes, "GB/s", 0);
        bench_row(cs[i].name, cs[i].shape, "fast", tf, bytes, "GB/s", tr);
        free(c.x), free(c.z), free(c.y), free(c.g), free(c.be), free(c.h);
    }
    return 0;
}
