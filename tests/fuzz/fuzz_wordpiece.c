/* fuzz_wordpiece.c - libFuzzer target for the WordPiece tokenizer (engine/wordpiece.c) and the JSON
 * reader under its config loading. The first byte picks what the rest is:
 *   even: a text, encoded by the test tokenizer (tests/data/wordpiece/blip, loaded once; run from
 *         the repository root) with and without special tokens and at several caps, the ids decoded
 *         back with and without skip_special; the bytes also decoded as a raw id list;
 *   odd:  a tokenizer folder, "\n--\n"-separated parts: vocab.txt, tokenizer_config.json,
 *         added_tokens.json, special_tokens_map.json (absent parts: no file), then a text encoded
 *         and decoded by it when it loads.
 * Invariants checked (abort on failure): ids inside the vocabulary, truncation keeps a prefix (and
 * [SEP] last), the full length reported is the untruncated count, decode never fails.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "wordpiece.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const da_wordpiece *w, const char *text) {
    size_t len = strlen(text);
    int cap = (int)len + 2;
    int32_t *full = malloc((size_t)cap * sizeof *full), *part = malloc((size_t)cap * sizeof *part);
    if (!full || !part) abort();
    da_error err;
    for (int special = 0; special < 2; special++) {
        int n, m;
        size_t n_full, m_full;
        da_status st = da_wordpiece_encode_full(w, text, special, full, cap, &n, &n_full, &err);
        if (st != DA_OK) {
            if (st != DA_ERR_INVALID_ARG || da_utf8_invalid_at(text, len) < 0) abort();
            continue;
        }
        if ((size_t)n != n_full) abort(); /* one id per byte at most, plus [CLS] and [SEP] */
        for (int i = 0; i < n; i++) {
            /* BertTokenizer's template uses ids 2 and 3 when the config names no [CLS] / [SEP] */
            bool fallback = special && ((i == 0 && da_wordpiece_cls_id(w) < 0) || (i == n - 1 && da_wordpiece_sep_id(w) < 0));
            if (!fallback && (full[i] < 0 || full[i] >= da_wordpiece_vocab_size(w))) abort();
        }
        const int caps[] = {0, 1, 2, 3, 7};
        for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
            if (da_wordpiece_encode_full(w, text, special, part, caps[c], &m, &m_full, &err) != DA_OK) abort();
            if (m_full != n_full || m > caps[c] || m > n) abort();
            int body = special && caps[c] >= 2 && m == caps[c] ? m - 1 : m;
            for (int i = 0; i < body; i++)
                if (part[i] != full[i]) abort();
            if (special && caps[c] >= 2 && part[m - 1] != full[n - 1]) abort();
        }
        for (int skip = 0; skip < 2; skip++) {
            char *s = da_wordpiece_decode(w, full, n, skip);
            if (!s) abort();
            free(s);
        }
    }
    free(full), free(part);
}

static const da_wordpiece *fixed(void) {
    static da_wordpiece *w;
    if (!w) {
        da_error err;
        if (da_wordpiece_load("tests/data/wordpiece/blip", &w, &err) != DA_OK) {
            fprintf(stderr, "fuzz_wordpiece: %s (run from the repository root)\n", err.msg);
            abort();
        }
    }
    return w;
}

static char *tmp_dir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_wordpiece.%d", (int)getpid());
        da_error err;
        if (da_mkdirs(dir, &err) != DA_OK) abort();
    }
    return dir;
}

static void put_file(const char *dir, const char *name, const uint8_t *p, size_t n, bool present) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!present) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (!(data[0] & 1)) {
        const da_wordpiece *w = fixed();
        char *text = malloc(size);
        if (!text) return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = 0;
        check_text(w, text);
        /* the bytes as an id list (out-of-range ids are skipped) */
        size_t n = (size - 1) / 2;
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        if (ids) {
            for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(data[1 + 2 * i] | data[2 + 2 * i] << 8) - 64;
            for (int skip = 0; skip < 2; skip++) free(da_wordpiece_decode(w, ids, (int)n, skip));
            free(ids);
        }
        free(text);
        return 0;
    }
    static const char *const names[] = {"vocab.txt", "tokenizer_config.json", "added_tokens.json",
                                        "special_tokens_map.json"};
    const char *dir = tmp_dir();
    const uint8_t *p = data + 1, *end = data + size;
    for (int part = 0; part < 4; part++) {
        const uint8_t *sep = p < end ? memmem(p, (size_t)(end - p), "\n--\n", 4) : NULL;
        const uint8_t *stop = sep ? sep : end;
        put_file(dir, names[part], p, (size_t)(stop - p), p < end || part == 0);
        p = sep ? sep + 4 : end;
    }
    da_wordpiece *w = NULL;
    da_error err;
    if (da_wordpiece_load(dir, &w, &err) == DA_OK) {
        check_text(w, "Hello, [DEC] world! caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 unaffable a##b [UNK]x");
        char *text = malloc((size_t)(end - p) + 1);
        if (text) {
            memcpy(text, p, (size_t)(end - p));
            text[end - p] = 0;
            check_text(w, text);
            free(text);
        }
        for (int32_t id = -1; id <= da_wordpiece_vocab_size(w); id++) (void)da_wordpiece_token(w, id);
        da_wordpiece_free(w);
    } else if (!err.msg[0]) {
        abort(); /* every failure says why */
    }
    return 0;
}
