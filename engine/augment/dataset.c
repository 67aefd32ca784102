/* dataset.c - ImageFolder scanning (torchvision.datasets.folder: sorted class folders, one class per
 * folder), image ids, class labels (DiffCoRe-Mix's label rule), the output-folder check and the
 * shard partition; see dataset.h. */
#include "augment/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sha256.h"
#include "util.h"

const char *da_problem_name(da_problem_kind k) {
    switch (k) {
    case DA_PROBLEM_NOT_IMAGE: return "not_image";
    case DA_PROBLEM_UNREADABLE: return "unreadable";
    case DA_PROBLEM_TOO_SMALL: return "too_small";
    case DA_PROBLEM_EMPTY_CLASS: return "empty_class";
    case DA_PROBLEM_STRAY_FILE: return "stray_file";
    case DA_PROBLEM_SUBFOLDER: return "subfolder";
    case DA_PROBLEM_ID_COLLISION: return "id_collision";
    }
    return "unknown";
}

static da_status assign_stems(da_dataset *ds);

void da_scan_opts_init(da_scan_opts *o) { o->verify = true; }

char *da_class_label(const char *folder) {
    const char *s = folder;
    size_t nd = 0;
    while (s[nd] >= '0' && s[nd] <= '9') nd++;
    if (nd > 0 && s[nd] == '.') s += nd + 1;
    char *out = strdup(s);
    if (out)
        for (char *p = out; *p; p++)
            if (*p == '_') *p = ' ';
    return out;
}

uint64_t da_image_id(const char *rel) {
    uint8_t d[32];
    da_sha256_buf(rel, strlen(rel), d);
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) id = id << 8 | d[i];
    return id;
}

/* ---- directory listing ------------------------------------------------------------------------- */

typedef struct entry {
    char *name;
    bool is_dir, is_file;
} entry;

static int cmp_entry(const void *a, const void *b) { return strcmp(((const entry *)a)->name, ((const entry *)b)->name); }

static void free_entries(entry *e, size_t n) {
    for (size_t i = 0; i < n; i++) free(e[i].name);
    free(e);
}

/* Non-hidden entries of dir, sorted bytewise; symlinks followed (a dangling one is "a file"). */
static da_status list_dir(const char *dir, entry **out, size_t *n_out, da_error *err) {
    DIR *d = opendir(dir);
    if (!d) return da_err_set(err, DA_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    entry *e = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    da_status st = DA_OK;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            entry *ne = realloc(e, cap * sizeof *e);
            if (!ne) {
                st = da_err_set(err, DA_ERR_NOMEM, "%s: out of memory listing the folder", dir);
                break;
            }
            e = ne;
        }
        char *full = da_path_join(dir, de->d_name);
        struct stat sb;
        bool ok = full && stat(full, &sb) == 0;
        free(full);
        e[n].name = strdup(de->d_name);
        if (!e[n].name) {
            st = da_err_set(err, DA_ERR_NOMEM, "%s: out of memory listing the folder", dir);
            break;
        }
        e[n].is_dir = ok && S_ISDIR(sb.st_mode);
        e[n].is_file = !e[n].is_dir;
        n++;
    }
    closedir(d);
    if (st != DA_OK) {
        free_entries(e, n);
        return st;
    }
    if (n) qsort(e, n, sizeof *e, cmp_entry);
    *out = e;
    *n_out = n;
    return DA_OK;
}

/* ---- scan -------------------------------------------------------------------------------------- */

typedef struct cand {
    char *rel;
    int cls;
    /* result of the check */
    bool ok;
    da_problem_kind kind;
    char *msg;
    int w, h;
    da_image_format fmt;
} cand;

