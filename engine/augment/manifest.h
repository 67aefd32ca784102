/* manifest.h - manifest.jsonl (METHODS.md section 4): one JSON object per line per output or dropped
 * attempt, appended and flushed record by record; the resume reader; the shard merge; summary.json.
 *
 * A record is identified by its work unit (unit_id, unit_index): for DiffuseMix (image id, prompt
 * index), for SGID (image id, sample index), for DiffCoRe-Mix (class id, attempt index). Records
 * hold nothing that depends on the shard, the thread count or the time, so the merge of shard
 * manifests equals the manifest of one run, byte for byte, once both are sorted.
 */
#ifndef DA_AUGMENT_MANIFEST_H
#define DA_AUGMENT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "diffaug.h"

struct da_buf;

typedef struct da_model_hash {
    const char *name;   /* "unet", "vae", "text_encoder", ... */
    const char *sha256; /* 64 hex digits */
} da_model_hash;

/* Fields in the order they are written. NULL strings and NaN numbers are written as null;
 * negative steps as null. */
typedef struct da_manifest_rec {
    uint64_t unit_id;         /* written as 16 hex digits */
    uint32_t unit_index;
    const char *source;       /* input image path relative to the dataset root (NULL for class-level units) */
    const char *class_name;   /* class folder name */
    const char *recipe;       /* "diffusemix", "diffcoremix", "sgid" */
    const char *prompt, *negative_prompt;
    uint64_t seed;
    const char *sampler;
    int steps;
    double guidance, image_guidance, strength, filter_score;
    bool kept;
    const char *reason;       /* why dropped (or NULL) */
    const char *output;       /* output path relative to the output root; NULL when dropped */
    const da_model_hash *models;
    size_t n_models;
    const char *version;      /* NULL: DIFFAUG_VERSION */
    const char *backend;      /* compute backend of the generation ("cpu", "cuda", ...); NULL: not written */
    const char *const *deviations; /* labelled deviations from the paper/code, e.g. "sd15-instead-of-sdxl" */
    size_t n_deviations;
    const char *notes;        /* free text */
} da_manifest_rec;

/* Defaults: everything NULL / NaN / steps -1, kept true. */
void da_manifest_rec_init(da_manifest_rec *r);
/* The record as one JSON line (with the trailing '\n') appended to b. */
void da_manifest_format(const da_manifest_rec *r, struct da_buf *b);

typedef struct da_manifest_writer da_manifest_writer;
/* Open path for appending (created if missing). A torn last line left by a killed run is cut off
 * first so the next record starts on a line of its own. */
da_status da_manifest_open(const char *path, da_manifest_writer **out, da_error *err);
/* Append one record with a single write, then fflush and fdatasync: a kill loses at most this record. */
da_status da_manifest_append(da_manifest_writer *w, const da_manifest_rec *r, da_error *err);
void da_manifest_close(da_manifest_writer *w);

/* ---- reading ----------------------------------------------------------------------------------- */

typedef struct da_manifest_entry {
    uint64_t unit_id;
    uint32_t unit_index;
    bool kept;
    char *output;     /* NULL when the record has none */
    char *class_name; /* NULL when absent */
    char *line;       /* the record's exact text, without the '\n' */
} da_manifest_entry;

typedef struct da_manifest {
    da_manifest_entry *e;
    size_t n;
    bool torn_tail; /* the file ended in an unterminated or unparsable last line, which was ignored */
} da_manifest;

/* Read a manifest. A missing file is an empty manifest. Only the last line may be torn (no '\n' or
 * not valid JSON): it is ignored and torn_tail set; a bad line elsewhere is DA_ERR_FORMAT naming
 * the file and line. */
da_status da_manifest_read(const char *path, da_manifest *m, da_error *err);
void da_manifest_free(da_manifest *m);

/* Resume set: the units already finished. A unit is finished when its last record is a drop, or is
 * kept and out_root/output exists as a regular file under its final name (temporary files never
 * count). Sorted by (unit_id, unit_index); query with da_resume_has. */
typedef struct da_resume {
    uint64_t *keys; /* pairs (unit_id, unit_index) */
    size_t n;
} da_resume;
da_status da_resume_build(const da_manifest *m, const char *out_root, da_resume *r, da_error *err);
bool da_resume_has(const da_resume *r, uint64_t unit_id, uint32_t unit_index);
void da_resume_free(da_resume *r);

/* Merge manifests: records sorted by (unit_id, unit_index); identical duplicates collapse; two
 * different records for one unit are refused (DA_ERR_DUPLICATE naming both files and the unit).
 * The result is written atomically to out_path. Torn last lines of inputs are ignored. */
da_status da_manifest_merge(const char *const *inputs, size_t n_inputs, const char *out_path, size_t *n_records,
                            da_error *err);

/* ---- summary.json ------------------------------------------------------------------------------ */

typedef struct da_summary_class {
    char *name;
    uint64_t kept, dropped;
} da_summary_class;

typedef struct da_summary {
    da_summary_class *c;
    size_t n;
    uint64_t kept, dropped, skipped_resume, problems;
    /* records made during the timed run (the numerator of images_per_s): a resumed run counts only
     * its own work; a summary of a whole manifest (da_summary_from_manifest) counts every record */
    uint64_t produced;
    const char *backend; /* compute backend of the run; NULL: not written */
} da_summary;

/* Count one record of class name (adds the class on first sight). */
da_status da_summary_add(da_summary *s, const char *class_name, bool kept, da_error *err);
/* Count every record of a manifest. */
da_status da_summary_from_manifest(da_summary *s, const da_manifest *m, da_error *err);
/* Write summary.json atomically: per-class counts (sorted by class), totals, wall time, the records
 * produced in that time and images/s (produced over wall_s), recipe name. */
da_status da_summary_write(const char *path, const da_summary *s, const char *recipe, double wall_s, da_error *err);
void da_summary_free(da_summary *s);

/* ---- progress ---------------------------------------------------------------------------------- */

/* The progress line of METHODS.md section 4, e.g. "37/120 units (30.8%), 1.25 units/s, ETA 00:01:06"
 * ("ETA --:--:--" before the first unit is done). done counts the units processed in this run,
 * total the units this run will process (resume-skipped ones excluded). */
void da_progress_format(uint64_t done, uint64_t total, double elapsed_s, char *buf, size_t cap);

#endif
