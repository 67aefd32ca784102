/* test_wordpiece.c - the BERT WordPiece tokenizer against transformers 5's BertTokenizer (fixtures
 * written by tests/reference/make_wordpiece_fixtures.py into tests/data/wordpiece/cases.json): the
 * BLIP layout (special_tokens_map.json + added_tokens.json: [DEC] bos, [ENC]), the same after
 * save_pretrained (added_tokens_decoder), a cased config, vocab.txt alone, five small configurations
 * (missing special tokens, config extras, accents kept, cased + strip, a normalized added token); ids with and without
 * special tokens, truncation, decode with and without skip_special_tokens; the CLI and load errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "testutil.h"
#include "util.h"
#include "wordpiece.h"

#define DATA "tests/data/wordpiece"

static da_json *load_cases(void) {
    char *text;
    size_t len;
    da_error e;
    da_json *j = NULL;
    ck_assert_msg(da_read_file(DATA "/cases.json", &text, &len, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(da_json_parse(text, len, "cases.json", &j, &e) == DA_OK, "%s", e.msg);
    free(text);
    return j;
}

static void write_text(const char *path, const char *text, size_t len) {
    da_error e;
    ck_assert_msg(da_write_file_atomic(path, text, len, &e) == DA_OK, "%s", e.msg);
}

static int64_t opt_int(const da_json *j, const char *key) {
    const da_json *v = da_json_get(j, key);
    ck_assert_ptr_nonnull(v);
    return v->type == DA_JSON_NULL ? -1 : v->inum;
}

static void ids_eq(const int32_t *got, int n, const da_json *want, const char *what, const char *label, const char *text) {
    ck_assert_msg((size_t)n == want->n, "%s: %s of \"%s\": %d ids, transformers %zu", label, what, text, n, want->n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want->items[i].inum, "%s: %s of \"%s\": id %d is %d (%s), transformers %lld", label,
                      what, text, i, got[i], "", (long long)want->items[i].inum);
}

/* Everything recorded for one configuration. */
static void check_config(const char *path, const da_json *cfg, const char *label) {
    da_error e;
    da_wordpiece *w = NULL;
    ck_assert_msg(da_wordpiece_load(path, &w, &e) == DA_OK, "%s: %s", label, e.msg);
    int64_t vs;
    ck_assert(da_json_get_int(cfg, "vocab_size", &vs));
    ck_assert_int_eq(da_wordpiece_vocab_size(w), vs);
    ck_assert_int_eq(da_wordpiece_cls_id(w), opt_int(cfg, "cls"));
    ck_assert_int_eq(da_wordpiece_sep_id(w), opt_int(cfg, "sep"));
    ck_assert_int_eq(da_wordpiece_pad_id(w), opt_int(cfg, "pad"));
    ck_assert_int_eq(da_wordpiece_unk_id(w), opt_int(cfg, "unk"));
    ck_assert_int_eq(da_wordpiece_mask_id(w), opt_int(cfg, "mask"));
    ck_assert_int_eq(da_wordpiece_bos_id(w), opt_int(cfg, "bos"));
    const da_json *cases = da_json_get(cfg, "cases");
    ck_assert(cases && cases->n >= 60);
    int32_t ids[512];
    for (size_t c = 0; c < cases->n; c++) {
        const da_json *cs = &cases->items[c];
        const char *text = da_json_get_str(cs, "text");
        const da_json *want = da_json_get(cs, "ids"), *toks = da_json_get(cs, "tokens");
        ck_assert(text && want && toks && want->n <= 512);
        int n;
        ck_assert_msg(da_wordpiece_encode(w, text, true, ids, 512, &n, &e) == DA_OK, "%s", e.msg);
        ids_eq(ids, n, want, "ids", label, text);
        for (int i = 0; i < n; i++)
            ck_assert_msg(!strcmp(da_wordpiece_token(w, ids[i]), toks->items[i].str), "%s: token %d of \"%s\"", label,
                          i, text);
        /* without special tokens: the same ids less [CLS] and [SEP] */
        ck_assert(da_wordpiece_encode(w, text, false, ids, 512, &n, &e) == DA_OK);
        ck_assert_int_eq(n, (int)want->n - 2);
        for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], want->items[i + 1].inum);
        /* decode of the ids with special tokens, kept and skipped */
        int32_t all[512];
        for (size_t i = 0; i < want->n; i++) all[i] = (int32_t)want->items[i].inum;
        for (int skip = 0; skip < 2; skip++) {
            char *d = da_wordpiece_decode(w, all, (int)want->n, skip);
            const char *wd = da_json_get_str(cs, skip ? "decoded_skip" : "decoded");
            ck_assert_ptr_nonnull(d);
            ck_assert_msg(!strcmp(d, wd), "%s: decode(skip=%d) of \"%s\": \"%s\", transformers \"%s\"", label, skip,
                          text, d, wd);
            free(d);
        }
    }
    const da_json *tr = da_json_get(cfg, "truncations");
    ck_assert(tr && tr->n > 0);
    for (size_t c = 0; c < tr->n; c++) {
        const da_json *t = &tr->items[c];
        int64_t cap;
        bool special = da_json_get(t, "special")->type == DA_JSON_TRUE;
        const char *text = da_json_get_str(t, "text");
        ck_assert(da_json_get_int(t, "cap", &cap));
        int n;
        size_t full;
        ck_assert(da_wordpiece_encode_full(w, text, special, ids, (int)cap, &n, &full, &e) == DA_OK);
        ids_eq(ids, n, da_json_get(t, "ids"), special ? "truncated ids" : "truncated raw ids", label, text);
        ck_assert_uint_ge(full, (size_t)n);
    }
    const da_json *decs = da_json_get(cfg, "decodes");
    for (size_t c = 0; decs && c < decs->n; c++) {
        const da_json *d = &decs->items[c], *want = da_json_get(d, "ids");
        int32_t in[64];
        ck_assert(want->n <= 64);
        for (size_t i = 0; i < want->n; i++) in[i] = (int32_t)want->items[i].inum;
        for (int skip = 0; skip < 2; skip++) {
            char *s = da_wordpiece_decode(w, in, (int)want->n, skip);
            const char *ws = da_json_get_str(d, skip ? "decoded_skip" : "decoded");
            ck_assert_msg(s && !strcmp(s, ws), "%s: decode list %zu (skip=%d): \"%s\", transformers \"%s\"", label, c,
                          skip, s, ws);
            free(s);
        }
    }
    da_wordpiece_free(w);
}