static void check_file(const char *root, cand *c, bool verify) {
    char *path = da_path_join(root, c->rel);
    char *msg = NULL;
    if (!path) {
        c->kind = DA_PROBLEM_UNREADABLE, c->msg = strdup("out of memory");
        return;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        c->kind = DA_PROBLEM_UNREADABLE;
        if (asprintf(&msg, "cannot open: %s", strerror(errno)) < 0) msg = NULL;
        c->msg = msg;
        free(path);
        return;
    }
    uint8_t head[16];
    size_t got = fread(head, 1, sizeof head, fp);
    fclose(fp);
    c->fmt = da_image_sniff(head, got);
    if (c->fmt == DA_IMAGE_UNKNOWN) {
        c->kind = DA_PROBLEM_NOT_IMAGE;
        c->msg = strdup(got == 0 ? "empty file, not a PNG or JPEG image" : "not a PNG or JPEG image (by content)");
        free(path);
        return;
    }
    if (verify) {
        da_image im = {0};
        da_error e;
        da_err_clear(&e);
        if (da_image_load(path, &im, &e) != DA_OK) {
            c->kind = DA_PROBLEM_UNREADABLE;
            c->msg = strdup(e.msg);
            free(path);
            return;
        }
        c->w = im.w, c->h = im.h;
        da_image_free(&im);
        if (c->w < DA_DATASET_MIN_SIDE || c->h < DA_DATASET_MIN_SIDE) {
            c->kind = DA_PROBLEM_TOO_SMALL;
            if (asprintf(&msg, "%dx%d image, below the %d pixel minimum side", c->w, c->h, DA_DATASET_MIN_SIDE) < 0)
                msg = NULL;
            c->msg = msg;
            free(path);
            return;
        }
    }
    c->ok = true;
    free(path);
}

static bool add_problem(da_dataset *ds, size_t *cap, da_problem_kind kind, const char *path, const char *msg) {
    if (ds->n_problems == *cap) {
        size_t nc = *cap ? 2 * *cap : 16;
        da_problem *np = realloc(ds->problems, nc * sizeof *np);
        if (!np) return false;
        ds->problems = np, *cap = nc;
    }
    da_problem *p = &ds->problems[ds->n_problems];
    p->kind = kind;
    p->path = strdup(path);
    p->msg = strdup(msg ? msg : "");
    if (!p->path || !p->msg) {
        free(p->path), free(p->msg);
        return false;
    }
    ds->n_problems++;
    return true;
}

static int cmp_id(const void *a, const void *b) {
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] > y[1]) - (x[1] < y[1]);
}

void da_dataset_free(da_dataset *ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n_classes; i++) free(ds->classes[i].name), free(ds->classes[i].label);
    for (size_t i = 0; i < ds->n_images; i++)
        free(ds->images[i].rel), free(ds->images[i].path), free(ds->images[i].stem);
    for (size_t i = 0; i < ds->n_problems; i++) free(ds->problems[i].path), free(ds->problems[i].msg);
    free(ds->classes), free(ds->images), free(ds->problems), free(ds->root);
    free(ds);
}

