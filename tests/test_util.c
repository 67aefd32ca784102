/* test_util.c - error records, overflow helpers, atomic writes, buffers, directories. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "testutil.h"
#include "util.h"

START_TEST(test_err_set_and_prefix) {
    da_error e;
    da_err_clear(&e);
    ck_assert_int_eq(e.code, DA_OK);
    ck_assert_int_eq(da_err_set(&e, DA_ERR_SHAPE, "tensor %s: rank %d", "w", 3), DA_ERR_SHAPE);
    da_err_prefix(&e, "%s", "model.safetensors");
    ck_assert_str_eq(e.msg, "model.safetensors: tensor w: rank 3");
    ck_assert_str_eq(da_status_name(DA_ERR_TRUNCATED), "truncated");
    ck_assert_str_eq(da_status_name((da_status)999), "unknown status");
    /* a NULL record is allowed everywhere */
    ck_assert_int_eq(da_err_set(NULL, DA_ERR_IO, "x"), DA_ERR_IO);
}
END_TEST

START_TEST(test_overflow_helpers) {
    size_t r;
    ck_assert(da_mul_size(1u << 20, 1u << 10, &r) && r == (1u << 30));
    ck_assert(!da_mul_size(SIZE_MAX / 2 + 1, 2, &r));
    ck_assert(!da_add_size(SIZE_MAX, 1, &r));
    uint64_t u;
    ck_assert(!da_mul_u64(UINT64_MAX / 3 + 1, 3, &u));
    ck_assert(da_add_u64(5, 7, &u) && u == 12);
}
END_TEST

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

START_TEST(test_atomic_write_and_abort) {
    char *dir = da_test_tmpdir("util");
    ck_assert_ptr_nonnull(dir);
    char *path = da_path_join(dir, "out.bin");
    da_error e;
    ck_assert_int_eq(da_write_file_atomic(path, "hello", 5, &e), DA_OK);
    char *data;
    size_t len;
    ck_assert_int_eq(da_read_file(path, &data, &len, &e), DA_OK);
    ck_assert_uint_eq(len, 5);
    ck_assert_str_eq(data, "hello");
    free(data);
    /* an aborted write leaves the previous file and no temporary behind */
    da_atomic_file af;
    ck_assert_int_eq(da_atomic_open(&af, path, &e), DA_OK);
    fputs("partial", af.fp);
    da_atomic_abort(&af);
    ck_assert_int_eq(da_read_file(path, &data, &len, &e), DA_OK);
    ck_assert_str_eq(data, "hello");
    free(data);
    ck_assert_int_eq(count_entries(dir), 1);
    /* writing into a missing directory fails with a message naming the path */
    char *bad = da_path_join(dir, "nope/out.bin");
    ck_assert_int_eq(da_write_file_atomic(bad, "x", 1, &e), DA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(e.msg, "nope/out.bin"));
    ck_assert_int_eq(da_read_file(bad, &data, &len, &e), DA_ERR_IO);
    free(bad);
    free(path);
    da_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_mkdirs_and_paths) {
    char *dir = da_test_tmpdir("util");
    char *deep = da_path_join(dir, "a/b/c");
    da_error e;
    ck_assert_int_eq(da_mkdirs(deep, &e), DA_OK);
    ck_assert(da_is_dir(deep));
    ck_assert_int_eq(da_mkdirs(deep, &e), DA_OK);
    char *f = da_path_join(deep, "file");
    ck_assert_int_eq(da_write_file_atomic(f, "", 0, &e), DA_OK);
    ck_assert(da_is_file(f) && !da_is_dir(f));
    ck_assert_int_eq(da_mkdirs(f, &e), DA_ERR_IO);
    char *j = da_path_join("x///", "y");
    ck_assert_str_eq(j, "x/y");
    free(j);
    free(f);
    free(deep);
    da_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_buf_json_string) {
    da_buf b = {0};
    da_buf_json_string(&b, "a\"b\\c\n\x01");
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    da_buf_printf(&b, "%0600d", 7); /* longer than the small stack buffer */
    ck_assert_uint_eq(b.len, 17 + 600);
    ck_assert(!b.failed);
    da_buf_free(&b);
}
END_TEST

static Suite *util_suite(void) {
    Suite *s = suite_create("util");
    TCase *tc = da_tcase("util", "fast", 30);
    tcase_add_test(tc, test_err_set_and_prefix);
    tcase_add_test(tc, test_overflow_helpers);
    tcase_add_test(tc, test_atomic_write_and_abort);
    tcase_add_test(tc, test_mkdirs_and_paths);
    tcase_add_test(tc, test_buf_json_string);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(util_suite)
