/* rng.c - Philox4x32-10 counter-based generator and its uniform / normal draws (see rng.h).
 * Constants: multipliers 0xD2511F53, 0xCD9E8D57 and Weyl key increments 0x9E3779B9, 0xBB67AE85,
 * as published with Random123. Checked against the published known-answer vectors in the tests.
 * The per-element math lives in kernels/cpu/sampling.h, shared with the CUDA kernels so both
 * devices draw the same stream. */
#include "rng.h"

#include "sampling.h"

void da_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) { dk_philox4x32_10(ctr, key, out); }

uint32_t da_rng_u32(uint64_t seed, uint64_t stream, uint64_t index) {
    uint32_t w[4];
    dk_philox_block(seed, stream, index / 4, w);
    return w[index % 4];
}

void da_rng_uniform(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float lo, float hi, float *out) {
    uint32_t w[4];
    uint64_t cur = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t idx = first + i;
        if (idx / 4 != cur) {
            cur = idx / 4;
            dk_philox_block(seed, stream, cur, w);
        }
        out[i] = dk_uniform_of(w[idx % 4], lo, hi);
    }
}

void da_rng_normal(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float mean, float std, float *out) {
    uint32_t w[4];
    uint64_t cur = UINT64_MAX;
    double r = 0, th = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t idx = first + i;
        if (idx / 2 != cur) { /* one block per pair of outputs */
            cur = idx / 2;
            dk_philox_block(seed, stream, cur, w);
            dk_box_muller(w, &r, &th);
        }
        out[i] = dk_normal_of(idx, r, th, mean, std);
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
