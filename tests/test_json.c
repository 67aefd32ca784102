/* test_json.c - the strict JSON reader (engine/json.c) against RFC 8259: tables of valid and invalid
 * documents (depth, escapes, surrogates, numbers, literals, trailing garbage), exact int64 numbers,
 * typed lookups, duplicate-key detection, no reads past len, and speed on a vocab.json-sized object.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "testutil.h"
#include "util.h"

/* Parse a copy placed at the very end of a heap block, so any read past len hits ASan's redzone
 * in the sanitizer build (and the text is never NUL-terminated). */
static da_status parse_exact(const char *text, size_t len, da_json **out, da_error *e) {
    char *buf = malloc(len ? len : 1);
    memcpy(buf, text, len);
    da_status st = da_json_parse(buf, len, "doc.json", out, e);
    free(buf);
    return st;
}

static const char *valid_docs[] = {
    "{}", "[]", " \t\r\n{ } \n", "0", "-0", "1.5e10", "-1.25E-3", "1e+2", "true", "false", "null",
    "\"\"", "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "\"\\u0041\\u00e9\\u4e2d\"", "\"\\ud83d\\ude00\"",
    "\"h\xc3\xa9llo \xe4\xb8\xad \xf0\x9f\x98\x80\"", "[1,[2,[3,{\"a\":[]}]]]",
    "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}", "{\"a\":1,\"a\":2}", "123456789012345678901234567890",
    "1E400", "\"\\u0000\"", "[ 1 , 2 ]",
};

typedef struct bad_doc {
    const char *text;
    size_t at; /* expected byte offset in the message */
    const char *why;
} bad_doc;

static const bad_doc invalid_docs[] = {
    {"", 0, "end of text"},
    {"   ", 3, "end of text"},
    {"{", 1, "string key expected"},
    {"[", 1, "end of text"},
    {"[1,]", 3, "unexpected character"},
    {"{\"a\":1,}", 7, "string key expected"},
    {"{\"a\" 1}", 5, "':' expected"},
    {"{1:2}", 1, "string key expected"},
    {"[1 2]", 3, "',' or ']'"},
    {"{\"a\":1 \"b\":2}", 7, "',' or '}'"},
    {"01", 0, "leading zero"},
    {"-01", 0, "leading zero"},
    {"1.", 0, "decimal point"},
    {".5", 0, "unexpected character"},
    {"1e", 0, "exponent"},
    {"1e+", 0, "exponent"},
    {"+1", 0, "unexpected character"},
    {"-", 0, "invalid number"},
    {"NaN", 0, "unexpected character"},
    {"Infinity", 0, "unexpected character"},
    {"-Infinity", 0, "invalid number"},
    {"0x10", 1, "trailing"},
    {"tru", 0, "invalid literal"},
    {"nul", 0, "invalid literal"},
    {"True", 0, "unexpected character"},
    {"{} x", 3, "trailing"},
    {"[] []", 3, "trailing"},
    {"\"abc", 0, "unterminated string"},
    {"\"a\\", 0, "unterminated string"},
    {"\"a\tb\"", 2, "control character"},
    {"\"a\nb\"", 2, "control character"},
    {"\"\\x\"", 1, "invalid escape"},
    {"\"\\u12\"", 1, "\\u escape"},
    {"\"\\u12G4\"", 1, "\\u escape"},
    {"\"\\ud800\"", 1, "lone high surrogate"},
    {"\"\\ud800x\"", 1, "lone high surrogate"},
    {"\"\\ud800\\u0041\"", 1, "not followed by a low surrogate"},
    {"\"\\udc00\"", 1, "lone low surrogate"},
    {"\"\xc0\xaf\"", 1, "invalid UTF-8"},      /* overlong '/' */
    {"\"\xed\xa0\x80\"", 1, "invalid UTF-8"},  /* encoded surrogate */
    {"\"\xf4\x90\x80\x80\"", 1, "invalid UTF-8"}, /* above U+10FFFF */
    {"\"\xe4\xb8\"", 1, "invalid UTF-8"},      /* truncated sequence */
    {"\"\xff\"", 1, "invalid UTF-8"},
    {"// c\n{}", 0, "unexpected character"},
    {"{'a':1}", 1, "string key expected"},
    {"[1]\x00", 3, "trailing"},
};

START_TEST(test_valid_table) {
    for (size_t i = 0; i < sizeof valid_docs / sizeof *valid_docs; i++) {
        da_json *j = NULL;
        da_error e;
        da_status st = parse_exact(valid_docs[i], strlen(valid_docs[i]), &j, &e);
        ck_assert_msg(st == DA_OK, "valid doc %zu '%s' rejected: %s", i, valid_docs[i], e.msg);
        da_json_free(j);
    }
}
END_TEST

