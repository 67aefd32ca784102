/* cmd_run.c - `diffaug run --model PATH --component NAME --inputs IN --output OUT`: run one network
 * on tensors from a safetensors file and write its outputs to another (names follow the reference
 * implementations' forward() arguments and outputs; README has the table). Used by the parity
 * tests and by anyone checking diffaug against their own reference. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "run.h"
#include "util.h"

/* the runners (tools/run_<family>.c) */
da_status run_clip_text(run_ctx *ctx, const char *component, da_error *err);
da_status run_clip_vision(run_ctx *ctx, const char *component, da_error *err);

/* component name -> runner; each network family registers its components here */
static const struct {
    const char *name;
    run_fn fn;
} components[] = {
    {"text_encoder", run_clip_text},
    {"text_encoder_2", run_clip_text},
    {"clip_text", run_clip_text},
    {"clip_vision", run_clip_vision},
    {"vae_encoder", run_vae},
    {"vae_decoder", run_vae},
    {"unet", run_unet},
    {NULL, NULL},
};

static void usage(FILE *fp) {
    fprintf(fp, "usage: diffaug run --model PATH --component NAME --inputs IN.safetensors --output OUT.safetensors\n"
                "                   [--backend cpu|cuda] [--threads N]\ncomponents:");
    for (size_t i = 0; components[i].name; i++) fprintf(fp, " %s", components[i].name);
    fprintf(fp, "\n");
}

da_status run_input_f32(const run_ctx *ctx, const char *name, int rank, int64_t *dims, float **data, da_error *err) {
    *data = NULL;
    const da_st_tensor *t = da_st_find(ctx->inputs, name);
    if (!t) return da_err_set(err, DA_ERR_NOT_FOUND, "%s: input tensor '%s' is missing", ctx->inputs->path, name);
    if (t->rank != rank)
        return da_err_set(err, DA_ERR_SHAPE, "%s: input '%s' has rank %d, expected %d", ctx->inputs->path, name,
                          t->rank, rank);
    for (int i = 0; i < rank; i++) {
        if (dims[i] >= 0 && t->shape[i] != dims[i])
            return da_err_set(err, DA_ERR_SHAPE, "%s: input '%s' dimension %d is %lld, expected %lld",
                              ctx->inputs->path, name, i, (long long)t->shape[i], (long long)dims[i]);
        if (t->shape[i] == 0)
            return da_err_set(err, DA_ERR_SHAPE, "%s: input '%s' is empty", ctx->inputs->path, name);
        dims[i] = t->shape[i];
    }
    if (t->dtype == DA_BOOL || t->dtype == DA_U8 || t->dtype == DA_I8)
        return da_err_set(err, DA_ERR_DTYPE, "%s: input '%s' has dtype %s, expected a float type", ctx->inputs->path,
                          name, da_dtype_name(t->dtype));
    return da_st_tensor_to_f32(t, data, err);
}

da_status run_input_ids(const run_ctx *ctx, const char *name, int64_t *dims, int32_t max_id, int32_t **ids,
                        da_error *err) {
    *ids = NULL;
    const da_st_tensor *t = da_st_find(ctx->inputs, name);
    if (!t) return da_err_set(err, DA_ERR_NOT_FOUND, "%s: input tensor '%s' is missing", ctx->inputs->path, name);
    if (t->dtype != DA_I32 && t->dtype != DA_I64)
        return da_err_set(err, DA_ERR_DTYPE, "%s: input '%s' has dtype %s, expected I32 or I64", ctx->inputs->path,
                          name, da_dtype_name(t->dtype));
    if (t->rank != 2 || t->shape[0] < 1 || t->shape[1] < 1)
        return da_err_set(err, DA_ERR_SHAPE, "%s: input '%s' must be [batch, tokens]", ctx->inputs->path, name);
    for (int i = 0; i < 2; i++) {
        if (dims[i] >= 0 && t->shape[i] != dims[i])
            return da_err_set(err, DA_ERR_SHAPE, "%s: input '%s' dimension %d is %lld, expected %lld",
                              ctx->inputs->path, name, i, (long long)t->shape[i], (long long)dims[i]);
        dims[i] = t->shape[i];
    }
    int32_t *out = da_malloc((size_t)t->numel * sizeof *out, err);
    if (!out) return DA_ERR_NOMEM;
    for (uint64_t i = 0; i < t->numel; i++) {
        int64_t v;
        if (t->dtype == DA_I32) {
            int32_t x;
            memcpy(&x, (const char *)t->data + 4 * i, 4);
            v = x;
        } else
            memcpy(&v, (const char *)t->data + 8 * i, 8);
        if (v < 0 || v > max_id) {
            free(out);
            return da_err_set(err, DA_ERR_BOUNDS, "%s: input '%s' element %llu is %lld, outside [0, %d]",
                              ctx->inputs->path, name, (unsigned long long)i, (long long)v, max_id);
        }
        out[i] = (int32_t)v;
    }
    *ids = out;
    return DA_OK;
}

