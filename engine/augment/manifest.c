/* manifest.c - manifest.jsonl writing, reading, resume, merge and summary.json (see manifest.h;
 * record fields from METHODS.md section 4, layout ours). */
#include "augment/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

void da_manifest_rec_init(da_manifest_rec *r) {
    memset(r, 0, sizeof *r);
    r->steps = -1;
    r->guidance = r->image_guidance = r->strength = r->filter_score = NAN;
    r->kept = true;
}

static void put_str(da_buf *b, const char *key, const char *v) {
    da_buf_printf(b, ",\"%s\":", key);
    if (v) da_buf_json_string(b, v);
    else da_buf_append(b, "null", 4);
}

static void put_num(da_buf *b, const char *key, double v) {
    if (isfinite(v)) da_buf_printf(b, ",\"%s\":%.9g", key, v);
    else da_buf_printf(b, ",\"%s\":null", key);
}

void da_manifest_format(const da_manifest_rec *r, da_buf *b) {
    da_buf_printf(b, "{\"unit_id\":\"%016" PRIx64 "\",\"unit_index\":%" PRIu32, r->unit_id, r->unit_index);
    put_str(b, "source", r->source);
    put_str(b, "class", r->class_name);
    put_str(b, "recipe", r->recipe);
    put_str(b, "prompt", r->prompt);
    put_str(b, "negative_prompt", r->negative_prompt);
    da_buf_printf(b, ",\"seed\":%" PRIu64, r->seed);
    put_str(b, "sampler", r->sampler);
    if (r->steps >= 0) da_buf_printf(b, ",\"steps\":%d", r->steps);
    else da_buf_printf(b, ",\"steps\":null");
    put_num(b, "guidance", r->guidance);
    put_num(b, "image_guidance", r->image_guidance);
    put_num(b, "strength", r->strength);
    put_num(b, "filter_score", r->filter_score);
    da_buf_printf(b, ",\"kept\":%s", r->kept ? "true" : "false");
    put_str(b, "reason", r->reason);
    put_str(b, "output", r->output);
    da_buf_printf(b, ",\"models\":{");
    for (size_t i = 0; i < r->n_models; i++) {
        if (i) da_buf_append(b, ",", 1);
        da_buf_json_string(b, r->models[i].name ? r->models[i].name : "");
        da_buf_append(b, ":", 1);
        da_buf_json_string(b, r->models[i].sha256 ? r->models[i].sha256 : "");
    }
    da_buf_printf(b, "}");
    put_str(b, "version", r->version ? r->version : DIFFAUG_VERSION);
    if (r->backend) put_str(b, "backend", r->backend);
    da_buf_printf(b, ",\"deviations\":[");
    for (size_t i = 0; i < r->n_deviations; i++) {
        if (i) da_buf_append(b, ",", 1);
        da_buf_json_string(b, r->deviations[i] ? r->deviations[i] : "");
    }
    da_buf_printf(b, "]");
    put_str(b, "notes", r->notes);
    da_buf_append(b, "}\n", 2);
}

/* ---- writer ------------------------------------------------------------------------------------ */

struct da_manifest_writer {
    FILE *fp;
    char *path;
};

da_status da_manifest_open(const char *path, da_manifest_writer **out, da_error *err) {
    FILE *fp = fopen(path, "a+b");
    if (!fp) return da_err_set(err, DA_ERR_IO, "%s: cannot open the manifest for appending: %s", path, strerror(errno));
    /* Cut a torn tail: find the last '\n' and truncate after it. */
    if (fseeko(fp, 0, SEEK_END) != 0) goto ioerr;
    off_t size = ftello(fp), keep = 0;
    if (size > 0) {
        char buf[4096];
        off_t pos = size;
        bool found = false;
        while (pos > 0 && !found) {
            size_t k = pos > (off_t)sizeof buf ? sizeof buf : (size_t)pos;
            pos -= (off_t)k;
            if (fseeko(fp, pos, SEEK_SET) != 0 || fread(buf, 1, k, fp) != k) goto ioerr;
            for (size_t i = k; i-- > 0;)
                if (buf[i] == '\n') {
                    keep = pos + (off_t)i + 1;
                    found = true;
                    break;
                }
        }
        if (keep != size && ftruncate(fileno(fp), keep) != 0) goto ioerr;
    }
    da_manifest_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        fclose(fp);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    }
    w->fp = fp;
    *out = w;
    return DA_OK;
ioerr:;
    int e = errno;
    fclose(fp);
    return da_err_set(err, DA_ERR_IO, "%s: cannot prepare the manifest for appending: %s", path, strerror(e));
}

