/* cmd_tokenize.c - `diffaug tokenize`: CLIP token ids of each TEXT as a JSON array, one per line,
 * exactly what transformers' CLIPTokenizer(text, padding="max_length", max_length=77,
 * truncation=True).input_ids gives (engine/tokenizer.h); with --wordpiece, BERT WordPiece ids as
 * BertTokenizer(text, truncation=True, max_length=N).input_ids gives (engine/wordpiece.h), optionally
 * followed by the tokens and the decoded text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tokenizer.h"
#include "util.h"
#include "wordpiece.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug tokenize (--model PATH | --vocab PATH) [--no-pad] [--max-length N] TEXT...\n"
            "       diffaug tokenize --wordpiece PATH [--no-special] [--tokens] [--decode] [--max-length N] TEXT...\n"
            "  --model PATH      a model folder: PATH/tokenizer/ (diffusers) or PATH/ (transformers) with\n"
            "                    vocab.json + merges.txt (+ tokenizer_config.json for the pad token)\n"
            "  --vocab PATH      a vocab.json (merges.txt beside it) or bpe_simple_vocab_16e6.txt.gz\n"
            "  --no-pad          print only the real ids (start, text, end), no padding\n"
            "  --max-length N    pad/truncate to N ids (default: the tokenizer's, 77 for CLIP)\n"
            "  --wordpiece PATH  BERT WordPiece (BLIP's text decoder): a folder with vocab.txt (+ tokenizer_config.json,\n"
            "                    special_tokens_map.json, added_tokens.json) or a vocab.txt; never pads, truncates\n"
            "                    to --max-length or the config's model_max_length\n"
            "  --no-special      (wordpiece) no [CLS] ... [SEP] around the ids\n"
            "  --tokens          (wordpiece) also print the tokens as a JSON array of strings\n"
            "  --decode          (wordpiece) also print the ids decoded back to text (special tokens skipped)\n"
            "Prints one JSON array of ids per TEXT; warns on stderr when a text is truncated.\n");
}

static int tokenize_wordpiece(const char *path, int n_texts, char **texts, int max_length, bool special,
                              bool show_tokens, bool show_decode) {
    da_error err;
    da_err_clear(&err);
    da_wordpiece *w;
    if (da_wordpiece_load(path, &w, &err) != DA_OK) return cli_fail("tokenize", &err);
    if (!max_length) max_length = da_wordpiece_max_length(w);
    int rc = CLI_OK;
    for (int i = 0; i < n_texts && rc == CLI_OK; i++) {
        /* at most one id per byte, plus [CLS] and [SEP] */
        size_t cap = strlen(texts[i]) + 2;
        if (max_length && (size_t)max_length < cap) cap = (size_t)max_length;
        if (cap > (size_t)INT32_MAX / 2) {
            da_err_set(&err, DA_ERR_INVALID_ARG, "text %d is too long", i + 1);
            rc = cli_fail("tokenize", &err);
            break;
        }
        int32_t *ids = malloc(cap * sizeof *ids);
        int n;
        size_t full;
        if (!ids) {
            da_err_set(&err, DA_ERR_NOMEM, "out of memory");
            rc = cli_fail("tokenize", &err);
            break;
        }
        if (da_wordpiece_encode_full(w, texts[i], special, ids, (int)cap, &n, &full, &err) != DA_OK) {
            da_err_prefix(&err, "text %d", i + 1);
            rc = cli_fail("tokenize", &err);
            free(ids);
            break;
        }
        if (full > (size_t)n)
            fprintf(stderr, "diffaug tokenize: warning: text %d has %zu tokens%s, truncated to %d\n", i + 1, full,
                    special ? " (with [CLS] and [SEP])" : "", n);
        putchar('[');
        for (int k = 0; k < n; k++) printf(k ? ", %d" : "%d", (int)ids[k]);
        puts("]");
        da_buf b = {0};
        if (show_tokens) {
            da_buf_append(&b, "[", 1);
            for (int k = 0; k < n; k++) {
                if (k) da_buf_append(&b, ", ", 2);
                da_buf_json_string(&b, da_wordpiece_token(w, ids[k]));
            }
            da_buf_append(&b, "]\n", 2);
        }
        char *text = show_decode ? da_wordpiece_decode(w, ids, n, true) : NULL;
        if (text) da_buf_json_string(&b, text), da_buf_append(&b, "\n", 1);
        if (b.failed || (show_decode && !text)) {
            da_err_set(&err, DA_ERR_NOMEM, "out of memory");
            rc = cli_fail("tokenize", &err);
        } else if (b.len) {
            fwrite(b.data, 1, b.len, stdout);
        }
        free(text);
        da_buf_free(&b);
        free(ids);
    }
    da_wordpiece_free(w);
    if (fflush(stdout) != 0 && rc == CLI_OK) {
        fprintf(stderr, "diffaug tokenize: error writing the output\n");
        rc = CLI_FAIL;
    }
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *vocab = NULL, *wordpiece = NULL;
    bool pad = true, no_pad = false, special = true, show_tokens = false, show_decode = false;
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
        } else if (!strcmp(a, "--wordpiece")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "diffaug tokenize: %s needs a path\n", a);
                return CLI_USAGE;
            }
            wordpiece = argv[++i];
        } else if (!strcmp(a, "--no-pad")) {
            pad = false, no_pad = true;
        } else if (!strcmp(a, "--no-special")) {
            special = false;
        } else if (!strcmp(a, "--tokens")) {
            show_tokens = true;
        } else if (!strcmp(a, "--decode")) {
            show_decode = true;
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
    if ((model != NULL) + (vocab != NULL) + (wordpiece != NULL) != 1) {
        fprintf(stderr, "diffaug tokenize: give exactly one of --model, --vocab and --wordpiece\n");
        usage(stderr);
        return CLI_USAGE;
    }
    if (wordpiece ? no_pad : (!special || show_tokens || show_decode)) {
        fprintf(stderr, "diffaug tokenize: %s\n",
                wordpiece ? "--no-pad is for CLIP (WordPiece ids are never padded)"
                          : "--no-special, --tokens and --decode are for --wordpiece");
        return CLI_USAGE;
    }
    if (first_text >= argc) {
        fprintf(stderr, "diffaug tokenize: no TEXT given\n");
        usage(stderr);
        return CLI_USAGE;
    }
    if (wordpiece) return tokenize_wordpiece(wordpiece, argc - first_text, argv + first_text, (int)max_length, special,
                                             show_tokens, show_decode);
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
