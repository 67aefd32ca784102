/* test_tokenizer.c - the CLIP tokenizer against transformers' CLIPTokenizer (fixtures written by
 * tests/reference/make_tokenizer_fixtures.py into tests/data/tokenizer/cases.json), from both
 * vocabulary sources (vocab.json + merges.txt, and bpe_simple_vocab_16e6.txt.gz), the diffusers and
 * transformers folder layouts, the pad token from tokenizer_config.json, truncation, the
 * `diffaug tokenize` CLI and the load errors. Needs ../shared/data/clip-tokenizer/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

static char *tokdir(void) {
    char *p = NULL;
    ck_assert(asprintf(&p, "%s/data/clip-tokenizer", da_test_shared()) > 0);
    return p;
}

static char *tokfile(const char *name) {
    char *d = tokdir(), *p = da_path_join(d, name);
    free(d);
    return p;
}

static da_json *load_cases(void) {
    char *text;
    size_t len;
    da_error e;
    da_json *j = NULL;
    ck_assert_msg(da_read_file("tests/data/tokenizer/cases.json", &text, &len, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(da_json_parse(text, len, "cases.json", &j, &e) == DA_OK, "%s", e.msg);
    free(text);
    return j;
}

static void write_text(const char *path, const char *text) {
    da_error e;
    ck_assert_msg(da_write_file_atomic(path, text, strlen(text), &e) == DA_OK, "%s", e.msg);
}

static void link_to(const char *dir, const char *name) {
    /* the link target must be absolute: a relative one resolves from the link's folder */
    char *rel = tokfile(name), *src = realpath(rel, NULL), *dst = da_path_join(dir, name);
    ck_assert_msg(src != NULL, "%s: missing", rel);
    ck_assert_int_eq(symlink(src, dst), 0);
    free(rel), free(src), free(dst);
}

/* Every case: ids, mask, length and truncation as transformers gives them. */
static void check_cases(da_tokenizer *t, const da_json *cases, const char *label) {
    ck_assert_ptr_nonnull(cases);
    ck_assert_uint_gt(cases->n, 0);
    for (size_t c = 0; c < cases->n; c++) {
        const da_json *cs = &cases->items[c];
        const char *text = da_json_get_str(cs, "text");
        const da_json *want = da_json_get(cs, "ids"), *wmask = da_json_get(cs, "mask");
        int64_t n_full;
        ck_assert(text && want && wmask && da_json_get_int(cs, "n_full", &n_full));
        ck_assert_uint_eq(want->n, DA_CLIP_MAX_LENGTH);
        int32_t ids[DA_CLIP_MAX_LENGTH], mask[DA_CLIP_MAX_LENGTH];
        da_tok_output o;
        da_error e;
        ck_assert_msg(da_tokenizer_encode(t, text, DA_CLIP_MAX_LENGTH, true, ids, mask, &o, &e) == DA_OK, "%s", e.msg);
        ck_assert_int_eq(o.n_written, DA_CLIP_MAX_LENGTH);
        int real = 0;
        for (size_t i = 0; i < want->n; i++) {
            ck_assert_msg(ids[i] == want->items[i].inum, "%s: case %zu (text \"%s\"): id %zu is %d, transformers %lld",
                          label, c, text, i, ids[i], (long long)want->items[i].inum);
            ck_assert_msg(mask[i] == wmask->items[i].inum, "%s: case %zu: mask %zu", label, c, i);
            real += mask[i];
        }
        ck_assert_int_eq(o.length, real);
        ck_assert_uint_eq(o.n_full, (size_t)n_full);
        ck_assert(o.truncated == (n_full > DA_CLIP_MAX_LENGTH));
        ck_assert_int_eq(ids[o.length - 1], da_tokenizer_eos_id(t)); /* eos kept when truncated */
    }
}

