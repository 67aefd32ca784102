/* gemm.c - cache-blocked GEMM (the Goto/BLIS loop nest: N blocks, K blocks, M blocks, then an
 * MR x NR register-tile micro-kernel) with the BLAS sgemm / torch.nn.Linear / torch.bmm contracts
 * of gemm.h, and their double-accumulating references.
 *
 * Operands: B is packed into kc x NR panels (for conv: the implicit im2col, see conv.c). A is read
 * row-major as stored (weights [OC, K] for conv, activations [M, K] for linear): the micro-kernel
 * broadcasts A[i][k] from MR row pointers, so f32 A needs no pack at all; 16-bit or transposed A
 * is widened into a row-major block first. linear() with few tokens (M <= 128) swaps the roles
 * (y^T = W x^T, C stored transposed) so that the big operand, W, is the one read in place.
 *
 * Micro-kernels: AVX-512 (MR x 32, MR rows of two zmm accumulators), AVX2 (6 x 16) and a generic C
 * one (4 x 16, omp simd), chosen at compile time. All accumulate in f32 in the same K order; 16-bit
 * weights are widened to f32 while packing, so they stay 16-bit in memory.
 *
 * Blocking (AVX-512 defaults, measured in bench/dev, numbers in docs/KERNELS.md):
 *   MR 14  28 accumulators + 2 B vectors + 1 broadcast = 31 of 32 zmm.
 *   KC 512 (K cut into ceil(K/512) equal blocks): one K block for K <= 512 so C is written once;
 *          the MR x kc A micro-panel (28 KiB) stays in the 48 KiB L1 while the kc x NC B block
 *          (1 MiB) streams from the 2 MiB L2 (micro-panel loop ir outside jr).
 *   NC 512 columns of B packed at once; MC = 12 * MR rows per unit of work.
 * Threads take (N block, group of M blocks) units; every C element is reduced by one thread in a
 * fixed order, so the result is independent of the thread count.
 */
#include "gemm.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#ifndef DK_MR
#define DK_MR 14
#endif
#define DK_NR 32
#elif defined(__AVX2__) && defined(__FMA__)
#define DK_MR 6
#define DK_NR 16
#else
#define DK_MR 4
#define DK_NR 16
#endif

#ifndef DK_KC_MAX
#define DK_KC_MAX 512
#endif
#ifndef DK_MC_MAX
#define DK_MC_MAX (DK_MR * 12)
#endif
#ifndef DK_IR_OUTER
#define DK_IR_OUTER 1
#endif
#ifndef DK_NC_MAX
#define DK_NC_MAX 512
#endif

int dk_gemm_nr(void) { return DK_NR; }

static inline size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }
static inline int cdiv(int a, int b) { return (a + b - 1) / b; }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int round_up(int a, int b) { return cdiv(a, b) * b; }

/* ---- micro-kernels: out[MR][NR] = sum_k a[k][0..MR) (x) b[k][0..NR) ------------------------- */

#if defined(__AVX512F__)
/* a: MR rows of kc floats, row i at a + i*lda (row-major: the weights or activations as stored,
 * no transposing pack); b: kc x 32 packed (64-byte aligned). MR rows x 2 zmm accumulators plus two
 * B vectors and one broadcast fit the 32 zmm registers for MR <= 14. */
