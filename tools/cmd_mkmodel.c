/* cmd_mkmodel.c - `diffaug mkmodel`: write a random-weight model in a real file layout (single-file
 * SD checkpoint, diffusers folder, transformers CLIP or BLIP folder) for tests and benchmarks. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mkmodel.h"
#include "util.h"

static void usage(FILE *fp) {
    fprintf(fp, "usage: diffaug mkmodel --config NAME --layout single|diffusers [--dtype f32|f16|bf16] [--seed N]\n"
                "                       [--vocab DIR] [--jitter X] [--cosxl] -o PATH\n"
                "  --config   one of:");
    for (const char *const *n = da_config_preset_names(); *n; n++) fprintf(fp, " %s", *n);
    fprintf(fp, "\n  --layout   single: one .safetensors with ldm names (SD only); diffusers: a pipeline folder\n"
                "             (CLIP and BLIP configs: a transformers folder)\n"
                "  --vocab    folder with vocab.json + merges.txt to include as the tokenizer (BLIP: a folder with\n"
                "             a BERT vocab.txt; the model's vocab_size and special ids follow it)\n"
                "  --jitter   perturb norm weights/biases and zero biases by U(-X, X) (default 0: exact defaults)\n"
                "  --cosxl    (SDXL) mark the model as CosXL, EDM v-prediction: single file: edm_vpred.sigma_max/min\n"
                "             tensors; diffusers: an EDMEulerScheduler scheduler config\n");
}

int cmd_mkmodel(int argc, char **argv) {
    da_mkmodel_params p;
    da_mkmodel_params_init(&p);
    const char *out = NULL, *layout = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "--cosxl")) {
            p.cosxl = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "diffaug mkmodel: %s needs a value\n", a);
            return CLI_USAGE;
        }
        i++;
        if (!strcmp(a, "--config")) p.config = v;
        else if (!strcmp(a, "--layout")) layout = v;
        else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "f32")) p.dtype = DA_F32;
            else if (!strcmp(v, "f16")) p.dtype = DA_F16;
            else if (!strcmp(v, "bf16")) p.dtype = DA_BF16;
            else {
                fprintf(stderr, "diffaug mkmodel: --dtype expects f32, f16 or bf16, got '%s'\n", v);
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--seed")) {
            int64_t s;
            if (!cli_parse_int("mkmodel", "--seed", v, 0, INT64_MAX, &s)) return CLI_USAGE;
            p.seed = (uint64_t)s;
        } else if (!strcmp(a, "--vocab")) p.vocab_dir = v;
        else if (!strcmp(a, "--jitter")) {
            double j;
            if (!cli_parse_float("mkmodel", "--jitter", v, 0, 0.99, &j)) return CLI_USAGE;
            p.jitter = (float)j;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else {
            fprintf(stderr, "diffaug mkmodel: unknown option '%s'\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    da_model_config cfg;
    if (!p.config || !da_config_preset(p.config, &cfg)) {
        fprintf(stderr, "diffaug mkmodel: --config %s\n", p.config ? "names an unknown model" : "is required");
        usage(stderr);
        return CLI_USAGE;
    }
    if (!layout || (strcmp(layout, "single") && strcmp(layout, "diffusers"))) {
        fprintf(stderr, "diffaug mkmodel: --layout must be single or diffusers\n");
        return CLI_USAGE;
    }
    p.layout = !strcmp(layout, "single") ? DA_LAYOUT_SINGLE : DA_LAYOUT_DIFFUSERS;
    if (!out) {
        fprintf(stderr, "diffaug mkmodel: -o PATH is required\n");
        return CLI_USAGE;
    }
    da_error err;
    da_err_clear(&err);
    double t0 = da_now();
    if (da_mkmodel(&p, out, &err)) return cli_fail("mkmodel", &err);
    printf("wrote %s (%s, %s layout, %s, seed %llu) in %.2f s\n", out, p.config, layout,
           da_dtype_name(p.dtype), (unsigned long long)p.seed, da_now() - t0);
    return CLI_OK;
}