START_TEST(test_cases_vocab_json) {
    da_json *j = load_cases();
    char *dir = tokdir();
    da_tokenizer *t;
    da_error e;
    ck_assert_msg(da_tokenizer_load(dir, &t, &e) == DA_OK, "%s", e.msg); /* transformers layout: PATH/vocab.json */
    ck_assert_int_eq(da_tokenizer_bos_id(t), 49406);
    ck_assert_int_eq(da_tokenizer_eos_id(t), 49407);
    ck_assert_int_eq(da_tokenizer_pad_id(t), 49407);
    ck_assert_int_eq(da_tokenizer_max_length(t), 77);
    ck_assert_uint_eq(da_tokenizer_vocab_size(t), 49408);
    ck_assert_str_eq(da_tokenizer_token(t, 1125), "photo</w>");
    ck_assert_ptr_null(da_tokenizer_token(t, 49408));
    ck_assert_ptr_null(da_tokenizer_token(t, -1));
    check_cases(t, da_json_get(j, "cases"), "vocab.json");
    check_cases(t, da_json_get(j, "cases"), "vocab.json (cached words)");
    da_tokenizer_free(t);
    free(dir);
    da_json_free(j);
}
END_TEST

START_TEST(test_cases_bpe_gz_and_same_vocab) {
    da_json *j = load_cases();
    char *gz = tokfile("bpe_simple_vocab_16e6.txt.gz"), *vj = tokfile("vocab.json"), *mt = tokfile("merges.txt");
    da_tokenizer *t, *u;
    da_error e;
    ck_assert_msg(da_tokenizer_load(gz, &t, &e) == DA_OK, "%s", e.msg);
    check_cases(t, da_json_get(j, "cases"), "bpe_simple_vocab_16e6.txt.gz");
    /* both sources hold the same vocabulary, id for id */
    ck_assert_msg(da_tokenizer_load_files(vj, mt, &u, &e) == DA_OK, "%s", e.msg);
    ck_assert_uint_eq(da_tokenizer_vocab_size(t), da_tokenizer_vocab_size(u));
    for (int32_t id = 0; id < (int32_t)da_tokenizer_vocab_size(t); id++)
        ck_assert_str_eq(da_tokenizer_token(t, id), da_tokenizer_token(u, id));
    da_tokenizer_free(t);
    da_tokenizer_free(u);
    free(gz), free(vj), free(mt);
    da_json_free(j);
}
END_TEST