static void ukernel(int kc, const float *restrict a, ptrdiff_t lda, const float *restrict b, float *restrict out) {
    __m512 c0[DK_MR], c1[DK_MR];
#pragma GCC unroll 16
    for (int i = 0; i < DK_MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
        for (int i = 0; i < DK_MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i * lda + k]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        b += DK_NR;
    }
#pragma GCC unroll 16
    for (int i = 0; i < DK_MR; i++) {
        _mm512_store_ps(out + i * DK_NR, c0[i]);
        _mm512_store_ps(out + i * DK_NR + 16, c1[i]);
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
/* 6 rows x 2 ymm = 12 accumulators + 2 B vectors + 1 broadcast of the 16 ymm registers. */
static void ukernel(int kc, const float *restrict a, ptrdiff_t lda, const float *restrict b, float *restrict out) {
    __m256 c0[DK_MR], c1[DK_MR];
#pragma GCC unroll 8
    for (int i = 0; i < DK_MR; i++) c0[i] = c1[i] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
        for (int i = 0; i < DK_MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i * lda + k);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
        b += DK_NR;
    }
#pragma GCC unroll 8
    for (int i = 0; i < DK_MR; i++) {
        _mm256_store_ps(out + i * DK_NR, c0[i]);
        _mm256_store_ps(out + i * DK_NR + 8, c1[i]);
    }
}
#else
/* Portable: the compiler vectorises the NR loop (SSE2 on generic x86-64); no FMA contraction
 * under -std=c11, so this path rounds after each multiply (tests allow for it). */
static void ukernel(int kc, const float *restrict a, ptrdiff_t lda, const float *restrict b, float *restrict out) {
    float c[DK_MR][DK_NR];
    memset(c, 0, sizeof c);
    for (int k = 0; k < kc; k++) {
        for (int i = 0; i < DK_MR; i++) {
            float ai = a[i * lda + k];
#pragma omp simd
            for (int j = 0; j < DK_NR; j++) c[i][j] += ai * b[j];
        }
        b += DK_NR;
    }
    memcpy(out, c, sizeof c);
}
#endif

/* C tile (mr x nr) from the accumulator tile. The first K block applies alpha, beta and the biases;
 * later K blocks add alpha * acc on top. */
static void epilogue(const float *restrict acc, int mr, int nr, float *restrict C, ptrdiff_t ldc, int first,
                     float alpha, float beta, const float *bias_m, const float *bias_n) {
    for (int i = 0; i < mr; i++) {
        const float *ar = acc + (size_t)i * DK_NR;
        float *cr = C + (ptrdiff_t)i * ldc;
        if (!first) {
#pragma omp simd
            for (int j = 0; j < nr; j++) cr[j] += alpha * ar[j];
            continue;
        }
        float bm = bias_m ? bias_m[i] : 0.0f;
        if (beta == 0.0f) {
            if (bias_n) {
#pragma omp simd
                for (int j = 0; j < nr; j++) cr[j] = alpha * ar[j] + bm + bias_n[j];
            } else {
#pragma omp simd
                for (int j = 0; j < nr; j++) cr[j] = alpha * ar[j] + bm;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < nr; j++) cr[j] = alpha * ar[j] + beta * cr[j] + bm + (bias_n ? bias_n[j] : 0.0f);
        }
    }
}

/* The same for a C stored transposed: tile element (i, j) at C[j*ldc + i] (linear's swapped form,
 * where the GEMM computes y^T). Same arithmetic, element by element, as epilogue(). */
static void epilogue_t(const float *restrict acc, int mr, int nr, float *restrict C, ptrdiff_t ldc, int first,
                       float alpha, float beta, const float *bias_m, const float *bias_n) {
    for (int j = 0; j < nr; j++) {
        float *cc = C + (ptrdiff_t)j * ldc;
        float bn = bias_n ? bias_n[j] : 0.0f;
        for (int i = 0; i < mr; i++) {
            float a = acc[(size_t)i * DK_NR + j];
            if (!first)
                cc[i] += alpha * a;
            else if (beta == 0.0f)
                cc[i] = alpha * a + (bias_m ? bias_m[i] : 0.0f) + bn;
            else
                cc[i] = alpha * a + beta * cc[i] + (bias_m ? bias_m[i] : 0.0f) + bn;
        }
    }
}

/* ---- packing ------------------------------------------------------------------------------------ */

/* n contiguous weight elements of type t -> f32. */
static void cvt_row(const void *src, dk_wtype t, int n, float *restrict dst) {
    if (t == DK_F32) {
        memcpy(dst, src, (size_t)n * 4);
    } else if (t == DK_BF16) {
        const uint16_t *s = src;
#pragma omp simd
        for (int i = 0; i < n; i++) {
            uint32_t u = (uint32_t)s[i] << 16;
            float f;
            memcpy(&f, &u, 4);
            dst[i] = f;
        }
    } else {
        const uint16_t *s = src;
        int i = 0;
#if defined(__F16C__)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
#endif
        for (; i < n; i++) dst[i] = dk_f16_to_f32(s[i]);
    }
}

static inline const void *elem_ptr(const dk_operand *o, ptrdiff_t idx) {
    return (const char *)o->p + idx * (ptrdiff_t)dk_wtype_size(o->t);
}

/* A can feed the micro-kernel in place (row-major f32, rows contiguous in K): no pack at all. */
static int a_direct(const dk_operand *A) { return A->t == DK_F32 && A->s_k == 1; }

/* A rows [m0, m0+mr) x K [k0, k0+kc) -> row-major dst[rows][kc], rows mr..rows-1 zero. Widening
 * 16-bit weights here keeps them 16-bit in memory; rows stay rows, so the copy is a vector loop. */
static void pack_a(const dk_operand *A, int m0, int mr, int rows, int k0, int kc, float *restrict dst) {
    for (int i = 0; i < rows; i++) {
        float *d = dst + (size_t)i * kc;
        if (i >= mr) {
            memset(d, 0, (size_t)kc * 4);
            continue;
        }
        ptrdiff_t base = (ptrdiff_t)(m0 + i) * A->s_outer + (ptrdiff_t)k0 * A->s_k;
        if (A->s_k == 1)
            cvt_row(elem_ptr(A, base), A->t, kc, d);
        else /* transposed A: a strided gather, only for gemm(transA) */
            for (int k = 0; k < kc; k++) d[k] = dk_load_w(A->p, A->t, (size_t)(base + (ptrdiff_t)k * A->s_k));
    }
}

/* B K [k0, k0+kc) x columns [n0, n0+nc) -> panels of NR columns: dst[p][k][j]. */
static void pack_b(const dk_operand *B, int k0, int kc, int n0, int nc, float *restrict dst) {
    for (int p = 0; p < nc; p += DK_NR) {
        float *d = dst + (size_t)p * kc;
        int nr = imin(DK_NR, nc - p);
        if (B->s_outer == 1) { /* columns contiguous: row-major B, the plain GEMM case */
            for (int k = 0; k < kc; k++) {
                ptrdiff_t base = (ptrdiff_t)(k0 + k) * B->s_k + (n0 + p);
                cvt_row(elem_ptr(B, base), B->t, nr, d + (size_t)k * DK_NR);
                for (int j = nr; j < DK_NR; j++) d[(size_t)k * DK_NR + j] = 0.0f;
            }
            continue;
        }
        if (B->s_k == 1) {
            /* rows of W contiguous (linear's W^T): transpose through an L1-sized 16 x NR tile so
             * each destination line is written whole rather than touched once per column */
            float tile[DK_NR][16];
            for (int kb = 0; kb < kc; kb += 16) {
                int kn = imin(16, kc - kb);
                for (int j = 0; j < DK_NR; j++) {
                    if (j < nr)
                        cvt_row(elem_ptr(B, (ptrdiff_t)(n0 + p + j) * B->s_outer + k0 + kb), B->t, kn, tile[j]);
                    else
                        memset(tile[j], 0, sizeof tile[j]);
                }
                for (int k = 0; k < kn; k++)
                    for (int j = 0; j < DK_NR; j++) d[(size_t)(kb + k) * DK_NR + j] = tile[j][k];
            }
            continue;
        }
        for (int j = 0; j < DK_NR; j++) {
            if (j >= nr) {
                for (int k = 0; k < kc; k++) d[(size_t)k * DK_NR + j] = 0.0f;
                continue;
            }
            ptrdiff_t base = (ptrdiff_t)(n0 + p + j) * B->s_outer + (ptrdiff_t)k0 * B->s_k;
            {
                for (int k = 0; k < kc; k++) d[(size_t)k * DK_NR + j] = dk_load_w(B->p, B->t, (size_t)(base + (ptrdiff_t)k * B->s_k));
            }
        }
    }
}

/* ---- the blocked driver ------------------------------------------------------------------------ */

typedef struct blocking {
    int kc, nk; /* K blocks: nk blocks of kc (last may be shorter) */
    int mc, nm;
    int nc, nn;
} blocking;

/* Depends on the shape only (never on threads), which keeps the reduction order fixed. */
static blocking choose_blocking(int M, int N, int K) {
    blocking b;
    b.nk = K > 0 ? cdiv(K, DK_KC_MAX) : 1;
    b.kc = K > 0 ? cdiv(K, b.nk) : 0;
    b.nm = cdiv(M, DK_MC_MAX);
    b.mc = round_up(cdiv(M, b.nm), DK_MR);
    b.nm = cdiv(M, b.mc);
    b.nn = cdiv(N, DK_NC_MAX);
    b.nc = round_up(cdiv(N, b.nn), DK_NR);
    b.nn = cdiv(N, b.nc);
    return b;
}

static size_t per_thread_bytes(const blocking *b) {
    return align64((size_t)b->mc * b->kc * 4) + align64((size_t)b->kc * b->nc * 4) +
           align64((size_t)b->kc * DK_MR * 4) + align64((size_t)DK_MR * DK_NR * 4);
}

size_t dk_gemm_core_workspace(int M, int N, int K) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    blocking b = choose_blocking(M, N, K);
    return 64 + (size_t)omp_get_max_threads() * per_thread_bytes(&b);
}

