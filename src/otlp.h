/* otlp.h - a small encoder of OpenTelemetry's OTLP trace protobuf messages
 * (opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto):
 * exactly the fields sluice writes, and nothing that reads.
 *
 * Protobuf's wire format is simple to write: a field is a varint tag
 * (number << 3 | wire type) and then a varint, 8 fixed bytes, or a varint
 * length and that many bytes. The only hard part is that a nested message is
 * preceded by its length: otlp_open() writes the tag and notes where the
 * message starts, and otlp_close() writes the length in once it is known. So a span is written in
 * one pass, with no message tree and no allocation but its buffer's. (One byte is kept for the
 * length at the start, so only messages of 128 bytes or more are moved.)
 *
 * Errors are sticky: every append is checked, and the first one that fails
 * (the buffer's cap, caps.h) marks the writer failed; later calls do
 * nothing. The caller checks otlp_failed() once, at the end.
 *
 * Strings that a client or a provider controls go through otlp_str() and
 * the otlp_attr_str*() calls: invalid UTF-8 becomes U+FFFD and a value longer
 * than its cap is cut at a character boundary, so every string field is
 * valid UTF-8, as protobuf requires of `string`.
 */
#ifndef SLUICE_OTLP_H
#define SLUICE_OTLP_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>

/* Field numbers and enum values of the OTLP messages written here. */
enum {
    /* ExportTraceServiceRequest */
    OTLP_REQ_RESOURCE_SPANS = 1,
    /* ResourceSpans */
    OTLP_RS_RESOURCE = 1,
    OTLP_RS_SCOPE_SPANS = 2,
    /* Resource */
    OTLP_RES_ATTRIBUTES = 1,
    /* ScopeSpans */
    OTLP_SS_SCOPE = 1,
    OTLP_SS_SPANS = 2,
    /* InstrumentationScope */
    OTLP_SCOPE_NAME = 1,
    OTLP_SCOPE_VERSION = 2,
    /* Span */
    OTLP_SPAN_TRACE_ID = 1,
    OTLP_SPAN_SPAN_ID = 2,
    OTLP_SPAN_TRACE_STATE = 3,
    OTLP_SPAN_PARENT_SPAN_ID = 4,
    OTLP_SPAN_NAME = 5,
    OTLP_SPAN_KIND = 6,
    OTLP_SPAN_START = 7,
    OTLP_SPAN_END = 8,
    OTLP_SPAN_ATTRIBUTES = 9,
    OTLP_SPAN_EVENTS = 11,
    OTLP_SPAN_STATUS = 15,
    /* Span.Event */
    OTLP_EVENT_TIME = 1,
    OTLP_EVENT_NAME = 2,
    OTLP_EVENT_ATTRIBUTES = 3,
    /* Status */
    OTLP_STATUS_MESSAGE = 2,
    OTLP_STATUS_CODE = 3,
};

enum otlp_span_kind {
    OTLP_KIND_INTERNAL = 1,
    OTLP_KIND_SERVER = 2,
    OTLP_KIND_CLIENT = 3,
};

enum otlp_status_code {
    OTLP_STATUS_UNSET = 0,
    OTLP_STATUS_OK = 1,
    OTLP_STATUS_ERROR = 2,
};

/* A writer: the bytes so far and whether an append failed. */
struct otlp {
    struct buf b;
    int failed;
};

/* Start an empty writer whose buffer holds at most max bytes. */
void otlp_init(struct otlp *w, size_t max);
/* The same, over storage the caller hands over: data (malloc'd) holds cap
 * bytes and a terminator. */
void otlp_init_with(struct otlp *w, size_t max, char *data, size_t cap);
/* The same, with room for size bytes allocated at once. */
void otlp_init_sized(struct otlp *w, size_t max, size_t size);
void otlp_free(struct otlp *w);
int otlp_failed(const struct otlp *w);

/* Begin a nested message, field `field` of the enclosing one; returns the
 * mark otlp_close() takes. */
