/* config.c - gateway.conf: parse with libconfig 1.5, check everything, build
 * an immutable refcounted snapshot. See config.h; gateway.conf.example is the
 * reference for every key.
 *
 * Checking never stops at the first problem: each check appends a message
 * and parsing goes on, so `sluice --check` shows all of a file's mistakes in
 * one run. A snapshot is returned only when there were none.
 *
 * Messages are "FILE:LINE: key.path: message". LINE is libconfig's source
 * line of the offending setting; for a missing key it is the line of the
 * enclosing group. In key paths a list element is named by its `name` when it
 * has a valid one (providers.openai.base_url) and by its index otherwise
 * (routes.smart.cascade.[0].threshold, models.[3].name).
 */
#include "config.h"

#include "caps.h"
#include "learned.h"
#include "redis_url.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <openssl/crypto.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Defaults. gateway.conf.example documents the same numbers. */
#define DEF_LISTEN "127.0.0.1:8080"
#define DEF_MAX_BODY_BYTES (4L << 20)
#define DEF_MAX_CONNECTIONS 16384L
#define DEF_MAX_HEADER_BYTES 8192L
#define DEF_MAX_INFLIGHT 0L
#define DEF_DRAIN_TIMEOUT_S 30L
#define DEF_CLIENT_TIMEOUT_S 60L
#define DEF_CLIENT_HEADER_TIMEOUT_S 10L
#define DEF_CLIENT_BODY_TIMEOUT_S 60L
#define DEF_MAX_STREAM_MEMORY_BYTES (64L << 20)
#define DEF_RETRY_BACKOFF_MS 200L
#define DEF_RETRY_MAX_BACKOFF_MS 5000L
#define DEF_RETRY_AFTER_MAX_MS 30000L
#define DEF_BREAKER_FAILURES 5L
#define DEF_BREAKER_ERROR_RATE 0.5
#define DEF_BREAKER_MIN_REQUESTS 20L
#define DEF_BREAKER_WINDOW_S 60L
#define DEF_BREAKER_COOLDOWN_S 30L
#define DEF_CACHE_LOCAL_TTL_MS 1000L
#define DEF_CACHE_LOCAL_MAX_BYTES (16L << 20)
#define DEF_CACHE_TTL_S 3600L
#define DEF_CACHE_TIMEOUT_MS 20L
#define DEF_CACHE_MAX_VALUE_BYTES (1L << 20)
#define DEF_CACHE_MAX_BYTES (64L << 20)
#define DEF_TIMEOUT_MS 120000L
#define DEF_CONNECT_TIMEOUT_MS 5000L
#define DEF_IDLE_TIMEOUT_MS 30000L
#define DEF_SCORER_TIMEOUT_MS 10000L
#define DEF_ANTHROPIC_VERSION "2023-06-01"
#define DEF_MAX_TOKENS 4096L
#define MAX_MAX_TOKENS 10000000L
#define DEF_OTEL_TIMEOUT_MS 5000L
#define DEF_OTEL_MAX_QUEUE 2048L

#define MAX_TIMEOUT_MS 86400000L /* one day: anything longer is a typo */
#define MAX_TTL_S 31536000L      /* one year */
#define NAME_MAX_LEN 128
#define ID_MAX_LEN 256

/* The error list is a growable buffer like any other: it has a hard cap. Past
 * it we only count, and say how many were left out. */
#define MAX_ERRORS 100

/* Values echoed back in messages are quoted, escaped and cut to this many
 * bytes, so one hostile value cannot break the one-line-per-error format. */
#define QUOTE_MAX 64
#define QBUF (QUOTE_MAX * 4 + 8)

/* State of one load: where messages go and what has been built so far. */
struct load {
    const char *name; /* FILE, as the caller gave it */
    char *dir;        /* its directory: @include and relative weights paths */
    struct config *cfg;
    struct config_errors *errs;
    size_t nerrs; /* all errors, including those past MAX_ERRORS */
    /* Set when a whole list is missing or malformed, so that references
     * into it do not each add an "unknown ..." error of their own. */
    int providers_bad;
    int models_bad;
    const config_setting_t *models_list; /* to point at a model's definition */
    /* Per message, for sorting: the file (a string libconfig keeps until
     * config_destroy, NULL = main) and the line. */
    struct err_pos {
        const char *file;
        unsigned line;
    } * pos;
};

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config *current;

/* ---- messages ---------------------------------------------------------- */

/* How to show file f (a setting's or libconfig's error file; NULL = the main
 * file) to a user. libconfig records an @include'd file by the name written
 * in the directive, which is relative to the main file's directory, so join
 * the two to get a path the user can open. Returns a new string. */
static char *display_file(const struct load *l, const char *f)
{
    if (f == NULL || strcmp(f, l->name) == 0)
        return xstrdup(l->name);
    if (f[0] == '/' || strcmp(l->dir, ".") == 0)
        return xstrdup(f);
    return xasprintf("%s/%s", l->dir, f);
}

static unsigned setting_line(const config_setting_t *s)
{
    unsigned n = s ? config_setting_source_line(s) : 0;

    /* The root group has no line of its own; point at the file's start. */
    return n ? n : 1;
}

/* "FILE:LINE" of a setting, for "(first defined at ...)". Returns a new
 * string. */
static char *where(const struct load *l, const config_setting_t *s)
{
    char *f = display_file(l, s ? config_setting_source_file(s) : NULL);
    char *w = xasprintf("%s:%u", f, setting_line(s));

    free(f);
    return w;
}

static void errors_add(struct config_errors *errs, char *msg)
{
    errs->msgs = xrealloc(errs->msgs, (errs->n + 1) * sizeof(*errs->msgs));
    errs->msgs[errs->n++] = msg;
}

/* Record one error at setting s (its file and line). path is the key path of
 * the enclosing element ("" at the top level) and key, when not NULL, the
 * key under it; together they form the message's key path. */
static void __attribute__((format(printf, 5, 6)))
conf_err(struct load *l, const config_setting_t *s, const char *path, const char *key,
         const char *fmt, ...)
{
    va_list ap;
    char *msg, *file;

    l->nerrs++;
    if (l->errs->n >= MAX_ERRORS)
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        sl_panic("out of memory formatting a config error");
    va_end(ap);
    file = display_file(l, s ? config_setting_source_file(s) : NULL);
    l->pos = xrealloc(l->pos, (l->errs->n + 1) * sizeof(*l->pos));
    l->pos[l->errs->n].file = s ? config_setting_source_file(s) : NULL;
    l->pos[l->errs->n].line = setting_line(s);
    errors_add(l->errs, xasprintf("%s:%u: %s%s%s: %s", file, setting_line(s), path,
                                  (*path && key) ? "." : "", key ? key : "", msg));
    free(file);
    free(msg);
}

/* Render s for a message into out: double-quoted, with control characters,
 * quotes and backslashes escaped, cut after QUOTE_MAX bytes. Returns out. */
static const char *quote(char out[QBUF], const char *s)
{
    size_t o = 0, i;

    out[o++] = '"';
    for (i = 0; s[i] != '\0' && i < QUOTE_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, QBUF - o, "\\x%02x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    if (s[i] != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* Edit distance between two short keys, for "did you mean". Keys longer
 * than 32 bytes are never considered close. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[33], i, j;

    if (la > 32 || lb > 32)
        return SIZE_MAX;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);

            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Report every member of group g whose name is not in `allowed` (NULL
 * terminated), suggesting the closest allowed key for a likely typo. */
static void check_keys(struct load *l, const config_setting_t *g, const char *path,
                       const char *const *allowed)
{
    int n = config_setting_length(g);

    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *key = config_setting_name(m);
        const char *best = NULL;
        size_t best_d = 3;
        size_t k;

        for (k = 0; allowed[k]; k++) {
            size_t d;

            if (strcmp(key, allowed[k]) == 0)
                break;
            d = edit_distance(key, allowed[k]);
            if (d < best_d && d < strlen(key)) {
                best_d = d;
                best = allowed[k];
            }
        }
        if (allowed[k])
            continue;
        if (strcmp(key, "api_key") == 0)
            conf_err(l, m, path, key,
                     "unknown key; secrets never live in the file: put the key in an "
                     "environment variable and name it with api_key_env");
        else if (best)
            conf_err(l, m, path, key, "unknown key (did you mean '%s'?)", best);
        else
            conf_err(l, m, path, key, "unknown key");
    }
}

/* ---- typed getters ----------------------------------------------------- *
 * Each looks up `key` in group g. It returns 1 and sets *out when the key is
 * present and valid; 0 when it is absent (reported if `required`); -1 when it
 * is present but bad (reported). Strings are borrowed from libconfig's tree
 * and must be copied before config_destroy().
 */

static int missing(struct load *l, const config_setting_t *g, const char *path, const char *key,
                   int required)
{
    if (required)
        conf_err(l, g, path, key, "missing required key");
    return 0;
}

static int get_str(struct load *l, const config_setting_t *g, const char *path, const char *key,
                   int required, const char **out)
{
    const config_setting_t *s = config_setting_get_member(g, key);

    if (s == NULL)
        return missing(l, g, path, key, required);
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        conf_err(l, s, path, key, "expected a string");
        return -1;
    }
    *out = config_setting_get_string(s);
    return 1;
}

/* libconfig tells int 2 from float 2.0; a user should not have to. Both are
 * accepted wherever a number is expected, and a float with an integral value
 * (1e6) wherever an integer is. */
static int get_int(struct load *l, const config_setting_t *g, const char *path, const char *key,
                   int required, long min, long max, long *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    long long v;

    if (s == NULL)
        return missing(l, g, path, key, required);
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v = config_setting_get_int64(s);
        break;
    case CONFIG_TYPE_FLOAT: {
        double d = config_setting_get_float(s);

        if (!isfinite(d) || d != floor(d) || fabs(d) > 9e18) {
            conf_err(l, s, path, key, "expected an integer");
            return -1;
        }
        v = (long long)d;
        break;
    }
    default:
        conf_err(l, s, path, key, "expected an integer");
        return -1;
    }
    if (v < min || v > max) {
        conf_err(l, s, path, key, "must be between %ld and %ld (got %lld)", min, max, v);
        return -1;
    }
    *out = (long)v;
    return 1;
}

/* max may be HUGE_VAL for "no upper bound". */
static int get_num(struct load *l, const config_setting_t *g, const char *path, const char *key,
                   int required, double min, double max, double *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    double v;

    if (s == NULL)
        return missing(l, g, path, key, required);
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v = (double)config_setting_get_int64(s);
        break;
    case CONFIG_TYPE_FLOAT:
        v = config_setting_get_float(s);
        break;
    default:
        conf_err(l, s, path, key, "expected a number");
        return -1;
    }
    if (!isfinite(v)) {
        conf_err(l, s, path, key, "expected a finite number");
        return -1;
    }
    if (v < min || v > max) {
        if (isinf(max))
            conf_err(l, s, path, key, "must be >= %g (got %g)", min, v);
        else
            conf_err(l, s, path, key, "must be between %g and %g (got %g)", min, max, v);
        return -1;
    }
    *out = v;
    return 1;
}

static int get_bool(struct load *l, const config_setting_t *g, const char *path, const char *key,
                    int *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);

    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        conf_err(l, s, path, key, "expected true or false");
        return -1;
    }
    *out = config_setting_get_bool(s);
    return 1;
}

