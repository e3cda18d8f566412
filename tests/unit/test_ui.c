/* Unit tests for the dashboard's embedded assets (ui.c, and the table
 * src/ui/embed.sh generates): the page is served at /ui and /ui/, every
 * file it loads is there byte for byte as in src/ui/ with the right
 * Content-Type, and no other path finds anything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../common/unit.h"
#include "../../src/ui.h"

static void test_page(void **state)
{
    const struct ui_asset *a = ui_find("/ui");

    (void)state;
    assert_non_null(a);
    assert_ptr_equal(ui_find("/ui/"), a);
    assert_string_equal(a->type, "text/html; charset=utf-8");
    assert_non_null(memmem(a->data, a->len, "/ui/app.js", 10));
}

/* Each file under src/ui/ that the page loads, as it is in the tree. */
static void test_files_as_in_tree(void **state)
{
    static const struct {
        const char *path, *file, *type;
    } files[] = {
        {"/ui", "src/ui/index.html", "text/html; charset=utf-8"},
        {"/ui/app.js", "src/ui/app.js", "text/javascript; charset=utf-8"},
        {"/ui/app.css", "src/ui/app.css", "text/css; charset=utf-8"},
        {"/ui/uPlot.iife.min.js", "src/ui/uPlot.iife.min.js", "text/javascript; charset=utf-8"},
        {"/ui/uPlot.min.css", "src/ui/uPlot.min.css", "text/css; charset=utf-8"},
    };
    const struct ui_asset *page = ui_find("/ui");
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const struct ui_asset *a = ui_find(files[i].path);
        char *path = test_tree_path(files[i].file);
        char *want = test_slurp(path);

        assert_non_null(a);
        assert_string_equal(a->type, files[i].type);
        assert_int_equal(a->len, strlen(want));
        assert_memory_equal(a->data, want, a->len);
        /* the page loads it (the page itself aside) */
        if (i > 0)
            assert_non_null(memmem(page->data, page->len, files[i].path, strlen(files[i].path)));
        free(want);
        free(path);
    }
    for (const struct ui_asset *a = ui_assets; a->path; a++)
        n++;
    assert_int_equal(n, sizeof(files) / sizeof(files[0])); /* nothing else is served */
}

static void test_nothing_else(void **state)
{
    static const char *const paths[] = {
        "/ui/../etc/passwd",
        "/uix",
        "/ui/app.js/",
        "/UI",
        "/ui/APP.JS",
        "",
        "/",
        "/ui//",
        "/ui/index.html",
        "/ui/embed.sh",
        "/ui/LICENSE.uPlot",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (ui_find(paths[i]) != NULL)
            fail_msg("'%s' found an asset", paths[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_files_as_in_tree),
        cmocka_unit_test(test_nothing_else),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