da_status da_dataset_scan(const char *root, const da_scan_opts *opts, da_dataset **out, da_error *err) {
    da_scan_opts def;
    if (!opts) da_scan_opts_init(&def), opts = &def;
    entry *top = NULL;
    size_t n_top = 0, pcap = 0;
    da_status st = list_dir(root, &top, &n_top, err);
    if (st != DA_OK) return st;
    da_dataset *ds = calloc(1, sizeof *ds);
    cand *cands = NULL;
    size_t n_cands = 0, ccap = 0;
    if (!ds || !(ds->root = strdup(root))) goto nomem;
    size_t n_dirs = 0;
    for (size_t i = 0; i < n_top; i++) n_dirs += top[i].is_dir;
    ds->classes = calloc(n_dirs ? n_dirs : 1, sizeof *ds->classes);
    if (!ds->classes) goto nomem;
    for (size_t i = 0; i < n_top; i++)
        if (!top[i].is_dir && !add_problem(ds, &pcap, DA_PROBLEM_STRAY_FILE, top[i].name, "a file in the dataset root belongs to no class"))
            goto nomem;
    for (size_t i = 0; i < n_top; i++) {
        if (!top[i].is_dir) continue;
        int ci = (int)ds->n_classes++;
        da_ds_class *c = &ds->classes[ci];
        if (!(c->name = strdup(top[i].name)) || !(c->label = da_class_label(top[i].name))) goto nomem;
        char *cdir = da_path_join(root, top[i].name);
        entry *fe = NULL;
        size_t nf = 0;
        da_error e2;
        if (!cdir) goto nomem;
        if (list_dir(cdir, &fe, &nf, &e2) != DA_OK) {
            free(cdir);
            if (!add_problem(ds, &pcap, DA_PROBLEM_UNREADABLE, top[i].name, e2.msg)) goto nomem;
            continue;
        }
        free(cdir);
        for (size_t j = 0; j < nf; j++) {
            if (n_cands == ccap) {
                ccap = ccap ? 2 * ccap : 256;
                cand *nc = realloc(cands, ccap * sizeof *nc);
                if (!nc) {
                    free_entries(fe, nf);
                    goto nomem;
                }
                cands = nc;
            }
            cand *k = &cands[n_cands];
            memset(k, 0, sizeof *k);
            k->cls = ci;
            k->rel = da_path_join(top[i].name, fe[j].name);
            if (!k->rel) {
                free_entries(fe, nf);
                goto nomem;
            }
            if (fe[j].is_dir) k->kind = DA_PROBLEM_SUBFOLDER, k->msg = strdup("a folder inside a class folder is not scanned");
            else k->kind = 0;
            n_cands++;
        }
        free_entries(fe, nf);
    }
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < n_cands; i++)
        if (cands[i].kind == 0) check_file(root, &cands[i], opts->verify);

    size_t n_ok = 0;
    for (size_t i = 0; i < n_cands; i++) n_ok += cands[i].ok;
    ds->images = calloc(n_ok ? n_ok : 1, sizeof *ds->images);
    if (!ds->images) goto nomem;
    /* ids first, to find collisions (keep the first in scan order) */
    uint64_t *ids = malloc((n_ok ? n_ok : 1) * 2 * sizeof *ids);
    if (!ids) goto nomem;
    size_t m = 0;
    for (size_t i = 0; i < n_cands; i++)
        if (cands[i].ok) ids[2 * m] = da_image_id(cands[i].rel), ids[2 * m + 1] = i, m++;
    qsort(ids, m, 2 * sizeof *ids, cmp_id);
    for (size_t j = 1; j < m; j++)
        if (ids[2 * j] == ids[2 * j - 2]) {
            cand *k = &cands[ids[2 * j + 1]];
            k->ok = false, k->kind = DA_PROBLEM_ID_COLLISION;
            if (asprintf(&k->msg, "same 64-bit image id as %s; skipped", cands[ids[2 * j - 1]].rel) < 0) k->msg = NULL;
        }
    free(ids);
    for (size_t i = 0, ci = (size_t)-1; i < n_cands; i++) {
        cand *k = &cands[i];
        if ((size_t)k->cls != ci) {
            ci = k->cls;
            ds->classes[ci].first = ds->n_images;
        }
        if (!k->ok) {
            if (!add_problem(ds, &pcap, k->kind, k->rel, k->msg ? k->msg : "out of memory")) goto nomem;
            continue;
        }
        da_ds_image *im = &ds->images[ds->n_images];
        im->rel = k->rel, k->rel = NULL;
        im->path = da_path_join(root, im->rel);
        if (!im->path) {
            free(im->rel);
            goto nomem;
        }
        im->cls = k->cls, im->id = da_image_id(im->rel), im->w = k->w, im->h = k->h, im->format = k->fmt;
        ds->classes[ci].count++;
        ds->n_images++;
    }
    for (size_t ci = 0; ci < ds->n_classes; ci++) {
        if (ds->classes[ci].count == 0) {
            if (!add_problem(ds, &pcap, DA_PROBLEM_EMPTY_CLASS, ds->classes[ci].name, "class folder holds no usable image"))
                goto nomem;
        }
    }
    if (assign_stems(ds) != DA_OK) goto nomem;
    /* empty classes: first = index where the next class starts, so ranges stay ordered */
    for (size_t ci = ds->n_classes; ci-- > 0;)
        if (ds->classes[ci].count == 0)
            ds->classes[ci].first = ci + 1 < ds->n_classes ? ds->classes[ci + 1].first : ds->n_images;
    for (size_t i = 0; i < n_cands; i++) free(cands[i].rel), free(cands[i].msg);
    free(cands);
    free_entries(top, n_top);
    *out = ds;
    return DA_OK;
