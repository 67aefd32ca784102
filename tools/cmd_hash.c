/* cmd_hash.c - `diffaug hash FILE...`: SHA-256 of files as the manifest records model files
 * (engine/sha256.h), with the throughput on stderr. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "sha256.h"
#include "util.h"

int cmd_hash(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "usage: diffaug hash FILE...   (sha256sum-style lines; MB/s on stderr)\n");
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    for (int i = 1; i < argc; i++) {
        uint8_t d[32];
        char hex[65];
        da_error err;
        struct stat sb;
        double t0 = da_now();
        if (da_sha256_file(argv[i], d, &err) != DA_OK) return cli_fail("hash", &err);
        double dt = da_now() - t0;
        da_sha256_hex(d, hex);
        printf("%s  %s\n", hex, argv[i]);
        if (stat(argv[i], &sb) == 0 && dt > 0)
            fprintf(stderr, "diffaug hash: %s: %.1f MB in %.3f s, %.0f MB/s (%s)\n", argv[i], sb.st_size / 1e6, dt,
                    sb.st_size / 1e6 / dt, da_sha256_uses_hw() ? "SHA-NI" : "portable C");
    }
    return CLI_OK;
}
