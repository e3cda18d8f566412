/* fuzz_dialect.h - checks the dialect harnesses share (static, included by
 * the harnesses only). */
#ifndef SLUICE_FUZZ_DIALECT_H
#define SLUICE_FUZZ_DIALECT_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/request.h"
#include "../../src/sse.h"

/* A translated request is a chat body the gateway itself accepts. */
static void fuzz_check_chat_body(const json_t *chat)
{
    char *text = json_dumps(chat, JSON_COMPACT);
    struct request_info ri;
    struct api_error e = {0};

    if (text == NULL || request_parse(EP_CHAT, text, strlen(text), &ri, &e) < 0)
        abort();
    request_info_free(&ri);
    free(text);
}

static int event_cb(void *arg, const char *event, const char *data, size_t len)
{
    json_t *j = json_loadb(data, len, 0, NULL);

    (void)arg;
    if (!json_is_object(j))
        abort(); /* every event's data is a JSON object */
    if (event[0] && strcmp(event, json_string_value(json_object_get(j, "type"))) != 0)
        abort(); /* and its event: line names its type */
    json_decref(j);
    return 0;
}

/* What a translator wrote is whole, well-formed events. */
static void fuzz_check_events(const char *p, size_t n)
{
    struct sse s;

    sse_init(&s, 1 << 24);
    if (sse_feed(&s, p ? p : "", n, event_cb, NULL) < 0 || sse_pending(&s))
        abort();
    sse_free(&s);
}

#endif