START_TEST(test_blip_layout) {
    da_json *j = load_cases();
    check_config(DATA "/blip", da_json_get(da_json_get(j, "configs"), "blip"), "blip");
    da_json_free(j);
}
END_TEST

START_TEST(test_saved_layout) {
    da_json *j = load_cases();
    check_config(DATA "/saved", da_json_get(da_json_get(j, "configs"), "saved"), "saved");
    da_json_free(j);
}
END_TEST

START_TEST(test_cased) {
    da_json *j = load_cases();
    check_config(DATA "/cased", da_json_get(da_json_get(j, "configs"), "cased"), "cased");
    da_json_free(j);
}
END_TEST

START_TEST(test_vocab_file) {
    da_json *j = load_cases();
    check_config(DATA "/blip/vocab.txt", da_json_get(da_json_get(j, "configs"), "vocab_txt"), "vocab.txt");
    da_json_free(j);
}
END_TEST

/* Small configurations written into a temporary folder: the blip vocab.txt less "drop", plus "files". */
START_TEST(test_extras) {
    da_json *j = load_cases();
    const da_json *extras = da_json_get(j, "extras");
    ck_assert(extras && extras->n >= 5);
    char *vocab;
    size_t vlen;
    da_error e;
    ck_assert(da_read_file(DATA "/blip/vocab.txt", &vocab, &vlen, &e) == DA_OK);
    for (size_t x = 0; x < extras->n; x++) {
        const da_json *ex = &extras->items[x], *drop = da_json_get(ex, "drop"), *files = da_json_get(ex, "files");
        const char *label = extras->keys[x];
        char *dir = da_test_tmpdir("wp"), *vp = da_path_join(dir, "vocab.txt");
        da_buf b = {0};
        for (char *line = vocab; line < vocab + vlen;) {
            char *nl = memchr(line, '\n', (size_t)(vocab + vlen - line));
            size_t n = nl ? (size_t)(nl - line) : (size_t)(vocab + vlen - line);
            bool dropped = false;
            for (size_t d = 0; d < drop->n; d++) dropped |= strlen(drop->items[d].str) == n && !memcmp(drop->items[d].str, line, n);
            if (!dropped) da_buf_append(&b, line, n), da_buf_append(&b, "\n", 1);
            line += n + 1;
        }
        write_text(vp, b.data, b.len);
        da_buf_free(&b);
        for (size_t f = 0; f < files->n; f++) {
            char *p = da_path_join(dir, files->keys[f]);
            write_text(p, files->items[f].str, files->items[f].len);
            free(p);
        }
        da_wordpiece *w;
        ck_assert_msg(da_wordpiece_load(dir, &w, &e) == DA_OK, "%s: %s", label, e.msg);
        int64_t vs;
        ck_assert(da_json_get_int(ex, "vocab_size", &vs));
        ck_assert_msg(da_wordpiece_vocab_size(w) == vs, "%s: vocab size %d, transformers %lld", label,
                      da_wordpiece_vocab_size(w), (long long)vs);
        ck_assert_int_eq(da_wordpiece_bos_id(w), opt_int(ex, "bos"));
        ck_assert_int_eq(da_wordpiece_mask_id(w), opt_int(ex, "mask"));
        const da_json *cases = da_json_get(ex, "cases");
        for (size_t c = 0; c < cases->n; c++) {
            const da_json *cs = &cases->items[c], *want = da_json_get(cs, "ids");
            const char *text = da_json_get_str(cs, "text");
            int32_t ids[128];
            int n;
            ck_assert(want->n <= 128);
            ck_assert(da_wordpiece_encode(w, text, true, ids, 128, &n, &e) == DA_OK);
            ids_eq(ids, n, want, "ids", label, text);
            for (int skip = 0; skip < 2; skip++) {
                char *d = da_wordpiece_decode(w, ids, n, skip);
                const char *wd = da_json_get_str(cs, skip ? "decoded_skip" : "decoded");
                ck_assert_msg(d && !strcmp(d, wd), "%s: decode(skip=%d) of \"%s\": \"%s\", transformers \"%s\"", label,
                              skip, text, d, wd);
                free(d);
            }
        }
        da_wordpiece_free(w);
        free(vp);
        da_rmtree(dir);
        free(dir);
    }
    free(vocab);
    da_json_free(j);
}
END_TEST

