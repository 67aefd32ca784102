/* image.c - RGB8 image decoding (libpng, libjpeg-turbo), atomic PNG/JPEG writing, Pillow's
 * antialiased bicubic resize, CLIP preprocessing and the float tensor conversions.
 *
 * Mirrors: Pillow libImaging/Resample.c (ImagingResample, precompute_coeffs, 8-bpc fixed point),
 * Pillow JpegImagePlugin ("CMYK;I" raw mode) + Convert.c cmyk2rgb, transformers
 * CLIPImageProcessorPil / image_transforms.center_crop, diffusers VaeImageProcessor.
 * Written from the documented behaviour; no upstream code is copied. Policies: docs/IMAGES.md.
 */
#include "image.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "util.h"

const float da_clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float da_clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* ------------------------------------------------------------------------------------------------
 * The image type */

static da_status check_dims(uint64_t w, uint64_t h, const char *name, da_error *err) {
    if (w == 0 || h == 0)
        return da_err_set(err, DA_ERR_IMAGE, "%s: image has zero size (%llux%llu)", name,
                          (unsigned long long)w, (unsigned long long)h);
    if (w > DA_IMAGE_MAX_SIDE || h > DA_IMAGE_MAX_SIDE || w * h > DA_IMAGE_MAX_PIXELS)
        return da_err_set(err, DA_ERR_IMAGE,
                          "%s: image is %llux%llu; refusing images with a side over %d or more than %u pixels",
                          name, (unsigned long long)w, (unsigned long long)h, DA_IMAGE_MAX_SIDE,
                          DA_IMAGE_MAX_PIXELS);
    return DA_OK;
}

da_status da_image_alloc(da_image *im, int w, int h, da_error *err) {
    im->w = im->h = 0;
    im->data = NULL;
    if (w < 0 || h < 0) return da_err_set(err, DA_ERR_INVALID_ARG, "image size %dx%d is negative", w, h);
    da_status st = check_dims((uint64_t)w, (uint64_t)h, "image", err);
    if (st) return st;
    im->data = da_malloc((size_t)w * h * 3, err);
    if (!im->data) return DA_ERR_NOMEM;
    im->w = w;
    im->h = h;
    return DA_OK;
}

void da_image_free(da_image *im) {
    if (!im) return;
    free(im->data);
    im->data = NULL;
    im->w = im->h = 0;
}

da_image_format da_image_sniff(const void *data, size_t len) {
    const uint8_t *p = data;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(p, png_sig, 8) == 0) return DA_IMAGE_PNG;
    /* SOI followed by the first marker's 0xFF: every JFIF/Exif/Adobe/raw JPEG starts this way. */
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return DA_IMAGE_JPEG;
    return DA_IMAGE_UNKNOWN;
}

/* Composite one 8-bit channel over white: round((c*a + 255*(255-a)) / 255). The numerator over 255
 * never lies exactly on .5 (255 is odd), so "+127, /255" is exact rounding to nearest. */
static inline uint8_t over_white(unsigned c, unsigned a) {
    return (uint8_t)((c * a + 255u * (255u - a) + 127u) / 255u);
}

/* ------------------------------------------------------------------------------------------------
 * PNG decoding. libpng reports errors through a callback that must not return, so it longjmps back
 * to decode_png; everything allocated after setjmp lives in the context so the handler can free it. */

typedef struct png_rd {
    jmp_buf jb;
    const uint8_t *data;
    size_t len, pos;
    int truncated;
    char msg[256];
    uint8_t *rgba;
    png_bytep *rows;
    uint8_t *rgb;
} png_rd;

static void png_rd_error(png_structp png, png_const_charp msg) {
    png_rd *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jb, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* ancillary-chunk warnings (bad CRC in tEXt, unknown sRGB profile) are not fatal */
}

static void png_rd_read(png_structp png, png_bytep out, size_t n) {
    png_rd *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) {
        c->truncated = 1;
        png_error(png, "file ends before the image data is complete");
    }
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

