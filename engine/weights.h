/* weights.h - binding a model file's tensors to a network's fields by canonical name.
 *
 * A network's constructor asks for each tensor by its canonical (diffusers / transformers) name,
 * formatted printf-style ("down_blocks.%d.resnets.%d.norm1.weight"); modelfile.h has already
 * checked that every expected tensor is present with the right shape, whatever the layout. The
 * binder keeps errors sticky (the first one wins, later calls return empty views), so
 * constructors are straight-line code that checks the status once at the end.
 *
 * Large weights stay in the file mapping in their own dtype (f32, f16 or bf16): kernels convert
 * while packing. Small vectors (biases, norm parameters) are converted to f32 copies owned by the
 * binder, since they are read many times and cost nothing to keep. A tensor whose bytes are not
 * aligned for its type in the mapping (possible in hand-made files) is copied to aligned memory.
 * A single-file tensor with a transform (modelspec.h da_xform: OpenCLIP's packed q/k/v and
 * transposed text_projection) is bound in its canonical form: a row range of a packed tensor is a
 * view into the mapping, a transpose is copied once at bind time in the stored dtype.
 */
#ifndef DA_WEIGHTS_H
#define DA_WEIGHTS_H

#include "backend.h"
#include "diffaug.h"
#include "modelfile.h"

typedef struct da_binder {
    const da_model_file *m;
    da_component comp;
    da_status st;
    da_error err;
    void **owned;     /* copies made while binding, freed by da_binder_release */
    size_t n_owned, cap_owned;
    size_t bytes_mapped, bytes_copied;
    /* Optional: set after da_binder_init to place every bound weight on this backend (the CUDA
     * backend uploads each tensor once and da_bind / da_bind_f32 return device pointers, owned by
     * the backend). NULL: host views into the mapping, as before. */
    da_backend *be;
} da_binder;

void da_binder_init(da_binder *b, const da_model_file *m, da_component comp);
/* The weight named by the formatted canonical name, in its stored dtype. */
da_w da_bind(da_binder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same tensor as f32 (a copy unless it is already aligned f32). NULL after an error. */
const float *da_bind_f32(da_binder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Free every copy the binder made (call when the network is destroyed). */
void da_binder_release(da_binder *b);

#endif
