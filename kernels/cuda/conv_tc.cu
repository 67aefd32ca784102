/* conv_tc.cu - Conv2d as an implicit GEMM on tensor cores (WMMA m16n16k16, f16 or bf16 inputs, f32
 * accumulation), NCHW in and out, for 16-bit weights. Semantics of kernels/cpu/conv.h (groups 1,
 * stride, asymmetric padding, dilation, any kernel size); the bias is added in the epilogue.
 * gemm.cu's im2col + cuBLAS path stays as the reference and the f32-weight path (FP32 exact), and
 * the backend chooses with DIFFAUG_CUDA_CONV (docs/CUDA.md).
 *
 * Per image n the convolution is the GEMM  Y[OC, P] = W[OC, K] * X_col[K, P]  with K = C*KH*KW,
 * P = OH*OW; W [OC, C, KH, KW] is already [OC, K] row-major, Y's image n is [OC, P] row-major in
 * NCHW, and X_col (k = (c, kh, kw), p = (oh, ow)) is never stored: each K-step gathers its
 * [32 x 64] tile from x (zero in the padding), rounding to the weight's type as gemm.cu's im2col
 * does, so both paths see the same rounded operands.
 *
 * Block: 128 threads (4 warps), output tile 64 (OC) x 64 (pixels), K in steps of 32; warp w owns the
 * 32 x 32 quarter (w / 2, w % 2) as 2 x 2 accumulator fragments. Per step: all threads fill the A
 * tile (weights, [64][32+8]) and the B tile (gathered pixels, [32][64+8]) in shared memory,
 * __syncthreads, each warp runs 2 k-substeps x 4 MMAs, __syncthreads. Epilogue: fragments to a
 * shared f32 tile [64][64+4], then + bias and coalesced stores along the pixels. Padded leading
 * dimensions keep WMMA's 16-byte rule and spread rows over banks; all fragment pointers are
 * 32-byte aligned. No double buffering or cp.async yet (the simple version first).
 * Grid: (ceil(P / 64), ceil(OC / 64), N).
 */
#ifdef DCU_EMULATE /* tests/emu: the kernels on the host, launchers left out */
#include "cuda_emu.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include "dcu_common.cuh"
#endif

using namespace nvcuda;

#define CT_BM 64
#define CT_BN 64
#define CT_BK 32
#define CT_THREADS 128
#define CT_LDA (CT_BK + 8)
#define CT_LDB (CT_BN + 8)
#define CT_LDC (CT_BN + 4)

template <typename T> __device__ __forceinline__ T ct_round(float x);
template <> __device__ __forceinline__ __half ct_round<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 ct_round<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <typename T>
__global__ void __launch_bounds__(CT_THREADS) k_conv_tc(dcu_conv s, int OW, int P, const float *x, const T *w,
                                                         const float *bias, float *y) {
    __shared__ __align__(128) T As[CT_BM * CT_LDA];
    __shared__ __align__(128) T Bs[CT_BK * CT_LDB];
    __shared__ __align__(128) float Cs[CT_BM * CT_LDC];
    const int tid = threadIdx.x, warp = tid >> 5, wm = warp >> 1, wn = warp & 1;
    const int p0 = blockIdx.x * CT_BN, oc0 = blockIdx.y * CT_BM, n = blockIdx.z;
    const int KK = s.KH * s.KW, K = s.C * KK;
    const float *xn = x + (size_t)n * s.C * s.H * s.W;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    for (int k0 = 0; k0 < K; k0 += CT_BK) {
        /* A: W[oc0 + r][k0 + kc] */
        for (int i = tid; i < CT_BM * CT_BK; i += CT_THREADS) {
            int r = i / CT_BK, kc = i % CT_BK, oc = oc0 + r, kk = k0 + kc;
            As[r * CT_LDA + kc] = oc < s.OC && kk < K ? w[(size_t)oc * K + kk] : ct_round<T>(0.0f);
        }
        /* B: X_col[k0 + kr][p0 + pc], gathered */
        for (int i = tid; i < CT_BK * CT_BN; i += CT_THREADS) {
            int kr = i / CT_BN, pc = i % CT_BN, kk = k0 + kr, p = p0 + pc;
            float v = 0.0f;
            if (kk < K && p < P) {
                int c = kk / KK, rem = kk % KK, kh = rem / s.KW, kw = rem % s.KW;
                int oh = p / OW, ow = p % OW;
                int ih = oh * s.stride_h - s.pad_t + kh * s.dil_h, iw = ow * s.stride_w - s.pad_l + kw * s.dil_w;
                if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) v = xn[((size_t)c * s.H + ih) * s.W + iw];
            }
            Bs[kr * CT_LDB + pc] = ct_round<T>(v);
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < CT_BK / 16; ks++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; i++)
                wmma::load_matrix_sync(fa[i], As + (wm * 32 + i * 16) * CT_LDA + ks * 16, CT_LDA);
#pragma unroll
            for (int j = 0; j < 2; j++)
                wmma::load_matrix_sync(fb[j], Bs + (ks * 16) * CT_LDB + wn * 32 + j * 16, CT_LDB);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads(); /* the tiles are overwritten next step */
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * CT_LDC + wn * 32 + j * 16, acc[i][j], CT_LDC,
                                    wmma::mem_row_major);
    __syncthreads();
    float *yn = y + (size_t)n * s.OC * P;
    for (int i = tid; i < CT_BM * CT_BN; i += CT_THREADS) {
        int r = i / CT_BN, pc = i % CT_BN, oc = oc0 + r, p = p0 + pc;
        if (oc < s.OC && p < P) yn[(size_t)oc * P + p] = Cs[r * CT_LDC + pc] + (bias ? bias[oc] : 0.0f);
    }
}

