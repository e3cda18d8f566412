/* libFuzzer: request validation (request_parse) on every endpoint, the
 * query text built from what it accepts, and the body sent upstream: as the
 * client wrote it (spliced) it must mean what the tree-built body means; a
 * chat request sent to an Anthropic provider is a Messages request with a
 * model, max_tokens and messages, or a 400. */
#include <curl/curl.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../src/config.h"
#include "../../src/provider.h"
#include "../../src/request.h"

static json_t *upstream_body(const struct model *m, const struct request_info *ri, const char *text,
                             size_t len, int stream)
{
    struct call_spec spec;
    struct api_error e;
    json_t *j;

    if (provider_build(m, ri->ep, ri->body, text, len, stream, NULL, &spec, &e) < 0) {
        if (m->provider->type != PROVIDER_ANTHROPIC || e.status != 400)
            abort(); /* only a translation may refuse, and with a 400 */
        return NULL;
    }
    j = json_loadb(spec.body, spec.body_len, 0, NULL);
    if (j == NULL)
        abort(); /* the gateway sends JSON */
    curl_slist_free_all(spec.headers);
    free(spec.url);
    free(spec.body);
    return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct provider p = {.name = "p", .type = PROVIDER_OPENAI, .base_url = "http://127.0.0.1:1/v1"};
    struct model m = {.name = "m", .provider = &p, .id = "up\"stream-id"};
    struct provider ap = {.name = "a",
                          .type = PROVIDER_ANTHROPIC,
                          .base_url = "http://127.0.0.1:1/v1",
                          .anthropic_version = "2023-06-01",
                          .default_max_tokens = 4096};
    struct model am = {.name = "am", .provider = &ap, .id = "claude-x"};

    for (int ep = EP_CHAT; ep <= EP_EMBEDDINGS; ep++) {
        struct request_info ri;
        struct api_error e = {0};

        if (request_parse((enum endpoint)ep, (const char *)data, size, &ri, &e) == 0) {
            char *q = request_query_text(&ri);

            free(q);
            for (int stream = 0; stream <= 1; stream++) {
                json_t *spliced = upstream_body(&m, &ri, (const char *)data, size, stream);
                json_t *tree = upstream_body(&m, &ri, NULL, 0, stream);

                if (!json_equal(spliced, tree))
                    abort();
                json_decref(spliced);
                json_decref(tree);
            }
            if (ep == EP_CHAT) {
                json_t *msg = upstream_body(&am, &ri, NULL, 0, 1);

                if (msg && (!json_is_string(json_object_get(msg, "model")) ||
                            !json_is_integer(json_object_get(msg, "max_tokens")) ||
                            json_array_size(json_object_get(msg, "messages")) == 0 ||
                            !json_is_true(json_object_get(msg, "stream"))))
                    abort();
                json_decref(msg);
            }
            request_info_free(&ri);
        } else if (e.status != 400) {
            abort(); /* bad input is always a 400 */
        }
    }
    return 0;
}
