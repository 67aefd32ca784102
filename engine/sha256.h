/* sha256.h - streaming SHA-256 (FIPS 180-4, section 6.2), used to fingerprint model files in the
 * manifest and to derive stable image ids. Own implementation; on x86-64 CPUs with the SHA
 * extensions the block function uses them (chosen at run time), otherwise portable C. */
#ifndef DA_SHA256_H
#define DA_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "diffaug.h"

typedef struct da_sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t block[64];
    size_t fill;
} da_sha256;

void da_sha256_init(da_sha256 *s);
void da_sha256_update(da_sha256 *s, const void *data, size_t len);
void da_sha256_final(da_sha256 *s, uint8_t digest[32]);
/* One-shot digest of a buffer. */
void da_sha256_buf(const void *data, size_t len, uint8_t digest[32]);
/* 64 lowercase hex characters + NUL. */
void da_sha256_hex(const uint8_t digest[32], char hex[65]);
/* Digest of a whole file, read in 4 MiB pieces (never mapped whole). */
da_status da_sha256_file(const char *path, uint8_t digest[32], da_error *err);
/* Whether the hardware (SHA-NI) block function is in use. */
int da_sha256_uses_hw(void);
/* Force the portable block function (on = 0) or allow SHA-NI again when present (on = 1); for tests
 * and benchmarks. Environment DIFFAUG_SHA256_PORTABLE=1 does the same at start-up. */
void da_sha256_set_hw(int on);

#endif