/* A string that must be one of names[0..n-1]; *out is its index. */
static int get_enum(struct load *l, const config_setting_t *g, const char *path, const char *key,
                    const char *const *names, size_t n, int *out)
{
    const char *s;
    int r = get_str(l, g, path, key, 0, &s);
    char qb[QBUF], expect[256];
    size_t off = 0;

    if (r <= 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 1;
        }
    }
    for (size_t i = 0; i < n && off < sizeof(expect); i++)
        off +=
            (size_t)snprintf(expect + off, sizeof(expect) - off, "%s%s", i ? ", " : "", names[i]);
    conf_err(l, config_setting_get_member(g, key), path, key,
             "unknown value %s (expected one of: %s)", quote(qb, s), expect);
    return -1;
}

/* A group member; NULL when absent or not a group (reported). */
static const config_setting_t *get_group(struct load *l, const config_setting_t *g,
                                         const char *path, const char *key)
{
    const config_setting_t *s = config_setting_get_member(g, key);

    if (s == NULL)
        return NULL;
    if (!config_setting_is_group(s)) {
        conf_err(l, s, path, key, "expected a group { ... }");
        return NULL;
    }
    return s;
}

/* A list member, or with arrays_ok also an array [ ... ] (which libconfig
 * allows for scalars only). NULL when absent or of another type. */
static const config_setting_t *get_list(struct load *l, const config_setting_t *g, const char *path,
                                        const char *key, int required, int arrays_ok)
{
    const config_setting_t *s = config_setting_get_member(g, key);

    if (s == NULL) {
        missing(l, g, path, key, required);
        return NULL;
    }
    if (!config_setting_is_list(s) && !(arrays_ok && config_setting_is_array(s))) {
        conf_err(l, s, path, key, "expected a list ( ... )");
        return NULL;
    }
    return s;
}

/* ---- value checks ------------------------------------------------------ */

/* 1..max bytes of printable ASCII with no spaces: names and ids end up in
 * HTTP headers, log lines and key paths. */
static int token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

static int has_ctl_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}

/* scheme://host..., with a non-empty host and no spaces or control chars. */
static int url_ok(const char *s, const char *const *schemes)
{
    for (; *schemes; schemes++) {
        size_t n = strlen(*schemes);

        if (strncasecmp(s, *schemes, n) == 0)
            return s[n] != '\0' && s[n] != '/' && !has_ctl_or_space(s);
    }
    return 0;
}

static const char *const http_schemes[] = {"http://", "https://", NULL};

/* HOST:PORT, HOST non-empty, an IPv6 HOST in brackets, PORT 0..65535.
 * Returns NULL, or why not. */
static const char *listen_check(const char *s)
{
    const char *colon;
    long port;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');

        if (rb == NULL || rb == s + 1 || rb[1] != ':')
            return "expected HOST:PORT, e.g. \"[::1]:8080\"";
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || colon == s)
            return "expected HOST:PORT, e.g. \"127.0.0.1:8080\"";
        if (memchr(s, ':', (size_t)(colon - s)))
            return "an IPv6 address must be in brackets, e.g. \"[::1]:8080\"";
    }
    if (has_ctl_or_space(s))
        return "must not contain spaces or control characters";
    if (!isdigit((unsigned char)colon[1]) || parse_long(colon + 1, 0, 65535, &port) < 0)
        return "the port must be a number 0..65535";
    return NULL;
}

