/* dev_conv_winograd.c - experiment 02: 3x3 stride-1 pad-1 conv by Winograd F(2x2, 3x3) (Lavin &
 * Gray 2015: Y = A^T [ (G g G^T) . (B^T d B) ] A over 4x4 input tiles at stride 2), the 16
 * element-wise products batched as 16 GEMMs U[e][OC,C] * V[e][C,tiles] on kernels/cpu/gemm.c.
 * Validated against conv2d_ref on small shapes (incl. odd sizes), then timed beside conv2d
 * (implicit GEMM) on the SD shapes. Effective GFLOP/s counts the direct 2*OC*C*9*H*W.
 * Weight transform is timed inside the call (weights arrive raw, as in the library today).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "conv.h"
#include "gemm.h"

static double ph_tr, ph_gemm, ph_out; /* last call: transforms in, GEMMs, transform out (s) */

typedef struct wg {
    int C, H, W, OC, th, tw, T;
    float *U, *V, *Mb; /* [16][OC][C], [16][C][T], [16][OC][T] */
    void *ws;
    size_t wsb;
} wg;

static void wg_init(wg *p, int C, int H, int W, int OC) {
    p->C = C, p->H = H, p->W = W, p->OC = OC;
    p->th = (H + 1) / 2, p->tw = (W + 1) / 2, p->T = p->th * p->tw;
    p->U = malloc((size_t)16 * OC * C * 4);
    p->V = malloc((size_t)16 * C * p->T * 4);
    p->Mb = malloc((size_t)16 * OC * p->T * 4);
    p->wsb = gemm_batched_workspace_size(OC, p->T, C);
    p->ws = malloc(p->wsb);
}

/* y[OC, H, W] = conv3x3_pad1(x[C, H, W], w[OC, C, 3, 3]) + b */
static void wg_run(wg *p, const float *x, const float *w, const float *b, float *y) {
    const int C = p->C, H = p->H, W = p->W, OC = p->OC, T = p->T;
    double t0 = bench_now();
    /* U = G g G^T, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            const float *g = w + ((size_t)o * C + c) * 9;
            float t[4][3];
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                float u[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
                for (int j = 0; j < 4; j++) p->U[((size_t)(i * 4 + j) * OC + o) * C + c] = u[j];
            }
        }
    /* V = B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        for (int ty = 0; ty < p->th; ty++)
            for (int tx = 0; tx < p->tw; tx++) {
                float d[4][4];
                for (int r = 0; r < 4; r++)
                    for (int s = 0; s < 4; s++) {
                        int iy = 2 * ty - 1 + r, ix = 2 * tx - 1 + s;
                        d[r][s] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x[((size_t)c * H + iy) * W + ix] : 0.0f;
                    }
                float t[4][4];
                for (int s = 0; s < 4; s++) {
                    t[0][s] = d[0][s] - d[2][s];
                    t[1][s] = d[1][s] + d[2][s];
                    t[2][s] = d[2][s] - d[1][s];
                    t[3][s] = d[1][s] - d[3][s];
                }
                int tile = ty * p->tw + tx;
                for (int r = 0; r < 4; r++) {
                    float v[4] = {t[r][0] - t[r][2], t[r][1] + t[r][2], t[r][2] - t[r][1], t[r][1] - t[r][3]};
                    for (int s = 0; s < 4; s++) p->V[((size_t)(r * 4 + s) * C + c) * T + tile] = v[s];
                }
            }
    double t1 = bench_now();
    gemm_batched(0, 0, OC, T, C, 1.0f, p->U, C, (ptrdiff_t)OC * C, p->V, T, (ptrdiff_t)C * T, 0.0f, p->Mb, T,
                 (ptrdiff_t)OC * T, 16, p->ws, p->wsb);
    double t2 = bench_now();
    /* Y = A^T m A, A^T = [1 1 1 0; 0 1 -1 -1] */
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++)
        for (int ty = 0; ty < p->th; ty++)
            for (int tx = 0; tx < p->tw; tx++) {
                int tile = ty * p->tw + tx;
                float m[4][4];
                for (int e = 0; e < 16; e++) m[e / 4][e % 4] = p->Mb[((size_t)e * OC + o) * T + tile];
                float t[2][4];
                for (int s = 0; s < 4; s++) {
                    t[0][s] = m[0][s] + m[1][s] + m[2][s];
                    t[1][s] = m[1][s] - m[2][s] - m[3][s];
                }
                for (int r = 0; r < 2; r++) {
                    float yy[2] = {t[r][0] + t[r][1] + t[r][2], t[r][1] - t[r][2] - t[r][3]};
                    for (int s = 0; s < 2; s++) {
                        int oy = 2 * ty + r, ox = 2 * tx + s;
                        if (oy < H && ox < W) y[((size_t)o * H + oy) * W + ox] = yy[s] + (b ? b[o] : 0.0f);
                    }
                }
            }
    ph_tr = t1 - t0, ph_gemm = t2 - t1, ph_out = bench_now() - t2;
}