START_TEST(test_invalid_table) {
    for (size_t i = 0; i < sizeof invalid_docs / sizeof *invalid_docs; i++) {
        const bad_doc *b = &invalid_docs[i];
        size_t len = strlen(b->text);
        if (i == sizeof invalid_docs / sizeof *invalid_docs - 1) len = 4; /* the embedded NUL row */
        da_json *j = (da_json *)1;
        da_error e;
        da_status st = parse_exact(b->text, len, &j, &e);
        ck_assert_msg(st == DA_ERR_FORMAT, "invalid doc %zu '%s' gave status %d", i, b->text, st);
        ck_assert_ptr_null(j);
        char want[64];
        snprintf(want, sizeof want, "doc.json: JSON error at byte %zu:", b->at);
        ck_assert_msg(strstr(e.msg, want) != NULL, "doc %zu '%s': message '%s' lacks '%s'", i, b->text, e.msg, want);
        ck_assert_msg(strstr(e.msg, b->why) != NULL, "doc %zu '%s': message '%s' lacks '%s'", i, b->text, e.msg,
                      b->why);
    }
}
END_TEST

static char *nested(int depth, char open, char close) {
    char *s = malloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) {
        s[i] = open;
        s[2 * depth - 1 - i] = close;
    }
    s[2 * depth] = 0;
    return s;
}

START_TEST(test_depth_limit) {
    da_json *j;
    da_error e;
    char *ok = nested(DA_JSON_MAX_DEPTH, '[', ']');
    ck_assert_int_eq(parse_exact(ok, strlen(ok), &j, &e), DA_OK);
    da_json_free(j);
    char *bad = nested(DA_JSON_MAX_DEPTH + 1, '[', ']');
    ck_assert_int_eq(parse_exact(bad, strlen(bad), &j, &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "nesting deeper than 64"));
    ck_assert_ptr_nonnull(strstr(e.msg, "at byte 64"));
    free(ok);
    free(bad);
    /* objects count too, and a huge unterminated nest stops at the limit without recursing on */
    da_buf b = {0};
    for (int i = 0; i < 100000; i++) da_buf_append(&b, "{\"a\":", 5);
    ck_assert_int_eq(parse_exact(b.data, b.len, &j, &e), DA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "nesting"));
    da_buf_free(&b);
}
END_TEST

START_TEST(test_strings_decoded) {
    da_json *j;
    da_error e;
    const char *doc = "{\"k\":\"A\\u00e9\\u4e2d\\ud83d\\ude00\\n\\u0000z\",\"\\u0041\":1}";
    ck_assert_int_eq(parse_exact(doc, strlen(doc), &j, &e), DA_OK);
    const da_json *v = da_json_get(j, "k");
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(v->type, DA_JSON_STRING);
    const char want[] = "A\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\n\0z";
    ck_assert_uint_eq(v->len, sizeof want - 1);
    ck_assert(memcmp(v->str, want, sizeof want) == 0); /* NUL terminator included */
    int64_t x;
    ck_assert(da_json_get_int(j, "A", &x) && x == 1); /* escaped key decoded too */
    ck_assert_uint_eq(j->key_lens[1], 1);
    da_json_free(j);
}
END_TEST

START_TEST(test_numbers) {
    da_json *j;
    da_error e;
    const char *doc = "{\"big\":9007199254740993,\"max\":9223372036854775807,\"min\":-9223372036854775808,"
                      "\"over\":9223372036854775808,\"under\":-9223372036854775809,\"frac\":2.0,\"exp\":1e3,"
                      "\"neg0\":-0,\"pi\":3.14159,\"huge\":1e400,\"tiny\":-2.5e-3}";
    ck_assert_int_eq(parse_exact(doc, strlen(doc), &j, &e), DA_OK);
    int64_t i;
    double d;
    ck_assert(da_json_get_int(j, "big", &i));
    ck_assert(i == INT64_C(9007199254740993)); /* not representable as double: exact path needed */
    ck_assert(da_json_get_int(j, "max", &i) && i == INT64_MAX);
    ck_assert(da_json_get_int(j, "min", &i) && i == INT64_MIN);
    ck_assert(!da_json_get_int(j, "over", &i));
    ck_assert(da_json_get_num(j, "over", &d) && d == 9223372036854775808.0);
    ck_assert(!da_json_get_int(j, "under", &i));
    ck_assert(!da_json_get_int(j, "frac", &i)); /* has a fraction: not an integer literal */
    ck_assert(da_json_get_num(j, "frac", &d) && d == 2.0);
    ck_assert(!da_json_get_int(j, "exp", &i));
    ck_assert(da_json_get_num(j, "exp", &d) && d == 1000.0);
    ck_assert(da_json_get_int(j, "neg0", &i) && i == 0);
    ck_assert(da_json_get_num(j, "pi", &d) && d == 3.14159);
    ck_assert(da_json_get_num(j, "huge", &d) && isinf(d));
    ck_assert(da_json_get_num(j, "tiny", &d) && d == -2.5e-3);
    da_json_free(j);
    /* a number at the very end of an unterminated buffer: "12" followed by bytes outside len */
    const char buf[] = "1234";
    ck_assert_int_eq(da_json_parse(buf, 2, "doc.json", &j, &e), DA_OK);
    ck_assert(j->is_int && j->inum == 12);
    da_json_free(j);
    /* a long number literal (longer than the on-stack copy) */
    da_buf b = {0};
    da_buf_append(&b, "1.", 2);
    for (int k = 0; k < 200; k++) da_buf_append(&b, "5", 1);
    ck_assert_int_eq(parse_exact(b.data, b.len, &j, &e), DA_OK);
    ck_assert(fabs(j->num - 1.5555555555555556) < 1e-15 && !j->is_int);
    da_json_free(j);
    da_buf_free(&b);
}
END_TEST