static int env_name_ok(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* Headers the gateway sets itself: framing, routing and the credentials that
 * come from api_key_env. Setting them here would break requests or put a
 * secret in the file. */
static const char *const reserved_headers[] = {
    "host", "content-length", "transfer-encoding", "connection", "authorization", "api-key", NULL,
};
/* ...and what an anthropic provider's calls carry too. */
static const char *const anthropic_reserved_headers[] = {
    "host",    "content-length", "transfer-encoding", "connection", "authorization",
    "api-key", "x-api-key",      "anthropic-version", NULL,
};

/* ---- lookups while loading --------------------------------------------- */

static struct provider *find_provider(struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nproviders; i++)
        if (cfg->providers[i].name && strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

static struct model *find_model(struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nmodels; i++)
        if (cfg->models[i].name && strcmp(cfg->models[i].name, name) == 0)
            return &cfg->models[i];
    return NULL;
}

/* Resolve the model named by string setting s (a member `key` of the element
 * at path, or a list element when key is a "[i]" segment). Returns NULL after
 * reporting a dangling name. */
static struct model *resolve_model(struct load *l, const config_setting_t *s, const char *path,
                                   const char *key)
{
    const char *name = config_setting_get_string(s);
    struct model *m = find_model(l->cfg, name);
    char qb[QBUF];

    if (m == NULL && !l->models_bad)
        conf_err(l, s, path, key, "unknown model %s", quote(qb, name));
    return m;
}

/* Key path of element idx of the list at list_path: named by its `name`
 * when it has a valid one. Returns a new string. */
static char *elem_path(const char *list_path, const config_setting_t *e, unsigned idx)
{
    const char *name;

    if (config_setting_is_group(e) && config_setting_lookup_string(e, "name", &name) &&
        token_ok(name, NAME_MAX_LEN))
        return xasprintf("%s.%s", list_path, name);
    return xasprintf("%s.[%u]", list_path, idx);
}

/* The required `name` of element e, checked and copied. Duplicates among
 * the first idx elements of `list` are reported; `what` is "provider" etc.
 * Returns a new string or NULL. */
static char *get_elem_name(struct load *l, const config_setting_t *list, unsigned idx,
                           const char *path, const char *what)
{
    const config_setting_t *e = config_setting_get_elem(list, idx);
    const char *name;
    char qb[QBUF];

    if (get_str(l, e, path, "name", 1, &name) <= 0)
        return NULL;
    if (!token_ok(name, NAME_MAX_LEN)) {
        conf_err(l, config_setting_get_member(e, "name"), path, "name",
                 "must be 1 to %d printable ASCII characters without spaces", NAME_MAX_LEN);
        return NULL;
    }
    for (unsigned j = 0; j < idx; j++) {
        const config_setting_t *prev = config_setting_get_elem(list, j);
        const char *pname;

        if (config_setting_is_group(prev) && config_setting_lookup_string(prev, "name", &pname) &&
            strcmp(pname, name) == 0) {
            char *w = where(l, prev);

            conf_err(l, config_setting_get_member(e, "name"), path, "name",
                     "duplicate %s %s (first defined at %s)", what, quote(qb, name), w);
            free(w);
            break;
        }
    }
    return xstrdup(name);
}

/* ---- sections ---------------------------------------------------------- */

static const char *const log_keys[] = {"format", "path", "level", NULL};
static const char *const log_formats[] = {"json", "text"};
static const char *const log_levels[] = {"debug", "info", "warn", "error"};

static void load_log(struct load *l, const config_setting_t *root)
{
    struct log_conf *lc = &l->cfg->log;
    const config_setting_t *g = get_group(l, root, "", "log");
    const char *s;
    int v;

    lc->format = LOG_FORMAT_JSON;
    lc->level = LOG_INFO;
    lc->path = xstrdup("-");
    if (g == NULL)
        return;
    check_keys(l, g, "log", log_keys);
    if (get_enum(l, g, "log", "format", log_formats, ARRAY_LEN(log_formats), &v) > 0)
        lc->format = (enum log_format)v;
    if (get_enum(l, g, "log", "level", log_levels, ARRAY_LEN(log_levels), &v) > 0)
        lc->level = (enum log_level)v;
    if (get_str(l, g, "log", "path", 0, &s) > 0) {
        if (*s == '\0') {
            conf_err(l, config_setting_get_member(g, "path"), "log", "path",
                     "must not be empty (use \"-\" for stdout)");
        } else {
            free(lc->path);
            lc->path = xstrdup(s);
        }
    }
}

static const char *const trace_keys[] = {"path",   "include_content", "redis_url",
                                         "stream", "maxlen",          NULL};

static void load_trace(struct load *l, const config_setting_t *root)
{
    struct trace_conf *tc = &l->cfg->trace;
    const config_setting_t *g = get_group(l, root, "", "trace");
    const char *s;

    if (g == NULL)
        return;
    check_keys(l, g, "trace", trace_keys);
    if (get_str(l, g, "trace", "path", 0, &s) > 0) {
        if (*s == '\0')
            conf_err(l, config_setting_get_member(g, "path"), "trace", "path",
                     "must not be empty (use \"-\" for stdout)");
        else
            tc->path = xstrdup(s);
    }
    get_bool(l, g, "trace", "include_content", &tc->include_content);
    /* redis_url is the old form of the stream: load_redis takes it. */
    tc->stream_on = config_setting_get_member(g, "redis_url") != NULL ||
                    config_setting_get_member(g, "stream") != NULL;
    tc->maxlen = 100000;
    get_int(l, g, "trace", "maxlen", 0, 1, 1L << 40, &tc->maxlen);
    if (get_str(l, g, "trace", "stream", 0, &s) > 0) {
        if (!token_ok(s, 200))
            conf_err(l, config_setting_get_member(g, "stream"), "trace", "stream",
                     "must be 1 to 200 printable ASCII characters without spaces");
        else
            tc->stream = xstrdup(s);
    }
    if (tc->stream == NULL)
        tc->stream = xstrdup("sluice:trace");
    if (config_setting_get_member(g, "path") == NULL && !tc->stream_on)
        conf_err(l, g, "trace", "path",
                 "missing: a trace needs a path, a stream (on the redis block's Redis), or both");
}

static const char *const redis_keys[] = {
    "url",           "username",     "password_env",    "tls_ca_file",
    "tls_cert_file", "tls_key_file", "tls_server_name", "sentinels",
    "master_name",   "cluster_nodes", "timeout_ms",     NULL};

void redis_conf_clear(struct redis_conf *rc)
{
    free(rc->url);
    free(rc->username);
    free(rc->password_env);
    if (rc->password) {
        explicit_bzero(rc->password, strlen(rc->password));
        free(rc->password);
    }
    free(rc->tls_ca_file);
    free(rc->tls_cert_file);
    free(rc->tls_key_file);
    free(rc->tls_server_name);
    free(rc->master_name);
    for (size_t i = 0; i < rc->nsentinels; i++)
        free(rc->sentinels[i]);
    free(rc->sentinels);
    for (size_t i = 0; i < rc->ncluster_nodes; i++)
        free(rc->cluster_nodes[i]);
    free(rc->cluster_nodes);
    memset(rc, 0, sizeof(*rc));
}

/* A list of HOST:PORT strings (sentinels, cluster_nodes). */
static void load_redis_hosts(struct load *l, const config_setting_t *g, const char *key,
                             char ***out, size_t *n)
{
    const config_setting_t *list = get_list(l, g, "redis", key, 0, 1);
    unsigned len = list ? (unsigned)config_setting_length(list) : 0;

    if (list && (len == 0 || len > REDIS_SEEDS_MAX)) {
        conf_err(l, list, "redis", key, "must list 1 to %d HOST:PORT addresses", REDIS_SEEDS_MAX);
        return;
    }
    *out = len ? xcalloc(len, sizeof(**out)) : NULL;
    for (unsigned i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(list, i);
        const char *s = config_setting_get_string(e);
        char host[REDIS_HOST_MAX], err[128];
        int port;

        if (s == NULL) {
            conf_err(l, e, "redis", key, "expected \"HOST:PORT\" strings");
            continue;
        }
        if (redis_addr_parse(s, strlen(s), host, sizeof(host), &port, err, sizeof(err)) < 0) {
            conf_err(l, e, "redis", key, "%s", err);
            continue;
        }
        (*out)[(*n)++] = xstrdup(s);
    }
}

static void load_redis_file(struct load *l, const config_setting_t *g, const char *key,
                            char **out)
{
    const char *s;

    if (get_str(l, g, "redis", key, 0, &s) <= 0)
        return;
    if (access(s, R_OK) != 0)
        conf_err(l, config_setting_get_member(g, key), "redis", key, "cannot read %s: %s", s,
                 strerror(errno));
    else
        *out = xstrdup(s);
}

/* The redis block, and the old per-feature urls (cache.url, trace.redis_url),
 * which still work alone but not beside the block. Runs after load_cache
 * and load_trace. */
static void load_redis(struct load *l, const config_setting_t *root)
{
    struct redis_conf *rc = &l->cfg->redis;
    const config_setting_t *g = get_group(l, root, "", "redis");
    const config_setting_t *cg = config_setting_get_member(root, "cache");
    const config_setting_t *tg = config_setting_get_member(root, "trace");
    const config_setting_t *curl = cg ? config_setting_get_member(cg, "url") : NULL;
    const config_setting_t *turl = tg ? config_setting_get_member(tg, "redis_url") : NULL;
    struct redis_url u = {0};
    char err[200];
    const char *s;

    rc->timeout_ms = l->cfg->cache.timeout_ms;
    if (g) {
        check_keys(l, g, "redis", redis_keys);
        if (curl)
            conf_err(l, curl, "cache", "url",
                     "the url lives in the redis block now: write redis = { url = \"...\"; }; "
                     "cache = { backend = \"redis\"; }");
        if (turl)
            conf_err(l, turl, "trace", "redis_url",
                     "the trace stream uses the redis block's Redis now: drop redis_url and "
                     "write trace = { stream = \"sluice:trace\"; }");
        if (get_str(l, g, "redis", "url", 0, &s) > 0) {
            if (redis_url_parse(s, &u, err, sizeof(err)) < 0)
                conf_err(l, config_setting_get_member(g, "url"), "redis", "url", "%s", err);
            else
                rc->url = xstrdup(s);
        }
        if (get_str(l, g, "redis", "username", 0, &s) > 0) {
            if (!token_ok(s, 256))
                conf_err(l, config_setting_get_member(g, "username"), "redis", "username",
                         "must be 1 to 256 printable ASCII characters without spaces");
            else
                rc->username = xstrdup(s);
        }
        if (get_str(l, g, "redis", "password_env", 0, &s) > 0) {
            /* Never echo the value: it may be the password itself. */
            if (!env_name_ok(s)) {
                conf_err(l, config_setting_get_member(g, "password_env"), "redis",
                         "password_env",
                         "must be the NAME of an environment variable ([A-Za-z_][A-Za-z0-9_]*), "
                         "not the password itself");
            } else if (getenv(s) == NULL) {
                conf_err(l, config_setting_get_member(g, "password_env"), "redis",
                         "password_env", "the environment variable %s is not set", s);
            } else {
                rc->password_env = xstrdup(s);
                rc->password = xstrdup(getenv(s));
            }
        } else if (rc->username) {
            conf_err(l, config_setting_get_member(g, "username"), "redis", "username",
                     "an ACL user needs its password: name the environment variable that holds "
                     "it with password_env");
        }
        load_redis_file(l, g, "tls_ca_file", &rc->tls_ca_file);
        load_redis_file(l, g, "tls_cert_file", &rc->tls_cert_file);
        load_redis_file(l, g, "tls_key_file", &rc->tls_key_file);
        if (get_str(l, g, "redis", "tls_server_name", 0, &s) > 0) {
            if (!token_ok(s, 253))
                conf_err(l, config_setting_get_member(g, "tls_server_name"), "redis",
                         "tls_server_name", "must be a host name");
            else
                rc->tls_server_name = xstrdup(s);
        }
        if ((rc->tls_cert_file == NULL) != (rc->tls_key_file == NULL))
            conf_err(l, g, "redis", rc->tls_cert_file ? "tls_key_file" : "tls_cert_file",
                     "missing: a client certificate needs both tls_cert_file and tls_key_file");
        if (!u.tls && (config_setting_get_member(g, "tls_ca_file") ||
                       config_setting_get_member(g, "tls_cert_file") ||
                       config_setting_get_member(g, "tls_server_name")))
            conf_err(l, g, "redis", "url",
                     "the tls_* keys need TLS: write the url as rediss://HOST:PORT/DB");
        load_redis_hosts(l, g, "sentinels", &rc->sentinels, &rc->nsentinels);
        load_redis_hosts(l, g, "cluster_nodes", &rc->cluster_nodes, &rc->ncluster_nodes);
        if (get_str(l, g, "redis", "master_name", 0, &s) > 0) {
            if (!token_ok(s, 200))
                conf_err(l, config_setting_get_member(g, "master_name"), "redis", "master_name",
                         "must be 1 to 200 printable ASCII characters without spaces");
            else
                rc->master_name = xstrdup(s);
        }
        if (config_setting_get_member(g, "sentinels") && rc->master_name == NULL &&
            config_setting_get_member(g, "master_name") == NULL)
            conf_err(l, g, "redis", "master_name",
                     "missing: sentinels need the name of the master they watch");
        if (config_setting_get_member(g, "master_name") &&
            !config_setting_get_member(g, "sentinels"))
            conf_err(l, config_setting_get_member(g, "master_name"), "redis", "master_name",
                     "only valid with sentinels");
        if (config_setting_get_member(g, "sentinels") &&
            config_setting_get_member(g, "cluster_nodes"))
            conf_err(l, g, "redis", "cluster_nodes",
                     "sentinels and cluster_nodes exclude each other: Sentinel watches one "
                     "master, a Cluster finds its own");
        if (config_setting_get_member(g, "cluster_nodes") && u.db != 0)
            conf_err(l, config_setting_get_member(g, "url"), "redis", "url",
                     "a Redis Cluster has only database 0");
        if (config_setting_get_member(g, "url") == NULL &&
            config_setting_get_member(g, "sentinels") == NULL &&
            config_setting_get_member(g, "cluster_nodes") == NULL)
            conf_err(l, g, "redis", "url", "missing: a redis block needs a url, sentinels or "
                                           "cluster_nodes");
        get_int(l, g, "redis", "timeout_ms", 0, 1, 60000, &rc->timeout_ms);
        rc->configured = 1;
    } else {
        const char *cu = NULL, *tu = NULL;

        if (curl && l->cfg->cache.backend == CACHE_REDIS &&
            get_str(l, cg, "cache", "url", 1, &cu) > 0 &&
            redis_url_parse(cu, &u, err, sizeof(err)) < 0) {
            conf_err(l, curl, "cache", "url", "%s", err);
            cu = NULL;
        }
        if (turl && get_str(l, tg, "trace", "redis_url", 0, &tu) > 0 &&
            redis_url_parse(tu, &u, err, sizeof(err)) < 0) {
            conf_err(l, turl, "trace", "redis_url", "%s", err);
            tu = NULL;
        }
        if (cu && tu && strcmp(cu, tu) != 0)
            conf_err(l, turl, "trace", "redis_url",
                     "one Redis serves the cache and the trace now: write redis = { url = "
                     "\"...\"; } and trace = { stream = \"...\"; } instead of two urls");
        else if (cu || tu)
            rc->url = xstrdup(cu ? cu : tu), rc->configured = 1;
    }
    if (l->cfg->cache.backend == CACHE_REDIS && !rc->configured && curl == NULL)
        conf_err(l, cg, "cache", "backend",
                 "backend = \"redis\" uses the redis block: add redis = { url = "
                 "\"redis://HOST:6379/0\"; }");
    if (l->cfg->trace.stream_on && !rc->configured && turl == NULL)
        conf_err(l, config_setting_get_member(tg, "stream"), "trace", "stream",
                 "the stream goes to the redis block's Redis: add redis = { url = "
                 "\"redis://HOST:6379/0\"; }");
}

static const char *const otel_keys[] = {"endpoint",     "headers",         "headers_env",
                                        "service_name", "sample_ratio",    "capture_content",
                                        "timeout_ms",   "max_queue",       NULL};
/* Set by the exporter, or framing. */
static const char *const otel_reserved[] = {"content-type", "content-length", "host",
                                            "transfer-encoding", "connection", NULL};
/* Credentials: only from the environment (headers_env). */
static const char *const otel_secret[] = {"authorization", "x-api-key", "api-key", NULL};

static void load_header_group(struct load *l, const config_setting_t *pg, const char *path,
                              const char *key, const char *const *reserved, const char *why,
                              int from_env, struct header_kv **hv, size_t *n);

static void load_otel(struct load *l, const config_setting_t *root)
{
    struct otel_conf *oc = &l->cfg->otel;
    const config_setting_t *g = get_group(l, root, "", "otel");
    const char *s;
    char qb[QBUF];

    oc->sample_ratio = 1.0;
    oc->timeout_ms = DEF_OTEL_TIMEOUT_MS;
    oc->max_queue = DEF_OTEL_MAX_QUEUE;
    if (g == NULL)
        return;
    check_keys(l, g, "otel", otel_keys);
    if (get_str(l, g, "otel", "endpoint", 1, &s) > 0) {
        if (!url_ok(s, http_schemes))
            conf_err(l, config_setting_get_member(g, "endpoint"), "otel", "endpoint",
                     "expected http://HOST[:PORT][/PATH] or https://... (got %s)", quote(qb, s));
        else
            oc->endpoint = xstrndup(s, strlen(s) - (s[strlen(s) - 1] == '/'));
    }
    load_header_group(l, g, "otel", "headers", otel_reserved, "is set by the exporter itself", 0,
                      &oc->headers, &oc->nheaders);
    for (size_t i = 0; i < oc->nheaders; i++) {
        for (size_t k = 0; otel_secret[k]; k++) {
            if (strcasecmp(oc->headers[i].name, otel_secret[k]) == 0) {
                conf_err(l, config_setting_get_member(g, "headers"), "otel.headers",
                         oc->headers[i].name,
                         "secrets never live in the file: name the environment variable "
                         "that holds it in headers_env instead");
            }
        }
    }
    load_header_group(l, g, "otel", "headers_env", otel_reserved, "is set by the exporter itself",
                      1, &oc->headers, &oc->nheaders);
    if (get_str(l, g, "otel", "service_name", 0, &s) > 0) {
        if (*s == '\0' || strlen(s) > NAME_MAX_LEN || has_ctl_or_space(s))
            conf_err(l, config_setting_get_member(g, "service_name"), "otel", "service_name",
                     "must be 1 to %d printable characters without spaces", NAME_MAX_LEN);
        else
            oc->service_name = xstrdup(s);
    }
    if (oc->service_name == NULL)
        oc->service_name = xstrdup("sluice");
    get_num(l, g, "otel", "sample_ratio", 0, 0, 1, &oc->sample_ratio);
    get_bool(l, g, "otel", "capture_content", &oc->capture_content);
    get_int(l, g, "otel", "timeout_ms", 0, 1, 600000, &oc->timeout_ms);
    get_int(l, g, "otel", "max_queue", 0, 1, OTEL_MAX_QUEUE_LIMIT, &oc->max_queue);
}

static const char *const cache_keys[] = {
    "backend",   "url",          "ttl_s",           "timeout_ms", "max_value_bytes",
    "max_bytes", "local_ttl_ms", "local_max_bytes", NULL};
static const char *const cache_backends[] = {"memory", "redis"};

static void load_cache(struct load *l, const config_setting_t *root)
{
    struct cache_conf *cc = &l->cfg->cache;
    const config_setting_t *g = get_group(l, root, "", "cache");
    const config_setting_t *s;
    long v;
    int backend, r;

    cc->backend = CACHE_MEMORY;
    cc->ttl_s = DEF_CACHE_TTL_S;
    cc->timeout_ms = DEF_CACHE_TIMEOUT_MS;
    cc->max_value_bytes = (size_t)DEF_CACHE_MAX_VALUE_BYTES;
    cc->max_bytes = (size_t)DEF_CACHE_MAX_BYTES;
    cc->local_ttl_ms = DEF_CACHE_LOCAL_TTL_MS;
    cc->local_max_bytes = (size_t)DEF_CACHE_LOCAL_MAX_BYTES;
    if (g == NULL)
        return;
    check_keys(l, g, "cache", cache_keys);
    r = get_enum(l, g, "cache", "backend", cache_backends, ARRAY_LEN(cache_backends), &backend);
    if (r > 0)
        cc->backend = (enum cache_backend)backend;

    /* Backend-specific keys are checked only when the backend is known, so a
     * misspelt backend does not also blame every key that goes with it. */
    if (r >= 0 && cc->backend == CACHE_REDIS) {
        if ((s = config_setting_get_member(g, "max_bytes")) != NULL)
            conf_err(l, s, "cache", "max_bytes",
                     "key 'max_bytes' is only valid with backend = \"memory\"");
        if (get_int(l, g, "cache", "local_ttl_ms", 0, 0, 60000, &v) > 0)
            cc->local_ttl_ms = v;
        if (get_int(l, g, "cache", "local_max_bytes", 0, 1024, 1L << 40, &v) > 0)
            cc->local_max_bytes = (size_t)v;
        /* url is the old form of the redis block: load_redis takes it. */
    } else if (r >= 0) {
        if ((s = config_setting_get_member(g, "url")) != NULL)
            conf_err(l, s, "cache", "url", "key 'url' is only valid with backend = \"redis\"");
        if ((s = config_setting_get_member(g, "local_ttl_ms")) != NULL)
            conf_err(l, s, "cache", "local_ttl_ms",
                     "key 'local_ttl_ms' is only valid with backend = \"redis\"");
        if ((s = config_setting_get_member(g, "local_max_bytes")) != NULL)
            conf_err(l, s, "cache", "local_max_bytes",
                     "key 'local_max_bytes' is only valid with backend = \"redis\"");
        if (get_int(l, g, "cache", "max_bytes", 0, 1024, 1L << 40, &v) > 0)
            cc->max_bytes = (size_t)v;
    }
    if (get_int(l, g, "cache", "ttl_s", 0, 1, MAX_TTL_S, &v) > 0)
        cc->ttl_s = v;
    if (get_int(l, g, "cache", "timeout_ms", 0, 1, 60000, &v) > 0)
        cc->timeout_ms = v;
    /* 512 MiB is Redis's own limit on a string value. */
    if (get_int(l, g, "cache", "max_value_bytes", 0, 1024, 512L << 20, &v) > 0) {
        cc->max_value_bytes = (size_t)v;
        if (cc->backend == CACHE_MEMORY && cc->max_value_bytes > cc->max_bytes)
            conf_err(l, config_setting_get_member(g, "max_value_bytes"), "cache", "max_value_bytes",
                     "must not exceed max_bytes (%zu)", cc->max_bytes);
    }
}

static const char *const provider_keys[] = {
    "name",
    "type",
    "base_url",
    "api_key_env",
    "api_version",
    "anthropic_version",
    "default_max_tokens",
    "headers",
    "timeout_ms",
    "connect_timeout_ms",
    "first_byte_timeout_ms",
    "idle_timeout_ms",
    "retries",
    "retry_backoff_ms",
    "retry_max_backoff_ms",
    "retry_after_max_ms",
    "passthrough_auth",
    "http_version",
    "ca_file",
    "breaker",
    NULL,
};
static const char *const breaker_keys[] = {"failures", "error_rate", "min_requests",
                                           "window_s", "cooldown_s", NULL};

/* breaker = { ... } of a provider. */
static void load_breaker(struct load *l, const config_setting_t *pg, const char *ppath,
                         struct provider *p)
{
    const config_setting_t *g = get_group(l, pg, ppath, "breaker");
    char *path;
    long v;

    p->breaker_failures = DEF_BREAKER_FAILURES;
    p->breaker_error_rate = DEF_BREAKER_ERROR_RATE;
    p->breaker_min_requests = DEF_BREAKER_MIN_REQUESTS;
    p->breaker_window_s = DEF_BREAKER_WINDOW_S;
    p->breaker_cooldown_s = DEF_BREAKER_COOLDOWN_S;
    if (g == NULL)
        return;
    path = xasprintf("%s.breaker", ppath);
    check_keys(l, g, path, breaker_keys);
    if (get_int(l, g, path, "failures", 0, 0, 1000000, &v) > 0)
        p->breaker_failures = v;
    get_num(l, g, path, "error_rate", 0, 0, 1, &p->breaker_error_rate);
    if (get_int(l, g, path, "min_requests", 0, 1, 1000000, &v) > 0)
        p->breaker_min_requests = v;
    if (get_int(l, g, path, "window_s", 0, 1, 86400, &v) > 0)
        p->breaker_window_s = v;
    if (get_int(l, g, path, "cooldown_s", 0, 1, 86400, &v) > 0)
        p->breaker_cooldown_s = v;
    free(path);
}
static const char *const provider_types[] = {"openai", "azure", "anthropic"};
/* In the order of enum http_version. */
static const char *const http_versions[] = {"1.1", "2"};

const char *config_provider_type_name(enum provider_type t)
{
    return provider_types[t];
}

const char *config_http_version_name(enum http_version v)
{
    return http_versions[v];
}

/* A group of headers (`key` = "headers" or "headers_env" in group pg): the
 * setting names are the header names (libconfig 1.5 names allow
 * [A-Za-z*][-A-Za-z0-9_*]*, so "x-extra" is written bare: headers = {
 * x-extra = "1"; }). With from_env each value is the name of an environment
 * variable holding the header's value (a variable that is unset or empty
 * sends no header). Names in `reserved` are refused with `why`; a name given
 * twice, in either group, is refused. Appends to *hv and *n. */
static void load_header_group(struct load *l, const config_setting_t *pg, const char *path,
                              const char *key, const char *const *reserved, const char *why,
                              int from_env, struct header_kv **hv, size_t *n)
{
    const config_setting_t *g = get_group(l, pg, path, key);
    char *hpath;
    int count;

    if (g == NULL)
        return;
    hpath = xasprintf("%s%s%s", path, *path ? "." : "", key);
    count = config_setting_length(g);
    *hv = xrealloc(*hv, (*n + (size_t)count + 1) * sizeof(**hv));
    for (int i = 0; i < count; i++) {
        const config_setting_t *h = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(h), *value;
        char qb[QBUF];
        int bad = 0;

        if (config_setting_type(h) != CONFIG_TYPE_STRING) {
            conf_err(l, h, hpath, name, "expected a string");
            continue;
        }
        value = config_setting_get_string(h);
        /* libconfig's name syntax already keeps CR and LF out of names;
         * checking anyway keeps this safe if the syntax ever widens. */
        if (strpbrk(name, "\r\n") || strpbrk(value, "\r\n")) {
            conf_err(l, h, hpath, name, "header name and value must not contain CR or LF");
            bad = 1;
        } else if (has_ctl_or_space(name)) {
            conf_err(l, h, hpath, name, "header name must not contain control characters");
            bad = 1;
        } else if (from_env && !env_name_ok(value)) {
            conf_err(l, h, hpath, name,
                     "must be the NAME of an environment variable, not the value itself");
            bad = 1;
        } else {
            for (const char *c = value; *c; c++) {
                if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
                    conf_err(l, h, hpath, name, "header value must not contain control characters");
                    bad = 1;
                    break;
                }
            }
        }
        for (size_t k = 0; !bad && reserved[k]; k++) {
            if (strcasecmp(name, reserved[k]) == 0) {
                conf_err(l, h, hpath, name, "header %s %s", quote(qb, name), why);
                bad = 1;
            }
        }
        for (size_t k = 0; !bad && k < *n; k++) {
            if (strcasecmp(name, (*hv)[k].name) == 0) {
                conf_err(l, h, hpath, name, "duplicate header %s", quote(qb, name));
                bad = 1;
            }
        }
        if (bad)
            continue;
        if (from_env) {
            value = getenv(value);
            if (value == NULL || *value == '\0' || strpbrk(value, "\r\n"))
                continue;
        }
        (*hv)[*n].name = xstrdup(name);
        (*hv)[*n].value = xstrdup(value);
        (*n)++;
    }
    free(hpath);
}

