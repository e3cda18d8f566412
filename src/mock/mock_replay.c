/* mock_replay.c - the replay table of sluice-mock; see mock_replay.h. */
#include "mock_replay.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_MAX_MODELS 1024
#define REPLAY_MAX_FILE (512u * 1024 * 1024) /* refuse absurd inputs */

struct replay_entry {
    uint64_t hash; /* 0 marks an empty slot */
    int model;
    const char *prompt; /* owned by r->prompts */
    size_t prompt_len;
    struct mock_replay_answer ans; /* content owned here */
};

struct mock_replay {
    char **models;
    size_t nmodels;
    char **prompts; /* each prompt stored once, shared by its models */
    size_t nprompts, prompts_cap;
    struct replay_entry *slots;
    size_t nslots; /* a power of two */
    size_t used;
};

/* FNV-1a, then a murmur finaliser so that the low bits (the slot index) mix
 * well. Model index m is folded in so one prompt spreads over its models. */
static uint64_t replay_hash(int m, const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(unsigned)m;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

struct mock_replay *mock_replay_new(void)
{
    return xcalloc(1, sizeof(struct mock_replay));
}

void mock_replay_free(struct mock_replay *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nslots; i++)
        if (r->slots[i].hash)
            free((char *)r->slots[i].ans.content);
    for (size_t i = 0; i < r->nprompts; i++)
        free(r->prompts[i]);
    for (size_t i = 0; i < r->nmodels; i++)
        free(r->models[i]);
    free(r->slots);
    free(r->prompts);
    free(r->models);
    free(r);
}

int mock_replay_model_index(const struct mock_replay *r, const char *model)
{
    for (size_t i = 0; i < r->nmodels; i++)
        if (strcmp(r->models[i], model) == 0)
            return (int)i;
    return -1;
}

size_t mock_replay_nmodels(const struct mock_replay *r)
{
    return r->nmodels;
}

const char *mock_replay_model(const struct mock_replay *r, size_t i)
{
    return i < r->nmodels ? r->models[i] : NULL;
}

size_t mock_replay_nanswers(const struct mock_replay *r)
{
    return r->used;
}

static struct replay_entry *slot_for(const struct mock_replay *r, uint64_t h, int m,
                                     const char *prompt, size_t len)
{
    size_t mask = r->nslots - 1;

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct replay_entry *e = &r->slots[i];

        if (e->hash == 0)
            return e;
        if (e->hash == h && e->model == m && e->prompt_len == len &&
            memcmp(e->prompt, prompt, len) == 0)
            return e;
    }
}

/* Keep the load factor under 1/2 so probes stay short. */
static void mock_replay_grow(struct mock_replay *r)
{
    struct replay_entry *old = r->slots;
    size_t nold = r->nslots;

    r->nslots = nold ? nold * 2 : 4096;
    r->slots = xcalloc(r->nslots, sizeof(*r->slots));
    for (size_t i = 0; i < nold; i++)
        if (old[i].hash)
            *slot_for(r, old[i].hash, old[i].model, old[i].prompt, old[i].prompt_len) = old[i];
    free(old);
}

const struct mock_replay_answer *mock_replay_find(const struct mock_replay *r, int m,
                                                  const char *prompt, size_t len)
{
    struct replay_entry *e;

    if (r->nslots == 0 || m < 0)
        return NULL;
    e = slot_for(r, replay_hash(m, prompt, len), m, prompt, len);
    return e->hash ? &e->ans : NULL;
}

static int model_intern(struct mock_replay *r, const char *name)
{
    int m = mock_replay_model_index(r, name);

    if (m >= 0)
        return m;
    if (r->nmodels == REPLAY_MAX_MODELS)
        return -1;
    r->models = xrealloc(r->models, (r->nmodels + 1) * sizeof(*r->models));
    r->models[r->nmodels] = xstrdup(name);
    return (int)r->nmodels++;
}

static int get_tokens(json_t *o, const char *key, long long *out)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out >= 0 ? 0 : -1;
    }
    /* Some converters write token counts as floats ("12.0"). */
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1e15) {
        *out = (long long)json_real_value(v);
        return 0;
    }
    return -1;
}

