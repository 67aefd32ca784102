/* cmd_augment.c - `diffaug augment`: run DiffuseMix, DiffCoRe-Mix or SGID over an ImageFolder dataset
 * (engine/augment/augment.h; shared/METHODS.md; docs/RECIPES.md). Parses the options (every
 * constant of METHODS.md is a flag with its default), prints the library's messages and the
 * progress (a refreshed line on a terminal, a line a minute otherwise), and turns SIGINT/SIGTERM
 * into a clean stop after the current step. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "augment/augment.h"
#include "augment/manifest.h"
#include "cli.h"
#include "schedule.h"
#include "util.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug augment --recipe diffusemix|diffcoremix|sgid --model PATH --input DATASET --output OUT\n"
            "                       [--clip PATH] [--captions FILE] [--blip PATH] [--prompts LIST|FILE] [--fractals DIR]\n"
            "                       [--seed S] [--batch N] [--shard I/N] [--threads N] [--backend NAME]\n"
            "                       [recipe flags...]\n"
            "DATASET is an image folder (one sub-folder per class); OUT mirrors its classes and gets\n"
            "manifest.jsonl + summary.json (manifest-I-of-N.jsonl for --shard I/N). Re-running the same command\n"
            "resumes. The input is never written.\n"
            "common:\n"
            "  --model PATH         InstructPix2Pix (diffusemix) or SD 1.x / SDXL (diffcoremix: CosXL, sgid):\n"
            "                       file or diffusers folder\n"
            "  --vae PATH           a VAE replacing the model's (diffcoremix's code: the fp16-fixed SDXL VAE)\n"
            "  --tokenizer DIR      vocab.json + merges.txt for a single-file model without one\n"
            "  --clip PATH          transformers CLIPModel folder (ViT-B/32): needed by diffcoremix and sgid\n"
            "  --seed S             global seed (default 0)\n"
            "  --batch N            images per generation call (default 1); outputs do not depend on it\n"
            "  --shard I/N          take work units u with u mod N == I (0-based)\n"
            "  --threads N          CPU threads (default: OpenMP's)\n"
            "  --backend NAME       cpu (default), cuda, cuda:N, auto or guard (recorded in the manifest and\n"
            "                       summary.json); cuda without a GPU is an error, never a CPU run\n"
            "  --steps N            sampler steps (diffusemix 100, others 50)\n"
            "  --size PX            square generation size (diffusemix 256, others 512)\n"
            "  --sampler NAME       ddim euler euler_a dpmpp_2m edm_euler (diffusemix euler_a, sgid ddim,\n"
            "                       diffcoremix edm_euler on an EDM model such as CosXL, else ddim)\n"
            "  --jpeg               write JPEG (quality 95) instead of PNG\n"
            "  --intermediates      also write generated/ (diffusemix: concatenated/, fractal/; sgid: source/)\n"
            "  --sheet ROWS         write sheet.png: ROWS rows of original | generated | hybrid | final\n"
            "  --no-verify          do not decode every input during the scan\n"
            "  -q, --quiet          no progress\n"
            "diffusemix (code defaults):\n"
            "  --prompts LIST|FILE  comma-separated prompts or a file, one a line (default: the 10 of the code)\n"
            "  --fractals DIR       blend images from DIR instead of the procedural set\n"
            "  --n-fractals N       size of the procedural set (default 64)\n"
            "  --text-guidance G    4.0    --image-guidance G  1.5    --lambda L  0.20\n"
            "  --binary-mask        hard edge between halves (paper)   --paper-halves  any of the 4 half orders\n"
            "  --round-blend        round instead of truncating the fractal blend\n"
            "  --min-mean X 5  --max-mean X 250  --min-var X 1     degenerate-output thresholds (luminance)\n"
            "diffcoremix:\n"
            "  --guidance G 12   --budget F 0.3 (attempts = floor(F x class size))   --filter-threshold T 0.6\n"
            "  --ref-first          filter reference = the class's first image (code) instead of the centroid\n"
            "  --noun WORD          {noun} of the templates (default \"object\")\n"
            "  --templates FILE     templates, one a line ({label}, {noun}); --negative TEXT\n"
            "  --mix random|pixel|patch|none   (default random)   --patch-grid P 4\n"
            "  --lam-lo 0.5 --lam-hi 1.0 (pixel)   --r-lo 0.2 --r-hi 0.5 (patch)\n"
            "sgid:\n"
            "  --captions FILE      path<TAB>caption lines (path relative to DATASET); overrides --blip\n"
            "  --blip PATH          caption each image with this BLIP captioner (cached in OUT/captions/);\n"
            "                       --blip-beams N 1   --blip-max-tokens N 30; neither: label only\n"
            "  --strength R 0.5   --samples N 1   --w-min 3 --w-max 12 --s-lo 0.20 --s-hi 0.35\n"
            "  --prompt-template T  (default \"{label}, {caption}\")\n"
            "exit: 0 done, 1 failed (bad input before any work, write error), 2 bad command line, 130 interrupted\n");
}

typedef struct prog {
    bool quiet, tty;
    double last;
    bool line_open;
} prog;

static void on_msg(void *ctx, da_msg_level level, const char *text) {
    prog *p = ctx;
    if (p->line_open) fputc('\n', stderr), p->line_open = false;
    fprintf(stderr, "diffaug augment: %s%s\n", level == DA_MSG_WARN ? "warning: " : "", text);
}

static void on_progress(void *ctx, uint64_t done, uint64_t total, uint64_t kept, double elapsed) {
    prog *p = ctx;
    if (p->quiet) return;
    char line[160];
    da_progress_format(done, total, elapsed, line, sizeof line);
    if (p->tty) {
        fprintf(stderr, "\r%s, %llu kept   ", line, (unsigned long long)kept);
        p->line_open = true;
        if (done == total) fputc('\n', stderr), p->line_open = false;
        fflush(stderr);
    } else if (elapsed - p->last >= 60.0 || done == total) {
        fprintf(stderr, "diffaug augment: %s, %llu kept\n", line, (unsigned long long)kept);
        p->last = elapsed;
    }
}

int cmd_augment(int argc, char **argv) {
    const char *recipe_s = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CLI_OK;
        }
        if (!strcmp(argv[i], "--recipe") && i + 1 < argc) recipe_s = argv[i + 1];
    }
    da_error err;
    da_err_clear(&err);
    da_recipe recipe;
    if (!recipe_s) {
        fprintf(stderr, "diffaug augment: --recipe is required (diffusemix, diffcoremix, sgid)\n");
        usage(stderr);
        return CLI_USAGE;
    }
    if (da_recipe_parse(recipe_s, &recipe, &err)) {
        fprintf(stderr, "diffaug augment: %s\n", err.msg);
        return CLI_USAGE;
    }
    da_augment_opts o;
    da_augment_opts_init(&o, recipe);
    prog pg = {.tty = isatty(2) != 0};
    const char *cmd = "augment";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t iv;
        double dv;
#define STR(flag, field)                                                                                       \
    else if (!strcmp(a, flag)) {                                                                               \
        if (!v) {                                                                                              \
            fprintf(stderr, "diffaug augment: %s needs a value\n", a);                                       \
            return CLI_USAGE;                                                                                  \
        }                                                                                                      \
        field = v;                                                                                             \
        i++;                                                                                                   \
    }
#define INT(flag, field, lo, hi)                                                                               \
    else if (!strcmp(a, flag)) {                                                                               \
        if (!cli_parse_int(cmd, a, v, lo, hi, &iv)) return CLI_USAGE;                                          \
        field = iv;                                                                                            \
        i++;                                                                                                   \
    }
#define DBL(flag, field, lo, hi)                                                                               \
    else if (!strcmp(a, flag)) {                                                                               \
        if (!cli_parse_float(cmd, a, v, lo, hi, &dv)) return CLI_USAGE;                                        \
        field = dv;                                                                                            \
        i++;                                                                                                   \
    }
#define FLAG(flag, field) else if (!strcmp(a, flag)) field = true;
        if (!strcmp(a, "--recipe")) i++;
        STR("--model", o.model)
        STR("--tokenizer", o.tokenizer)
        STR("--vae", o.vae)
        STR("--clip", o.clip)
        STR("--input", o.input)
        STR("--output", o.output)
        STR("-o", o.output)
        STR("--captions", o.captions)
        STR("--blip", o.blip)
        INT("--blip-beams", o.blip_beams, 1, 64)
        INT("--blip-max-tokens", o.blip_max_tokens, 1, 500)
        STR("--prompts", o.prompts)
        STR("--fractals", o.fractals)
        STR("--templates", o.templates)
        STR("--negative", o.negative)
        STR("--noun", o.noun)
        STR("--prompt-template", o.prompt_template)
        STR("--backend", o.backend)
        INT("--seed", o.seed, 0, INT64_MAX)
        INT("--batch", o.batch, 1, 1024)
        INT("--threads", o.threads, 1, 4096)
        INT("--steps", o.steps, 1, 1000)
        INT("--size", o.size, 8, 4096)
        INT("--sheet", o.sheet_rows, 0, 256)
        INT("--n-fractals", o.n_fractals, 1, 100000)
        INT("--patch-grid", o.patch_grid, 1, 64)
        INT("--samples", o.samples, 1, 10000)
        DBL("--text-guidance", o.text_guidance, 0, 1000)
        DBL("--image-guidance", o.image_guidance, 0, 1000)
        DBL("--lambda", o.lambda, 0, 1)
        DBL("--min-mean", o.degenerate.min_mean, 0, 255)
        DBL("--max-mean", o.degenerate.max_mean, 0, 256)
        DBL("--min-var", o.degenerate.min_var, 0, 1e9)
        DBL("--guidance", o.guidance, 0, 1000)
        DBL("--budget", o.budget, 0, 1000)
        DBL("--filter-threshold", o.filter_threshold, -2, 2)
        DBL("--lam-lo", o.lam_lo, 0, 1)
        DBL("--lam-hi", o.lam_hi, 0, 1)
        DBL("--r-lo", o.r_lo, 0, 1)
        DBL("--r-hi", o.r_hi, 0, 1)
        DBL("--strength", o.strength, 0, 1)
        DBL("--w-min", o.w_min, 0, 1000)
        DBL("--w-max", o.w_max, 0, 1000)
        DBL("--s-lo", o.s_lo, -1, 1)
        DBL("--s-hi", o.s_hi, -1, 1)
        FLAG("--jpeg", o.jpeg)
        FLAG("--intermediates", o.intermediates)
        FLAG("--binary-mask", o.binary_mask)
        FLAG("--paper-halves", o.paper_halves)
        FLAG("--round-blend", o.round_blend)
        FLAG("--ref-first", o.ref_first)
        FLAG("-q", pg.quiet)
        FLAG("--quiet", pg.quiet)
        else if (!strcmp(a, "--no-verify")) o.verify = false;
        else if (!strcmp(a, "--shard")) {
            if (!v || da_shard_parse(v, &o.shard, &err)) {
                fprintf(stderr, "diffaug augment: --shard: %s\n", v ? err.msg : "needs I/N");
                return CLI_USAGE;
            }
            i++;
        } else if (!strcmp(a, "--sampler")) {
            if (!v || da_aug_sampler_parse(v, &o.sampler, &err)) {
                fprintf(stderr, "diffaug augment: --sampler: %s\n", v ? err.msg : "needs a name");
                return CLI_USAGE;
            }
            i++;
        } else if (!strcmp(a, "--mix")) {
            static const char *const names[] = {"random", "pixel", "patch", "none"};
            int k = 0;
            while (k < 4 && !(v && !strcmp(v, names[k]))) k++;
            if (k == 4) {
                fprintf(stderr, "diffaug augment: --mix must be random, pixel, patch or none\n");
                return CLI_USAGE;
            }
            o.mix = (da_dcm_mix)k;
            i++;
        } else {
            fprintf(stderr, "diffaug augment: unknown argument '%s' (diffaug augment --help)\n", a);
            return CLI_USAGE;
        }
#undef STR
#undef INT
#undef DBL
#undef FLAG
    }
    if (!o.model || !o.input || !o.output) {
        fprintf(stderr, "diffaug augment: --model, --input and --output are required\n");
        return CLI_USAGE;
    }
    o.on_msg = on_msg;
    o.on_progress = on_progress;
    o.cb_ctx = &pg;
    o.stop = &g_stop;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    da_augment_result res;
    da_status st = da_augment_run(&o, &res, &err);
    if (pg.line_open) fputc('\n', stderr);
    if (st == DA_ERR_INTERRUPTED) {
        fprintf(stderr, "diffaug augment: interrupted after %llu units; every finished output is kept, run the same "
                        "command again to resume\n",
                (unsigned long long)res.done);
        return 130;
    }
    if (st) {
        if (res.done || res.skipped)
            fprintf(stderr, "diffaug augment: stopped after %llu units this run; the %llu finished outputs are intact\n",
                    (unsigned long long)res.done, (unsigned long long)(res.kept));
        return cli_fail("augment", &err);
    }
    fprintf(stderr,
            "diffaug augment: %s: %llu units this run (%llu kept, %llu dropped), %llu already done, %llu input "
            "problems, %.1f s (%.2f units/s)\n",
            da_recipe_name(recipe), (unsigned long long)res.done, (unsigned long long)res.kept,
            (unsigned long long)res.dropped, (unsigned long long)res.skipped, (unsigned long long)res.problems,
            res.wall_s, res.wall_s > 0 ? (double)res.done / res.wall_s : 0.0);
    printf("outputs:  %s\nmanifest: %s\nsummary:  %s\n", o.output, res.manifest, res.summary);
    if (res.sheet[0]) printf("sheet:    %s\n", res.sheet);
    return CLI_OK;
}
