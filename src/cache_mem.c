/* cache_mem.c - bounded in-memory LRU; see cache_mem.h. */
#include "cache_mem.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *hnext;               /* hash chain */
    struct entry *lru_prev, *lru_next; /* most recent at the head */
    uint64_t hash;
    uint64_t expires_ms; /* monotonic */
    size_t klen, vlen;
    char *val;
    char key[]; /* NUL-terminated */
};

struct cache_mem {
    pthread_mutex_t mu;
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    size_t bytes;
    size_t max_bytes;
    struct entry *head, *tail;
};

/* What an entry costs against max_bytes. */
static size_t entry_size(const struct entry *e)
{
    return sizeof(*e) + e->klen + 1 + e->vlen + sizeof(struct entry *);
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

struct cache_mem *cache_mem_new(size_t max_bytes)
{
    struct cache_mem *m = xcalloc(1, sizeof(*m));

    pthread_mutex_init(&m->mu, NULL);
    m->nbuckets = 1024;
    m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
    m->max_bytes = max_bytes;
    return m;
}

static void lru_unlink(struct cache_mem *m, struct entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        m->head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        m->tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct cache_mem *m, struct entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = m->head;
    if (m->head)
        m->head->lru_prev = e;
    m->head = e;
    if (m->tail == NULL)
        m->tail = e;
}

/* Find key; *link gets the chain pointer that points at it. */
static struct entry *find(struct cache_mem *m, const char *key, uint64_t h, struct entry ***link)
{
    struct entry **pp = &m->buckets[h & (m->nbuckets - 1)];

    for (; *pp; pp = &(*pp)->hnext) {
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0) {
            if (link)
                *link = pp;
            return *pp;
        }
    }
    return NULL;
}

static void drop(struct cache_mem *m, struct entry *e)
{
    struct entry **pp = NULL;

    find(m, e->key, e->hash, &pp);
    sl_assert(pp != NULL);
    *pp = e->hnext;
    lru_unlink(m, e);
    m->count--;
    m->bytes -= entry_size(e);
    free(e->val);
    free(e);
}

static void grow(struct cache_mem *m)
{
    size_t n = m->nbuckets * 2;
    struct entry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i], *next;

        for (; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

char *cache_mem_get(struct cache_mem *m, const char *key, size_t *len)
{
    uint64_t h = hash_key(key);
    struct entry *e;
    char *copy = NULL;

    pthread_mutex_lock(&m->mu);
    e = find(m, key, h, NULL);
    if (e && e->expires_ms <= now_ms()) {
        drop(m, e);
        e = NULL;
    }
    if (e) {
        lru_unlink(m, e);
        lru_push_front(m, e);
        copy = xmalloc(e->vlen + 1);
        memcpy(copy, e->val, e->vlen);
        copy[e->vlen] = '\0';
        *len = e->vlen;
    }
    pthread_mutex_unlock(&m->mu);
    return copy;
}

void cache_mem_put(struct cache_mem *m, const char *key, const char *val, size_t len, long ttl_ms)
{
    size_t klen = strlen(key);
    struct entry *e = xmalloc(sizeof(*e) + klen + 1), *old;

    e->hash = hash_key(key);
    e->klen = klen;
    e->vlen = len;
    memcpy(e->key, key, klen + 1);
    e->val = xmalloc(len ? len : 1);
    memcpy(e->val, val, len);
    e->expires_ms = now_ms() + (uint64_t)(ttl_ms > 0 ? ttl_ms : 1);
    e->lru_prev = e->lru_next = NULL;
    if (entry_size(e) > m->max_bytes) {
        free(e->val);
        free(e);
        return;
    }
    pthread_mutex_lock(&m->mu);
    old = find(m, key, e->hash, NULL);
    if (old)
        drop(m, old);
    while (m->tail && m->bytes + entry_size(e) > m->max_bytes)
        drop(m, m->tail);
    if (m->count >= m->nbuckets)
        grow(m);
    e->hnext = m->buckets[e->hash & (m->nbuckets - 1)];
    m->buckets[e->hash & (m->nbuckets - 1)] = e;
    lru_push_front(m, e);
    m->count++;
    m->bytes += entry_size(e);
    pthread_mutex_unlock(&m->mu);
}

int cache_mem_del(struct cache_mem *m, const char *key)
{
    struct entry *e;

    pthread_mutex_lock(&m->mu);
    e = find(m, key, hash_key(key), NULL);
    if (e)
        drop(m, e);
    pthread_mutex_unlock(&m->mu);
    return e != NULL;
}

size_t cache_mem_del_prefix(struct cache_mem *m, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);
    struct entry *e, *next;

    pthread_mutex_lock(&m->mu);
    for (e = m->head; e; e = next) {
        next = e->lru_next;
        if (strncmp(e->key, prefix, plen) == 0) {
            drop(m, e);
            n++;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return n;
}

size_t cache_mem_bytes(struct cache_mem *m)
{
    size_t b;

    pthread_mutex_lock(&m->mu);
    b = m->bytes;
    pthread_mutex_unlock(&m->mu);
    return b;
}

size_t cache_mem_count(struct cache_mem *m)
{
    size_t c;

    pthread_mutex_lock(&m->mu);
    c = m->count;
    pthread_mutex_unlock(&m->mu);
    return c;
}

void cache_mem_free(struct cache_mem *m)
{
    if (m == NULL)
        return;
    while (m->head)
        drop(m, m->head);
    free(m->buckets);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