nomem:
    for (size_t i = 0; i < n_cands; i++) free(cands[i].rel), free(cands[i].msg);
    free(cands);
    free_entries(top, n_top);
    da_dataset_free(ds);
    return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory scanning the dataset", root);
}

/* ---- output names ------------------------------------------------------------------------------ */

static int cmp_stem_ref(const void *a, const void *b) {
    const da_ds_image *const *x = a, *const *y = b;
    int c = strcmp((*x)->stem, (*y)->stem);
    return c ? c : strcmp((*x)->rel, (*y)->rel);
}

/* stem = name minus its extension; stems shared inside a class fall back to the name with '_' */
static da_status assign_stems(da_dataset *ds) {
    for (size_t i = 0; i < ds->n_images; i++) {
        const char *slash = strrchr(ds->images[i].rel, '/');
        const char *name = slash ? slash + 1 : ds->images[i].rel;
        const char *dot = strrchr(name, '.');
        size_t n = dot && dot != name ? (size_t)(dot - name) : strlen(name);
        if (!(ds->images[i].stem = strndup(name, n))) return DA_ERR_NOMEM;
    }
    for (size_t c = 0; c < ds->n_classes; c++) {
        size_t first = ds->classes[c].first, cnt = ds->classes[c].count;
        if (cnt < 2) continue;
        da_ds_image **ref = malloc(cnt * sizeof *ref);
        bool *dup = calloc(cnt, sizeof *dup);
        if (!ref || !dup) {
            free(ref), free(dup);
            return DA_ERR_NOMEM;
        }
        for (size_t i = 0; i < cnt; i++) ref[i] = &ds->images[first + i];
        qsort(ref, cnt, sizeof *ref, cmp_stem_ref);
        for (size_t i = 1; i < cnt; i++)
            if (!strcmp(ref[i]->stem, ref[i - 1]->stem)) dup[i] = dup[i - 1] = true;
        for (size_t i = 0; i < cnt; i++) {
            if (!dup[i]) continue;
            const char *slash = strrchr(ref[i]->rel, '/');
            char *full = strdup(slash ? slash + 1 : ref[i]->rel);
            if (!full) {
                free(ref), free(dup);
                return DA_ERR_NOMEM;
            }
            for (char *p = full; *p; p++)
                if (*p == '.') *p = '_';
            free(ref[i]->stem);
            ref[i]->stem = full;
        }
        free(ref), free(dup);
    }
    return DA_OK;
}

char *da_name_tag(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n + 6);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n && k < 64; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-';
        if (ok) out[k++] = (char)ch;
        else if (k > 0 && out[k - 1] != '_') out[k++] = '_';
    }
    while (k > 0 && (out[k - 1] == '_' || out[k - 1] == '.')) k--;
    size_t lead = 0;
    while (lead < k && (out[lead] == '.' || out[lead] == '_')) lead++;
    memmove(out, out + lead, k - lead);
    k -= lead;
    if (k == 0) {
        strcpy(out, "empty");
        return out;
    }
    out[k] = 0;
    return out;
}

char *da_output_name(const char *class_name, const char *stem, const char *tag, unsigned k, const char *ext) {
    char *t = da_name_tag(tag ? tag : "");
    char *out = NULL;
    if (t && asprintf(&out, "%s/%s_%s_%u.%s", class_name, stem, t, k, ext) < 0) out = NULL;
    free(t);
    return out;
}

