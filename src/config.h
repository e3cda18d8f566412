/* config.h - gateway.conf, loaded into an immutable, refcounted snapshot.
 *
 * config_load() parses a libconfig file, checks it completely (unknown keys,
 * wrong types, dangling references, duplicate names, bad values) and either
 * returns a snapshot or the full list of errors as "FILE:LINE: key.path:
 * message". A snapshot never changes once loaded; a reload builds a new one
 * and swaps the pointer (config_swap), and in-flight requests keep the one
 * they started with until they drop their reference.
 *
 * Secrets never live in the file: a provider names an environment variable
 * (api_key_env) and the key is read from the environment at load time.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include "conf_check.h"
#include "log.h"

#include <stddef.h>

/* The HTTP version spoken to a provider. */
enum http_version {
    HTTP_1_1, /* keep-alive HTTP/1.1 (the default) */
    HTTP_2,   /* HTTP/2 over https:// when the server offers it (ALPN) */
};

enum provider_type {
    PROVIDER_OPENAI,    /* any OpenAI-compatible server */
    PROVIDER_AZURE,     /* Azure OpenAI: deployment URL, api-key, api-version */
    PROVIDER_ANTHROPIC, /* Anthropic Messages API: x-api-key, anthropic-version */
};

struct header_kv {
    char *name;
    char *value;
};

struct provider {
    char *name;
    enum provider_type type;
    char *base_url; /* without a trailing slash */
    char *api_key_env;
    char *api_key;     /* from the environment; NULL if unset. Never logged. */
    char *api_version; /* azure only */
    /* anthropic only: the anthropic-version header (default "2023-06-01"),
     * and max_tokens when the client sent none (default 4096; the
     * Messages API requires it). */
    char *anthropic_version;
    long default_max_tokens;
    struct header_kv *headers;
    size_t nheaders;
    long timeout_ms;            /* total, default 120000 */
    long connect_timeout_ms;    /* default 5000 */
    long first_byte_timeout_ms; /* default: timeout_ms */
    long idle_timeout_ms;       /* stream idle, default 30000 */
    /* Retries of one call on a connect failure, a timeout, a 5xx or a 429,
     * with exponential backoff and full jitter; never after a byte reached
     * the client. */
    long retries;                   /* default 0 */
    long retry_backoff_ms;          /* first backoff bound, default 200 */
    long retry_max_backoff_ms;      /* default 5000 */
    long retry_after_max_ms;        /* a longer Retry-After is not waited for: default 30000 */
    int passthrough_auth;           /* forward the client's Authorization (default 0) */
    int trace_context;              /* send it traceparent when otel.propagate is on (default 1) */
    enum http_version http_version; /* default HTTP_1_1 */
    char *ca_file;                  /* CA bundle to verify the provider with; NULL: the system's */
    /* Circuit breaker: opens after `failures` consecutive failures, or when
     * at least `min_requests` calls in the last `window_s` failed at
     * `error_rate` or more; after `cooldown_s` one probe goes through. */
    long breaker_failures;     /* default 5; 0 = never on a streak */
    double breaker_error_rate; /* default 0.5; 0 = never on a rate */
    long breaker_min_requests; /* default 20 */
    long breaker_window_s;     /* default 60 */
    long breaker_cooldown_s;   /* default 30 */
    int line;
};

struct model {
    char *name;
    struct provider *provider;
    char *id;               /* the upstream model id (azure: the deployment); default name */
    double input_per_mtok;  /* USD per 1M prompt tokens */
    double output_per_mtok; /* USD per 1M completion tokens */
    /* USD per 1M prompt tokens read from, and written to, the provider's
     * prompt cache; < 0 (unset) = input_per_mtok. */
    double cache_read_per_mtok;
    double cache_write_per_mtok;
    long default_max_tokens; /* anthropic: 0 = the provider's */
    /* Per-model overrides of the provider's call policy: 0 (or -1 for
     * retries) = the provider's. */
    long timeout_ms;
    long connect_timeout_ms;
    long first_byte_timeout_ms;
    long idle_timeout_ms;
    long retries;
    int line;
    /* The one mutable field: a running mean of this model's completion
     * tokens, for budget estimates. Written and read by the loop thread
     * only; 0 until the first answer. */
    double est_completion_tokens;
};

