/* draw.c - the keyed augment streams of draw.h over the engine's Philox4x32-10 core (rng.h). */
#include "augment/draw.h"
#include "rng.h"

#include <math.h>

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