START_TEST(test_lookups_and_dups) {
    da_json *j;
    da_error e;
    const char *doc = "{\"s\":\"x\",\"t\":true,\"f\":false,\"n\":null,\"a\":[1,2],\"i\":7}";
    ck_assert_int_eq(parse_exact(doc, strlen(doc), &j, &e), DA_OK);
    bool bv;
    int64_t iv;
    double dv;
    ck_assert_str_eq(da_json_get_str(j, "s"), "x");
    ck_assert_ptr_null(da_json_get_str(j, "t"));
    ck_assert(da_json_get_bool(j, "t", &bv) && bv);
    ck_assert(da_json_get_bool(j, "f", &bv) && !bv);
    ck_assert(!da_json_get_bool(j, "n", &bv));
    ck_assert(!da_json_get_int(j, "s", &iv));
    ck_assert(!da_json_get_num(j, "missing", &dv));
    ck_assert_int_eq(da_json_get(j, "n")->type, DA_JSON_NULL);
    ck_assert_uint_eq(da_json_get(j, "a")->n, 2);
    ck_assert_ptr_null(da_json_get(da_json_get(j, "a"), "x")); /* not an object */
    ck_assert_int_eq(da_json_find_dup(j), -1);
    da_json_free(j);

    const char *dup = "{\"b\":1,\"a\":2,\"c\":3,\"a\":4,\"b\":5}";
    ck_assert_int_eq(parse_exact(dup, strlen(dup), &j, &e), DA_OK);
    ck_assert_int_eq(da_json_find_dup(j), 3); /* the first repeat in document order */
    int64_t first;
    ck_assert(da_json_get_int(j, "a", &first) && first == 2);
    da_json_free(j);
    /* keys differing only after an embedded NUL are distinct */
    const char *nul = "{\"a\\u0000b\":1,\"a\\u0000c\":2,\"a\":3}";
    ck_assert_int_eq(parse_exact(nul, strlen(nul), &j, &e), DA_OK);
    ck_assert_int_eq(da_json_find_dup(j), -1);
    da_json_free(j);
    ck_assert_int_eq(da_json_find_dup(NULL), -1);
}
END_TEST

START_TEST(test_vocab_speed) {
    /* a vocab.json-shaped object of ~1 MB: 49408 keys as in CLIP's tokenizer */
    da_buf b = {0};
    da_buf_append(&b, "{", 1);
    for (int i = 0; i < 49408; i++) da_buf_printf(&b, "%s\"tok\\u00e9n%05d</w>\": %d", i ? ", " : "", i, i);
    da_buf_append(&b, "}", 1);
    ck_assert(b.len > 1000000);
    da_json *j;
    da_error e;
    double t0 = da_now();
    ck_assert_int_eq(da_json_parse(b.data, b.len, "vocab.json", &j, &e), DA_OK);
    long dup = da_json_find_dup(j);
    double dt = da_now() - t0;
    ck_assert_int_eq(dup, -1);
    ck_assert_uint_eq(j->n, 49408);
    ck_assert_str_eq(j->keys[49407], "tok\xc3\xa9n49407</w>");
    ck_assert(j->items[49407].inum == 49407);
    /* generous for sanitizer builds; the optimised build takes a few ms */
    ck_assert_msg(dt < 0.5, "parsing 1 MB took %.1f ms", dt * 1e3);
    da_json_free(j);
    da_buf_free(&b);
}
END_TEST

static Suite *json_suite(void) {
    Suite *s = suite_create("json");
    TCase *tc = da_tcase("json", "fast", 30);
    tcase_add_test(tc, test_valid_table);
    tcase_add_test(tc, test_invalid_table);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_strings_decoded);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_lookups_and_dups);
    tcase_add_test(tc, test_vocab_speed);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(json_suite)