enum scorer_kind {
    SCORER_NONE,      /* plain fallback stage: accept any successful answer */
    SCORER_RULES,     /* veto empty, refusal, truncated, invalid JSON */
    SCORER_LOGPROB,   /* mean token probability */
    SCORER_AGREEMENT, /* share of parallel answers that agree */
    SCORER_JUDGE,     /* LLM-as-judge */
    SCORER_LEARNED,   /* logistic regression from sluice-tune */
    SCORER_HTTP,      /* external scorer service */
};

struct learned_model; /* scorer.h: weights loaded from a sluice-tune file */

struct stage {
    struct model **models; /* 1 model, or several for agreement */
    size_t nmodels;
    enum scorer_kind scorer;
    double threshold;    /* accept when score >= threshold */
    int samples;         /* agreement over n samples of one model; 0 = off */
    struct model *judge; /* judge: the judging model */
    char *rubric;        /* judge: rubric prompt; NULL = built-in */
    char *weights_path;  /* learned */
    struct learned_model *weights;
    char *url; /* http scorer */
    long scorer_timeout_ms;
    int line;
};

enum route_kind {
    ROUTE_SINGLE,   /* one model */
    ROUTE_FALLBACK, /* next model on a failure before the first byte */
    ROUTE_CASCADE,  /* scored escalation */
};

struct route {
    char *name;
    enum route_kind kind;
    struct stage *stages;
    size_t nstages;
    double max_cost;  /* USD per request, 0 = no budget */
    int cache;        /* 0 = never cache this route */
    long cache_ttl_s; /* 0 = the cache's ttl_s */
    int cache_nondeterministic;
    int implicit; /* a model's own single-model route */
    int line;
};

enum cache_backend {
    CACHE_MEMORY,
    CACHE_REDIS,
};

struct cache_conf {
    enum cache_backend backend; /* redis: the redis block's */
    long ttl_s;
    long timeout_ms;
    size_t max_value_bytes;
    size_t max_bytes;  /* memory backend */
    long local_ttl_ms; /* redis: how long a worker-local copy of a hit is trusted */
    size_t local_max_bytes;
};

/* The redis block: the one Redis that the cache, the limits and budgets and
 * the trace stream share (redis.h). */
struct redis_conf {
    char *url;          /* redis[s]://HOST[:PORT][/DB]; NULL: none (or sentinels/cluster only) */
    char *username;     /* ACL user, or NULL */
    char *password_env; /* the variable's name */
    char *password;     /* its value at load time; never logged or shown */
    char *tls_ca_file;
    char *tls_cert_file; /* mTLS: the client's certificate and key */
    char *tls_key_file;
    char *tls_server_name; /* the name the server's certificate must carry */
    char **sentinels;      /* HOST:PORT each */
    size_t nsentinels;
    char *master_name;
    char **cluster_nodes; /* HOST:PORT each */
    size_t ncluster_nodes;
    long timeout_ms;
    int configured; /* a Redis is in use (a redis block, or an old url key) */
};

struct trace_conf {
    char *path; /* JSONL file; NULL = none */
    int include_content;
    int stream_on; /* also XADD each record to a Redis Stream (the redis block's) */
    char *stream;  /* the stream's key, default "sluice:trace" */
    long maxlen;     /* XADD MAXLEN ~ this, default 100000 */
};

/* OpenTelemetry trace export (otel.c, otel_export.c). With no endpoint,
 * nothing is traced. */
struct otel_conf {
    char *endpoint;          /* collector base URL; spans go to {endpoint}/v1/traces */
    struct header_kv *headers; /* sent with every export; values from `headers` (plain)
                                * or `headers_env` (read from the environment) */
    size_t nheaders;
    char *service_name;  /* resource service.name, default "sluice" */
    double sample_ratio; /* share of requests without a traceparent that are traced */
    int capture_content; /* prompts and answers in spans (and the dashboard); default off */
    int propagate;       /* send providers traceparent/tracestate; default on */
    long timeout_ms;     /* one export's connect + transfer limit */
    long max_queue;      /* spans waiting for export; more are dropped and counted */
};

enum budget_period {
    BUDGET_DAY,
    BUDGET_MONTH,
    BUDGET_TOTAL,
};

