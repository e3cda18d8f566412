/* mhd_errors.c - libmicrohttpd's own error responses in OpenAI's shape.
 *
 * libmicrohttpd refuses some requests before the gateway sees them (headers
 * over the memory limit, malformed chunked encoding, a Content-Length past
 * 2^64, a chunk-size line longer than its read buffer, an HTTP version it
 * does not speak) and answers them with a static HTML page. Version 0.9.75
 * has no option to change those pages; it builds each of them with
 * MHD_create_response_from_buffer() and queues it with MHD_queue_response(),
 * both called through the library's PLT. The gateway's executable defines
 * both functions (the Makefile exports them), so libmicrohttpd's calls come
 * here: a response whose body is one of the library's HTML error pages gets
 * the matching OpenAI error JSON instead, with Content-Type
 * application/json; everything else goes straight to the real functions,
 * found with dlsym(RTLD_NEXT). The one page libmicrohttpd sends as a 500,
 * for a chunk-size line longer than its read buffer, is the client's fault
 * and goes out as a 413.
 *
 * If a libmicrohttpd build ever binds these calls inside the library, its
 * HTML comes back; tests/integration/hostile.test.mjs would then fail.
 */
#include "mhd_errors.h"
#include "request.h"
#include "util.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

typedef struct MHD_Response *(*create_fn)(size_t, void *, enum MHD_ResponseMemoryMode);
typedef enum MHD_Result (*queue_fn)(struct MHD_Connection *, unsigned int, struct MHD_Response *);

/* libmicrohttpd's pages, by a piece of their text, and what to say. */
struct page {
    const char *title; /* "<html><head><title>" + this */
    const char *also;  /* and this in the body, or NULL */
    const char *code;
    const char *message;
    char *json; /* made once */
    size_t len;
};

static struct page pages[] = {
    {"Request too big", NULL, "request_header_too_large",
     "The request line and headers are larger than the gateway accepts (max_header_bytes).", NULL,
     0},
    {"&quot;Host:&quot; header required", NULL, "invalid_request",
     "An HTTP/1.1 request needs a Host header.", NULL, 0},
    {"Request malformed", "chunked encoding", "invalid_request",
     "The request's chunked transfer encoding is malformed.", NULL, 0},
    {"Request malformed", "Content-Length", "invalid_request",
     "The request's Content-Length header is malformed.", NULL, 0},
    {"Request malformed", NULL, "invalid_request", "The HTTP request is malformed.", NULL, 0},
    {"Request content too large", "chunk size", "request_too_large",
     "A chunk of the request body is larger than the gateway accepts.", NULL, 0},
    {"Request content too large", NULL, "request_too_large",
     "The request's Content-Length is larger than the gateway accepts.", NULL, 0},
    {"Internal server error", NULL, "request_too_large",
     "The request could not be read: a chunk-size line (with its extensions) is longer than "
     "the gateway's read buffer.",
     NULL, 0},
    {"Requested HTTP version is not supported", NULL, "invalid_request",
     "This HTTP version is not supported; use HTTP/1.1.", NULL, 0},
    {"", NULL, "invalid_request", "The HTTP request could not be read.", NULL, 0},
};

#define PAGE_PREFIX "<html><head><title>"
#define PAGE_INTERNAL 7 /* pages[]: the one sent as a 500 */

static pthread_once_t resolved = PTHREAD_ONCE_INIT;
static pthread_once_t made = PTHREAD_ONCE_INIT;
static create_fn real_create;
static queue_fn real_queue;
static mhd_errors_json_fn error_json; /* mhd_errors_init's, for make_once */
static int pages_made;                /* atomic: pages[].json are set */
/* The translated 500 this thread just made, for MHD_queue_response. */
static __thread struct MHD_Response *internal_page;

static void resolve_once(void)
{
    real_create = (create_fn)dlsym(RTLD_NEXT, "MHD_create_response_from_buffer");
    real_queue = (queue_fn)dlsym(RTLD_NEXT, "MHD_queue_response");
    if (real_create == NULL || real_queue == NULL)
        sl_panic("mhd_errors: libmicrohttpd's functions not found: %s", dlerror());
}

static void make_once(void)
{
    for (size_t i = 0; i < ARRAY_LEN(pages); i++) {
        struct api_error e;

        api_error_set(&e, 400, "invalid_request_error", pages[i].code, NULL, "%s",
                      pages[i].message);
        pages[i].json = error_json(&e, &pages[i].len); /* kept for the process */
    }
    __atomic_store_n(&pages_made, 1, __ATOMIC_RELEASE);
}

void mhd_errors_init(mhd_errors_json_fn json)
{
    sl_assert(json != NULL);
    /* One thread calls this, the one that starts the front (again at each
     * start); the first call's json is the one make_once reads. */
    if (error_json == NULL)
        error_json = json;
    pthread_once(&resolved, resolve_once);
    pthread_once(&made, make_once);
}

/* Which page is this body, or -1 if it is none of libmicrohttpd's. */
static int page_of(const char *body, size_t size)
{
    size_t plen = sizeof(PAGE_PREFIX) - 1;

    if (size < plen || memcmp(body, PAGE_PREFIX, plen) != 0)
        return -1;
    for (size_t i = 0; i < ARRAY_LEN(pages); i++) {
        size_t tlen = strlen(pages[i].title);

        if (size >= plen + tlen && memcmp(body + plen, pages[i].title, tlen) == 0 &&
            (pages[i].also == NULL || memmem(body, size, pages[i].also, strlen(pages[i].also))))
            return (int)i;
    }
    return -1;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer,
                                                     enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r;
    int p;

    pthread_once(&resolved, resolve_once);
    /* Before the front made the pages (a libmicrohttpd server of a test's
     * own, say), the library's page goes out as it is. */
    p = mode == MHD_RESPMEM_PERSISTENT && buffer && __atomic_load_n(&pages_made, __ATOMIC_ACQUIRE)
            ? page_of(buffer, size)
            : -1;
    if (p < 0)
        return real_create(size, buffer, mode);
    r = real_create(pages[p].len, pages[p].json, MHD_RESPMEM_PERSISTENT);
    if (r && MHD_add_response_header(r, "Content-Type", "application/json") != MHD_YES) {
        MHD_destroy_response(r);
        return real_create(size, buffer, mode);
    }
    internal_page = p == PAGE_INTERNAL ? r : NULL;
    return r;
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
                                   struct MHD_Response *response)
{
    pthread_once(&resolved, resolve_once);
    if (response && response == internal_page && status_code == 500)
        status_code = 413; /* the client's line did not fit: not our fault */
    internal_page = NULL;
    return real_queue(connection, status_code, response);
}
