/* contact_sheet.h - one PNG grid of images with equal cells and thin borders (e.g. per row:
 * original | generated | hybrid | final), for `make demo` and visual checks. Ours. */
#ifndef DA_AUGMENT_CONTACT_SHEET_H
#define DA_AUGMENT_CONTACT_SHEET_H

#include <stdint.h>

#include "diffaug.h"
#include "image.h"

typedef struct da_sheet_opts {
    int cell;          /* cell side in pixels; default 128 */
    int border;        /* border width in pixels between and around cells; default 2 */
    uint8_t border_rgb[3]; /* default mid grey (128,128,128) */
    uint8_t empty_rgb[3];  /* background of an empty cell / letterbox; default black */
} da_sheet_opts;
void da_sheet_opts_init(da_sheet_opts *o);

/* Lay out rows x cols cells, cells[r * cols + c] (NULL = empty cell). Each image is resized with
 * Pillow's bicubic to fit the cell keeping its aspect ratio (longer side = cell) and centred.
 * out is allocated here: width cols*cell + (cols+1)*border, height likewise. */
da_status da_contact_sheet(const da_image *const *cells, int rows, int cols, const da_sheet_opts *o, da_image *out,
                           da_error *err);

#endif
