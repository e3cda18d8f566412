/* libFuzzer: provider response reading, whole bodies and stream chunks.
 * A whole body is also read with jansson's tree, and the two readings must
 * agree on what the gateway uses: usage (cached tokens too), choice 0's text
 * and finish_reason, and the number of choices. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/provider.h"

/* An error answer: the tree has a non-null "error" and no answer (choices,
 * or data for embeddings); the message read is a prefix of the tree's,
 * cut at a character boundary. */
static void check_error_answer(enum endpoint ep, json_t *root, const struct reply *r)
{
    json_t *e = json_object_get(root, "error");
    json_t *ans = json_object_get(root, ep == EP_EMBEDDINGS ? "data" : "choices");
    const char *msg = json_is_string(e) ? json_string_value(e)
                                        : json_string_value(json_object_get(e, "message"));
    size_t n = strlen(r->error);

    if (!json_is_object(root) || e == NULL || json_is_null(e) || json_is_array(ans) ||
        !r->is_error)
        abort();
    if (msg ? strncmp(r->error, msg, n) != 0 || (n < strlen(msg) && n + 4 < sizeof(r->error))
            : n != 0)
        abort();
}

/* What jansson's tree says of a whole chat body; the keys last given win. */
static void check_against_tree(enum endpoint ep, const char *text, size_t size,
                               const struct reply *r, int rc)
{
    json_t *root = json_loadb(text, size, 0, NULL);
    json_t *usage, *choices, *c0, *t, *fr;
    long long pt = 0, ct = 0;
    int ok = rc == 0;

    if (rc == PROVIDER_ERROR_ANSWER && !memchr(text, '\0', size)) {
        check_error_answer(ep, root, r);
        json_decref(root);
        return;
    }
    if (rc == PROVIDER_ERROR_ANSWER) {
        json_decref(root);
        return;
    }

    /* jansson skips a NUL after a number or literal; jscan refuses it. */
    if (ok ? !json_is_object(root) : json_is_object(root) && !memchr(text, '\0', size))
        abort();
    if (!ok || memchr(text, '\0', size)) {
        json_decref(root);
        return;
    }
    usage = json_object_get(root, "usage");
    if (json_is_integer(json_object_get(usage, "prompt_tokens")))
        pt = json_integer_value(json_object_get(usage, "prompt_tokens"));
    if (json_is_integer(json_object_get(usage, "completion_tokens")))
        ct = json_integer_value(json_object_get(usage, "completion_tokens"));
    if (r->has_usage != json_is_object(usage) || r->prompt_tokens != (long)pt ||
        r->completion_tokens != (long)ct)
        abort();
    {
        json_t *ctok =
            json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens");
        long long cached = json_is_integer(ctok) ? json_integer_value(ctok) : 0;

        if (r->cached_tokens != (cached > 0 ? (long)cached : 0))
            abort();
    }
    choices = json_object_get(root, "choices");
    if (ep != EP_EMBEDDINGS && json_is_array(choices)) {
        if (r->nchoices != json_array_size(choices))
            abort();
        c0 = json_array_get(choices, 0);
        t = ep == EP_CHAT ? json_object_get(json_object_get(c0, "message"), "content")
                          : json_object_get(c0, "text");
        if (json_is_string(t) && (r->content.len != json_string_length(t) ||
                                  memcmp(r->content.data, json_string_value(t), r->content.len)))
            abort();
        if (!json_is_string(t) && r->content.len != 0)
            abort();
        fr = json_object_get(c0, "finish_reason");
        if (json_is_string(fr) ? strncmp(r->finish_reason, json_string_value(fr),
                                         sizeof(r->finish_reason) - 1) != 0
                               : r->finish_reason[0] != '\0')
            abort();
    } else if (r->nchoices != 0 || r->content.len != 0) {
        abort();
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;

    for (int ep = EP_CHAT; ep <= EP_EMBEDDINGS; ep++) {
        struct reply r;
        int rc;

        reply_init(&r);
        rc = provider_parse_response((enum endpoint)ep, text, size, &r);
        check_against_tree((enum endpoint)ep, text, size, &r, rc);
        reply_free(&r);
        reply_init(&r);
        {
            struct assembly *a = provider_assembly_new((enum endpoint)ep);
            size_t len;
            char *whole;

            provider_parse_chunk((enum endpoint)ep, text, size, &r, a);
            provider_parse_chunk((enum endpoint)ep, text, size, &r, a);
            whole = provider_assembly_finish(a, &len);
            if (whole) {
                json_t *j = json_loads(whole, 0, NULL);

                if (j == NULL)
                    abort(); /* the rebuilt response is always JSON */
                json_decref(j);
            }
            free(whole);
            provider_assembly_free(a);
        }
        if (r.content.len > 0 && r.content.data[r.content.len] != '\0')
            abort();
        reply_free(&r);
    }
    return 0;
}