/* The provider's extra headers. */
static void load_headers(struct load *l, const config_setting_t *pg, const char *path,
                         struct provider *p)
{
    load_header_group(l, pg, path, "headers",
                      p->type == PROVIDER_ANTHROPIC ? anthropic_reserved_headers : reserved_headers,
                      "is set by sluice itself (credentials come from api_key_env)", 0,
                      &p->headers, &p->nheaders);
}

/* A relative path (weights, a CA file) is relative to the config file's
 * directory, so a config and its files can move together. Returns a new
 * string. */
static char *resolve_path(const struct load *l, const char *p)
{
    if (p[0] == '/' || strcmp(l->dir, ".") == 0)
        return xstrdup(p);
    return xasprintf("%s/%s", l->dir, p);
}

/* The keys of type = "anthropic": anthropic_version and default_max_tokens,
 * refused with any other type (when the type itself is valid). */
static void load_anthropic(struct load *l, const config_setting_t *g, const char *path,
                           struct provider *p, int type_ok)
{
    static const char *const keys[] = {"anthropic_version", "default_max_tokens"};
    const char *s;

    if (p->type != PROVIDER_ANTHROPIC) {
        for (size_t i = 0; type_ok && i < ARRAY_LEN(keys); i++)
            if (config_setting_get_member(g, keys[i]))
                conf_err(l, config_setting_get_member(g, keys[i]), path, keys[i],
                         "key '%s' is only valid with type = \"anthropic\"", keys[i]);
        return;
    }
    p->default_max_tokens = DEF_MAX_TOKENS;
    get_int(l, g, path, "default_max_tokens", 0, 1, MAX_MAX_TOKENS, &p->default_max_tokens);
    if (get_str(l, g, path, "anthropic_version", 0, &s) > 0) {
        if (token_ok(s, 64))
            p->anthropic_version = xstrdup(s);
        else
            conf_err(l, config_setting_get_member(g, "anthropic_version"), path,
                     "anthropic_version", "expected a version such as \"2023-06-01\"");
    }
    if (p->anthropic_version == NULL)
        p->anthropic_version = xstrdup(DEF_ANTHROPIC_VERSION);
}

