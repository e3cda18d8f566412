/* libFuzzer: what the tracer reads from outside and writes out.
 *
 * - traceparent and tracestate headers (a client's): a value that parses
 *   formats back to itself (version 00), and nothing crashes;
 * - UTF-8 cleaning and cutting of attribute values (clients' and
 *   providers' text): the output is valid UTF-8, within its cap, and a
 *   valid input is kept as a prefix cut at a character boundary;
 * - the OTLP encoder: attributes of fuzzed keys and values, nested into a
 *   span and an export body, read back by an independent wire reader
 *   (tests/common/pbread.h) with every string field valid UTF-8.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/otel.h"
#include "../../src/otel_export.h"
#include "../../src/otlp.h"
#include "../common/pbread.h"

/* Message fields (by number) that hold nested messages, per message kind:
 * enough of the schema to walk what sluice writes. */
enum kind { K_REQ, K_RS, K_RES, K_SS, K_SCOPE, K_SPAN, K_KV, K_ANY, K_ARR, K_EVENT, K_STATUS };

static int nested(enum kind k, unsigned num, enum kind *sub)
{
    switch (k) {
    case K_REQ:
        *sub = K_RS;
        return num == 1;
    case K_RS:
        *sub = num == 1 ? K_RES : K_SS;
        return num == 1 || num == 2;
    case K_RES:
        *sub = K_KV;
        return num == 1;
    case K_SS:
        *sub = num == 1 ? K_SCOPE : K_SPAN;
        return num == 1 || num == 2;
    case K_SPAN:
        *sub = num == 9 ? K_KV : num == 11 ? K_EVENT : K_STATUS;
        return num == 9 || num == 11 || num == 15;
    case K_KV:
        *sub = K_ANY;
        return num == 2;
    case K_ANY:
        *sub = K_ARR;
        return num == 5;
    case K_ARR:
        *sub = K_ANY;
        return num == 1;
    case K_EVENT:
        *sub = K_KV;
        return num == 3;
    default:
        return 0;
    }
}

/* String fields (protobuf `string`, which must be UTF-8). */
static int is_string(enum kind k, unsigned num)
{
    return (k == K_SCOPE && (num == 1 || num == 2)) || (k == K_SPAN && (num == 3 || num == 5)) ||
           (k == K_KV && num == 1) || (k == K_ANY && num == 1) || (k == K_EVENT && num == 2) ||
           (k == K_STATUS && num == 2);
}

static void walk(const uint8_t *p, size_t n, enum kind k, int depth)
{
    struct pb r = pb_of(p, n);
    struct pb_field f;
    int rc;
    enum kind sub;

    if (depth > 16)
        abort();
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.type == 2 && nested(k, f.num, &sub))
            walk(f.data, f.len, sub, depth + 1);
        else if (f.type == 2 && is_string(k, f.num) && !pb_utf8_ok(f.data, f.len))
            abort();
    }
    if (rc < 0)
        abort(); /* malformed wire format */
}

static void check_traceparent(const uint8_t *d, size_t n)
{
    char *s = malloc(n + 1);
    struct otel_ctx c;

    memcpy(s, d, n);
    s[n] = '\0';
    if (otel_traceparent_parse(s, &c) == 0 && s[0] == '0' && s[1] == '0') {
        char out[56];
        uint64_t span = 0;

        for (int i = 0; i < 8; i++)
            span = span << 8 | c.span_id[i];
        otel_traceparent_format(c.trace_id, span, c.flags & 1, out);
        /* The ids and the sampled bit survive; other flag bits are ours to drop. */
        if (memcmp(out, s, 53) != 0)
            abort();
    }
    (void)otel_tracestate_ok(s);
    free(s);
}

static void check_utf8(const uint8_t *d, size_t n, size_t max)
{
    char *out = malloc(max + 1);
    int clean;
    size_t keep = otlp_utf8_span((const char *)d, n, max, &clean);
    size_t m = otlp_utf8_clean((const char *)d, n, out, max);

    if (m > max || !pb_utf8_ok((const uint8_t *)out, m))
        abort();
    if (clean) {
        /* Valid text: the kept prefix is valid, within the cap, and what
         * cleaning keeps too. */
        if (keep > max || keep > n || !pb_utf8_ok(d, keep) || m != keep || memcmp(out, d, m) != 0)
            abort();
    }
    free(out);
}

static void check_encoder(const uint8_t *d, size_t n)
{
    size_t half = n / 2, blen = 0;
    char key[64];
    struct otlp w;
    size_t span, ev;
    char *body;
    const char *arr[2];

    snprintf(key, sizeof(key), "k%.*s", (int)(half < 40 ? half : 40), (const char *)d);
    otlp_init(&w, 1u << 20);
    span = otlp_open(&w, OTLP_SS_SPANS);
    otlp_bytes(&w, OTLP_SPAN_TRACE_ID, "0123456789abcdef", 16);
    otlp_str(&w, OTLP_SPAN_NAME, (const char *)d, half, 100);
    otlp_str(&w, OTLP_SPAN_TRACE_STATE, (const char *)d + half, n - half, 512);
    otlp_attr_strn(&w, OTLP_SPAN_ATTRIBUTES, "a", (const char *)d, n, 1 + (n % 300));
    otlp_attr_int(&w, OTLP_SPAN_ATTRIBUTES, "i", (int64_t)n - 100);
    otlp_attr_double(&w, OTLP_SPAN_ATTRIBUTES, "d", (double)n / 3);
    arr[0] = "stop";
    arr[1] = key;
    otlp_attr_strs(&w, OTLP_SPAN_ATTRIBUTES, "arr", arr, 2, 16);
    ev = otlp_open(&w, OTLP_SPAN_EVENTS);
    otlp_fixed64(&w, OTLP_EVENT_TIME, 1);
    otlp_bytes(&w, OTLP_EVENT_NAME, "e", 1);
    otlp_attr_strn(&w, OTLP_EVENT_ATTRIBUTES, "m", (const char *)d + half, n - half, 64);
    otlp_close(&w, ev);
    otlp_close(&w, span);
    if (otlp_failed(&w))
        abort();
    /* The span alone, then wrapped in a whole export request. */
    {
        struct pb r = pb_of(w.b.data, w.b.len);
        struct pb_field f;

        if (pb_next(&r, &f) != 1 || f.num != OTLP_SS_SPANS || f.type != 2)
            abort();
        walk(f.data, f.len, K_SPAN, 0);
    }
    {
        const char *parts[2] = {w.b.data, w.b.data};
        size_t lens[2] = {w.b.len, w.b.len};

        body = otel_export_body(key, parts, lens, 2, &blen);
    }
    if (body == NULL)
        abort();
    walk((const uint8_t *)body, blen, K_REQ, 0);
    free(body);
    otlp_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    check_traceparent(data, size);
    check_utf8(data, size, size ? data[0] : 0);
    check_utf8(data, size, size);
    check_encoder(data, size);
    return 0;
}
