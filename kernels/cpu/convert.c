/* convert.c - bulk f16/bf16 <-> f32 (see convert.h), mirroring torch .half()/.bfloat16()/.float().
 *
 * Paths, chosen once at runtime so that the PORTABLE=1 build still gets them:
 *   avx512: vcvtph2ps / vcvtps2ph (rounding imm = nearest even) for f16, 32-bit integer arithmetic
 *           for bf16 (the rounding bias trick of kcommon.h, 16 lanes at a time). vcvtneps2bf16
 *           (AVX512-BF16) is deliberately not used: it treats subnormal inputs as zero, which would
 *           break bit-identity with the scalar converter.
 *   f16c:   the same f16 instructions 8 lanes wide (AVX2 machines); bf16 stays scalar there.
 *   scalar: kcommon.h, element by element.
 * Hardware f16 -> f32 quiets signalling NaNs while kcommon.h keeps them as they are, so NaN lanes
 * are patched from the input bits; f32 -> f16 NaN handling already agrees (quiet bit set, top
 * payload bits kept). tests/test_convert.c checks all 65536 patterns.
 */
#include "convert.h"

#include <immintrin.h>

/* Big buffers (weights) are split across threads; small ones (per-call parameters) are not worth
 * waking the team for. */
#define CV_PAR_MIN (1u << 16)

void dk_f16_to_f32_n_ref(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = dk_f16_to_f32(src[i]);
}
void dk_f32_to_f16_n_ref(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = dk_f32_to_f16(src[i]);
}
void dk_bf16_to_f32_n_ref(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = dk_bf16_to_f32(src[i]);
}
void dk_f32_to_bf16_n_ref(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = dk_f32_to_bf16(src[i]);
}

#if defined(__x86_64__) || defined(__i386__)
#define CV_X86 1

__attribute__((target("avx512f"))) static void f16_to_f32_avx512(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    const __m512i expm = _mm512_set1_epi32(0x7c00), manm = _mm512_set1_epi32(0x3ff), nanexp = _mm512_set1_epi32(0x7f800000);
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(src + i));
        __m512 f = _mm512_cvtph_ps(h);
        /* NaN lanes are rebuilt from the bits: the instruction sets the quiet bit of a signalling
         * NaN, the scalar reference (and torch's c10 converter) keeps the payload as is. */
        __m512i w = _mm512_cvtepu16_epi32(h);
        __mmask16 nan = _mm512_cmpeq_epi32_mask(_mm512_and_si512(w, expm), expm) &
                        _mm512_test_epi32_mask(w, manm);
        if (nan) {
            __m512i bits = _mm512_or_si512(_mm512_slli_epi32(_mm512_srli_epi32(w, 15), 31),
                                           _mm512_or_si512(nanexp, _mm512_slli_epi32(_mm512_and_si512(w, manm), 13)));
            f = _mm512_mask_mov_ps(f, nan, _mm512_castsi512_ps(bits));
        }
        _mm512_storeu_ps(dst + i, f);
    }
    for (; i < n; i++) dst[i] = dk_f16_to_f32(src[i]);
}
__attribute__((target("avx512f"))) static void f32_to_f16_avx512(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = dk_f32_to_f16(src[i]);
}
__attribute__((target("avx512f"))) static void bf16_to_f32_avx512(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_si512((void *)(dst + i), _mm512_slli_epi32(w, 16));
    }
    for (; i < n; i++) dst[i] = dk_bf16_to_f32(src[i]);
}
__attribute__((target("avx512f"))) static void f32_to_bf16_avx512(uint16_t *dst, const float *src, size_t n) {
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), qbit = _mm512_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_loadu_si512((const void *)(src + i));
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absmask), inf);
        __m512i hi = _mm512_srli_epi32(u, 16);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(hi, one)));
        r = _mm512_srli_epi32(r, 16);
        r = _mm512_mask_or_epi32(r, nan, hi, qbit);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; i++) dst[i] = dk_f32_to_bf16(src[i]);
}
__attribute__((target("avx2,f16c"))) static void f16_to_f32_f16c(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        /* any NaN in the block: take the scalar path, which keeps signalling payloads as they are */
        __m128i e = _mm_and_si128(h, _mm_set1_epi16(0x7c00));
        if (_mm_movemask_epi8(_mm_cmpeq_epi16(e, _mm_set1_epi16(0x7c00)))) {
            for (size_t j = i; j < i + 8; j++) dst[j] = dk_f16_to_f32(src[j]);
            continue;
        }
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) dst[i] = dk_f16_to_f32(src[i]);
}
__attribute__((target("avx2,f16c"))) static void f32_to_f16_f16c(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = dk_f32_to_f16(src[i]);
}
#endif

