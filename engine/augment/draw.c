/* draw.c - Philox4x32-10 (Random123's philox4x32, R = 10) and the keyed augment streams of draw.h. */
#include "augment/draw.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void da_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void da_draw_init(da_draw *d, uint64_t seed, uint64_t image_id, uint32_t index, da_draw_purpose purpose) {
    d->key[0] = (uint32_t)seed;
    d->key[1] = (uint32_t)(seed >> 32);
    d->ctr[0] = 0;
    d->ctr[1] = ((uint32_t)purpose << 24) | (index & DA_DRAW_MAX_INDEX);
    d->ctr[2] = (uint32_t)image_id;
    d->ctr[3] = (uint32_t)(image_id >> 32);
    d->pos = 4;
}

uint32_t da_draw_u32(da_draw *d) {
    if (d->pos >= 4) {
        da_philox4x32_10(d->ctr, d->key, d->buf);
        d->ctr[0]++;
        d->pos = 0;
    }
    return d->buf[d->pos++];
}

double da_draw_uniform(da_draw *d) {
    uint64_t hi = da_draw_u32(d) >> 5, lo = da_draw_u32(d) >> 6; /* 27 + 26 = 53 bits */
    return (double)(hi * 67108864u + lo) * (1.0 / 9007199254740992.0);
}

double da_draw_range(da_draw *d, double lo, double hi) { return lo + (hi - lo) * da_draw_uniform(d); }

uint32_t da_draw_below(da_draw *d, uint32_t n) {
    uint64_t m = (uint64_t)da_draw_u32(d) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)da_draw_u32(d) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double da_draw_normal(da_draw *d) {
    double u1 = da_draw_uniform(d), u2 = da_draw_uniform(d);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
