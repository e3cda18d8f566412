/* otel_export.c - the OTLP/HTTP exporter; see otel_export.h.
 *
 * The queue is a list of requests' encoded spans under one mutex. The
 * exporter thread wakes when a batch's worth (OTEL_BATCH_SPANS) is queued
 * or after OTEL_BATCH_DELAY_MS, takes up to a batch, wraps it in an
 * ExportTraceServiceRequest and POSTs it with a blocking libcurl easy
 * handle (kept across exports, so the connection is reused), the spans read
 * straight from the queued buffers. Only that thread waits on the
 * collector. Sent buffers are kept in a pool for new traces: a trace's
 * buffer is filled in an HTTP worker or the loop and let go here, and
 * malloc pays dearly for memory freed by another thread than the one that
 * took it. A failed export is not retried: its spans
 * are counted as failed, and the trouble is logged once per interval.
 */
#include "otel_export.h"
#include "caps.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "otlp.h"
#include "util.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OTEL_BATCH_DELAY_MS 1000 /* a quiet gateway's spans wait at most this */
#define OTEL_LOG_INTERVAL_US (10u * 1000000u)
#define OTEL_ERR_MAX 200

struct item {
    struct item *next;
    char *data;
    size_t len;
    size_t cap; /* allocated */
    int nspans;
};

/* Buffers and items of sent traces, for new ones. */
static struct {
    pthread_mutex_t mu;
    char *bufs[OTEL_POOL_BUFFERS];
    size_t nbufs;
    struct item *items;
    size_t nitems;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

void otel_export_buffer(struct otlp *w)
{
    char *data = NULL;

    pthread_mutex_lock(&pool.mu);
    if (pool.nbufs)
        data = pool.bufs[--pool.nbufs];
    pthread_mutex_unlock(&pool.mu);
    if (data)
        otlp_init_with(w, OTEL_TRACE_MAX_BYTES, data, OTEL_TRACE_RESERVE);
    else
        otlp_init_sized(w, OTEL_TRACE_MAX_BYTES, OTEL_TRACE_RESERVE);
}

static struct item *item_get(void)
{
    struct item *it;

    pthread_mutex_lock(&pool.mu);
    it = pool.items;
    if (it) {
        pool.items = it->next;
        pool.nitems--;
    }
    pthread_mutex_unlock(&pool.mu);
    return it ? it : xmalloc(sizeof(*it));
}

/* A sent (or dropped) item and its buffer go back to the pool, or are
 * freed when it is full or the buffer grew past the usual size. */
static void item_put(struct item *it)
{
    pthread_mutex_lock(&pool.mu);
    if (it->data && it->cap == OTEL_TRACE_RESERVE && pool.nbufs < OTEL_POOL_BUFFERS) {
        pool.bufs[pool.nbufs++] = it->data;
        it->data = NULL;
    }
    if (pool.nitems < OTEL_POOL_BUFFERS) {
        free(it->data);
        it->data = NULL;
        it->next = pool.items;
        pool.items = it;
        pool.nitems++;
        it = NULL;
    }
    pthread_mutex_unlock(&pool.mu);
    if (it) {
        free(it->data);
        free(it);
    }
}

static void pool_free(void)
{
    pthread_mutex_lock(&pool.mu);
    while (pool.nbufs)
        free(pool.bufs[--pool.nbufs]);
    while (pool.items) {
        struct item *it = pool.items;

        pool.items = it->next;
        free(it);
    }
    pool.nitems = 0;
    pthread_mutex_unlock(&pool.mu);
}

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* more than a batch is queued, or stop */
    struct item *head, **tail;
    uint64_t qspans, qbytes;
    int running, stop;
    pthread_t thread;
    /* totals (atomic) */
    uint64_t exported, dropped, failed, too_large, exports;
    /* since the last log line: the exporter thread's only */
    uint64_t logged_dropped, logged_failed, logged_too_large;
    uint64_t last_log_us;
    char last_err[OTEL_ERR_MAX];
} q = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .tail = &q.head,
};

