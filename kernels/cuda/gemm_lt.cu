/* gemm_lt.cu - nn.Linear through cuBLASLt with the bias added in the GEMM's epilogue
 * (CUBLASLT_EPILOGUE_BIAS: one pass over y instead of two). Same contract and precision as
 * dcu_linear in gemm.cu: f32 W runs FP32 (CUBLAS_COMPUTE_32F, no TF32), 16-bit W runs on tensor
 * cores with x rounded to W's type into ws and f32 accumulation and output.
 *
 * Column-major view as in gemm.cu: y [M, N] row-major is D (N x M, ld N) = op_T(W: K x N, ld K) *
 * (x: K x M, ld K); the bias vector has one entry per row of D, i.e. per output feature: exactly
 * what the BIAS epilogue adds. No activation epilogue is used: SD's feed-forward is GEGLU with the
 * exact erf GELU on half of the columns, and cuBLASLt's GELU epilogue is the tanh approximation.
 *
 * The handle is created on first use and kept in the context; descriptors are made per call (a few
 * microseconds of host time). When the heuristic offers no algorithm the call falls back to
 * dcu_linear (cublasGemmEx + bias pass), so the result never depends on the heuristic's mood.
 * The workspace is the context's fixed cuBLAS workspace (same stream, so never used concurrently).
 */
#include <cublasLt.h>
#include <cublas_v2.h>

#include "dcu_common.cuh"

static int lt_fail(dcu_ctx *c, cublasStatus_t s, const char *call, int M, int N, int K) {
    snprintf(c->msg, sizeof c->msg, "%s (linear M=%d N=%d K=%d): %s", call, M, N, K, cublasGetStatusString(s));
    return (int)s;
}

extern "C" int dcu_linear_lt(dcu_ctx *c, int M, int N, int K, const float *x, const void *W, int wt,
                             const float *bias, float *y, void *ws, size_t ws_bytes) {
    if (M <= 0 || N <= 0 || K <= 0 || wt < 0 || wt > 2) {
        snprintf(c->msg, sizeof c->msg, "dcu_linear_lt: invalid shape M=%d N=%d K=%d or type %d", M, N, K, wt);
        return (int)cudaErrorInvalidValue;
    }
    cublasStatus_t s;
    if (!c->blaslt) {
        cublasLtHandle_t h;
        if ((s = cublasLtCreate(&h)) != CUBLAS_STATUS_SUCCESS) return lt_fail(c, s, "cublasLtCreate", M, N, K);
        c->blaslt = h;
    }
    const void *A = x;
    if (wt != 0) {
        size_t need = (size_t)M * K * 2;
        if (ws_bytes < need) {
            snprintf(c->msg, sizeof c->msg,
                     "dcu_linear_lt: scratch %zu bytes < %zu needed (planning pass missed this op)", ws_bytes, need);
            return (int)cudaErrorInvalidValue;
        }
        int rc = wt == 1 ? dcu_f32_to_f16(c, (uint16_t *)ws, x, (size_t)M * K)
                         : dcu_f32_to_bf16(c, (uint16_t *)ws, x, (size_t)M * K);
        if (rc) return rc;
        A = ws;
    }
    cudaDataType_t t = wt == 1 ? CUDA_R_16F : wt == 2 ? CUDA_R_16BF : CUDA_R_32F;
    cublasLtHandle_t lt = (cublasLtHandle_t)c->blaslt;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    const char *step = "cublasLtMatmulDescCreate";
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    cudaDataType_t bt = CUDA_R_32F;
    size_t wsz = DCU_BLAS_WS;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    const float alpha = 1.0f, beta = 0.0f;
    int rc = 0;
    if ((s = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F)) != CUBLAS_STATUS_SUCCESS) goto fail;
    step = "cublasLtMatmulDescSetAttribute";
    if ((s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) ||
        (s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) ||
        (s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi)))
        goto fail;
    if (bias && ((s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias)) ||
                 (s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt))))
        goto fail;
    step = "cublasLtMatrixLayoutCreate";
    if ((s = cublasLtMatrixLayoutCreate(&la, t, K, N, K)) || (s = cublasLtMatrixLayoutCreate(&lb, t, K, M, K)) ||
        (s = cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, N)))
        goto fail;
    step = "cublasLtMatmulPreference";
    if ((s = cublasLtMatmulPreferenceCreate(&pref)) ||
        (s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz, sizeof wsz)))
        goto fail;
    step = "cublasLtMatmulAlgoGetHeuristic";
    s = cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &found);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
        /* no algorithm for this combination: the cublasGemmEx path (x is already converted; it
         * converts again, which is correct if redundant) */
        cublasLtMatmulPreferenceDestroy(pref), cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(lc), cublasLtMatmulDescDestroy(op);
        return dcu_linear(c, M, N, K, x, W, wt, bias, y, ws, ws_bytes);
    }
    step = "cublasLtMatmul";
    s = cublasLtMatmul(lt, op, &alpha, W, la, A, lb, &beta, y, lc, y, lc, &res.algo, c->blas_ws, DCU_BLAS_WS,
                       DCU_STREAM(c));
    if (s != CUBLAS_STATUS_SUCCESS) goto fail;
    rc = dcu_check_launch(c, "cublasLtMatmul (linear)");
    goto done;
fail:
    rc = lt_fail(c, s, step, M, N, K);
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}