static void load_provider(struct load *l, const config_setting_t *list, unsigned idx,
                          const char *path)
{
    const config_setting_t *g = config_setting_get_elem(list, idx);
    struct provider *p = &l->cfg->providers[idx];
    const char *s;
    char qb[QBUF];
    long v;
    int type, r;

    p->line = (int)setting_line(g);
    p->timeout_ms = DEF_TIMEOUT_MS;
    p->connect_timeout_ms = DEF_CONNECT_TIMEOUT_MS;
    p->idle_timeout_ms = DEF_IDLE_TIMEOUT_MS;
    check_keys(l, g, path, provider_keys);
    p->name = get_elem_name(l, list, idx, path, "provider");

    r = get_enum(l, g, path, "type", provider_types, ARRAY_LEN(provider_types), &type);
    p->type = r > 0 ? (enum provider_type)type : PROVIDER_OPENAI;

    if (get_str(l, g, path, "base_url", 1, &s) > 0) {
        if (!url_ok(s, http_schemes)) {
            conf_err(l, config_setting_get_member(g, "base_url"), path, "base_url",
                     "expected an http:// or https:// URL");
        } else {
            size_t n = strlen(s);

            /* Paths are appended as "/chat/completions"; a trailing slash
             * would double it. */
            while (n > 0 && s[n - 1] == '/')
                n--;
            p->base_url = xstrndup(s, n);
        }
    }

    if (get_str(l, g, path, "api_key_env", 0, &s) > 0) {
        /* Never echo the value: a user who pasted the key itself here must
         * not see it copied into logs by --check. */
        if (!env_name_ok(s)) {
            conf_err(l, config_setting_get_member(g, "api_key_env"), path, "api_key_env",
                     "must be the NAME of an environment variable ([A-Za-z_][A-Za-z0-9_]*), "
                     "not the key itself");
        } else {
            const char *key = getenv(s);

            p->api_key_env = xstrdup(s);
            /* Unset is not an error: a local vLLM or Ollama needs no key. */
            p->api_key = key ? xstrdup(key) : NULL;
        }
    }

    if (r >= 0 && p->type == PROVIDER_AZURE) {
        if (get_str(l, g, path, "api_version", 1, &s) > 0) {
            if (!token_ok(s, 64))
                conf_err(l, config_setting_get_member(g, "api_version"), path, "api_version",
                         "expected a version such as \"2024-10-21\"");
            else
                p->api_version = xstrdup(s);
        }
    } else if (r >= 0 && config_setting_get_member(g, "api_version")) {
        conf_err(l, config_setting_get_member(g, "api_version"), path, "api_version",
                 "key 'api_version' is only valid with type = \"azure\"");
    }
    load_anthropic(l, g, path, p, r >= 0);

    load_headers(l, g, path, p);

    if (get_int(l, g, path, "timeout_ms", 0, 1, MAX_TIMEOUT_MS, &v) > 0)
        p->timeout_ms = v;
    p->first_byte_timeout_ms = p->timeout_ms;
    if (get_int(l, g, path, "connect_timeout_ms", 0, 1, MAX_TIMEOUT_MS, &v) > 0)
        p->connect_timeout_ms = v;
    if (get_int(l, g, path, "first_byte_timeout_ms", 0, 1, MAX_TIMEOUT_MS, &v) > 0)
        p->first_byte_timeout_ms = v;
    if (get_int(l, g, path, "idle_timeout_ms", 0, 1, MAX_TIMEOUT_MS, &v) > 0)
        p->idle_timeout_ms = v;

    p->retries = 0;
    p->retry_backoff_ms = DEF_RETRY_BACKOFF_MS;
    p->retry_max_backoff_ms = DEF_RETRY_MAX_BACKOFF_MS;
    p->retry_after_max_ms = DEF_RETRY_AFTER_MAX_MS;
    get_int(l, g, path, "retries", 0, 0, 10, &p->retries);
    get_int(l, g, path, "retry_backoff_ms", 0, 1, MAX_TIMEOUT_MS, &p->retry_backoff_ms);
    get_int(l, g, path, "retry_max_backoff_ms", 0, 1, MAX_TIMEOUT_MS, &p->retry_max_backoff_ms);
    get_int(l, g, path, "retry_after_max_ms", 0, 0, MAX_TIMEOUT_MS, &p->retry_after_max_ms);
    get_bool(l, g, path, "passthrough_auth", &p->passthrough_auth);
    if (get_enum(l, g, path, "http_version", http_versions, ARRAY_LEN(http_versions), &type) > 0)
        p->http_version = (enum http_version)type;
    if (p->http_version == HTTP_2 && p->base_url && strncmp(p->base_url, "https:", 6) != 0)
        conf_err(l, config_setting_get_member(g, "http_version"), path, "http_version",
                 "HTTP/2 needs an https:// base_url (libcurl 7.88 cannot reuse a cleartext "
                 "HTTP/2 connection)");
    if (get_str(l, g, path, "ca_file", 0, &s) > 0) {
        p->ca_file = resolve_path(l, s);
        if (access(p->ca_file, R_OK) != 0)
            conf_err(l, config_setting_get_member(g, "ca_file"), path, "ca_file",
                     "cannot read %s: %s", quote(qb, p->ca_file), strerror(errno));
    }
    load_breaker(l, g, path, p);
}

/* The required, non-empty list `key` of the root, with its length in *n.
 * Returns NULL (reported) when it is missing, malformed or empty. */
static const config_setting_t *list_begin(struct load *l, const config_setting_t *root,
                                          const char *key, const char *what, size_t *n)
{
    const config_setting_t *list = get_list(l, root, "", key, 1, 0);

    *n = list ? (size_t)config_setting_length(list) : 0;
    if (list && *n == 0) {
        conf_err(l, list, "", key, "at least one %s is required", what);
        return NULL;
    }
    return list;
}

/* Run fn over each group element of list (named key). The caller has sized
 * the target array to the list's length, so pointers into it stay valid. */
static void list_each(struct load *l, const config_setting_t *list, const char *key,
                      void (*fn)(struct load *, const config_setting_t *, unsigned, const char *))
{
    unsigned n = list ? (unsigned)config_setting_length(list) : 0;

    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, i);
        char *path = elem_path(key, e, i);

        if (!config_setting_is_group(e))
            conf_err(l, e, path, NULL, "expected a group { ... }");
        else
            fn(l, list, i, path);
        free(path);
    }
}

static const char *const model_keys[] = {"name",
                                         "provider",
                                         "id",
                                         "input_per_mtok",
                                         "output_per_mtok",
                                         "cache_read_per_mtok",
                                         "cache_write_per_mtok",
                                         "default_max_tokens",
                                         "timeout_ms",
                                         "connect_timeout_ms",
                                         "first_byte_timeout_ms",
                                         "idle_timeout_ms",
                                         "retries",
                                         NULL};

static void load_model(struct load *l, const config_setting_t *list, unsigned idx, const char *path)
{
    const config_setting_t *g = config_setting_get_elem(list, idx);
    struct model *m = &l->cfg->models[idx];
    const char *s;
    char qb[QBUF];

    m->line = (int)setting_line(g);
    check_keys(l, g, path, model_keys);
    m->name = get_elem_name(l, list, idx, path, "model");
    if (get_str(l, g, path, "provider", 1, &s) > 0) {
        m->provider = find_provider(l->cfg, s);
        if (m->provider == NULL && !l->providers_bad)
            conf_err(l, config_setting_get_member(g, "provider"), path, "provider",
                     "unknown provider %s", quote(qb, s));
    }
    if (get_str(l, g, path, "id", 0, &s) > 0) {
        if (!token_ok(s, ID_MAX_LEN))
            conf_err(l, config_setting_get_member(g, "id"), path, "id",
                     "must be 1 to %d printable ASCII characters without spaces", ID_MAX_LEN);
        else
            m->id = xstrdup(s);
    }
    if (m->id == NULL && m->name)
        m->id = xstrdup(m->name);
    get_num(l, g, path, "input_per_mtok", 0, 0, HUGE_VAL, &m->input_per_mtok);
    get_num(l, g, path, "output_per_mtok", 0, 0, HUGE_VAL, &m->output_per_mtok);
    m->cache_read_per_mtok = m->cache_write_per_mtok = -1;
    get_num(l, g, path, "cache_read_per_mtok", 0, 0, HUGE_VAL, &m->cache_read_per_mtok);
    get_num(l, g, path, "cache_write_per_mtok", 0, 0, HUGE_VAL, &m->cache_write_per_mtok);
    if (get_int(l, g, path, "default_max_tokens", 0, 1, MAX_MAX_TOKENS, &m->default_max_tokens) >
            0 &&
        m->provider && m->provider->type != PROVIDER_ANTHROPIC)
        conf_err(l, config_setting_get_member(g, "default_max_tokens"), path, "default_max_tokens",
                 "key 'default_max_tokens' is only valid for a model of a provider with type = "
                 "\"anthropic\" (OpenAI-compatible APIs need no max_tokens)");
    get_int(l, g, path, "timeout_ms", 0, 1, MAX_TIMEOUT_MS, &m->timeout_ms);
    get_int(l, g, path, "connect_timeout_ms", 0, 1, MAX_TIMEOUT_MS, &m->connect_timeout_ms);
    get_int(l, g, path, "first_byte_timeout_ms", 0, 1, MAX_TIMEOUT_MS, &m->first_byte_timeout_ms);
    get_int(l, g, path, "idle_timeout_ms", 0, 1, MAX_TIMEOUT_MS, &m->idle_timeout_ms);
    m->retries = -1;
    get_int(l, g, path, "retries", 0, 0, 10, &m->retries);
}

/* ---- routes and stages ------------------------------------------------- */

/* A plain stage: one model, no scorer. */
static void stage_single(struct stage *st, struct model *m, int line)
{
    st->models = xcalloc(1, sizeof(*st->models));
    st->models[0] = m;
    st->nmodels = 1;
    st->scorer = SCORER_NONE;
    st->scorer_timeout_ms = DEF_SCORER_TIMEOUT_MS;
    st->line = line;
}

static const char *const stage_keys[] = {"model",   "models",     "scorer", "threshold",
                                         "samples", "judge",      "rubric", "weights",
                                         "url",     "timeout_ms", NULL};
static const char *const scorer_names[] = {"none",  "rules",   "logprob", "agreement",
                                           "judge", "learned", "http"};

#define SK(k) (1u << (k))
#define SK_ALL                                                                                     \
    (SK(SCORER_RULES) | SK(SCORER_LOGPROB) | SK(SCORER_AGREEMENT) | SK(SCORER_JUDGE) |             \
     SK(SCORER_LEARNED) | SK(SCORER_HTTP))

