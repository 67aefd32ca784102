/* wordpiece.h - the BERT WordPiece tokenizer (BLIP's text decoder: bert-base-uncased + [DEC], [ENC]).
 *
 * Mirrors transformers 5's BertTokenizer, which is the `tokenizers`-backed class (BertTokenizerFast
 * is an alias of it; the Python BasicTokenizer lives on as BertTokenizerLegacy and is not what
 * AutoTokenizer or BlipProcessor instantiate):
 *   - added/special tokens ([CLS], [SEP], [PAD], [UNK], [MASK], bos [DEC], [ENC], added_tokens.json)
 *     are cut out of the raw text first (leftmost-longest); "normalized" added tokens are cut out of
 *     the normalized text instead;
 *   - BertNormalizer: drop NUL, U+FFFD and "other"-category characters, whitespace -> ' ', spaces
 *     around CJK ideographs, then (strip_accents, which defaults to do_lower_case) NFD and drop
 *     non-spacing marks, then (do_lower_case) lower case;
 *   - BertPreTokenizer: split on spaces, isolate punctuation;
 *   - WordPiece: greedy longest-match-first with "##" continuations; a word longer than 100 code
 *     points, or one that cannot be covered, becomes [UNK];
 *   - [CLS] ... [SEP] around the ids when special tokens are added.
 * Decoding is tokenizers' WordPiece decoder (" " before every token but the first, "##" removed,
 * its per-token clean-up) and then, when the config's clean_up_tokenization_spaces is true,
 * transformers' clean_up_tokenization. docs/TOKENIZER.md has the details and the Unicode data.
 *
 * A loaded tokenizer is read-only: one handle may be shared between threads.
 */
#ifndef DA_WORDPIECE_H
#define DA_WORDPIECE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diffaug.h"

typedef struct da_wordpiece da_wordpiece;

/* path: a folder holding vocab.txt (+ optional tokenizer_config.json: do_lower_case,
 * tokenize_chinese_chars, strip_accents, model_max_length, clean_up_tokenization_spaces, special
 * tokens, added_tokens_decoder; special_tokens_map.json and added_tokens.json, read as transformers
 * does when the config has no added_tokens_decoder), or a vocab.txt file (BertTokenizer defaults).
 * Errors name the file and the problem. */
da_status da_wordpiece_load(const char *path, da_wordpiece **out, da_error *err);
void da_wordpiece_free(da_wordpiece *w);
int da_wordpiece_vocab_size(const da_wordpiece *w);                      /* including added tokens */
int32_t da_wordpiece_token_id(const da_wordpiece *w, const char *token); /* -1 when absent */
const char *da_wordpiece_token(const da_wordpiece *w, int32_t id);       /* NULL when out of range */
/* Special ids (-1 when the vocab has none): */
int32_t da_wordpiece_cls_id(const da_wordpiece *w), da_wordpiece_sep_id(const da_wordpiece *w),
    da_wordpiece_pad_id(const da_wordpiece *w), da_wordpiece_unk_id(const da_wordpiece *w);
/* The config's bos_token (BLIP: [DEC], the text decoder's first input) and mask_token; -1 when
 * the config names none or the vocab lacks it. */
int32_t da_wordpiece_bos_id(const da_wordpiece *w), da_wordpiece_mask_id(const da_wordpiece *w);
/* model_max_length from the config (512 for BERT), 0 when the config gives none or a huge one. */
int da_wordpiece_max_length(const da_wordpiece *w);

/* text -> ids as BertTokenizer(text, add_special_tokens=add_special) (ids [CLS] ... [SEP] when
 * add_special), truncated to cap; *n receives the count written. Truncation follows transformers'
 * truncation=True, max_length=cap: with add_special and cap >= 2 the last id stays [SEP].
 * Invalid UTF-8 is an error (naming the byte offset). n_full (may be NULL) receives the length
 * before truncation. */
da_status da_wordpiece_encode(const da_wordpiece *w, const char *text, bool add_special, int32_t *ids, int cap,
                              int *n, da_error *err);
da_status da_wordpiece_encode_full(const da_wordpiece *w, const char *text, bool add_special, int32_t *ids,
                                   int cap, int *n, size_t *n_full, da_error *err);
/* ids -> malloc'd text as tokenizer.decode(ids, skip_special_tokens=skip_special) with the tokenizer's
 * clean_up_tokenization_spaces setting; ids outside the vocabulary are skipped (as tokenizers does).
 * NULL only on out-of-memory. */
char *da_wordpiece_decode(const da_wordpiece *w, const int32_t *ids, int n, bool skip_special);

#endif /* DA_WORDPIECE_H */
