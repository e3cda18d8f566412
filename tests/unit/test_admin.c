/* Unit tests for what the admin API shows of URLs: user information (a
 * password, or a token in the user name) redacted, nothing else changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/admin.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_redact),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