/* Which scorers each scorer-specific stage key goes with. */
static const struct {
    const char *key;
    unsigned scorers;
    const char *valid_with;
} scorer_keys[] = {
    {"threshold", SK_ALL, "a scorer other than \"none\""},
    {"models", SK(SCORER_AGREEMENT) | SK(SCORER_LEARNED),
     "scorer = \"agreement\" or \"learned\""},
    {"samples", SK(SCORER_AGREEMENT), "scorer = \"agreement\""},
    {"judge", SK(SCORER_JUDGE), "scorer = \"judge\""},
    {"rubric", SK(SCORER_JUDGE), "scorer = \"judge\""},
    {"weights", SK(SCORER_LEARNED), "scorer = \"learned\""},
    {"url", SK(SCORER_HTTP), "scorer = \"http\""},
    {"timeout_ms", SK(SCORER_JUDGE) | SK(SCORER_HTTP), "scorer = \"judge\" or \"http\""},
};

/* Is `key` usable with this stage's scorer? An unknown scorer (already
 * reported) makes every key usable, so one typo gives one error. */
static int scorer_key_ok(int scorer, const char *key)
{
    if (scorer < 0)
        return 1;
    for (size_t i = 0; i < ARRAY_LEN(scorer_keys); i++)
        if (strcmp(scorer_keys[i].key, key) == 0)
            return (scorer_keys[i].scorers & SK(scorer)) != 0;
    return 1;
}

/* Anthropic's Messages API returns no logprobs and one answer per call (no
 * 'n'): a logprob score or self-agreement over samples of such a model
 * would be a wrong score, so --check refuses them. */
static void check_stage_anthropic(struct load *l, const config_setting_t *g, const char *path,
                                  const struct stage *st)
{
    char qb[QBUF];

    for (size_t i = 0; i < st->nmodels; i++) {
        const struct model *m = st->models[i];

        if (m == NULL || m->provider == NULL || m->provider->type != PROVIDER_ANTHROPIC)
            continue;
        if (st->scorer == SCORER_LOGPROB)
            conf_err(l, config_setting_get_member(g, "scorer"), path, "scorer",
                     "model %s is served by an Anthropic provider, whose answers carry no "
                     "logprobs: use another scorer (rules, agreement over 'models', judge, "
                     "learned or http)",
                     quote(qb, m->name));
        if (st->samples > 1)
            conf_err(l, config_setting_get_member(g, "samples"), path, "samples",
                     "model %s is served by an Anthropic provider, which gives one answer per "
                     "call: compare two models with 'models' instead",
                     quote(qb, m->name));
    }
}

static void load_stage(struct load *l, const config_setting_t *g, const char *path,
                       struct stage *st)
{
    const config_setting_t *ms = config_setting_get_member(g, "model");
    const config_setting_t *mss = config_setting_get_member(g, "models");
    const config_setting_t *s;
    const char *str;
    char qb[QBUF];
    int scorer = SCORER_NONE;
    long v;

    st->line = (int)setting_line(g);
    st->scorer_timeout_ms = DEF_SCORER_TIMEOUT_MS;
    check_keys(l, g, path, stage_keys);
    if (get_enum(l, g, path, "scorer", scorer_names, ARRAY_LEN(scorer_names), &scorer) < 0)
        scorer = -1;
    st->scorer = scorer < 0 ? SCORER_NONE : (enum scorer_kind)scorer;
    for (size_t i = 0; i < ARRAY_LEN(scorer_keys); i++) {
        s = config_setting_get_member(g, scorer_keys[i].key);
        if (s && !scorer_key_ok(scorer, scorer_keys[i].key))
            conf_err(l, s, path, scorer_keys[i].key, "key '%s' is only valid with %s",
                     scorer_keys[i].key, scorer_keys[i].valid_with);
    }

    if (ms && mss) {
        conf_err(l, mss, path, "models", "'model' and 'models' are mutually exclusive");
    } else if (ms) {
        st->models = xcalloc(1, sizeof(*st->models));
        st->nmodels = 1;
        if (config_setting_type(ms) != CONFIG_TYPE_STRING)
            conf_err(l, ms, path, "model", "expected a string");
        else
            st->models[0] = resolve_model(l, ms, path, "model");
    } else if (mss) {
        const config_setting_t *list = NULL;
        unsigned n = 0;

        /* With the wrong scorer 'models' was reported above. */
        if (scorer_key_ok(scorer, "models"))
            list = get_list(l, g, path, "models", 0, 1);
        n = list ? (unsigned)config_setting_length(list) : 0;
        if (list && n < 2 && scorer == SCORER_LEARNED)
            conf_err(l, list, path, "models",
                     "needs at least two models (the stage's model, then its scorer's peers; "
                     "without peers, use 'model')");
        else if (list && n < 2)
            conf_err(l, list, path, "models",
                     "needs at least two models (to sample one model, use 'model' and "
                     "'samples')");
        if (list && n >= 2) {
            char *mpath = xasprintf("%s.models", path);

            st->models = xcalloc(n, sizeof(*st->models));
            st->nmodels = n;
            for (unsigned i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(list, i);
                char seg[24];

                snprintf(seg, sizeof(seg), "[%u]", i);
                if (config_setting_type(e) != CONFIG_TYPE_STRING)
                    conf_err(l, e, mpath, seg, "expected a model name (a string)");
                else
                    st->models[i] = resolve_model(l, e, mpath, seg);
            }
            free(mpath);
        }
    } else {
        conf_err(l, g, path, "model", "missing required key");
    }

    if (scorer > SCORER_NONE)
        get_num(l, g, path, "threshold", 1, 0.0, 1.0, &st->threshold);

    if (scorer == SCORER_AGREEMENT) {
        if (get_int(l, g, path, "samples", 0, 2, 16, &v) > 0) {
            st->samples = (int)v;
            if (mss && !ms)
                conf_err(l, config_setting_get_member(g, "samples"), path, "samples",
                         "'samples' is only valid with a single 'model'");
        } else if (ms && !mss && !config_setting_get_member(g, "samples")) {
            conf_err(l, g, path, NULL,
                     "scorer \"agreement\" needs 'models' (two or more) or 'samples' (2..16)");
        }
    }

    if (scorer == SCORER_JUDGE) {
        if (get_str(l, g, path, "judge", 1, &str) > 0)
            st->judge = resolve_model(l, config_setting_get_member(g, "judge"), path, "judge");
        if (get_str(l, g, path, "rubric", 0, &str) > 0) {
            if (*str == '\0')
                conf_err(l, config_setting_get_member(g, "rubric"), path, "rubric",
                         "must not be empty (leave it out for the built-in rubric)");
            else
                st->rubric = xstrdup(str);
        }
    }

    if (scorer == SCORER_LEARNED && get_str(l, g, path, "weights", 1, &str) > 0) {
        s = config_setting_get_member(g, "weights");
        if (*str == '\0') {
            conf_err(l, s, path, "weights", "must not be empty");
        } else {
            char err[256] = "";

            st->weights_path = resolve_path(l, str);
            st->weights = learned_load(st->weights_path, err, sizeof(err));
            /* learned.c's messages may already start with the path. */
            if (st->weights == NULL &&
                strncmp(err, st->weights_path, strlen(st->weights_path)) == 0)
                conf_err(l, s, path, "weights", "cannot load %s", err);
            else if (st->weights == NULL)
                conf_err(l, s, path, "weights", "cannot load %s: %s", quote(qb, st->weights_path),
                         err[0] ? err : "unknown error");
            /* The scorer reads its peers' answers: the stage's other models. */
            else if (st->nmodels > 0 && learned_peers(st->weights) + 1 != st->nmodels)
                conf_err(l, s, path, "weights",
                         "%s reads the answers of %zu peer model%s (%s), so the stage needs "
                         "'models' with its own model and %zu more (it has %zu)",
                         quote(qb, st->weights_path), learned_peers(st->weights),
                         learned_peers(st->weights) == 1 ? "" : "s",
                         learned_peers(st->weights) ? learned_peer_names(st->weights) : "none",
                         learned_peers(st->weights), st->nmodels - 1);
        }
    }

    if (scorer == SCORER_HTTP && get_str(l, g, path, "url", 1, &str) > 0) {
        if (!url_ok(str, http_schemes))
            conf_err(l, config_setting_get_member(g, "url"), path, "url",
                     "expected an http:// or https:// URL");
        else
            st->url = xstrdup(str);
    }

    if ((scorer == SCORER_JUDGE || scorer == SCORER_HTTP) &&
        get_int(l, g, path, "timeout_ms", 0, 1, MAX_TIMEOUT_MS, &v) > 0)
        st->scorer_timeout_ms = v;
    check_stage_anthropic(l, g, path, st);
}

static void load_fallback(struct load *l, const config_setting_t *g, const char *path,
                          struct route *r)
{
    const config_setting_t *list = get_list(l, g, path, "fallback", 1, 1);
    unsigned n = list ? (unsigned)config_setting_length(list) : 0;
    char *fpath;

    if (list == NULL)
        return;
    if (n == 0) {
        conf_err(l, list, path, "fallback", "needs at least one model");
        return;
    }
    fpath = xasprintf("%s.fallback", path);
    r->stages = xcalloc(n, sizeof(*r->stages));
    r->nstages = n;
    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, i);
        char seg[24];

        snprintf(seg, sizeof(seg), "[%u]", i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            conf_err(l, e, fpath, seg, "expected a model name (a string)");
            stage_single(&r->stages[i], NULL, (int)setting_line(e));
        } else {
            stage_single(&r->stages[i], resolve_model(l, e, fpath, seg), (int)setting_line(e));
        }
    }
    free(fpath);
}

static void load_cascade(struct load *l, const config_setting_t *g, const char *path,
                         struct route *r)
{
    const config_setting_t *list = get_list(l, g, path, "cascade", 1, 0);
    unsigned n = list ? (unsigned)config_setting_length(list) : 0;

    if (list == NULL)
        return;
    if (n == 0) {
        conf_err(l, list, path, "cascade", "needs at least one stage");
        return;
    }
    r->stages = xcalloc(n, sizeof(*r->stages));
    r->nstages = n;
    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, i);
        char *spath = xasprintf("%s.cascade.[%u]", path, i);

        /* The last stage always accepts; a scorer there is still run and
         * recorded in the trace, so it is allowed. */
        if (!config_setting_is_group(e))
            conf_err(l, e, spath, NULL, "expected a group { ... }");
        else
            load_stage(l, e, spath, &r->stages[i]);
        free(spath);
    }
}

/* How many distinct models a route's stages name (one run calls each at
 * most once). */
static size_t route_models(const struct route *r)
{
    const struct model *seen[ROUTE_MODELS_MAX + 1];
    size_t n = 0;

    for (size_t i = 0; i < r->nstages; i++) {
        for (size_t j = 0; j < r->stages[i].nmodels && n <= ROUTE_MODELS_MAX; j++) {
            const struct model *m = r->stages[i].models[j];
            size_t k = 0;

            while (k < n && seen[k] != m)
                k++;
            if (m && k == n)
                seen[n++] = m;
        }
    }
    return n;
}

static const char *const route_keys[] = {
    "name",     "model", "fallback",    "cascade",
    "max_cost", "cache", "cache_ttl_s", "cache_nondeterministic",
    NULL};

