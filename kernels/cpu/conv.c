/* conv.c - torch.nn.Conv2d forward (NCHW, groups 1, any kernel / stride / asymmetric padding /
 * dilation) as an implicit GEMM on the packed-panel engine of gemm.c, and its direct-loop
 * double-accumulating reference.
 *
 * GEMM view per image: M = OC, N = OH*OW, K = C*KH*KW (PyTorch's weight order, so W is A as
 * stored, row-major [OC, K]). The B packer below writes im2col columns straight into kc x NR
 * panels: a panel of NR output pixels is cut into runs that share an output row; for each K index
 * (ci, kh, kw) a run is one contiguous (stride 1) or strided input row segment with zeros where it
 * leaves the image. So the im2col matrix never exists and padding costs no branches per element.
 * Why this over im2col + GEMM and Winograd: docs/KERNELS.md.
 */
#include "conv.h"

#include <string.h>

dk_conv2d dk_conv2d_make(int N, int C, int H, int W, int OC, int k, int s, int p) {
    dk_conv2d c = {N, C, H, W, OC, k, k, s, s, p, p, p, p, 1, 1};
    return c;
}

static int valid(const dk_conv2d *s) {
    return s->N >= 0 && s->C >= 1 && s->H >= 1 && s->W >= 1 && s->OC >= 1 && s->KH >= 1 && s->KW >= 1 &&
           s->stride_h >= 1 && s->stride_w >= 1 && s->pad_t >= 0 && s->pad_b >= 0 && s->pad_l >= 0 && s->pad_r >= 0 &&
           s->dil_h >= 1 && s->dil_w >= 1;
}

int dk_conv2d_oh(const dk_conv2d *s) {
    if (!valid(s)) return 0;
    int span = s->H + s->pad_t + s->pad_b - s->dil_h * (s->KH - 1) - 1;
    return span < 0 ? 0 : span / s->stride_h + 1;
}
int dk_conv2d_ow(const dk_conv2d *s) {
    if (!valid(s)) return 0;
    int span = s->W + s->pad_l + s->pad_r - s->dil_w * (s->KW - 1) - 1;
    return span < 0 ? 0 : span / s->stride_w + 1;
}

static int is_pointwise(const dk_conv2d *s) {
    return s->KH == 1 && s->KW == 1 && s->stride_h == 1 && s->stride_w == 1 && !s->pad_t && !s->pad_b && !s->pad_l &&
           !s->pad_r;
}

typedef struct im2col_ctx {
    const dk_conv2d *s;
    const float *x; /* one image [C, H, W] */
    int OH, OW, nr;
} im2col_ctx;

/* Packs im2col rows [k0, k0+kc) x output pixels [n0, n0+nc) into kc x NR panels (see gemm.h). */
static void pack_im2col(const void *vctx, int k0, int kc, int n0, int nc, float *dst) {
    const im2col_ctx *c = vctx;
    const dk_conv2d *s = c->s;
    const int NR = c->nr, H = s->H, W = s->W, KHW = s->KH * s->KW;
    int seg_oh[64], seg_ow[64], seg_j[64], seg_len[64]; /* NR <= 64 */
    for (int p = 0; p < nc; p += NR) {
        float *d = dst + (size_t)p * kc;
        int nr = nc - p < NR ? nc - p : NR;
        /* runs of the panel's pixels within one output row */
        int nseg = 0;
        for (int j = 0; j < nr;) {
            int n = n0 + p + j, oh = n / c->OW, ow = n % c->OW;
            int len = c->OW - ow < nr - j ? c->OW - ow : nr - j;
            seg_oh[nseg] = oh, seg_ow[nseg] = ow, seg_j[nseg] = j, seg_len[nseg] = len;
            nseg++;
            j += len;
        }
        int ci = k0 / KHW, kh = (k0 % KHW) / s->KW, kw = k0 % s->KW;
        for (int k = 0; k < kc; k++) {
            float *dk = d + (size_t)k * NR;
            const float *plane = c->x + (size_t)ci * H * W;
            for (int g = 0; g < nseg; g++) {
                float *o = dk + seg_j[g];
                int len = seg_len[g];
                int ih = seg_oh[g] * s->stride_h - s->pad_t + kh * s->dil_h;
                if (ih < 0 || ih >= H) {
                    memset(o, 0, (size_t)len * 4);
                    continue;
                }
                const float *row = plane + (size_t)ih * W;
                int iw0 = seg_ow[g] * s->stride_w - s->pad_l + kw * s->dil_w, sw = s->stride_w;
                /* t in [lo, hi) reads inside the row: 0 <= iw0 + t*sw < W */
                int lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
                int hi = iw0 >= W ? 0 : (W - 1 - iw0) / sw + 1;
                if (hi > len) hi = len;
                if (lo > hi) lo = hi;
                for (int t = 0; t < lo; t++) o[t] = 0.0f;
                if (sw == 1) {
                    memcpy(o + lo, row + iw0 + lo, (size_t)(hi - lo) * 4);
                } else {
                    const float *r = row + iw0;
                    for (int t = lo; t < hi; t++) o[t] = r[t * sw];
                }
                for (int t = hi; t < len; t++) o[t] = 0.0f;
            }
            for (int j = nr; j < NR; j++) dk[j] = 0.0f;
            if (++kw == s->KW) {
                kw = 0;
                if (++kh == s->KH) kh = 0, ci++;
            }
        }
    }
}