static pthread_once_t cv_once = PTHREAD_ONCE_INIT;

static void cv_init(void)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&q.cv, &a);
    pthread_condattr_destroy(&a);
}

static void count(uint64_t *total, const char *result, uint64_t n)
{
    __atomic_add_fetch(total, n, __ATOMIC_RELAXED);
    metrics_otel_spans(result, n);
}

void otel_export_drop_too_large(int nspans)
{
    count(&q.too_large, "too_large", (uint64_t)nspans);
}

static void *export_main(void *arg);

void otel_export_start(void)
{
    pthread_once(&cv_once, cv_init);
    pthread_mutex_lock(&q.mu);
    if (!q.running && !q.stop) {
        if (pthread_create(&q.thread, NULL, export_main, NULL) != 0)
            sl_panic("pthread_create failed");
        q.running = 1;
    }
    pthread_mutex_unlock(&q.mu);
}

void otel_export_push(struct otlp *w, int nspans, long max_queue)
{
    struct item *it;
    size_t len = w->b.len;
    int wake;

    otel_export_start(); /* a no-op but for the first trace */
    it = item_get();
    it->next = NULL;
    it->data = w->b.data;
    it->len = len;
    it->cap = w->b.cap;
    it->nspans = nspans;
    buf_init(&w->b, 0); /* the storage is the item's now */
    pthread_mutex_lock(&q.mu);
    if (q.stop || q.qspans + (uint64_t)nspans > (uint64_t)max_queue ||
        q.qbytes + len > OTEL_QUEUE_MAX_BYTES) {
        pthread_mutex_unlock(&q.mu);
        item_put(it);
        count(&q.dropped, "dropped", (uint64_t)nspans);
        return;
    }
    *q.tail = it;
    q.tail = &it->next;
    q.qspans += (uint64_t)nspans;
    q.qbytes += len;
    /* Wake the exporter once, when a whole batch is waiting. */
    wake = q.qspans >= OTEL_BATCH_SPANS && q.qspans - (uint64_t)nspans < OTEL_BATCH_SPANS;
    pthread_mutex_unlock(&q.mu);
    if (wake)
        pthread_cond_signal(&q.cv);
}

void otel_export_stats(struct otel_export_stats *out)
{
    out->exported = __atomic_load_n(&q.exported, __ATOMIC_RELAXED);
    out->dropped = __atomic_load_n(&q.dropped, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&q.failed, __ATOMIC_RELAXED);
    out->too_large = __atomic_load_n(&q.too_large, __ATOMIC_RELAXED);
    out->exports = __atomic_load_n(&q.exports, __ATOMIC_RELAXED);
    pthread_mutex_lock(&q.mu);
    out->queued = q.qspans;
    pthread_mutex_unlock(&q.mu);
}