static da_status decode_png(const uint8_t *data, size_t len, const char *name, da_image *out, da_error *err) {
    /* IHDR must come first (PNG spec 5.6); checking its size here gives the clear limit message even
     * for files that libpng would reject later for other reasons. */
    if (len >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint32_t w = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 | data[19];
        uint32_t h = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
        da_status st0 = check_dims(w, h, name, err);
        if (st0) return st0;
    }
    png_rd *c = calloc(1, sizeof *c);
    if (!c) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", name);
    c->data = data;
    c->len = len;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_rd_error, png_quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        free(c);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory creating the PNG decoder", name);
    }
    da_status st = DA_OK;
    if (setjmp(c->jb)) {
        if (c->truncated)
            st = da_err_set(err, DA_ERR_TRUNCATED, "%s: truncated PNG: %s", name, c->msg);
        else
            st = da_err_set(err, DA_ERR_IMAGE, "%s: corrupt PNG: %s", name, c->msg);
        goto done;
    }
    png_set_read_fn(png, c, png_rd_read);
    /* Our own limits below give the clear message; libpng's default (1e6 per side) would hide it. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, ctype = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if ((st = check_dims(w, h, name, err)) != DA_OK) goto done;

    /* Normalise every PNG to 8-bit RGBA: palette -> RGB, grey < 8 bits -> 8, tRNS -> alpha,
     * 16 -> 8 rounded to nearest (png_set_scale_16, not the truncating png_set_strip_16),
     * grey -> RGB, and an opaque alpha where there is none. No gamma handling, as Pillow. */
    png_set_expand(png);
    png_set_scale_16(png);
    png_set_gray_to_rgb(png);
    png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4 || png_get_bit_depth(png, info) != 8) {
        st = da_err_set(err, DA_ERR_IMAGE, "%s: unsupported PNG layout (colour type %d, depth %d)", name,
                        ctype, depth);
        goto done;
    }
    c->rgba = malloc((size_t)w * h * 4);
    c->rows = malloc(sizeof(png_bytep) * h);
    c->rgb = malloc((size_t)w * h * 3);
    if (!c->rgba || !c->rows || !c->rgb) {
        st = da_err_set(err, DA_ERR_NOMEM, "%s: out of memory for a %ux%u image", name, (unsigned)w,
                        (unsigned)h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->rgba + (size_t)y * w * 4;
    png_read_image(png, c->rows);
    /* Reading to IEND is what detects a file cut after its image data. */
    png_read_end(png, NULL);

    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = c->rgba + 4 * i;
        uint8_t *d = c->rgb + 3 * i;
        unsigned a = s[3];
        d[0] = over_white(s[0], a);
        d[1] = over_white(s[1], a);
        d[2] = over_white(s[2], a);
    }
    out->w = (int)w;
    out->h = (int)h;
    out->data = c->rgb;
    c->rgb = NULL;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(c->rgba);
    free(c->rows);
    free(c->rgb);
    free(c);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * JPEG decoding. libjpeg's default error_exit calls exit() and its messages go to stderr; both are
 * replaced. "Premature end of JPEG file" (and a marker hit inside entropy-coded data) are only
 * warnings to libjpeg, which would pad the image with grey; we make them errors. */

typedef struct jpg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int truncated, corrupt;
    char msg[JMSG_LENGTH_MAX];
    uint8_t *row;
    uint8_t *rgb;
} jpg_ctx;

static void jpg_error_exit(j_common_ptr ci) {
    jpg_ctx *c = (jpg_ctx *)ci->err;
    ci->err->format_message(ci, c->msg);
    longjmp(c->jb, 1);
}

static void jpg_emit_message(j_common_ptr ci, int level) {
    if (level >= 0) return; /* trace messages */
    jpg_ctx *c = (jpg_ctx *)ci->err;
    int code = ci->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER) {
        if (code == JWRN_JPEG_EOF) c->truncated = 1;
        else c->corrupt = 1;
        ci->err->format_message(ci, c->msg);
        longjmp(c->jb, 1);
    }
    ci->err->num_warnings++; /* other warnings (extraneous bytes, unknown APPn) are recoverable */
}

