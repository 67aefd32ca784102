/* cmd_tokenize.c - `diffaug tokenize`: CLIP token ids of each TEXT as a JSON array, one per line,
 * exactly what transformers' CLIPTokenizer(text, padding="max_length", max_length=77,
 * truncation=True).input_ids gives (engine/tokenizer.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tokenizer.h"
#include "util.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug tokenize (--model PATH | --vocab PATH) [--no-pad] [--max-length N] TEXT...\n"
            "  --model PATH      a model folder: PATH/tokenizer/ (diffusers) or PATH/ (transformers) with\n"
            "                    vocab.json + merges.txt (+ tokenizer_config.json for the pad token)\n"
            "  --vocab PATH      a vocab.json (merges.txt beside it) or bpe_simple_vocab_16e6.txt.gz\n"
            "  --no-pad          print only the real ids (start, text, end), no padding\n"
            "  --max-length N    pad/truncate to N ids (default: the tokenizer's, 77 for CLIP)\n"
            "Prints one JSON array of ids per TEXT; warns on stderr when a text is truncated.\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *vocab = NULL;
    bool pad = true;
    int64_t max_length = 0;
    int first_text = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--vocab")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "diffaug tokenize: %s needs a path\n", a);
                return CLI_USAGE;
            }
            *(a[2] == 'm' ? &model : &vocab) = argv[++i];
        } else if (!strcmp(a, "--no-pad")) {
            pad = false;
        } else if (!strcmp(a, "--max-length")) {
            if (!cli_parse_int("tokenize", a, i + 1 < argc ? argv[++i] : NULL, 2, 1 << 20, &max_length)) return CLI_USAGE;
        } else if (!strcmp(a, "--")) {
            first_text = i + 1;
            break;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "diffaug tokenize: unknown option '%s'\n", a);
            usage(stderr);
            return CLI_USAGE;
        } else {
            first_text = i;
            break;
        }
    }
    if (!model == !vocab) {
        fprintf(stderr, "diffaug tokenize: give exactly one of --model and --vocab\n");
        usage(stderr);
        return CLI_USAGE;
    }
    if (first_text >= argc) {
        fprintf(stderr, "diffaug tokenize: no TEXT given\n");
        usage(stderr);
        return CLI_USAGE;
    }
    da_error err;
    da_err_clear(&err);
    da_tokenizer *t;
    if (da_tokenizer_load(model ? model : vocab, &t, &err) != DA_OK) return cli_fail("tokenize", &err);
    int n = max_length ? (int)max_length : da_tokenizer_max_length(t);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) {
        da_tokenizer_free(t);
        da_err_set(&err, DA_ERR_NOMEM, "out of memory");
        return cli_fail("tokenize", &err);
    }
    int rc = CLI_OK;
    for (int i = first_text; i < argc; i++) {
        da_tok_output o;
        if (da_tokenizer_encode(t, argv[i], n, pad, ids, NULL, &o, &err) != DA_OK) {
            da_err_prefix(&err, "text %d", i - first_text + 1);
            rc = cli_fail("tokenize", &err);
            break;
        }
        if (o.truncated)
            fprintf(stderr, "diffaug tokenize: warning: text %d has %zu tokens (with start and end), truncated to %d\n",
                    i - first_text + 1, o.n_full, n);
        putchar('[');
        for (int k = 0; k < o.n_written; k++) printf(k ? ", %d" : "%d", (int)ids[k]);
        puts("]");
    }
    free(ids);
    da_tokenizer_free(t);
    if (fflush(stdout) != 0 && rc == CLI_OK) {
        fprintf(stderr, "diffaug tokenize: error writing the output\n");
        rc = CLI_FAIL;
    }
    return rc;
}
