/* mkmodel.h - write random-weight models in the exact file layouts real models ship in: the
 * original single-file SD checkpoint, the diffusers folder (StableDiffusionPipeline /
 * StableDiffusionInstructPix2PixPipeline) and the transformers CLIPModel folder.
 *
 * Values follow PyTorch / diffusers / transformers default initialisation (see da_init_kind in
 * modelspec.h) and are drawn from a Philox stream per tensor keyed by (seed, "<component>:<canonical
 * name>"), so both layouts of one seed hold identical values and write order does not matter.
 */
#ifndef DA_MKMODEL_H
#define DA_MKMODEL_H

#include <stdint.h>

#include "modelspec.h"
#include "safetensors.h"

typedef struct da_mkmodel_params {
    const char *config;          /* preset name (da_config_preset), used when cfg is NULL */
    const da_model_config *cfg;  /* explicit configuration (overrides config) */
    da_layout layout;            /* DA_LAYOUT_SINGLE (SD families only) or DA_LAYOUT_DIFFUSERS */
    da_dtype dtype;              /* DA_F32, DA_F16 or DA_BF16 */
    uint64_t seed;
    const char *vocab_dir;       /* optional: folder with vocab.json + merges.txt, copied as tokenizer */
    float jitter;                /* 0: exact defaults; > 0: norm weights 1 + U(+-j), norm and zero-initialised
                                    biases U(+-j), so tests can see a loader that drops them */
    bool cosxl;                  /* SDXL only: mark the model as CosXL (EDM v-prediction, sigma 0.002..120):
                                    single file: the 0-d F32 tensors edm_vpred.sigma_max / edm_vpred.sigma_min
                                    (as ComfyUI saves them); folder: an EDMEulerScheduler scheduler_config.json
                                    (the CosXL model card's settings) */
} da_mkmodel_params;

void da_mkmodel_params_init(da_mkmodel_params *p); /* sd15-less defaults: layout diffusers, f32, seed 0 */

/* Write the model to path: a .safetensors file (single layout) or a folder (diffusers layout, created
 * if missing). Every file is written atomically. */
da_status da_mkmodel(const da_mkmodel_params *p, const char *path, da_error *err);

/* The values mkmodel writes for tensor t, elements [first, first + n) in f32 (before dtype rounding);
 * integer buffers come back converted to float. */
void da_mkmodel_values(const da_model_config *cfg, const da_tensor_spec *t, uint64_t seed, float jitter,
                       uint64_t first, size_t n, float *out);

/* Round f32 to f16 / bf16 bits (round to nearest even; overflow to infinity). */
uint16_t da_f32_to_f16(float f);
uint16_t da_f32_to_bf16(float f);

#endif /* DA_MKMODEL_H */
