/* cmd_generate.c - `diffaug generate`: txt2img, img2img (--init) or an InstructPix2Pix edit (--edit)
 * with one SD 1.x / SDXL model (CosXL: EDM v-prediction), written as PNG with the generation
 * parameters in text chunks.
 *
 * The command line mirrors what diffusers' pipelines take (prompt, negative_prompt, strength,
 * guidance_scale, image_guidance_scale, num_inference_steps, a seeded generator); the work is
 * engine/pipeline.c. A progress line (step, it/s, ETA) goes to stderr when it is a terminal;
 * Ctrl-C stops at the next step and nothing is written (exit 130).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "image.h"
#include "pipeline.h"
#include "util.h"

#define CLI_INTERRUPTED 130 /* 128 + SIGINT, what shells report for a Ctrl-C'd command */

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug generate --model PATH --prompt TEXT -o OUT.png [options]\n"
            "  --negative TEXT        negative prompt (default none: SD 1.x encodes \"\", SDXL uses zero\n"
            "                         embeddings as diffusers' negative_prompt=None does)\n"
            "  --init IMAGE           img2img from IMAGE, with --strength S (0..1, default 0.8)\n"
            "  --edit IMAGE           InstructPix2Pix edit of IMAGE (needs an 8-channel model),\n"
            "                         with --image-guidance G (default 1.5)\n"
            "  --sampler NAME         ddim euler euler_a dpmpp_2m dpmpp_2m_karras edm_euler edm_euler_karras\n"
            "                         (default euler_a; edm_euler for an EDM model such as CosXL)\n"
            "  --vae PATH             a VAE replacing the model's (diffusers vae/ folder or a VAE .safetensors,\n"
            "                         e.g. the fp16-fixed SDXL VAE)\n"
            "  --edm / --no-edm       sample as an EDM model (CosXL) even without its marker tensors / ignore them\n"
            "  --prediction eps|v     override the prediction type (default: the checkpoint's)\n"
            "  --sigma-min S --sigma-max S --sigma-data S\n"
            "                         EDM sigma range and sigma_data (default: the checkpoint's, else CosXL's\n"
            "                         0.002, 120, 1)\n"
            "  --original-size H,W --crop TOP,LEFT --target-size H,W\n"
            "                         SDXL micro-conditioning (default: the output size, crop 0,0)\n"
            "  --steps N              sampler steps (default 20)\n"
            "  --guidance G           text guidance scale (default 7.5; <= 1 disables CFG)\n"
            "  --eta E                DDIM eta (default 0)\n"
            "  --seed S               random seed (default 0)\n"
            "  --rng philox|torch     philox: per-image counter-based noise (default);\n"
            "                         torch: torch.manual_seed(S) draws in diffusers' order\n"
            "  --batch N              N images in one batched run: OUT-0.png .. OUT-<N-1>.png\n"
            "  --width W --height H   output size, multiples of 8 (default 512, or the source image's\n"
            "                         size rounded down to a multiple of 8)\n"
            "  --tokenizer DIR        vocab.json + merges.txt for a model file without tokenizer/\n"
            "  --threads N            CPU threads (default: OpenMP's)\n"
            "  --backend NAME         compute backend: cpu (default), cuda, cuda:N, auto (CUDA if a GPU\n"
            "                         answers, else cpu), guard (tests); cuda without a GPU is an error\n"
            "  -q, --quiet            no progress line\n"
            "  --timings              print each step's seconds and the total (for benchmarks)\n"
            "exit: 0 done, 1 failed (model, image, I/O), 2 bad command line, 130 interrupted (nothing written)\n");
}

