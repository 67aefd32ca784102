/* test_cuda_emu.c - the tensor-core CUDA kernels (kernels/cuda/attention_tc.cu, conv_tc.cu) run on
 * the host through tests/emu/cuda_emu.h, against the CPU references with the tolerances of
 * tests/test_gpu.c's v2 section. This checks what can be checked without a GPU: tiling, index math,
 * padding and masks (causal, key and query tails, odd head dims, conv padding / stride / dilation),
 * the online softmax, barrier placement (threads really run concurrently), shared-memory bounds and
 * WMMA's documented alignment rules. It does not check the hardware: the emulated WMMA computes the
 * documented product, not the tensor cores' register layout, and nothing here is a GPU result.
 * Shapes are kept small (each block runs 128 host threads). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "conv.h"
#include "convert.h"
#include "dcuda.h"
#include "testutil.h"

size_t emu_attention_tc_smem(int d);
void emu_attention_tc(const dcu_attn *p, const float *q, const float *k, const float *v, float *o, int wt);
void emu_conv2d_tc(const dcu_conv *s, const float *x, const void *w, int wt, const float *bias, float *y);

static float *urand(size_t n, float lo, float hi) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (da_test_frand() + 0.5f);
    return p;
}
static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

START_TEST(test_emu_attention_tc) {
    /* B, H, Nq, Nk, d, causal, fused, amplitude of q and k */
    const int cs[][8] = {
        {1, 2, 130, 130, 40, 0, 0, 1}, /* SD's d 40 (padded to 48); Nq, Nk past a tile */
        {2, 1, 70, 77, 40, 0, 0, 1},   /* cross-attention, 77 keys (one full + one partial tile) */
        {1, 1, 64, 77, 80, 0, 0, 3},   /* d 80, sharp softmax */
        {1, 2, 65, 65, 160, 0, 1, 1},  /* d 160, fused QKV strides */
        {1, 2, 77, 77, 64, 1, 0, 1},   /* CLIP causal */
        {1, 3, 70, 70, 33, 1, 1, 1},   /* odd d, causal, fused */
        {3, 1, 5, 129, 64, 0, 0, 1},   /* few queries, Nk not a tile multiple */
        {1, 1, 1, 1, 1, 0, 0, 1},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        int B = cs[s][0], H = cs[s][1], Nq = cs[s][2], Nk = cs[s][3], d = cs[s][4], causal = cs[s][5];
        int fused = cs[s][6];
        float amp = (float)cs[s][7];
        dk_attn_params p = dk_attn_params_packed(B, H, Nq, Nk, d, causal);
        size_t row = (size_t)H * d, nq = (size_t)B * Nq * row, nk = (size_t)B * Nk * row;
        float *q, *k, *v, *buf = NULL;
        if (fused) {
            buf = urand(3 * nq, -1, 1);
            for (size_t i = 0; i < 3 * nq; i++)
                if (i % (3 * row) < 2 * row) buf[i] *= amp;
            q = buf, k = buf + row, v = buf + 2 * row;
            p.q_row = p.k_row = p.v_row = 3 * row;
        } else {
            q = urand(nq, -amp, amp), k = urand(nk, -amp, amp), v = urand(nk, -1, 1);
        }
        float *r = malloc(nq * 4), *o = malloc(nq * 4);
        dk_attention_ref(&p, q, k, v, r);
        size_t qr = fused ? 3 * row : row;
        dcu_attn a = {B, H, Nq, Nk, d, causal, p.scale, qr, qr, qr, row, 0, 0, 0, 0};
        a.q_batch = (size_t)Nq * qr, a.k_batch = (size_t)Nk * qr, a.v_batch = (size_t)Nk * qr, a.o_batch = (size_t)Nq * row;
        for (int wt = 1; wt <= 2; wt++) {
            for (size_t i = 0; i < nq; i++) o[i] = NAN;
            emu_attention_tc(&a, q, k, v, o, wt);
            double tol = wt == 1 ? (amp > 1 ? 8e-3 : 2e-3) : (amp > 1 ? 5e-2 : 1.6e-2);
            char lab[160];
            snprintf(lab, sizeof lab, "emulated attention tc %s B%d H%d Nq%d Nk%d d%d%s%s", wt == 1 ? "f16" : "bf16", B,
                     H, Nq, Nk, d, causal ? " causal" : "", fused ? " fused" : "");
            DA_ASSERT_CLOSE(lab, o, r, nq, wt == 1 ? 0.99999 : 0.9995, tol);
        }
        if (fused) free(buf);
        else free(q), free(k), free(v);
        free(r), free(o);
    }
    /* the shared-memory sizes documented in docs/CUDA.md */
    ck_assert_uint_eq(emu_attention_tc_smem(40), 62208);
    ck_assert_uint_eq(emu_attention_tc_smem(160), 133888);
    ck_assert_uint_le(emu_attention_tc_smem(304), 232448); /* Hopper's opt-in limit */
    ck_assert_uint_gt(emu_attention_tc_smem(320), 232448);
}
END_TEST

