/* cmd_inspect.c - `diffaug inspect PATH [--tensors|--summary]`: recognise a model file or folder
 * (engine/modelfile.h), print its kind, configuration, every tensor (name, dtype, shape, bytes) per
 * file and the totals. Exit 0 for a valid model, 1 with the reason otherwise. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "modelfile.h"
#include "util.h"

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int mode = 0; /* 0 everything, 1 tensors only, 2 summary only */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: diffaug inspect PATH [--tensors|--summary]\n"
                   "  PATH       single-file .safetensors, diffusers folder, transformers CLIP folder or one component\n"
                   "  --tensors  only the tensor list: file, name, dtype, shape, bytes (tab-separated)\n"
                   "  --summary  kind, configuration and totals without the tensor list\n");
            return CLI_OK;
        } else if (!strcmp(argv[i], "--tensors")) mode = 1;
        else if (!strcmp(argv[i], "--summary")) mode = 2;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "diffaug inspect: unknown option '%s'\n", argv[i]);
            return CLI_USAGE;
        } else if (path) {
            fprintf(stderr, "diffaug inspect: one PATH only\n");
            return CLI_USAGE;
        } else path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: diffaug inspect PATH [--tensors|--summary]\n");
        return CLI_USAGE;
    }
    da_error err;
    da_err_clear(&err);
    da_model_file *m;
    if (da_model_open(path, &m, &err)) return cli_fail("inspect", &err);
    if (mode != 1) {
        char desc[1024];
        if (m->component != DA_COMP_COUNT) da_config_describe_part(&m->cfg, m->component, desc, sizeof desc);
        else da_config_describe(&m->cfg, desc, sizeof desc);
        printf("path:       %s\n", path);
        printf("kind:       %s (%s naming)%s%s\n", da_model_kind_name(m->kind), da_layout_name(m->layout),
               m->component != DA_COMP_COUNT ? ", component " : "",
               m->component != DA_COMP_COUNT ? da_component_name(m->component) : "");
        printf("config:     %s\n", desc);
        printf("            (from %s)\n", m->cfg_from_json ? "config.json" : "tensor shapes");
        if (m->kind == DA_KIND_SD_DIFFUSERS || m->kind == DA_KIND_CLIP_FOLDER)
            printf("tokenizer:  %s\n", m->tokenizer_dir ? m->tokenizer_dir : "none");
        if (m->kind == DA_KIND_SD_DIFFUSERS) printf("scheduler:  %s\n", m->scheduler_config ? m->scheduler_config : "none");
        const da_model_markers *mk = &m->markers;
        if (mk->edm_vpred)
            printf("sampling:   EDM v-prediction (CosXL-style), edm_vpred.sigma_max %g, sigma_min %g\n", mk->sigma_max,
                   mk->sigma_min);
        if (mk->v_pred || mk->ztsnr || mk->edm_mean_std)
            printf("markers:   %s%s%s\n", mk->v_pred ? " v_pred" : "", mk->ztsnr ? " ztsnr" : "",
                   mk->edm_mean_std ? " edm_mean/edm_std" : "");
    }
    uint64_t n_tensors = 0, n_params = 0, n_bytes = 0;
    char shape[128];
    for (int p = 0; p < m->n_parts; p++) {
        const da_st_file *f = m->parts[p].st;
        uint64_t fb = 0, fp = 0;
        for (size_t i = 0; i < f->n_tensors; i++) {
            fb += f->tensors[i].nbytes;
            fp += f->tensors[i].numel;
        }
        if (mode != 1)
            printf("file:       %s (%zu tensors, %llu parameters, %llu bytes of data)\n", m->parts[p].path, f->n_tensors,
                   (unsigned long long)fp, (unsigned long long)fb);
        if (mode != 2)
            for (size_t i = 0; i < f->n_tensors; i++) {
                const da_st_tensor *t = &f->tensors[i];
                da_shape_str(t->rank, t->shape, shape, sizeof shape);
                if (mode == 1)
                    printf("%s\t%s\t%s\t%s\t%llu\n", m->parts[p].path, t->name, da_dtype_name(t->dtype), shape,
                           (unsigned long long)t->nbytes);
                else
                    printf("  %-90s %-5s %-22s %llu\n", t->name, da_dtype_name(t->dtype), shape,
                           (unsigned long long)t->nbytes);
            }
        n_tensors += f->n_tensors;
        n_params += fp;
        n_bytes += fb;
    }
    if (mode != 1)
        printf("totals:     %llu tensors, %llu parameters, %llu bytes (%.1f MiB); all %zu expected weights present, "
               "%zu ignored keys\n",
               (unsigned long long)n_tensors, (unsigned long long)n_params, (unsigned long long)n_bytes,
               (double)n_bytes / 1048576.0, m->n_tensors_expected, m->n_ignored);
    da_model_close(m);
    return CLI_OK;
}
