/* metrics.c - the Prometheus registry and its text exposition (format 0.0.4).
 *
 * Hot path. metrics_request() runs once per request on every worker, so it
 * takes no lock, makes no allocation once its series exist, and writes no
 * cache line that another thread writes:
 *
 * - A family's series live in a fixed-size chained hash table that is read
 *   without a lock. Series are only ever added (at the head of a chain, with
 *   a release store, under the family's mutex) and never removed before
 *   metrics_free(), so a reader that loads a head with acquire sees whole,
 *   immutable nodes.
 * - A series' values are not in the series. It owns a range of "cells"
 *   (1 for a counter, 17 finite buckets + Inf + sum for a histogram), and
 *   every thread has its own shard: a lazily filled array of chunks of
 *   cells. A thread adds into its own cells with a relaxed load and store
 *   (plain moves on x86-64, no lock prefix, no line bouncing between cores);
 *   metrics_render() sums the cells of every shard. With atomic counters
 *   shared by all workers instead, bench/metrics.c measured ~600 ns a call
 *   on 2 threads (each request moves ~15 cache lines between the cores)
 *   against ~140 ns here, the same as on one thread.
 * - Histogram buckets are stored per bucket, not cumulative, so an
 *   observation touches one bucket and the sum; _count is the sum of the
 *   buckets at render time, so it always equals the +Inf bucket. The sum is
 *   kept in integer microseconds, which is exact and needs no float CAS.
 *
 * A thread's shard is handed to the next new thread when it ends (pthread key
 * destructor), so shards number at most the threads alive at once and the
 * counts of a finished thread are kept.
 */
#include "metrics.h"
#include "otlp.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_kind {
    KIND_COUNTER,   /* integer cells */
    KIND_COUNTER_F, /* double cells (USD) */
    KIND_GAUGE,     /* one value in the series itself: set, not added */
    KIND_HISTOGRAM,
};

enum family_id {
    FAM_REQUESTS,
    FAM_REQUEST_DURATION,
    FAM_UPSTREAM_DURATION,
    FAM_OVERHEAD,
    FAM_TTFT,
    FAM_TOKENS,
    FAM_COST,
    FAM_STAGES,
    FAM_SAVED,
    FAM_OVERSPENT,
    FAM_CACHE_LOOKUPS,
    FAM_RETRIES,
    FAM_BREAKER,
    FAM_LIMITED,
    FAM_STAGE_SCORE,
    FAM_STAGE_SCORED,
    FAM_CACHE_SAVED,
    FAM_OTEL_SPANS,
    FAM_REDIS_ERRORS, /* last: tests/unit/test_metrics.c cuts inside it */
    FAM_COUNT
};

#define MAX_LABELS 4

struct family_def {
    const char *name;
    const char *help;
    enum metric_kind kind;
    int nlabels;
    const char *labels[MAX_LABELS];
};

static const struct family_def family_defs[FAM_COUNT] = {
    [FAM_REQUESTS] = {"sluice_requests_total",
                      "Client requests answered, by route, model, HTTP status and cache status.",
                      KIND_COUNTER,
                      4,
                      {"route", "model", "status", "cache"}},
    [FAM_REQUEST_DURATION] = {"sluice_request_duration_seconds",
                              "Time from request received to response complete, by route.",
                              KIND_HISTOGRAM,
                              1,
                              {"route"}},
    [FAM_UPSTREAM_DURATION] = {"sluice_upstream_duration_seconds",
                               "Time spent in upstream provider calls per request, by provider.",
                               KIND_HISTOGRAM,
                               1,
                               {"provider"}},
    [FAM_OVERHEAD] = {"sluice_gateway_overhead_seconds",
                      "Request latency not spent upstream (the gateway's own time), by route.",
                      KIND_HISTOGRAM,
                      1,
                      {"route"}},
    [FAM_TTFT] = {"sluice_ttft_seconds",
                  "Time to first token of streamed requests, by route.",
                  KIND_HISTOGRAM,
                  1,
                  {"route"}},
    [FAM_TOKENS] = {"sluice_tokens_total",
                    "Tokens billed by upstream providers, by route, model, client key and kind.",
                    KIND_COUNTER,
                    4,
                    {"route", "model", "key", "kind"}},
    [FAM_COST] = {"sluice_cost_usd_total",
                  "Upstream cost in US dollars, by route, model and client key.",
                  KIND_COUNTER_F,
                  3,
                  {"route", "model", "key"}},
    [FAM_STAGES] = {"sluice_cascade_stage_decisions_total",
                    "Cascade stage outcomes, by route, stage index, model and decision.",
                    KIND_COUNTER,
                    4,
                    {"route", "stage", "model", "decision"}},
    [FAM_SAVED] = {"sluice_cascade_saved_usd_total",
                   "US dollars cascades saved against calling the final stage alone.",
                   KIND_COUNTER_F,
                   1,
                   {"route"}},
    [FAM_OVERSPENT] = {"sluice_cascade_overspent_usd_total",
                       "US dollars cascades cost beyond calling the final stage alone (when "
                       "they escalated to it). Net saving = saved - overspent.",
                       KIND_COUNTER_F,
                       1,
                       {"route"}},
    [FAM_CACHE_LOOKUPS] = {"sluice_cache_lookups_total",
                           "Response cache lookups, by result (hit, miss, error).",
                           KIND_COUNTER,
                           1,
                           {"result"}},
    [FAM_RETRIES] = {"sluice_upstream_retries_total",
                     "Upstream calls retried, by provider.",
                     KIND_COUNTER,
                     1,
                     {"provider"}},
    [FAM_BREAKER] = {"sluice_circuit_breaker_state",
                     "Circuit breaker state by provider: 0 closed, 1 half-open, 2 open.",
                     KIND_GAUGE,
                     1,
                     {"provider"}},
    [FAM_LIMITED] = {"sluice_limited_total",
                     "Requests refused or cut by a limit, by client key and limit (rpm, tpm, "
                     "budget, inflight, stream_memory, client_header_timeout, "
                     "client_body_timeout).",
                     KIND_COUNTER,
                     2,
                     {"key", "limit"}},
    [FAM_REDIS_ERRORS] = {"sluice_redis_errors_total",
                          "Redis commands that failed or timed out.",
                          KIND_COUNTER,
                          0,
                          {NULL}},
    [FAM_STAGE_SCORE] = {"sluice_cascade_stage_score_total",
                         "Sum of the scores cascade stages gave, by route, stage index and "
                         "model; divided by sluice_cascade_stage_scored_total, the mean score.",
                         KIND_COUNTER_F,
                         3,
                         {"route", "stage", "model"}},
    [FAM_STAGE_SCORED] = {"sluice_cascade_stage_scored_total",
                          "Cascade stage verdicts that carried a score, by route, stage index "
                          "and model.",
                          KIND_COUNTER,
                          3,
                          {"route", "stage", "model"}},
    [FAM_CACHE_SAVED] = {"sluice_cache_saved_usd_total",
                         "US dollars cache hits saved: what their answers cost when made, by "
                         "route.",
                         KIND_COUNTER_F,
                         1,
                         {"route"}},
    [FAM_OTEL_SPANS] = {"sluice_otel_spans_total",
                        "Trace spans by fate: exported, dropped (queue full), failed (the "
                        "export failed), too_large (a trace over its size cap).",
                        KIND_COUNTER,
                        1,
                        {"result"}},
};