static void load_route(struct load *l, const config_setting_t *list, unsigned idx, const char *path)
{
    const config_setting_t *g = config_setting_get_elem(list, idx);
    struct route *r = &l->cfg->routes[idx];
    static const char *const kinds[] = {"model", "fallback", "cascade"};
    const config_setting_t *kind_s[3];
    const struct model *clash;
    const char *s;
    char qb[QBUF];
    int nkinds = 0;

    r->line = (int)setting_line(g);
    r->cache = 1;
    check_keys(l, g, path, route_keys);
    r->name = get_elem_name(l, list, idx, path, "route");
    /* A request's `model` names a route or a model; the same name for both
     * would make it ambiguous. */
    if (r->name && (clash = find_model(l->cfg, r->name)) != NULL) {
        char *w =
            where(l, config_setting_get_elem(l->models_list, (unsigned)(clash - l->cfg->models)));

        conf_err(l, config_setting_get_member(g, "name"), path, "name",
                 "route %s has the same name as a model (defined at %s); a request's "
                 "\"model\" would be ambiguous",
                 quote(qb, r->name), w);
        free(w);
    }

    for (int k = 0; k < 3; k++) {
        kind_s[k] = config_setting_get_member(g, kinds[k]);
        nkinds += kind_s[k] != NULL;
    }
    if (nkinds == 0) {
        conf_err(l, g, path, NULL, "needs one of 'model', 'fallback' or 'cascade'");
    } else if (nkinds > 1) {
        for (int k = 2; k >= 0; k--) {
            if (kind_s[k]) {
                conf_err(l, kind_s[k], path, kinds[k],
                         "'model', 'fallback' and 'cascade' are mutually exclusive");
                break;
            }
        }
    } else if (kind_s[0]) {
        r->kind = ROUTE_SINGLE;
        if (get_str(l, g, path, "model", 1, &s) > 0) {
            r->stages = xcalloc(1, sizeof(*r->stages));
            r->nstages = 1;
            stage_single(&r->stages[0], resolve_model(l, kind_s[0], path, "model"),
                         (int)setting_line(kind_s[0]));
        }
    } else if (kind_s[1]) {
        r->kind = ROUTE_FALLBACK;
        load_fallback(l, g, path, r);
    } else {
        r->kind = ROUTE_CASCADE;
        load_cascade(l, g, path, r);
    }
    if (route_models(r) > ROUTE_MODELS_MAX)
        conf_err(l, g, path, NULL,
                 "names more than %d distinct models; a route may name at most %d",
                 ROUTE_MODELS_MAX, ROUTE_MODELS_MAX);

    get_num(l, g, path, "max_cost", 0, 0, HUGE_VAL, &r->max_cost);
    get_bool(l, g, path, "cache", &r->cache);
    get_int(l, g, path, "cache_ttl_s", 0, 0, MAX_TTL_S, &r->cache_ttl_s);
    get_bool(l, g, path, "cache_nondeterministic", &r->cache_nondeterministic);
}

/* Routes are optional: every model gets an implicit route anyway. The array
 * has room for those too, so pointers into it never move. */
static void load_routes(struct load *l, const config_setting_t *root)
{
    struct config *cfg = l->cfg;
    const config_setting_t *list = NULL;
    unsigned n = 0;

    if (config_setting_get_member(root, "routes")) {
        list = get_list(l, root, "", "routes", 0, 0);
        n = list ? (unsigned)config_setting_length(list) : 0;
    }
    cfg->routes = xcalloc(n + cfg->nmodels, sizeof(*cfg->routes));
    cfg->nroutes = n;
    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, i);
        char *path = elem_path("routes", e, i);

        if (!config_setting_is_group(e))
            conf_err(l, e, path, NULL, "expected a group { ... }");
        else
            load_route(l, list, i, path);
        free(path);
    }
}

/* One single-model route per model, so a request can name any model. Only
 * called on a clean load: every model then has a name. */
/* Every route exists now: point each key at its routes. */
static void resolve_key_routes(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nkeys; i++) {
        struct client_key *k = &cfg->keys[i];

        for (size_t j = 0; j < k->nroutes; j++) {
            k->routes[j] = config_route(cfg, k->route_names[j]);
            sl_assert(k->routes[j] != NULL); /* checked while loading */
        }
    }
}

static void add_implicit_routes(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nmodels; i++) {
        struct model *m = &cfg->models[i];
        struct route *r = &cfg->routes[cfg->nroutes++];

        r->name = xstrdup(m->name);
        r->kind = ROUTE_SINGLE;
        r->stages = xcalloc(1, sizeof(*r->stages));
        r->nstages = 1;
        stage_single(&r->stages[0], m, m->line);
        r->cache = 1;
        r->implicit = 1;
        r->line = m->line;
    }
}

static const char *const top_keys[] = {"listen",
                                       "workers",
                                       "max_body_bytes",
                                       "max_header_bytes",
                                       "max_connections",
                                       "max_inflight",
                                       "drain_timeout_s",
                                       "client_timeout_s",
                                       "client_header_timeout_s",
                                       "client_body_timeout_s",
                                       "max_stream_memory_bytes",
                                       "admin",
                                       "log",
                                       "trace",
                                       "otel",
                                       "cache",
                                       "redis",
                                       "providers",
                                       "models",
                                       "routes",
                                       "keys",
                                       NULL};
static const char *const admin_keys[] = {"listen", "key_env", NULL};

static void load_admin(struct load *l, const config_setting_t *root)
{
    const config_setting_t *g = get_group(l, root, "", "admin");
    struct admin_conf *a = &l->cfg->admin;
    const char *s;
    char qb[QBUF];

    a->key_env = xstrdup("SLUICE_ADMIN_KEY");
    if (g != NULL) {
        check_keys(l, g, "admin", admin_keys);
        if (get_str(l, g, "admin", "listen", 1, &s) > 0) {
            const char *why = listen_check(s);

            if (why)
                conf_err(l, config_setting_get_member(g, "listen"), "admin", "listen",
                         "%s (got %s)", why, quote(qb, s));
            else
                a->listen = xstrdup(s);
        }
        if (get_str(l, g, "admin", "key_env", 0, &s) > 0) {
            if (!env_name_ok(s)) {
                conf_err(l, config_setting_get_member(g, "key_env"), "admin", "key_env",
                         "must be the NAME of an environment variable, not the key itself");
            } else {
                free(a->key_env);
                a->key_env = xstrdup(s);
            }
        }
    }
    s = getenv(a->key_env);
    a->key = s && *s ? xstrdup(s) : NULL;
}

static const char *const key_keys[] = {"name", "key_sha256", "routes",        "rpm",
                                       "tpm",  "budget_usd", "budget_period", NULL};
static const char *const budget_periods[] = {"day", "month", "total"};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void load_key(struct load *l, const config_setting_t *list, unsigned idx, const char *path)
{
    const config_setting_t *g = config_setting_get_elem(list, idx), *routes;
    struct client_key *k = &l->cfg->keys[idx];
    const char *s;
    char qb[QBUF];
    int period;

    k->line = (int)setting_line(g);
    check_keys(l, g, path, key_keys);
    k->name = get_elem_name(l, list, idx, path, "key");
    if (get_str(l, g, path, "key_sha256", 1, &s) > 0) {
        int ok = strlen(s) == 64;

        for (int i = 0; ok && i < 32; i++) {
            int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);

            ok = hi >= 0 && lo >= 0;
            if (ok) /* -1 << 4 would be undefined */
                k->sha256[i] = (unsigned char)(hi << 4 | lo);
        }
        if (!ok)
            conf_err(l, config_setting_get_member(g, "key_sha256"), path, "key_sha256",
                     "expected the 64 hex digits of the key's SHA-256 (sluice keygen prints "
                     "it), never the key itself");
    }
    routes = get_list(l, g, path, "routes", 0, 1);
    if (routes) {
        unsigned n = (unsigned)config_setting_length(routes);

        k->routes = xcalloc(n ? n : 1, sizeof(*k->routes));
        k->route_names = xcalloc(n + 1, sizeof(*k->route_names));
        for (unsigned i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(routes, i);
            char *epath = xasprintf("%s.routes.[%u]", path, i);
            const char *rn = config_setting_get_string(e);

            /* A model's own route is made after loading: accept its name. */
            if (rn == NULL)
                conf_err(l, e, epath, NULL, "expected a route name");
            else if (config_route(l->cfg, rn) == NULL && find_model(l->cfg, rn) == NULL)
                conf_err(l, e, epath, NULL, "unknown route %s", quote(qb, rn));
            else
                k->route_names[k->nroutes++] = xstrdup(rn);
            free(epath);
        }
    }
    get_int(l, g, path, "rpm", 0, 0, 100000000, &k->rpm);
    get_int(l, g, path, "tpm", 0, 0, 1L << 40, &k->tpm);
    get_num(l, g, path, "budget_usd", 0, 0, HUGE_VAL, &k->budget_usd);
    k->budget_period = BUDGET_MONTH;
    if (get_enum(l, g, path, "budget_period", budget_periods, ARRAY_LEN(budget_periods), &period) >
        0)
        k->budget_period = (enum budget_period)period;
}

static void load_keys(struct load *l, const config_setting_t *root)
{
    const config_setting_t *list = get_list(l, root, "", "keys", 0, 0);

    if (list == NULL)
        return;
    l->cfg->nkeys = (size_t)config_setting_length(list);
    l->cfg->keys = xcalloc(l->cfg->nkeys ? l->cfg->nkeys : 1, sizeof(*l->cfg->keys));
    list_each(l, list, "keys", load_key);
    for (size_t i = 0; i < l->cfg->nkeys; i++)
        for (size_t j = 0; j < i; j++)
            if (memcmp(l->cfg->keys[i].sha256, l->cfg->keys[j].sha256, 32) == 0 &&
                l->cfg->keys[i].name && l->cfg->keys[j].name)
                conf_err(l, config_setting_get_elem(list, (unsigned)i), "keys",
                         l->cfg->keys[i].name, "the same key_sha256 as key \"%s\"",
                         l->cfg->keys[j].name);
}