static void wg_free(wg *p) { free(p->U), free(p->V), free(p->Mb), free(p->ws); }

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}
static float *rbuf(size_t n, unsigned seed) {
    float *p = malloc(n * 4);
    for (size_t i = 0; i < n; i++) p[i] = frand(&seed);
    return p;
}

static int validate(int C, int H, int W, int OC) {
    float *x = rbuf((size_t)C * H * W, 1), *w = rbuf((size_t)OC * C * 9, 2), *b = rbuf(OC, 3);
    float *y = malloc((size_t)OC * H * W * 4), *r = malloc((size_t)OC * H * W * 4);
    wg p;
    wg_init(&p, C, H, W, OC);
    wg_run(&p, x, w, b, y);
    dk_conv2d s = dk_conv2d_make(1, C, H, W, OC, 3, 1, 1);
    conv2d_ref(&s, x, w, DK_F32, b, r);
    double e = 0, mx = 0;
    for (size_t i = 0; i < (size_t)OC * H * W; i++) e = fmax(e, fabs(y[i] - r[i])), mx = fmax(mx, fabs(r[i]));
    printf("validate winograd F(2,3) C%d %dx%d OC%d: max_abs %.3g (ref max %.3g)\n", C, H, W, OC, e, mx);
    wg_free(&p), free(x), free(w), free(b), free(y), free(r);
    return e < 1e-4 * mx * sqrt(9.0 * C);
}

typedef struct ctx { wg p; dk_conv2d s; float *x, *w, *b, *y; void *ws; size_t wsb; } ctx;
static void f_wg(void *v) { ctx *c = v; wg_run(&c->p, c->x, c->w, c->b, c->y); }
static void f_ig(void *v) { ctx *c = v; conv2d(&c->s, c->x, c->w, DK_F32, c->b, c->y, c->ws, c->wsb); }

static void timeit(int C, int HW) {
    ctx c;
    c.s = dk_conv2d_make(1, C, HW, HW, C, 3, 1, 1);
    c.x = rbuf((size_t)C * HW * HW, 1), c.w = rbuf((size_t)C * C * 9, 2), c.b = rbuf(C, 3);
    c.y = malloc((size_t)C * HW * HW * 4);
    c.wsb = conv2d_workspace_size(&c.s);
    c.ws = malloc(c.wsb);
    wg_init(&c.p, C, HW, HW, C);
    double fl = 2.0 * C * C * 9 * HW * HW;
    double ti = bench_median(f_ig, &c, 3, 0.3), tw = bench_median(f_wg, &c, 3, 0.3);
    printf("conv3x3 %4d@%-3d implicit %8.2f ms %6.1f GF/s | winograd F(2,3) %8.2f ms %6.1f eff GF/s | speedup %.2f"
           " | last call: transforms in %.1f ms, 16 GEMMs %.1f ms, out %.1f ms\n",
           C, HW, ti * 1e3, fl / ti / 1e9, tw * 1e3, fl / tw / 1e9, ti / tw, ph_tr * 1e3, ph_gemm * 1e3, ph_out * 1e3);
    wg_free(&c.p), free(c.x), free(c.w), free(c.b), free(c.y), free(c.ws);
}

int main(void) {
    if (!validate(13, 7, 5, 17) || !validate(64, 16, 16, 32) || !validate(320, 9, 9, 40)) {
        printf("VALIDATION FAILED\n");
        return 1;
    }
    timeit(320, 64);
    timeit(640, 32);
    timeit(1280, 16);
    timeit(1280, 8);
    timeit(512, 64);
    return 0;
}