/* max_threads: the most threads this call may use (1 inside an outer parallel loop). */
static dk_gemm_status gemm_core_t(const dk_gemm_args *g, void *ws, size_t ws_bytes, int max_threads) {
    const int M = g->M, N = g->N, K = g->K;
    if (M < 0 || N < 0 || K < 0) return DK_GEMM_EARG;
    if (M == 0 || N == 0) return DK_GEMM_OK;
    if (K == 0) { /* empty sum: C = beta C + biases */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float *c = g->C + (g->c_trans ? (ptrdiff_t)j * g->ldc + i : (ptrdiff_t)i * g->ldc + j);
                *c = (g->beta == 0.0f ? 0.0f : g->beta * *c) + (g->bias_m ? g->bias_m[i] : 0.0f) +
                     (g->bias_n ? g->bias_n[j] : 0.0f);
            }
        return DK_GEMM_OK;
    }
    blocking b = choose_blocking(M, N, K);
    size_t per = per_thread_bytes(&b);
    if (!ws || ws_bytes < 64 + per) return DK_GEMM_EWORKSPACE;
    int T = max_threads;
    if ((size_t)T > (ws_bytes - 64) / per) T = (int)((ws_bytes - 64) / per);
    char *base = (char *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    /* Units: (N block, group of M blocks). Each packs its B block once per K block, so groups are
     * kept few (B packing is the im2col for conv); enough units for every thread to have work. */
    int groups = imin(b.nm, cdiv(4 * T, b.nn));
    if (groups < 1) groups = 1;
    if (T == 1) groups = 1;
    int units = b.nn * groups;
    const int direct = a_direct(&g->A);
    if (T > units) T = units;

#pragma omp parallel num_threads(T)
    {
        char *mine = base + (size_t)omp_get_thread_num() * per;
        float *Ap = (float *)mine;
        float *Bp = (float *)(mine + align64((size_t)b.mc * b.kc * 4));
        float *edge = (float *)((char *)Bp + align64((size_t)b.kc * b.nc * 4));
        float *acc = (float *)((char *)edge + align64((size_t)b.kc * DK_MR * 4));
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < units; u++) {
            int jb = u / groups, grp = u % groups;
            int n0 = jb * b.nc, ncur = imin(b.nc, N - n0);
            int ib0 = grp * b.nm / groups, ib1 = (grp + 1) * b.nm / groups;
            for (int pb = 0; pb < b.nk; pb++) {
                int k0 = pb * b.kc, kcur = imin(b.kc, K - k0);
                if (g->packb)
                    g->packb(g->packb_ctx, k0, kcur, n0, ncur, Bp);
                else
                    pack_b(&g->B, k0, kcur, n0, ncur, Bp);
                for (int ib = ib0; ib < ib1; ib++) {
                    int m0 = ib * b.mc, mcur = imin(b.mc, M - m0);
                    int full = mcur / DK_MR * DK_MR; /* rows in whole MR panels */
                    const float *ablk;
                    ptrdiff_t lda;
                    if (direct) {
                        ablk = (const float *)g->A.p + (ptrdiff_t)m0 * g->A.s_outer + k0;
                        lda = g->A.s_outer;
                        if (full < mcur) pack_a(&g->A, m0 + full, mcur - full, DK_MR, k0, kcur, edge);
                    } else {
                        pack_a(&g->A, m0, mcur, round_up(mcur, DK_MR), k0, kcur, Ap);
                        ablk = Ap;
                        lda = kcur;
                    }
#if DK_IR_OUTER
                    /* A micro-panel (MR x kc) stays in L1 while the B block streams from L2 */
                    for (int ir = 0; ir < mcur; ir += DK_MR) {
                        int mr = imin(DK_MR, mcur - ir);
                        const float *ap = direct && ir >= full ? edge : ablk + ir * lda;
                        ptrdiff_t la = direct && ir >= full ? kcur : lda;
                        for (int jr = 0; jr < ncur; jr += DK_NR) {
                            int nr = imin(DK_NR, ncur - jr);
                            ukernel(kcur, ap, la, Bp + (size_t)jr * kcur, acc);
#else
                    /* B micro-panel (kc x NR) stays in L1 while A panels stream from L2 */
                    for (int jr = 0; jr < ncur; jr += DK_NR) {
                        int nr = imin(DK_NR, ncur - jr);
                        for (int ir = 0; ir < mcur; ir += DK_MR) {
                            int mr = imin(DK_MR, mcur - ir);
                            const float *ap = direct && ir >= full ? edge : ablk + ir * lda;
                            ptrdiff_t la = direct && ir >= full ? kcur : lda;
                            ukernel(kcur, ap, la, Bp + (size_t)jr * kcur, acc);
#endif
                            int r = m0 + ir, c = n0 + jr;
                            if (g->c_trans)
                                epilogue_t(acc, mr, nr, g->C + (ptrdiff_t)c * g->ldc + r, g->ldc, pb == 0, g->alpha,
                                           g->beta, g->bias_m ? g->bias_m + r : NULL, g->bias_n ? g->bias_n + c : NULL);
                            else
                                epilogue(acc, mr, nr, g->C + (ptrdiff_t)r * g->ldc + c, g->ldc, pb == 0, g->alpha,
                                         g->beta, g->bias_m ? g->bias_m + r : NULL, g->bias_n ? g->bias_n + c : NULL);
                        }
                    }
                }
            }
        }
    }
    return DK_GEMM_OK;
}

dk_gemm_status dk_gemm_core(const dk_gemm_args *g, void *ws, size_t ws_bytes) {
    return gemm_core_t(g, ws, ws_bytes, omp_get_max_threads());
}

/* ---- public entry points ------------------------------------------------------------------------ */

size_t gemm_workspace_size(int M, int N, int K) { return dk_gemm_core_workspace(M, N, K); }
size_t gemm_batched_workspace_size(int M, int N, int K) { return dk_gemm_core_workspace(M, N, K); }
size_t linear_workspace_size(int M, int N, int K) {
    size_t a = dk_gemm_core_workspace(M, N, K), b = dk_gemm_core_workspace(N, M, K);
    return a > b ? a : b; /* either orientation (see linear()) */
}

static int bad_ld(int trans, int rows, int cols, int ld) {
    /* op(X) is rows x cols; X itself is cols x rows when transposed */
    return ld < (trans ? (rows > 1 ? rows : 1) : (cols > 1 ? cols : 1));
}

static void gemm_args(dk_gemm_args *g, int transA, int transB, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    memset(g, 0, sizeof *g);
    g->M = M, g->N = N, g->K = K, g->alpha = alpha, g->beta = beta, g->C = C, g->ldc = ldc;
    g->A = (dk_operand){A, DK_F32, transA ? 1 : lda, transA ? lda : 1};
    g->B = (dk_operand){B, DK_F32, transB ? ldb : 1, transB ? 1 : ldb};
}

/* C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C */
dk_gemm_status gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc, void *ws, size_t ws_bytes) {
    if (M < 0 || N < 0 || K < 0 || bad_ld(transA, M, K, lda) || bad_ld(transB, K, N, ldb) || ldc < (N > 1 ? N : 1))
        return DK_GEMM_EARG;
    dk_gemm_args g;
    gemm_args(&g, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return dk_gemm_core(&g, ws, ws_bytes);
}

/* y[M,N] = x[M,K] W[N,K]^T + bias[N]. Few tokens (CLIP's 77, time embeddings): packing W^T would
 * cost as much as the product, so compute y^T[N,M] = W x^T instead: W is then A, read in place
 * (f32) or widened row-wise, and only the small x^T is packed (docs/KERNELS.md, v4). */
#ifndef DK_LINEAR_SWAP_M
#define DK_LINEAR_SWAP_M 128
#endif
/* Decode-time products (M <= DK_LINEAR_GEMV_M rows: one new token per caption row): the swapped
 * blocked kernel would fill its MR x NR tiles with M useful columns of NR = 32, so these rows take
 * a narrower path that gives the SAME BITS as the blocked kernel (a row's result never depends on
 * how many rows came with it, so batch sizes stay interchangeable): each output is accumulated
 * sequentially over k with the micro-kernel's multiply-add (fused where it fuses), in the same K
 * blocks (choose_blocking's), and finished by the same epilogue arithmetic ((acc + bias) + 0, later
 * blocks added). Vectorised across 16 outputs: threads take 16 weight rows at a time, widen and
 * transpose a 16 x 128 tile into L1, and every x row multiplies it from there; W is read once. */
#ifndef DK_LINEAR_GEMV_M
#define DK_LINEAR_GEMV_M 8
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define DK_MAC(s, a, b) fmaf((a), (b), (s))
#else
#define DK_MAC(s, a, b) ((s) + (a) * (b))
#endif
#if defined(__AVX512F__)
/* f32 weights on AVX-512: 32 outputs (two gathers of one k from 32 weight rows) x 8 rows of x in
 * 16 zmm accumulators; rows past M multiply zeros, outputs past N are masked out of the gathers. */
static void linear_rows_f32_avx512(int M, int N, int K, const float *x, const float *W, const float *bias, float *y) {
    const int nk = cdiv(K, DK_KC_MAX), kc = cdiv(K, nk), nblocks = cdiv(N, 32);
#pragma omp parallel for schedule(static)
    for (int nb = 0; nb < nblocks; nb++) {
        const int n0 = nb * 32, nn = imin(32, N - n0);
        const __mmask16 m0 = nn >= 16 ? 0xffff : (__mmask16)((1u << nn) - 1);
        const __mmask16 m1 = nn >= 32 ? 0xffff : nn <= 16 ? 0 : (__mmask16)((1u << (nn - 16)) - 1);
        const __m512i step = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                _mm512_set1_epi32(K));
        const __m512i idx0 = step, idx1 = _mm512_add_epi32(step, _mm512_set1_epi32(16 * K));
        const float *wb = W + (size_t)n0 * K;
        float out[8][32] __attribute__((aligned(64)));
        for (int pb = 0; pb < nk; pb++) {
            const int k0 = pb * kc, kend = imin(K, k0 + kc);
            __m512 a0[8], a1[8];
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++) a0[m] = a1[m] = _mm512_setzero_ps();
            for (int k = k0; k < kend; k++) {
                __m512 w0 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, idx0, wb + k, 4);
                __m512 w1 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, idx1, wb + k, 4);
#pragma GCC unroll 8
                for (int m = 0; m < 8; m++) {
                    __m512 xv = _mm512_set1_ps(m < M ? x[(size_t)m * K + k] : 0.0f);
                    a0[m] = _mm512_fmadd_ps(xv, w0, a0[m]);
                    a1[m] = _mm512_fmadd_ps(xv, w1, a1[m]);
                }
            }
            float acc[8][32] __attribute__((aligned(64)));
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++) _mm512_store_ps(acc[m], a0[m]), _mm512_store_ps(acc[m] + 16, a1[m]);
            for (int m = 0; m < M; m++)
                for (int j = 0; j < nn; j++) {
                    float a = 1.0f * acc[m][j];
                    out[m][j] = pb == 0 ? a + (bias ? bias[n0 + j] : 0.0f) + 0.0f : out[m][j] + a;
                }
        }
        for (int m = 0; m < M; m++) memcpy(y + (size_t)m * N + n0, out[m], (size_t)nn * sizeof(float));
    }
}
#endif