size_t otlp_open(struct otlp *w, unsigned field);
/* End the message begun at mark: its length is written in. */
void otlp_close(struct otlp *w, size_t mark);

/* Scalar fields. */
void otlp_varint(struct otlp *w, unsigned field, uint64_t v);
void otlp_fixed64(struct otlp *w, unsigned field, uint64_t v);
void otlp_double(struct otlp *w, unsigned field, double v);
/* Length-delimited bytes, copied as they are (ids, or bytes already encoded
 * as a message). */
void otlp_bytes(struct otlp *w, unsigned field, const void *p, size_t n);
/* The tag and length of a length-delimited field whose len bytes are
 * appended next (with otlp_raw), and how many bytes that header takes: for
 * a message whose size is known beforehand, which then is never moved. */
void otlp_len_header(struct otlp *w, unsigned field, size_t len);
size_t otlp_len_header_size(unsigned field, size_t len);
/* Open a Span (as a ScopeSpans.spans field) and write its head in one
 * piece: trace_id, span_id, parent_span_id (when not NULL), name (sluice's
 * own text, printable ASCII, cut at 255 bytes), kind and start time.
 * Returns the mark otlp_close() takes. */
size_t otlp_span_open(struct otlp *w, const uint8_t trace_id[16], const uint8_t span_id[8],
                      const uint8_t *parent_id, const char *name, size_t name_len, int kind,
                      uint64_t start_ns);
/* Make room for n more bytes now (one allocation for what follows). */
void otlp_reserve(struct otlp *w, size_t n);
/* Bytes appended raw, without a tag: fields encoded elsewhere. */
void otlp_raw(struct otlp *w, const void *p, size_t n);
/* A string field made valid UTF-8 and cut at a character boundary to at
 * most max bytes (see otlp_utf8_clean). */
void otlp_str(struct otlp *w, unsigned field, const char *s, size_t n, size_t max);

/* Attributes: one KeyValue as field `field` (Span.attributes,
 * Event.attributes, Resource.attributes). Keys are sluice's own constants.
 * String values are cleaned and cut to max bytes, as by otlp_str. */
void otlp_attr_str(struct otlp *w, unsigned field, const char *key, const char *v, size_t max);
void otlp_attr_strn(struct otlp *w, unsigned field, const char *key, const char *v, size_t n,
                    size_t max);
void otlp_attr_int(struct otlp *w, unsigned field, const char *key, int64_t v);
void otlp_attr_double(struct otlp *w, unsigned field, const char *key, double v);
void otlp_attr_bool(struct otlp *w, unsigned field, const char *key, int v);
/* A string attribute whose value sluice vouches for: printable ASCII from
 * the config (names, ids) or made by sluice (request ids are checked to be
 * printable ASCII). No UTF-8 scan; klen is strlen(key). A value longer
 * than OTLP_ASCII_MAX is scanned and cut like any other. */
#define OTLP_ASCII_MAX 1024
void otlp_attr_ascii(struct otlp *w, unsigned field, const char *key, size_t klen, const char *v);
/* An array of strings (gen_ai.response.finish_reasons). */
void otlp_attr_strs(struct otlp *w, unsigned field, const char *key, const char *const *v, size_t n,
                    size_t max);

/* How many bytes of s[0..n) to keep so that at most max bytes are kept and
 * the cut falls on a character boundary of the cleaned text; with *clean
 * set to 1 when s[0..kept) is already valid UTF-8 (no copy needed). Pure. */
size_t otlp_utf8_span(const char *s, size_t n, size_t max, int *clean);
/* Write s[0..n) as valid UTF-8 of at most max bytes into out (which has room
 * for max bytes): each invalid byte becomes U+FFFD, a character cut off at
 * the end of s (someone cut the text by bytes) is left out, and the text is
 * cut before the first character that would not fit. Returns the bytes
 * written. Pure. */
size_t otlp_utf8_clean(const char *s, size_t n, char *out, size_t max);

#endif
