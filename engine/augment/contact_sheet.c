/* contact_sheet.c - image grids for demos (see contact_sheet.h). */
#include "augment/contact_sheet.h"

#include <string.h>

#include "util.h"

void da_sheet_opts_init(da_sheet_opts *o) {
    o->cell = 128;
    o->border = 2;
    o->border_rgb[0] = o->border_rgb[1] = o->border_rgb[2] = 128;
    o->empty_rgb[0] = o->empty_rgb[1] = o->empty_rgb[2] = 0;
}

da_status da_contact_sheet(const da_image *const *cells, int rows, int cols, const da_sheet_opts *o, da_image *out,
                           da_error *err) {
    da_sheet_opts def;
    if (!o) da_sheet_opts_init(&def), o = &def;
    if (rows < 1 || cols < 1 || o->cell < 1 || o->border < 0 || rows > 4096 || cols > 4096 || o->cell > 8192 ||
        o->border > 256)
        return da_err_set(err, DA_ERR_INVALID_ARG, "contact sheet: bad layout (%d x %d cells of %d px, border %d)", rows,
                          cols, o->cell, o->border);
    int64_t W = (int64_t)cols * o->cell + (int64_t)(cols + 1) * o->border;
    int64_t H = (int64_t)rows * o->cell + (int64_t)(rows + 1) * o->border;
    if (W > DA_IMAGE_MAX_SIDE || H > DA_IMAGE_MAX_SIDE)
        return da_err_set(err, DA_ERR_INVALID_ARG, "contact sheet: %lldx%lld pixels is too large", (long long)W, (long long)H);
    da_image sheet = {0};
    da_status st = da_image_alloc(&sheet, (int)W, (int)H, err);
    if (st != DA_OK) return st;
    for (int64_t i = 0; i < W * H; i++) memcpy(sheet.data + 3 * i, o->border_rgb, 3);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int x0 = o->border + c * (o->cell + o->border), y0 = o->border + r * (o->cell + o->border);
            for (int y = 0; y < o->cell; y++)
                for (int x = 0; x < o->cell; x++) memcpy(sheet.data + (((size_t)(y0 + y)) * W + x0 + x) * 3, o->empty_rgb, 3);
            const da_image *im = cells[(size_t)r * cols + c];
            if (!im || !im->data) continue;
            int w = o->cell, h = o->cell;
            if (im->w >= im->h) h = (int)((int64_t)o->cell * im->h / im->w);
            else w = (int)((int64_t)o->cell * im->w / im->h);
            if (w < 1) w = 1;
            if (h < 1) h = 1;
            da_image fit = {0};
            if ((st = da_image_resize_bicubic(im, w, h, &fit, err)) != DA_OK) {
                da_image_free(&sheet);
                da_err_prefix(err, "contact sheet cell (%d, %d)", r, c);
                return st;
            }
            int ox = x0 + (o->cell - w) / 2, oy = y0 + (o->cell - h) / 2;
            for (int y = 0; y < h; y++)
                memcpy(sheet.data + ((size_t)(oy + y) * W + ox) * 3, fit.data + (size_t)y * w * 3, (size_t)w * 3);
            da_image_free(&fit);
        }
    *out = sheet;
    return DA_OK;
}
