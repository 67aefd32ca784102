/* bench.h - what every benchmark shares: a monotonic timer, the median of repeated runs, the
 * machine's measured peaks (read from the environment that bench/run.sh exports after
 * bench_peak has measured them) and one table row format, so every kernel's line reads the same:
 *
 *   op  shape  impl  median_ms  rate  unit  %peak  ratio_vs_peer
 */
#ifndef DA_BENCH_H
#define DA_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Run fn(ctx) once to warm up, then repeatedly until reps runs and at least min_s seconds have
 * passed (at most 1000 runs); return the median seconds per run. */
static inline double bench_median(void (*fn)(void *), void *ctx, int reps, double min_s) {
    fn(ctx);
    double t[1000];
    int n = 0;
    double start = bench_now();
    while (n < 1000 && (n < reps || bench_now() - start < min_s)) {
        double t0 = bench_now();
        fn(ctx);
        t[n++] = bench_now() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Time two implementations of the same work alternately (a, b, a, b, ...) so both see the same
 * machine state on a shared or throttling host; medians of each into *ta, *tb. Same stopping rule
 * as bench_median. */
static inline void bench_median_pair(void (*fa)(void *), void (*fb)(void *), void *ctx, int reps, double min_s,
                                     double *ta, double *tb) {
    fa(ctx);
    fb(ctx);
    static double a[1000], b[1000];
    int n = 0;
    double start = bench_now();
    while (n < 1000 && (n < reps || bench_now() - start < min_s)) {
        double t0 = bench_now();
        fa(ctx);
        double t1 = bench_now();
        fb(ctx);
        b[n] = bench_now() - t1;
        a[n++] = t1 - t0;
    }
    qsort(a, (size_t)n, sizeof a[0], bench_cmp_double);
    qsort(b, (size_t)n, sizeof b[0], bench_cmp_double);
    *ta = n % 2 ? a[n / 2] : 0.5 * (a[n / 2 - 1] + a[n / 2]);
    *tb = n % 2 ? b[n / 2] : 0.5 * (b[n / 2 - 1] + b[n / 2]);
}

/* Measured peaks of this host (bench_peak writes them; run.sh exports them). 0 when unknown. */
static inline double bench_peak_gflops(void) {
    const char *s = getenv("DIFFAUG_PEAK_GFLOPS");
    return s ? atof(s) : 0.0;
}
static inline double bench_peak_gbs(void) {
    const char *s = getenv("DIFFAUG_PEAK_GBS");
    return s ? atof(s) : 0.0;
}

static inline void bench_header(void) {
    printf("%-18s %-30s %-10s %10s %10s %-6s %7s %9s\n", "op", "shape", "impl", "median_ms", "rate", "unit",
           "%peak", "vs_peer");
}

/* One row. unit is "GFLOP/s" (rate vs the FMA peak) or "GB/s" (vs the bandwidth peak);
 * peer_s > 0 prints peer_time / our_time (above 1: we are faster). */
static inline void bench_row(const char *op, const char *shape, const char *impl, double sec, double work,
                             const char *unit, double peer_s) {
    double rate = work / sec / 1e9;
    double peak = strcmp(unit, "GB/s") == 0 ? bench_peak_gbs() : bench_peak_gflops();
    char pk[16] = "-", ratio[16] = "-";
    if (peak > 0) snprintf(pk, sizeof pk, "%.1f", 100.0 * rate / peak);
    if (peer_s > 0) snprintf(ratio, sizeof ratio, "%.2fx", peer_s / sec);
    printf("%-18s %-30s %-10s %10.3f %10.1f %-6s %7s %9s\n", op, shape, impl, sec * 1e3, rate, unit, pk, ratio);
    fflush(stdout);
}

#endif