/* A client key: a tenant. Only the SHA-256 of the key is configured. */
struct client_key {
    char *name;
    unsigned char sha256[32];
    const struct route **routes; /* allowed routes; none listed = all */
    size_t nroutes;
    char **route_names; /* while loading: routes is filled once every route exists */
    long rpm;           /* requests per minute, 0 = no limit */
    long tpm;           /* tokens per minute, 0 = no limit */
    double budget_usd;  /* spend per period, 0 = no limit */
    enum budget_period budget_period;
    int line;
};

struct admin_conf {
    char *listen;  /* the admin API's own "host:port"; NULL = no admin API */
    char *key_env; /* environment variable holding the admin key */
    char *key;     /* from the environment; NULL = admin API refuses all */
};

struct config {
    int refs; /* atomic; see config_ref/config_unref */
    char *path;
    char *listen;                   /* "host:port" */
    long max_inflight;              /* requests at once; past it a fast 503. 0 = no limit */
    long drain_timeout_s;           /* SIGTERM: how long in-flight requests may take */
    long client_timeout_s;          /* an idle or slow client connection is closed */
    long client_header_timeout_s;   /* a request's line and headers must arrive in this */
    long client_body_timeout_s;     /* and then its body in this */
    size_t max_stream_memory_bytes; /* what all streams' unsent bytes may hold */
    struct admin_conf admin;
    long workers; /* 0 = one per core */
    size_t max_body_bytes;
    size_t max_header_bytes; /* request line + headers */
    long max_connections;
    struct log_conf log;
    struct trace_conf trace;
    struct otel_conf otel;
    struct cache_conf cache;
    struct redis_conf redis;
    struct provider *providers;
    size_t nproviders;
    struct model *models;
    size_t nmodels;
    /* Declared routes first, then one implicit single-model route per model
     * whose name is not taken by a declared route. */
    struct route *routes;
    size_t nroutes;
    /* Client keys; with none, /v1 needs no key. */
    struct client_key *keys;
    size_t nkeys;
};

/* The schema: one table of keys per group of gateway.conf (config.c, where
 * "how to add a key" is said). The checker, admin's config dump and the
 * test against gateway.conf.example all read these. Each row's field is in
 * the struct named: top in struct config, admin in admin_conf, log in
 * log_conf, trace in trace_conf, otel in otel_conf, cache in cache_conf,
 * redis in redis_conf, provider and breaker in provider, model in model,
 * route in route, key in client_key; stage rows have no fields. */
extern const struct conf_key config_keys_top[], config_keys_admin[], config_keys_log[],
    config_keys_trace[], config_keys_otel[], config_keys_cache[], config_keys_redis[],
    config_keys_provider[], config_keys_breaker[], config_keys_model[], config_keys_stage[],
    config_keys_route[], config_keys_key[];

/* Load and validate a config file. On success return a snapshot with one
 * reference, owned by the caller. On failure return NULL and fill errs (which
 * the caller frees with config_errors_free). */
struct config *config_load(const char *path, struct config_errors *errs);
/* The same, from a string; `name` is used as FILE in error messages. */
struct config *config_load_string(const char *text, const char *name, struct config_errors *errs);
void config_errors_free(struct config_errors *errs);
/* Free what a redis_conf holds (the password wiped) and zero it. */
void redis_conf_clear(struct redis_conf *rc);

struct config *config_ref(struct config *cfg);
void config_unref(struct config *cfg);

/* Lookups by exact name; NULL when absent. */
const struct route *config_route(const struct config *cfg, const char *name);
const struct model *config_model(const struct config *cfg, const char *name);
const struct provider *config_provider(const struct config *cfg, const char *name);
/* "openai", "azure" or "anthropic", as gateway.conf spells it. */
const char *config_provider_type_name(enum provider_type t);
/* "1.1" or "2", as gateway.conf spells it. */
const char *config_http_version_name(enum http_version v);
/* The client key whose SHA-256 is sha (32 bytes): every key is compared, in
 * constant time, so timing tells nothing. NULL if none. */
const struct client_key *config_key_by_hash(const struct config *cfg, const unsigned char *sha);
/* May key k use route r? */
int config_key_allows(const struct client_key *k, const struct route *r);

/* The process-wide current snapshot. config_current() returns a new
 * reference (the caller unrefs it); config_swap() installs cfg (taking the
 * caller's reference) and drops the old one. Both are thread-safe. */
struct config *config_current(void);
void config_swap(struct config *cfg);

#endif