static void jpg_silent_output(j_common_ptr ci) { (void)ci; }

/* Pillow reads every 4-channel JPEG as Adobe-inverted CMYK ("CMYK;I") and converts with
 * R = (255-K) - (C*(255-K))/255 in its MULDIV255 rounding. With libjpeg's stored (inverted) values
 * s: C = 255 - sC, 255 - K = sK. */
static inline uint8_t cmyk_channel(unsigned s_c, unsigned s_k) {
    unsigned cyan = 255u - s_c, nk = s_k;
    unsigned t = cyan * nk + 128u;
    unsigned m = ((t >> 8) + t) >> 8;
    return (uint8_t)(nk - m); /* m <= nk always, so no clipping is needed */
}

static da_status decode_jpeg(const uint8_t *data, size_t len, const char *name, da_image *out, da_error *err) {
    struct jpeg_decompress_struct ci;
    jpg_ctx *c = calloc(1, sizeof *c);
    if (!c) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", name);
    ci.err = jpeg_std_error(&c->pub);
    c->pub.error_exit = jpg_error_exit;
    c->pub.emit_message = jpg_emit_message;
    c->pub.output_message = jpg_silent_output;
    da_status st = DA_OK;
    if (setjmp(c->jb)) {
        if (c->truncated)
            st = da_err_set(err, DA_ERR_TRUNCATED, "%s: truncated JPEG: %s", name, c->msg);
        else
            st = da_err_set(err, DA_ERR_IMAGE, "%s: corrupt JPEG: %s", name, c->msg);
        goto done;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)len);
    jpeg_read_header(&ci, TRUE);
    if ((st = check_dims(ci.image_width, ci.image_height, name, err)) != DA_OK) goto done;
    /* Pillow's decoder keeps libjpeg's defaults (ISLOW IDCT, fancy upsampling); so do we, which
     * makes the decoded pixels identical when both use libjpeg-turbo. */
    int ncomp;
    switch (ci.jpeg_color_space) {
    case JCS_GRAYSCALE: ci.out_color_space = JCS_GRAYSCALE; ncomp = 1; break;
    case JCS_CMYK:
    case JCS_YCCK: ci.out_color_space = JCS_CMYK; ncomp = 4; break;
    default: ci.out_color_space = JCS_RGB; ncomp = 3; break;
    }
    jpeg_start_decompress(&ci);
    if (ci.output_components != ncomp || ci.output_width != ci.image_width ||
        ci.output_height != ci.image_height) {
        st = da_err_set(err, DA_ERR_IMAGE, "%s: unsupported JPEG layout (%d components)", name,
                        ci.output_components);
        goto done;
    }
    size_t w = ci.output_width, h = ci.output_height;
    c->row = malloc(w * ncomp);
    c->rgb = malloc(w * h * 3);
    if (!c->row || !c->rgb) {
        st = da_err_set(err, DA_ERR_NOMEM, "%s: out of memory for a %zux%zu image", name, w, h);
        goto done;
    }
    while (ci.output_scanline < ci.output_height) {
        size_t y = ci.output_scanline;
        JSAMPROW rp = c->row;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1) {
            st = da_err_set(err, DA_ERR_TRUNCATED, "%s: truncated JPEG: no data for row %zu", name, y);
            goto done;
        }
        uint8_t *d = c->rgb + y * w * 3;
        const uint8_t *s = c->row;
        if (ncomp == 3) {
            memcpy(d, s, w * 3);
        } else if (ncomp == 1) {
            for (size_t x = 0; x < w; x++) d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[x];
        } else {
            for (size_t x = 0; x < w; x++) {
                const uint8_t *p = s + 4 * x;
                d[3 * x + 0] = cmyk_channel(p[0], p[3]);
                d[3 * x + 1] = cmyk_channel(p[1], p[3]);
                d[3 * x + 2] = cmyk_channel(p[2], p[3]);
            }
        }
    }
    jpeg_finish_decompress(&ci);
    out->w = (int)w;
    out->h = (int)h;
    out->data = c->rgb;
    c->rgb = NULL;
