/* testutil.c - shared test runner, comparator and helpers (see testutil.h). */

#include "testutil.h"

#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int da_test_run(Suite *(**fns)(void), size_t n) {
    SRunner *sr = srunner_create(fns[0]());
    for (size_t i = 1; i < n; i++) srunner_add_suite(sr, fns[i]());
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

TCase *da_tcase(const char *name, const char *tag, double timeout_s) {
    TCase *tc = tcase_create(name);
    tcase_set_tags(tc, tag);
    tcase_set_timeout(tc, timeout_s);
    return tc;
}

bool da_compare(const char *label, const float *got, const float *ref, size_t n, double min_cos,
                double max_abs, da_cmp *o) {
    memset(o, 0, sizeof *o);
    double dot = 0, ng = 0, nr = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (!isfinite(g) && isfinite(r)) {
            if (!o->nonfinite) o->worst = i;
            o->nonfinite = true;
            continue;
        }
        double d = fabs(g - r);
        if (d > o->max_abs) {
            o->max_abs = d;
            o->worst = i;
        }
        double rel = d / (fabs(r) > 1e-30 ? fabs(r) : 1e-30);
        if (d > 0 && rel > o->max_rel) o->max_rel = rel;
        if (fabs(r) > o->ref_max_abs) o->ref_max_abs = fabs(r);
        if (d > max_abs) {
            if (o->n_bad < 4) o->first_bad[o->n_bad] = i;
            o->n_bad++;
        }
        dot += g * r;
        ng += g * g;
        nr += r * r;
    }
    o->cosine = (ng == 0 && nr == 0) ? 1.0 : dot / (sqrt(ng) * sqrt(nr) + 1e-300);
    bool ok = !o->nonfinite && o->n_bad == 0 && o->cosine >= min_cos;
    int k = snprintf(o->text, sizeof o->text,
                     "%s: n=%zu max_abs=%.3g (tol %.3g) max_rel=%.3g cos=%.8f (min %.8f) ref_max=%.3g%s",
                     label, n, o->max_abs, max_abs, o->max_rel, o->cosine, min_cos, o->ref_max_abs,
                     o->nonfinite ? " NON-FINITE" : "");
    for (size_t j = 0; j < o->n_bad && j < 4 && k > 0 && (size_t)k < sizeof o->text; j++) {
        size_t i = o->first_bad[j];
        k += snprintf(o->text + k, sizeof o->text - (size_t)k, " [%zu]=%g/%g", i, (double)got[i], (double)ref[i]);
    }
    return ok;
}

char *da_test_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    char *p = NULL;
    if (asprintf(&p, "%s/diffaug-test-%s-XXXXXX", base ? base : "/tmp", tag) < 0) return NULL;
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void da_rmtree(const char *path) {
    if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *da_test_cli(void) {
    const char *p = getenv("DIFFAUG");
    return p && *p ? p : "build/diffaug";
}

const char *da_test_shared(void) {
    const char *p = getenv("DIFFAUG_SHARED");
    return p && *p ? p : "../shared";
}

int da_test_sh(char **out, const char *fmt, ...) {
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int k = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (k < 0) return -1;
    FILE *fp = popen(cmd, "r");
    free(cmd);
    if (!fp) return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
        len += r;
        if (cap - len < 1024) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) break;
            buf = nb;
        }
    }
    if (buf) buf[len] = 0;
    int st = pclose(fp);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static unsigned rand_state = 12345;

float da_test_frand(void) {
    rand_state = rand_state * 1664525u + 1013904223u;
    return (float)((rand_state >> 8) & 0xffffff) / 16777216.0f - 0.5f;
}

float *da_test_rand_buf(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = da_test_frand();
    return p;
}

void *da_test_rand_weights(size_t n, dk_wtype t, float scale) {
    void *p = malloc((n ? n : 1) * dk_wtype_size(t));
    for (size_t i = 0; i < n; i++) {
        float v = da_test_frand() * scale;
        if (t == DK_F32) ((float *)p)[i] = v;
        else if (t == DK_F16) ((uint16_t *)p)[i] = dk_f32_to_f16(v);
        else ((uint16_t *)p)[i] = dk_f32_to_bf16(v);
    }
    return p;
}

const char *da_test_wname(dk_wtype t) { return t == DK_F32 ? "f32" : t == DK_F16 ? "f16" : "bf16"; }

da_st_file *da_test_st_open(const char *path) {
    da_st_file *f;
    da_error e;
    ck_assert_msg(da_st_open(path, &f, &e) == DA_OK, "%s", e.msg);
    return f;
}

const da_st_tensor *da_test_st_need(const da_st_file *f, const char *name) {
    const da_st_tensor *t = da_st_find(f, name);
    ck_assert_msg(t != NULL, "%s: no tensor %s", f->path, name);
    return t;
}