START_TEST(test_emu_conv_tc) {
    const dk_conv2d cs[] = {
        {1, 40, 12, 12, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  /* 3x3 s1: OC and K (360) past a tile */
        {2, 4, 9, 9, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},     /* conv_in-like: K = 36 */
        {1, 32, 17, 17, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  /* stride 2, odd size */
        {1, 16, 20, 20, 16, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1},  /* VAE encoder downsample padding */
        {2, 96, 13, 11, 40, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},  /* 1x1 */
        {1, 8, 15, 15, 8, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},    /* dilation 2 */
        {1, 5, 9, 7, 3, 3, 1, 1, 2, 1, 1, 0, 0, 1, 1},      /* non-square kernel and stride */
        {1, 3, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},      /* 1x1 image */
    };
    for (size_t si = 0; si < sizeof cs / sizeof cs[0]; si++)
        for (int t = 1; t <= 2; t++) {
            const dk_conv2d *s = &cs[si];
            int OH = dk_conv2d_oh(s), OW = dk_conv2d_ow(s);
            size_t nx = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->OC * s->C * s->KH * s->KW;
            size_t ny = (size_t)s->N * s->OC * OH * OW;
            float *x = urand(nx, -2, 2), *wv = urand(nw, -0.2f, 0.2f), *bias = urand(s->OC, -1, 1);
            float *r = malloc(ny * 4), *y = malloc(ny * 4);
            uint16_t *hw = malloc(nw * 2);
            if (t == 1) dk_f32_to_f16_n_ref(hw, wv, nw);
            else dk_f32_to_bf16_n_ref(hw, wv, nw);
            dcu_conv dc = {s->N, s->C, s->H, s->W, s->OC, s->KH, s->KW, s->stride_h, s->stride_w,
                           s->pad_t, s->pad_b, s->pad_l, s->pad_r, s->dil_h, s->dil_w};
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                for (size_t i = 0; i < ny; i++) y[i] = NAN;
                emu_conv2d_tc(&dc, x, hw, t, with_bias ? bias : NULL, y);
                conv2d_ref(s, x, hw, (dk_wtype)t, with_bias ? bias : NULL, r);
                double rel = t == 1 ? 4e-3 : 3e-2, m = max_abs(r, ny);
                char lab[128];
                snprintf(lab, sizeof lab, "emulated conv tc case %zu %s%s", si, t == 1 ? "f16" : "bf16",
                         with_bias ? " +bias" : "");
                DA_ASSERT_CLOSE(lab, y, r, ny, t == 1 ? 0.99999 : 0.9999, rel * (m > 1 ? m : 1));
            }
            free(x), free(wv), free(bias), free(r), free(y), free(hw);
        }
}
END_TEST

static Suite *emu_suite(void) {
    Suite *s = suite_create("cuda_emu");
    TCase *tc = da_tcase("tc-kernels-on-host", "fast", 300);
    tcase_add_test(tc, test_emu_attention_tc);
    tcase_add_test(tc, test_emu_conv_tc);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(emu_suite)