static void linear_rows(int M, int N, int K, const float *x, const void *W, dk_wtype wt, const float *bias, float *y) {
#if defined(__AVX512F__)
    /* gathers index with 32-bit element offsets: fine while 32 rows of W fit in 2^31 floats */
    if (wt == DK_F32 && (int64_t)32 * K < INT32_MAX) {
        linear_rows_f32_avx512(M, N, K, x, (const float *)W, bias, y);
        return;
    }
#endif
    enum { NB = 16, KT = 128 };
    const int nk = cdiv(K, DK_KC_MAX), kc = cdiv(K, nk), nblocks = cdiv(N, NB);
#pragma omp parallel
    {
        float tile[KT * NB] __attribute__((aligned(64)));
        float acc[DK_LINEAR_GEMV_M][NB] __attribute__((aligned(64)));
        float out[DK_LINEAR_GEMV_M][NB] __attribute__((aligned(64)));
#pragma omp for schedule(static)
        for (int nb = 0; nb < nblocks; nb++) {
            const int n0 = nb * NB, nn = imin(NB, N - n0);
            for (int pb = 0; pb < nk; pb++) {
                const int k0 = pb * kc, kend = imin(K, k0 + kc);
                memset(acc, 0, sizeof acc);
                for (int kt = k0; kt < kend; kt += KT) {
                    const int kl = imin(KT, kend - kt);
                    for (int j = 0; j < NB; j++) {
                        if (j >= nn) {
                            for (int k = 0; k < kl; k++) tile[k * NB + j] = 0.0f;
                            continue;
                        }
                        size_t base = (size_t)(n0 + j) * K + kt;
                        if (wt == DK_F32) {
                            const float *wr = (const float *)W + base;
                            for (int k = 0; k < kl; k++) tile[k * NB + j] = wr[k];
                        } else {
                            for (int k = 0; k < kl; k++) tile[k * NB + j] = dk_load_w(W, wt, base + k);
                        }
                    }
                    for (int k = 0; k < kl; k++) {
                        const float *wv = tile + k * NB;
                        for (int m = 0; m < M; m++) {
                            const float xv = x[(size_t)m * K + kt + k];
                            float *am = acc[m];
#pragma omp simd aligned(am, wv : 64)
                            for (int j = 0; j < NB; j++) am[j] = DK_MAC(am[j], xv, wv[j]);
                        }
                    }
                }
                for (int m = 0; m < M; m++)
                    for (int j = 0; j < nn; j++) {
                        float a = 1.0f * acc[m][j];
                        out[m][j] = pb == 0 ? a + (bias ? bias[n0 + j] : 0.0f) + 0.0f : out[m][j] + a;
                    }
            }
            for (int m = 0; m < M; m++) memcpy(y + (size_t)m * N + n0, out[m], (size_t)nn * sizeof(float));
        }
    }
}
#undef DK_MAC

