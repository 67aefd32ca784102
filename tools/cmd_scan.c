/* cmd_scan.c - `diffaug scan`: what a recipe would see of an ImageFolder dataset: classes, labels,
 * image counts, every problem (engine/augment/dataset.h), and a shard's share of the images. */
#include <stdio.h>
#include <string.h>

#include "augment/dataset.h"
#include "cli.h"
#include "util.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug scan [--no-verify] [--shard I/N] DIR\n"
            "  prints one line per class (index, images, folder, label), then one line per problem\n"
            "  (kind, path, message); --no-verify sniffs file headers instead of decoding every image.\n"
            "  Exit status 0 even when problems were found (a recipe goes on past them).\n");
}

int cmd_scan(int argc, char **argv) {
    da_scan_opts so;
    da_scan_opts_init(&so);
    const char *root = NULL, *shard_text = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(argv[i], "--no-verify")) so.verify = false;
        else if (!strcmp(argv[i], "--shard") && i + 1 < argc) shard_text = argv[++i];
        else if (argv[i][0] == '-' || root) {
            fprintf(stderr, "diffaug scan: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return CLI_USAGE;
        } else root = argv[i];
    }
    if (!root) {
        usage(stderr);
        return CLI_USAGE;
    }
    da_error err;
    da_err_clear(&err);
    da_shard sh = {0, 1};
    if (shard_text && da_shard_parse(shard_text, &sh, &err) != DA_OK) {
        fprintf(stderr, "diffaug scan: %s\n", err.msg);
        return CLI_USAGE;
    }
    da_dataset *ds;
    double t0 = da_now();
    if (da_dataset_scan(root, &so, &ds, &err) != DA_OK) return cli_fail("scan", &err);
    double dt = da_now() - t0;
    for (size_t c = 0; c < ds->n_classes; c++)
        printf("class %zu\t%zu\t%s\t%s\n", c, ds->classes[c].count, ds->classes[c].name, ds->classes[c].label);
    for (size_t p = 0; p < ds->n_problems; p++)
        printf("problem %s\t%s\t%s\n", da_problem_name(ds->problems[p].kind), ds->problems[p].path, ds->problems[p].msg);
    printf("images %zu\tclasses %zu\tproblems %zu\tshard %u/%u takes %llu images (1 unit per image)\n", ds->n_images,
           ds->n_classes, ds->n_problems, sh.index, sh.count, (unsigned long long)da_shard_size(sh, ds->n_images));
    fprintf(stderr, "diffaug scan: %s in %.2f s (%s)\n", root, dt, so.verify ? "every image decoded" : "headers only");
    da_dataset_free(ds);
    return CLI_OK;
}
