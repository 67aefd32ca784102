/* tokenizer.h - the CLIP byte-level BPE tokenizer (SD 1.x, InstructPix2Pix, CLIP ViT text towers).
 *
 * Mirrors transformers' CLIPTokenizer as transformers 5 ships it (a `tokenizers`-backed class;
 * CLIPTokenizerFast is the same class): special tokens matched verbatim in the raw text, then per
 * segment NFC, runs of whitespace -> one space, lower case (per code point), the CLIP split regex
 * <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * then GPT-2 byte-to-unicode mapping, BPE by merge rank with "</w>" on the last symbol of a word,
 * and <|startoftext|> ... <|endoftext|> around the ids (openai/CLIP simple_tokenizer.py for the
 * vocabulary built from bpe_simple_vocab_16e6.txt.gz). docs/TOKENIZER.md has the details.
 *
 * A loaded tokenizer is read-only except for an internal word cache guarded by a mutex, so one
 * handle may be shared between threads.
 */
#ifndef DA_TOKENIZER_H
#define DA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diffaug.h"

typedef struct da_tokenizer da_tokenizer;

/* CLIP's context length: every SD 1.x prompt is padded/truncated to this many ids. */
#define DA_CLIP_MAX_LENGTH 77

/* Load from PATH, which may be:
 *   - a model folder: PATH/tokenizer/ (diffusers) is tried first, then PATH/ (transformers CLIP);
 *     the folder holds vocab.json + merges.txt, and optionally tokenizer_config.json and
 *     special_tokens_map.json, whose bos/eos/unk/pad tokens and model_max_length are followed;
 *   - a vocab.json file (merges.txt beside it), or
 *   - OpenAI's bpe_simple_vocab_16e6.txt.gz (the vocabulary is built as simple_tokenizer.py does:
 *     bytes, bytes + "</w>", the first 48894 merges, <|startoftext|>, <|endoftext|>).
 * Errors name the file and the problem (missing file, malformed merges line, a merge whose tokens
 * or result are not in the vocabulary). */
da_status da_tokenizer_load(const char *path, da_tokenizer **out, da_error *err);
/* Load vocab.json + merges.txt given explicitly (no config: CLIP defaults, pad = <|endoftext|>). */
da_status da_tokenizer_load_files(const char *vocab_json, const char *merges_txt, da_tokenizer **out,
                                  da_error *err);
/* Load OpenAI's gzip'd merge list. */
da_status da_tokenizer_load_bpe_gz(const char *path, da_tokenizer **out, da_error *err);
void da_tokenizer_free(da_tokenizer *t);

/* Make `token` the pad token, as a pad_token entry in tokenizer_config.json would: padding uses its
 * id, and like every special token it is matched verbatim in the raw text (SDXL's tokenizer_2
 * pads with "!", id 0, so a "!" in a prompt becomes 0 as in transformers). For a tokenizer loaded
 * without its folder (a single-file SDXL checkpoint has none): da_tokenizer_set_pad(tok, "!", err)
 * gives tokenizer_2. Not thread-safe: call before sharing the handle. */
da_status da_tokenizer_set_pad(da_tokenizer *t, const char *token, da_error *err);
int32_t da_tokenizer_bos_id(const da_tokenizer *t);   /* <|startoftext|> (49406) */
int32_t da_tokenizer_eos_id(const da_tokenizer *t);   /* <|endoftext|>   (49407) */
int32_t da_tokenizer_pad_id(const da_tokenizer *t);   /* from the config; = eos for SD 1.x */
int da_tokenizer_max_length(const da_tokenizer *t);   /* model_max_length, 77 unless the config says */
size_t da_tokenizer_vocab_size(const da_tokenizer *t); /* 1 + the largest id */
/* The token string of an id in its byte-level form ("photo</w>"), NULL when id is not in the vocab. */
const char *da_tokenizer_token(const da_tokenizer *t, int32_t id);

/* The ids of text (UTF-8, NUL-terminated) with no special tokens added and no truncation.
 * *ids is malloc'd (NULL when *n == 0). Invalid UTF-8 is an error naming the byte offset. */
da_status da_tokenizer_encode_raw(da_tokenizer *t, const char *text, int32_t **ids, size_t *n, da_error *err);

typedef struct da_tok_output {
    int length;      /* ids that are real tokens, <|startoftext|> and <|endoftext|> included */
    int n_written;   /* ids written: max_length when padding, else length */
    size_t n_full;   /* length without truncation (bos + text tokens + eos) */
    bool truncated;  /* n_full > max_length: text tokens were dropped, eos kept as the last id */
} da_tok_output;

/* CLIPTokenizer(text, padding="max_length" (pad) or no padding, max_length, truncation=True):
 * [bos, text ids..., eos], text ids cut so the whole fits max_length (>= 2), then, when pad, filled
 * with the pad id to max_length. ids (and mask, may be NULL: 1 for real tokens, 0 for padding)
 * must hold max_length entries. */
da_status da_tokenizer_encode(da_tokenizer *t, const char *text, int max_length, bool pad, int32_t *ids,
                              int32_t *mask, da_tok_output *out, da_error *err);

#endif /* DA_TOKENIZER_H */