done:
    jpeg_destroy_decompress(&ci);
    free(c->row);
    free(c->rgb);
    free(c);
    return st;
}

da_status da_image_decode(const void *data, size_t len, const char *name, da_image *out, da_error *err) {
    if (!name) name = "<memory>";
    if (len == 0) return da_err_set(err, DA_ERR_IMAGE, "%s: empty file (0 bytes), not an image", name);
    switch (da_image_sniff(data, len)) {
    case DA_IMAGE_PNG: return decode_png(data, len, name, out, err);
    case DA_IMAGE_JPEG: return decode_jpeg(data, len, name, out, err);
    default: break;
    }
    const uint8_t *p = data;
    char hex[3 * 8 + 1] = "";
    size_t n = len < 8 ? len : 8;
    for (size_t i = 0; i < n; i++) snprintf(hex + 3 * i, 4, "%02x ", p[i]);
    if (n) hex[3 * n - 1] = 0;
    /* A PNG or JPEG signature cut short is a truncated file, not a foreign format. */
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if ((len < 8 && memcmp(p, png_sig, len) == 0) || (len < 3 && p[0] == 0xFF && (len < 2 || p[1] == 0xD8)))
        return da_err_set(err, DA_ERR_TRUNCATED, "%s: truncated image: only %zu bytes (%s)", name, len, hex);
    return da_err_set(err, DA_ERR_IMAGE, "%s: not a PNG or JPEG image (first bytes: %s)", name, hex);
}

da_status da_image_load(const char *path, da_image *out, da_error *err) {
    char *data = NULL;
    size_t len = 0;
    da_status st = da_read_file(path, &data, &len, err);
    if (st) return st;
    st = da_image_decode(data, len, path, out, err);
    free(data);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * Writing */

typedef struct png_wr {
    jmp_buf jb;
    char msg[256];
    png_text *text;
} png_wr;

static void png_wr_error(png_structp png, png_const_charp msg) {
    png_wr *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jb, 1);
}

/* PNG keywords: 1..79 printable Latin-1 characters, no leading, trailing or double spaces. */
static bool valid_png_keyword(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        if (!((ch >= 32 && ch <= 126) || ch >= 161)) return false;
        if (ch == ' ' && k[i + 1] == ' ') return false;
    }
    return true;
}

static da_status check_image(const da_image *im, const char *path, da_error *err) {
    if (!im || !im->data || im->w <= 0 || im->h <= 0)
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: no image to write", path);
    return DA_OK;
}

