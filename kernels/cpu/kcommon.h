/* kcommon.h - what every CPU kernel shares: the weight storage types and scalar 16-bit float
 * conversions. Kernels take raw pointers and never include engine headers.
 *
 * f16 is IEEE binary16, bf16 the top half of an IEEE binary32; f32 -> 16-bit rounds to nearest,
 * ties to even (as torch's .half() / .bfloat16()), NaN stays NaN.
 */
#ifndef DK_COMMON_H
#define DK_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The CUDA kernels include this header too, so GPU and CPU round every value with the same code. */
#if defined(__CUDACC__)
#define DK_HD __host__ __device__
#else
#define DK_HD
#endif

/* Storage type of a weight operand; activations are always f32. */
typedef enum dk_wtype { DK_F32 = 0, DK_F16 = 1, DK_BF16 = 2 } dk_wtype;

static inline DK_HD size_t dk_wtype_size(dk_wtype t) { return t == DK_F32 ? 4 : 2; }

static inline DK_HD uint32_t dk_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline DK_HD float dk_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline DK_HD float dk_bf16_to_f32(uint16_t h) { return dk_bits_f32((uint32_t)h << 16); }

static inline DK_HD uint16_t dk_f32_to_bf16(float f) {
    uint32_t u = dk_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline DK_HD float dk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        if (man == 0) return dk_bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) return dk_bits_f32(sign | 0x7f800000u | (man << 13));
    return dk_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline DK_HD uint16_t dk_f32_to_f16(float f) {
    uint32_t u = dk_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {
        /* result is subnormal or zero: round a * 2^24 to an integer, ties to even */
        if (a < 0x33000000u) return sign; /* < 2^-25: rounds to 0 */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = a - 0x38000000u; /* rebias exponent 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

/* Load element i of a weight array of type t as f32. */
static inline DK_HD float dk_load_w(const void *w, dk_wtype t, size_t i) {
    switch (t) {
    case DK_F16: return dk_f16_to_f32(((const uint16_t *)w)[i]);
    case DK_BF16: return dk_bf16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

#endif /* DK_COMMON_H */
