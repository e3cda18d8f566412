/* libFuzzer: sluice-mock's parser of a request's "mock" controls (it takes
 * request bodies from any client the tests point at it), with the
 * command-line defaults laid under them and the fail_times gate after. The
 * first byte picks the answering model (and, when its top bit is set,
 * empties a full fail_times table); the rest is the request body. What
 * is accepted must be in range; what is refused must be a 400 invalid_mock
 * naming a mock field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/mock/mock_ctl.c"
#include "../../src/mock/mock_gen.c"
#include "../../src/mock/mock_replay.c"

static void check_ctl(const struct mock_ctl *c)
{
    if (c->obj != NULL && !json_is_object(c->obj))
        abort();
    if (c->status != 0 && (c->status < 200 || c->status > 599))
        abort();
    if (c->first_byte_ms < -1 || c->first_byte_ms > MOCK_CTL_MAX_DELAY_MS || c->interval_ms < -1 ||
        c->interval_ms > MOCK_CTL_MAX_DELAY_MS)
        abort();
    if (c->chunks == 0 || c->chunks < -1 || c->chunks > MOCK_CTL_MAX_CHUNKS)
        abort();
    if (c->tool_calls < 0 || c->tool_calls > MOCK_ANTH_MAX_TOOL_CALLS)
        abort();
    if (c->has_logprob && !(c->logprob <= 0))
        abort();
    if (c->choices && (!json_is_array(c->choices) || json_array_size(c->choices) == 0))
        abort();
    if (c->content && strlen(c->content) > c->content_len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const models[] = {"mock-small", "mock-large", "slow", "a"};
    static json_t *defaults, *counts;
    struct mock_ctl ctl;
    struct mock_err err = {0};
    json_t *req;
    int rc;

    if (size < 1)
        return 0;
    if (defaults == NULL)
        defaults = json_loads("{\"slow\":{\"first_byte_ms\":500,\"content\":\"x\"},"
                              "\"a\":{\"fail_times\":1,\"status\":500}}",
                              0, NULL);
    /* A full table is kept now and then, so its refusal is reached too. */
    if (counts == NULL || (json_object_size(counts) >= 64 && (data[0] & 0x80))) {
        json_decref(counts);
        counts = json_object();
    }
    req = json_loadb((const char *)data + 1, size - 1, 0, NULL);
    if (req == NULL)
        return 0;
    rc = mock_ctl_from_request(req, models[data[0] % 4], defaults, &ctl, &err);
    json_decref(req); /* the controls must not need the body */
    if (rc == 0) {
        check_ctl(&ctl);
        rc = mock_ctl_gate(counts, 64, &ctl, &err);
        if (rc == 0) {
            check_ctl(&ctl);
            /* Past fail_times, the status and the fault are cleared. */
            if (ctl.fail_times >= 0 && ctl.key && strlen(ctl.key) <= MOCK_CTL_MAX_KEY_LEN &&
                json_integer_value(json_object_get(counts, ctl.key)) > ctl.fail_times &&
                (ctl.status != 0 || ctl.fault != MOCK_FAULT_NONE))
                abort();
        }
        mock_ctl_free(&ctl);
    }
    if (rc < 0 &&
        (err.status != 400 || strcmp(err.code, "invalid_mock") != 0 || err.param == NULL ||
         strncmp(err.param, "mock", 4) != 0 || strncmp(err.message, "sluice-mock: ", 13) != 0))
        abort();
    return 0;
}