START_TEST(test_config_pad_and_diffusers_layout) {
    da_json *j = load_cases();
    char *dir = da_test_tmpdir("tok"), *sub = da_path_join(dir, "tokenizer");
    ck_assert_int_eq(da_mkdirs(sub, NULL), DA_OK);
    link_to(sub, "vocab.json");
    link_to(sub, "merges.txt");
    /* a decoy at PATH/ that must not be used: PATH/tokenizer/ wins */
    char *decoy = da_path_join(dir, "vocab.json");
    write_text(decoy, "not json");
    free(decoy);
    char *cfg = da_path_join(sub, "tokenizer_config.json");
    write_text(cfg, "{\"pad_token\": \"!\", \"model_max_length\": 77, \"bos_token\": {\"content\": \"<|startoftext|>\"}}");
    da_tokenizer *t;
    da_error e;
    ck_assert_msg(da_tokenizer_load(dir, &t, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(da_tokenizer_pad_id(t), 0);
    check_cases(t, da_json_get(da_json_get(j, "pad_bang"), "cases"), "pad \"!\"");
    da_tokenizer_free(t);
    /* special_tokens_map.json overrides a config without added_tokens_decoder */
    char *map = da_path_join(sub, "special_tokens_map.json");
    write_text(map, "{\"pad_token\": {\"content\": \"<|endoftext|>\", \"lstrip\": false}}");
    ck_assert_msg(da_tokenizer_load(dir, &t, &e) == DA_OK, "%s", e.msg);
    ck_assert_int_eq(da_tokenizer_pad_id(t), 49407);
    da_tokenizer_free(t);
    /* a pad token that is not in the vocabulary is an error naming it */
    write_text(map, "{\"pad_token\": \"<|pad|>\"}");
    ck_assert_int_eq(da_tokenizer_load(dir, &t, &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "<|pad|>"));
    free(map), free(cfg), free(sub);
    da_rmtree(dir);
    free(dir);
    da_json_free(j);
}
END_TEST

START_TEST(test_truncation) {
    char *vj = tokfile("vocab.json"), *mt = tokfile("merges.txt");
    da_tokenizer *t;
    da_error e;
    ck_assert_msg(da_tokenizer_load_files(vj, mt, &t, &e) == DA_OK, "%s", e.msg);
    int32_t ids[8], mask[8];
    da_tok_output o;
    /* "a photo of a cat" = 320 1125 539 320 2368 */
    ck_assert_int_eq(da_tokenizer_encode(t, "a photo of a cat", 5, true, ids, mask, &o, &e), DA_OK);
    int32_t want[5] = {49406, 320, 1125, 539, 49407};
    for (int i = 0; i < 5; i++) ck_assert_int_eq(ids[i], want[i]);
    ck_assert(o.truncated);
    ck_assert_uint_eq(o.n_full, 7);
    ck_assert_int_eq(o.length, 5);
    ck_assert_int_eq(da_tokenizer_encode(t, "a photo of a cat", 2, false, ids, NULL, &o, &e), DA_OK);
    ck_assert(ids[0] == 49406 && ids[1] == 49407 && o.n_written == 2 && o.truncated);
    ck_assert_int_eq(da_tokenizer_encode(t, "a photo of a cat", 8, false, ids, mask, &o, &e), DA_OK);
    ck_assert(!o.truncated && o.n_written == 7 && o.length == 7 && ids[6] == 49407);
    ck_assert_int_eq(da_tokenizer_encode(t, "a photo of a cat", 8, true, ids, mask, &o, &e), DA_OK);
    ck_assert(o.n_written == 8 && ids[7] == 49407 && mask[7] == 0 && mask[6] == 1);
    ck_assert_int_eq(da_tokenizer_encode(t, "x", 1, true, ids, mask, &o, &e), DA_ERR_INVALID_ARG);
    /* raw ids: no specials, no truncation */
    int32_t *raw;
    size_t n;
    ck_assert_int_eq(da_tokenizer_encode_raw(t, "cat 1234", &raw, &n, &e), DA_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert(raw[0] == 2368 && raw[1] == 272 && raw[4] == 275); /* digits one per token */
    free(raw);
    /* invalid UTF-8 is an error naming the offset */
    ck_assert_int_eq(da_tokenizer_encode(t, "ok \xC3(", 77, true, ids, mask, &o, &e), DA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "offset 3"));
    ck_assert_int_eq(da_tokenizer_encode_raw(t, "\xED\xA0\x80", &raw, &n, &e), DA_ERR_INVALID_ARG); /* surrogate */
    ck_assert_int_eq(da_tokenizer_encode_raw(t, "\xC0\xAF", &raw, &n, &e), DA_ERR_INVALID_ARG);     /* overlong */
    da_tokenizer_free(t);
    free(vj), free(mt);
}
END_TEST

START_TEST(test_cli) {
    char *vj = tokfile("vocab.json"), *dir = tokdir(), *out = NULL;
    int rc = da_test_sh(&out, "%s tokenize --vocab '%s' --no-pad 'a photo of a cat' 'Autumn' '' 2>&1", da_test_cli(), vj);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
    ck_assert_str_eq(out, "[49406, 320, 1125, 539, 320, 2368, 49407]\n[49406, 6110, 49407]\n[49406, 49407]\n");
    free(out);
    /* padded by default to 77 with the pad id; --max-length; truncation warns on stderr only */
    rc = da_test_sh(&out, "%s tokenize --model '%s' 'rain' 2>/dev/null | tr -cd ',' | wc -c", da_test_cli(), dir);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(atoi(out), 76);
    free(out);
    rc = da_test_sh(&out, "%s tokenize --model '%s' --max-length 4 'a photo of a cat' 2>&1 >/dev/null", da_test_cli(), dir);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "truncated to 4"));
    free(out);
    rc = da_test_sh(&out, "%s tokenize --model '%s' --max-length 4 'a photo of a cat' 2>/dev/null", da_test_cli(), dir);
    ck_assert_str_eq(out, "[49406, 320, 1125, 49407]\n");
    free(out);
    /* usage errors exit 2, load errors exit 1 naming the file */
    rc = da_test_sh(&out, "%s tokenize 'x' 2>&1", da_test_cli());
    ck_assert_int_eq(rc, 2);
    free(out);
    rc = da_test_sh(&out, "%s tokenize --model /nonexistent/model 'x' 2>&1", da_test_cli());
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/model"));
    free(out);
    free(vj), free(dir);
}
END_TEST