char *otel_export_head(const char *service, size_t spans_len, size_t *len)
{
    struct otlp head, w;
    size_t res_len, scope_len, ss_len, rs_len, mark;

    /* The resource and the scope are small: encode them apart, so that the
     * sizes of the enclosing messages are known before the spans. */
    otlp_init(&head, 64u << 10);
    mark = otlp_open(&head, OTLP_RS_RESOURCE);
    otlp_attr_str(&head, OTLP_RES_ATTRIBUTES, "service.name", service, OTEL_ATTR_MAX_BYTES);
    otlp_attr_str(&head, OTLP_RES_ATTRIBUTES, "service.version", SLUICE_VERSION,
                  OTEL_ATTR_MAX_BYTES);
    otlp_attr_str(&head, OTLP_RES_ATTRIBUTES, "telemetry.sdk.name", "sluice", OTEL_ATTR_MAX_BYTES);
    otlp_attr_str(&head, OTLP_RES_ATTRIBUTES, "telemetry.sdk.language", "c", OTEL_ATTR_MAX_BYTES);
    otlp_attr_str(&head, OTLP_RES_ATTRIBUTES, "telemetry.sdk.version", SLUICE_VERSION,
                  OTEL_ATTR_MAX_BYTES);
    /* Phoenix files spans under this project. */
    otlp_attr_str(&head, OTLP_RES_ATTRIBUTES, "openinference.project.name", service,
                  OTEL_ATTR_MAX_BYTES);
    otlp_close(&head, mark);
    res_len = head.b.len;
    mark = otlp_open(&head, OTLP_SS_SCOPE);
    otlp_bytes(&head, OTLP_SCOPE_NAME, "sluice", 6);
    otlp_bytes(&head, OTLP_SCOPE_VERSION, SLUICE_VERSION, strlen(SLUICE_VERSION));
    otlp_close(&head, mark);
    scope_len = head.b.len - res_len;
    ss_len = scope_len + spans_len;
    rs_len = res_len + otlp_len_header_size(OTLP_RS_SCOPE_SPANS, ss_len) + ss_len;
    otlp_init(&w, 64u << 10);
    otlp_len_header(&w, OTLP_REQ_RESOURCE_SPANS, rs_len);
    otlp_raw(&w, head.b.data ? head.b.data : "", res_len);
    otlp_len_header(&w, OTLP_RS_SCOPE_SPANS, ss_len);
    otlp_raw(&w, head.b.data ? head.b.data + res_len : "", scope_len);
    if (otlp_failed(&head) || otlp_failed(&w) || w.b.len + spans_len > OTEL_EXPORT_MAX_BYTES) {
        otlp_free(&head);
        otlp_free(&w);
        return NULL;
    }
    otlp_free(&head);
    *len = w.b.len;
    return buf_steal(&w.b, NULL);
}

char *otel_export_body(const char *service, const char *const *parts, const size_t *lens,
                       size_t nparts, size_t *len)
{
    size_t spans_len = 0, hlen;
    char *head, *body;

    for (size_t i = 0; i < nparts; i++)
        spans_len += lens[i];
    head = otel_export_head(service, spans_len, &hlen);
    if (head == NULL)
        return NULL;
    body = xmalloc(hlen + spans_len + 1);
    memcpy(body, head, hlen);
    *len = hlen;
    for (size_t i = 0; i < nparts; i++) {
        memcpy(body + *len, parts[i], lens[i]);
        *len += lens[i];
    }
    free(head);
    return body;
}

static size_t discard_cb(char *p, size_t size, size_t n, void *arg)
{
    UNUSED(p);
    UNUSED(arg);
    return size * n;
}

/* The body, read by curl piece by piece: the head, then each item's spans,
 * with no copy made of the batch. */
struct body_reader {
    const char *head;
    size_t head_len, off;
    struct item *it;
};

static size_t read_cb(char *dst, size_t size, size_t n, void *arg)
{
    struct body_reader *r = arg;
    size_t want = size * n, done = 0;

    while (done < want) {
        const char *src;
        size_t len, k;

        if (r->head) {
            src = r->head;
            len = r->head_len;
        } else if (r->it) {
            src = r->it->data;
            len = r->it->len;
        } else {
            break;
        }
        k = len - r->off < want - done ? len - r->off : want - done;
        memcpy(dst + done, src + r->off, k);
        done += k;
        r->off += k;
        if (r->off == len) {
            r->off = 0;
            if (r->head)
                r->head = NULL;
            else
                r->it = r->it->next;
        }
    }
    return done;
}

/* POST the head and the items' spans to the collector. Returns 0, or -1
 * with why in err. */
static int post(CURL **curl, const struct otel_conf *oc, const char *head, size_t head_len,
                struct item *items, size_t spans_len, char *err)
{
    struct curl_slist *h = NULL, *nh;
    char *url = xasprintf("%s/v1/traces", oc->endpoint);
    char ebuf[CURL_ERROR_SIZE] = "";
    struct body_reader rd = {head, head_len, 0, items};
    long status = 0;
    CURLcode rc;

