/* image.h - RGB8 images: decoding PNG (libpng) and JPEG (libjpeg-turbo) by content, atomic PNG/JPEG
 * writing, Pillow-compatible antialiased bicubic resize, crops, and the float tensor conversions the
 * models need.
 *
 * Upstream definitions mirrored:
 *   - decode: Pillow's JPEG decoder settings (libjpeg defaults: ISLOW IDCT, fancy upsampling) and its
 *     "CMYK;I" + CMYK->RGB conversion; PNG expansion is ours (alpha on white, 16->8 rounded), see
 *     docs/IMAGES.md.
 *   - da_image_resize_bicubic: Pillow ImagingResample (libImaging/Resample.c) with BICUBIC on RGB.
 *   - da_image_resize_shortest / da_image_center_crop / da_image_clip_preprocess: transformers'
 *     CLIPImageProcessorPil (get_resize_output_image_size, image_transforms.center_crop, rescale,
 *     normalize).
 *   - da_image_to_pm1 / da_pm1_to_image: diffusers VaeImageProcessor (pil_to_numpy + normalize,
 *     denormalize + numpy_to_pil).
 *
 * Tensors are PyTorch order: one image is C x H x W floats (NCHW with N = 1; for a batch the caller
 * offsets the pointer by 3*H*W per image).
 */
#ifndef DA_IMAGE_H
#define DA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "diffaug.h"

/* Decoding refuses any side above this and any image with more pixels than DA_IMAGE_MAX_PIXELS,
 * before allocating anything sized by the header. */
#define DA_IMAGE_MAX_SIDE 32768
#define DA_IMAGE_MAX_PIXELS (1u << 28)

/* An 8-bit RGB image, rows top to bottom, pixels interleaved R,G,B (HWC), no row padding. */
typedef struct da_image {
    int w, h;
    uint8_t *data; /* w*h*3 bytes, malloc'd; owned by the image */
} da_image;

typedef enum da_image_format {
    DA_IMAGE_UNKNOWN = 0,
    DA_IMAGE_PNG,
    DA_IMAGE_JPEG,
} da_image_format;

/* Allocate a w x h image (contents uninitialised). Sizes are checked against the limits above. */
da_status da_image_alloc(da_image *im, int w, int h, da_error *err);
/* Free the pixels and zero the struct; safe on a zeroed or already freed image. */
void da_image_free(da_image *im);

/* The format by its magic bytes (the extension is never consulted). */
da_image_format da_image_sniff(const void *data, size_t len);

/* Decode a whole file / an in-memory file to RGB8. name is used in error messages only.
 * Errors: DA_ERR_IO (cannot read), DA_ERR_IMAGE (not PNG/JPEG, corrupt, too large, zero size),
 * DA_ERR_TRUNCATED (the data ends early), DA_ERR_NOMEM. *out is untouched on error. */
da_status da_image_load(const char *path, da_image *out, da_error *err);
da_status da_image_decode(const void *data, size_t len, const char *name, da_image *out, da_error *err);

/* Write an 8-bit RGB PNG atomically (temporary file then rename; nothing is left on error).
 * n_text text chunks keys[i] = values[i] are added (keys: 1..79 Latin-1 chars; may be NULL if n_text
 * is 0; values: UTF-8, written as tEXt when pure ASCII and as uncompressed iTXt otherwise, since tEXt
 * is Latin-1; invalid UTF-8 is DA_ERR_INVALID_ARG). */
da_status da_image_save_png(const char *path, const da_image *im, const char *const *keys,
                            const char *const *values, size_t n_text, da_error *err);
/* Write a baseline JPEG (quality 1..100, 4:2:0 chroma subsampling like Pillow's default) atomically. */
da_status da_image_save_jpeg(const char *path, const da_image *im, int quality, da_error *err);

/* Resize to w x h with Pillow's antialiased bicubic (Image.resize((w, h), Image.BICUBIC)).
 * dst must not alias src; it is allocated here. Uses OpenMP over rows. */
da_status da_image_resize_bicubic(const da_image *src, int w, int h, da_image *dst, da_error *err);

/* Copy the rectangle (x, y, w, h), which must lie inside src (DA_ERR_BOUNDS otherwise). */
da_status da_image_crop(const da_image *src, int x, int y, int w, int h, da_image *dst, da_error *err);
/* transformers' center_crop: offset floor((H - h) / 2), floor((W - w) / 2); where the crop is larger
 * than the image the outside is zero-padded exactly as transformers pads. */
da_status da_image_center_crop(const da_image *src, int w, int h, da_image *dst, da_error *err);
/* The size CLIPImageProcessor resizes to: shortest side = size, the other int(size * long / short). */
void da_image_shortest_side_size(int w, int h, int size, int *out_w, int *out_h);
/* Resize so the shortest side is `size` (bicubic, as above). */
da_status da_image_resize_shortest(const da_image *src, int size, da_image *dst, da_error *err);

/* HWC uint8 -> CHW float in [-1, 1]: x / 127.5 - 1 (bit-identical to diffusers' x/255*2-1 in f32).
 * out holds 3*h*w floats. */
void da_image_to_pm1(const da_image *im, float *out);
/* CHW float in [-1, 1] -> HWC uint8: clamp(x/2 + 0.5, 0, 1) * 255 rounded half to even (numpy
 * .round()); NaN maps to 0. dst is allocated here. */
da_status da_pm1_to_image(const float *chw, int w, int h, da_image *dst, da_error *err);

/* OpenAI CLIP normalisation constants (transformers OPENAI_CLIP_MEAN / OPENAI_CLIP_STD). */
extern const float da_clip_mean[3];
extern const float da_clip_std[3];
/* HWC uint8 -> CHW float (x/255 - mean) / std, computed like transformers (x * (1/255) in double,
 * rounded to float, then float subtract and divide). out holds 3*h*w floats. */
void da_image_to_clip(const da_image *im, float *out);
/* The whole CLIPImageProcessor pipeline: resize shortest side to `size` (bicubic), centre crop
 * size x size, CLIP-normalise. out holds 3*size*size floats (224 for ViT-B/32 and ViT-L/14). */
da_status da_image_clip_preprocess(const da_image *im, int size, float *out, da_error *err);

#endif /* DA_IMAGE_H */
