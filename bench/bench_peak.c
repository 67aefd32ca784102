/* bench_peak.c - this host's measured ceilings, the denominators of every "%peak" column:
 *   f32 FMA peak: every thread runs independent FMA chains held in registers (enough chains to
 *     cover FMA latency x throughput), no memory traffic;
 *   memory bandwidth: a STREAM-triad-like a[i] = b[i] + s*c[i] over buffers far beyond the L3,
 *     counted as 3 streams (2 reads + 1 write; write-allocate traffic not counted, as STREAM).
 * Usage: bench_peak            readable table
 *        bench_peak --export   DIFFAUG_PEAK_GFLOPS=<x> DIFFAUG_PEAK_GBS=<y>  (eval'd by run.sh)
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define CHAINS 12 /* FMA latency 4 x 2 ports = 8 in flight; 12 leaves slack */

/* Returns FLOPs done by this thread. Result is stored to *sink so the chains are live. */
static double fma_chains(long iters, float *sink) {
#if defined(__AVX512F__)
    __m512 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps(1.0f + 1e-7f * (float)i);
    const __m512 m = _mm512_set1_ps(0.9999999f), a = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
    }
    __m512 s = acc[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    *sink = _mm512_reduce_add_ps(s);
    return (double)iters * CHAINS * 16 * 2;
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps(1.0f + 1e-7f * (float)i);
    const __m256 m = _mm256_set1_ps(0.9999999f), a = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    }
    float t[8];
    __m256 s = acc[0];
    for (int i = 1; i < CHAINS; i++) s = _mm256_add_ps(s, acc[i]);
    _mm256_storeu_ps(t, s);
    *sink = t[0] + t[7];
    return (double)iters * CHAINS * 8 * 2;
#else
    /* generic build: the widest the compiler gives us without FMA (mul + add) */
    float acc[CHAINS][4];
    for (int i = 0; i < CHAINS; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 1.0f + 1e-7f * (float)(i + j);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < CHAINS; i++)
#pragma omp simd
            for (int j = 0; j < 4; j++) acc[i][j] = acc[i][j] * 0.9999999f + 1e-7f;
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += acc[i][0] + acc[i][3];
    *sink = s;
    return (double)iters * CHAINS * 4 * 2;
#endif
}

static double peak_gflops(void) {
    const long iters = 20000000;
    double best = 0;
    float sinks[256] = {0};
    for (int rep = 0; rep < 5; rep++) {
        double flops = 0, t0 = bench_now();
#pragma omp parallel reduction(+ : flops)
        flops += fma_chains(iters, &sinks[omp_get_thread_num() & 255]);
        double g = flops / (bench_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    if (sinks[0] == 12345.0f) printf("#\n");
    return best;
}

static double peak_gbs(void) {
    const size_t n = (size_t)64 << 20; /* 3 x 256 MiB: far beyond any L3 of this class of host */
    float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
    if (!a || !b || !c) return 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2; /* first touch where it is used */
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = bench_now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
        double gbs = 3.0 * n * 4 / (bench_now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    if (a[n / 2] != 2.0f) fprintf(stderr, "bench_peak: triad result wrong\n");
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv) {
    int export = argc > 1 && strcmp(argv[1], "--export") == 0;
    double gf = peak_gflops(), gbs = peak_gbs();
    if (export) {
        printf("DIFFAUG_PEAK_GFLOPS=%.1f DIFFAUG_PEAK_GBS=%.1f\n", gf, gbs);
        return 0;
    }
    printf("threads            %d\n", omp_get_max_threads());
    printf("f32 FMA peak       %.1f GFLOP/s (%.1f per thread)\n", gf, gf / omp_get_max_threads());
    printf("memory (triad)     %.1f GB/s\n", gbs);
    return 0;
}
