/* Unit tests for sluice-mock's "mock" object parser (src/mock/mock_ctl.c):
 * every control read into the struct, every bad value refused with a 400
 * invalid_mock that names the field, the per-model array and the
 * command-line defaults under a request's controls, and fail_times. The
 * mock's sources are included whole (they are not in the library). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../common/unit.h"

#include "../../src/mock/mock_ctl.c"
#include "../../src/mock/mock_gen.c"
#include "../../src/mock/mock_replay.c"

/* The controls of request body `req` for model m, with defaults d (or NULL).
 * Fails the test unless they parse. */
static void ctl_of(const char *req, const char *m, const char *d, struct mock_ctl *ctl)
{
    json_t *r = test_json_q(req), *dj = d ? test_json_q(d) : NULL;
    struct mock_err err = {0};

    if (mock_ctl_from_request(r, m, dj, ctl, &err) < 0)
        fail_msg("%s: %s", req, err.message);
    /* The controls must outlive the body and the defaults. */
    json_decref(r);
    json_decref(dj);
}

/* The request's controls are refused: a 400 invalid_mock naming `param`,
 * whose message has `words`. */
static void refused(const char *req, const char *param, const char *words)
{
    json_t *r = test_json_q(req);
    struct mock_ctl ctl;
    struct mock_err err = {0};

    if (mock_ctl_from_request(r, "mock-small", NULL, &ctl, &err) == 0)
        fail_msg("accepted: %s", req);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "invalid_mock");
    assert_string_equal(err.param, param);
    assert_non_null(strstr(err.message, "sluice-mock: "));
    if (strstr(err.message, words) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, words);
    assert_null(ctl.obj);
    json_decref(r);
}

static void test_none(void **state)
{
    struct mock_ctl ctl;
    struct mock_err err = {0};

    UNUSED(state);
    ctl_of("{'model':'mock-small'}", "mock-small", NULL, &ctl);
    assert_null(ctl.obj);
    assert_int_equal(ctl.fault, MOCK_FAULT_NONE);
    assert_int_equal(ctl.status, 0);
    assert_true(ctl.retry_after < 0);
    assert_int_equal(ctl.first_byte_ms, -1);
    assert_int_equal(ctl.chunks, -1);
    assert_int_equal(ctl.interval_ms, -1);
    assert_int_equal(ctl.fail_times, -1);
    assert_null(ctl.content);
    mock_ctl_free(&ctl);
    ctl_of("{'mock':null}", "mock-small", NULL, &ctl);
    assert_null(ctl.obj);
    assert_int_equal(mock_ctl_parse(NULL, &ctl, &err), 0);
    assert_int_equal(ctl.first_byte_ms, -1);
}

static void test_every_field(void **state)
{
    struct mock_ctl ctl;

    UNUSED(state);
    ctl_of("{'mock':{'content':'hello','choices':['a','b'],'status':503,'retry_after':1.5,"
           "'error_message':'boom','fault':'truncate','first_byte_ms':250,'interval_ms':10,"
           "'chunks':7,'logprob':-0.25,'model':'mock-small','fail_times':2,'key':'k1',"
           "'tool_calls':3,'cache_read_tokens':11,'cache_write_tokens':12}}",
           "mock-small", NULL, &ctl);
    assert_non_null(ctl.obj);
    assert_string_equal(ctl.content, "hello");
    assert_int_equal(ctl.content_len, 5);
    assert_int_equal(json_array_size(ctl.choices), 2);
    assert_int_equal(ctl.status, 503);
    assert_true(ctl.retry_after == 1.5);
    assert_string_equal(ctl.error_message, "boom");
    assert_int_equal(ctl.fault, MOCK_FAULT_TRUNCATE);
    assert_int_equal(ctl.first_byte_ms, 250);
    assert_int_equal(ctl.interval_ms, 10);
    assert_int_equal(ctl.chunks, 7);
    assert_true(ctl.has_logprob && ctl.logprob == -0.25);
    assert_string_equal(ctl.model, "mock-small");
    assert_int_equal(ctl.fail_times, 2);
    assert_string_equal(ctl.key, "k1");
    assert_int_equal(ctl.tool_calls, 3);
    assert_int_equal(ctl.cache_read, 11);
    assert_int_equal(ctl.cache_write, 12);
    mock_ctl_free(&ctl);

    static const struct {
        const char *name;
        enum mock_fault fault;
    } faults[] = {{"hang", MOCK_FAULT_HANG},
                  {"reset", MOCK_FAULT_RESET},
                  {"truncate", MOCK_FAULT_TRUNCATE},
                  {"malformed", MOCK_FAULT_MALFORMED},
                  {"error_event", MOCK_FAULT_ERROR_EVENT},
                  {"error_200", MOCK_FAULT_ERROR_200}};
    for (size_t i = 0; i < ARRAY_LEN(faults); i++) {
        char req[100];

        snprintf(req, sizeof(req), "{'mock':{'fault':'%s'}}", faults[i].name);
        ctl_of(req, "m", NULL, &ctl);
        assert_int_equal(ctl.fault, faults[i].fault);
        mock_ctl_free(&ctl);
    }
    ctl_of("{'mock':{'fault':null}}", "m", NULL, &ctl);
    assert_int_equal(ctl.fault, MOCK_FAULT_NONE);
    mock_ctl_free(&ctl);
    /* The bounds themselves are in range. */
    ctl_of("{'mock':{'status':200,'first_byte_ms':0,'interval_ms':3600000,'chunks':10000,"
           "'logprob':0,'retry_after':86400,'tool_calls':16}}",
           "m", NULL, &ctl);
    assert_int_equal(ctl.status, 200);
    assert_int_equal(ctl.interval_ms, 3600000);
    assert_int_equal(ctl.chunks, 10000);
    mock_ctl_free(&ctl);
}