da_status run_output(run_ctx *ctx, const char *name, int rank, const int64_t *dims, const float *data, da_error *err) {
    uint64_t n = 1;
    for (int i = 0; i < rank; i++) n *= (uint64_t)dims[i];
    return da_st_writer_add(ctx->outputs, name, DA_F32, rank, dims, data, n * sizeof(float), true, err);
}

int cmd_run(int argc, char **argv) {
    const char *model = NULL, *component = NULL, *in = NULL, *out = NULL, *backend = "cpu";
    int64_t threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        }
        if (!v) {
            fprintf(stderr, "diffaug run: %s needs a value (or is unknown)\n", a);
            return CLI_USAGE;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--component")) component = v;
        else if (!strcmp(a, "--inputs")) in = v;
        else if (!strcmp(a, "--output") || !strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--threads")) {
            if (!cli_parse_int("run", a, v, 1, 4096, &threads)) return CLI_USAGE;
        } else {
            fprintf(stderr, "diffaug run: unknown option '%s'\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
        i++;
    }
    if (!model || !component || !in || !out) {
        fprintf(stderr, "diffaug run: --model, --component, --inputs and --output are required\n");
        usage(stderr);
        return CLI_USAGE;
    }
    run_fn fn = NULL;
    for (size_t i = 0; components[i].name; i++)
        if (!strcmp(components[i].name, component)) fn = components[i].fn;
    if (!fn) {
        fprintf(stderr, "diffaug run: unknown component '%s'\n", component);
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(backend, "cpu") != 0) {
        da_error e;
        da_err_set(&e, strcmp(backend, "cuda") ? DA_ERR_INVALID_ARG : DA_ERR_UNSUPPORTED,
                   strcmp(backend, "cuda") ? "unknown backend '%s' (cpu, cuda)"
                                           : "backend '%s': the CUDA network path is not part of this version",
                   backend);
        return cli_fail("run", &e);
    }
    if (threads > 0) omp_set_num_threads((int)threads);

    da_error err;
    run_ctx ctx = {.model_path = model, .threads = (int)threads};
    da_st_file *inputs = NULL;
    int rc = CLI_FAIL;
    if (da_model_open(model, &ctx.model, &err)) goto done;
    if (da_st_open(in, &inputs, &err)) goto done;
    ctx.inputs = inputs;
    ctx.outputs = da_st_writer_new();
    ctx.be = da_backend_cpu_new();
    if (!ctx.outputs || !ctx.be) {
        da_err_set(&err, DA_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (fn(&ctx, component, &err)) goto done;
    if (da_st_writer_meta(ctx.outputs, "component", component, &err) ||
        da_st_writer_meta(ctx.outputs, "diffaug_version", DIFFAUG_VERSION, &err) ||
        da_st_writer_write(ctx.outputs, out, &err))
        goto done;
    rc = CLI_OK;
done:
    if (rc != CLI_OK) cli_fail("run", &err);
    da_backend_free(ctx.be);
    da_st_writer_free(ctx.outputs);
    da_st_close(inputs);
    da_model_close(ctx.model);
    return rc;
}