static bool parse_sampler(const char *v, da_gen_params *p) {
    static const struct {
        const char *name;
        da_sampler_kind k;
        bool karras;
    } T[] = {{"ddim", DA_SAMPLER_DDIM, false},         {"euler", DA_SAMPLER_EULER, false},
             {"euler_a", DA_SAMPLER_EULER_A, false},   {"dpmpp_2m", DA_SAMPLER_DPMPP_2M, false},
             {"dpmpp_2m_karras", DA_SAMPLER_DPMPP_2M, true}, {"edm_euler", DA_SAMPLER_EDM_EULER, false},
             {"edm_euler_karras", DA_SAMPLER_EDM_EULER, true}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (!strcmp(v, T[i].name)) {
            p->sampler = T[i].k;
            p->karras = T[i].karras;
            return true;
        }
    return false;
}

typedef struct progress {
    bool show, timings;
    double t0, last;
    int last_len;
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static da_status step_hook(void *ctx, int step, int n_steps, const float *latents, size_t n) {
    progress *pg = ctx;
    if (g_interrupted) return DA_ERR_INTERRUPTED;
    if (pg->timings) {
        double t = now_s();
        fprintf(stderr, "step %d/%d: %.3f s\n", step + 1, n_steps, t - pg->last);
        pg->last = t;
    }
    if (pg->show) {
        double el = now_s() - pg->t0, rate = (step + 1) / (el > 0 ? el : 1e-9);
        double eta = (n_steps - step - 1) / rate;
        int len = fprintf(stderr, "\rstep %d/%d  %.2f it/s  ETA %d:%02d", step + 1, n_steps, rate, (int)eta / 60,
                          (int)eta % 60);
        if (len < pg->last_len) fprintf(stderr, "%*s", pg->last_len - len, "");
        pg->last_len = len;
        if (step + 1 == n_steps) fputc('\n', stderr);
        fflush(stderr);
    }
    return DA_OK;
}

/* "A,B" with both in [lo, hi] (a size or a crop pair). */
static bool parse_pair(const char *opt, const char *v, int lo, int hi, int out[2]) {
    char *e1, *e2;
    long a = strtol(v, &e1, 10);
    if (e1 == v || *e1 != ',') goto bad;
    long b = strtol(e1 + 1, &e2, 10);
    if (e2 == e1 + 1 || *e2 || a < lo || a > hi || b < lo || b > hi) goto bad;
    out[0] = (int)a, out[1] = (int)b;
    return true;
bad:
    fprintf(stderr, "diffaug generate: %s wants two integers A,B in [%d, %d], not '%s'\n", opt, lo, hi, v);
    return false;
}

/* OUT.png -> OUT-i.png (the index before the extension). */
static char *indexed_path(const char *out, int i) {
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (!dot || (slash && dot < slash)) dot = out + strlen(out);
    char *s = NULL;
    if (asprintf(&s, "%.*s-%d%s", (int)(dot - out), out, i, dot) < 0) return NULL;
    return s;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *negative = NULL, *init = NULL, *edit = NULL, *out = NULL;
    const char *tokenizer = NULL, *backend = "cpu", *vae = NULL;
    bool sampler_given = false;
    da_gen_params p;
    da_gen_params_init(&p);
    da_gen_item base;
    da_gen_item_init(&base);
    int64_t steps = p.steps, batch = 1, width = 0, height = 0, threads = 0, seed = 0;
    double strength = p.strength, guidance = base.guidance, image_guidance = base.image_guidance, eta = 0;
    bool quiet = false, timings = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
            continue;
        }
        if (!strcmp(a, "--timings")) {
            timings = true;
            continue;
        }
        if (!strcmp(a, "--edm") || !strcmp(a, "--no-edm")) {
            p.edm = a[2] == 'e' ? DA_EDM_ON : DA_EDM_OFF;
            continue;
        }
        if (!v) {
            fprintf(stderr, "diffaug generate: %s needs a value (or is unknown)\n", a);
            return CLI_USAGE;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--negative")) negative = v;
        else if (!strcmp(a, "--init")) init = v;
        else if (!strcmp(a, "--edit")) edit = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--tokenizer")) tokenizer = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--vae")) vae = v;
        else if (!strcmp(a, "--sampler")) {
            if (!parse_sampler(v, &p)) {
                fprintf(stderr, "diffaug generate: unknown sampler '%s' (ddim euler euler_a dpmpp_2m dpmpp_2m_karras "
                        "edm_euler edm_euler_karras)\n", v);
                return CLI_USAGE;
            }
            sampler_given = true;
        } else if (!strcmp(a, "--prediction")) {
            if (!strcmp(v, "eps") || !strcmp(v, "epsilon")) p.prediction = DA_PREDICT_EPSILON;
            else if (!strcmp(v, "v") || !strcmp(v, "v_prediction")) p.prediction = DA_PREDICT_V;
            else {
                fprintf(stderr, "diffaug generate: --prediction must be eps or v, not '%s'\n", v);
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--sigma-min") || !strcmp(a, "--sigma-max") || !strcmp(a, "--sigma-data")) {
            double x;
            if (!cli_parse_float("generate", a, v, 1e-9, 1e5, &x)) return CLI_USAGE;
            if (!strcmp(a, "--sigma-min")) p.sigma_min = x;
            else if (!strcmp(a, "--sigma-max")) p.sigma_max = x;
            else p.sigma_data = x;
        } else if (!strcmp(a, "--original-size")) {
            if (!parse_pair(a, v, 8, 1 << 20, p.original_size)) return CLI_USAGE;
        } else if (!strcmp(a, "--target-size")) {
            if (!parse_pair(a, v, 8, 1 << 20, p.target_size)) return CLI_USAGE;
        } else if (!strcmp(a, "--crop")) {
            if (!parse_pair(a, v, 0, 1 << 20, p.crop_top_left)) return CLI_USAGE;
        } else if (!strcmp(a, "--rng")) {
            if (!strcmp(v, "philox")) p.rng = DA_RNG_PHILOX;
            else if (!strcmp(v, "torch")) p.rng = DA_RNG_TORCH;
            else {
                fprintf(stderr, "diffaug generate: --rng must be philox or torch, not '%s'\n", v);
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--steps")) {
            if (!cli_parse_int("generate", a, v, 1, 10000, &steps)) return CLI_USAGE;
        } else if (!strcmp(a, "--batch")) {
            if (!cli_parse_int("generate", a, v, 1, 4096, &batch)) return CLI_USAGE;
        } else if (!strcmp(a, "--width")) {
            if (!cli_parse_int("generate", a, v, 8, 16384, &width)) return CLI_USAGE;
        } else if (!strcmp(a, "--height")) {
            if (!cli_parse_int("generate", a, v, 8, 16384, &height)) return CLI_USAGE;
        } else if (!strcmp(a, "--threads")) {
            if (!cli_parse_int("generate", a, v, 1, 4096, &threads)) return CLI_USAGE;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_int("generate", a, v, 0, INT64_MAX, &seed)) return CLI_USAGE;
        } else if (!strcmp(a, "--strength")) {
            if (!cli_parse_float("generate", a, v, 0, 1, &strength)) return CLI_USAGE;
        } else if (!strcmp(a, "--guidance")) {
            if (!cli_parse_float("generate", a, v, -1000, 1000, &guidance)) return CLI_USAGE;
        } else if (!strcmp(a, "--image-guidance")) {
            if (!cli_parse_float("generate", a, v, -1000, 1000, &image_guidance)) return CLI_USAGE;
        } else if (!strcmp(a, "--eta")) {
            if (!cli_parse_float("generate", a, v, 0, 1000, &eta)) return CLI_USAGE;
        } else {
            fprintf(stderr, "diffaug generate: unknown option '%s'\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
        i++;
    }
    if (!model || !prompt || !out) {
        fprintf(stderr, "diffaug generate: --model, --prompt and -o are required\n");
        usage(stderr);
        return CLI_USAGE;
    }
    if (init && edit) {
        fprintf(stderr, "diffaug generate: --init (img2img) and --edit (InstructPix2Pix) exclude each other\n");
        return CLI_USAGE;
    }
    if ((width % 8) || (height % 8)) {
        fprintf(stderr, "diffaug generate: --width and --height must be multiples of 8\n");
        return CLI_USAGE;
    }

    da_error err;
    da_image src = {0};
    const char *src_path = init ? init : edit;
    if (src_path && da_image_load(src_path, &src, &err)) return cli_fail("generate", &err);
    p.mode = init ? DA_GEN_IMG2IMG : edit ? DA_GEN_EDIT : DA_GEN_TXT2IMG;
    p.steps = (int)steps;
    p.strength = (float)strength;
    p.eta = (float)eta;
    /* like diffusers' image processor: the source's size rounded down to a multiple of 8 */
    p.width = width ? (int)width : src_path ? src.w / 8 * 8 : 512;
    p.height = height ? (int)height : src_path ? src.h / 8 * 8 : 512;
    if (p.width < 8 || p.height < 8) {
        da_err_set(&err, DA_ERR_IMAGE, "%s: %dx%d is smaller than 8x8", src_path, src.w, src.h);
        da_image_free(&src);
        return cli_fail("generate", &err);
    }

    da_sd_options o;
    da_sd_options_init(&o);
    o.model = model;
    o.tokenizer = tokenizer;
    o.vae = vae;
    o.backend = backend;
    o.threads = (int)threads;
    da_sd *sd = NULL;
    if (da_sd_open(&o, &sd, &err)) {
        da_image_free(&src);
        return cli_fail("generate", &err);
    }

    /* an EDM model (CosXL) samples with EDM Euler: the default when no sampler was named */
    if (!sampler_given && (p.edm == DA_EDM_ON || (p.edm == DA_EDM_AUTO && da_sd_model_sampling(sd)->edm)))
        p.sampler = DA_SAMPLER_EDM_EULER;
    int n = (int)batch, rc = CLI_FAIL;
    da_gen_item *items = calloc((size_t)n, sizeof *items);
    da_image *imgs = calloc((size_t)n, sizeof *imgs);
    if (!items || !imgs) {
        da_err_set(&err, DA_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        items[i] = base;
        items[i].prompt = prompt;
        items[i].negative = negative;
        items[i].guidance = (float)guidance;
        items[i].image_guidance = (float)image_guidance;
        items[i].init = src_path ? &src : NULL;
        items[i].seed = (uint64_t)seed;
        items[i].image_id = (uint64_t)i; /* sample index: image i of a batch is image i of any batch */
    }
    progress pg = {.show = !quiet && !timings && isatty(2), .timings = timings, .t0 = now_s()};
    pg.last = pg.t0;
    p.step_hook = step_hook;
    p.step_ctx = &pg;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    da_status st = da_sd_generate(sd, &p, items, n, imgs, NULL, &err);
    if (pg.show && st) fputc('\n', stderr);
    if (timings && !st) fprintf(stderr, "generate: %.3f s in all (text encoding + steps + decoding)\n", now_s() - pg.t0);
    if (g_interrupted) {
        if (!st) for (int i = 0; i < n; i++) da_image_free(&imgs[i]);
        fprintf(stderr, "diffaug generate: interrupted; nothing written\n");
        rc = CLI_INTERRUPTED;
        goto restore;
    }
    if (st) goto restore;
    for (int i = 0; i < n && !g_interrupted; i++) {
        char *path = n == 1 ? strdup(out) : indexed_path(out, i);
        if (!path) {
            da_err_set(&err, DA_ERR_NOMEM, "out of memory");
            goto restore;
        }
        const char **keys, **vals;
        int nk = da_gen_text_chunks(sd, &p, &items[i], &keys, &vals);
        st = da_image_save_png(path, &imgs[i], keys, vals, (size_t)nk, &err);
        if (!st && !quiet) printf("%s\n", path);
        free(path);
        if (st) goto restore;
    }
    rc = CLI_OK;
restore:
    sigaction(SIGINT, &old, NULL);
done:
    if (rc == CLI_FAIL) cli_fail("generate", &err);
    for (int i = 0; i < n && imgs; i++) da_image_free(&imgs[i]);
    free(imgs);
    free(items);
    da_sd_close(sd);
    da_image_free(&src);
    return rc;
}
