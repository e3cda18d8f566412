/* bench/json.c - what reading JSON costs on the hot path, jscan against
 * jansson's tree, on the texts a proxied chat completion carries.
 *
 *   build/bench-json [rounds]
 *
 * Prints one JSON line: ns per call (best of 5 runs) for reading a provider's
 * answer with provider_parse_response (jscan, in place) and with json_loadb
 * (the tree it replaced), and for building the request's tree with
 * jscan_build and with json_loadb. `make bench` puts it in bench/RESULTS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/jscan.h"
#include "../src/provider.h"
#include "../src/util.h"

static const char answer[] =
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"Hello! How can I help you today?\"},\"logprobs\":null,\"finish_reason\":"
    "\"stop\"}],\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":9,\"total_tokens\":23},"
    "\"system_fingerprint\":\"fp_bench\"}";
static const char request[] = "{\"model\":\"bench-nocache\",\"messages\":[{\"role\":\"user\","
                              "\"content\":\"Say hello in one short sentence.\"}]}";

enum what { READ_JSCAN, READ_TREE, REQUEST_JSCAN, REQUEST_TREE };

static void once(enum what w)
{
    struct reply r;
    json_t *j = NULL;

    switch (w) {
    case READ_JSCAN:
        reply_init(&r);
        if (provider_parse_response(EP_CHAT, answer, sizeof(answer) - 1, &r) < 0)
            abort();
        reply_free(&r);
        return;
    case READ_TREE:
        j = json_loadb(answer, sizeof(answer) - 1, 0, NULL);
        break;
    case REQUEST_JSCAN:
        j = jscan_build(request, sizeof(request) - 1, JSON_REJECT_DUPLICATES);
        break;
    case REQUEST_TREE:
        j = json_loadb(request, sizeof(request) - 1, JSON_REJECT_DUPLICATES, NULL);
        break;
    }
    if (j == NULL)
        abort();
    json_decref(j);
}

static double best_ns(enum what w, long rounds)
{
    double best = 0;

    for (int run = 0; run < 5; run++) {
        uint64_t t0 = now_us();
        double ns;

        for (long i = 0; i < rounds; i++)
            once(w);
        ns = (double)(now_us() - t0) * 1000.0 / (double)rounds;
        if (run == 0 || ns < best)
            best = ns;
    }
    return best;
}

int main(int argc, char **argv)
{
    long rounds = 200000;

    if (argc > 1 && parse_long(argv[1], 1, 1000000000, &rounds) < 0) {
        fprintf(stderr, "usage: bench-json [rounds]\n");
        return 2;
    }
    printf("{\"answer_bytes\":%zu,\"read_jscan_ns\":%.0f,\"read_tree_ns\":%.0f,"
           "\"request_bytes\":%zu,\"request_jscan_ns\":%.0f,\"request_tree_ns\":%.0f}\n",
           sizeof(answer) - 1, best_ns(READ_JSCAN, rounds), best_ns(READ_TREE, rounds),
           sizeof(request) - 1, best_ns(REQUEST_JSCAN, rounds), best_ns(REQUEST_TREE, rounds));
    return 0;
}
