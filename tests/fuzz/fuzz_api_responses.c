/* libFuzzer: the Responses API translators (api_responses.c). The input is
 * read as a Responses request, as a chat answer, and as a list of chat
 * chunks. A request translated must be a chat body that request_parse
 * accepts, and translated back through the inverse and forward again must
 * be the same body; bad input is always a 400. An answer there and back
 * says the same. A stream of any chunks writes well-formed events. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api_responses.h"
#include "../../src/request.h"
#include "fuzz_dialect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *echo = NULL, *chat, *o;
    struct api_error err = {0};

    if (in == NULL)
        return 0;
    chat = responses_request_to_chat(in, &echo, &err);
    if (chat) {
        json_t *back = responses_request_from_chat(chat), *again, *echo2 = NULL;

        fuzz_check_chat_body(chat);
        again = responses_request_to_chat(back, &echo2, &err);
        if (again == NULL || !json_equal(again, chat))
            abort(); /* there and back is not the same request */
        json_decref(again);
        json_decref(echo2);
        json_decref(back);
        json_decref(chat);
        if (!json_is_object(echo))
            abort();
    } else if (err.status != 400 || echo != NULL) {
        abort();
    }
    json_decref(echo);

    o = responses_answer_from_chat(in, NULL, "resp_f");
    if (o) {
        json_t *back = responses_answer_to_chat(o),
               *again = responses_answer_from_chat(back, NULL, "resp_f");

        if (!json_equal(again, o))
            abort(); /* there and back is not the same answer */
        json_decref(again);
        json_decref(back);
        json_decref(o);
    } else if (json_is_object(in)) {
        abort();
    }

    if (json_is_array(in)) {
        struct responses_stream *s = responses_stream_new(NULL, "resp_f");
        struct api_error e;
        struct buf out;
        json_t *c;
        size_t i;

        buf_init(&out, 1 << 24);
        json_array_foreach (in, i, c) {
            if (responses_stream_chunk(s, c, &out) < 0)
                break;
        }
        api_error_set(&e, 502, "api_error", NULL, NULL, "%s", "x");
        if ((size & 1 ? responses_stream_fail(s, &e, &out) : responses_stream_done(s, &out)) == 0)
            fuzz_check_events(out.data, out.len);
        buf_free(&out);
        responses_stream_free(s);
    }
    json_decref(in);
    return 0;
}
