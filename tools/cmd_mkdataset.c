/* cmd_mkdataset.c - `diffaug mkdataset`: a small synthetic ImageFolder dataset of procedural shapes
 * for demos and end-to-end tests. Each class has its own shape family and hue; positions, sizes and
 * colours are drawn from the stream (seed, class index, file index, DA_DRAW_DATASET_GEN), so the
 * dataset is a function of its arguments. Files alternate PNG / JPEG; the dataset's second image is
 * a greyscale JPEG and its third an RGBA PNG, to exercise those decoder paths. Ours. */
#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "augment/draw.h"
#include "cli.h"
#include "image.h"
#include "util.h"

static const char *families[] = {"circles", "stripes", "triangles", "squares", "rings", "checks"};
static const char *colours[] = {"Red", "Orange", "Yellow", "Green", "Cyan", "Blue", "Violet", "Pink"};
#define N_FAM 6
#define N_COL 8

static void hsv(double h, double s, double v, double rgb[3]) {
    h = (h - floor(h)) * 6;
    int i = (int)h;
    double f = h - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double tab[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    for (int c = 0; c < 3; c++) rgb[c] = 255 * tab[i % 6][c];
}

/* Does pixel (x, y) belong to shape k of family fam with centre (cx, cy) and radius r? */
static int inside(int fam, double x, double y, double cx, double cy, double r, double ang) {
    double dx = x - cx, dy = y - cy, d = sqrt(dx * dx + dy * dy);
    switch (fam) {
    case 0: return d <= r;
    case 1: { /* a band of stripes at angle ang within radius 1.5 r */
        double u = dx * cos(ang) + dy * sin(ang);
        return d <= 1.5 * r && fmod(fabs(u), r * 0.5) < r * 0.25;
    }
    case 2: { /* upward triangle */
        double ty = (dy + r) / (2 * r);
        return ty >= 0 && ty <= 1 && fabs(dx) <= ty * r;
    }
    case 3: return fabs(dx * cos(ang) + dy * sin(ang)) <= r * 0.8 && fabs(-dx * sin(ang) + dy * cos(ang)) <= r * 0.8;
    case 4: return d <= r && d >= 0.6 * r;
    default: return fabs(dx) <= r && fabs(dy) <= r && (((int)floor((dx + r) / (r / 2)) + (int)floor((dy + r) / (r / 2))) & 1);
    }
}

static void render(int cls, int idx, int size, uint64_t seed, da_image *im) {
    da_draw d;
    da_draw_init(&d, seed, (uint64_t)cls, (uint32_t)idx, DA_DRAW_DATASET_GEN);
    int fam = cls % N_FAM;
    double hue = (double)(cls % N_COL) / N_COL, bg[3];
    hsv(hue + da_draw_range(&d, -0.05, 0.05), da_draw_range(&d, 0.05, 0.2), da_draw_range(&d, 0.85, 1.0), bg);
    for (size_t p = 0; p < (size_t)size * size; p++)
        for (int c = 0; c < 3; c++) im->data[3 * p + c] = (uint8_t)bg[c];
    int n = 2 + (int)da_draw_below(&d, 5);
    for (int k = 0; k < n; k++) {
        double cx = da_draw_range(&d, 0.15, 0.85) * size, cy = da_draw_range(&d, 0.15, 0.85) * size;
        double r = da_draw_range(&d, 0.08, 0.25) * size, ang = da_draw_range(&d, 0, M_PI), col[3];
        hsv(hue + da_draw_range(&d, -0.06, 0.06), da_draw_range(&d, 0.6, 1.0), da_draw_range(&d, 0.4, 0.95), col);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                if (inside(fam, x + 0.5, y + 0.5, cx, cy, r, ang))
                    for (int c = 0; c < 3; c++) im->data[((size_t)y * size + x) * 3 + c] = (uint8_t)col[c];
    }
}

/* ---- writers for the two extra colour types (RGB goes through image.h) -------------------------- */

typedef struct jerr_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} jerr_mgr;
static void jerr_exit(j_common_ptr c) { longjmp(((jerr_mgr *)c->err)->jb, 1); }

