/* run.h - `diffaug run`: one network on tensors from a safetensors file. cmd_run.c does the common
 * part (options, opening the model and the inputs, the backend, writing the outputs atomically);
 * each network family adds its components to the table in cmd_run.c with a runner of this type. */
#ifndef DA_RUN_H
#define DA_RUN_H

#include "backend.h"
#include "modelfile.h"
#include "safetensors.h"

typedef struct run_ctx {
    const char *model_path;
    da_model_file *model;      /* opened with da_model_open */
    const da_st_file *inputs;  /* the --inputs file */
    da_st_writer *outputs;     /* add outputs here (copy=true); cmd_run writes the file */
    da_backend *be;
    int threads;
} run_ctx;

typedef da_status (*run_fn)(run_ctx *ctx, const char *component, da_error *err);

/* The runners (tools/run_<family>.c). */
da_status run_unet(run_ctx *ctx, const char *component, da_error *err);

/* An input tensor by name with its rank and dtype checked; dims[i] < 0 accepts any size there.
 * On success *data is a malloc'd f32 copy (integers are converted) and dims are filled. */
da_status run_input_f32(const run_ctx *ctx, const char *name, int rank, int64_t *dims, float **data, da_error *err);
/* Integer ids (I32 or I64) as int32, range-checked to [0, max_id]. */
da_status run_input_ids(const run_ctx *ctx, const char *name, int64_t *dims /* [2] */, int32_t max_id,
                        int32_t **ids, da_error *err);
/* Add an f32 output tensor (copied). */
da_status run_output(run_ctx *ctx, const char *name, int rank, const int64_t *dims, const float *data, da_error *err);

/* runners (one per network family) */
da_status run_vae(run_ctx *ctx, const char *component, da_error *err); /* vae_encoder, vae_decoder */

#endif