START_TEST(test_api) {
    da_error e;
    da_wordpiece *w;
    ck_assert_msg(da_wordpiece_load(DATA "/blip", &w, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(da_wordpiece_max_length(w), 512);
    int32_t dec = da_wordpiece_token_id(w, "[DEC]");
    ck_assert_int_eq(dec, da_wordpiece_bos_id(w));
    ck_assert_int_eq(dec, da_wordpiece_vocab_size(w) - 2); /* added after the 3000-line vocab.txt */
    ck_assert_str_eq(da_wordpiece_token(w, dec), "[DEC]");
    /* [ENC] comes from added_tokens.json as a normalized, non-special token (transformers 5 reads the
     * map's additional_special_tokens too late to mark it special): tokenizers stores it lower-cased,
     * convert_tokens_to_ids still finds it by the config's name */
    ck_assert_int_eq(da_wordpiece_token_id(w, "[ENC]"), dec + 1);
    ck_assert_str_eq(da_wordpiece_token(w, dec + 1), "[enc]");
    ck_assert_int_eq(da_wordpiece_token_id(w, "[enc]"), -1);
    ck_assert_int_eq(da_wordpiece_token_id(w, "dog"), da_wordpiece_token_id(w, da_wordpiece_token(w, da_wordpiece_token_id(w, "dog"))));
    ck_assert_int_eq(da_wordpiece_token_id(w, "no-such-token-here"), -1);
    ck_assert_int_eq(da_wordpiece_token_id(w, NULL), -1);
    ck_assert_ptr_null(da_wordpiece_token(w, -1));
    ck_assert_ptr_null(da_wordpiece_token(w, da_wordpiece_vocab_size(w)));
    /* cap 0 writes nothing; BLIP's decoder input: bos replaces [CLS], [SEP] dropped */
    int32_t ids[16];
    int n = -1;
    ck_assert(da_wordpiece_encode(w, "a photo of", true, ids, 0, &n, &e) == DA_OK);
    ck_assert_int_eq(n, 0);
    ck_assert(da_wordpiece_encode(w, "a photo of", true, ids, 16, &n, &e) == DA_OK);
    ck_assert_int_eq(ids[0], da_wordpiece_cls_id(w));
    ck_assert_int_eq(ids[n - 1], da_wordpiece_sep_id(w));
    ids[0] = da_wordpiece_bos_id(w);
    char *s = da_wordpiece_decode(w, ids, n - 1, true);
    ck_assert_str_eq(s, "a photo of");
    free(s);
    /* invalid UTF-8 text is an error naming the byte */
    ck_assert_int_eq(da_wordpiece_encode(w, "ok \xC3\x28", true, ids, 16, &n, &e), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "UTF-8"));
    ck_assert_ptr_nonnull(strstr(e.msg, "byte 3"));
    ck_assert_int_eq(da_wordpiece_encode(w, "\xED\xA0\x80", false, ids, 16, &n, &e), DA_ERR_INVALID_ARG); /* surrogate */
    da_wordpiece_free(w);
}
END_TEST

START_TEST(test_cli) {
    char *out = NULL;
    int rc = da_test_sh(&out, "%s tokenize --wordpiece " DATA "/blip --tokens --decode 'A photo of a DOG' '' 2>&1", da_test_cli());
    ck_assert_msg(rc == 0, "%s", out);
    da_error e;
    da_wordpiece *w;
    ck_assert(da_wordpiece_load(DATA "/blip", &w, &e) == DA_OK);
    int32_t ids[16];
    int n;
    ck_assert(da_wordpiece_encode(w, "a photo of a dog", true, ids, 16, &n, &e) == DA_OK);
    char want[256] = "[";
    for (int i = 0; i < n; i++) snprintf(want + strlen(want), sizeof want - strlen(want), i ? ", %d" : "%d", ids[i]);
    ck_assert_msg(!strncmp(out, want, strlen(want)), "got %s, want %s", out, want);
    ck_assert_ptr_nonnull(strstr(out, "\n[\"[CLS]\", \"a\", \"photo\", \"of\", \"a\", \"dog\", \"[SEP]\"]\n\"a photo of a dog\"\n"));
    snprintf(want, sizeof want, "\n[%d, %d]\n[\"[CLS]\", \"[SEP]\"]\n\"\"\n", ids[0], ids[n - 1]); /* the empty text */
    ck_assert_msg(strstr(out, want), "%s", out);
    free(out);
    /* usage errors exit 2 */
    rc = da_test_sh(&out, "%s tokenize --wordpiece " DATA "/blip --no-pad x 2>&1", da_test_cli());
    ck_assert_int_eq(rc, 2);
    free(out);
    rc = da_test_sh(&out, "%s tokenize --wordpiece " DATA "/blip --vocab x x 2>&1", da_test_cli());
    ck_assert_int_eq(rc, 2);
    free(out);
    rc = da_test_sh(&out, "%s tokenize --wordpiece " DATA "/blip --max-length 4 'a photo of a dog' 2>&1", da_test_cli());
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(strstr(out, "text 1 has 7 tokens (with [CLS] and [SEP]), truncated to 4"), "%s", out);
    free(out);
    rc = da_test_sh(&out, "%s tokenize --wordpiece " DATA "/blip --max-length 4 'a photo of a dog' 2>/dev/null",
                    da_test_cli());
    snprintf(want, sizeof want, "[%d, %d, %d, %d]", ids[0], ids[1], ids[2], ids[n - 1]);
    ck_assert_msg(!strncmp(out, want, strlen(want)), "got %s, want %s", out, want);
    free(out);
    rc = da_test_sh(&out, "%s tokenize --wordpiece /nonexistent/blip 'x' 2>&1", da_test_cli());
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/blip"));
    free(out);
    da_wordpiece_free(w);
}
END_TEST

/* A folder with vocab.txt (given bytes) and optional other files; returns the load status. */
static da_status load_dir(const char *vocab, size_t vlen, const char *file, const char *content, da_error *e) {
    char *dir = da_test_tmpdir("wp");
    char *vp = da_path_join(dir, "vocab.txt");
    write_text(vp, vocab, vlen);
    if (file) {
        char *p = da_path_join(dir, file);
        write_text(p, content, strlen(content));
        free(p);
    }
    da_wordpiece *w = (da_wordpiece *)1;
    da_status st = da_wordpiece_load(dir, &w, e);
    if (st != DA_OK) ck_assert_ptr_null(w);
    da_wordpiece_free(w);
    free(vp);
    da_rmtree(dir);
    free(dir);
    return st;
}

#define GOOD_VOCAB "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n##b\n"

START_TEST(test_errors) {
    da_error e;
    da_wordpiece *w = (da_wordpiece *)1;
    ck_assert_int_eq(da_wordpiece_load("/nonexistent/blip", &w, &e), DA_ERR_NOT_FOUND);
    ck_assert_ptr_null(w);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent/blip"));
    char *dir = da_test_tmpdir("wp");
    ck_assert_int_eq(da_wordpiece_load(dir, &w, &e), DA_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "vocab.txt"));
    da_rmtree(dir);
    free(dir);
    ck_assert_int_eq(load_dir(GOOD_VOCAB, strlen(GOOD_VOCAB), NULL, NULL, &e), DA_OK);
    /* empty vocabulary */
    ck_assert_int_eq(load_dir("", 0, NULL, NULL, &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "vocab.txt: empty"));
    /* invalid UTF-8 on line 3 */
    ck_assert_int_eq(load_dir("[UNK]\na\n\xFF\xFE\n", 9, NULL, NULL, &e), DA_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "vocab.txt: line 3: invalid UTF-8"), "%s", e.msg);
    /* no [UNK] */
    ck_assert_int_eq(load_dir("[PAD]\na\n", 8, NULL, NULL, &e), DA_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "vocab.txt: the unknown token"), "%s", e.msg);
    /* an unk_token the vocabulary lacks */
    ck_assert_int_eq(load_dir(GOOD_VOCAB, strlen(GOOD_VOCAB), "tokenizer_config.json", "{\"unk_token\": \"<unk>\"}", &e),
                     DA_ERR_FORMAT);
    /* broken tokenizer_config.json: syntax, wrong types, unsupported flags */
    const char *bad_cfgs[] = {"{\"do_lower_case\": tru", "[1]", "{\"do_lower_case\": \"yes\"}",
                              "{\"strip_accents\": 1}", "{\"unk_token\": 5}", "{\"added_tokens_decoder\": []}",
                              "{\"added_tokens_decoder\": {\"x\": {\"content\": \"[X]\"}}}",
                              "{\"added_tokens_decoder\": {\"7\": {\"content\": \"\"}}}",
                              "{\"model_max_length\": -5}", "{\"additional_special_tokens\": \"[X]\"}"};
    for (size_t i = 0; i < sizeof bad_cfgs / sizeof bad_cfgs[0]; i++) {
        da_status st = load_dir(GOOD_VOCAB, strlen(GOOD_VOCAB), "tokenizer_config.json", bad_cfgs[i], &e);
        ck_assert_msg(st == DA_ERR_FORMAT, "config %s: status %d", bad_cfgs[i], st);
        ck_assert_msg(strstr(e.msg, "tokenizer_config.json"), "config %s: %s", bad_cfgs[i], e.msg);
    }
    ck_assert_int_eq(load_dir(GOOD_VOCAB, strlen(GOOD_VOCAB), "tokenizer_config.json",
                              "{\"added_tokens_decoder\": {\"7\": {\"content\": \"[X]\", \"lstrip\": true}}}", &e),
                     DA_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e.msg, "lstrip"));
    /* broken added_tokens.json and special_tokens_map.json */
    ck_assert_int_eq(load_dir(GOOD_VOCAB, strlen(GOOD_VOCAB), "added_tokens.json", "{\"[X]\": \"7\"}", &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "added_tokens.json"));
    ck_assert_int_eq(load_dir(GOOD_VOCAB, strlen(GOOD_VOCAB), "special_tokens_map.json", "{\"bos_token\": [1]}", &e),
                     DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "special_tokens_map.json"));
    /* a vocab.txt given directly that is missing */
    ck_assert_int_eq(da_wordpiece_load("/nonexistent/vocab.txt", &w, &e), DA_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent/vocab.txt"));
}
END_TEST