static void load_root(struct load *l, const config_setting_t *root)
{
    struct config *cfg = l->cfg;
    const config_setting_t *list;
    const char *s;
    long v;

    check_keys(l, root, "", top_keys);

    cfg->listen = xstrdup(DEF_LISTEN);
    if (get_str(l, root, "", "listen", 0, &s) > 0) {
        const char *why = listen_check(s);
        char qb[QBUF];

        if (why) {
            conf_err(l, config_setting_get_member(root, "listen"), "", "listen", "%s (got %s)", why,
                     quote(qb, s));
        } else {
            free(cfg->listen);
            cfg->listen = xstrdup(s);
        }
    }
    get_int(l, root, "", "workers", 0, 0, 256, &cfg->workers);
    cfg->max_body_bytes = (size_t)DEF_MAX_BODY_BYTES;
    if (get_int(l, root, "", "max_body_bytes", 0, 1024, (long)BODY_HARD_MAX, &v) > 0)
        cfg->max_body_bytes = (size_t)v;
    cfg->max_header_bytes = (size_t)DEF_MAX_HEADER_BYTES;
    if (get_int(l, root, "", "max_header_bytes", 0, 1024, 1L << 20, &v) > 0)
        cfg->max_header_bytes = (size_t)v;
    cfg->max_connections = DEF_MAX_CONNECTIONS;
    get_int(l, root, "", "max_connections", 0, 1, 1048576, &cfg->max_connections);
    cfg->max_inflight = DEF_MAX_INFLIGHT;
    get_int(l, root, "", "max_inflight", 0, 0, 1048576, &cfg->max_inflight);
    cfg->drain_timeout_s = DEF_DRAIN_TIMEOUT_S;
    get_int(l, root, "", "drain_timeout_s", 0, 0, 3600, &cfg->drain_timeout_s);
    cfg->client_timeout_s = DEF_CLIENT_TIMEOUT_S;
    get_int(l, root, "", "client_timeout_s", 0, 1, 3600, &cfg->client_timeout_s);
    cfg->client_header_timeout_s = DEF_CLIENT_HEADER_TIMEOUT_S;
    get_int(l, root, "", "client_header_timeout_s", 0, 1, 3600, &cfg->client_header_timeout_s);
    cfg->client_body_timeout_s = DEF_CLIENT_BODY_TIMEOUT_S;
    get_int(l, root, "", "client_body_timeout_s", 0, 1, 3600, &cfg->client_body_timeout_s);
    cfg->max_stream_memory_bytes = (size_t)DEF_MAX_STREAM_MEMORY_BYTES;
    if (get_int(l, root, "", "max_stream_memory_bytes", 0, (long)STREAM_BUF_MAX, 1L << 40, &v) > 0)
        cfg->max_stream_memory_bytes = (size_t)v;
    load_admin(l, root);

    load_log(l, root);
    load_trace(l, root);
    load_otel(l, root);
    load_cache(l, root);
    load_redis(l, root);
    /* Providers, then models, then routes: each refers to the one before,
     * whatever order the file lists them in. */
    list = list_begin(l, root, "providers", "provider", &cfg->nproviders);
    l->providers_bad = list == NULL;
    cfg->providers = xcalloc(cfg->nproviders, sizeof(*cfg->providers));
    list_each(l, list, "providers", load_provider);
    list = list_begin(l, root, "models", "model", &cfg->nmodels);
    l->models_bad = list == NULL;
    l->models_list = list;
    cfg->models = xcalloc(cfg->nmodels, sizeof(*cfg->models));
    list_each(l, list, "models", load_model);
    load_routes(l, root);
    load_keys(l, root); /* keys name routes */
}

/* ---- load -------------------------------------------------------------- */

static void stage_free(struct stage *st)
{
    free(st->models);
    free(st->rubric);
    free(st->weights_path);
    if (st->weights)
        learned_free(st->weights);
    free(st->url);
}

/* Free a snapshot, complete or half-built (every field NULL or owned). */
static void config_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nproviders; i++) {
        struct provider *p = &cfg->providers[i];

        free(p->name);
        free(p->base_url);
        free(p->api_key_env);
        if (p->api_key) {
            /* Do not leave the secret lying around in freed heap memory. */
            explicit_bzero(p->api_key, strlen(p->api_key));
            free(p->api_key);
        }
        free(p->api_version);
        free(p->anthropic_version);
        free(p->ca_file);
        for (size_t k = 0; k < p->nheaders; k++) {
            free(p->headers[k].name);
            free(p->headers[k].value);
        }
        free(p->headers);
    }
    free(cfg->providers);
    for (size_t i = 0; i < cfg->nmodels; i++) {
        free(cfg->models[i].name);
        free(cfg->models[i].id);
    }
    free(cfg->models);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct route *r = &cfg->routes[i];

        free(r->name);
        for (size_t k = 0; k < r->nstages; k++)
            stage_free(&r->stages[k]);
        free(r->stages);
    }
    free(cfg->routes);
    redis_conf_clear(&cfg->redis);
    free(cfg->admin.listen);
    free(cfg->admin.key_env);
    free(cfg->admin.key);
    free(cfg->trace.stream);
    free(cfg->otel.endpoint);
    free(cfg->otel.service_name);
    for (size_t k = 0; k < cfg->otel.nheaders; k++) {
        free(cfg->otel.headers[k].name);
        /* Header values may be credentials (headers_env). */
        explicit_bzero(cfg->otel.headers[k].value, strlen(cfg->otel.headers[k].value));
        free(cfg->otel.headers[k].value);
    }
    free(cfg->otel.headers);
    for (size_t i = 0; i < cfg->nkeys; i++) {
        for (size_t j = 0; cfg->keys[i].route_names && cfg->keys[i].route_names[j]; j++)
            free(cfg->keys[i].route_names[j]);
        free(cfg->keys[i].route_names);
        free(cfg->keys[i].name);
        free(cfg->keys[i].routes);
    }
    free(cfg->keys);
    free(cfg->log.path);
    free(cfg->trace.path);
    free(cfg->listen);
    free(cfg->path);
    free(cfg);
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

static int same_file(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Put the messages in file order, then line order, as a compiler would;
 * files come in the order their first message was made. Messages were made
 * in parse order (providers before models, whatever the file's order).
 * Insertion sort, stable: there are at most MAX_ERRORS. */
static void sort_errors(struct load *l)
{
    struct config_errors *errs = l->errs;
    unsigned *rank = xcalloc(errs->n, sizeof(*rank));

    for (size_t i = 0; i < errs->n; i++) {
        size_t j = 0;

        while (!same_file(l->pos[j].file, l->pos[i].file))
            j++;
        rank[i] = (unsigned)j;
    }
    for (size_t i = 1; i < errs->n; i++) {
        struct err_pos p = l->pos[i];
        char *msg = errs->msgs[i];
        unsigned r = rank[i];
        size_t j = i;

        while (j > 0 && (rank[j - 1] > r || (rank[j - 1] == r && l->pos[j - 1].line > p.line))) {
            l->pos[j] = l->pos[j - 1];
            errs->msgs[j] = errs->msgs[j - 1];
            rank[j] = rank[j - 1];
            j--;
        }
        l->pos[j] = p;
        errs->msgs[j] = msg;
        rank[j] = r;
    }
    free(rank);
}

/* Parse from fp or, when fp is NULL, from text; then check and build. name
 * is FILE in messages and its directory is where @include and relative
 * paths start. Returns a snapshot with one reference, or NULL with errs
 * filled. */
static struct config *load_common(const char *name, FILE *fp, const char *text,
                                  struct config_errors *errs)
{
    struct load l = {.name = name, .errs = errs};
    config_t lc;
    int ok;

    l.dir = dir_of(name);
    config_init(&lc);
    /* No CONFIG_OPTION_AUTOCONVERT: the getters above accept ints and floats
     * themselves and report a string where a number belongs. */
#ifdef SLUICE_FUZZ
    /* A fuzzer would find @include "../../dev/zero". Every path under a
     * directory that does not exist fails, ".." included. */
    config_set_include_dir(&lc, "/nonexistent-sluice-fuzz");
#else
    config_set_include_dir(&lc, l.dir);
#endif
    ok = fp ? config_read(&lc, fp) : config_read_string(&lc, text);
    if (!ok) {
        char *file = display_file(&l, config_error_file(&lc));

        errors_add(errs, xasprintf("%s:%d: syntax: %s", file, config_error_line(&lc),
                                   config_error_text(&lc) ? config_error_text(&lc) : "error"));
        free(file);
        config_destroy(&lc);
        free(l.dir);
        return NULL;
    }

    l.cfg = xcalloc(1, sizeof(*l.cfg));
    l.cfg->refs = 1;
    l.cfg->path = xstrdup(name);
    load_root(&l, config_root_setting(&lc));
    if (l.nerrs == 0) {
        add_implicit_routes(l.cfg);
        resolve_key_routes(l.cfg);
    }
    sort_errors(&l); /* before config_destroy: l.pos points into lc */
    free(l.pos);
    config_destroy(&lc);
    free(l.dir);

    if (l.nerrs > errs->n)
        errors_add(errs, xasprintf("%s: %zu more errors not shown", name, l.nerrs - errs->n));
    if (l.nerrs > 0) {
        config_free(l.cfg);
        return NULL;
    }
    return l.cfg;
}

static void errors_init(struct config_errors *errs)
{
    errs->msgs = NULL;
    errs->n = 0;
}

struct config *config_load(const char *path, struct config_errors *errs)
{
    struct config_errors local;
    struct config *cfg = NULL;
    struct stat st;
    FILE *fp;

    if (errs == NULL)
        errs = &local;
    errors_init(errs);
    /* Open it ourselves: libconfig reports a missing file as a bare
     * "file I/O error", and a directory would make its scanner exit(). */
    fp = fopen(path, "r");
    if (fp == NULL) {
        errors_add(errs, xasprintf("%s: cannot open: %s", path, strerror(errno)));
    } else if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
        errors_add(errs, xasprintf("%s: not a regular file", path));
    } else {
        cfg = load_common(path, fp, NULL, errs);
    }
    if (fp)
        fclose(fp);
    if (errs == &local)
        config_errors_free(&local);
    return cfg;
}

struct config *config_load_string(const char *text, const char *name, struct config_errors *errs)
{
    struct config_errors local;
    struct config *cfg;

    if (errs == NULL)
        errs = &local;
    errors_init(errs);
    cfg = load_common(name, NULL, text, errs);
    if (errs == &local)
        config_errors_free(&local);
    return cfg;
}

void config_errors_free(struct config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}

/* ---- references and the current snapshot ------------------------------- */

struct config *config_ref(struct config *cfg)
{
    __atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
    return cfg;
}

/* The last reference frees. Acquire-release so every write another thread
 * made to the snapshot (there are none after load, but refcounts are cheap
 * to get right) happens before the free. */
void config_unref(struct config *cfg)
{
    if (cfg == NULL)
        return;
    if (__atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(cfg);
}

const struct route *config_route(const struct config *cfg, const char *name)
{
    /* While a file loads, a route without a name (an error already) has
     * none. */
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].name && strcmp(cfg->routes[i].name, name) == 0)
            return &cfg->routes[i];
    return NULL;
}

const struct model *config_model(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nmodels; i++)
        if (strcmp(cfg->models[i].name, name) == 0)
            return &cfg->models[i];
    return NULL;
}

const struct client_key *config_key_by_hash(const struct config *cfg, const unsigned char *sha)
{
    const struct client_key *found = NULL;

    /* No early exit: the time taken says nothing about which key matched. */
    for (size_t i = 0; i < cfg->nkeys; i++)
        if (CRYPTO_memcmp(cfg->keys[i].sha256, sha, 32) == 0)
            found = &cfg->keys[i];
    return found;
}

int config_key_allows(const struct client_key *k, const struct route *r)
{
    if (k->nroutes == 0)
        return 1;
    for (size_t i = 0; i < k->nroutes; i++)
        if (k->routes[i] == r)
            return 1;
    return 0;
}

const struct provider *config_provider(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nproviders; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

struct config *config_current(void)
{
    struct config *cfg;

    pthread_mutex_lock(&current_lock);
    cfg = current ? config_ref(current) : NULL;
    pthread_mutex_unlock(&current_lock);
    return cfg;
}

void config_swap(struct config *cfg)
{
    struct config *old;

    pthread_mutex_lock(&current_lock);
    old = current;
    current = cfg;
    pthread_mutex_unlock(&current_lock);
    /* Outside the lock: the last unref frees, which may load-free weights. */
    config_unref(old);
}
