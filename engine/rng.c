/* rng.c - Philox4x32-10 counter-based generator and its uniform / normal draws (see rng.h).
 * Constants: multipliers 0xD2511F53, 0xCD9E8D57 and Weyl key increments 0x9E3779B9, 0xBB67AE85,
 * as published with Random123. Checked against the published known-answer vectors in the tests. */
#include "rng.h"

#include <math.h>

static inline void philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k[0];
    uint32_t n2 = hi0 ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
}

void da_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int r = 0; r < 10; r++) {
        if (r) {
            k[0] += 0x9E3779B9u;
            k[1] += 0xBB67AE85u;
        }
        philox_round(c, k);
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
}

static inline void block(uint64_t seed, uint64_t stream, uint64_t b, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    da_philox4x32_10(ctr, key, out);
}

uint32_t da_rng_u32(uint64_t seed, uint64_t stream, uint64_t index) {
    uint32_t w[4];
    block(seed, stream, index / 4, w);
    return w[index % 4];
}

void da_rng_uniform(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float lo, float hi, float *out) {
    uint32_t w[4];
    uint64_t cur = UINT64_MAX;
    const float scale = (hi - lo) * (1.0f / 16777216.0f);
    for (size_t i = 0; i < n; i++) {
        uint64_t idx = first + i;
        if (idx / 4 != cur) {
            cur = idx / 4;
            block(seed, stream, cur, w);
        }
        out[i] = lo + (float)(w[idx % 4] >> 8) * scale;
    }
}

void da_rng_normal(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float mean, float std, float *out) {
    uint32_t w[4];
    uint64_t cur = UINT64_MAX;
    double r = 0, th = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t idx = first + i;
        if (idx / 2 != cur) {
            cur = idx / 2;
            block(seed, stream, cur, w);
            /* 53-bit uniforms; u1 in (0, 1] keeps the log finite */
            uint64_t a = (((uint64_t)w[0] << 32) | w[1]) >> 11, b = (((uint64_t)w[2] << 32) | w[3]) >> 11;
            double u1 = ((double)a + 1.0) * 0x1p-53, u2 = (double)b * 0x1p-53;
            r = sqrt(-2.0 * log(u1));
            th = 6.283185307179586476925 * u2;
        }
        double z = (idx & 1) ? r * sin(th) : r * cos(th);
        out[i] = (float)(mean + std * z);
    }
}

uint64_t da_rng_stream_of(const char *name) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}