da_status da_manifest_append(da_manifest_writer *w, const da_manifest_rec *r, da_error *err) {
    da_buf b = {0};
    da_manifest_format(r, &b);
    if (b.failed) {
        da_buf_free(&b);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory formatting a record", w->path);
    }
    bool ok = fwrite(b.data, 1, b.len, w->fp) == b.len && fflush(w->fp) == 0 && fdatasync(fileno(w->fp)) == 0;
    int e = errno;
    da_buf_free(&b);
    if (!ok) return da_err_set(err, DA_ERR_IO, "%s: cannot append a record: %s", w->path, strerror(e));
    return DA_OK;
}

void da_manifest_close(da_manifest_writer *w) {
    if (!w) return;
    fclose(w->fp);
    free(w->path);
    free(w);
}

/* ---- reader ------------------------------------------------------------------------------------ */

void da_manifest_free(da_manifest *m) {
    for (size_t i = 0; i < m->n; i++) free(m->e[i].output), free(m->e[i].class_name), free(m->e[i].line);
    free(m->e);
    memset(m, 0, sizeof *m);
}

static bool parse_entry(const char *line, size_t len, da_manifest_entry *e) {
    da_json *j = NULL;
    da_error jerr;
    if (da_json_parse(line, len, "manifest", &j, &jerr) != DA_OK) return false;
    bool ok = false;
    const char *uid = da_json_get_str(j, "unit_id");
    int64_t idx;
    bool kept;
    char *end;
    if (j->type == DA_JSON_OBJECT && uid && strlen(uid) == 16 && da_json_get_int(j, "unit_index", &idx) && idx >= 0 &&
        idx <= UINT32_MAX && da_json_get_bool(j, "kept", &kept)) {
        errno = 0;
        unsigned long long v = strtoull(uid, &end, 16);
        if (!*end && !errno) {
            memset(e, 0, sizeof *e);
            e->unit_id = v, e->unit_index = (uint32_t)idx, e->kept = kept;
            const char *o = da_json_get_str(j, "output"), *c = da_json_get_str(j, "class");
            e->output = o ? strdup(o) : NULL;
            e->class_name = c ? strdup(c) : NULL;
            e->line = strndup(line, len);
            ok = e->line && (!o || e->output) && (!c || e->class_name);
            if (!ok) free(e->output), free(e->class_name), free(e->line);
        }
    }
    da_json_free(j);
    return ok;
}

da_status da_manifest_read(const char *path, da_manifest *m, da_error *err) {
    memset(m, 0, sizeof *m);
    if (access(path, F_OK) != 0 && errno == ENOENT) return DA_OK;
    char *data;
    size_t len;
    da_status st = da_read_file(path, &data, &len, err);
    if (st != DA_OK) return st;
    size_t cap = 0, lineno = 0;
    for (size_t p = 0; p < len;) {
        char *nl = memchr(data + p, '\n', len - p);
        size_t end = nl ? (size_t)(nl - data) : len;
        lineno++;
        bool last = !nl || end + 1 >= len;
        if (end > p) {
            da_manifest_entry e;
            bool ok = nl && parse_entry(data + p, end - p, &e);
            if (!ok) {
                if (last) {
                    m->torn_tail = true;
                    break;
                }
                free(data);
                da_manifest_free(m);
                return da_err_set(err, DA_ERR_FORMAT, "%s:%zu: not a manifest record (only the last line may be torn)", path, lineno);
            }
            if (m->n == cap) {
                cap = cap ? 2 * cap : 256;
                da_manifest_entry *ne = realloc(m->e, cap * sizeof *ne);
                if (!ne) {
                    free(e.output), free(e.class_name), free(e.line);
                    free(data);
                    da_manifest_free(m);
                    return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
                }
                m->e = ne;
            }
            m->e[m->n++] = e;
        }
        p = end + 1;
    }
    free(data);
    return DA_OK;
}

/* ---- resume ------------------------------------------------------------------------------------ */

