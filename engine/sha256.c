/* sha256.c - SHA-256 as specified by FIPS 180-4 (constants K of section 4.2.2, initial hash of
 * section 5.3.3, padding of 5.1.1, compression of 6.2.2). The x86 SHA-NI block function follows
 * Intel's published instruction semantics (sha256rnds2 / sha256msg1 / sha256msg2); it is chosen at
 * run time and checked against the portable one by the test vectors. */
#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define DA_SHA_X86 1
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void blocks_c(uint32_t h[8], const uint8_t *p, size_t n) {
    for (; n--; p += 64) {
        uint32_t w[64];
        for (int t = 0; t < 16; t++)
            w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int t = 0; t < 64; t++) {
            uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = hh + S1 + ch + K[t] + w[t];
            uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
            uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = S0 + maj;
            hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
    }
}

#ifdef DA_SHA_X86
/* State is kept as ABEF / CDGH in two registers as sha256rnds2 expects. */
__attribute__((target("sha,sse4.1,ssse3"))) static void blocks_ni(uint32_t h[8], const uint8_t *p, size_t n) {
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    __m128i t = _mm_loadu_si128((const __m128i *)&h[0]);    /* a b c d (low to high) */
    __m128i s1 = _mm_loadu_si128((const __m128i *)&h[4]);   /* e f g h */
    t = _mm_shuffle_epi32(t, 0xB1);                          /* b a d c */
    s1 = _mm_shuffle_epi32(s1, 0x1B);                        /* h g f e */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);                  /* f e b a = ABEF */
    s1 = _mm_blend_epi16(s1, t, 0xF0);                       /* h g d c = CDGH */
    for (; n--; p += 64) {
        __m128i a0 = s0, c0 = s1, m[4], msg;
        for (int i = 0; i < 4; i++) m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
        for (int r = 0; r < 16; r++) {
            __m128i w = m[r & 3];
            if (r >= 4) {
                /* w[r] = msg2(msg1(w[r-4], w[r-3]) + alignr(w[r-1], w[r-2]), w[r-1]) */
                __m128i x = _mm_sha256msg1_epu32(m[r & 3], m[(r + 1) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(m[(r + 3) & 3], m[(r + 2) & 3], 4));
                w = _mm_sha256msg2_epu32(x, m[(r + 3) & 3]);
                m[r & 3] = w;
            }
            msg = _mm_add_epi32(w, _mm_loadu_si128((const __m128i *)&K[4 * r]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, msg);
        }
        s0 = _mm_add_epi32(s0, a0);
        s1 = _mm_add_epi32(s1, c0);
    }
    t = _mm_shuffle_epi32(s0, 0x1B);                         /* a b e f -> reversed */
    s1 = _mm_shuffle_epi32(s1, 0xB1);
    s0 = _mm_blend_epi16(t, s1, 0xF0);
    s1 = _mm_alignr_epi8(s1, t, 8);
    _mm_storeu_si128((__m128i *)&h[0], s0);
    _mm_storeu_si128((__m128i *)&h[4], s1);
}

static int have_sha_ni(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(b & (1u << 29))) return 0; /* SHA */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & (1u << 19)) && (c & (1u << 9)); /* SSE4.1, SSSE3 */
}
#endif

static int hw_state = -1; /* -1 unknown, 0 portable, 1 SHA-NI; a benign race: every thread computes the same */

int da_sha256_uses_hw(void) {
    if (hw_state < 0) {
#ifdef DA_SHA_X86
        const char *env = getenv("DIFFAUG_SHA256_PORTABLE");
        hw_state = (env && *env && *env != '0') ? 0 : have_sha_ni();
#else
        hw_state = 0;
#endif
    }
    return hw_state;
}

void da_sha256_set_hw(int on) {
#ifdef DA_SHA_X86
    hw_state = on ? have_sha_ni() : 0;
#else
    (void)on;
    hw_state = 0;
#endif
}

static void blocks(uint32_t h[8], const uint8_t *p, size_t n) {
#ifdef DA_SHA_X86
    if (da_sha256_uses_hw()) {
        blocks_ni(h, p, n);
        return;
    }
#endif
    blocks_c(h, p, n);
}

void da_sha256_init(da_sha256 *s) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->n_bytes = 0;
    s->fill = 0;
}

void da_sha256_update(da_sha256 *s, const void *data, size_t len) {
    const uint8_t *p = data;
    s->n_bytes += len;
    if (s->fill) {
        size_t k = 64 - s->fill < len ? 64 - s->fill : len;
        memcpy(s->block + s->fill, p, k);
        s->fill += k, p += k, len -= k;
        if (s->fill < 64) return;
        blocks(s->h, s->block, 1);
        s->fill = 0;
    }
    if (len >= 64) {
        blocks(s->h, p, len / 64);
        p += len / 64 * 64;
        len %= 64;
    }
    memcpy(s->block, p, len);
    s->fill = len;
}

void da_sha256_final(da_sha256 *s, uint8_t digest[32]) {
    uint64_t bits = s->n_bytes * 8;
    uint8_t pad[72] = {0x80};
    size_t npad = (s->fill < 56 ? 56 : 120) - s->fill;
    for (int i = 0; i < 8; i++) pad[npad + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t keep = s->n_bytes;
    da_sha256_update(s, pad, npad + 8);
    s->n_bytes = keep;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
}

void da_sha256_buf(const void *data, size_t len, uint8_t digest[32]) {
    da_sha256 s;
    da_sha256_init(&s);
    da_sha256_update(&s, data, len);
    da_sha256_final(&s, digest);
}

void da_sha256_hex(const uint8_t digest[32], char hex[65]) {
    static const char dg[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) hex[2 * i] = dg[digest[i] >> 4], hex[2 * i + 1] = dg[digest[i] & 15];
    hex[64] = 0;
}

da_status da_sha256_file(const char *path, uint8_t digest[32], da_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return da_err_set(err, DA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4u << 20;
    uint8_t *buf = da_malloc(cap, err);
    if (!buf) {
        fclose(fp);
        return DA_ERR_NOMEM;
    }
    da_sha256 s;
    da_sha256_init(&s);
    size_t n;
    while ((n = fread(buf, 1, cap, fp)) > 0) da_sha256_update(&s, buf, n);
    int bad = ferror(fp);
    int e = errno;
    fclose(fp);
    free(buf);
    if (bad) return da_err_set(err, DA_ERR_IO, "%s: read failed: %s", path, strerror(e));
    da_sha256_final(&s, digest);
    return DA_OK;
}