da_status da_image_save_png(const char *path, const da_image *im, const char *const *keys,
                            const char *const *values, size_t n_text, da_error *err) {
    da_status st = check_image(im, path, err);
    if (st) return st;
    for (size_t i = 0; i < n_text; i++) {
        if (!keys[i] || !values[i] || !valid_png_keyword(keys[i]))
            return da_err_set(err, DA_ERR_INVALID_ARG, "%s: invalid PNG text keyword #%zu \"%s\"", path, i,
                              keys[i] ? keys[i] : "(null)");
        long bad = da_utf8_invalid_at(values[i], strlen(values[i]));
        if (bad >= 0)
            return da_err_set(err, DA_ERR_INVALID_ARG, "%s: PNG text \"%s\" is not valid UTF-8 (byte %ld)", path, keys[i],
                              bad);
    }
    png_wr *c = calloc(1, sizeof *c);
    if (!c) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    if (n_text && !(c->text = calloc(n_text, sizeof *c->text))) {
        free(c);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    }
    da_atomic_file af;
    if ((st = da_atomic_open(&af, path, err)) != DA_OK) {
        free(c->text);
        free(c);
        return st;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, png_wr_error, png_quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        da_atomic_abort(&af);
        free(c->text);
        free(c);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory creating the PNG encoder", path);
    }
    if (setjmp(c->jb)) {
        st = da_err_set(err, DA_ERR_IO, "%s: PNG write failed: %s", path, c->msg);
        da_atomic_abort(&af);
        goto done;
    }
    png_init_io(png, af.fp);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* tEXt holds Latin-1, so values with any non-ASCII byte (UTF-8 prompts) go into iTXt, whose
     * text is UTF-8; pure ASCII stays in tEXt, which every reader understands */
    for (size_t i = 0; i < n_text; i++) {
        bool ascii = true;
        for (const unsigned char *q = (const unsigned char *)values[i]; *q && ascii; q++) ascii = *q < 0x80;
        c->text[i].key = (char *)keys[i];
        c->text[i].text = (char *)values[i];
        if (ascii) {
            c->text[i].compression = PNG_TEXT_COMPRESSION_NONE;
            c->text[i].text_length = strlen(values[i]);
        } else {
            c->text[i].compression = PNG_ITXT_COMPRESSION_NONE;
            c->text[i].itxt_length = strlen(values[i]);
            c->text[i].lang = (char *)"";
            c->text[i].lang_key = (char *)"";
        }
    }
    if (n_text) png_set_text(png, info, c->text, (int)n_text);
    png_write_info(png, info);
    for (int y = 0; y < im->h; y++) png_write_row(png, im->data + (size_t)y * im->w * 3);
    png_write_end(png, info);
    st = da_atomic_commit(&af, err);
done:
    png_destroy_write_struct(&png, &info);
    free(c->text);
    free(c);
    return st;
}

da_status da_image_save_jpeg(const char *path, const da_image *im, int quality, da_error *err) {
    da_status st = check_image(im, path, err);
    if (st) return st;
    if (quality < 1 || quality > 100)
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: JPEG quality %d outside 1..100", path, quality);
    if (im->w > 65500 || im->h > 65500)
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: %dx%d is too large for JPEG", path, im->w, im->h);
    jpg_ctx *c = calloc(1, sizeof *c);
    if (!c) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    da_atomic_file af;
    if ((st = da_atomic_open(&af, path, err)) != DA_OK) {
        free(c);
        return st;
    }
    struct jpeg_compress_struct cc;
    cc.err = jpeg_std_error(&c->pub);
    c->pub.error_exit = jpg_error_exit;
    c->pub.output_message = jpg_silent_output;
    if (setjmp(c->jb)) {
        st = da_err_set(err, DA_ERR_IO, "%s: JPEG write failed: %s", path, c->msg);
        jpeg_destroy_compress(&cc);
        da_atomic_abort(&af);
        free(c);
        return st;
    }
    jpeg_create_compress(&cc);
    jpeg_stdio_dest(&cc, af.fp);
    cc.image_width = (JDIMENSION)im->w;
    cc.image_height = (JDIMENSION)im->h;
    cc.input_components = 3;
    cc.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cc); /* YCbCr 4:2:0, ISLOW DCT, as Pillow's encoder defaults */
    jpeg_set_quality(&cc, quality, TRUE);
    jpeg_start_compress(&cc, TRUE);
    while (cc.next_scanline < cc.image_height) {
        JSAMPROW rp = im->data + (size_t)cc.next_scanline * im->w * 3;
        jpeg_write_scanlines(&cc, &rp, 1);
    }
    jpeg_finish_compress(&cc);
    jpeg_destroy_compress(&cc);
    free(c);
    return da_atomic_commit(&af, err);
}

/* ------------------------------------------------------------------------------------------------
 * Resize: Pillow's ImagingResample with the bicubic filter (a = -0.5, support 2). Separable, with an
 * 8-bit intermediate: normally the horizontal pass first (over only the source rows the vertical pass
 * will read), then the vertical pass; Pillow 13's vertical-first case is below. Filter support widens by the downscale factor (antialias);
 * weights are normalised per output pixel, converted to 22-bit fixed point (round half away from
 * zero) and accumulated in int from a 0.5 bias, then clipped to 0..255. */

#define RS_PRECISION_BITS (32 - 8 - 2)