/* Load a tokenizer folder made of the real vocab.json and the given merges text; returns status. */
static da_status load_with_merges(const char *merges, da_error *e) {
    char *dir = da_test_tmpdir("tok");
    link_to(dir, "vocab.json");
    char *mp = da_path_join(dir, "merges.txt");
    write_text(mp, merges);
    da_tokenizer *t = NULL;
    da_status st = da_tokenizer_load(dir, &t, e);
    if (st == DA_OK) {
        int32_t *ids;
        size_t n;
        ck_assert_int_eq(da_tokenizer_encode_raw(t, "the", &ids, &n, e), DA_OK);
        /* with only "t h" and "th e</w>" merged, "the" is one token */
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(da_tokenizer_token(t, ids[0]), "the</w>");
        free(ids);
    } else {
        ck_assert_ptr_nonnull(strstr(e->msg, "merges.txt"));
    }
    da_tokenizer_free(t);
    free(mp);
    da_rmtree(dir);
    free(dir);
    return st;
}

START_TEST(test_errors) {
    da_tokenizer *t = (da_tokenizer *)1;
    da_error e;
    /* missing things name the path */
    ck_assert_int_eq(da_tokenizer_load("/nonexistent/sd15", &t, &e), DA_ERR_NOT_FOUND);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent/sd15"));
    char *dir = da_test_tmpdir("tok");
    ck_assert_int_eq(da_tokenizer_load(dir, &t, &e), DA_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "vocab.json"));
    link_to(dir, "vocab.json");
    ck_assert_int_eq(da_tokenizer_load(dir, &t, &e), DA_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "merges.txt"));
    da_rmtree(dir);
    free(dir);
    /* a good minimal merge list, with and without the version header */
    ck_assert_int_eq(load_with_merges("#version: 0.2\nt h\nth e</w>\n", &e), DA_OK);
    ck_assert_int_eq(load_with_merges("t h\nth e</w>", &e), DA_OK);
    /* corrupt merges: wrong field count, unknown token, result not in the vocabulary */
    ck_assert_int_eq(load_with_merges("#version: 0.2\nt h\nthe\n", &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "line 3"));
    ck_assert_int_eq(load_with_merges("t h x\n", &e), DA_ERR_FORMAT);
    ck_assert_int_eq(load_with_merges("t h\n\nth e</w>\n", &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "line 2"));
    ck_assert_int_eq(load_with_merges("t h\nzzzzqqq e</w>\n", &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "zzzzqqq"));
    ck_assert_int_eq(load_with_merges("t h\nq x\n", &e), DA_ERR_FORMAT); /* "qx" is no token */
    ck_assert_ptr_nonnull(strstr(e.msg, "no 'qx'"));
    /* vocab.json that is not an object of ids */
    dir = da_test_tmpdir("tok");
    char *vp = da_path_join(dir, "vocab.json"), *mp = da_path_join(dir, "merges.txt");
    write_text(mp, "");
    write_text(vp, "[1, 2]");
    ck_assert_int_eq(da_tokenizer_load(vp, &t, &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "vocab.json"));
    write_text(vp, "{\"a\": \"x\"}");
    ck_assert_int_eq(da_tokenizer_load(dir, &t, &e), DA_ERR_FORMAT);
    write_text(vp, "{\"a\": 1, \"b\": 1}");
    ck_assert_int_eq(da_tokenizer_load(dir, &t, &e), DA_ERR_DUPLICATE);
    write_text(vp, "{\"a\": 0, \"b\": 1}"); /* no byte-level symbols */
    ck_assert_int_eq(da_tokenizer_load(dir, &t, &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "byte"));
    /* a .gz that is too short, and a file that is no tokenizer at all */
    char *gz = da_path_join(dir, "bpe.txt.gz");
    write_text(gz, "#version: 0.2\nt h\n"); /* zlib reads plain text through gzread as is */
    ck_assert_int_eq(da_tokenizer_load(gz, &t, &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "bpe.txt.gz"));
    ck_assert_int_eq(da_tokenizer_load(mp, &t, &e), DA_ERR_UNSUPPORTED);
    free(gz), free(vp), free(mp);
    da_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = da_tcase("tokenizer", "fast", 30);
    tcase_add_test(tc, test_cases_vocab_json);
    tcase_add_test(tc, test_cases_bpe_gz_and_same_vocab);
    tcase_add_test(tc, test_config_pad_and_diffusers_layout);
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_cli);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(tokenizer_suite)
