/* Unit tests for api_common.c: reading members of outside JSON, the 400s
 * the client-API translators answer with, api_dump's numbers and its cap,
 * and what a stream translator reads of a chunk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api_common.h"
#include "dialect_test.h"

static void test_members(void **state)
{
    json_t *o = J("{'s':'x','n':1,'z':null}"), *to = json_object();

    (void)state;
    assert_string_equal(api_str(o, "s"), "x");
    assert_null(api_str(o, "n"));    /* not a string */
    assert_null(api_str(NULL, "s")); /* not even an object */
    assert_true(api_streq("a", "a"));
    assert_false(api_streq("a", "b"));
    assert_false(api_streq(NULL, "a"));
    api_copy(to, "t", o, "s");
    api_copy(to, "u", o, "z"); /* null is not copied */
    api_copy(to, "v", o, "missing");
    json_expect(to, J("{'t':'x'}"), "api_copy");
    json_decref(o);
}

static void test_fail_and_check(void **state)
{
    json_t *o = J("{'t':0.5,'i':3,'b':true,'s':'x','z':null}");
    struct api_error err = {0};

    (void)state;
    assert_int_equal(api_fail(&err, "p", "c", "bad %s %d", "thing", 7), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "invalid_request_error");
    assert_string_equal(err.param, "p");
    assert_string_equal(err.code, "c");
    assert_string_equal(err.message, "bad thing 7");

    memset(&err, 0, sizeof(err));
    assert_int_equal(api_check(o, "t", JSON_REAL, "a number", &err), 0);
    assert_int_equal(api_check(o, "i", JSON_REAL, "a number", &err), 0); /* an integer is one */
    assert_int_equal(api_check(o, "b", JSON_TRUE, "a boolean", &err), 0);
    assert_int_equal(api_check(o, "z", JSON_OBJECT, "an object", &err), 0); /* null: absent */
    assert_int_equal(api_check(o, "missing", JSON_OBJECT, "an object", &err), 0);
    assert_int_equal(err.status, 0);
    assert_int_equal(api_check(o, "s", JSON_INTEGER, "an integer", &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.param, "s");
    assert_string_equal(err.message, "Invalid type for 's': expected an integer.");
    json_decref(o);
}

static void test_content(void **state)
{
    json_t *c = J("[{'type':'text','text':'a'},{'type':'image_url'},{'type':'text','text':'b'}]");

    (void)state;
    json_expect(api_content_text(c), json_string("ab"), "text parts joined");
    json_decref(c);
    c = json_string("s");
    json_expect(api_content_text(c), json_incref(c), "a string as it is");
    json_decref(c);
    assert_null(api_content_text(NULL));
    /* one text part is its string; anything else stays parts */
    json_expect(api_collapse(J("[{'type':'text','text':'x'}]")), json_string("x"), "one part");
    json_expect(api_collapse(J("[{'type':'text','text':'x'},{'type':'text','text':'y'}]")),
                J("[{'type':'text','text':'x'},{'type':'text','text':'y'}]"), "two parts");
    json_expect(api_collapse(J("[{'type':'image_url'}]")), J("[{'type':'image_url'}]"), "not text");
}

static void test_chunk_choice(void **state)
{
    json_t *usage = NULL, *a = J("{'choices':[{'index':0,'delta':{},'finish_reason':'stop'}]}");
    json_t *u = J("{'choices':[],'usage':{'prompt_tokens':3}}");
    json_t *other = J("{'choices':[{'index':1,'delta':{},'finish_reason':'length'}]}");
    char finish[32] = "";

    (void)state;
    assert_ptr_equal(api_chunk_choice(a, &usage, finish, sizeof(finish)),
                     json_array_get(json_object_get(a, "choices"), 0));
    assert_string_equal(finish, "stop");
    assert_null(usage);
    assert_null(api_chunk_choice(u, &usage, finish, sizeof(finish)));
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 3);
    /* another choice's finish is not this answer's */
    assert_null(api_chunk_choice(other, &usage, finish, sizeof(finish)));
    assert_string_equal(finish, "stop");
    json_decref(usage);
    json_decref(a);
    json_decref(u);
    json_decref(other);
}

static void test_dump_and_events(void **state)
{
    json_t *v = J("{'a':0.7,'b':[1,2.0,-0.1,1e300,true,false,null],'c':'q\\'\\n\\u00e9'}");
    struct buf b;

    (void)state;
    buf_init(&b, 1 << 10);
    assert_int_equal(api_dump(&b, v), 0);
    /* reals as they were written, not jansson's 0.69999999999999996 */
    assert_string_equal(b.data, "{\"a\":0.7,\"b\":[1,2.0,-0.1,1e+300,true,false,null],"
                                "\"c\":\"q\\\"\\n\xc3\xa9\"}");
    json_expect(json_loads(b.data, 0, NULL), json_incref(v), "api_dump reads back the same");
    buf_reset(&b);
    assert_int_equal(api_write_event(&b, "ping", json_object_get(v, "b")), 0);
    assert_string_equal(b.data, "event: ping\ndata: [1,2.0,-0.1,1e+300,true,false,null]\n\n");
    buf_reset(&b);
    assert_int_equal(api_write_event(&b, NULL, json_object_get(v, "a")), 0);
    assert_string_equal(b.data, "data: 0.7\n\n");
    buf_free(&b);
    /* over the cap: the buffer fails, and says so */
    buf_init(&b, 8);
    assert_int_equal(api_dump(&b, v), -1);
    assert_true(b.failed);
    assert_int_equal(api_write_event(&b, "x", v), -1);
    buf_free(&b);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members),         cmocka_unit_test(test_fail_and_check),
        cmocka_unit_test(test_content),         cmocka_unit_test(test_chunk_choice),
        cmocka_unit_test(test_dump_and_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
