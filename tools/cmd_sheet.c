/* cmd_sheet.c - `diffaug sheet`: a contact sheet PNG of images (engine/augment/contact_sheet.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/contact_sheet.h"
#include "cli.h"
#include "util.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug sheet --cols N [--cell PX] [--border PX] -o OUT.png IMAGE...\n"
            "  images fill the grid row by row; \"-\" leaves a cell empty\n");
}

int cmd_sheet(int argc, char **argv) {
    int64_t cols = 0, cell = 128, border = 2;
    const char *out = NULL;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--cols")) {
            if (!cli_parse_int("sheet", a, v, 1, 4096, &cols)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--cell")) {
            if (!cli_parse_int("sheet", a, v, 1, 8192, &cell)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--border")) {
            if (!cli_parse_int("sheet", a, v, 0, 256, &border)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "-o") && v) {
            out = v;
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "diffaug sheet: unknown option '%s'\n", a);
            return CLI_USAGE;
        } else {
            first = i;
            break;
        }
    }
    int n = argc - first;
    if (!cols || !out || n < 1) {
        usage(stderr);
        return CLI_USAGE;
    }
    da_image *ims = calloc((size_t)n, sizeof *ims);
    const da_image **cells = calloc((size_t)n + (size_t)cols, sizeof *cells);
    da_error err;
    da_err_clear(&err);
    int rc = CLI_OK;
    if (!ims || !cells) {
        free(ims), free(cells);
        return CLI_FAIL;
    }
    for (int i = 0; i < n && rc == CLI_OK; i++) {
        if (!strcmp(argv[first + i], "-")) continue;
        if (da_image_load(argv[first + i], &ims[i], &err) != DA_OK) rc = cli_fail("sheet", &err);
        else cells[i] = &ims[i];
    }
    if (rc == CLI_OK) {
        da_sheet_opts o;
        da_sheet_opts_init(&o);
        o.cell = (int)cell, o.border = (int)border;
        int rows = (int)((n + cols - 1) / cols);
        da_image sheet = {0};
        if (da_contact_sheet(cells, rows, (int)cols, &o, &sheet, &err) != DA_OK ||
            da_image_save_png(out, &sheet, NULL, NULL, 0, &err) != DA_OK)
            rc = cli_fail("sheet", &err);
        da_image_free(&sheet);
    }
    for (int i = 0; i < n; i++) da_image_free(&ims[i]);
    free(ims), free(cells);
    return rc;
}
