/* cmd_caption.c - `diffaug caption`: BLIP captions for every image of an ImageFolder dataset, written
 * as "<class>/<file><TAB><caption>" lines (the format `diffaug augment --recipe sgid --captions`
 * reads). The TSV is written to a temporary name and renamed when complete; an image that cannot be
 * read is reported on stderr and skipped, and the run goes on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/dataset.h"
#include "blip.h"
#include "cli.h"
#include "util.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug caption --model BLIP --input DATASET -o CAPTIONS.tsv [options]\n"
            "  --model PATH              a BlipForConditionalGeneration folder (config.json + model.safetensors)\n"
            "  --input DIR               an ImageFolder dataset (one sub-folder per class)\n"
            "  -o, --output FILE         the TSV to write: <class>/<file><TAB><caption> per image\n"
            "  --tokenizer DIR           folder with vocab.txt (default: the model folder)\n"
            "  --prefix TEXT             conditional captioning: the caption continues TEXT (\"a picture of\")\n"
            "  --beams N                 beam search width (default 1: greedy)\n"
            "  --max-tokens N            new tokens at most, eos included (default 30)\n"
            "  --min-tokens N            no eos before N new tokens (default 0)\n"
            "  --repetition-penalty X    transformers' repetition_penalty (default 1: off)\n"
            "  --length-penalty X        beam search length_penalty (default 1)\n"
            "  --batch N                 images per forward (default 8)\n"
            "  --backend NAME            cpu (default), cuda, cuda:N, auto, guard\n");
}

/* a caption on one TSV line: tabs and line breaks become spaces */
static void tsv_clean(char *s) {
    for (; *s; s++)
        if (*s == '\t' || *s == '\n' || *s == '\r') *s = ' ';
}

