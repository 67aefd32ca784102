/* dataset.h - the input contract every recipe shares (METHODS.md section 4): an ImageFolder dataset
 * (torchvision.datasets.ImageFolder: one sub-folder per class, classes sorted), stable image ids,
 * DiffCoRe-Mix's class label rule, problem reporting that never stops the scan, the
 * output-not-inside-input rule and the --shard partition of work units.
 *
 * Image id (ours): the first 8 bytes (big-endian) of SHA-256 of the image's path relative to the
 * dataset root, "<class folder>/<file name>". It depends on nothing else, so an image's random
 * draws (and so its outputs) do not change with the shard count, thread count, or other files or
 * classes being added or removed. Two files colliding on 64 bits is reported as a problem.
 */
#ifndef DA_AUGMENT_DATASET_H
#define DA_AUGMENT_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diffaug.h"
#include "image.h"

typedef enum da_problem_kind {
    DA_PROBLEM_NOT_IMAGE = 1,  /* a file whose content is neither PNG nor JPEG */
    DA_PROBLEM_UNREADABLE,     /* cannot be opened/read, or fails to decode (corrupt, truncated) */
    DA_PROBLEM_TOO_SMALL,      /* decodes, but a side is below DA_DATASET_MIN_SIDE */
    DA_PROBLEM_EMPTY_CLASS,    /* a class folder with no usable image */
    DA_PROBLEM_STRAY_FILE,     /* a file directly in the dataset root (belongs to no class) */
    DA_PROBLEM_SUBFOLDER,      /* a folder inside a class folder (not descended into) */
    DA_PROBLEM_ID_COLLISION,   /* two images with the same 64-bit id (second one skipped) */
} da_problem_kind;

#define DA_DATASET_MIN_SIDE 8

/* "not_image", "unreadable", "too_small", "empty_class", "stray_file", "subfolder", "id_collision" */
const char *da_problem_name(da_problem_kind k);

typedef struct da_problem {
    da_problem_kind kind;
    char *path; /* relative to the dataset root */
    char *msg;
} da_problem;

typedef struct da_ds_image {
    char *rel;          /* "<class>/<file>" */
    char *path;         /* root joined with rel */
    int cls;            /* index into classes */
    uint64_t id;        /* see above */
    char *stem;         /* output stem: the file name without its extension, or, when another file of
                         * the class has the same stem (a.png + a.jpg), the name with '.' -> '_' (a_png) */
    int w, h;           /* 0 when the scan did not decode (verify = false) */
    da_image_format format;
} da_ds_image;

typedef struct da_ds_class {
    char *name;   /* folder name, e.g. "001.Black_footed_Albatross" */
    char *label;  /* da_class_label(name), e.g. "Black footed Albatross" */
    size_t first, count; /* images[first .. first+count) */
} da_ds_class;

typedef struct da_dataset {
    char *root;
    da_ds_class *classes;
    size_t n_classes;
    da_ds_image *images; /* class by class, each class's files sorted bytewise */
    size_t n_images;
    da_problem *problems; /* in scan order (class by class, file by file) */
    size_t n_problems;
} da_dataset;

typedef struct da_scan_opts {
    bool verify; /* decode every image (OpenMP) to catch corrupt, truncated and tiny files; default true.
                  * false: sniff the first bytes only (no size check, no truncation check). */
} da_scan_opts;
void da_scan_opts_init(da_scan_opts *o);

/* Scan root. Fails (returns an error) only when root itself cannot be read or memory runs out;
 * everything wrong with individual entries becomes a problem record. Hidden entries (name starting
 * with '.') are skipped silently. An empty class folder is kept as a class with count 0 (so class
 * indices match ImageFolder's) and reported. */
da_status da_dataset_scan(const char *root, const da_scan_opts *opts, da_dataset **out, da_error *err);
void da_dataset_free(da_dataset *ds);

/* DiffCoRe-Mix's {label}: drop a leading "<digits>." and turn '_' into ' '. malloc'd. */
char *da_class_label(const char *folder);

/* The id of a relative path "<class>/<file>" as defined above. */
uint64_t da_image_id(const char *rel);

/* Refuse an output folder equal to the input folder or inside it (after resolving symlinks, "..",
 * and, for an output that does not exist yet, its deepest existing ancestor). DA_ERR_INVALID_ARG
 * with a message naming both paths. The input must exist. */
da_status da_check_output_dir(const char *input, const char *output, da_error *err);

/* ---- output names (METHODS.md 1 step 9 and 3 step 6) ---------------------------------------------- */

/* A prompt or tag made safe for a file name: every byte outside [A-Za-z0-9.-] becomes '_', runs of
 * '_' collapse, leading/trailing '_' and '.' are dropped, at most 64 bytes are kept; "" becomes
 * "empty". "a sketch with crayon" -> "a_sketch_with_crayon", "ukiyo-e" -> "ukiyo-e". malloc'd. */
char *da_name_tag(const char *s);
/* "<class>/<stem>_<tag>_<k>.<ext>" (tag passed through da_name_tag). DiffuseMix: tag = prompt,
 * under blended/ (and generated/, concatenated/); SGID: tag = da_sgid_tag(r). malloc'd. */
char *da_output_name(const char *class_name, const char *stem, const char *tag, unsigned k, const char *ext);
/* SGID's "sgid_<r>" with r printed as the shortest "%g" form (0.5 -> "sgid_0.5"). */
void da_sgid_tag(double strength, char *buf, size_t cap);

/* ---- sharding ---------------------------------------------------------------------------------- */

/* Work units are numbered 0..U-1 in a fixed order (the recipe's: image in scan order, then prompt or
 * attempt index). Shard index/count (0-based index, "--shard I/N") takes every unit u with
 * u mod N == I: fixed, balanced (shard sizes differ by at most one), independent of threads, and
 * the N shards are disjoint and together the whole. */
typedef struct da_shard {
    uint32_t index, count;
} da_shard;

/* Parse "I/N" with 0 <= I < N, 1 <= N <= 65536. */
da_status da_shard_parse(const char *text, da_shard *out, da_error *err);
static inline bool da_shard_has(da_shard s, uint64_t unit) { return s.count <= 1 || unit % s.count == s.index; }
/* How many of U units the shard takes. */
uint64_t da_shard_size(da_shard s, uint64_t n_units);
/* The j-th unit of the shard (j < da_shard_size). */
static inline uint64_t da_shard_unit(da_shard s, uint64_t j) { return s.count <= 1 ? j : j * s.count + s.index; }

#endif
