/* gemm.cu - nn.Linear and Conv2d on the GPU through cuBLAS, mirroring kernels/cpu/gemm.h (linear:
 * y = x W^T + b, W [out, in]) and kernels/cpu/conv.h (torch.nn.Conv2d, groups 1, NCHW, asymmetric
 * padding, stride, dilation).
 *
 * Precision (docs/CUDA.md): f32 weights run cublasGemmEx with CUBLAS_COMPUTE_32F and the handle in
 * default math mode, i.e. true FP32 (no TF32). 16-bit weights stay 16-bit in device memory; the f32
 * activations are rounded to the weight's type (RNE, as torch's autocast would) into the scratch
 * buffer and the product runs on tensor cores with f32 accumulation (COMPUTE_32F, f32 output).
 * Rounding x to bf16 costs ~2^-9 relative per element, to f16 ~2^-12, and f16 overflows past 65504.
 *
 * cuBLAS is column-major; a row-major [R, C] matrix is a column-major [C, R] one. So
 *   linear: y [M, N] row-major is C (N x M, ld N) = op_T(W: column-major K x N, ld K) * (x: K x M, ld K).
 *   conv:   for each image and chunk of output pixels, col [CKK, np] row-major = column-major
 *           (np x CKK, ld np) is gathered (im2col), then C(np x OC, ld P) = col * W^T where W
 *           [OC, CKK] row-major = column-major (CKK x OC, ld CKK); C starts at y[n, 0, p0].
 * The bias is one elementwise pass after the GEMM (cublasGemmEx has no epilogue; a cuBLASLt
 * bias epilogue is a later version).
 */
#include <cublas_v2.h>

#include "dcu_common.cuh"

static int blas_fail(dcu_ctx *c, cublasStatus_t s, const char *call, int m, int n, int k) {
    snprintf(c->msg, sizeof c->msg, "%s (m=%d n=%d k=%d): %s", call, m, n, k, cublasGetStatusString(s));
    return (int)s;
}

static cudaDataType_t wtype_cuda(int wt) { return wt == 1 ? CUDA_R_16F : wt == 2 ? CUDA_R_16BF : CUDA_R_32F; }

static size_t round256(size_t b) { return (b + 255) / 256 * 256; }

extern "C" size_t dcu_linear_ws(int M, int K) {
    return M > 0 && K > 0 ? round256((size_t)M * (size_t)K * 2) : 0;
}

extern "C" int dcu_linear(dcu_ctx *c, int M, int N, int K, const float *x, const void *W, int wt, const float *bias,
                          float *y, void *ws, size_t ws_bytes) {
    if (M <= 0 || N <= 0 || K <= 0) {
        snprintf(c->msg, sizeof c->msg, "dcu_linear: invalid shape M=%d N=%d K=%d", M, N, K);
        return (int)cudaErrorInvalidValue;
    }
    const void *A = x;
    if (wt != 0) {
        size_t need = (size_t)M * K * 2;
        if (ws_bytes < need) {
            snprintf(c->msg, sizeof c->msg, "dcu_linear: scratch %zu bytes < %zu needed (planning pass missed this op)",
                     ws_bytes, need);
            return (int)cudaErrorInvalidValue;
        }
        int rc = wt == 1 ? dcu_f32_to_f16(c, (uint16_t *)ws, x, (size_t)M * K)
                         : dcu_f32_to_bf16(c, (uint16_t *)ws, x, (size_t)M * K);
        if (rc) return rc;
        A = ws;
    }
    const float alpha = 1.0f, beta = 0.0f;
    cudaDataType_t t = wtype_cuda(wt);
    cublasStatus_t s = cublasGemmEx((cublasHandle_t)c->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W, t, K, A, t,
                                    K, &beta, y, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) return blas_fail(c, s, "cublasGemmEx (linear)", N, M, K);
    int rc = dcu_check_launch(c, "cublasGemmEx (linear)");
    if (rc) return rc;
    return bias ? dcu_add_row(c, y, y, bias, 0, (size_t)M, (size_t)N) : 0;
}

/* ---- conv2d ------------------------------------------------------------------------------------- */
#define CONV_COL_BYTES ((size_t)64 << 20) /* im2col chunk budget: bounds scratch for the VAE at 512^2 */

static int conv_oh(const dcu_conv *s) {
    int e = s->H + s->pad_t + s->pad_b - s->dil_h * (s->KH - 1) - 1;
    return e < 0 || s->stride_h < 1 ? 0 : e / s->stride_h + 1;
}
static int conv_ow(const dcu_conv *s) {
    int e = s->W + s->pad_l + s->pad_r - s->dil_w * (s->KW - 1) - 1;
    return e < 0 || s->stride_w < 1 ? 0 : e / s->stride_w + 1;
}

/* Output pixels per im2col chunk: a function of the shape alone (sized for 4-byte elements), so the
 * planning query and the run agree. */
static size_t conv_chunk(const dcu_conv *s) {
    size_t P = (size_t)conv_oh(s) * conv_ow(s), ckk = (size_t)s->C * s->KH * s->KW;
    if (!P || !ckk) return 0;
    size_t np = CONV_COL_BYTES / (ckk * 4);
    if (np < 256) np = 256; /* huge C*K*K: keep GEMMs reasonably wide, scratch grows instead */
    return np < P ? np : P;
}