static void test_refused(void **state)
{
    UNUSED(state);
    refused("{'mock':'hang'}", "mock", "'mock' must be an object or an array of objects");
    refused("{'mock':[{'status':500},3]}", "mock", "an array of objects");
    refused("{'mock':{'stauts':500}}", "mock", "unknown field 'mock.stauts'");
    refused("{'mock':{'content':3}}", "mock.content", "must be a string");
    refused("{'mock':{'choices':[]}}", "mock.choices", "non-empty array");
    refused("{'mock':{'choices':['a',1]}}", "mock.choices", "must hold strings");
    refused("{'mock':{'status':199}}", "mock.status", "200..599");
    refused("{'mock':{'status':600}}", "mock.status", "200..599");
    refused("{'mock':{'status':'500'}}", "mock.status", "200..599");
    refused("{'mock':{'retry_after':-1}}", "mock.retry_after", "0..86400");
    refused("{'mock':{'error_message':false}}", "mock.error_message", "must be a string");
    refused("{'mock':{'fault':'explode'}}", "mock.fault", "\"hang\", \"reset\"");
    refused("{'mock':{'fault':1}}", "mock.fault", "\"error_200\"");
    refused("{'mock':{'first_byte_ms':3600001}}", "mock.first_byte_ms", "0..3600000");
    refused("{'mock':{'first_byte_ms':1.5}}", "mock.first_byte_ms", "0..3600000");
    refused("{'mock':{'interval_ms':-1}}", "mock.interval_ms", "0..3600000");
    refused("{'mock':{'chunks':0}}", "mock.chunks", "1..10000");
    refused("{'mock':{'logprob':0.5}}", "mock.logprob", "<= 0");
    refused("{'mock':{'model':1}}", "mock.model", "must be a string");
    refused("{'mock':{'fail_times':-1}}", "mock.fail_times", "non-negative");
    refused("{'mock':{'key':[]}}", "mock.key", "must be a string");
    refused("{'mock':{'tool_calls':17}}", "mock.tool_calls", "1..16");
    refused("{'mock':{'cache_read_tokens':-1}}", "mock.cache_read_tokens", "0..1000000000");
    refused("{'mock':{'cache_write_tokens':'x'}}", "mock.cache_write_tokens", "0..1000000000");
    /* An element for another model is checked all the same. */
    refused("{'mock':[{'model':'mock-large','chunkz':1},{'status':500}]}", "mock",
            "unknown field 'mock.chunkz'");
}

