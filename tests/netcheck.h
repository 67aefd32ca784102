/* netcheck.h - every network and the whole generation pipeline run on a backend chosen by name, with
 * fixed deterministic inputs, so that two backends can be compared output for output:
 * tests/test_backend_guard.c ("guard" vs "cpu": bit-identical) and tests/test_gpu.c ("cuda" vs "cpu":
 * tolerances per weight dtype). Each runner opens the model, creates the backend with
 * da_backend_new, loads the network with its *_load_on variant (weights adopted at bind time), runs
 * the forward twice on the same context (the second run must reuse the plan and give the same bytes)
 * and returns host copies of the outputs.
 */
#ifndef DA_NETCHECK_H
#define DA_NETCHECK_H

#include <stddef.h>

#include "backend.h"
#include "diffaug.h"
#include "pipeline.h"
#include "safetensors.h"

#define NC_MAX_OUT 6

typedef struct nc_out {
    int count;
    const char *name[NC_MAX_OUT];
    float *v[NC_MAX_OUT];
    size_t n[NC_MAX_OUT];
} nc_out;
void nc_out_free(nc_out *o);

/* da_backend_new, plus one test-only name: "cpu-tc", the CPU backend with the CUDA backend's GEMM input
 * rounding emulated (before every linear and conv2d with 16-bit weights the f32 activations are
 * rounded to the weight's type, RNE, as kernels/cuda/gemm.cu does before its tensor-core GEMM with
 * f32 accumulation; attention's Q, K, V rounded to f16 for every model, as the default v2 tensor-core
 * attention does). Running a network on it against "cpu" shows, without a GPU, the error the CUDA
 * backend's precision choice must produce, so the GPU suite's tolerances can be checked here. */
da_backend *nc_backend_new(const char *name, da_error *err);

/* da_mkmodel of a preset ("tiny-sd15", "tiny-ip2p", "tiny-clip-vit-b32", "tiny-blip", "sd15", ...) into
 * dir/name, diffusers layout, jitter 0.2 (norms and biases not at their defaults), the shared CLIP
 * vocabulary as tokenizer (BLIP presets: the BERT vocabulary of tests/data/blip/vocab). Returns the malloc'd path, NULL on error. */
char *nc_make_model(const char *dir, const char *name, const char *preset, da_dtype dt, uint64_t seed, da_error *err);

/* UNet: sample [B, in_channels, h, w], timesteps {999, 1.5, 500, ...}, context [B, 77, D]
 * -> "eps" [B, out_channels, h, w]. */
da_status nc_unet(const char *model, const char *backend, int B, int h, int w, nc_out *o, da_error *err);
/* VAE: encode img [2, 3, 64, 64] -> "mean", "logvar"; decode z [2, 4, 8, 8] -> "image". */
da_status nc_vae(const char *model, const char *backend, nc_out *o, da_error *err);
/* CLIP text tower of a CLIPModel: ids [2, 77] -> "last_hidden_state", "pooler_output", "text_embeds",
 * "penultimate" (SDXL's hidden_states[-2]); plus "clip_skip1" (last_hidden_state with clip_skip 1). */
da_status nc_clip_text(const char *model, const char *backend, nc_out *o, da_error *err);
/* CLIP vision: pixels [2, 3, S, S] -> "last_hidden_state", "pooler_output", "image_embeds". */
da_status nc_clip_vision(const char *model, const char *backend, nc_out *o, da_error *err);
/* BLIP: pixels [2, 3, S, S] -> "image_embeds" [2, T, Dv]; ids [2, 7] (a fixed decoder prompt) over
 * those embeds -> "logits" [2, 7, V] (the whole-sequence decoder, no cache). */
da_status nc_blip(const char *model, const char *backend, nc_out *o, da_error *err);
/* da_sd_generate at 64x64, `steps` steps of `sampler`, two items (one with CFG 7.5 and a negative
 * prompt, one without CFG), Philox noise: txt2img and img2img on an SD model, edit on an
 * InstructPix2Pix model -> "latents" [2, 4, 8, 8] and "pixels" (the RGB8 bytes as floats). */
da_status nc_generate(const char *model, const char *backend, da_gen_mode mode, da_sampler_kind sampler, int steps,
                      nc_out *o, da_error *err);

#endif
