/* tc_kernels_emu.cpp - the tensor-core kernels of kernels/cuda compiled for the host against
 * cuda_emu.h (the .cu files themselves, included with DCU_EMULATE so their launchers, which need
 * nvcc, drop out), behind a C API for tests/test_cuda_emu.c. Grid, block and shared-memory sizes
 * are computed exactly as the real launchers compute them. */
#include "cuda_emu.h"

namespace emu {
#include "attention_tc.cu"
#include "conv_tc.cu"
} // namespace emu

extern "C" size_t emu_attention_tc_smem(int d) { return emu::tc_make_layout(d).total; }

extern "C" void emu_attention_tc(const dcu_attn *p, const float *q, const float *k, const float *v, float *o, int wt) {
    size_t bytes = emu::tc_make_layout(p->head_dim).total;
    dim3 grid{(unsigned)((p->nq + TC_BQ - 1) / TC_BQ), (unsigned)(p->batch * p->heads), 1};
    dcu_attn a = *p;
    if (wt == 1) emu_launch(grid, TC_THREADS, bytes, [&] { emu::k_attention_tc<__half>(a, q, k, v, o); });
    else emu_launch(grid, TC_THREADS, bytes, [&] { emu::k_attention_tc<__nv_bfloat16>(a, q, k, v, o); });
}

extern "C" void emu_conv2d_tc(const dcu_conv *s, const float *x, const void *w, int wt, const float *bias, float *y) {
    int OH = (s->H + s->pad_t + s->pad_b - s->dil_h * (s->KH - 1) - 1) / s->stride_h + 1;
    int OW = (s->W + s->pad_l + s->pad_r - s->dil_w * (s->KW - 1) - 1) / s->stride_w + 1;
    int P = OH * OW;
    dim3 grid{(unsigned)((P + CT_BN - 1) / CT_BN), (unsigned)((s->OC + CT_BM - 1) / CT_BM), (unsigned)s->N};
    dcu_conv c = *s;
    if (wt == 1)
        emu_launch(grid, CT_THREADS, 0, [&] { emu::k_conv_tc<__half>(c, OW, P, x, (const __half *)w, bias, y); });
    else
        emu_launch(grid, CT_THREADS, 0,
                   [&] { emu::k_conv_tc<__nv_bfloat16>(c, OW, P, x, (const __nv_bfloat16 *)w, bias, y); });
}
