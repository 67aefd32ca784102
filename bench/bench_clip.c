/* bench_clip.c - end-to-end CLIP forwards (engine/clip.h) on a model folder: the text tower on
 * ids [B, L] and the vision tower on pixel_values [B, 3, S, S], median wall time of repeated runs
 * with the weights bound and the arena planned once (what a recipe sees per call).
 *
 *   bench_clip MODEL [--text B] [--vision B] [--reps N] [--component text_encoder|text_encoder_2] [--sdxl]
 *
 * --sdxl asks for what SDXL's encode_prompt takes: the penultimate hidden state (the forward stops
 * after layer N - 1 unless pooled outputs are wanted) and, where the tower has a projection
 * (text_encoder_2), text_embeds (which runs the last layer too).
 *
 * bench/compare_clip.py makes full-size random-weight models, runs this and transformers on the same
 * machine and threads, and prints both. Without MODEL (as bench/run.sh calls it) it says so and
 * exits 0. Output: one line per tower with the activation arena and backend scratch sizes and the
 * median ("clip_text B=2 L=77 ... arena_MB 4.26 scratch_MB 1.50 median_ms 123.4").
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "clip.h"

typedef struct text_ctx {
    const da_clip_text *t;
    da_backend *be;
    da_arena *a;
    const int32_t *ids;
    int B, L;
    da_clip_text_out out;
} text_ctx;

static void run_text(void *p) {
    text_ctx *c = p;
    da_error e;
    if (da_clip_text_forward(c->t, c->be, c->a, c->ids, c->B, c->L, NULL, &c->out, &e)) {
        fprintf(stderr, "bench_clip: %s\n", e.msg);
        exit(1);
    }
}

typedef struct vision_ctx {
    const da_clip_vision *v;
    da_backend *be;
    da_arena *a;
    const float *px;
    int B;
    da_clip_vision_out out;
} vision_ctx;

static void run_vision(void *p) {
    vision_ctx *c = p;
    da_error e;
    if (da_clip_vision_forward(c->v, c->be, c->a, c->px, c->B, &c->out, &e)) {
        fprintf(stderr, "bench_clip: %s\n", e.msg);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        printf("bench_clip: needs a CLIP model folder (bench/compare_clip.py makes one); skipped\n");
        return 0;
    }
    int text_b = 2, vision_b = 8, reps = 5;
    bool sdxl = false;
    da_component comp = DA_COMP_COUNT;
    for (int i = 2; i < argc; i += 2) {
        if (!strcmp(argv[i], "--sdxl")) {
            sdxl = true;
            i--;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_clip: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--component")) {
            if (!strcmp(argv[i + 1], "text_encoder")) comp = DA_COMP_TEXT_ENCODER;
            else if (!strcmp(argv[i + 1], "text_encoder_2")) comp = DA_COMP_TEXT_ENCODER_2;
            else {
                fprintf(stderr, "bench_clip: --component text_encoder or text_encoder_2, not %s\n", argv[i + 1]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--text")) text_b = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--vision")) vision_b = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_clip: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    da_error e;
    da_model_file *m;
    if (da_model_open(argv[1], &m, &e)) {
        fprintf(stderr, "bench_clip: %s\n", e.msg);
        return 1;
    }
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    if (text_b > 0) {
        da_clip_text *t;
        if (da_clip_text_load(m, comp, &t, &e)) {
            fprintf(stderr, "bench_clip: %s\n", e.msg);
            return 1;
        }
        int L = da_clip_text_cfg(t)->max_positions, D = da_clip_text_cfg(t)->hidden_size;
        int32_t *ids = malloc(sizeof(int32_t) * text_b * L);
        /* a short prompt and padding, as the tokenizer gives: <|startoftext|> ... <|endoftext|>... */
        for (int i = 0; i < text_b * L; i++) ids[i] = i % L == 0 ? 49406 : i % L < 8 ? 320 + i % L : 49407;
        int P = da_clip_text_projection_dim(t);
        float *hid = malloc(sizeof(float) * text_b * L * D), *pool = malloc(sizeof(float) * text_b * D);
        float *emb = P ? malloc(sizeof(float) * text_b * P) : NULL;
        text_ctx c = {t, be, &a, ids, text_b, L, {.last_hidden_state = hid, .pooler_output = pool}};
        if (sdxl) c.out = (da_clip_text_out){.penultimate = hid, .text_embeds = emb};
        double s = bench_median(run_text, &c, reps, 2.0);
        printf("clip_text%s B=%d L=%d D=%d layers=%d arena_MB %.2f scratch_MB %.2f median_ms %.1f\n",
               sdxl ? (P ? " sdxl penultimate+text_embeds" : " sdxl penultimate") : "", text_b, L, D,
               da_clip_text_cfg(t)->num_layers, a.cap / 1048576.0, be->ws_bytes / 1048576.0, 1e3 * s);
        free(ids), free(hid), free(pool), free(emb);
        da_clip_text_free(t);
    }
    if (vision_b > 0 && da_model_has(m, DA_COMP_CLIP)) {
        da_clip_vision *v;
        if (da_clip_vision_load(m, &v, &e)) {
            fprintf(stderr, "bench_clip: %s\n", e.msg);
            return 1;
        }
        const da_clip_vision_config *vc = da_clip_vision_cfg(v);
        size_t n = (size_t)vision_b * 3 * vc->image_size * vc->image_size;
        float *px = malloc(n * sizeof *px);
        for (size_t i = 0; i < n; i++) px[i] = (float)((i * 2654435761u) >> 22) / 512.0f - 2.0f;
        int T = da_clip_vision_tokens(v), P = da_clip_vision_projection_dim(v);
        float *hid = malloc(sizeof(float) * vision_b * T * vc->hidden_size), *emb = malloc(sizeof(float) * vision_b * P);
        vision_ctx c = {v, be, &a, px, vision_b, {hid, NULL, emb}};
        double s = bench_median(run_vision, &c, reps, 2.0);
        printf("clip_vision B=%d S=%d patch=%d D=%d layers=%d arena_MB %.2f scratch_MB %.2f median_ms %.1f\n",
               vision_b, vc->image_size, vc->patch_size, vc->hidden_size, vc->num_layers, a.cap / 1048576.0,
               be->ws_bytes / 1048576.0, 1e3 * s);
        free(px), free(hid), free(emb);
        da_clip_vision_free(v);
    }
    da_arena_free(&a);
    da_backend_free(be);
    da_model_close(m);
    return 0;
}