extern "C" size_t dcu_conv2d_ws(const dcu_conv *s) {
    return round256(conv_chunk(s) * (size_t)s->C * s->KH * s->KW * 4);
}

/* col [CKK, np] row-major (element (k, j) at col[k * np + j]) for output pixels p0 .. p0+np-1 of
 * image x [C, H, W]: k = (ch, kh, kw), pixel p = (oh, ow); zero where the tap falls in the padding.
 * One thread per element, j fastest, so writes and (for stride 1) reads are coalesced. WT: the
 * element type written (dk_wtype: 0 f32, 1 f16, 2 bf16), the weight's, so the GEMM has one type. */
template <int WT>
__global__ void k_im2col(void *colv, const float *x, dcu_conv s, int OW, size_t p0, size_t np) {
    size_t KK = (size_t)s.KH * s.KW, ckk = (size_t)s.C * KK;
    DCU_GRID_STRIDE(i, ckk * np) {
        size_t k = i / np, j = i % np, p = p0 + j;
        int ch = (int)(k / KK), kh = (int)((k / s.KW) % s.KH), kw = (int)(k % s.KW);
        int oh = (int)(p / OW), ow = (int)(p % OW);
        int ih = oh * s.stride_h - s.pad_t + kh * s.dil_h, iw = ow * s.stride_w - s.pad_l + kw * s.dil_w;
        float v = (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) ? x[((size_t)ch * s.H + ih) * s.W + iw] : 0.0f;
        if (WT == 0) ((float *)colv)[i] = v;
        else if (WT == 1) ((uint16_t *)colv)[i] = dk_f32_to_f16(v);
        else ((uint16_t *)colv)[i] = dk_f32_to_bf16(v);
    }
}

extern "C" int dcu_conv2d(dcu_ctx *c, const dcu_conv *s, const float *x, const void *w, int wt, const float *bias,
                          float *y, void *ws, size_t ws_bytes) {
    int OH = conv_oh(s), OW = conv_ow(s);
    if (s->N < 1 || s->C < 1 || s->OC < 1 || s->KH < 1 || s->KW < 1 || s->dil_h < 1 || s->dil_w < 1 || OH < 1 ||
        OW < 1 || s->pad_t < 0 || s->pad_b < 0 || s->pad_l < 0 || s->pad_r < 0) {
        snprintf(c->msg, sizeof c->msg, "dcu_conv2d: invalid shape [%d,%d,%d,%d] -> %d (k %dx%d)", s->N, s->C, s->H,
                 s->W, s->OC, s->KH, s->KW);
        return (int)cudaErrorInvalidValue;
    }
    size_t P = (size_t)OH * OW, ckk = (size_t)s->C * s->KH * s->KW, chunk = conv_chunk(s);
    size_t esz = wt == 0 ? 4 : 2;
    if (ws_bytes < chunk * ckk * esz) {
        snprintf(c->msg, sizeof c->msg, "dcu_conv2d: scratch %zu bytes < %zu needed (planning pass missed this op)",
                 ws_bytes, chunk * ckk * esz);
        return (int)cudaErrorInvalidValue;
    }
    if (P > 0x7fffffffu || ckk > 0x7fffffffu) {
        snprintf(c->msg, sizeof c->msg, "dcu_conv2d: GEMM dimensions exceed int (P=%zu, C*KH*KW=%zu)", P, ckk);
        return (int)cudaErrorInvalidValue;
    }
    cudaDataType_t t = wtype_cuda(wt);
    const float alpha = 1.0f, beta = 0.0f;
    for (int n = 0; n < s->N; n++) {
        const float *xn = x + (size_t)n * s->C * s->H * s->W;
        float *yn = y + (size_t)n * s->OC * P;
        for (size_t p0 = 0; p0 < P; p0 += chunk) {
            size_t np = P - p0 < chunk ? P - p0 : chunk;
            unsigned g = dcu_blocks(ckk * np, 256);
            if (wt == 0) k_im2col<0><<<g, 256, 0, DCU_STREAM(c)>>>(ws, xn, *s, OW, p0, np);
            else if (wt == 1) k_im2col<1><<<g, 256, 0, DCU_STREAM(c)>>>(ws, xn, *s, OW, p0, np);
            else k_im2col<2><<<g, 256, 0, DCU_STREAM(c)>>>(ws, xn, *s, OW, p0, np);
            int rc = dcu_check_launch(c, "k_im2col");
            if (rc) return rc;
            cublasStatus_t st = cublasGemmEx((cublasHandle_t)c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)np, s->OC, (int)ckk,
                                             &alpha, ws, t, (int)np, w, t, (int)ckk, &beta, yn + p0, CUDA_R_32F, (int)P,
                                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(c, st, "cublasGemmEx (conv2d)", (int)np, s->OC, (int)ckk);
            rc = dcu_check_launch(c, "cublasGemmEx (conv2d)");
            if (rc) return rc;
        }
    }
    return bias ? dcu_add_channel_bias(c, y, y, bias, 0, (size_t)s->N, (size_t)s->OC, P) : 0;
}