void da_sgid_tag(double strength, char *buf, size_t cap) { snprintf(buf, cap, "sgid_%g", strength); }

/* ---- output folder check ----------------------------------------------------------------------- */

/* realpath of p, where a missing tail is appended lexically ("." dropped, ".." pops). malloc'd. */
static char *resolve_maybe_missing(const char *p) {
    char *work = strdup(p);
    if (!work) return NULL;
    char *tail = strdup("");
    char *base = NULL;
    while (work && tail) {
        base = realpath(*work ? work : ".", NULL);
        if (base) break;
        if (errno != ENOENT && errno != ENOTDIR) break;
        char *slash = strrchr(work, '/');
        while (slash && slash > work && slash[1] == 0) { /* trailing slashes */
            *slash = 0;
            slash = strrchr(work, '/');
        }
        const char *last = slash ? slash + 1 : work;
        char *nt = NULL;
        if (asprintf(&nt, "%s/%s", last, tail) < 0) nt = NULL;
        free(tail);
        tail = nt;
        if (slash == work) work[1] = 0; /* "/x" -> "/" */
        else if (slash) *slash = 0;
        else work[0] = 0;
    }
    free(work);
    if (!base || !tail) {
        free(base), free(tail);
        return NULL;
    }
    size_t cap = strlen(base) + strlen(tail) + 2;
    char *res = malloc(cap);
    if (!res) {
        free(base), free(tail);
        return NULL;
    }
    strcpy(res, base);
    free(base);
    char *save = NULL;
    for (char *c = strtok_r(tail, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, ".")) continue;
        if (!strcmp(c, "..")) {
            char *s = strrchr(res, '/');
            if (s && s != res) *s = 0;
            else strcpy(res, "/");
            continue;
        }
        if (strcmp(res, "/") != 0) strcat(res, "/");
        strcat(res, c);
    }
    free(tail);
    return res;
}

da_status da_check_output_dir(const char *input, const char *output, da_error *err) {
    char *in = realpath(input, NULL);
    if (!in) return da_err_set(err, DA_ERR_IO, "%s: cannot resolve the input folder: %s", input, strerror(errno));
    char *outp = resolve_maybe_missing(output);
    if (!outp) {
        free(in);
        return da_err_set(err, DA_ERR_IO, "%s: cannot resolve the output folder: %s", output, strerror(errno));
    }
    size_t n = strlen(in);
    bool inside = strcmp(in, outp) == 0 || (strncmp(in, outp, n) == 0 && (outp[n] == '/' || !strcmp(in, "/")));
    da_status st = DA_OK;
    if (inside)
        st = da_err_set(err, DA_ERR_INVALID_ARG,
                        "output folder %s (%s) is %s the input folder %s (%s): the input is never written; choose a folder outside it",
                        output, outp, strcmp(in, outp) == 0 ? "the same as" : "inside", input, in);
    free(in), free(outp);
    return st;
}

/* ---- shards ------------------------------------------------------------------------------------ */

da_status da_shard_parse(const char *text, da_shard *out, da_error *err) {
    unsigned long long i, n;
    int used = 0;
    if (!text || sscanf(text, "%llu/%llu%n", &i, &n, &used) != 2 || text[used] != 0 || text[0] < '0' || text[0] > '9' ||
        n < 1 || n > 65536 || i >= n)
        return da_err_set(err, DA_ERR_INVALID_ARG, "shard '%s': expected I/N with 0 <= I < N <= 65536 (0-based index)",
                          text ? text : "");
    out->index = (uint32_t)i, out->count = (uint32_t)n;
    return DA_OK;
}

uint64_t da_shard_size(da_shard s, uint64_t n_units) {
    if (s.count <= 1) return n_units;
    return n_units / s.count + (s.index < n_units % s.count);
}
