/* gemm.h - CPU matrix products: general f32 GEMM (BLAS sgemm semantics, row-major), PyTorch's
 * nn.Linear (y = x W^T + b with W stored [out, in] in f32, f16 or bf16) and a strided batched
 * GEMM (torch.bmm / baddbmm-like, for attention). Each fast kernel has a plain reference
 * (<op>_ref: triple loop, double accumulation) beside it.
 *
 * Workspace rule: the fast kernels never allocate. Call <op>_workspace_size() with the same shape
 * (it reads omp_get_max_threads()) and pass a buffer of at least that many bytes, any alignment
 * (the kernel aligns inside). A smaller buffer runs on fewer threads; one too small for a single
 * thread returns DK_GEMM_EWORKSPACE and writes nothing.
 *
 * Determinism: every output element is reduced over K in one fixed order (K blocks in sequence,
 * fixed block size chosen from K alone) by exactly one thread, so results are bit-identical for
 * any thread count.
 */
#ifndef DK_GEMM_H
#define DK_GEMM_H

#include <stddef.h>

#include "kcommon.h"

typedef enum dk_gemm_status {
    DK_GEMM_OK = 0,
    DK_GEMM_EWORKSPACE = 1, /* workspace smaller than one thread's packing buffers */
    DK_GEMM_EARG = 2        /* negative size or leading dimension too small */
} dk_gemm_status;

/* C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C. Row-major: op(A) = A (A is [M,lda>=K]) or
 * A^T (A is [K,lda>=M]) when transA; likewise B. beta == 0 never reads C (NaNs there vanish). */
size_t gemm_workspace_size(int M, int N, int K);
dk_gemm_status gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc, void *ws, size_t ws_bytes);
void gemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* nn.Linear: y[M,N] = x[M,K] * W[N,K]^T + bias[N] (bias may be NULL). W of type wt stays in its
 * dtype in memory and is converted to f32 while being packed. */
size_t linear_workspace_size(int M, int N, int K);
dk_gemm_status linear(int M, int N, int K, const float *x, const void *W, dk_wtype wt, const float *bias,
                      float *y, void *ws, size_t ws_bytes);
void linear_ref(int M, int N, int K, const float *x, const void *W, dk_wtype wt, const float *bias, float *y);

/* batch independent GEMMs: for b < batch, C_b = alpha op(A_b) op(B_b) + beta C_b where
 * X_b = X + b * strideX (elements). Same workspace as gemm(). */
size_t gemm_batched_workspace_size(int M, int N, int K);
dk_gemm_status gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                            ptrdiff_t strideA, const float *B, int ldb, ptrdiff_t strideB, float beta, float *C,
                            int ldc, ptrdiff_t strideC, int batch, void *ws, size_t ws_bytes);
void gemm_batched_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                      ptrdiff_t strideA, const float *B, int ldb, ptrdiff_t strideB, float beta, float *C, int ldc,
                      ptrdiff_t strideC, int batch);

/* ---- the engine under gemm/linear/conv (used by conv.c; not for model code) ---------------------
 * An operand of the product, read element-wise while packing: element (r, k) of A (r = row of C)
 * or (k, c) of B (c = column of C) sits at p[r*s_outer + k*s_k] (A) / p[k*s_k + c*s_outer] (B). */
typedef struct dk_operand {
    const void *p;
    dk_wtype t;
    ptrdiff_t s_outer, s_k;
} dk_operand;

/* Packs B rows [k0, k0+kc) x columns [n0, n0+nc) into dst as ceil(nc/NR) panels of kc x NR floats
 * (column j of a panel at dst[p*kc*NR + k*NR + j]), columns past nc zero. Lets conv pack its
 * implicit im2col tile straight from the image. */
typedef void (*dk_packb_fn)(const void *ctx, int k0, int kc, int n0, int nc, float *dst);

typedef struct dk_gemm_args {
    int M, N, K;
    float alpha, beta;
    dk_operand A;
    dk_operand B;            /* used when packb is NULL */
    dk_packb_fn packb;
    const void *packb_ctx;
    float *C;
    ptrdiff_t ldc;
    const float *bias_m; /* added to row r of C (conv: per output channel), or NULL */
    const float *bias_n; /* added to column c of C (linear: per output feature), or NULL */
    int c_trans;         /* C stored transposed: element (r, c) at C[c*ldc + r] */
} dk_gemm_args;

size_t dk_gemm_core_workspace(int M, int N, int K);
dk_gemm_status dk_gemm_core(const dk_gemm_args *g, void *ws, size_t ws_bytes);
/* micro-panel width of the packed B operand for this build (32 AVX-512, 16 AVX2 / generic). */
int dk_gemm_nr(void);

#endif /* DK_GEMM_H */
