/* cli.c - shared helpers of the diffaug subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int cli_fail(const char *cmd, const da_error *err) {
    fprintf(stderr, "diffaug %s: error (%s): %s\n", cmd, da_status_name(err->code), err->msg);
    return CLI_FAIL;
}

bool cli_parse_int(const char *cmd, const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text ? text : "", &end, 0);
    if (!text || !*text || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "diffaug %s: %s expects an integer in [%lld, %lld], got '%s'\n", cmd, opt, (long long)lo,
                (long long)hi, text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_float(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text ? text : "", &end);
    if (!text || !*text || *end || errno || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "diffaug %s: %s expects a number in [%g, %g], got '%s'\n", cmd, opt, lo, hi, text ? text : "");
        return false;
    }
    *out = v;
    return true;
}