/* Add one parsed line. Return 0, or -1 with a reason in err. */
static int add_line(struct mock_replay *r, json_t *line, char *err, size_t errlen)
{
    json_t *prompt = json_object_get(line, "prompt");
    json_t *answers = json_object_get(line, "answers");
    const char *model;
    json_t *a;
    char *p = NULL;
    size_t plen;

    if (!json_is_string(prompt) || !json_is_object(answers)) {
        snprintf(err, errlen, "a line needs a string \"prompt\" and an object \"answers\"");
        return -1;
    }
    plen = json_string_length(prompt);
    json_object_foreach (answers, model, a) {
        json_t *content = json_object_get(a, "content");
        struct replay_entry *e;
        long long pt, ct;
        uint64_t h;
        int m;

        if (!json_is_object(a) || !json_is_string(content) ||
            get_tokens(a, "prompt_tokens", &pt) < 0 ||
            get_tokens(a, "completion_tokens", &ct) < 0) {
            snprintf(err, errlen,
                     "answer of model \"%s\" needs a string content and "
                     "non-negative token counts",
                     model);
            return -1;
        }
        m = model_intern(r, model);
        if (m < 0) {
            snprintf(err, errlen, "more than %d models", REPLAY_MAX_MODELS);
            return -1;
        }
        if (2 * (r->used + 1) > r->nslots)
            mock_replay_grow(r);
        if (p == NULL) {
            /* Stored once per line; every model's entry points at it. */
            p = xstrndup(json_string_value(prompt), plen);
            if (r->nprompts == r->prompts_cap) {
                r->prompts_cap = r->prompts_cap ? 2 * r->prompts_cap : 1024;
                r->prompts = xrealloc(r->prompts, r->prompts_cap * sizeof(*r->prompts));
            }
            r->prompts[r->nprompts++] = p;
        }
        h = replay_hash(m, p, plen);
        e = slot_for(r, h, m, p, plen);
        if (e->hash)
            continue; /* first answer wins */
        e->hash = h;
        e->model = m;
        e->prompt = p;
        e->prompt_len = plen;
        e->ans.content_len = json_string_length(content);
        e->ans.content = xstrndup(json_string_value(content), e->ans.content_len);
        e->ans.prompt_tokens = pt;
        e->ans.completion_tokens = ct;
        r->used++;
    }
    return 0;
}

/* Read the whole file; the caller frees. Return NULL with err set. */
static char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        size_t got;

        if (cap - n < 65536) {
            if (cap >= REPLAY_MAX_FILE) {
                snprintf(err, errlen, "%s: larger than %u bytes", path, REPLAY_MAX_FILE);
                fclose(f);
                free(data);
                return NULL;
            }
            cap = cap ? cap * 2 : 1u << 20;
            data = xrealloc(data, cap + 1);
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        fclose(f);
        free(data);
        return NULL;
    }
    fclose(f);
    data[n] = '\0';
    *len = n;
    return data;
}

int mock_replay_load(struct mock_replay *r, const char *path, char *err, size_t errlen)
{
    size_t len, pos = 0;
    char *data = slurp(path, &len, err, errlen);
    long lineno = 0;

    if (data == NULL)
        return -1;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t s = pos, e = end;
        char why[256];
        json_error_t jerr;
        json_t *line;

        lineno++;
        pos = end + 1;
        while (s < e && (data[s] == ' ' || data[s] == '\t' || data[s] == '\r'))
            s++;
        while (e > s && (data[e - 1] == ' ' || data[e - 1] == '\t' || data[e - 1] == '\r'))
            e--;
        if (s == e)
            continue;
        line = json_loadb(data + s, e - s, 0, &jerr);
        if (line == NULL) {
            snprintf(err, errlen, "%s:%ld: %s", path, lineno, jerr.text);
            free(data);
            return -1;
        }
        if (!json_is_object(line) || add_line(r, line, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s:%ld: %s", path, lineno,
                     json_is_object(line) ? why : "a line must be a JSON object");
            json_decref(line);
            free(data);
            return -1;
        }
        json_decref(line);
    }
    free(data);
    return 0;
}