static void test_array_and_defaults(void **state)
{
    struct mock_ctl ctl;

    UNUSED(state);
    /* The first element for this model, or that names none, applies. */
    ctl_of("{'mock':[{'model':'a','status':500},{'model':'b','status':502},{'status':503}]}", "b",
           NULL, &ctl);
    assert_int_equal(ctl.status, 502);
    mock_ctl_free(&ctl);
    ctl_of("{'mock':[{'model':'a','status':500},{'status':503},{'model':'c','status':504}]}", "c",
           NULL, &ctl);
    assert_int_equal(ctl.status, 503);
    mock_ctl_free(&ctl);
    ctl_of("{'mock':[{'model':'a','status':500}]}", "b", NULL, &ctl);
    assert_null(ctl.obj);
    assert_int_equal(ctl.status, 0);
    ctl_of("{'mock':{'model':'a','status':500}}", "b", NULL, &ctl);
    assert_null(ctl.obj);

    /* The model's defaults, overridden field by field by the request's. */
    ctl_of("{'mock':{'content':'mine'}}", "slow",
           "{'slow':{'first_byte_ms':500,'content':'default'},'other':{'status':500}}", &ctl);
    assert_int_equal(ctl.first_byte_ms, 500);
    assert_string_equal(ctl.content, "mine");
    assert_int_equal(ctl.status, 0);
    mock_ctl_free(&ctl);
    ctl_of("{}", "slow", "{'slow':{'first_byte_ms':500}}", &ctl);
    assert_int_equal(ctl.first_byte_ms, 500);
    mock_ctl_free(&ctl);
    ctl_of("{'mock':{'status':429}}", "fast", "{'slow':{'first_byte_ms':500}}", &ctl);
    assert_int_equal(ctl.first_byte_ms, -1);
    assert_int_equal(ctl.status, 429);
    mock_ctl_free(&ctl);
}

/* fail_times: the status and fault hold for the first N requests of a key. */
static void test_gate(void **state)
{
    json_t *counts = json_object();
    struct mock_ctl ctl;
    struct mock_err err = {0};
    static const char req[] = "{'mock':{'status':503,'fault':'reset','fail_times':2,'key':'k'}}";

    UNUSED(state);
    for (int i = 0; i < 4; i++) {
        ctl_of(req, "m", NULL, &ctl);
        assert_int_equal(mock_ctl_gate(counts, 10, &ctl, &err), 0);
        assert_int_equal(ctl.status, i < 2 ? 503 : 0);
        assert_int_equal(ctl.fault, i < 2 ? MOCK_FAULT_RESET : MOCK_FAULT_NONE);
        mock_ctl_free(&ctl);
    }
    assert_int_equal(json_integer_value(json_object_get(counts, "k")), 4);

    /* Without a key the controls are the key, whatever their order. */
    ctl_of("{'mock':{'status':500,'fail_times':1}}", "m", NULL, &ctl);
    assert_int_equal(mock_ctl_gate(counts, 10, &ctl, &err), 0);
    assert_int_equal(ctl.status, 500);
    mock_ctl_free(&ctl);
    ctl_of("{'mock':{'fail_times':1,'status':500}}", "m", NULL, &ctl);
    assert_int_equal(mock_ctl_gate(counts, 10, &ctl, &err), 0);
    assert_int_equal(ctl.status, 0);
    mock_ctl_free(&ctl);

    /* No fail_times: nothing counted. */
    ctl_of("{'mock':{'status':500,'key':'z'}}", "m", NULL, &ctl);
    assert_int_equal(mock_ctl_gate(counts, 10, &ctl, &err), 0);
    assert_int_equal(ctl.status, 500);
    assert_null(json_object_get(counts, "z"));
    mock_ctl_free(&ctl);

    /* A long key is stored as its hash; a full table refuses a new key. */
    {
        char big[600], body[700];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        snprintf(body, sizeof(body), "{'mock':{'status':500,'fail_times':1,'key':'%s'}}", big);
        ctl_of(body, "m", NULL, &ctl);
        assert_int_equal(mock_ctl_gate(counts, 10, &ctl, &err), 0);
        mock_ctl_free(&ctl);
        assert_null(json_object_get(counts, big));
        assert_int_equal(json_object_size(counts), 3);
    }
    ctl_of("{'mock':{'status':500,'fail_times':1,'key':'new'}}", "m", NULL, &ctl);
    assert_int_equal(mock_ctl_gate(counts, 3, &ctl, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.param, "mock.key");
    assert_non_null(strstr(err.message, "POST /_mock/reset"));
    mock_ctl_free(&ctl);
    json_decref(counts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none),    cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_refused), cmocka_unit_test(test_array_and_defaults),
        cmocka_unit_test(test_gate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