static double bicubic_weight(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

typedef struct rs_coeffs {
    int ksize;
    int *bounds;  /* per output index: first source index, count */
    int32_t *k;   /* per output index: ksize fixed-point weights */
} rs_coeffs;

static da_status rs_precompute(int in_size, int out_size, rs_coeffs *rc, da_error *err) {
    /* Pillow takes the source box as floats; in_size converts exactly (< 2^24). */
    double scale = (double)((float)in_size - 0.0f) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    rc->ksize = ksize;
    rc->bounds = da_malloc(sizeof(int) * 2 * (size_t)out_size, err);
    rc->k = da_malloc(sizeof(int32_t) * (size_t)ksize * out_size, err);
    double *kd = da_malloc(sizeof(double) * (size_t)ksize, err);
    if (!rc->bounds || !rc->k || !kd) {
        free(kd);
        return DA_ERR_NOMEM;
    }
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        /* (int) truncates toward zero like Pillow's cast; negatives then clamp to 0. */
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        int x = 0;
        for (; x < xmax; x++) {
            double w = bicubic_weight((x + xmin - center + 0.5) * ss);
            kd[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) kd[x] /= ww;
        int32_t *k = rc->k + (size_t)xx * ksize;
        for (x = 0; x < xmax; x++) {
            double v = kd[x] * (1 << RS_PRECISION_BITS);
            k[x] = (int32_t)(kd[x] < 0 ? -0.5 + v : 0.5 + v);
        }
        for (; x < ksize; x++) k[x] = 0;
        rc->bounds[2 * xx] = xmin;
        rc->bounds[2 * xx + 1] = xmax;
    }
    free(kd);
    return DA_OK;
}

static inline uint8_t rs_clip8(int32_t v) {
    if (v >= (1 << RS_PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> RS_PRECISION_BITS);
}

/* Rows [y0, y0 + nrows) of src (width src_w) -> nrows rows of dst (width out_w). */
static void rs_horizontal(const uint8_t *src, int src_w, int y0, int nrows, uint8_t *dst, int out_w,
                          const rs_coeffs *rc) {
#pragma omp parallel for schedule(static) if ((size_t)nrows * out_w > 4096)
    for (int yy = 0; yy < nrows; yy++) {
        const uint8_t *row = src + (size_t)(y0 + yy) * src_w * 3;
        uint8_t *o = dst + (size_t)yy * out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = rc->bounds[2 * xx], xmax = rc->bounds[2 * xx + 1];
            const int32_t *k = rc->k + (size_t)xx * rc->ksize;
            int32_t s0 = 1 << (RS_PRECISION_BITS - 1), s1 = s0, s2 = s0;
            const uint8_t *p = row + (size_t)xmin * 3;
            for (int x = 0; x < xmax; x++) {
                s0 += p[3 * x + 0] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            o[3 * xx + 0] = rs_clip8(s0);
            o[3 * xx + 1] = rs_clip8(s1);
            o[3 * xx + 2] = rs_clip8(s2);
        }
    }
}

/* src rows (width w) -> out_h rows; bounds are relative to src's first row. */
static void rs_vertical(const uint8_t *src, int w, uint8_t *dst, int out_h, const rs_coeffs *rc) {
    size_t stride = (size_t)w * 3;
#pragma omp parallel for schedule(static) if ((size_t)out_h * w > 4096)
    for (int yy = 0; yy < out_h; yy++) {
        int ymin = rc->bounds[2 * yy], ymax = rc->bounds[2 * yy + 1];
        const int32_t *k = rc->k + (size_t)yy * rc->ksize;
        uint8_t *o = dst + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int32_t s = 1 << (RS_PRECISION_BITS - 1);
            const uint8_t *p = src + (size_t)ymin * stride + i;
            for (int y = 0; y < ymax; y++) s += p[(size_t)y * stride] * k[y];
            o[i] = rs_clip8(s);
        }
    }
}

da_status da_image_resize_bicubic(const da_image *src, int w, int h, da_image *dst, da_error *err) {
    if (!src || !src->data || src->w <= 0 || src->h <= 0)
        return da_err_set(err, DA_ERR_INVALID_ARG, "resize: empty source image");
    if (w <= 0 || h <= 0) return da_err_set(err, DA_ERR_INVALID_ARG, "resize: target size %dx%d", w, h);
    da_image out;
    da_status st = da_image_alloc(&out, w, h, err);
    if (st) return st;
    bool need_h = w != src->w, need_v = h != src->h;
    if (!need_h && !need_v) {
        memcpy(out.data, src->data, (size_t)w * h * 3);
        *dst = out;
        return DA_OK;
    }
    rs_coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL;
    if ((need_h && (st = rs_precompute(src->w, w, &ch, err))) ||
        (need_v && (st = rs_precompute(src->h, h, &cv, err))))
        goto fail;
    /* Pillow >= 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks
     * by more than twice as many pixels as the width does; the 8-bit intermediate makes the order
     * visible in the output, so we follow the same rule (measured against Pillow 13.0 on 394 random
     * size pairs: every one matches). */
    bool vertical_first = need_h && need_v && src->h - h > 0 && src->h - h > 2 * (src->w - w);
    if (vertical_first) {
        tmp = da_malloc((size_t)src->w * h * 3, err);
        if (!tmp) {
            st = DA_ERR_NOMEM;
            goto fail;
        }
        rs_vertical(src->data, src->w, tmp, h, &cv);
        rs_horizontal(tmp, src->w, 0, h, out.data, w, &ch);
    } else if (need_h && need_v) {
        /* Only the source rows some output row reads go through the horizontal pass. */
        int first = cv.bounds[0];
        int last = cv.bounds[2 * h - 2] + cv.bounds[2 * h - 1];
        for (int i = 0; i < h; i++) cv.bounds[2 * i] -= first;
        tmp = da_malloc((size_t)w * (last - first) * 3, err);
        if (!tmp) {
            st = DA_ERR_NOMEM;
            goto fail;
        }
        rs_horizontal(src->data, src->w, first, last - first, tmp, w, &ch);
        rs_vertical(tmp, w, out.data, h, &cv);
    } else if (need_h) {
        rs_horizontal(src->data, src->w, 0, h, out.data, w, &ch);
    } else {
        rs_vertical(src->data, w, out.data, h, &cv);
    }
    free(tmp);
    free(ch.bounds);
    free(ch.k);
    free(cv.bounds);
    free(cv.k);
    *dst = out;
    return DA_OK;
fail:
    free(tmp);
    free(ch.bounds);
    free(ch.k);
    free(cv.bounds);
    free(cv.k);
    da_image_free(&out);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * Crops */

da_status da_image_crop(const da_image *src, int x, int y, int w, int h, da_image *dst, da_error *err) {
    if (!src || !src->data) return da_err_set(err, DA_ERR_INVALID_ARG, "crop: empty source image");
    if (w <= 0 || h <= 0 || x < 0 || y < 0 || x > src->w - w || y > src->h - h)
        return da_err_set(err, DA_ERR_BOUNDS, "crop (%d, %d, %dx%d) lies outside the %dx%d image", x, y, w, h,
                          src->w, src->h);
    da_status st = da_image_alloc(dst, w, h, err);
    if (st) return st;
    for (int r = 0; r < h; r++)
        memcpy(dst->data + (size_t)r * w * 3, src->data + ((size_t)(y + r) * src->w + x) * 3, (size_t)w * 3);
    return DA_OK;
}

/* Python's floor division for the crop offsets: transformers' (orig - crop) // 2 and, where the image
 * is smaller, its pad of ceil((crop - orig) / 2) both come to floor((orig - crop) / 2). */
static int floor_div2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

da_status da_image_center_crop(const da_image *src, int w, int h, da_image *dst, da_error *err) {
    if (!src || !src->data) return da_err_set(err, DA_ERR_INVALID_ARG, "center crop: empty source image");
    if (w <= 0 || h <= 0) return da_err_set(err, DA_ERR_INVALID_ARG, "center crop: size %dx%d", w, h);
    int top = floor_div2(src->h - h), left = floor_div2(src->w - w);
    if (top >= 0 && left >= 0 && top + h <= src->h && left + w <= src->w)
        return da_image_crop(src, left, top, w, h, dst, err);
    da_status st = da_image_alloc(dst, w, h, err);
    if (st) return st;
    memset(dst->data, 0, (size_t)w * h * 3);
    for (int r = 0; r < h; r++) {
        int sy = top + r;
        if (sy < 0 || sy >= src->h) continue;
        int x0 = left < 0 ? -left : 0;
        int x1 = src->w - left < w ? src->w - left : w;
        if (x1 > x0)
            memcpy(dst->data + ((size_t)r * w + x0) * 3, src->data + ((size_t)sy * src->w + left + x0) * 3,
                   (size_t)(x1 - x0) * 3);
    }
    return DA_OK;
}

void da_image_shortest_side_size(int w, int h, int size, int *out_w, int *out_h) {
    int s = w <= h ? w : h, l = w <= h ? h : w;
    /* int(size * long / short): exact product, true division in double, truncation. */
    int nl = (int)((double)((int64_t)size * l) / (double)s);
    if (w <= h) {
        *out_w = size;
        *out_h = nl;
    } else {
        *out_w = nl;
        *out_h = size;
    }
}

da_status da_image_resize_shortest(const da_image *src, int size, da_image *dst, da_error *err) {
    if (!src || !src->data || src->w <= 0 || src->h <= 0)
        return da_err_set(err, DA_ERR_INVALID_ARG, "resize: empty source image");
    if (size <= 0) return da_err_set(err, DA_ERR_INVALID_ARG, "resize: shortest side %d", size);
    int w, h;
    da_image_shortest_side_size(src->w, src->h, size, &w, &h);
    return da_image_resize_bicubic(src, w, h, dst, err);
}

/* ------------------------------------------------------------------------------------------------
 * Tensors */

void da_image_to_pm1(const da_image *im, float *out) {
    size_t n = (size_t)im->w * im->h;
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * n;
        const uint8_t *s = im->data + c;
        for (size_t i = 0; i < n; i++) o[i] = (float)s[3 * i] / 127.5f - 1.0f;
    }
}

da_status da_pm1_to_image(const float *chw, int w, int h, da_image *dst, da_error *err) {
    da_status st = da_image_alloc(dst, w, h, err);
    if (st) return st;
    size_t n = (size_t)w * h;
    for (int c = 0; c < 3; c++) {
        const float *s = chw + (size_t)c * n;
        uint8_t *d = dst->data + c;
        for (size_t i = 0; i < n; i++) {
            float v = s[i] / 2.0f + 0.5f;
            if (!(v > 0.0f)) v = 0.0f; /* also maps NaN to 0 */
            if (v > 1.0f) v = 1.0f;
            /* nearbyintf in the default rounding mode is round-half-to-even, like numpy .round() */
            d[3 * i] = (uint8_t)nearbyintf(v * 255.0f);
        }
    }
    return DA_OK;
}

void da_image_to_clip(const da_image *im, float *out) {
    size_t n = (size_t)im->w * im->h;
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * n;
        const uint8_t *s = im->data + c;
        float mean = da_clip_mean[c], std = da_clip_std[c];
        for (size_t i = 0; i < n; i++) {
            float v = (float)((double)s[3 * i] * (1.0 / 255.0));
            o[i] = (v - mean) / std;
        }
    }
}

da_status da_image_clip_preprocess(const da_image *im, int size, float *out, da_error *err) {
    da_image r = {0}, cr = {0};
    da_status st = da_image_resize_shortest(im, size, &r, err);
    if (st) return st;
    st = da_image_center_crop(&r, size, size, &cr, err);
    da_image_free(&r);
    if (st) return st;
    da_image_to_clip(&cr, out);
    da_image_free(&cr);
    return DA_OK;
}