/* Latency bucket bounds in microseconds, so a bucket is picked with integer
 * compares. LLM calls take ms to minutes; the gateway's overhead, µs to ms. */
static const uint64_t bucket_us[] = {500,     1000,     2500,     5000,     10000,    25000,
                                     50000,   100000,   250000,   500000,   1000000,  2500000,
                                     5000000, 10000000, 30000000, 60000000, 120000000};
static const char *const bucket_le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                        "0.05",   "0.1",   "0.25",   "0.5",   "1",    "2.5",
                                        "5",      "10",    "30",     "60",    "120",  "+Inf"};
#define NBOUNDS ((int)ARRAY_LEN(bucket_us))
#define NBUCKETS (NBOUNDS + 1)    /* the finite ones and +Inf */
#define HIST_CELLS (NBUCKETS + 1) /* and the sum, in µs */
_Static_assert(ARRAY_LEN(bucket_le) == NBUCKETS, "a le string per bucket");

/* Per thread, cells come in chunks of CHUNK; a series never straddles two. */
#define CHUNK_SHIFT 10
#define CHUNK (1u << CHUNK_SHIFT)
#define CHUNK_MASK (CHUNK - 1)
#define HEADS 1024 /* hash chains per family: ~10 deep at the series cap */
#define OVERFLOW_LABEL "_overflow"

/* One label set of a family. Immutable once published but for `gauge`. */
struct series {
    struct series *next;     /* hash chain */
    struct series *all_next; /* every series of the family, newest first */
    uint64_t hash;
    uint32_t cell;  /* first cell in each shard (not for gauges) */
    uint64_t gauge; /* KIND_GAUGE: the value's bits, stored atomically */
    uint16_t lens[MAX_LABELS];
    const char *labels[MAX_LABELS]; /* NUL-terminated, in the same block */
};

struct family {
    const struct family_def *def;
    pthread_mutex_t lock; /* serialises adding series */
    unsigned nseries;     /* not counting the overflow series */
    struct series *overflow;
    struct series *all;
    struct series *heads[HEADS];
};

/* One thread's cells. chunks[i] is written only by the owning thread (with
 * release) and read by renderers (with acquire). */
struct shard {
    struct shard *next;  /* every shard, newest first: read lock-free */
    struct shard *spare; /* the spare list, under registry.lock */
    uint64_t *chunks[];  /* registry.nchunks of them */
};

struct gauge {
    char *name;
    char *help;
    metrics_gauge_cb fn;
    void *arg;
};

static struct {
    int on;
    struct family fams[FAM_COUNT];
    pthread_mutex_t lock; /* cells and shards */
    uint32_t next_cell;
    uint32_t nchunks;
    struct shard *shards;
    struct shard *spares; /* left by threads that ended */
    pthread_key_t key;
    pthread_mutex_t gauge_lock;
    struct gauge *gauges;
    size_t ngauges;
} registry;

/* A label value prepared once per call: its bytes, length and hash. */
struct label {
    const char *s;
    size_t len;
    uint64_t hash;
};

/* Bumped by every metrics_init, so a thread's cached shard from an earlier
 * init (unit tests init and free many times) is not used. */
