/* cmd_manifest.c - `diffaug manifest merge|summary`: combine shard manifests deterministically and
 * summarise a manifest (engine/augment/manifest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/manifest.h"
#include "cli.h"
#include "util.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug manifest merge -o OUT.jsonl IN.jsonl...\n"
            "       diffaug manifest summary [--recipe NAME] [--wall SECONDS] -o summary.json IN.jsonl\n"
            "  merge    records of every IN sorted by work unit; identical duplicates collapse; two different\n"
            "           records for one unit are refused. A torn last line of an input is ignored.\n"
            "  summary  per-class kept/dropped counts of a manifest into summary.json\n");
}

int cmd_manifest(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *sub = argv[1], *out = NULL, *recipe = NULL;
    double wall = 0;
    const char **ins = calloc((size_t)argc, sizeof *ins);
    size_t n_in = 0;
    if (!ins) return CLI_FAIL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--recipe") && i + 1 < argc) recipe = argv[++i];
        else if (!strcmp(argv[i], "--wall")) {
            if (!cli_parse_float("manifest", "--wall", i + 1 < argc ? argv[i + 1] : NULL, 0, 1e12, &wall)) {
                free(ins);
                return CLI_USAGE;
            }
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "diffaug manifest: unknown option '%s'\n", argv[i]);
            free(ins);
            return CLI_USAGE;
        } else ins[n_in++] = argv[i];
    }
    int rc = CLI_OK;
    da_error err;
    da_err_clear(&err);
    if (!out || n_in == 0 || (strcmp(sub, "merge") != 0 && strcmp(sub, "summary") != 0) ||
        (!strcmp(sub, "summary") && n_in != 1)) {
        usage(stderr);
        rc = CLI_USAGE;
    } else if (!strcmp(sub, "merge")) {
        size_t n = 0;
        if (da_manifest_merge(ins, n_in, out, &n, &err) != DA_OK) rc = cli_fail("manifest merge", &err);
        else fprintf(stderr, "diffaug manifest merge: %zu records from %zu manifests into %s\n", n, n_in, out);
    } else {
        da_manifest m;
        da_summary s = {0};
        if (da_manifest_read(ins[0], &m, &err) != DA_OK) rc = cli_fail("manifest summary", &err);
        else {
            if (da_summary_from_manifest(&s, &m, &err) != DA_OK || da_summary_write(out, &s, recipe, wall, &err) != DA_OK)
                rc = cli_fail("manifest summary", &err);
            if (m.torn_tail) fprintf(stderr, "diffaug manifest summary: warning: %s ends in a torn line (ignored)\n", ins[0]);
            da_manifest_free(&m);
            da_summary_free(&s);
        }
    }
    free(ins);
    return rc;
}
