/* libFuzzer: provider response reading, whole bodies and stream chunks.
 * A whole body is also read with jansson's tree, and the two readings must
 * agree on what the gateway uses: usage (cached tokens too), choice 0's text
 * and finish_reason, and the number of choices. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/provider.h"

/* What jansson's tree says of a whole chat body; the keys last given win. */
static void check_against_tree(enum endpoint ep, const char *text, size_t size,
                               const struct reply *r, int ok)
{
    json_t *root = json_loadb(text, size, 0, NULL);
    json_t *usage, *choices, *c0, *t, *fr;
    long long pt = 0, ct = 0;

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
        int ok;

        reply_init(&r);
        ok = provider_parse_response((enum endpoint)ep, text, size, &r) == 0;
        check_against_tree((enum endpoint)ep, text, size, &r, ok);
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