static unsigned long registry_gen;
static __thread struct shard *tls_shard;
static __thread unsigned long tls_gen;

/* Label values the hot path uses as constants, hashed once by metrics_init. */
enum { CONST_PROMPT, CONST_COMPLETION, CONST_HIT, CONST_MISS, CONST_ERROR, CONST_COUNT };
static const char *const const_values[CONST_COUNT] = {"prompt", "completion", "hit", "miss",
                                                      "error"};
static struct label const_labels[CONST_COUNT];

/* The renderer's cap; a variable so the unit test can exercise it. */
static size_t render_max = METRICS_RENDER_MAX;

/* ---- hashing and labels ---- */

static uint64_t hash_mix(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

static inline uint64_t load64(const char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t load32(const char *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

/* Hash n bytes a word at a time (the values are short config names). The
 * last word overlaps the one before rather than loading byte by byte, as
 * wyhash does; the hash only spreads chains, the labels are compared. */
static inline uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;
    size_t i = 0;

    if (n >= 8) {
        for (; i + 8 < n; i += 8)
            h = hash_mix((h ^ load64(s + i)) * 0xff51afd7ed558ccdULL);
        w = load64(s + n - 8);
    } else if (n >= 4) {
        w = load32(s) << 32 | load32(s + n - 4);
    } else if (n > 0) {
        w = (uint64_t)(unsigned char)s[0] << 16 | (uint64_t)(unsigned char)s[n >> 1] << 8 |
            (unsigned char)s[n - 1];
    } else {
        w = 0;
    }
    return hash_mix((h ^ w) * 0xc4ceb9fe1a85ec53ULL);
}

/* memcmp(a, b, n) == 0 for short n, inline: memcmp through the PLT cost
 * more than the compare. */
static inline int bytes_equal(const char *a, const char *b, size_t n)
{
    size_t i = 0;

    if (n >= 8) {
        for (; i + 8 < n; i += 8)
            if (load64(a + i) != load64(b + i))
                return 0;
        return load64(a + n - 8) == load64(b + n - 8);
    }
    if (n >= 4)
        return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
    for (; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* Borrow s (NULL is ""); values longer than METRICS_LABEL_MAX are cut. */
static void label_make(struct label *l, const char *s)
{
    l->s = s ? s : "";
    l->len = strnlen(l->s, METRICS_LABEL_MAX);
    l->hash = hash_bytes(l->s, l->len);
}

/* A multiplier per position, so (a, b) and (b, a) differ; the products are
 * independent, so the CPU does them in parallel. */
static inline uint64_t labels_hash(enum family_id fam, const struct label *l, int n)
{
    static const uint64_t k[MAX_LABELS] = {0xff51afd7ed558ccdULL, 0xc4ceb9fe1a85ec53ULL,
                                           0xd6e8feb86659fd93ULL, 0x9fb21c651e98df25ULL};
    uint64_t h = (uint64_t)(fam + 1) * 0x9e3779b97f4a7c15ULL;

    for (int i = 0; i < n; i++)
        h += l[i].hash * k[i];
    return hash_mix(h);
}

static int labels_equal(const struct series *s, const struct label *l, int n)
{
    for (int i = 0; i < n; i++)
        if (s->lens[i] != l[i].len || !bytes_equal(s->labels[i], l[i].s, l[i].len))
            return 0;
    return 1;
}

/* Decimal of v into out (at least 12 bytes); returns out. No printf: it is
 * on the hot path. */
static const char *int_label(int v, char *out)
{
    char tmp[12];
    unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
    size_t n = 0, i = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[i++] = '-';
    while (n)
        out[i++] = tmp[--n];
    out[i] = '\0';
    return out;
}

/* ---- cells and shards ---- */

/* Reserve n consecutive cells in one chunk. Caller holds no lock. */
static uint32_t cells_alloc(unsigned n)
{
    uint32_t base;

    pthread_mutex_lock(&registry.lock);
    if ((registry.next_cell & CHUNK_MASK) + n > CHUNK)
        registry.next_cell = (registry.next_cell | CHUNK_MASK) + 1;
    base = registry.next_cell;
    registry.next_cell += n;
    sl_assert(registry.next_cell <= registry.nchunks * CHUNK);
    pthread_mutex_unlock(&registry.lock);
    return base;
}

/* The pthread key destructor: the thread is ending; its shard (and the
 * counts in it) goes to the next thread that needs one. */
static void shard_release_cb(void *p)
{
    struct shard *sh = p;

    pthread_mutex_lock(&registry.lock);
    sh->spare = registry.spares;
    registry.spares = sh;
    pthread_mutex_unlock(&registry.lock);
    tls_shard = NULL;
}

/* Give the calling thread a shard: a spare one, or a new one. */
static struct shard *shard_attach(void)
{
    struct shard *sh;

    pthread_mutex_lock(&registry.lock);
    sh = registry.spares;
    if (sh) {
        registry.spares = sh->spare;
    } else {
        sh = xcalloc(1, sizeof(*sh) + registry.nchunks * sizeof(sh->chunks[0]));
        sh->next = registry.shards;
        __atomic_store_n(&registry.shards, sh, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&registry.lock);
    pthread_setspecific(registry.key, sh);
    tls_shard = sh;
    tls_gen = registry_gen;
    return sh;
}

static inline struct shard *shard_self(void)
{
    if (__builtin_expect(tls_shard != NULL && tls_gen == registry_gen, 1))
        return tls_shard;
    return shard_attach();
}

/* The calling thread's cells of s, allocating their chunk the first time. */
static inline uint64_t *series_cells(struct shard *sh, const struct series *s)
{
    uint32_t i = s->cell >> CHUNK_SHIFT;
    uint64_t *c = sh->chunks[i];

    if (__builtin_expect(c == NULL, 0)) {
        c = xcalloc(CHUNK, sizeof(*c));
        __atomic_store_n(&sh->chunks[i], c, __ATOMIC_RELEASE);
    }
    return c + (s->cell & CHUNK_MASK);
}

/* Only the owning thread writes a cell, so no read-modify-write is needed;
 * the atomics only make the renderer's concurrent read well-defined. */
static inline void cell_add(uint64_t *c, uint64_t v)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline void cell_add_double(uint64_t *c, double v)
{
    uint64_t bits = __atomic_load_n(c, __ATOMIC_RELAXED);
    double d;

    memcpy(&d, &bits, sizeof(d));
    d += v;
    memcpy(&bits, &d, sizeof(d));
    __atomic_store_n(c, bits, __ATOMIC_RELAXED);
}

/* ---- series ---- */

static struct series *series_find(struct family *f, const struct label *l, uint64_t hash)
{
    struct series *s = __atomic_load_n(&f->heads[hash & (HEADS - 1)], __ATOMIC_ACQUIRE);

    for (; s; s = s->next)
        if (s->hash == hash && labels_equal(s, l, f->def->nlabels))
            return s;
    return NULL;
}

/* Make a series for l and publish it. Caller holds f->lock. */
static struct series *series_new(struct family *f, const struct label *l, uint64_t hash)
{
    int n = f->def->nlabels;
    size_t size = sizeof(struct series);
    struct series *s;
    char *p;

    for (int i = 0; i < n; i++)
        size += l[i].len + 1;
    s = xcalloc(1, size);
    p = (char *)(s + 1);
    for (int i = 0; i < n; i++) {
        memcpy(p, l[i].s, l[i].len);
        p[l[i].len] = '\0';
        s->labels[i] = p;
        s->lens[i] = (uint16_t)l[i].len;
        p += l[i].len + 1;
    }
    s->hash = hash;
    if (f->def->kind == KIND_HISTOGRAM)
        s->cell = cells_alloc(HIST_CELLS);
    else if (f->def->kind != KIND_GAUGE)
        s->cell = cells_alloc(1);
    s->all_next = f->all;
    __atomic_store_n(&f->all, s, __ATOMIC_RELEASE);
    s->next = f->heads[hash & (HEADS - 1)];
    __atomic_store_n(&f->heads[hash & (HEADS - 1)], s, __ATOMIC_RELEASE);
    return s;
}

/* Slow path of series_get: add the series under the family's lock, or,
 * past the cap, return the family's overflow series. */
static struct series *series_add(struct family *f, const struct label *l, uint64_t hash)
{
    struct series *s;

    pthread_mutex_lock(&f->lock);
    s = series_find(f, l, hash); /* another thread may have added it */
    if (s == NULL && f->nseries < METRICS_MAX_SERIES) {
        s = series_new(f, l, hash);
        f->nseries++;
    } else if (s == NULL) {
        if (f->overflow == NULL) {
            struct label ov[MAX_LABELS];
            uint64_t h;

            for (int i = 0; i < MAX_LABELS; i++)
                label_make(&ov[i], OVERFLOW_LABEL);
            h = labels_hash((enum family_id)(f - registry.fams), ov, f->def->nlabels);
            /* A caller may have used "_overflow" itself: share that series. */
            f->overflow = series_find(f, ov, h);
            if (f->overflow == NULL)
                f->overflow = series_new(f, ov, h);
        }
        s = f->overflow;
    }
    pthread_mutex_unlock(&f->lock);
    return s;
}

/* The series of family fam for the label values l (borrowed), made if new.
 * Lock-free when it exists. */
static inline struct series *series_get(enum family_id fam, const struct label *l)
{
    struct family *f = &registry.fams[fam];
    uint64_t hash = labels_hash(fam, l, f->def->nlabels);
    struct series *s = series_find(f, l, hash);

    return s ? s : series_add(f, l, hash);
}

static inline void counter_add(struct shard *sh, enum family_id fam, const struct label *l,
                               uint64_t v)
{
    cell_add(series_cells(sh, series_get(fam, l)), v);
}

static inline void counter_add_double(struct shard *sh, enum family_id fam, const struct label *l,
                                      double v)
{
    cell_add_double(series_cells(sh, series_get(fam, l)), v);
}

static inline void histogram_observe(struct shard *sh, enum family_id fam, const struct label *l,
                                     uint64_t us)
{
    uint64_t *c = series_cells(sh, series_get(fam, l));
    int i = 0;

    while (i < NBOUNDS && us > bucket_us[i])
        i++;
    cell_add(&c[i], 1);
    cell_add(&c[NBUCKETS], us);
}

/* ---- recording ---- */

void metrics_request(const struct metrics_request *r)
{
    struct shard *sh;
    struct label route, model, key, l[4];
    char status[12];

    if (!registry.on)
        return;
    sh = shard_self();
    label_make(&route, r->route);
    label_make(&model, r->model);
    label_make(&key, r->key);

    l[0] = route;
    l[1] = model;
    label_make(&l[2], int_label(r->status, status));
    label_make(&l[3], r->cache);
    counter_add(sh, FAM_REQUESTS, l, 1);

    histogram_observe(sh, FAM_REQUEST_DURATION, &route, r->latency_us);
    histogram_observe(sh, FAM_OVERHEAD, &route,
                      r->latency_us > r->upstream_us ? r->latency_us - r->upstream_us : 0);
    /* A request that made no upstream call (a cache hit, a refusal) says
     * nothing about the provider's latency. */
    if (r->upstream_us > 0) {
        label_make(&l[0], r->provider);
        histogram_observe(sh, FAM_UPSTREAM_DURATION, l, r->upstream_us);
    }
    if (r->stream && r->ttft_us > 0)
        histogram_observe(sh, FAM_TTFT, &route, r->ttft_us);

    /* Token and cost series only for requests that used some, so refusals
     * and 404s do not make empty series. */
    l[0] = route;
    l[1] = model;
    l[2] = key;
    if (r->prompt_tokens > 0) {
        l[3] = const_labels[CONST_PROMPT];
        counter_add(sh, FAM_TOKENS, l, (uint64_t)r->prompt_tokens);
    }
    if (r->completion_tokens > 0) {
        l[3] = const_labels[CONST_COMPLETION];
        counter_add(sh, FAM_TOKENS, l, (uint64_t)r->completion_tokens);
    }
    if (r->cost_usd != 0 && isfinite(r->cost_usd))
        counter_add_double(sh, FAM_COST, l, r->cost_usd);

    if (r->cache == NULL)
        return;
    if (strcmp(r->cache, "HIT") == 0) {
        counter_add(sh, FAM_CACHE_LOOKUPS, &const_labels[CONST_HIT], 1);
        if (r->saved_usd > 0 && isfinite(r->saved_usd))
            counter_add_double(sh, FAM_CACHE_SAVED, &route, r->saved_usd);
    }
    else if (strcmp(r->cache, "MISS") == 0)
        counter_add(sh, FAM_CACHE_LOOKUPS, &const_labels[CONST_MISS], 1);
    else if (strcmp(r->cache, "ERROR") == 0)
        counter_add(sh, FAM_CACHE_LOOKUPS, &const_labels[CONST_ERROR], 1);
}

void metrics_stage(const char *route, int stage, const char *model, const char *decision)
{
    struct label l[4];
    char num[12];

    if (!registry.on)
        return;
    label_make(&l[0], route);
    label_make(&l[1], int_label(stage, num));
    label_make(&l[2], model);
    label_make(&l[3], decision);
    counter_add(shard_self(), FAM_STAGES, l, 1);
}

void metrics_stage_score(const char *route, int stage, const char *model, double score)
{
    struct shard *sh;
    struct label l[3];
    char num[12];

    if (!registry.on || !isfinite(score))
        return;
    sh = shard_self();
    label_make(&l[0], route);
    label_make(&l[1], int_label(stage, num));
    label_make(&l[2], model);
    counter_add_double(sh, FAM_STAGE_SCORE, l, score);
    counter_add(sh, FAM_STAGE_SCORED, l, 1);
}

void metrics_otel_spans(const char *result, uint64_t n)
{
    struct label l;

    if (!registry.on)
        return;
    label_make(&l, result);
    counter_add(shard_self(), FAM_OTEL_SPANS, &l, n);
}

void metrics_saved(const char *route, double usd)
{
    struct label l;

    if (!registry.on || !isfinite(usd))
        return;
    label_make(&l, route);
    /* A counter never goes down: a loss is counted apart. */
    if (usd >= 0)
        counter_add_double(shard_self(), FAM_SAVED, &l, usd);
    else
        counter_add_double(shard_self(), FAM_OVERSPENT, &l, -usd);
}

void metrics_retry(const char *provider)
{
    struct label l;

    if (!registry.on)
        return;
    label_make(&l, provider);
    counter_add(shard_self(), FAM_RETRIES, &l, 1);
}

void metrics_breaker(const char *provider, int state)
{
    struct label l;
    double v = state;
    uint64_t bits;

    if (!registry.on)
        return;
    label_make(&l, provider);
    memcpy(&bits, &v, sizeof(bits));
    __atomic_store_n(&series_get(FAM_BREAKER, &l)->gauge, bits, __ATOMIC_RELAXED);
}

void metrics_limited(const char *key, const char *limit)
{
    struct label l[2];

    if (!registry.on)
        return;
    label_make(&l[0], key);
    label_make(&l[1], limit);
    counter_add(shard_self(), FAM_LIMITED, l, 1);
}

void metrics_redis_error(void)
{
    if (!registry.on)
        return;
    counter_add(shard_self(), FAM_REDIS_ERRORS, NULL, 1);
}

/* ---- gauges read through callbacks ---- */

static int metric_name_valid(const char *s)
{
    if (*s == '\0' || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return 0;
    return 1;
}

/* Both strings are copied. A bad or taken name is the caller's bug: abort. */
void metrics_gauge_fn(const char *name, const char *help, metrics_gauge_cb fn, void *arg)
{
    struct gauge *g;

    sl_assert(registry.on && fn != NULL && metric_name_valid(name));
    for (int i = 0; i < FAM_COUNT; i++)
        sl_assert(strcmp(family_defs[i].name, name) != 0);
    pthread_mutex_lock(&registry.gauge_lock);
    for (size_t i = 0; i < registry.ngauges; i++)
        sl_assert(strcmp(registry.gauges[i].name, name) != 0);
    registry.gauges = xrealloc(registry.gauges, (registry.ngauges + 1) * sizeof(*g));
    g = &registry.gauges[registry.ngauges++];
    g->name = xstrdup(name);
    g->help = xstrdup(help ? help : "");
    g->fn = fn;
    g->arg = arg;
    pthread_mutex_unlock(&registry.gauge_lock);
}

/* ---- life cycle ---- */

void metrics_init(void)
{
    uint64_t cells = 0;

    sl_assert(!registry.on);
    memset(&registry, 0, sizeof(registry));
    pthread_mutex_init(&registry.lock, NULL);
    pthread_mutex_init(&registry.gauge_lock, NULL);
    sl_assert(pthread_key_create(&registry.key, shard_release_cb) == 0);
    for (int i = 0; i < FAM_COUNT; i++) {
        struct family *f = &registry.fams[i];
        unsigned per = family_defs[i].kind == KIND_HISTOGRAM ? HIST_CELLS
                       : family_defs[i].kind == KIND_GAUGE   ? 0
                                                             : 1;

        f->def = &family_defs[i];
        pthread_mutex_init(&f->lock, NULL);
        cells += (uint64_t)(METRICS_MAX_SERIES + 1) * per;
    }
    /* A series never straddles chunks, so a chunk may waste up to
     * HIST_CELLS - 1 cells at its end. */
    registry.nchunks = (uint32_t)(cells / (CHUNK - (HIST_CELLS - 1)) + 2);
    registry_gen++;
    registry.on = 1;

    for (int i = 0; i < CONST_COUNT; i++)
        label_make(&const_labels[i], const_values[i]);
    /* Series that should read 0 rather than be absent before the first event
     * (rate() needs a first sample). */
    series_get(FAM_CACHE_LOOKUPS, &const_labels[CONST_HIT]);
    series_get(FAM_CACHE_LOOKUPS, &const_labels[CONST_MISS]);
    series_get(FAM_CACHE_LOOKUPS, &const_labels[CONST_ERROR]);
    series_get(FAM_REDIS_ERRORS, NULL);
}

void metrics_free(void)
{
    struct shard *sh, *next_sh;

    if (!registry.on)
        return;
    registry.on = 0;
    for (int i = 0; i < FAM_COUNT; i++) {
        struct family *f = &registry.fams[i];
        struct series *s, *next;

        for (s = f->all; s; s = next) {
            next = s->all_next;
            free(s);
        }
        pthread_mutex_destroy(&f->lock);
    }
    for (sh = registry.shards; sh; sh = next_sh) {
        next_sh = sh->next;
        for (uint32_t i = 0; i < registry.nchunks; i++)
            free(sh->chunks[i]);
        free(sh);
    }
    for (size_t i = 0; i < registry.ngauges; i++) {
        free(registry.gauges[i].name);
        free(registry.gauges[i].help);
    }
    free(registry.gauges);
    /* A deleted key's destructor no longer runs, so threads that outlive the
     * registry never touch the freed shards. */
    pthread_key_delete(registry.key);
    pthread_mutex_destroy(&registry.lock);
    pthread_mutex_destroy(&registry.gauge_lock);
    tls_shard = NULL;
    memset(&registry, 0, sizeof(registry));
}

/* ---- rendering ---- */

/* Sum n cells from `cell` over every shard, as integers or as doubles. */
static void cells_sum(uint32_t cell, unsigned n, int as_double, uint64_t *isum, double *dsum)
{
    struct shard *sh = __atomic_load_n(&registry.shards, __ATOMIC_ACQUIRE);

    for (unsigned i = 0; i < n; i++) {
        if (isum)
            isum[i] = 0;
        if (dsum)
            dsum[i] = 0;
    }
    for (; sh; sh = sh->next) {
        uint64_t *c = __atomic_load_n(&sh->chunks[cell >> CHUNK_SHIFT], __ATOMIC_ACQUIRE);

        if (c == NULL)
            continue;
        c += cell & CHUNK_MASK;
        for (unsigned i = 0; i < n; i++) {
            uint64_t v = __atomic_load_n(&c[i], __ATOMIC_RELAXED);

            if (as_double) {
                double d;

                memcpy(&d, &v, sizeof(d));
                dsum[i] += d;
            } else {
                isum[i] += v;
            }
        }
    }
}

/* The shortest of %.15g..%.17g that reads back as v; the format's words
 * for NaN and infinities. out has 32 bytes. */
static const char *format_double(double v, char *out)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return out;
}

/* Append s with the format's escapes: backslash and newline always, the
 * double quote in label values. Invalid UTF-8 (a label cut mid-character,
 * a stray byte) becomes U+FFFD: Prometheus rejects it. */
static int put_escaped(struct buf *b, const char *s, int quote)
{
    int err = 0;

    while (*s) {
        const unsigned char *u = (const unsigned char *)s;
        int n = 0;

        if (u[0] < 0x80) {
            if (u[0] == '\\')
                err |= buf_append(b, "\\\\", 2);
            else if (u[0] == '\n')
                err |= buf_append(b, "\\n", 2);
            else if (u[0] == '"' && quote)
                err |= buf_append(b, "\\\"", 2);
            else
                err |= buf_append(b, s, 1);
            s++;
            continue;
        }
        /* Lead byte, then its continuation bytes; reject overlongs,
         * surrogates and code points past U+10FFFF. */
        if (u[0] >= 0xc2 && u[0] <= 0xdf)
            n = 2;
        else if (u[0] >= 0xe0 && u[0] <= 0xef)
            n = 3;
        else if (u[0] >= 0xf0 && u[0] <= 0xf4)
            n = 4;
        for (int i = 1; i < n; i++)
            if ((u[i] & 0xc0) != 0x80)
                n = 0;
        if ((n == 3 && ((u[0] == 0xe0 && u[1] < 0xa0) || (u[0] == 0xed && u[1] > 0x9f))) ||
            (n == 4 && ((u[0] == 0xf0 && u[1] < 0x90) || (u[0] == 0xf4 && u[1] > 0x8f))))
            n = 0;
        if (n == 0) {
            err |= buf_append(b, "\xef\xbf\xbd", 3);
            s++;
        } else {
            err |= buf_append(b, s, (size_t)n);
            s += n;
        }
    }
    return err;
}

/* name{l1="v1",...[,le="x"]} value\n */
static int put_sample(struct buf *b, const struct family_def *d, const char *suffix,
                      const struct series *s, const char *le, const char *value)
{
    int err = buf_puts(b, d->name) | buf_puts(b, suffix);

    if (d->nlabels > 0 || le) {
        err |= buf_append(b, "{", 1);
        for (int i = 0; i < d->nlabels; i++) {
            err |= buf_printf(b, "%s%s=\"", i ? "," : "", d->labels[i]);
            err |= put_escaped(b, s->labels[i], 1);
            err |= buf_append(b, "\"", 1);
        }
        if (le)
            err |= buf_printf(b, "%sle=\"%s\"", d->nlabels ? "," : "", le);
        err |= buf_append(b, "}", 1);
    }
    return err | buf_printf(b, " %s\n", value);
}

static int put_header(struct buf *b, const char *name, const char *help, const char *type)
{
    int err = buf_printf(b, "# HELP %s ", name);

    err |= put_escaped(b, help, 0);
    return err | buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static int series_cmp(const void *pa, const void *pb)
{
    const struct series *a = *(const struct series *const *)pa;
    const struct series *b = *(const struct series *const *)pb;

    for (int i = 0; i < MAX_LABELS && a->labels[i]; i++) {
        int c = strcmp(a->labels[i], b->labels[i]);

        if (c)
            return c;
    }
    return 0;
}

static int series_render(struct buf *b, const struct family_def *d, const struct series *s)
{
    char num[32];
    uint64_t v[HIST_CELLS], cum = 0;
    double dv;
    int err = 0;

    switch (d->kind) {
    case KIND_COUNTER:
        cells_sum(s->cell, 1, 0, v, NULL);
        snprintf(num, sizeof(num), "%" PRIu64, v[0]);
        return put_sample(b, d, "", s, NULL, num);
    case KIND_COUNTER_F:
        cells_sum(s->cell, 1, 1, NULL, &dv);
        return put_sample(b, d, "", s, NULL, format_double(dv, num));
    case KIND_GAUGE:
        v[0] = __atomic_load_n(&s->gauge, __ATOMIC_RELAXED);
        memcpy(&dv, &v[0], sizeof(dv));
        return put_sample(b, d, "", s, NULL, format_double(dv, num));
    case KIND_HISTOGRAM:
        cells_sum(s->cell, HIST_CELLS, 0, v, NULL);
        for (int i = 0; i < NBUCKETS; i++) {
            cum += v[i];
            snprintf(num, sizeof(num), "%" PRIu64, cum);
            err |= put_sample(b, d, "_bucket", s, bucket_le[i], num);
        }
        err |= put_sample(b, d, "_sum", s, NULL, format_double((double)v[NBUCKETS] / 1e6, num));
        snprintf(num, sizeof(num), "%" PRIu64, cum);
        return err | put_sample(b, d, "_count", s, NULL, num);
    }
    return err;
}

/* One family: HELP, TYPE, then its series sorted by label values. */
static int family_render(struct buf *b, struct family *f)
{
    static const char *const types[] = {"counter", "counter", "gauge", "histogram"};
    struct series **all = NULL, *s;
    size_t n = 0, cap = 0;
    int err = put_header(b, f->def->name, f->def->help, types[f->def->kind]);

    for (s = __atomic_load_n(&f->all, __ATOMIC_ACQUIRE); s; s = s->all_next) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            all = xrealloc(all, cap * sizeof(*all));
        }
        all[n++] = s;
    }
    if (n > 1)
        qsort(all, n, sizeof(*all), series_cmp);
    for (size_t i = 0; i < n && !err; i++)
        err |= series_render(b, f->def, all[i]);
    free(all);
    return err;
}

static int gauges_render(struct buf *b)
{
    char num[32];
    int err = 0;

    pthread_mutex_lock(&registry.gauge_lock);
    for (size_t i = 0; i < registry.ngauges && !err; i++) {
        struct gauge *g = &registry.gauges[i];

        err |= put_header(b, g->name, g->help, "gauge");
        err |= buf_printf(b, "%s %s\n", g->name, format_double(g->fn(g->arg), num));
    }
    pthread_mutex_unlock(&registry.gauge_lock);
    return err;
}

/* Past the cap, the text ends after the last whole family, with a comment
 * that says so (when the cap leaves room for it): a scrape of a partial
 * family would be wrong, not short. Each family (and the gauges) is
 * rendered on its own first, then joined while it fits. */
char *metrics_render(size_t *len)
{
    static const char note[] = "# sluice: exposition truncated at its size cap\n";
    struct buf b, parts[FAM_COUNT + 1];
    size_t total = 0, n = registry.on ? FAM_COUNT + 1 : 0, i;
    int failed = 0;

    for (i = 0; i < n; i++) {
        buf_init(&parts[i], render_max);
        if (i < FAM_COUNT ? family_render(&parts[i], &registry.fams[i]) < 0
                          : gauges_render(&parts[i]) < 0)
            failed = 1;
        total += parts[i].len;
    }
    buf_init(&b, render_max);
    if (!failed && total <= render_max) {
        for (i = 0; i < n; i++)
            if (buf_append(&b, parts[i].data, parts[i].len) < 0)
                sl_assert(!"the parts fit: their total was checked");
    } else {
        size_t room = render_max >= sizeof(note) - 1 ? render_max - (sizeof(note) - 1) : 0;

        for (i = 0; i < n && !parts[i].failed && parts[i].len <= room - b.len; i++)
            if (buf_append(&b, parts[i].data, parts[i].len) < 0)
                sl_assert(!"the part fits the room just checked");
        if (render_max >= sizeof(note) - 1 && buf_append(&b, note, sizeof(note) - 1) < 0)
            sl_assert(!"the note fits the room kept for it");
    }
    for (i = 0; i < n; i++)
        buf_free(&parts[i]);
    return buf_steal(&b, len);
}

/* ---- JSON, for the dashboard ---- */

/* A label value as a JSON string: invalid UTF-8 becomes U+FFFD (jansson
 * refuses it). */
static json_t *label_json(const char *s)
{
    char out[METRICS_LABEL_MAX * 3];
    size_t n = otlp_utf8_clean(s, strlen(s), out, sizeof(out));

    return json_stringn(out, n);
}

static json_t *series_json(const struct family_def *d, const struct series *s)
{
    json_t *o = json_object(), *labels = json_object();
    uint64_t v[HIST_CELLS], cum = 0;
    double dv;

    for (int i = 0; i < d->nlabels; i++)
        json_object_set_new(labels, d->labels[i], label_json(s->labels[i]));
    json_object_set_new(o, "labels", labels);
    switch (d->kind) {
    case KIND_COUNTER:
        cells_sum(s->cell, 1, 0, v, NULL);
        json_object_set_new(o, "value", json_real((double)v[0]));
        break;
    case KIND_COUNTER_F:
        cells_sum(s->cell, 1, 1, NULL, &dv);
        json_object_set_new(o, "value", json_real(dv));
        break;
    case KIND_GAUGE:
        v[0] = __atomic_load_n(&s->gauge, __ATOMIC_RELAXED);
        memcpy(&dv, &v[0], sizeof(dv));
        json_object_set_new(o, "value", json_real(dv));
        break;
    case KIND_HISTOGRAM: {
        json_t *buckets = json_array();

        cells_sum(s->cell, HIST_CELLS, 0, v, NULL);
        for (int i = 0; i < NBUCKETS; i++) {
            cum += v[i];
            /* [upper bound in seconds (null for +Inf), cumulative count] */
            json_array_append_new(buckets,
                                  json_pack("[o, I]",
                                            i < NBOUNDS ? json_real((double)bucket_us[i] / 1e6)
                                                        : json_null(),
                                            (json_int_t)cum));
        }
        json_object_set_new(o, "buckets", buckets);
        json_object_set_new(o, "sum", json_real((double)v[NBUCKETS] / 1e6));
        json_object_set_new(o, "count", json_real((double)cum));
        break;
    }
    }
    return o;
}

json_t *metrics_json(void)
{
    static const char *const types[] = {"counter", "counter", "gauge", "histogram"};
    json_t *root = json_object();

    if (!registry.on)
        return root;
    for (int i = 0; i < FAM_COUNT; i++) {
        struct family *f = &registry.fams[i];
        json_t *series = json_array();

        for (struct series *s = __atomic_load_n(&f->all, __ATOMIC_ACQUIRE); s; s = s->all_next)
            json_array_append_new(series, series_json(f->def, s));
        json_object_set_new(root, f->def->name,
                            json_pack("{s:s, s:o}", "type", types[f->def->kind], "series", series));
    }
    pthread_mutex_lock(&registry.gauge_lock);
    for (size_t i = 0; i < registry.ngauges; i++) {
        struct gauge *g = &registry.gauges[i];

        json_object_set_new(root, g->name,
                            json_pack("{s:s, s:[{s:{}, s:f}]}", "type", "gauge", "series", "labels",
                                      "value", g->fn(g->arg)));
    }
    pthread_mutex_unlock(&registry.gauge_lock);
    return root;
}
