/* clip.h - the CLIP networks: SD 1.x's text encoder and the two towers of a CLIPModel.
 *
 * Mirrors transformers 5.23:
 *   - text: CLIPTextModel (last_hidden_state, pooler_output, hidden_states[-2]) and
 *     CLIPTextModelWithProjection (SDXL text_encoder_2) / CLIPModel.get_text_features
 *     (text_embeds = pooler_output @ text_projection^T);
 *   - vision: CLIPVisionModelWithProjection / CLIPModel.get_image_features (last_hidden_state before
 *     post_layernorm, pooler_output = post_layernorm(hidden[:, 0]), image_embeds).
 * Clip-skip follows diffusers StableDiffusionPipeline.encode_prompt: the hidden state after layer
 * N - k, then final_layer_norm.
 *
 * A network is bound once from an open model file (which must stay open while the network lives:
 * large weights are read from its mapping, in their stored dtype). Each forward plans its
 * activations first (no computation), then runs in one arena block: nothing is allocated inside
 * the forward itself. The caller's arena is reused while it is large enough. Inputs and outputs
 * are host memory; any output pointer may be NULL (not wanted).
 */
#ifndef DA_CLIP_H
#define DA_CLIP_H

#include <stdint.h>

#include "arena.h"
#include "backend.h"
#include "diffaug.h"
#include "image.h"
#include "modelfile.h"
#include "tokenizer.h"

typedef struct da_clip_text da_clip_text;
typedef struct da_clip_vision da_clip_vision;

/* ---- text ---------------------------------------------------------------------------------------- */

/* Bind the text tower of m. comp: DA_COMP_TEXT_ENCODER (SD text encoder, no projection),
 * DA_COMP_TEXT_ENCODER_2 (SDXL's OpenCLIP bigG, CLIPTextModelWithProjection: text_projection),
 * DA_COMP_CLIP (CLIPModel text tower with text_projection), or DA_COMP_COUNT to pick whichever the
 * model has (the SD text encoder first). */
da_status da_clip_text_load(const da_model_file *m, da_component comp, da_clip_text **out, da_error *err);
void da_clip_text_free(da_clip_text *t);
const da_clip_text_config *da_clip_text_cfg(const da_clip_text *t);
/* Width of text_embeds, 0 when the model has no text_projection (SD text encoder). */
int da_clip_text_projection_dim(const da_clip_text *t);

typedef struct da_clip_text_opts {
    /* 0: all layers. k > 0: last_hidden_state = final_layer_norm(hidden state after layer N - k),
     * as diffusers' clip_skip. pooler_output / text_embeds always come from the full stack (as
     * transformers computes them), so asking for them with k > 0 runs every layer. */
    int clip_skip;
} da_clip_text_opts;
void da_clip_text_opts_init(da_clip_text_opts *o);

typedef struct da_clip_text_out {
    float *last_hidden_state; /* [B, L, D] */
    float *penultimate;       /* [B, L, D]: hidden_states[-2], the state after layer N - 1 without
                                 final_layer_norm (SDXL's prompt embeddings, both encoders) */
    float *pooler_output;     /* [B, D]: final state at the end-of-text position (see da_clip_text_eos_pos) */
    float *text_embeds;       /* [B, P]: needs a projection */
} da_clip_text_out;

/* The position transformers pools for one row of ids: eos_token_id == 2 (legacy configs, every
 * released OpenAI / SD 1.x file) -> the first position of the largest id; otherwise the first
 * position whose id is eos_token_id (0 when there is none, as torch's argmax of all-false). */
int da_clip_text_eos_pos(const da_clip_text_config *cfg, const int32_t *ids, int L);

/* ids [B, L] (host), 1 <= L <= max_positions, every id in [0, vocab_size) -> out.
 * opts may be NULL (defaults). */
da_status da_clip_text_forward(const da_clip_text *t, da_backend *be, da_arena *a, const int32_t *ids, int B, int L,
                               const da_clip_text_opts *opts, const da_clip_text_out *out, da_error *err);

/* Tokenize n prompts (padded / truncated to max_positions, as CLIPTokenizer with
 * padding="max_length") and run the forward: outputs as above with L = max_positions. */
da_status da_clip_text_encode_prompts(const da_clip_text *t, da_backend *be, da_arena *a, da_tokenizer *tok,
                                      const char *const *prompts, int n, const da_clip_text_opts *opts,
                                      const da_clip_text_out *out, da_error *err);

/* ---- vision -------------------------------------------------------------------------------------- */

/* Bind the vision tower (and visual_projection) of a CLIPModel. */
da_status da_clip_vision_load(const da_model_file *m, da_clip_vision **out, da_error *err);
void da_clip_vision_free(da_clip_vision *v);
const da_clip_vision_config *da_clip_vision_cfg(const da_clip_vision *v);
int da_clip_vision_projection_dim(const da_clip_vision *v);
/* Tokens of last_hidden_state: (image_size / patch_size)^2 + 1. */
int da_clip_vision_tokens(const da_clip_vision *v);

typedef struct da_clip_vision_out {
    float *last_hidden_state; /* [B, T, D], before post_layernorm (as transformers returns it) */
    float *pooler_output;     /* [B, D] = post_layernorm(last_hidden_state[:, 0]) */
    float *image_embeds;      /* [B, P] */
} da_clip_vision_out;

/* pixel_values [B, 3, S, S] (host, already CLIP-normalised; S = image_size) -> out. */
da_status da_clip_vision_forward(const da_clip_vision *v, da_backend *be, da_arena *a, const float *pixel_values,
                                 int B, const da_clip_vision_out *out, da_error *err);

/* n RGB images -> CLIPImageProcessor (resize shortest side, centre crop, normalise) ->
 * image_embeds [n, P]. */
da_status da_clip_vision_encode_images(const da_clip_vision *v, da_backend *be, da_arena *a,
                                       const da_image *const *images, int n, float *image_embeds, da_error *err);

#endif