int cmd_caption(int argc, char **argv) {
    const char *model = NULL, *input = NULL, *output = NULL, *tokenizer = NULL, *prefix = NULL, *backend = "cpu";
    da_blip_gen_params gp;
    da_blip_gen_params_init(&gp);
    int64_t batch = 8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        }
        if (!v) {
            fprintf(stderr, "diffaug caption: %s needs a value\n", a);
            return CLI_USAGE;
        }
        i++;
        int64_t n;
        double d;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--input")) input = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) output = v;
        else if (!strcmp(a, "--tokenizer")) tokenizer = v;
        else if (!strcmp(a, "--prefix")) prefix = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--beams")) {
            if (!cli_parse_int("caption", a, v, 1, 64, &n)) return CLI_USAGE;
            gp.num_beams = (int)n;
        } else if (!strcmp(a, "--max-tokens")) {
            if (!cli_parse_int("caption", a, v, 1, 500, &n)) return CLI_USAGE;
            gp.max_new_tokens = (int)n;
        } else if (!strcmp(a, "--min-tokens")) {
            if (!cli_parse_int("caption", a, v, 0, 500, &n)) return CLI_USAGE;
            gp.min_new_tokens = (int)n;
        } else if (!strcmp(a, "--repetition-penalty")) {
            if (!cli_parse_float("caption", a, v, 1e-3, 1e3, &d)) return CLI_USAGE;
            gp.repetition_penalty = (float)d;
        } else if (!strcmp(a, "--length-penalty")) {
            if (!cli_parse_float("caption", a, v, -100, 100, &d)) return CLI_USAGE;
            gp.length_penalty = (float)d;
        } else if (!strcmp(a, "--batch")) {
            if (!cli_parse_int("caption", a, v, 1, 1024, &batch)) return CLI_USAGE;
        } else {
            fprintf(stderr, "diffaug caption: unknown option '%s'\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!model || !input || !output) {
        fprintf(stderr, "diffaug caption: --model, --input and -o are required\n");
        usage(stderr);
        return CLI_USAGE;
    }
    da_error err;
    da_err_clear(&err);
    da_dataset *ds = NULL;
    da_model_file *m = NULL;
    da_blip *b = NULL;
    da_wordpiece *wp = NULL;
    da_backend *be = NULL;
    da_arena arena = {0};
    da_atomic_file af = {0};
    bool af_open = false;
    da_scan_opts so;
    da_scan_opts_init(&so);
    so.verify = false; /* every image is decoded below anyway; a bad one is reported there */
    double t0 = da_now();
    da_status st = da_dataset_scan(input, &so, &ds, &err);
    if (!st && !(be = da_backend_new(backend, &err))) st = err.code; /* "cuda" without a GPU: an error, not the CPU */
    if (!st) st = da_model_open(model, &m, &err);
    if (!st) st = da_blip_load(m, be, &b, &err);
    if (!st) {
        const char *td = tokenizer ? tokenizer : m->tokenizer_dir;
        if (!td) st = da_err_set(&err, DA_ERR_NOT_FOUND, "%s: no vocab.txt in the model folder (give --tokenizer DIR)", model);
        else st = da_wordpiece_load(td, &wp, &err);
    }
    if (!st) {
        int32_t tmp[64];
        int np;
        st = da_blip_prompt(b, wp, prefix, tmp, 64, &np, &err); /* a bad prefix fails before any work */
    }
    if (!st && !(st = da_atomic_open(&af, output, &err))) af_open = true;
    size_t done = 0, skipped = 0;
    for (size_t i = 0; ds && i < ds->n_problems; i++) {
        fprintf(stderr, "diffaug caption: skipping %s: %s\n", ds->problems[i].path, ds->problems[i].msg);
        skipped += ds->problems[i].kind != DA_PROBLEM_EMPTY_CLASS && ds->problems[i].kind != DA_PROBLEM_SUBFOLDER;
    }
    double t1 = da_now(); /* captioning starts: the rate below excludes loading the model */
    da_image *ims = st ? NULL : calloc((size_t)batch, sizeof *ims);
    const da_image **ptr = st ? NULL : calloc((size_t)batch, sizeof *ptr);
    size_t *which = st ? NULL : calloc((size_t)batch, sizeof *which);
    char **caps = st ? NULL : calloc((size_t)batch, sizeof *caps);
    if (!st && (!ims || !ptr || !which || !caps)) st = da_err_set(&err, DA_ERR_NOMEM, "out of memory");
    for (size_t i0 = 0; !st && i0 < ds->n_images;) {
        int n = 0;
        for (; i0 < ds->n_images && n < batch; i0++) {
            const da_ds_image *di = &ds->images[i0];
            da_error ie;
            if (da_image_load(di->path, &ims[n], &ie)) {
                fprintf(stderr, "diffaug caption: skipping %s: %s\n", di->rel, ie.msg);
                skipped++;
                continue;
            }
            ptr[n] = &ims[n];
            which[n++] = i0;
        }
        if (n > 0) st = da_blip_caption(b, be, &arena, wp, ptr, n, prefix, &gp, caps, &err);
        for (int k = 0; k < n && !st; k++) {
            tsv_clean(caps[k]);
            if (fprintf(af.fp, "%s\t%s\n", ds->images[which[k]].rel, caps[k]) < 0)
                st = da_err_set(&err, DA_ERR_IO, "%s: write failed", output);
            done++;
        }
        for (int k = 0; k < n; k++) {
            da_image_free(&ims[k]);
            free(caps ? caps[k] : NULL);
            if (caps) caps[k] = NULL;
        }
        if (!st && n > 0) {
            double dt = da_now() - t1;
            fprintf(stderr, "\rdiffaug caption: %zu / %zu images, %.3f captions/s", done, ds->n_images, done / dt);
        }
    }
    if (!st && af_open) {
        st = da_atomic_commit(&af, &err);
        af_open = false;
    }
    if (af_open) da_atomic_abort(&af);
    double dt = da_now() - t1;
    if (!st)
        fprintf(stderr, "\ndiffaug caption: wrote %s: %zu captions, %zu skipped; loading %.2f s, captioning %.2f s (%.3f "
                "captions/s)\n", output, done, skipped, t1 - t0, dt, dt > 0 ? done / dt : 0.0);
    free(ims), free(ptr), free(which), free(caps);
    da_arena_free(&arena);
    da_wordpiece_free(wp);
    da_blip_free(b);
    da_backend_free(be); /* after everything bound or planned on it */
    da_model_close(m);
    da_dataset_free(ds);
    return st ? cli_fail("caption", &err) : CLI_OK;
}