size_t conv2d_workspace_size(const dk_conv2d *s) {
    int OH = dk_conv2d_oh(s), OW = dk_conv2d_ow(s);
    if (!OH || !OW) return 0;
    return dk_gemm_core_workspace(s->OC, OH * OW, s->C * s->KH * s->KW);
}

/* y[N, OC, OH, OW] = x[N, C, H, W] (*) w[OC, C, KH, KW] + bias[OC] */
dk_gemm_status conv2d(const dk_conv2d *s, const float *x, const void *w, dk_wtype wt, const float *bias, float *y,
                      void *ws, size_t ws_bytes) {
    int OH = dk_conv2d_oh(s), OW = dk_conv2d_ow(s);
    if (!OH || !OW || dk_gemm_nr() > 64) return DK_GEMM_EARG;
    const int K = s->C * s->KH * s->KW, P = OH * OW;
    for (int n = 0; n < s->N; n++) {
        const float *xn = x + (size_t)n * s->C * s->H * s->W;
        im2col_ctx ctx = {s, xn, OH, OW, dk_gemm_nr()};
        dk_gemm_args g;
        memset(&g, 0, sizeof g);
        g.M = s->OC, g.N = P, g.K = K, g.alpha = 1.0f, g.beta = 0.0f;
        g.A = (dk_operand){w, wt, K, 1};
        if (is_pointwise(s)) {
            g.B = (dk_operand){xn, DK_F32, 1, (ptrdiff_t)s->H * s->W};
        } else {
            g.packb = pack_im2col;
            g.packb_ctx = &ctx;
        }
        g.C = y + (size_t)n * s->OC * P, g.ldc = P;
        g.bias_m = bias;
        dk_gemm_status st = dk_gemm_core(&g, ws, ws_bytes);
        if (st != DK_GEMM_OK) return st;
    }
    return DK_GEMM_OK;
}

void conv2d_ref(const dk_conv2d *s, const float *x, const void *w, dk_wtype wt, const float *bias, float *y) {
    int OH = dk_conv2d_oh(s), OW = dk_conv2d_ow(s);
    for (int n = 0; n < s->N; n++)
        for (int oc = 0; oc < s->OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = bias ? bias[oc] : 0.0;
                    for (int ci = 0; ci < s->C; ci++)
                        for (int kh = 0; kh < s->KH; kh++)
                            for (int kw = 0; kw < s->KW; kw++) {
                                int ih = oh * s->stride_h - s->pad_t + kh * s->dil_h;
                                int iw = ow * s->stride_w - s->pad_l + kw * s->dil_w;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                double xv = x[(((size_t)n * s->C + ci) * s->H + ih) * s->W + iw];
                                double wv = dk_load_w(w, wt, (((size_t)oc * s->C + ci) * s->KH + kh) * s->KW + kw);
                                acc += xv * wv;
                            }
                    y[(((size_t)n * s->OC + oc) * OH + oh) * OW + ow] = (float)acc;
                }
}
