/* weights.c - canonical-name weight binding (see weights.h). */
#include "weights.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void da_binder_init(da_binder *b, const da_model_file *m, da_component comp) {
    memset(b, 0, sizeof *b);
    b->m = m;
    b->comp = comp;
}

static void *own(da_binder *b, size_t bytes) {
    if (b->n_owned == b->cap_owned) {
        size_t cap = b->cap_owned ? b->cap_owned * 2 : 64;
        void **p = realloc(b->owned, cap * sizeof *p);
        if (!p) return NULL;
        b->owned = p;
        b->cap_owned = cap;
    }
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p) b->owned[b->n_owned++] = p;
    return p;
}

/* The canonical view of one tensor: its bytes in the stored dtype laid out in the canonical shape. */
typedef struct canon {
    const da_st_tensor *ft; /* the stored tensor */
    const void *data;       /* canonical bytes: the mapping, a row range of it, or a binder-owned copy */
    uint64_t numel, nbytes;
    int rank;
    int64_t shape[4];
} canon;

static bool lookup(da_binder *b, const char *name, canon *cv) {
    const da_tensor_spec *t = da_spec_find(b->m->spec, b->comp, name);
    const da_st_tensor *ft = t ? da_model_tensor(b->m, t) : NULL;
    if (!ft) {
        da_err_set(&b->err, DA_ERR_NOT_FOUND, "%s: %s tensor '%s' is not in the model", b->m->path,
                   da_component_name(b->comp), name);
        b->st = DA_ERR_NOT_FOUND;
        return false;
    }
    if (ft->dtype != DA_F32 && ft->dtype != DA_F16 && ft->dtype != DA_BF16) {
        da_err_set(&b->err, DA_ERR_DTYPE, "%s: %s tensor '%s' has dtype %s (expected F32, F16 or BF16)", b->m->path,
                   da_component_name(b->comp), name, da_dtype_name(ft->dtype));
        b->st = DA_ERR_DTYPE;
        return false;
    }
    memset(cv, 0, sizeof *cv);
    cv->ft = ft;
    da_xform xf = da_spec_xform(t, b->m->layout);
    if (xf.kind == DA_XF_NONE) {
        cv->data = ft->data;
        cv->numel = ft->numel;
        cv->nbytes = ft->nbytes;
        cv->rank = ft->rank > 4 ? 4 : ft->rank;
        for (int i = 0; i < cv->rank; i++) cv->shape[i] = ft->shape[i];
        return true;
    }
    /* OpenCLIP packed / transposed tensors (modelspec.h): a row range is a contiguous run of the
     * mapping, so it stays a view; a transpose is copied once, in the stored dtype */
    size_t es = da_dtype_size(ft->dtype);
    cv->numel = da_spec_numel(t);
    cv->nbytes = cv->numel * es;
    cv->rank = t->rank;
    for (int i = 0; i < t->rank; i++) cv->shape[i] = t->shape[i];
    da_error e;
    if (xf.kind == DA_XF_ROWS && ft->shape[0] > 0 && xf.r0 >= 0 && xf.r1 <= ft->shape[0] &&
        (uint64_t)(xf.r1 - xf.r0) * (ft->numel / (uint64_t)ft->shape[0]) == cv->numel) {
        cv->data = (const unsigned char *)ft->data + (uint64_t)xf.r0 * (ft->numel / (uint64_t)ft->shape[0]) * es;
        return true;
    }
    void *copy = own(b, cv->nbytes);
    if (!copy) {
        b->st = da_err_set(&b->err, DA_ERR_NOMEM, "%s: out of memory transforming '%s'", b->m->path, ft->name);
        return false;
    }
    da_status st = da_spec_xform_apply(t, b->m->layout, ft, copy, &e);
    if (st) {
        b->st = da_err_set(&b->err, st, "%s: %s tensor '%s': %s", b->m->path, da_component_name(b->comp), name, e.msg);
        return false;
    }
    b->bytes_copied += cv->nbytes;
    cv->data = copy;
    return true;
}

static bool in_mapping(const canon *cv) {
    const char *p = cv->data, *base = cv->ft->data;
    return p >= base && p < base + cv->ft->nbytes;
}

static da_w view_of(da_binder *b, const canon *cv) {
    const da_st_tensor *ft = cv->ft;
    da_w w = {0};
    w.t = ft->dtype == DA_F32 ? DK_F32 : ft->dtype == DA_F16 ? DK_F16 : DK_BF16;
    w.rank = cv->rank;
    for (int i = 0; i < w.rank; i++) w.shape[i] = cv->shape[i];
    size_t align = dk_wtype_size(w.t);
    if ((uintptr_t)cv->data % align == 0) {
        w.p = cv->data;
        if (in_mapping(cv)) b->bytes_mapped += cv->nbytes;
        return w;
    }
    void *copy = own(b, cv->nbytes);
    if (!copy) {
        b->st = da_err_set(&b->err, DA_ERR_NOMEM, "%s: out of memory copying '%s'", b->m->path, ft->name);
        return (da_w){0};
    }
    memcpy(copy, cv->data, cv->nbytes);
    b->bytes_copied += cv->nbytes;
    w.p = copy;
    return w;
}

/* Hand the view to the binder's backend, if any (device upload for CUDA). */
static da_w adopt(da_binder *b, da_w w, size_t bytes, const char *name) {
    if (!b->be || b->st) return w;
    da_status st = da_backend_adopt(b->be, &w, bytes);
    if (st) {
        da_error e;
        da_backend_take_error(b->be, &e);
        b->st = da_err_set(&b->err, st, "%s: placing '%s' on the %s backend: %s", b->m->path, name,
                           b->be->ops->name, e.msg);
        return (da_w){0};
    }
    return w;
}

da_w da_bind(da_binder *b, const char *fmt, ...) {
    if (b->st) return (da_w){0};
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    canon cv;
    if (!lookup(b, name, &cv)) return (da_w){0};
    da_w w = view_of(b, &cv);
    return b->st ? (da_w){0} : adopt(b, w, cv.nbytes, name);
}

const float *da_bind_f32(da_binder *b, const char *fmt, ...) {
    if (b->st) return NULL;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    canon cv;
    if (!lookup(b, name, &cv)) return NULL;
    da_w w = {.t = DK_F32, .rank = 1, .shape = {(int64_t)cv.numel}};
    if (cv.ft->dtype == DA_F32 && (uintptr_t)cv.data % 4 == 0) {
        if (in_mapping(&cv)) b->bytes_mapped += cv.nbytes; /* else a transform's copy, already counted */
        w.p = cv.data;
        return adopt(b, w, cv.nbytes, name).p;
    }
    float *out = own(b, cv.numel * sizeof(float));
    if (!out) {
        b->st = da_err_set(&b->err, DA_ERR_NOMEM, "%s: out of memory converting '%s'", b->m->path, name);
        return NULL;
    }
    da_convert_to_f32(cv.ft->dtype, cv.data, out, cv.numel);
    b->bytes_copied += cv.numel * sizeof(float);
    w.p = out;
    return adopt(b, w, cv.numel * sizeof(float), name).p;
}

void da_binder_release(da_binder *b) {
    for (size_t i = 0; i < b->n_owned; i++) free(b->owned[i]);
    free(b->owned);
    b->owned = NULL;
    b->n_owned = b->cap_owned = 0;
}
