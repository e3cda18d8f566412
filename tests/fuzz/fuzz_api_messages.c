/* libFuzzer: the Messages API translators (api_messages.c), as
 * fuzz_api_responses.c does for the Responses API: requests (for
 * /v1/messages and count_tokens) must become chat bodies the gateway
 * accepts and survive the trip there and back, and through an
 * Anthropic-type provider's translator (provider_anthropic.c) and back to
 * a fixed point; answers survive both trips; a stream of any chunks writes
 * well-formed events. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api_messages.h"
#include "../../src/provider.h"
#include "../../src/request.h"
#include "fuzz_dialect.h"

/* A chat body from a Messages request, sent on as an Anthropic-type
 * provider sends it (provider_anthropic.c), must be a Messages request
 * /v1/messages accepts, unless the provider refused it. The provider
 * normalises (turns of one role merge, empty text blocks go, as Anthropic
 * asks), so the chat read back from it need not equal the first; but
 * sending that chat again must give the same request: nothing is lost or
 * changed after the first trip. */
static void through_provider(const json_t *chat)
{
    struct api_error err = {0};
    char *text = NULL, *text2 = NULL;
    size_t len = 0, len2 = 0;
    json_t *sent, *again;
    int stream = json_is_true(json_object_get(chat, "stream"));
    const char *model = json_string_value(json_object_get(chat, "model"));

    if (anthropic_request(chat, model, 4096, stream, &text, &len, &err) < 0) {
        if (err.status != 400)
            abort();
        return;
    }
    sent = json_loadb(text, len, 0, NULL);
    again = messages_request_to_chat(sent, 0, &err);
    if (again == NULL)
        abort(); /* the provider sends what Anthropic would refuse */
    if (anthropic_request(again, model, 4096, stream, &text2, &len2, &err) < 0 || len2 != len ||
        memcmp(text, text2, len) != 0)
        abort(); /* the second trip asks something else than the first */
    json_decref(again);
    json_decref(sent);
    free(text);
    free(text2);
}

/* A Messages answer as /v1/messages writes it, read by an Anthropic-type
 * provider's translator into a chat answer and written again: the same. */
static void answer_through_provider(const json_t *m)
{
    char *text = json_dumps(m, JSON_COMPACT);
    struct buf chat;
    json_t *c, *again;

    buf_init(&chat, 1 << 24);
    if (text == NULL || anthropic_answer(text, strlen(text), 1700000000, &chat) < 0)
        abort(); /* a Messages answer the provider side cannot read */
    c = json_loadb(chat.data, chat.len, 0, NULL);
    again = messages_answer_from_chat(c, "msg_f");
    if (!json_equal(again, m))
        abort(); /* it says something else */
    json_decref(again);
    json_decref(c);
    buf_free(&chat);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *chat, *m;

    if (in == NULL)
        return 0;
    for (int count_only = 0; count_only <= 1; count_only++) {
        struct api_error err = {0};

        chat = messages_request_to_chat(in, count_only, &err);
        if (chat) {
            json_t *back = messages_request_from_chat(chat), *again;

            fuzz_check_chat_body(chat);
            if (!count_only)
                through_provider(chat);
            again = messages_request_to_chat(back, count_only, &err);
            if (again == NULL || !json_equal(again, chat))
                abort(); /* there and back is not the same request */
            json_decref(again);
            json_decref(back);
            json_decref(chat);
        } else if (err.status != 400) {
            abort();
        }
    }

    m = messages_answer_from_chat(in, "msg_f");
    if (m) {
        json_t *back = messages_answer_to_chat(m),
               *again = messages_answer_from_chat(back, "msg_f");

        if (!json_equal(again, m))
            abort(); /* there and back is not the same answer */
        answer_through_provider(m);
        json_decref(again);
        json_decref(back);
        json_decref(m);
    } else if (json_is_object(in)) {
        abort();
    }

    if (json_is_array(in)) {
        struct messages_stream *s = messages_stream_new("msg_f", (long)size - 8);
        struct buf out;
        json_t *c;
        size_t i;

        buf_init(&out, 1 << 24);
        json_array_foreach (in, i, c) {
            if ((i % 5 == 4 && messages_stream_ping(s, &out) < 0) ||
                messages_stream_chunk(s, c, &out) < 0)
                break;
        }
        if (messages_stream_done(s, &out) == 0)
            fuzz_check_events(out.data, out.len);
        buf_free(&out);
        messages_stream_free(s);
    }
    json_decref(in);
    return 0;
}
