/* mock_ctl.h - the "mock" object of a sluice-mock request: the per-request
 * controls (faults, status, latency, stream shape, forced content) a test
 * sends in the body, parsed into a struct.
 *
 * The parser is a pure function of its input: the request body, the model
 * that answers and the model's command-line defaults (--mock, --content) in;
 * a struct mock_ctl out, or a 400 invalid_mock error that names the field.
 * Unknown fields are refused, so a typo in a test fails loudly instead of
 * silently testing nothing. The one piece of state, how many requests each
 * fail_times key has seen, is a table the caller owns and passes in.
 */
#ifndef SLUICE_MOCK_CTL_H
#define SLUICE_MOCK_CTL_H

#include "mock_gen.h"

#include <jansson.h>
#include <stddef.h>

#define MOCK_CTL_MAX_DELAY_MS 3600000 /* first_byte_ms, interval_ms */
#define MOCK_CTL_MAX_CHUNKS 10000     /* chunks */
#define MOCK_CTL_MAX_KEY_LEN 256      /* a longer fail_times key is stored as its hash */

enum mock_fault {
    MOCK_FAULT_NONE,
    MOCK_FAULT_HANG,
    MOCK_FAULT_RESET,
    MOCK_FAULT_TRUNCATE,
    MOCK_FAULT_MALFORMED,
    MOCK_FAULT_ERROR_EVENT, /* a 200 stream that fails with an error event */
    MOCK_FAULT_ERROR_200,   /* an error object with HTTP 200, as some proxies send */
};

/* The controls of one request. Strings and `choices` borrow from the parsed
 * object (from `obj` when mock_ctl_from_request filled it). */
struct mock_ctl {
    json_t *obj; /* owned by mock_ctl_from_request's result: the controls in force, or NULL */
    const char *content;
    size_t content_len;
    const json_t *choices; /* an array of strings */
    long status;           /* 0 = not given */
    double retry_after;    /* < 0 = not given */
    const char *error_message;
    enum mock_fault fault;
    long first_byte_ms, chunks, interval_ms; /* -1 = not given */
    int has_logprob;
    double logprob;
    const char *model;
    long fail_times; /* -1 = not given */
    const char *key;
    long tool_calls;              /* Anthropic mode: tool_use blocks; 0 = not given */
    long cache_read, cache_write; /* prompt tokens reported as cached; 0 = none */
};

/* Parse one "mock" object m (NULL or JSON null: no controls) into ctl, which
 * borrows from m and does not own it (ctl->obj stays NULL). Return 0, or -1
 * with err set to a 400 invalid_mock naming the field. */
int mock_ctl_parse(json_t *m, struct mock_ctl *ctl, struct mock_err *err);

/* The controls of a request body `req` for `model`: the body's "mock" (an
 * object, or an array of objects of which the first whose "model" is this
 * model, or that names none, applies; every element is checked, so a typo
 * fails even in one that does not apply) laid field by field over
 * `defaults[model]` (the command-line defaults; defaults may be NULL).
 * Borrows req and defaults. Return 0 with ctl filled (free it with
 * mock_ctl_free; ctl->obj is a new reference, or NULL when no control
 * applies), or -1 with err set and nothing to free. */
int mock_ctl_from_request(json_t *req, const char *model, json_t *defaults, struct mock_ctl *ctl,
                          struct mock_err *err);

/* Drop ctl's reference to the controls it borrows from. */
void mock_ctl_free(struct mock_ctl *ctl);

/* fail_times: only the first fail_times requests carrying a key get the
 * status or fault; later ones have them cleared from ctl. The key is
 * mock.key, else the controls themselves (canonical JSON); a key longer
 * than MOCK_CTL_MAX_KEY_LEN is stored as its hash. `counts` (key -> requests
 * seen, the caller's) holds at most max_keys keys. Return 0, or -1 with err
 * set when the table is full. Does nothing when fail_times is not given. */
int mock_ctl_gate(json_t *counts, size_t max_keys, struct mock_ctl *ctl, struct mock_err *err);

#endif
