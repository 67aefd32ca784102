/* bench_unet.c - one SD 1.x / SDXL UNet forward (engine/unet.c, diffusers UNet2DConditionModel)
 * timed on a model file, with its memory: the planned arena, the backend scratch, the weights mapped
 * and the process's peak resident set (VmHWM, which includes every weight page the forward touched).
 * Usage: bench_unet MODEL BATCH H W [CONTEXT_LEN] [REPS]   (latent H x W; prints one JSON line)
 * MODEL is a model path, or a preset name (sd15, sdxl, tiny-sdxl, ...): then random f16 weights are
 * written once by mkmodel to $TMPDIR/diffaug-bench-<preset>-f16.safetensors and reused (speed does
 * not depend on the values). SDXL UNets get text_embeds and time_ids (1024, 1024, 0, 0, 1024, 1024).
 * Without arguments it prints the usage and exits 0 (bench/run.sh runs every bench binary);
 * bench/compare_unet.py drives it beside diffusers. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "mkmodel.h"
#include "unet.h"
#include "util.h"

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) v = atol(line + n + 1);
    if (f) fclose(f);
    return v;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        printf("usage: bench_unet MODEL BATCH H W [CONTEXT_LEN=77] [REPS=1] (skipped: no model given)\n");
        return 0;
    }
    int B = atoi(argv[2]), H = atoi(argv[3]), W = atoi(argv[4]);
    int L = argc > 5 ? atoi(argv[5]) : 77, reps = argc > 6 ? atoi(argv[6]) : 1;
    da_error err;
    da_model_file *m;
    da_unet *u;
    const char *model = argv[1];
    char mpath[512];
    da_model_config pc;
    if (!da_is_file(model) && !da_is_dir(model) && da_config_preset(model, &pc)) {
        const char *tmp = getenv("TMPDIR");
        snprintf(mpath, sizeof mpath, "%s/diffaug-bench-%s-f16.safetensors", tmp && *tmp ? tmp : "/tmp", model);
        if (!da_is_file(mpath)) {
            da_mkmodel_params p;
            da_mkmodel_params_init(&p);
            p.config = model;
            p.layout = DA_LAYOUT_SINGLE;
            p.dtype = DA_F16;
            p.seed = 1;
            fprintf(stderr, "bench_unet: writing %s (random weights)\n", mpath);
            if (da_mkmodel(&p, mpath, &err)) {
                fprintf(stderr, "bench_unet: %s\n", err.msg);
                return 1;
            }
        }
        model = mpath;
    }
    double t0 = bench_now();
    if (da_model_open(model, &m, &err) || da_unet_load(m, &u, &err)) {
        fprintf(stderr, "bench_unet: %s\n", err.msg);
        return 1;
    }
    double t_load = bench_now() - t0;
    const da_unet_config *c = da_unet_config_of(u);
    da_unet_shape s = {B, c->in_channels, H, W, L, c->cross_attention_dim};
    size_t nx = (size_t)B * s.in_channels * H * W, ne = (size_t)B * L * s.context_dim;
    float *x = malloc(nx * 4), *e = malloc(ne * 4), *y = malloc((size_t)B * c->out_channels * H * W * 4);
    float *t = malloc((size_t)B * 4);
    for (size_t i = 0; i < nx; i++) x[i] = (float)((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
    for (size_t i = 0; i < ne; i++) e[i] = (float)((i * 40503u) % 2000) / 1000.0f - 1.0f;
    for (int b = 0; b < B; b++) t[b] = 999.0f - 250.5f * b;
    const int Dt = c->addition_embed_dim - 6 * c->addition_time_embed_dim;
    float *te = NULL, *ti = NULL;
    da_unet_added added = {NULL, NULL};
    if (c->addition_embed_dim > 0) {
        te = malloc((size_t)B * Dt * 4);
        ti = malloc((size_t)B * 6 * 4);
        for (size_t i = 0; i < (size_t)B * Dt; i++) te[i] = (float)((i * 7919u) % 2000) / 1000.0f - 1.0f;
        static const float ids[6] = {1024, 1024, 0, 0, 1024, 1024};
        for (int b = 0; b < B; b++) memcpy(ti + 6 * b, ids, sizeof ids);
        added.text_embeds = te;
        added.time_ids = ti;
    }
    da_backend *be = da_backend_cpu_new();
    da_unet_ctx *uc = da_unet_ctx_new(u, be);
    t0 = bench_now();
    if (da_unet_plan(uc, &s, &err)) {
        fprintf(stderr, "bench_unet: %s\n", err.msg);
        return 1;
    }
    double t_plan = bench_now() - t0;
    double best = 1e30, first = 0;
    for (int r = 0; r < reps; r++) {
        t0 = bench_now();
        if (da_unet_forward_added(uc, &s, x, t, e, te ? &added : NULL, y, &err)) {
            fprintf(stderr, "bench_unet: %s\n", err.msg);
            return 1;
        }
        double dt = bench_now() - t0;
        if (r == 0) first = dt;
        if (dt < best) best = dt;
    }
    double sum = 0;
    for (size_t i = 0; i < (size_t)B * c->out_channels * H * W; i++) sum += y[i];
    size_t arena, scratch, mapped, copied;
    da_unet_ctx_bytes(uc, &arena, &scratch);
    da_unet_weight_bytes(u, &mapped, &copied);
    printf("{\"batch\": %d, \"h\": %d, \"w\": %d, \"context\": %d, \"threads\": %d, \"load_s\": %.3f, \"plan_s\": %.4f, "
           "\"first_s\": %.3f, \"best_s\": %.3f, \"reps\": %d, \"arena_bytes\": %zu, \"scratch_bytes\": %zu, "
           "\"weights_mapped_bytes\": %zu, \"weights_copied_bytes\": %zu, \"vmhwm_kb\": %ld, \"out_sum\": %.6g}\n",
           B, H, W, L, omp_get_max_threads(), t_load, t_plan, first, best, reps, arena, scratch, mapped, copied,
           status_kb("VmHWM:"), sum);
    da_unet_ctx_free(uc);
    da_backend_free(be);
    da_unet_free(u);
    da_model_close(m);
    free(x), free(e), free(y), free(t), free(te), free(ti);
    return 0;
}