#ifndef DCU_EMULATE
extern "C" int dcu_conv2d_tc(dcu_ctx *c, const dcu_conv *s, const float *x, const void *w, int wt, const float *bias,
                             float *y) {
    int eh = s->H + s->pad_t + s->pad_b - s->dil_h * (s->KH - 1) - 1;
    int ew = s->W + s->pad_l + s->pad_r - s->dil_w * (s->KW - 1) - 1;
    if (s->N < 1 || s->C < 1 || s->OC < 1 || s->KH < 1 || s->KW < 1 || s->dil_h < 1 || s->dil_w < 1 ||
        s->stride_h < 1 || s->stride_w < 1 || s->pad_t < 0 || s->pad_b < 0 || s->pad_l < 0 || s->pad_r < 0 || eh < 0 ||
        ew < 0 || (wt != 1 && wt != 2)) {
        snprintf(c->msg, sizeof c->msg, "dcu_conv2d_tc: invalid shape [%d,%d,%d,%d] -> %d (k %dx%d) or type %d", s->N,
                 s->C, s->H, s->W, s->OC, s->KH, s->KW, wt);
        return (int)cudaErrorInvalidValue;
    }
    int OH = eh / s->stride_h + 1, OW = ew / s->stride_w + 1;
    size_t P = (size_t)OH * OW, K = (size_t)s->C * s->KH * s->KW;
    if (P > 0x7fffffffu || K > 0x7fffffffu || (size_t)s->OC * P > ((size_t)1 << 40) || s->N > 65535 ||
        (s->OC + CT_BM - 1) / CT_BM > 65535) {
        snprintf(c->msg, sizeof c->msg, "dcu_conv2d_tc: sizes exceed the kernel's limits (P=%zu, K=%zu, N=%d)", P, K,
                 s->N);
        return (int)cudaErrorInvalidValue;
    }
    dim3 grid((unsigned)((P + CT_BN - 1) / CT_BN), (unsigned)((s->OC + CT_BM - 1) / CT_BM), (unsigned)s->N);
    if (wt == 1) k_conv_tc<__half><<<grid, CT_THREADS, 0, DCU_STREAM(c)>>>(*s, OW, (int)P, x, (const __half *)w, bias, y);
    else k_conv_tc<__nv_bfloat16><<<grid, CT_THREADS, 0, DCU_STREAM(c)>>>(*s, OW, (int)P, x, (const __nv_bfloat16 *)w,
                                                                          bias, y);
    return dcu_check_launch(c, wt == 1 ? "k_conv_tc<f16>" : "k_conv_tc<bf16>");
}
#endif /* DCU_EMULATE */
