/* blip.h - the BLIP captioner: transformers' BlipForConditionalGeneration (vision encoder + BERT-style
 * text decoder with cross-attention) and its generate() (greedy and beam search).
 *
 * Mirrors transformers 5.23:
 *   - models/blip/modeling_blip.py BlipVisionModel (patch conv with bias, class + position embeddings,
 *     pre-LN encoder layers with a fused qkv linear and `projection`, GELU MLP, post_layernorm on every
 *     token: image_embeds = last_hidden_state), BlipForConditionalGeneration.generate (input_ids[:, 0]
 *     = bos ([DEC]), the prompt's trailing [SEP] dropped, eos = sep_token_id, pad = pad_token_id);
 *   - models/blip/modeling_blip_text.py BlipTextLMHeadModel (word + absolute position embeddings and
 *     LayerNorm; post-LN layers: causal self-attention, cross-attention to the image tokens, GELU MLP;
 *     LM head: dense, GELU, LayerNorm, decoder tied to the word embeddings + bias);
 *   - image_processing_pil_blip.py BlipImageProcessorPil (PIL bicubic resize to 384 x 384, x/255,
 *     OpenAI CLIP mean / std);
 *   - generation/utils.py _sample (greedy) and _beam_search with RepetitionPenaltyLogitsProcessor and
 *     MinNewTokensLengthLogitsProcessor (see docs/CAPTIONING.md for the exact step).
 *
 * The decoder keeps a key/value cache of its self-attention and computes the cross-attention keys
 * and values of each image once per generate call; beam rows of one image share those (rows are
 * image-major: row = image * beams + beam). Weights stay in their stored dtype in the model file's
 * mapping, which must stay open while the network lives. The CPU backend runs it; the backend
 * argument is the seam for others (any other is refused for now).
 */
#ifndef DA_BLIP_H
#define DA_BLIP_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "backend.h"
#include "diffaug.h"
#include "image.h"
#include "modelfile.h"
#include "wordpiece.h"

typedef struct da_blip da_blip;

/* Bind a BLIP folder's weights for backend be (NULL: the CPU). */
da_status da_blip_load(const da_model_file *m, da_backend *be, da_blip **out, da_error *err);
void da_blip_free(da_blip *b);
const da_model_config *da_blip_cfg(const da_blip *b);
/* Image tokens (grid^2 + 1) and their width (the vision hidden size). */
int da_blip_image_tokens(const da_blip *b);
int da_blip_image_width(const da_blip *b);

/* BlipImageProcessorPil: RGB image -> pixel_values [3, S, S] (S = image_size). */
da_status da_blip_preprocess(const da_blip *b, const da_image *im, float *out, da_error *err);

/* pixel_values [B, 3, S, S] -> image_embeds [B, T, Dv] (post_layernorm'd last_hidden_state) and
 * pooler_output [B, Dv] (post_layernorm applied again to token 0, as transformers does). Either output
 * may be NULL. */
da_status da_blip_vision_forward(const da_blip *b, da_backend *be, da_arena *a, const float *pixel_values, int B,
                                 float *image_embeds, float *pooler_output, da_error *err);

/* The decoder on whole sequences, no cache: ids [B, L] (host), image_embeds [B, T, Dv] -> logits
 * [B, L, V] (BlipTextLMHeadModel(...).logits with an all-ones attention mask). */
da_status da_blip_decoder_forward(const da_blip *b, da_backend *be, da_arena *a, const int32_t *ids, int B, int L,
                                  const float *image_embeds, float *logits, da_error *err);

typedef struct da_blip_gen_params {
    int num_beams;            /* 1: greedy (default) */
    int max_new_tokens;       /* tokens generated after the prompt, eos included (default 30) */
    int min_new_tokens;       /* eos is forbidden before this many new tokens (default 0) */
    float repetition_penalty; /* > 0; 1 = off (default) */
    float length_penalty;     /* beam search: finished scores / new_length^length_penalty (default 1) */
    int early_stopping;       /* beam search: 0 = transformers' False (default), 1 = True, -1 = "never" */
} da_blip_gen_params;
void da_blip_gen_params_init(da_blip_gen_params *p);

/* Generate from image_embeds [B, T, Dv] (host) after the prompt ids (shared by every image; the
 * first must be bos_token_id, as BLIP's generate sets it). out [B, cap] receives the new ids of each
 * image (eos included when it ended on eos), n_out[B] their counts (cap >= max_new_tokens). */
da_status da_blip_generate(const da_blip *b, da_backend *be, const float *image_embeds, int B, const int32_t *prompt,
                           int n_prompt, const da_blip_gen_params *p, int32_t *out, int cap, int *n_out,
                           da_error *err);

/* BlipProcessor's prompt for an optional text prefix: [bos] alone, or tokenizer(prefix) with
 * [CLS] replaced by bos and the trailing [SEP] dropped (what generate does to input_ids). ids has
 * room for cap; *n the count. */
da_status da_blip_prompt(const da_blip *b, const da_wordpiece *wp, const char *prefix, int32_t *ids, int cap, int *n,
                         da_error *err);

/* Caption n images in one batch: preprocess, vision forward, generate after the prompt of prefix
 * (NULL or "" for none), then tokenizer.decode(prompt + new ids, skip_special_tokens=True), so a
 * prefix starts the caption as transformers' example prints it. captions[i] is malloc'd. */
da_status da_blip_caption(const da_blip *b, da_backend *be, da_arena *a, const da_wordpiece *wp,
                          const da_image *const *images, int n, const char *prefix, const da_blip_gen_params *p,
                          char **captions, da_error *err);

#endif
