/* run_fixture.h - what the unit tests of a run on the loop share
 * (test_cascade.c, test_attempt.c): a config from text, and a chat request
 * as the HTTP worker hands it to the loop. Include it after <cmocka.h>. */
#ifndef SLUICE_TEST_RUN_FIXTURE_H
#define SLUICE_TEST_RUN_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/config.h"
#include "../../src/exchange.h"
#include "../../src/request.h"
#include "../../src/util.h"

/* The config text (taken: freed here) describes, named name; a config
 * error fails the test. The caller owns the config. */
static inline struct config *test_run_config(char *text, const char *name)
{
    struct config_errors errs = {0};
    struct config *cfg = config_load_string(text, name, &errs);

    free(text);
    if (cfg == NULL)
        fail_msg("config: %s", errs.n ? errs.msgs[0] : "?");
    return cfg;
}

/* A chat request for route of cfg ("what is it?", max_tokens 3), streamed
 * or not, with its request id. The caller owns the exchange's reference. */
static inline struct exchange *test_run_request(struct config *cfg, const char *route, int stream)
{
    struct exchange *ex = ex_new(NULL, 1 << 20);
    struct api_error e;
    char *body = xasprintf("{\"model\":\"%s\",%s\"messages\":[{\"role\":\"user\","
                           "\"content\":\"what is it?\"}],\"max_tokens\":3}",
                           route, stream ? "\"stream\":true," : "");

    ex->cfg = config_ref(cfg);
    ex->route = config_route(cfg, route);
    assert_non_null(ex->route);
    snprintf(ex->request_id, sizeof(ex->request_id), "req_%s", route);
    assert_int_equal(buf_puts(&ex->in, body), 0);
    assert_int_equal(request_parse(EP_CHAT, body, strlen(body), &ex->ri, &e), 0);
    free(body);
    return ex;
}

#endif