dk_gemm_status linear(int M, int N, int K, const float *x, const void *W, dk_wtype wt, const float *bias, float *y,
                      void *ws, size_t ws_bytes) {
    if (M < 0 || N < 0 || K < 0) return DK_GEMM_EARG;
    if (M >= 1 && M <= DK_LINEAR_GEMV_M && N > 0 && K > 0) {
        /* no scratch needed, but the workspace contract stays the blocked kernel's */
        blocking b = choose_blocking(N, M, K);
        if (!ws || ws_bytes < 64 + per_thread_bytes(&b)) return DK_GEMM_EWORKSPACE;
        linear_rows(M, N, K, x, W, wt, bias, y);
        return DK_GEMM_OK;
    }
    dk_gemm_args g;
    memset(&g, 0, sizeof g);
    g.K = K, g.alpha = 1.0f, g.beta = 0.0f, g.C = y, g.ldc = N;
    if (M <= DK_LINEAR_SWAP_M) {
        g.M = N, g.N = M, g.c_trans = 1;
        g.A = (dk_operand){W, wt, K, 1};
        g.B = (dk_operand){x, DK_F32, K, 1};
        g.bias_m = bias;
    } else {
        g.M = M, g.N = N;
        g.A = (dk_operand){x, DK_F32, K, 1};
        g.B = (dk_operand){W, wt, K, 1};
        g.bias_n = bias;
    }
    return dk_gemm_core(&g, ws, ws_bytes);
}