typedef enum { ISA_SCALAR, ISA_F16C, ISA_AVX512 } cv_isa;

static cv_isa cv_detect(void) {
#ifdef CV_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) return ISA_F16C;
#endif
    return ISA_SCALAR;
}

static cv_isa cv_isa_now(void) {
    /* benign race: every thread computes the same value */
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = (int)cv_detect();
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return (cv_isa)v;
}

const char *dk_convert_isa(void) {
    switch (cv_isa_now()) {
    case ISA_AVX512: return "avx512";
    case ISA_F16C: return "f16c";
    default: return "scalar";
    }
}

typedef void (*cv_to32_fn)(float *, const uint16_t *, size_t);
typedef void (*cv_from32_fn)(uint16_t *, const float *, size_t);

/* Split [0, n) into 4096-element-aligned chunks across threads; each chunk runs fn serially. */
static void run_to32(cv_to32_fn fn, float *dst, const uint16_t *src, size_t n) {
    if (n < CV_PAR_MIN) {
        fn(dst, src, n);
        return;
    }
    const size_t blk = 1u << 14;
    long nb = (long)((n + blk - 1) / blk);
#pragma omp parallel for schedule(static)
    for (long b = 0; b < nb; b++) {
        size_t s = (size_t)b * blk, e = s + blk < n ? s + blk : n;
        fn(dst + s, src + s, e - s);
    }
}
static void run_from32(cv_from32_fn fn, uint16_t *dst, const float *src, size_t n) {
    if (n < CV_PAR_MIN) {
        fn(dst, src, n);
        return;
    }
    const size_t blk = 1u << 14;
    long nb = (long)((n + blk - 1) / blk);
#pragma omp parallel for schedule(static)
    for (long b = 0; b < nb; b++) {
        size_t s = (size_t)b * blk, e = s + blk < n ? s + blk : n;
        fn(dst + s, src + s, e - s);
    }
}

void dk_f16_to_f32_n(float *dst, const uint16_t *src, size_t n) {
    cv_to32_fn fn = dk_f16_to_f32_n_ref;
#ifdef CV_X86
    cv_isa isa = cv_isa_now();
    if (isa == ISA_AVX512) fn = f16_to_f32_avx512;
    else if (isa == ISA_F16C) fn = f16_to_f32_f16c;
#endif
    run_to32(fn, dst, src, n);
}
void dk_f32_to_f16_n(uint16_t *dst, const float *src, size_t n) {
    cv_from32_fn fn = dk_f32_to_f16_n_ref;
#ifdef CV_X86
    cv_isa isa = cv_isa_now();
    if (isa == ISA_AVX512) fn = f32_to_f16_avx512;
    else if (isa == ISA_F16C) fn = f32_to_f16_f16c;
#endif
    run_from32(fn, dst, src, n);
}
void dk_bf16_to_f32_n(float *dst, const uint16_t *src, size_t n) {
    cv_to32_fn fn = dk_bf16_to_f32_n_ref;
#ifdef CV_X86
    if (cv_isa_now() == ISA_AVX512) fn = bf16_to_f32_avx512;
#endif
    run_to32(fn, dst, src, n);
}
void dk_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n) {
    cv_from32_fn fn = dk_f32_to_bf16_n_ref;
#ifdef CV_X86
    if (cv_isa_now() == ISA_AVX512) fn = f32_to_bf16_avx512;
#endif
    run_from32(fn, dst, src, n);
}

void dk_convert_to_f32(float *dst, const void *src, dk_wtype t, size_t n) {
    switch (t) {
    case DK_F16: dk_f16_to_f32_n(dst, (const uint16_t *)src, n); break;
    case DK_BF16: dk_bf16_to_f32_n(dst, (const uint16_t *)src, n); break;
    default: memcpy(dst, src, n * sizeof(float)); break;
    }
}
