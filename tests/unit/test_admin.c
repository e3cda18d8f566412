/* Unit tests for what the admin API shows of URLs: user information (a
 * password, or a token in the user name) redacted, nothing else changed;
 * and for /admin/config's body, made from config.c's key tables: every key
 * a table has a field for is shown, secrets never are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/admin.h"
#include "../../src/config.h"

static void expect(const char *url, const char *shown)
{
    char *s = admin_url_redact(url);

    assert_string_equal(s, shown);
    free(s);
}

static void test_url_redact(void **state)
{
    (void)state;
    expect("https://api.openai.com/v1", "https://api.openai.com/v1");
    expect("http://user:pass@host/v1", "http://<redacted>@host/v1");
    expect("http://token@host:8080/v1", "http://<redacted>@host:8080/v1");
    expect("https://u:p@ss:w@rd@host", "https://<redacted>@host"); /* '@' in the password */
    expect("http://u:p@[::1]:8080/v1", "http://<redacted>@[::1]:8080/v1");
    expect("redis://:secret@redis:6379/0", "redis://<redacted>@redis:6379/0");
    expect("http://host/v1?to=a@b", "http://host/v1?to=a@b"); /* not the authority */
    expect("http://host/a@b/v1", "http://host/a@b/v1");
    expect("http://host#x@y", "http://host#x@y");
    expect("http://@host/v1", "http://<redacted>@host/v1");
    assert_null(admin_url_redact(NULL));
}

/* Every row of tab that the dump shows (a field, not an old form, not a
 * list) is a member of o, and a group with a table is an object too. */
static void expect_rows(const json_t *o, const struct conf_key *tab)
{
    for (const struct conf_key *k = tab; k->name; k++) {
        json_t *v;

        if ((k->flags & (CONF_REFUSED | CONF_OLD | CONF_NODUMP | CONF_UNSET)) ||
            k->off == CONF_NO_FIELD || k->type == CONF_LIST || (k->type == CONF_GROUP && !k->sub))
            continue;
        v = json_object_get(o, k->name);
        if (v == NULL)
            fail_msg("/admin/config leaves out key '%s'", k->name);
        if (k->type == CONF_GROUP && !json_is_null(v)) /* null: a block not in use */
            expect_rows(v, k->sub);
    }
}

static void test_config_json(void **state)
{
    struct config_errors errs = {0};
    struct config *cfg;
    json_t *o, *p;
    char *text;

    setenv("TEST_ADMIN_KEY_VAR", "sk-provider-secret", 1);
    setenv("SLUICE_ADMIN_KEY", "admin-secret", 1);
    setenv("TEST_OTEL_TOKEN", "otel-secret", 1);
    cfg = config_load_string(
        "admin = { listen = \"127.0.0.1:0\"; };\n"
        "trace = { path = \"/dev/null\"; };\n"
        "otel = { endpoint = \"http://u:otelpw@127.0.0.1:1\";\n"
        "         headers_env = { authorization = \"TEST_OTEL_TOKEN\"; }; };\n"
        "providers = ( { name = \"p\"; base_url = \"http://user:basicpw@127.0.0.1:1/v1\";\n"
        "                api_key_env = \"TEST_ADMIN_KEY_VAR\"; headers = { x-t = \"hdr-secret\"; "
        "};\n"
        "                breaker = { failures = 3; }; },\n"
        "              { name = \"a\"; type = \"anthropic\"; base_url = \"https://x/v1\"; } );\n"
        "models = ( { name = \"m\"; provider = \"p\"; cache_read_per_mtok = 0.25; },\n"
        "           { name = \"n\"; provider = \"a\"; } );\n"
        "routes = ( { name = \"r\"; cascade = ( { model = \"m\"; scorer = \"http\";\n"
        "             url = \"http://s:scorerpw@127.0.0.1:1/s\"; threshold = 0.5; },\n"
        "             { model = \"n\"; } ); max_cost = 0.5; } );\n",
        "t.conf", &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_message("    %s\n", errs.msgs[i]);
    assert_non_null(cfg);
    o = admin_config_json(cfg);
    text = json_dumps(o, JSON_COMPACT);
    /* No secret, from the environment or in a URL, is shown. */
    for (size_t i = 0; i < 6; i++) {
        static const char *const secrets[] = {
            "sk-provider-secret", "admin-secret", "otel-secret", "otelpw", "basicpw", "scorerpw"};

        if (strstr(text, secrets[i]))
            fail_msg("/admin/config shows %s: %s", secrets[i], text);
    }
    assert_null(strstr(text, "hdr-secret"));
    expect_rows(o, config_keys_top);
    p = json_array_get(json_object_get(o, "providers"), 0);
    expect_rows(p, config_keys_provider);
    assert_string_equal(json_string_value(json_object_get(p, "base_url")),
                        "http://<redacted>@127.0.0.1:1/v1");
    assert_string_equal(json_string_value(json_object_get(p, "api_key")), "<redacted>");
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "headers"), "x-t")),
                        "<redacted>");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "breaker"), "failures")),
                     3);
    assert_null(json_object_get(p, "anthropic_version")); /* anthropic's only */
    p = json_array_get(json_object_get(o, "providers"), 1);
    assert_string_equal(json_string_value(json_object_get(p, "anthropic_version")), "2023-06-01");
    assert_int_equal(json_integer_value(json_object_get(p, "default_max_tokens")), 4096);
    assert_true(json_is_null(json_object_get(p, "api_key")));
    p = json_array_get(json_object_get(o, "models"), 0);
    expect_rows(p, config_keys_model);
    assert_string_equal(json_string_value(json_object_get(p, "provider")), "p");
    assert_true(json_real_value(json_object_get(p, "cache_read_per_mtok")) == 0.25);
    assert_null(json_object_get(p, "cache_write_per_mtok")); /* unset */
    assert_null(json_object_get(p, "retries"));              /* unset: the provider's */
    p = json_array_get(json_object_get(o, "routes"), 0);
    expect_rows(p, config_keys_route);
    assert_string_equal(json_string_value(json_object_get(p, "kind")), "cascade");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(p, "stages"), 0), "url")),
        "http://<redacted>@127.0.0.1:1/s");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "admin"), "key")),
                        "<redacted>");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "otel"), "endpoint")),
                        "http://<redacted>@127.0.0.1:1");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_object_get(o, "otel"), "headers"),
                                          "authorization")),
        "<redacted>");
    assert_true(json_is_null(json_object_get(o, "redis")));
    assert_true(json_is_null(json_object_get(json_object_get(o, "trace"), "stream")));
    free(text);
    json_decref(o);
    config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_redact),
        cmocka_unit_test(test_config_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
