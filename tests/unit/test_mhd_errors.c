/* Unit tests for mhd_errors.c: each of libmicrohttpd 0.9.75's error pages
 * (their exact text, from its connection.c) maps to the right OpenAI error,
 * and nothing else is touched; the pages are made with the formatter the
 * front passes in, and only once it has. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "../../src/http.h"
#include "../../src/mhd_errors.c"

static const struct {
    const char *html;
    const char *code;
} cases[] = {
    {"<html><head><title>Request too big</title></head><body>Your HTTP header was too big for "
     "the memory constraints of this webserver.</body></html>",
     "request_header_too_large"},
    {"<html><head><title>Request malformed</title></head><body>Your HTTP chunked encoding was "
     "syntactically incorrect.</body></html>",
     "invalid_request"},
    {"<html><head><title>Request content too large</title></head><body>The chunk size used in "
     "your HTTP chunked encoded request is too large.</body></html>",
     "request_too_large"},
    {"<html><head><title>Request content too large</title></head><body>Your HTTP request has "
     "too large value for <b>Content-Length</b> header.</body></html>",
     "request_too_large"},
    {"<html><head><title>Internal server error</title></head><body>Please ask the developer of "
     "this Web server to carefully read the GNU libmicrohttpd documentation about connection "
     "management and blocking.</body></html>",
     "request_too_large"},
    {"<html><head><title>Requested HTTP version is not supported</title></head><body>Requested "
     "HTTP version is too old and not supported.</body></html>",
     "invalid_request"},
    {"<html><head><title>Something new</title></head></html>", "invalid_request"},
};

static int json_calls;

/* The front's formatter, counted: the pages are made with what init is
 * given. */
static char *counted_json(const struct api_error *e, size_t *len)
{
    json_calls++;
    return http_error_json(e, len);
}

/* Content-Type of the response libmicrohttpd's own call would make of an
 * HTML page, through this module. */
static const char *page_type(const char *html)
{
    static char type[64];
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(html), (void *)html, MHD_RESPMEM_PERSISTENT);
    const char *t;

    assert_non_null(r);
    t = MHD_get_response_header(r, "Content-Type");
    snprintf(type, sizeof(type), "%s", t ? t : "");
    MHD_destroy_response(r);
    return type;
}

/* Before the front made its pages (a test's own libmicrohttpd server), the
 * library's page goes out untouched; after, as OpenAI's JSON, made once by
 * the formatter init was given (the first one). Runs first. */
static void test_init(void **state)
{
    (void)state;
    assert_string_equal(page_type(cases[0].html), "");
    mhd_errors_init(counted_json);
    assert_int_equal(json_calls, (int)ARRAY_LEN(pages));
    assert_string_equal(page_type(cases[0].html), "application/json");
    mhd_errors_init(http_error_json);
    assert_int_equal(json_calls, (int)ARRAY_LEN(pages));
}

static void test_pages(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int p = page_of(cases[i].html, strlen(cases[i].html));
        json_t *j;

        assert_true(p >= 0);
        j = json_loadb(pages[p].json, pages[p].len, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                            cases[i].code);
        json_decref(j);
    }
    /* The internal-error page is the one sent as a 413. */
    assert_int_equal(page_of(cases[4].html, strlen(cases[4].html)), PAGE_INTERNAL);
    /* The chunked and Content-Length pages are told apart. */
    assert_true(page_of(cases[2].html, strlen(cases[2].html)) !=
                page_of(cases[3].html, strlen(cases[3].html)));
}

static void test_not_pages(void **state)
{
    (void)state;
    assert_int_equal(page_of("{\"error\":{}}", 12), -1);
    assert_int_equal(page_of("<html>", 6), -1);
    assert_int_equal(page_of("", 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_not_pages),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