/* vocab.txt lines as tokenizers' WordPiece::read_file reads them: split at "\n" only, trailing white
 * space (\r, \t, U+00A0 included) trimmed, empty lines kept; a missing [MASK] is added after the
 * vocabulary. Expected values from BertTokenizer on the same bytes. */
START_TEST(test_vocab_lines) {
    char *dir = da_test_tmpdir("wp");
    char *vp = da_path_join(dir, "vocab.txt");
    const char *v = "[PAD]\r\n[UNK] \r\n[CLS]\n[SEP]\t\na\n##b\xC2\xA0\nx\ry\n\n";
    write_text(vp, v, strlen(v));
    da_error e;
    da_wordpiece *w;
    ck_assert_msg(da_wordpiece_load(vp, &w, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(da_wordpiece_unk_id(w), 1);
    ck_assert_int_eq(da_wordpiece_sep_id(w), 3);
    ck_assert_int_eq(da_wordpiece_token_id(w, "x\ry"), 6);
    ck_assert_int_eq(da_wordpiece_token_id(w, ""), 7);
    ck_assert_int_eq(da_wordpiece_mask_id(w), 8);
    ck_assert_int_eq(da_wordpiece_vocab_size(w), 9);
    int32_t ids[8];
    int n;
    ck_assert(da_wordpiece_encode(w, "ab abb c", false, ids, 8, &n, &e) == DA_OK);
    const int32_t want[] = {4, 5, 4, 5, 5, 1};
    ck_assert_int_eq(n, 6);
    for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], want[i]);
    da_wordpiece_free(w);
    free(vp);
    da_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *wordpiece_suite(void) {
    Suite *s = suite_create("wordpiece");
    TCase *tc = da_tcase("wordpiece", "fast", 30);
    tcase_add_test(tc, test_blip_layout);
    tcase_add_test(tc, test_saved_layout);
    tcase_add_test(tc, test_cased);
    tcase_add_test(tc, test_vocab_file);
    tcase_add_test(tc, test_extras);
    tcase_add_test(tc, test_api);
    tcase_add_test(tc, test_cli);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_vocab_lines);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(wordpiece_suite)