    if (*curl == NULL && (*curl = curl_easy_init()) == NULL)
        sl_panic("curl_easy_init failed");
    curl_easy_reset(*curl);
    /* No "Expect: 100-continue": the collector gets the body at once. */
    nh = curl_slist_append(h, "Content-Type: application/x-protobuf");
    if (nh)
        nh = curl_slist_append(h = nh, "Expect:");
    for (size_t i = 0; nh && i < oc->nheaders; i++) {
        char *line = xasprintf("%s: %s", oc->headers[i].name, oc->headers[i].value);

        h = nh;
        nh = curl_slist_append(h, line);
        explicit_bzero(line, strlen(line));
        free(line);
    }
    if (nh == NULL)
        sl_panic("curl_slist_append: out of memory");
    h = nh;
    curl_easy_setopt(*curl, CURLOPT_URL, url);
    curl_easy_setopt(*curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(*curl, CURLOPT_POST, 1L);
    curl_easy_setopt(*curl, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(*curl, CURLOPT_READDATA, &rd);
    curl_easy_setopt(*curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(head_len + spans_len));
    curl_easy_setopt(*curl, CURLOPT_TIMEOUT_MS, oc->timeout_ms);
    curl_easy_setopt(*curl, CURLOPT_CONNECTTIMEOUT_MS, oc->timeout_ms);
    curl_easy_setopt(*curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(*curl, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(*curl, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(*curl, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(*curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(*curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    free(url);
    if (rc != CURLE_OK) {
        const char *why = ebuf[0] ? ebuf : curl_easy_strerror(rc);

        snprintf(err, OTEL_ERR_MAX, "%.*s", utf8_prec(why, OTEL_ERR_MAX - 1), why);
        return -1;
    }
    if (status < 200 || status >= 300) {
        snprintf(err, OTEL_ERR_MAX, "HTTP %ld", status);
        return -1;
    }
    return 0;
}

/* Send a batch (taken off the queue) and let it go. Returns 0, or -1 when
 * the collector did not take it. */
static int send_batch(CURL **curl, struct item *items)
{
    struct config *cfg = config_current();
    const struct otel_conf *oc = cfg ? &cfg->otel : NULL;
    uint64_t n = 0;
    size_t spans_len = 0, hlen = 0;
    char *head = NULL;
    int r = -1;

    for (struct item *it = items; it; it = it->next) {
        n += (uint64_t)it->nspans;
        spans_len += it->len;
    }
    if (oc == NULL || oc->endpoint == NULL) {
        /* Tracing was turned off by a reload (or the process is ending):
         * the queue is let go. */
        count(&q.dropped, "dropped", n);
    } else if ((head = otel_export_head(oc->service_name, spans_len, &hlen)) == NULL) {
        count(&q.too_large, "too_large", n);
    } else {
        char err[OTEL_ERR_MAX];

        __atomic_add_fetch(&q.exports, 1, __ATOMIC_RELAXED);
        if (post(curl, oc, head, hlen, items, spans_len, err) == 0) {
            count(&q.exported, "exported", n);
            r = 0;
        } else {
            count(&q.failed, "failed", n);
            snprintf(q.last_err, sizeof(q.last_err), "%.100s: %.90s", oc->endpoint, err);
        }
    }
    free(head);
    for (struct item *it = items, *next; it; it = next) {
        next = it->next;
        item_put(it);
    }
    if (cfg)
        config_unref(cfg);
    return r;
}

/* At most one line per interval about spans that did not reach the
 * collector. */
static void log_interval(void)
{
    uint64_t now = now_us(), d, f, t;

    if (now - q.last_log_us < OTEL_LOG_INTERVAL_US)
        return;
    q.last_log_us = now;
    d = __atomic_load_n(&q.dropped, __ATOMIC_RELAXED);
    f = __atomic_load_n(&q.failed, __ATOMIC_RELAXED);
    t = __atomic_load_n(&q.too_large, __ATOMIC_RELAXED);
    if (d == q.logged_dropped && f == q.logged_failed && t == q.logged_too_large)
        return;
    log_msg(LOG_WARN,
            "otel: in the last %us, %llu spans dropped (queue full), %llu lost in failed "
            "exports%s%s, %llu in traces over the size cap",
            OTEL_LOG_INTERVAL_US / 1000000u, (unsigned long long)(d - q.logged_dropped),
            (unsigned long long)(f - q.logged_failed), f != q.logged_failed ? " to " : "",
            f != q.logged_failed ? q.last_err : "", (unsigned long long)(t - q.logged_too_large));
    q.logged_dropped = d;
    q.logged_failed = f;
    q.logged_too_large = t;
}

/* Take up to a batch off the queue. Called with q.mu held. */
static struct item *take_batch(void)
{
    struct item *head = q.head, **pp = &q.head;
    uint64_t spans = 0, bytes = 0;

    while (*pp && (spans == 0 || (spans + (uint64_t)(*pp)->nspans <= OTEL_BATCH_SPANS &&
                                  bytes + (*pp)->len <= OTEL_EXPORT_MAX_BYTES / 2))) {
        spans += (uint64_t)(*pp)->nspans;
        bytes += (*pp)->len;
        pp = &(*pp)->next;
    }
    q.head = *pp;
    *pp = NULL;
    if (q.head == NULL)
        q.tail = &q.head;
    q.qspans -= spans;
    q.qbytes -= bytes;
    return head;
}

static void *export_main(void *arg)
{
    CURL *curl = NULL;

    UNUSED(arg);
    pthread_setname_np(pthread_self(), "otel-export");
    q.last_log_us = now_us();
    pthread_mutex_lock(&q.mu);
    for (;;) {
        struct item *batch;

        if (!q.stop && q.qspans < OTEL_BATCH_SPANS) {
            struct timespec ts;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += (OTEL_BATCH_DELAY_MS % 1000) * 1000000L;
            ts.tv_sec += OTEL_BATCH_DELAY_MS / 1000 + ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&q.cv, &q.mu, &ts);
        }
        if (q.head == NULL) {
            if (q.stop)
                break;
            pthread_mutex_unlock(&q.mu);
            log_interval();
            pthread_mutex_lock(&q.mu);
            continue;
        }
        batch = take_batch();
        pthread_mutex_unlock(&q.mu);
        if (send_batch(&curl, batch) < 0 && __atomic_load_n(&q.stop, __ATOMIC_RELAXED)) {
            /* Shutting down with a collector that fails: one try is all the
             * exit waits for; the rest is dropped. */
            pthread_mutex_lock(&q.mu);
            while (q.head) {
                struct item *it = q.head;

                q.head = it->next;
                count(&q.dropped, "dropped", (uint64_t)it->nspans);
                item_put(it);
            }
            q.tail = &q.head;
            q.qspans = q.qbytes = 0;
            pthread_mutex_unlock(&q.mu);
        }
        log_interval();
        pthread_mutex_lock(&q.mu);
    }
    pthread_mutex_unlock(&q.mu);
    if (curl)
        curl_easy_cleanup(curl);
    q.last_log_us = 0; /* say what was lost at the very end */
    log_interval();
    return NULL;
}

void otel_export_stop(void)
{
    int running;

    pthread_once(&cv_once, cv_init);
    pthread_mutex_lock(&q.mu);
    q.stop = 1;
    running = q.running;
    pthread_mutex_unlock(&q.mu);
    pthread_cond_signal(&q.cv);
    if (running)
        pthread_join(q.thread, NULL);
    pthread_mutex_lock(&q.mu);
    q.running = 0;
    pthread_mutex_unlock(&q.mu);
    pool_free();
}