static int cmp_key(const void *a, const void *b) {
    const uint64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

da_status da_resume_build(const da_manifest *m, const char *out_root, da_resume *r, da_error *err) {
    memset(r, 0, sizeof *r);
    /* the last record of each unit decides: sort indices (key, position) and take the last of a run */
    uint64_t *k = malloc((m->n ? m->n : 1) * 3 * sizeof *k);
    r->keys = malloc((m->n ? m->n : 1) * 2 * sizeof *r->keys);
    if (!k || !r->keys) {
        free(k), free(r->keys);
        r->keys = NULL;
        return da_err_set(err, DA_ERR_NOMEM, "resume: out of memory");
    }
    for (size_t i = 0; i < m->n; i++) k[3 * i] = m->e[i].unit_id, k[3 * i + 1] = m->e[i].unit_index, k[3 * i + 2] = i;
    qsort(k, m->n, 3 * sizeof *k, cmp_key); /* cmp_key compares the first two words; ties by position: */
    for (size_t i = 0; i < m->n; i++) {
        bool last_of_unit = i + 1 == m->n || k[3 * i + 3] != k[3 * i] || k[3 * i + 4] != k[3 * i + 1];
        if (!last_of_unit) continue;
        /* qsort is not stable: find the latest position among the run */
        size_t j = i, best = (size_t)k[3 * i + 2];
        while (j > 0 && k[3 * (j - 1)] == k[3 * i] && k[3 * (j - 1) + 1] == k[3 * i + 1]) {
            j--;
            if ((size_t)k[3 * j + 2] > best) best = (size_t)k[3 * j + 2];
        }
        const da_manifest_entry *e = &m->e[best];
        bool done = !e->kept;
        if (e->kept && e->output) {
            char *p = da_path_join(out_root, e->output);
            struct stat sb;
            done = p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
            free(p);
        }
        if (done) r->keys[2 * r->n] = e->unit_id, r->keys[2 * r->n + 1] = e->unit_index, r->n++;
    }
    free(k);
    return DA_OK;
}

bool da_resume_has(const da_resume *r, uint64_t unit_id, uint32_t unit_index) {
    uint64_t key[2] = {unit_id, unit_index};
    return r->n && bsearch(key, r->keys, r->n, 2 * sizeof *r->keys, cmp_key) != NULL;
}

void da_resume_free(da_resume *r) {
    free(r->keys);
    memset(r, 0, sizeof *r);
}

/* ---- merge ------------------------------------------------------------------------------------- */

typedef struct mref {
    uint64_t id;
    uint32_t idx;
    size_t file, rec;
} mref;

static int cmp_mref(const void *a, const void *b) {
    const mref *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return (x->rec > y->rec) - (x->rec < y->rec);
}

da_status da_manifest_merge(const char *const *inputs, size_t n_inputs, const char *out_path, size_t *n_records,
                            da_error *err) {
    da_manifest *ms = calloc(n_inputs ? n_inputs : 1, sizeof *ms);
    if (!ms) return da_err_set(err, DA_ERR_NOMEM, "merge: out of memory");
    da_status st = DA_OK;
    size_t total = 0;
    for (size_t f = 0; f < n_inputs && st == DA_OK; f++) {
        if (access(inputs[f], R_OK) != 0)
            st = da_err_set(err, DA_ERR_IO, "%s: cannot read the manifest: %s", inputs[f], strerror(errno));
        else if ((st = da_manifest_read(inputs[f], &ms[f], err)) == DA_OK)
            total += ms[f].n;
    }
    mref *refs = NULL;
    da_buf b = {0};
    size_t n_out = 0;
    if (st == DA_OK && !(refs = malloc((total ? total : 1) * sizeof *refs)))
        st = da_err_set(err, DA_ERR_NOMEM, "merge: out of memory");
    if (st == DA_OK) {
        size_t n = 0;
        for (size_t f = 0; f < n_inputs; f++)
            for (size_t i = 0; i < ms[f].n; i++)
                refs[n++] = (mref){ms[f].e[i].unit_id, ms[f].e[i].unit_index, f, i};
        qsort(refs, n, sizeof *refs, cmp_mref);
        for (size_t i = 0; i < n && st == DA_OK; i++) {
            const da_manifest_entry *e = &ms[refs[i].file].e[refs[i].rec];
            if (i > 0 && refs[i].id == refs[i - 1].id && refs[i].idx == refs[i - 1].idx) {
                const da_manifest_entry *p = &ms[refs[i - 1].file].e[refs[i - 1].rec];
                if (strcmp(p->line, e->line) != 0)
                    st = da_err_set(err, DA_ERR_DUPLICATE,
                                    "merge: conflicting records for unit %016" PRIx64 "/%" PRIu32 " in %s and %s",
                                    e->unit_id, e->unit_index, inputs[refs[i - 1].file], inputs[refs[i].file]);
                continue;
            }
            da_buf_append(&b, e->line, strlen(e->line));
            da_buf_append(&b, "\n", 1);
            n_out++;
        }
        if (st == DA_OK && b.failed) st = da_err_set(err, DA_ERR_NOMEM, "merge: out of memory");
        if (st == DA_OK) st = da_write_file_atomic(out_path, b.data ? b.data : "", b.len, err);
    }
    if (st == DA_OK && n_records) *n_records = n_out;
    da_buf_free(&b);
    free(refs);
    for (size_t f = 0; f < n_inputs; f++) da_manifest_free(&ms[f]);
    free(ms);
    return st;
}

/* ---- summary ----------------------------------------------------------------------------------- */

da_status da_summary_add(da_summary *s, const char *class_name, bool kept, da_error *err) {
    const char *name = class_name ? class_name : "";
    size_t i = 0;
    while (i < s->n && strcmp(s->c[i].name, name) != 0) i++;
    if (i == s->n) {
        da_summary_class *nc = realloc(s->c, (s->n + 1) * sizeof *nc);
        if (!nc) return da_err_set(err, DA_ERR_NOMEM, "summary: out of memory");
        s->c = nc;
        if (!(s->c[i].name = strdup(name))) return da_err_set(err, DA_ERR_NOMEM, "summary: out of memory");
        s->c[i].kept = s->c[i].dropped = 0;
        s->n++;
    }
    if (kept) s->c[i].kept++, s->kept++;
    else s->c[i].dropped++, s->dropped++;
    return DA_OK;
}

da_status da_summary_from_manifest(da_summary *s, const da_manifest *m, da_error *err) {
    for (size_t i = 0; i < m->n; i++) {
        da_status st = da_summary_add(s, m->e[i].class_name, m->e[i].kept, err);
        if (st != DA_OK) return st;
    }
    s->produced = s->kept + s->dropped;
    return DA_OK;
}

static int cmp_class(const void *a, const void *b) {
    return strcmp(((const da_summary_class *)a)->name, ((const da_summary_class *)b)->name);
}

da_status da_summary_write(const char *path, const da_summary *s, const char *recipe, double wall_s, da_error *err) {
    da_summary_class *c = malloc((s->n ? s->n : 1) * sizeof *c);
    if (!c) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    memcpy(c, s->c, s->n * sizeof *c);
    qsort(c, s->n, sizeof *c, cmp_class);
    da_buf b = {0};
    da_buf_printf(&b, "{\n  \"recipe\": ");
    if (recipe) da_buf_json_string(&b, recipe);
    else da_buf_printf(&b, "null");
    double rate = wall_s > 0 ? (double)s->produced / wall_s : 0;
    da_buf_printf(&b,
                  ",\n  \"version\": \"%s\",\n  \"kept\": %" PRIu64 ",\n  \"dropped\": %" PRIu64
                  ",\n  \"skipped_resume\": %" PRIu64 ",\n  \"input_problems\": %" PRIu64
                  ",\n  \"wall_s\": %.3f,\n  \"produced\": %" PRIu64 ",\n  \"images_per_s\": %.4f,%s",
                  DIFFAUG_VERSION, s->kept, s->dropped, s->skipped_resume, s->problems, wall_s, s->produced, rate,
                  s->backend ? "" : "\n  \"classes\": {");
    if (s->backend) {
        da_buf_printf(&b, "\n  \"backend\": ");
        da_buf_json_string(&b, s->backend);
        da_buf_printf(&b, ",\n  \"classes\": {");
    }
    for (size_t i = 0; i < s->n; i++) {
        da_buf_printf(&b, "%s\n    ", i ? "," : "");
        da_buf_json_string(&b, c[i].name);
        da_buf_printf(&b, ": {\"kept\": %" PRIu64 ", \"dropped\": %" PRIu64 "}", c[i].kept, c[i].dropped);
    }
    da_buf_printf(&b, "%s}\n}\n", s->n ? "\n  " : "");
    free(c);
    da_status st = b.failed ? da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path)
                            : da_write_file_atomic(path, b.data, b.len, err);
    da_buf_free(&b);
    return st;
}

void da_summary_free(da_summary *s) {
    for (size_t i = 0; i < s->n; i++) free(s->c[i].name);
    free(s->c);
    memset(s, 0, sizeof *s);
}

/* ---- progress ---------------------------------------------------------------------------------- */

void da_progress_format(uint64_t done, uint64_t total, double elapsed_s, char *buf, size_t cap) {
    double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    double rate = elapsed_s > 0 ? (double)done / elapsed_s : 0.0;
    if (done == 0 || rate <= 0 || done > total) {
        snprintf(buf, cap, "%" PRIu64 "/%" PRIu64 " units (%.1f%%), %.2f units/s, ETA --:--:--", done, total, pct, rate);
        return;
    }
    double eta = (double)(total - done) / rate;
    if (eta > 359999) eta = 359999;
    long s = (long)(eta + 0.5);
    snprintf(buf, cap, "%" PRIu64 "/%" PRIu64 " units (%.1f%%), %.2f units/s, ETA %02ld:%02ld:%02ld", done, total, pct, rate,
             s / 3600, s / 60 % 60, s % 60);
}
