/* unicode.c - combining classes and lowercase mappings over unicode_tables.h (see unicode.h). */
#include "unicode.h"

#include <stddef.h>

#include "unicode_tables.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

int da_unicode_ccc(uint32_t c) {
    if (c < 0x300) return 0; /* the first non-starter is U+0300 */
    size_t lo = 0, hi = N_ELEMS(da_uni_ccc);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (da_uni_ccc[mid][1] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < N_ELEMS(da_uni_ccc) && da_uni_ccc[lo][0] <= c ? (int)da_uni_ccc[lo][2] : 0;
}

/* Row of c in a table sorted by its first column, or -1. */
static long find_first(const uint32_t *rows, size_t n, size_t width, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (rows[mid * width] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && rows[lo * width] == c ? (long)lo : -1;
}

int da_unicode_lower(uint32_t c, uint32_t out[3]) {
    if (c < 0x80) {
        out[0] = c >= 'A' && c <= 'Z' ? c + 32 : c;
        return 1;
    }
    long k = find_first(&da_uni_lower[0][0], N_ELEMS(da_uni_lower), 2, c);
    if (k >= 0) {
        out[0] = da_uni_lower[k][1];
        return 1;
    }
    k = find_first(&da_uni_lower_multi[0][0], N_ELEMS(da_uni_lower_multi), 4, c);
    if (k < 0) {
        out[0] = c;
        return 1;
    }
    int n = 0;
    for (int j = 1; j < 4 && da_uni_lower_multi[k][j]; j++) out[n++] = da_uni_lower_multi[k][j];
    return n;
}