static da_status save_grey_jpeg(const char *path, const da_image *im, da_error *err) {
    da_atomic_file af;
    da_status st = da_atomic_open(&af, path, err);
    if (st != DA_OK) return st;
    uint8_t *row = malloc((size_t)im->w);
    struct jpeg_compress_struct cinfo;
    jerr_mgr je;
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jerr_exit;
    if (!row || setjmp(je.jb)) {
        jpeg_destroy_compress(&cinfo);
        free(row);
        da_atomic_abort(&af);
        return da_err_set(err, DA_ERR_IO, "%s: cannot write the greyscale JPEG", path);
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, af.fp);
    cinfo.image_width = (JDIMENSION)im->w, cinfo.image_height = (JDIMENSION)im->h;
    cinfo.input_components = 1, cinfo.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 90, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        const uint8_t *p = im->data + (size_t)cinfo.next_scanline * im->w * 3;
        for (int x = 0; x < im->w; x++) row[x] = (uint8_t)((p[3 * x] * 19595u + p[3 * x + 1] * 38470u + p[3 * x + 2] * 7471u + 0x8000u) >> 16);
        JSAMPROW rp = row;
        jpeg_write_scanlines(&cinfo, &rp, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(row);
    return da_atomic_commit(&af, err);
}

static da_status save_rgba_png(const char *path, const da_image *im, da_error *err) {
    da_atomic_file af;
    da_status st = da_atomic_open(&af, path, err);
    if (st != DA_OK) return st;
    uint8_t *row = malloc((size_t)im->w * 4);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!row || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(row);
        da_atomic_abort(&af);
        return da_err_set(err, DA_ERR_IO, "%s: cannot write the RGBA PNG", path);
    }
    png_init_io(png, af.fp);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < im->h; y++) {
        for (int x = 0; x < im->w; x++) {
            memcpy(row + 4 * x, im->data + ((size_t)y * im->w + x) * 3, 3);
            row[4 * x + 3] = (uint8_t)(255 - (x * 200) / (im->w > 1 ? im->w - 1 : 1)); /* a left-to-right fade */
        }
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(row);
    return da_atomic_commit(&af, err);
}

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: diffaug mkdataset [--classes C] [--per-class N] [--size S] [--seed SEED] -o DIR\n"
            "  writes DIR/<NNN.Colour_family>/img_<k>.{png,jpg}: C classes (default 3) of N images (default 4),\n"
            "  S x S pixels (default 64); the same arguments always give the same bytes.\n");
}

int cmd_mkdataset(int argc, char **argv) {
    int64_t classes = 3, per = 4, size = 64, seed = 0;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--classes")) {
            if (!cli_parse_int("mkdataset", a, v, 1, 1000, &classes)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--per-class")) {
            if (!cli_parse_int("mkdataset", a, v, 0, 100000, &per)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--size")) {
            if (!cli_parse_int("mkdataset", a, v, 8, 4096, &size)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_int("mkdataset", a, v, 0, INT64_MAX, &seed)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "-o") && v) {
            out = v;
            i++;
        } else {
            fprintf(stderr, "diffaug mkdataset: unknown argument '%s'\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!out) {
        usage(stderr);
        return CLI_USAGE;
    }
    da_error err;
    da_err_clear(&err);
    for (int c = 0; c < classes; c++) {
        char cname[64];
        snprintf(cname, sizeof cname, "%03d.%s_%s", c + 1, colours[c % N_COL], families[c % N_FAM]);
        char *cdir = da_path_join(out, cname);
        if (!cdir || da_mkdirs(cdir, &err) != DA_OK) {
            free(cdir);
            return cli_fail("mkdataset", &err);
        }
        da_status st = DA_OK;
#pragma omp parallel for schedule(dynamic, 1)
        for (int j = 0; j < per; j++) {
            da_error e;
            da_err_clear(&e);
            long g = (long)c * per + j;
            da_image im = {0};
            da_status r = da_image_alloc(&im, (int)size, (int)size, &e);
            char name[64];
            snprintf(name, sizeof name, "img_%03d.%s", j, (g == 1 || (g != 2 && (j & 1))) ? "jpg" : "png");
            char *path = da_path_join(cdir, name);
            if (r == DA_OK && path) {
                render(c, j, (int)size, (uint64_t)seed, &im);
                r = g == 1 ? save_grey_jpeg(path, &im, &e)
                    : g == 2 ? save_rgba_png(path, &im, &e)
                    : (j & 1) ? da_image_save_jpeg(path, &im, 90, &e)
                              : da_image_save_png(path, &im, NULL, NULL, 0, &e);
            } else if (r == DA_OK) r = da_err_set(&e, DA_ERR_NOMEM, "out of memory");
            free(path);
            da_image_free(&im);
            if (r != DA_OK)
#pragma omp critical(mkdataset_err)
                if (st == DA_OK) st = r, err = e;
        }
        free(cdir);
        if (st != DA_OK) return cli_fail("mkdataset", &err);
    }
    fprintf(stderr, "diffaug mkdataset: %lld classes x %lld images of %lldx%lld in %s\n", (long long)classes,
            (long long)per, (long long)size, (long long)size, out);
    return CLI_OK;
}
