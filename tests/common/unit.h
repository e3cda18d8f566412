/* unit.h - helpers the unit tests share. Include it after <cmocka.h>. */
#ifndef SLUICE_TEST_UNIT_H
#define SLUICE_TEST_UNIT_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole file at path, NUL-terminated; the caller frees it. */
static inline char *test_slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *data;
    long n;

    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    n = ftell(fp);
    assert_true(n >= 0);
    assert_int_equal(fseek(fp, 0, SEEK_SET), 0);
    data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
    data[n] = '\0';
    fclose(fp);
    return data;
}

/* The lines of the file at path as a JSON array: each line must be one
 * JSON object, and the file must end with a whole line. The caller owns the
 * array. */
static inline json_t *test_json_lines(const char *path)
{
    char *text = test_slurp(path), *p = text, *nl;
    json_t *arr = json_array();

    while ((nl = strchr(p, '\n')) != NULL) {
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &e);

        if (j == NULL || !json_is_object(j))
            fail_msg("not a JSON object (%s): %.*s", e.text, (int)(nl - p), p);
        json_array_append_new(arr, j);
        p = nl + 1;
    }
    if (*p != '\0')
        fail_msg("a partial last line: %s", p);
    free(text);
    return arr;
}

/* rel (a path from the top of the tree) as a path the test can open: found
 * from this file's own path, as the build named it, so a test runs from
 * any directory the build ran in. The caller frees it. */
static inline char *test_tree_path(const char *rel)
{
    const char *me = __FILE__;
    const char *end = strstr(me, "tests/");
    size_t n = end ? (size_t)(end - me) : 0;
    char *p = malloc(n + strlen(rel) + 1);

    assert_non_null(p);
    memcpy(p, me, n);
    memcpy(p + n, rel, strlen(rel) + 1);
    return p;
}

/* JSON from text that writes ' for " (test data reads better so). The
 * caller owns the result; bad JSON fails the test. */
static inline json_t *test_json_q(const char *text)
{
    char *s = strdup(text);
    json_error_t e;
    json_t *j;

    assert_non_null(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    j = json_loads(s, 0, &e);
    if (j == NULL)
        fail_msg("bad test JSON: %s: %s", e.text, s);
    free(s);
    return j;
}

#endif