/* batch x { C_b[M,N] = alpha op(A_b) op(B_b) + beta C_b } */
dk_gemm_status gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                            ptrdiff_t strideA, const float *B, int ldb, ptrdiff_t strideB, float beta, float *C,
                            int ldc, ptrdiff_t strideC, int batch, void *ws, size_t ws_bytes) {
    if (batch < 0 || M < 0 || N < 0 || K < 0 || bad_ld(transA, M, K, lda) || bad_ld(transB, K, N, ldb) ||
        ldc < (N > 1 ? N : 1))
        return DK_GEMM_EARG;
    if (batch == 0 || M == 0 || N == 0) return DK_GEMM_OK;
    int T = K > 0 ? omp_get_max_threads() : 1; /* K == 0 never touches the workspace */
    size_t per = 0;
    if (K > 0) {
        blocking b = choose_blocking(M, N, K);
        per = per_thread_bytes(&b);
        if (!ws || ws_bytes < 64 + per) return DK_GEMM_EWORKSPACE;
        if ((size_t)T > (ws_bytes - 64) / per) T = (int)((ws_bytes - 64) / per);
    }
    if (T <= 1 || batch < 2 * T) {
        /* few entries: parallelise inside each GEMM */
        for (int b = 0; b < batch; b++) {
            dk_gemm_args g;
            gemm_args(&g, transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta,
                      C + b * strideC, ldc);
            dk_gemm_status s = gemm_core_t(&g, ws, ws_bytes, T);
            if (s != DK_GEMM_OK) return s;
        }
        return DK_GEMM_OK;
    }
    /* many entries (attention heads): one parallel region, whole GEMMs per thread, each on its own
     * slice of the workspace. Per-element arithmetic is the same as the other branch. */
    char *base = (char *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
#pragma omp parallel for schedule(dynamic, 1) num_threads(T)
    for (int b = 0; b < batch; b++) {
        dk_gemm_args g;
        gemm_args(&g, transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta,
                  C + b * strideC, ldc);
        gemm_core_t(&g, base + (size_t)omp_get_thread_num() * per, per + 64, 1);
    }
    return DK_GEMM_OK;
}

/* ---- references: obvious loops, double accumulation -------------------------------------------- */

void gemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            float *c = C + (size_t)i * ldc + j;
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

void linear_ref(int M, int N, int K, const float *x, const void *W, dk_wtype wt, const float *bias, float *y) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = bias ? bias[j] : 0.0;
            for (int k = 0; k < K; k++) s += (double)x[(size_t)i * K + k] * dk_load_w(W, wt, (size_t)j * K + k);
            y[(size_t)i * N + j] = (float)s;
        }
}

void gemm_batched_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                      ptrdiff_t strideA, const float *B, int ldb, ptrdiff_t strideB, float beta, float *C, int ldc,
                      ptrdiff_t strideC, int batch) {
    for (int b = 0; b < batch; b++)
        gemm_ref(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta, C + b * strideC, ldc);
}
