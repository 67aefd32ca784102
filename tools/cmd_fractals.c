/* cmd_fractals.c - `diffaug fractals`: write the procedural fractal set DiffuseMix blends
 * (engine/augment/fractal.h; METHODS.md section 1). */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "augment/fractal.h"
#include "cli.h"
#include "util.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug fractals -n N [--size S] [--seed SEED] [--first K] [--iters I] -o DIR\n"
            "  -n N          number of images (fractal_<K>.png for K = first .. first+N-1)\n"
            "  --size S      side in pixels (default 256, DiffuseMix's resolution)\n"
            "  --seed SEED   global seed (default 0); image K depends only on (SEED, K)\n"
            "  --first K     index of the first image (default 0)\n"
            "  --iters I     chaos-game samples per pixel (default 16)\n"
            "  -o DIR        output folder (created if missing)\n");
}

int cmd_fractals(int argc, char **argv) {
    int64_t n = -1, size = 256, seed = 0, first = 0, iters = 16;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "-n")) {
            if (!cli_parse_int("fractals", a, v, 0, 1000000, &n)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--size")) {
            if (!cli_parse_int("fractals", a, v, 8, 8192, &size)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_int("fractals", a, v, 0, INT64_MAX, &seed)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--first")) {
            if (!cli_parse_int("fractals", a, v, 0, INT64_MAX / 2, &first)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--iters")) {
            if (!cli_parse_int("fractals", a, v, 1, 4096, &iters)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "-o")) {
            if (!v) {
                fprintf(stderr, "diffaug fractals: -o needs a folder\n");
                return CLI_USAGE;
            }
            out = v;
            i++;
        } else {
            fprintf(stderr, "diffaug fractals: unknown argument '%s'\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (n < 0 || !out) {
        fprintf(stderr, "diffaug fractals: -n and -o are required\n");
        usage(stderr);
        return CLI_USAGE;
    }
    da_fractal_opts o;
    da_fractal_opts_init(&o);
    o.size = (int)size, o.seed = (uint64_t)seed, o.iters_per_pixel = (int)iters;
    da_error err;
    da_err_clear(&err);
    double t0 = da_now();
    if (da_fractal_write_set(out, (uint64_t)first, (int)n, &o, &err) != DA_OK) return cli_fail("fractals", &err);
    double dt = da_now() - t0;
    fprintf(stderr, "diffaug fractals: %lld images of %lldx%lld in %s (%.2f s, %.1f images/s, %d threads)\n",
            (long long)n, (long long)size, (long long)size, out, dt, dt > 0 ? n / dt : 0.0, omp_get_max_threads());
    return CLI_OK;
}
