/* config.c - gateway.conf's schema: one table of keys per group (below),
 * the checks that go beyond a key's type and range, and the immutable
 * refcounted snapshot built from a file. See config.h; gateway.conf.example
 * is the reference for every key. The generic machinery (libconfig's tree
 * through typed getters, messages, unknown keys, reading a table into a
 * struct) is conf_check.c, which knows no key of sluice's.
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
#include "conf_check.h"
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

/* State of one load: the check (where messages go) and what has been built
 * so far. */
struct load {
    struct conf_check ck;
    struct config *cfg;
    /* Set when a whole list is missing or malformed, so that references
     * into it do not each add an "unknown ..." error of their own. */
    int providers_bad;
    int models_bad;
    const config_setting_t *models_list; /* to point at a model's definition */
};

/* ---- the schema: one table of keys per group ---------------------------- *
 * Every key of gateway.conf is a row here, once: its type, its field in the
 * struct (offsetof), its default and limits or values, and whether it is a
 * secret or a URL. The checker reads the rows (unknown keys, "did you mean",
 * defaults; regular rows also types and ranges, conf_read), admin's config
 * dump (admin_config_json) walks them, and test_config.c checks them against
 * gateway.conf.example. Rows marked CONF_HAND are read by the load_*
 * functions below, because their checks go beyond a type and a range (URLs,
 * names, env vars, keys that depend on another key). To add a key: a row
 * here (and a field), then the key documented in gateway.conf.example.
 */

#define OFF(st, f) offsetof(struct st, f)

/* CONF_ENUM and CONF_BOOL fields are read and written as int. */
_Static_assert(sizeof(enum log_format) == sizeof(int) && sizeof(enum log_level) == sizeof(int) &&
                   sizeof(enum cache_backend) == sizeof(int) &&
                   sizeof(enum provider_type) == sizeof(int) &&
                   sizeof(enum http_version) == sizeof(int) &&
                   sizeof(enum budget_period) == sizeof(int),
               "an enum field is not an int");

static const char *const log_formats[] = {"json", "text", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const cache_backends[] = {"memory", "redis", NULL};
static const char *const provider_types[] = {"openai", "azure", "anthropic", NULL};
/* In the order of enum http_version. */
static const char *const http_versions[] = {"1.1", "2", NULL};
static const char *const budget_periods[] = {"day", "month", "total", NULL};

const struct conf_key config_keys_admin[] = {
    {.name = "listen", .type = CONF_STR, .off = OFF(admin_conf, listen), .flags = CONF_HAND},
    {.name = "key_env",
     .type = CONF_STR,
     .off = OFF(admin_conf, key_env),
     .def_str = "SLUICE_ADMIN_KEY",
     .flags = CONF_HAND},
    {0},
};

const struct conf_key config_keys_log[] = {
    {.name = "format", .type = CONF_ENUM, .off = OFF(log_conf, format), .names = log_formats},
    {.name = "path",
     .type = CONF_STR,
     .off = OFF(log_conf, path),
     .def_str = "-",
     .flags = CONF_HAND},
    {.name = "level",
     .type = CONF_ENUM,
     .off = OFF(log_conf, level),
     .def = LOG_INFO,
     .names = log_levels},
    {0},
};

const struct conf_key config_keys_trace[] = {
    {.name = "path", .type = CONF_STR, .off = OFF(trace_conf, path), .flags = CONF_HAND},
    {.name = "include_content", .type = CONF_BOOL, .off = OFF(trace_conf, include_content)},
    {.name = "redis_url",
     .type = CONF_STR,
     .off = CONF_NO_FIELD,
     .flags = CONF_HAND | CONF_OLD | CONF_URL,
     .doc = "the old form of stream: the redis block's url"},
    {.name = "stream",
     .type = CONF_STR,
     .off = OFF(trace_conf, stream),
     .def_str = "sluice:trace",
     .flags = CONF_HAND},
    {.name = "maxlen",
     .type = CONF_INT,
     .off = OFF(trace_conf, maxlen),
     .def = 100000,
     .min = 1,
     .max = (double)(1L << 40)},
    {0},
};

const struct conf_key config_keys_otel[] = {
    {.name = "endpoint",
     .type = CONF_STR,
     .off = OFF(otel_conf, endpoint),
     .flags = CONF_HAND | CONF_URL},
    {.name = "headers", .type = CONF_GROUP, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "headers_env",
     .type = CONF_GROUP,
     .off = CONF_NO_FIELD,
     .flags = CONF_HAND | CONF_SECRET},
    {.name = "service_name",
     .type = CONF_STR,
     .off = OFF(otel_conf, service_name),
     .def_str = "sluice",
     .flags = CONF_HAND},
    {.name = "sample_ratio",
     .type = CONF_NUM,
     .off = OFF(otel_conf, sample_ratio),
     .def = 1.0,
     .min = 0,
     .max = 1},
    {.name = "capture_content", .type = CONF_BOOL, .off = OFF(otel_conf, capture_content)},
    {.name = "propagate", .type = CONF_BOOL, .off = OFF(otel_conf, propagate), .def = 1},
    {.name = "timeout_ms",
     .type = CONF_INT,
     .off = OFF(otel_conf, timeout_ms),
     .def = DEF_OTEL_TIMEOUT_MS,
     .min = 1,
     .max = 600000},
    {.name = "max_queue",
     .type = CONF_INT,
     .off = OFF(otel_conf, max_queue),
     .def = DEF_OTEL_MAX_QUEUE,
     .min = 1,
     .max = OTEL_MAX_QUEUE_LIMIT},
    {0},
};

const struct conf_key config_keys_cache[] = {
    {.name = "backend",
     .type = CONF_ENUM,
     .off = OFF(cache_conf, backend),
     .names = cache_backends,
     .flags = CONF_HAND},
    {.name = "url",
     .type = CONF_STR,
     .off = CONF_NO_FIELD,
     .flags = CONF_HAND | CONF_OLD | CONF_URL,
     .doc = "the old form of the redis block's url"},
    {.name = "ttl_s",
     .type = CONF_INT,
     .off = OFF(cache_conf, ttl_s),
     .def = DEF_CACHE_TTL_S,
     .min = 1,
     .max = MAX_TTL_S},
    {.name = "timeout_ms",
     .type = CONF_INT,
     .off = OFF(cache_conf, timeout_ms),
     .def = DEF_CACHE_TIMEOUT_MS,
     .min = 1,
     .max = 60000},
    /* 512 MiB is Redis's own limit on a string value. */
    {.name = "max_value_bytes",
     .type = CONF_SIZE,
     .off = OFF(cache_conf, max_value_bytes),
     .def = DEF_CACHE_MAX_VALUE_BYTES,
     .min = 1024,
     .max = 512L << 20,
     .flags = CONF_HAND},
    {.name = "max_bytes",
     .type = CONF_SIZE,
     .off = OFF(cache_conf, max_bytes),
     .def = DEF_CACHE_MAX_BYTES,
     .min = 1024,
     .max = (double)(1L << 40),
     .flags = CONF_HAND},
    {.name = "local_ttl_ms",
     .type = CONF_INT,
     .off = OFF(cache_conf, local_ttl_ms),
     .def = DEF_CACHE_LOCAL_TTL_MS,
     .min = 0,
     .max = 60000,
     .flags = CONF_HAND},
    {.name = "local_max_bytes",
     .type = CONF_SIZE,
     .off = OFF(cache_conf, local_max_bytes),
     .def = DEF_CACHE_LOCAL_MAX_BYTES,
     .min = 1024,
     .max = (double)(1L << 40),
     .flags = CONF_HAND},
    {0},
};

const struct conf_key config_keys_redis[] = {
    {.name = "url", .type = CONF_STR, .off = OFF(redis_conf, url), .flags = CONF_HAND | CONF_URL},
    {.name = "username", .type = CONF_STR, .off = OFF(redis_conf, username), .flags = CONF_HAND},
    {.name = "password_env",
     .type = CONF_STR,
     .off = OFF(redis_conf, password_env),
     .flags = CONF_HAND},
    {.name = "tls_ca_file",
     .type = CONF_STR,
     .off = OFF(redis_conf, tls_ca_file),
     .flags = CONF_HAND},
    {.name = "tls_cert_file",
     .type = CONF_STR,
     .off = OFF(redis_conf, tls_cert_file),
     .flags = CONF_HAND},
    {.name = "tls_key_file",
     .type = CONF_STR,
     .off = OFF(redis_conf, tls_key_file),
     .flags = CONF_HAND},
    {.name = "tls_server_name",
     .type = CONF_STR,
     .off = OFF(redis_conf, tls_server_name),
     .flags = CONF_HAND},
    {.name = "sentinels", .type = CONF_LIST, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "master_name",
     .type = CONF_STR,
     .off = OFF(redis_conf, master_name),
     .flags = CONF_HAND},
    {.name = "cluster_nodes", .type = CONF_LIST, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    /* Default: the cache's timeout_ms. */
    {.name = "timeout_ms",
     .type = CONF_INT,
     .off = OFF(redis_conf, timeout_ms),
     .def = DEF_CACHE_TIMEOUT_MS,
     .min = 1,
     .max = 60000,
     .flags = CONF_HAND},
    {0},
};

/* A provider's breaker = { ... }: fields of struct provider itself. */
const struct conf_key config_keys_breaker[] = {
    {.name = "failures",
     .type = CONF_INT,
     .off = OFF(provider, breaker_failures),
     .def = DEF_BREAKER_FAILURES,
     .min = 0,
     .max = 1000000},
    {.name = "error_rate",
     .type = CONF_NUM,
     .off = OFF(provider, breaker_error_rate),
     .def = DEF_BREAKER_ERROR_RATE,
     .min = 0,
     .max = 1},
    {.name = "min_requests",
     .type = CONF_INT,
     .off = OFF(provider, breaker_min_requests),
     .def = DEF_BREAKER_MIN_REQUESTS,
     .min = 1,
     .max = 1000000},
    {.name = "window_s",
     .type = CONF_INT,
     .off = OFF(provider, breaker_window_s),
     .def = DEF_BREAKER_WINDOW_S,
     .min = 1,
     .max = 86400},
    {.name = "cooldown_s",
     .type = CONF_INT,
     .off = OFF(provider, breaker_cooldown_s),
     .def = DEF_BREAKER_COOLDOWN_S,
     .min = 1,
     .max = 86400},
    {0},
};

const struct conf_key config_keys_provider[] = {
    {.name = "name", .type = CONF_STR, .off = OFF(provider, name), .flags = CONF_HAND},
    {.name = "type",
     .type = CONF_ENUM,
     .off = OFF(provider, type),
     .names = provider_types,
     .flags = CONF_HAND},
    {.name = "base_url",
     .type = CONF_STR,
     .off = OFF(provider, base_url),
     .flags = CONF_HAND | CONF_URL},
    {.name = "api_key_env",
     .type = CONF_STR,
     .off = OFF(provider, api_key_env),
     .flags = CONF_HAND},
    /* Type-specific: shown only with their type. */
    {.name = "api_version",
     .type = CONF_STR,
     .off = OFF(provider, api_version),
     .flags = CONF_HAND | CONF_UNSET},
    {.name = "anthropic_version",
     .type = CONF_STR,
     .off = OFF(provider, anthropic_version),
     .flags = CONF_HAND | CONF_UNSET},
    {.name = "default_max_tokens",
     .type = CONF_INT,
     .off = OFF(provider, default_max_tokens),
     .min = 1,
     .max = MAX_MAX_TOKENS,
     .flags = CONF_HAND | CONF_UNSET},
    {.name = "headers", .type = CONF_GROUP, .off = CONF_NO_FIELD, .flags = CONF_HAND | CONF_SECRET},
    {.name = "timeout_ms",
     .type = CONF_INT,
     .off = OFF(provider, timeout_ms),
     .def = DEF_TIMEOUT_MS,
     .min = 1,
     .max = MAX_TIMEOUT_MS},
    {.name = "connect_timeout_ms",
     .type = CONF_INT,
     .off = OFF(provider, connect_timeout_ms),
     .def = DEF_CONNECT_TIMEOUT_MS,
     .min = 1,
     .max = MAX_TIMEOUT_MS},
    /* Default: timeout_ms. */
    {.name = "first_byte_timeout_ms",
     .type = CONF_INT,
     .off = OFF(provider, first_byte_timeout_ms),
     .min = 1,
     .max = MAX_TIMEOUT_MS,
     .flags = CONF_HAND},
    {.name = "idle_timeout_ms",
     .type = CONF_INT,
     .off = OFF(provider, idle_timeout_ms),
     .def = DEF_IDLE_TIMEOUT_MS,
     .min = 1,
     .max = MAX_TIMEOUT_MS},
    {.name = "retries", .type = CONF_INT, .off = OFF(provider, retries), .min = 0, .max = 10},
    {.name = "retry_backoff_ms",
     .type = CONF_INT,
     .off = OFF(provider, retry_backoff_ms),
     .def = DEF_RETRY_BACKOFF_MS,
     .min = 1,
     .max = MAX_TIMEOUT_MS},
    {.name = "retry_max_backoff_ms",
     .type = CONF_INT,
     .off = OFF(provider, retry_max_backoff_ms),
     .def = DEF_RETRY_MAX_BACKOFF_MS,
     .min = 1,
     .max = MAX_TIMEOUT_MS},
    {.name = "retry_after_max_ms",
     .type = CONF_INT,
     .off = OFF(provider, retry_after_max_ms),
     .def = DEF_RETRY_AFTER_MAX_MS,
     .min = 0,
     .max = MAX_TIMEOUT_MS},
    {.name = "passthrough_auth", .type = CONF_BOOL, .off = OFF(provider, passthrough_auth)},
    {.name = "trace_context", .type = CONF_BOOL, .off = OFF(provider, trace_context), .def = 1},
    {.name = "http_version",
     .type = CONF_ENUM,
     .off = OFF(provider, http_version),
     .names = http_versions},
    {.name = "ca_file", .type = CONF_STR, .off = OFF(provider, ca_file), .flags = CONF_HAND},
    {.name = "breaker", .type = CONF_GROUP, .off = 0, .sub = config_keys_breaker},
    {.name = "api_key",
     .type = CONF_STR,
     .off = CONF_NO_FIELD,
     .flags = CONF_REFUSED,
     .doc = "secrets never live in the file: put the key in an environment variable and "
            "name it with api_key_env"},
    {0},
};

const struct conf_key config_keys_model[] = {
    {.name = "name", .type = CONF_STR, .off = OFF(model, name), .flags = CONF_HAND},
    {.name = "provider",
     .type = CONF_STR,
     .off = CONF_NO_FIELD,
     .flags = CONF_HAND,
     .doc = "a provider's name"},
    /* Default: the model's name. */
    {.name = "id", .type = CONF_STR, .off = OFF(model, id), .flags = CONF_HAND},
    {.name = "input_per_mtok",
     .type = CONF_NUM,
     .off = OFF(model, input_per_mtok),
     .min = 0,
     .max = HUGE_VAL},
    {.name = "output_per_mtok",
     .type = CONF_NUM,
     .off = OFF(model, output_per_mtok),
     .min = 0,
     .max = HUGE_VAL},
    /* Unset (-1): input_per_mtok. */
    {.name = "cache_read_per_mtok",
     .type = CONF_NUM,
     .off = OFF(model, cache_read_per_mtok),
     .def = -1,
     .min = 0,
     .max = HUGE_VAL,
     .flags = CONF_UNSET},
    {.name = "cache_write_per_mtok",
     .type = CONF_NUM,
     .off = OFF(model, cache_write_per_mtok),
     .def = -1,
     .min = 0,
     .max = HUGE_VAL,
     .flags = CONF_UNSET},
    /* Per-model overrides of the provider's: unset (0 or -1) = the
     * provider's. */
    {.name = "default_max_tokens",
     .type = CONF_INT,
     .off = OFF(model, default_max_tokens),
     .min = 1,
     .max = MAX_MAX_TOKENS,
     .flags = CONF_HAND | CONF_UNSET},
    {.name = "timeout_ms",
     .type = CONF_INT,
     .off = OFF(model, timeout_ms),
     .min = 1,
     .max = MAX_TIMEOUT_MS,
     .flags = CONF_UNSET},
    {.name = "connect_timeout_ms",
     .type = CONF_INT,
     .off = OFF(model, connect_timeout_ms),
     .min = 1,
     .max = MAX_TIMEOUT_MS,
     .flags = CONF_UNSET},
    {.name = "first_byte_timeout_ms",
     .type = CONF_INT,
     .off = OFF(model, first_byte_timeout_ms),
     .min = 1,
     .max = MAX_TIMEOUT_MS,
     .flags = CONF_UNSET},
    {.name = "idle_timeout_ms",
     .type = CONF_INT,
     .off = OFF(model, idle_timeout_ms),
     .min = 1,
     .max = MAX_TIMEOUT_MS,
     .flags = CONF_UNSET},
    {.name = "retries",
     .type = CONF_INT,
     .off = OFF(model, retries),
     .def = -1,
     .min = 0,
     .max = 10,
     .flags = CONF_UNSET},
    {0},
};

/* A cascade's stage: which keys go with which scorer is scorer_keys[]. */
const struct conf_key config_keys_stage[] = {
    {.name = "model", .type = CONF_STR, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "models", .type = CONF_LIST, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "scorer", .type = CONF_ENUM, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "threshold", .type = CONF_NUM, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "samples", .type = CONF_INT, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "judge", .type = CONF_STR, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "rubric", .type = CONF_STR, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "weights", .type = CONF_STR, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "url", .type = CONF_STR, .off = CONF_NO_FIELD, .flags = CONF_HAND | CONF_URL},
    {.name = "timeout_ms", .type = CONF_INT, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {0},
};

const struct conf_key config_keys_route[] = {
    {.name = "name", .type = CONF_STR, .off = OFF(route, name), .flags = CONF_HAND},
    /* One of the three: the dump shows them as kind and stages. */
    {.name = "model", .type = CONF_STR, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "fallback", .type = CONF_LIST, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "cascade",
     .type = CONF_LIST,
     .off = CONF_NO_FIELD,
     .flags = CONF_HAND,
     .sub = config_keys_stage},
    {.name = "max_cost", .type = CONF_NUM, .off = OFF(route, max_cost), .min = 0, .max = HUGE_VAL},
    {.name = "cache", .type = CONF_BOOL, .off = OFF(route, cache), .def = 1},
    {.name = "cache_ttl_s",
     .type = CONF_INT,
     .off = OFF(route, cache_ttl_s),
     .min = 0,
     .max = MAX_TTL_S},
    {.name = "cache_nondeterministic",
     .type = CONF_BOOL,
     .off = OFF(route, cache_nondeterministic)},
    {0},
};

const struct conf_key config_keys_key[] = {
    {.name = "name", .type = CONF_STR, .off = OFF(client_key, name), .flags = CONF_HAND},
    {.name = "key_sha256", .type = CONF_STR, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "routes", .type = CONF_LIST, .off = CONF_NO_FIELD, .flags = CONF_HAND},
    {.name = "rpm", .type = CONF_INT, .off = OFF(client_key, rpm), .min = 0, .max = 100000000},
    {.name = "tpm",
     .type = CONF_INT,
     .off = OFF(client_key, tpm),
     .min = 0,
     .max = (double)(1L << 40)},
    {.name = "budget_usd",
     .type = CONF_NUM,
     .off = OFF(client_key, budget_usd),
     .min = 0,
     .max = HUGE_VAL},
    {.name = "budget_period",
     .type = CONF_ENUM,
     .off = OFF(client_key, budget_period),
     .def = BUDGET_MONTH,
     .names = budget_periods},
    {0},
};

const struct conf_key config_keys_top[] = {
    {.name = "listen",
     .type = CONF_STR,
     .off = OFF(config, listen),
     .def_str = DEF_LISTEN,
     .flags = CONF_HAND},
    {.name = "workers", .type = CONF_INT, .off = OFF(config, workers), .min = 0, .max = 256},
    {.name = "max_body_bytes",
     .type = CONF_SIZE,
     .off = OFF(config, max_body_bytes),
     .def = DEF_MAX_BODY_BYTES,
     .min = 1024,
     .max = BODY_HARD_MAX},
    {.name = "max_header_bytes",
     .type = CONF_SIZE,
     .off = OFF(config, max_header_bytes),
     .def = DEF_MAX_HEADER_BYTES,
     .min = 1024,
     .max = 1L << 20},
    {.name = "max_connections",
     .type = CONF_INT,
     .off = OFF(config, max_connections),
     .def = DEF_MAX_CONNECTIONS,
     .min = 1,
     .max = 1048576},
    {.name = "max_inflight",
     .type = CONF_INT,
     .off = OFF(config, max_inflight),
     .def = DEF_MAX_INFLIGHT,
     .min = 0,
     .max = 1048576},
    {.name = "drain_timeout_s",
     .type = CONF_INT,
     .off = OFF(config, drain_timeout_s),
     .def = DEF_DRAIN_TIMEOUT_S,
     .min = 0,
     .max = 3600},
    {.name = "client_timeout_s",
     .type = CONF_INT,
     .off = OFF(config, client_timeout_s),
     .def = DEF_CLIENT_TIMEOUT_S,
     .min = 1,
     .max = 3600},
    {.name = "client_header_timeout_s",
     .type = CONF_INT,
     .off = OFF(config, client_header_timeout_s),
     .def = DEF_CLIENT_HEADER_TIMEOUT_S,
     .min = 1,
     .max = 3600},
    {.name = "client_body_timeout_s",
     .type = CONF_INT,
     .off = OFF(config, client_body_timeout_s),
     .def = DEF_CLIENT_BODY_TIMEOUT_S,
     .min = 1,
     .max = 3600},
    {.name = "max_stream_memory_bytes",
     .type = CONF_SIZE,
     .off = OFF(config, max_stream_memory_bytes),
     .def = DEF_MAX_STREAM_MEMORY_BYTES,
     .min = STREAM_BUF_MAX,
     .max = (double)(1L << 40)},
    {.name = "admin", .type = CONF_GROUP, .off = OFF(config, admin), .sub = config_keys_admin},
    {.name = "log", .type = CONF_GROUP, .off = OFF(config, log), .sub = config_keys_log},
    {.name = "trace", .type = CONF_GROUP, .off = OFF(config, trace), .sub = config_keys_trace},
    {.name = "otel", .type = CONF_GROUP, .off = OFF(config, otel), .sub = config_keys_otel},
    {.name = "cache", .type = CONF_GROUP, .off = OFF(config, cache), .sub = config_keys_cache},
    {.name = "redis", .type = CONF_GROUP, .off = OFF(config, redis), .sub = config_keys_redis},
    {.name = "providers", .type = CONF_LIST, .off = CONF_NO_FIELD, .sub = config_keys_provider},
    {.name = "models", .type = CONF_LIST, .off = CONF_NO_FIELD, .sub = config_keys_model},
    {.name = "routes", .type = CONF_LIST, .off = CONF_NO_FIELD, .sub = config_keys_route},
    {.name = "keys", .type = CONF_LIST, .off = CONF_NO_FIELD, .sub = config_keys_key},
    {0},
};

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config *current;

static const char *const http_schemes[] = {"http://", "https://", NULL};

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
    char qb[CONF_QBUF];

    if (m == NULL && !l->models_bad)
        conf_err(&l->ck, s, path, key, "unknown model %s", conf_quote(qb, name));
    return m;
}

/* Key path of element idx of the list at list_path: named by its `name`
 * when it has a valid one. Returns a new string. */
static char *elem_path(const char *list_path, const config_setting_t *e, unsigned idx)
{
    const char *name;

    if (config_setting_is_group(e) && config_setting_lookup_string(e, "name", &name) &&
        conf_token_ok(name, NAME_MAX_LEN))
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
    char qb[CONF_QBUF];

    if (conf_str(&l->ck, e, path, "name", 1, &name) <= 0)
        return NULL;
    if (!conf_token_ok(name, NAME_MAX_LEN)) {
        conf_err(&l->ck, config_setting_get_member(e, "name"), path, "name",
                 "must be 1 to %d printable ASCII characters without spaces", NAME_MAX_LEN);
        return NULL;
    }
    for (unsigned j = 0; j < idx; j++) {
        const config_setting_t *prev = config_setting_get_elem(list, j);
        const char *pname;

        if (config_setting_is_group(prev) && config_setting_lookup_string(prev, "name", &pname) &&
            strcmp(pname, name) == 0) {
            char *w = conf_where(&l->ck, prev);

            conf_err(&l->ck, config_setting_get_member(e, "name"), path, "name",
                     "duplicate %s %s (first defined at %s)", what, conf_quote(qb, name), w);
            free(w);
            break;
        }
    }
    return xstrdup(name);
}

/* ---- sections ---------------------------------------------------------- */

static void load_log(struct load *l, const config_setting_t *root)
{
    struct log_conf *lc = &l->cfg->log;
    const config_setting_t *g = conf_group(&l->ck, root, "", "log");
    const char *s;

    conf_defaults(config_keys_log, lc);
    if (g == NULL)
        return;
    conf_read(&l->ck, g, "log", config_keys_log, lc);
    if (conf_str(&l->ck, g, "log", "path", 0, &s) > 0) {
        if (*s == '\0') {
            conf_err(&l->ck, config_setting_get_member(g, "path"), "log", "path",
                     "must not be empty (use \"-\" for stdout)");
        } else {
            free(lc->path);
            lc->path = xstrdup(s);
        }
    }
}

static void load_trace(struct load *l, const config_setting_t *root)
{
    struct trace_conf *tc = &l->cfg->trace;
    const config_setting_t *g = conf_group(&l->ck, root, "", "trace");
    const char *s;

    if (g == NULL)
        return;
    conf_defaults(config_keys_trace, tc);
    conf_read(&l->ck, g, "trace", config_keys_trace, tc);
    if (conf_str(&l->ck, g, "trace", "path", 0, &s) > 0) {
        if (*s == '\0')
            conf_err(&l->ck, config_setting_get_member(g, "path"), "trace", "path",
                     "must not be empty (use \"-\" for stdout)");
        else
            tc->path = xstrdup(s);
    }
    /* redis_url is the old form of the stream: load_redis takes it. */
    tc->stream_on = config_setting_get_member(g, "redis_url") != NULL ||
                    config_setting_get_member(g, "stream") != NULL;
    if (conf_str(&l->ck, g, "trace", "stream", 0, &s) > 0) {
        if (!conf_token_ok(s, 200)) {
            conf_err(&l->ck, config_setting_get_member(g, "stream"), "trace", "stream",
                     "must be 1 to 200 printable ASCII characters without spaces");
        } else {
            free(tc->stream);
            tc->stream = xstrdup(s);
        }
    }
    if (config_setting_get_member(g, "path") == NULL && !tc->stream_on)
        conf_err(&l->ck, g, "trace", "path",
                 "missing: a trace needs a path, a stream (on the redis block's Redis), or both");
}

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
    const config_setting_t *list = conf_list(&l->ck, g, "redis", key, 0, 1);
    unsigned len = list ? (unsigned)config_setting_length(list) : 0;

    if (list && (len == 0 || len > REDIS_SEEDS_MAX)) {
        conf_err(&l->ck, list, "redis", key, "must list 1 to %d HOST:PORT addresses",
                 REDIS_SEEDS_MAX);
        return;
    }
    *out = len ? xcalloc(len, sizeof(**out)) : NULL;
    for (unsigned i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(list, i);
        const char *s = config_setting_get_string(e);
        char host[REDIS_HOST_MAX], err[128];
        int port;

        if (s == NULL) {
            conf_err(&l->ck, e, "redis", key, "expected \"HOST:PORT\" strings");
            continue;
        }
        if (redis_addr_parse(s, strlen(s), host, sizeof(host), &port, err, sizeof(err)) < 0) {
            conf_err(&l->ck, e, "redis", key, "%s", err);
            continue;
        }
        (*out)[(*n)++] = xstrdup(s);
    }
}

static void load_redis_file(struct load *l, const config_setting_t *g, const char *key,
                            char **out)
{
    const char *s;

    if (conf_str(&l->ck, g, "redis", key, 0, &s) <= 0)
        return;
    if (access(s, R_OK) != 0)
        conf_err(&l->ck, config_setting_get_member(g, key), "redis", key, "cannot read %s: %s", s,
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
    const config_setting_t *g = conf_group(&l->ck, root, "", "redis");
    const config_setting_t *cg = config_setting_get_member(root, "cache");
    const config_setting_t *tg = config_setting_get_member(root, "trace");
    const config_setting_t *curl = cg ? config_setting_get_member(cg, "url") : NULL;
    const config_setting_t *turl = tg ? config_setting_get_member(tg, "redis_url") : NULL;
    struct redis_url u = {0};
    char err[200];
    const char *s;

    conf_defaults(config_keys_redis, rc);
    rc->timeout_ms = l->cfg->cache.timeout_ms;
    if (g) {
        conf_keys(&l->ck, g, "redis", config_keys_redis);
        if (curl)
            conf_err(&l->ck, curl, "cache", "url",
                     "the url lives in the redis block now: write redis = { url = \"...\"; }; "
                     "cache = { backend = \"redis\"; }");
        if (turl)
            conf_err(&l->ck, turl, "trace", "redis_url",
                     "the trace stream uses the redis block's Redis now: drop redis_url and "
                     "write trace = { stream = \"sluice:trace\"; }");
        if (conf_str(&l->ck, g, "redis", "url", 0, &s) > 0) {
            if (redis_url_parse(s, &u, err, sizeof(err)) < 0)
                conf_err(&l->ck, config_setting_get_member(g, "url"), "redis", "url", "%s", err);
            else
                rc->url = xstrdup(s);
        }
        if (conf_str(&l->ck, g, "redis", "username", 0, &s) > 0) {
            if (!conf_token_ok(s, 256))
                conf_err(&l->ck, config_setting_get_member(g, "username"), "redis", "username",
                         "must be 1 to 256 printable ASCII characters without spaces");
            else
                rc->username = xstrdup(s);
        }
        if (conf_str(&l->ck, g, "redis", "password_env", 0, &s) > 0) {
            /* Never echo the value: it may be the password itself. */
            if (!conf_env_name_ok(s)) {
                conf_err(&l->ck, config_setting_get_member(g, "password_env"), "redis",
                         "password_env",
                         "must be the NAME of an environment variable ([A-Za-z_][A-Za-z0-9_]*), "
                         "not the password itself");
            } else if (getenv(s) == NULL) {
                conf_err(&l->ck, config_setting_get_member(g, "password_env"), "redis",
                         "password_env", "the environment variable %s is not set", s);
            } else {
                rc->password_env = xstrdup(s);
                rc->password = xstrdup(getenv(s));
            }
        } else if (rc->username) {
            conf_err(&l->ck, config_setting_get_member(g, "username"), "redis", "username",
                     "an ACL user needs its password: name the environment variable that holds "
                     "it with password_env");
        }
        load_redis_file(l, g, "tls_ca_file", &rc->tls_ca_file);
        load_redis_file(l, g, "tls_cert_file", &rc->tls_cert_file);
        load_redis_file(l, g, "tls_key_file", &rc->tls_key_file);
        if (conf_str(&l->ck, g, "redis", "tls_server_name", 0, &s) > 0) {
            if (!conf_token_ok(s, 253))
                conf_err(&l->ck, config_setting_get_member(g, "tls_server_name"), "redis",
                         "tls_server_name", "must be a host name");
            else
                rc->tls_server_name = xstrdup(s);
        }
        if ((rc->tls_cert_file == NULL) != (rc->tls_key_file == NULL))
            conf_err(&l->ck, g, "redis", rc->tls_cert_file ? "tls_key_file" : "tls_cert_file",
                     "missing: a client certificate needs both tls_cert_file and tls_key_file");
        if (!u.tls && (config_setting_get_member(g, "tls_ca_file") ||
                       config_setting_get_member(g, "tls_cert_file") ||
                       config_setting_get_member(g, "tls_server_name")))
            conf_err(&l->ck, g, "redis", "url",
                     "the tls_* keys need TLS: write the url as rediss://HOST:PORT/DB");
        load_redis_hosts(l, g, "sentinels", &rc->sentinels, &rc->nsentinels);
        load_redis_hosts(l, g, "cluster_nodes", &rc->cluster_nodes, &rc->ncluster_nodes);
        if (conf_str(&l->ck, g, "redis", "master_name", 0, &s) > 0) {
            if (!conf_token_ok(s, 200))
                conf_err(&l->ck, config_setting_get_member(g, "master_name"), "redis",
                         "master_name",
                         "must be 1 to 200 printable ASCII characters without spaces");
            else
                rc->master_name = xstrdup(s);
        }
        if (config_setting_get_member(g, "sentinels") && rc->master_name == NULL &&
            config_setting_get_member(g, "master_name") == NULL)
            conf_err(&l->ck, g, "redis", "master_name",
                     "missing: sentinels need the name of the master they watch");
        if (config_setting_get_member(g, "master_name") &&
            !config_setting_get_member(g, "sentinels"))
            conf_err(&l->ck, config_setting_get_member(g, "master_name"), "redis", "master_name",
                     "only valid with sentinels");
        if (config_setting_get_member(g, "sentinels") &&
            config_setting_get_member(g, "cluster_nodes"))
            conf_err(&l->ck, g, "redis", "cluster_nodes",
                     "sentinels and cluster_nodes exclude each other: Sentinel watches one "
                     "master, a Cluster finds its own");
        if (config_setting_get_member(g, "cluster_nodes") && u.db != 0)
            conf_err(&l->ck, config_setting_get_member(g, "url"), "redis", "url",
                     "a Redis Cluster has only database 0");
        if (config_setting_get_member(g, "url") == NULL &&
            config_setting_get_member(g, "sentinels") == NULL &&
            config_setting_get_member(g, "cluster_nodes") == NULL)
            conf_err(&l->ck, g, "redis", "url",
                     "missing: a redis block needs a url, sentinels or "
                     "cluster_nodes");
        conf_read_key(&l->ck, g, "redis", config_keys_redis, "timeout_ms", rc);
        rc->configured = 1;
    } else {
        const char *cu = NULL, *tu = NULL;

        if (curl && l->cfg->cache.backend == CACHE_REDIS &&
            conf_str(&l->ck, cg, "cache", "url", 1, &cu) > 0 &&
            redis_url_parse(cu, &u, err, sizeof(err)) < 0) {
            conf_err(&l->ck, curl, "cache", "url", "%s", err);
            cu = NULL;
        }
        if (turl && conf_str(&l->ck, tg, "trace", "redis_url", 0, &tu) > 0 &&
            redis_url_parse(tu, &u, err, sizeof(err)) < 0) {
            conf_err(&l->ck, turl, "trace", "redis_url", "%s", err);
            tu = NULL;
        }
        if (cu && tu && strcmp(cu, tu) != 0)
            conf_err(&l->ck, turl, "trace", "redis_url",
                     "one Redis serves the cache and the trace now: write redis = { url = "
                     "\"...\"; } and trace = { stream = \"...\"; } instead of two urls");
        else if (cu || tu)
            rc->url = xstrdup(cu ? cu : tu), rc->configured = 1;
    }
    if (l->cfg->cache.backend == CACHE_REDIS && !rc->configured && curl == NULL)
        conf_err(&l->ck, cg, "cache", "backend",
                 "backend = \"redis\" uses the redis block: add redis = { url = "
                 "\"redis://HOST:6379/0\"; }");
    if (l->cfg->trace.stream_on && !rc->configured && turl == NULL)
        conf_err(&l->ck, config_setting_get_member(tg, "stream"), "trace", "stream",
                 "the stream goes to the redis block's Redis: add redis = { url = "
                 "\"redis://HOST:6379/0\"; }");
}

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
    const config_setting_t *g = conf_group(&l->ck, root, "", "otel");
    const char *s;
    char qb[CONF_QBUF];

    conf_defaults(config_keys_otel, oc);
    if (g == NULL)
        return;
    conf_read(&l->ck, g, "otel", config_keys_otel, oc);
    if (conf_str(&l->ck, g, "otel", "endpoint", 1, &s) > 0) {
        if (!conf_url_ok(s, http_schemes))
            conf_err(&l->ck, config_setting_get_member(g, "endpoint"), "otel", "endpoint",
                     "expected http://HOST[:PORT][/PATH] or https://... (got %s)",
                     conf_quote(qb, s));
        else
            oc->endpoint = xstrndup(s, strlen(s) - (s[strlen(s) - 1] == '/'));
    }
    load_header_group(l, g, "otel", "headers", otel_reserved, "is set by the exporter itself", 0,
                      &oc->headers, &oc->nheaders);
    for (size_t i = 0; i < oc->nheaders; i++) {
        for (size_t k = 0; otel_secret[k]; k++) {
            if (strcasecmp(oc->headers[i].name, otel_secret[k]) == 0) {
                conf_err(&l->ck, config_setting_get_member(g, "headers"), "otel.headers",
                         oc->headers[i].name,
                         "secrets never live in the file: name the environment variable "
                         "that holds it in headers_env instead");
            }
        }
    }
    load_header_group(l, g, "otel", "headers_env", otel_reserved, "is set by the exporter itself",
                      1, &oc->headers, &oc->nheaders);
    if (conf_str(&l->ck, g, "otel", "service_name", 0, &s) > 0) {
        if (*s == '\0' || strlen(s) > NAME_MAX_LEN || conf_has_ctl_or_space(s)) {
            conf_err(&l->ck, config_setting_get_member(g, "service_name"), "otel", "service_name",
                     "must be 1 to %d printable characters without spaces", NAME_MAX_LEN);
        } else {
            free(oc->service_name);
            oc->service_name = xstrdup(s);
        }
    }
}

static void load_cache(struct load *l, const config_setting_t *root)
{
    struct cache_conf *cc = &l->cfg->cache;
    const config_setting_t *g = conf_group(&l->ck, root, "", "cache");
    const config_setting_t *s;
    int r;

    conf_defaults(config_keys_cache, cc);
    if (g == NULL)
        return;
    conf_read(&l->ck, g, "cache", config_keys_cache, cc);
    r = conf_read_key(&l->ck, g, "cache", config_keys_cache, "backend", cc);

    /* Backend-specific keys are checked only when the backend is known, so a
     * misspelt backend does not also blame every key that goes with it. */
    if (r >= 0 && cc->backend == CACHE_REDIS) {
        if ((s = config_setting_get_member(g, "max_bytes")) != NULL)
            conf_err(&l->ck, s, "cache", "max_bytes",
                     "key 'max_bytes' is only valid with backend = \"memory\"");
        conf_read_key(&l->ck, g, "cache", config_keys_cache, "local_ttl_ms", cc);
        conf_read_key(&l->ck, g, "cache", config_keys_cache, "local_max_bytes", cc);
        /* url is the old form of the redis block: load_redis takes it. */
    } else if (r >= 0) {
        if ((s = config_setting_get_member(g, "url")) != NULL)
            conf_err(&l->ck, s, "cache", "url", "key 'url' is only valid with backend = \"redis\"");
        if ((s = config_setting_get_member(g, "local_ttl_ms")) != NULL)
            conf_err(&l->ck, s, "cache", "local_ttl_ms",
                     "key 'local_ttl_ms' is only valid with backend = \"redis\"");
        if ((s = config_setting_get_member(g, "local_max_bytes")) != NULL)
            conf_err(&l->ck, s, "cache", "local_max_bytes",
                     "key 'local_max_bytes' is only valid with backend = \"redis\"");
        conf_read_key(&l->ck, g, "cache", config_keys_cache, "max_bytes", cc);
    }
    if (conf_read_key(&l->ck, g, "cache", config_keys_cache, "max_value_bytes", cc) > 0) {
        if (cc->backend == CACHE_MEMORY && cc->max_value_bytes > cc->max_bytes)
            conf_err(&l->ck, config_setting_get_member(g, "max_value_bytes"), "cache",
                     "max_value_bytes", "must not exceed max_bytes (%zu)", cc->max_bytes);
    }
}

/* breaker = { ... } of a provider. */
static void load_breaker(struct load *l, const config_setting_t *pg, const char *ppath,
                         struct provider *p)
{
    const config_setting_t *g = conf_group(&l->ck, pg, ppath, "breaker");
    char *path;

    conf_defaults(config_keys_breaker, p);
    if (g == NULL)
        return;
    path = xasprintf("%s.breaker", ppath);
    conf_read(&l->ck, g, path, config_keys_breaker, p);
    free(path);
}

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
    const config_setting_t *g = conf_group(&l->ck, pg, path, key);
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
        char qb[CONF_QBUF];
        int bad = 0;

        if (config_setting_type(h) != CONFIG_TYPE_STRING) {
            conf_err(&l->ck, h, hpath, name, "expected a string");
            continue;
        }
        value = config_setting_get_string(h);
        /* libconfig's name syntax already keeps CR and LF out of names;
         * checking anyway keeps this safe if the syntax ever widens. */
        if (strpbrk(name, "\r\n") || strpbrk(value, "\r\n")) {
            conf_err(&l->ck, h, hpath, name, "header name and value must not contain CR or LF");
            bad = 1;
        } else if (conf_has_ctl_or_space(name)) {
            conf_err(&l->ck, h, hpath, name, "header name must not contain control characters");
            bad = 1;
        } else if (from_env && !conf_env_name_ok(value)) {
            conf_err(&l->ck, h, hpath, name,
                     "must be the NAME of an environment variable, not the value itself");
            bad = 1;
        } else {
            for (const char *c = value; *c; c++) {
                if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
                    conf_err(&l->ck, h, hpath, name,
                             "header value must not contain control characters");
                    bad = 1;
                    break;
                }
            }
        }
        for (size_t k = 0; !bad && reserved[k]; k++) {
            if (strcasecmp(name, reserved[k]) == 0) {
                conf_err(&l->ck, h, hpath, name, "header %s %s", conf_quote(qb, name), why);
                bad = 1;
            }
        }
        for (size_t k = 0; !bad && k < *n; k++) {
            if (strcasecmp(name, (*hv)[k].name) == 0) {
                conf_err(&l->ck, h, hpath, name, "duplicate header %s", conf_quote(qb, name));
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
                conf_err(&l->ck, config_setting_get_member(g, keys[i]), path, keys[i],
                         "key '%s' is only valid with type = \"anthropic\"", keys[i]);
        return;
    }
    p->default_max_tokens = DEF_MAX_TOKENS;
    conf_read_key(&l->ck, g, path, config_keys_provider, "default_max_tokens", p);
    if (conf_str(&l->ck, g, path, "anthropic_version", 0, &s) > 0) {
        if (conf_token_ok(s, 64))
            p->anthropic_version = xstrdup(s);
        else
            conf_err(&l->ck, config_setting_get_member(g, "anthropic_version"), path,
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
    char qb[CONF_QBUF];
    int r;

    p->line = (int)conf_line(g);
    conf_defaults(config_keys_provider, p);
    conf_read(&l->ck, g, path, config_keys_provider, p);
    p->name = get_elem_name(l, list, idx, path, "provider");
    r = conf_read_key(&l->ck, g, path, config_keys_provider, "type", p);

    if (conf_str(&l->ck, g, path, "base_url", 1, &s) > 0) {
        if (!conf_url_ok(s, http_schemes)) {
            conf_err(&l->ck, config_setting_get_member(g, "base_url"), path, "base_url",
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

    if (conf_str(&l->ck, g, path, "api_key_env", 0, &s) > 0) {
        /* Never echo the value: a user who pasted the key itself here must
         * not see it copied into logs by --check. */
        if (!conf_env_name_ok(s)) {
            conf_err(&l->ck, config_setting_get_member(g, "api_key_env"), path, "api_key_env",
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
        if (conf_str(&l->ck, g, path, "api_version", 1, &s) > 0) {
            if (!conf_token_ok(s, 64))
                conf_err(&l->ck, config_setting_get_member(g, "api_version"), path, "api_version",
                         "expected a version such as \"2024-10-21\"");
            else
                p->api_version = xstrdup(s);
        }
    } else if (r >= 0 && config_setting_get_member(g, "api_version")) {
        conf_err(&l->ck, config_setting_get_member(g, "api_version"), path, "api_version",
                 "key 'api_version' is only valid with type = \"azure\"");
    }
    load_anthropic(l, g, path, p, r >= 0);

    load_headers(l, g, path, p);

    /* The first byte may take the whole call's time unless told otherwise. */
    p->first_byte_timeout_ms = p->timeout_ms;
    conf_read_key(&l->ck, g, path, config_keys_provider, "first_byte_timeout_ms", p);
    if (p->http_version == HTTP_2 && p->base_url && strncmp(p->base_url, "https:", 6) != 0)
        conf_err(&l->ck, config_setting_get_member(g, "http_version"), path, "http_version",
                 "HTTP/2 needs an https:// base_url (libcurl 7.88 cannot reuse a cleartext "
                 "HTTP/2 connection)");
    if (conf_str(&l->ck, g, path, "ca_file", 0, &s) > 0) {
        p->ca_file = conf_resolve_path(&l->ck, s);
        if (access(p->ca_file, R_OK) != 0)
            conf_err(&l->ck, config_setting_get_member(g, "ca_file"), path, "ca_file",
                     "cannot read %s: %s", conf_quote(qb, p->ca_file), strerror(errno));
    }
    load_breaker(l, g, path, p);
}

/* The required, non-empty list `key` of the root, with its length in *n.
 * Returns NULL (reported) when it is missing, malformed or empty. */
static const config_setting_t *list_begin(struct load *l, const config_setting_t *root,
                                          const char *key, const char *what, size_t *n)
{
    const config_setting_t *list = conf_list(&l->ck, root, "", key, 1, 0);

    *n = list ? (size_t)config_setting_length(list) : 0;
    if (list && *n == 0) {
        conf_err(&l->ck, list, "", key, "at least one %s is required", what);
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
            conf_err(&l->ck, e, path, NULL, "expected a group { ... }");
        else
            fn(l, list, i, path);
        free(path);
    }
}

static void load_model(struct load *l, const config_setting_t *list, unsigned idx, const char *path)
{
    const config_setting_t *g = config_setting_get_elem(list, idx);
    struct model *m = &l->cfg->models[idx];
    const char *s;
    char qb[CONF_QBUF];

    m->line = (int)conf_line(g);
    conf_defaults(config_keys_model, m);
    conf_read(&l->ck, g, path, config_keys_model, m);
    m->name = get_elem_name(l, list, idx, path, "model");
    if (conf_str(&l->ck, g, path, "provider", 1, &s) > 0) {
        m->provider = find_provider(l->cfg, s);
        if (m->provider == NULL && !l->providers_bad)
            conf_err(&l->ck, config_setting_get_member(g, "provider"), path, "provider",
                     "unknown provider %s", conf_quote(qb, s));
    }
    if (conf_str(&l->ck, g, path, "id", 0, &s) > 0) {
        if (!conf_token_ok(s, ID_MAX_LEN))
            conf_err(&l->ck, config_setting_get_member(g, "id"), path, "id",
                     "must be 1 to %d printable ASCII characters without spaces", ID_MAX_LEN);
        else
            m->id = xstrdup(s);
    }
    if (m->id == NULL && m->name)
        m->id = xstrdup(m->name);
    if (conf_read_key(&l->ck, g, path, config_keys_model, "default_max_tokens", m) > 0 &&
        m->provider && m->provider->type != PROVIDER_ANTHROPIC)
        conf_err(&l->ck, config_setting_get_member(g, "default_max_tokens"), path,
                 "default_max_tokens",
                 "key 'default_max_tokens' is only valid for a model of a provider with type = "
                 "\"anthropic\" (OpenAI-compatible APIs need no max_tokens)");
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
    char qb[CONF_QBUF];

    for (size_t i = 0; i < st->nmodels; i++) {
        const struct model *m = st->models[i];

        if (m == NULL || m->provider == NULL || m->provider->type != PROVIDER_ANTHROPIC)
            continue;
        if (st->scorer == SCORER_LOGPROB)
            conf_err(&l->ck, config_setting_get_member(g, "scorer"), path, "scorer",
                     "model %s is served by an Anthropic provider, whose answers carry no "
                     "logprobs: use another scorer (rules, agreement over 'models', judge, "
                     "learned or http)",
                     conf_quote(qb, m->name));
        if (st->samples > 1)
            conf_err(&l->ck, config_setting_get_member(g, "samples"), path, "samples",
                     "model %s is served by an Anthropic provider, which gives one answer per "
                     "call: compare two models with 'models' instead",
                     conf_quote(qb, m->name));
    }
}

static void load_stage(struct load *l, const config_setting_t *g, const char *path,
                       struct stage *st)
{
    const config_setting_t *ms = config_setting_get_member(g, "model");
    const config_setting_t *mss = config_setting_get_member(g, "models");
    const config_setting_t *s;
    const char *str;
    char qb[CONF_QBUF];
    int scorer = SCORER_NONE;
    long v;

    st->line = (int)conf_line(g);
    st->scorer_timeout_ms = DEF_SCORER_TIMEOUT_MS;
    conf_keys(&l->ck, g, path, config_keys_stage);
    if (conf_enum(&l->ck, g, path, "scorer", scorer_names, ARRAY_LEN(scorer_names), &scorer) < 0)
        scorer = -1;
    st->scorer = scorer < 0 ? SCORER_NONE : (enum scorer_kind)scorer;
    for (size_t i = 0; i < ARRAY_LEN(scorer_keys); i++) {
        s = config_setting_get_member(g, scorer_keys[i].key);
        if (s && !scorer_key_ok(scorer, scorer_keys[i].key))
            conf_err(&l->ck, s, path, scorer_keys[i].key, "key '%s' is only valid with %s",
                     scorer_keys[i].key, scorer_keys[i].valid_with);
    }

    if (ms && mss) {
        conf_err(&l->ck, mss, path, "models", "'model' and 'models' are mutually exclusive");
    } else if (ms) {
        st->models = xcalloc(1, sizeof(*st->models));
        st->nmodels = 1;
        if (config_setting_type(ms) != CONFIG_TYPE_STRING)
            conf_err(&l->ck, ms, path, "model", "expected a string");
        else
            st->models[0] = resolve_model(l, ms, path, "model");
    } else if (mss) {
        const config_setting_t *list = NULL;
        unsigned n = 0;

        /* With the wrong scorer 'models' was reported above. */
        if (scorer_key_ok(scorer, "models"))
            list = conf_list(&l->ck, g, path, "models", 0, 1);
        n = list ? (unsigned)config_setting_length(list) : 0;
        if (list && n < 2 && scorer == SCORER_LEARNED)
            conf_err(&l->ck, list, path, "models",
                     "needs at least two models (the stage's model, then its scorer's peers; "
                     "without peers, use 'model')");
        else if (list && n < 2)
            conf_err(&l->ck, list, path, "models",
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
                    conf_err(&l->ck, e, mpath, seg, "expected a model name (a string)");
                else
                    st->models[i] = resolve_model(l, e, mpath, seg);
            }
            free(mpath);
        }
    } else {
        conf_err(&l->ck, g, path, "model", "missing required key");
    }

    if (scorer > SCORER_NONE)
        conf_num(&l->ck, g, path, "threshold", 1, 0.0, 1.0, &st->threshold);

    if (scorer == SCORER_AGREEMENT) {
        if (conf_int(&l->ck, g, path, "samples", 0, 2, 16, &v) > 0) {
            st->samples = (int)v;
            if (mss && !ms)
                conf_err(&l->ck, config_setting_get_member(g, "samples"), path, "samples",
                         "'samples' is only valid with a single 'model'");
        } else if (ms && !mss && !config_setting_get_member(g, "samples")) {
            conf_err(&l->ck, g, path, NULL,
                     "scorer \"agreement\" needs 'models' (two or more) or 'samples' (2..16)");
        }
    }

    if (scorer == SCORER_JUDGE) {
        if (conf_str(&l->ck, g, path, "judge", 1, &str) > 0)
            st->judge = resolve_model(l, config_setting_get_member(g, "judge"), path, "judge");
        if (conf_str(&l->ck, g, path, "rubric", 0, &str) > 0) {
            if (*str == '\0')
                conf_err(&l->ck, config_setting_get_member(g, "rubric"), path, "rubric",
                         "must not be empty (leave it out for the built-in rubric)");
            else
                st->rubric = xstrdup(str);
        }
    }

    if (scorer == SCORER_LEARNED && conf_str(&l->ck, g, path, "weights", 1, &str) > 0) {
        s = config_setting_get_member(g, "weights");
        if (*str == '\0') {
            conf_err(&l->ck, s, path, "weights", "must not be empty");
        } else {
            char err[256] = "";

            st->weights_path = conf_resolve_path(&l->ck, str);
            st->weights = learned_load(st->weights_path, err, sizeof(err));
            /* learned.c's messages may already start with the path. */
            if (st->weights == NULL &&
                strncmp(err, st->weights_path, strlen(st->weights_path)) == 0)
                conf_err(&l->ck, s, path, "weights", "cannot load %s", err);
            else if (st->weights == NULL)
                conf_err(&l->ck, s, path, "weights", "cannot load %s: %s",
                         conf_quote(qb, st->weights_path), err[0] ? err : "unknown error");
            /* The scorer reads its peers' answers: the stage's other models. */
            else if (st->nmodels > 0 && learned_peers(st->weights) + 1 != st->nmodels)
                conf_err(&l->ck, s, path, "weights",
                         "%s reads the answers of %zu peer model%s (%s), so the stage needs "
                         "'models' with its own model and %zu more (it has %zu)",
                         conf_quote(qb, st->weights_path), learned_peers(st->weights),
                         learned_peers(st->weights) == 1 ? "" : "s",
                         learned_peers(st->weights) ? learned_peer_names(st->weights) : "none",
                         learned_peers(st->weights), st->nmodels - 1);
        }
    }

    if (scorer == SCORER_HTTP && conf_str(&l->ck, g, path, "url", 1, &str) > 0) {
        if (!conf_url_ok(str, http_schemes))
            conf_err(&l->ck, config_setting_get_member(g, "url"), path, "url",
                     "expected an http:// or https:// URL");
        else
            st->url = xstrdup(str);
    }

    if ((scorer == SCORER_JUDGE || scorer == SCORER_HTTP) &&
        conf_int(&l->ck, g, path, "timeout_ms", 0, 1, MAX_TIMEOUT_MS, &v) > 0)
        st->scorer_timeout_ms = v;
    check_stage_anthropic(l, g, path, st);
}

static void load_fallback(struct load *l, const config_setting_t *g, const char *path,
                          struct route *r)
{
    const config_setting_t *list = conf_list(&l->ck, g, path, "fallback", 1, 1);
    unsigned n = list ? (unsigned)config_setting_length(list) : 0;
    char *fpath;

    if (list == NULL)
        return;
    if (n == 0) {
        conf_err(&l->ck, list, path, "fallback", "needs at least one model");
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
            conf_err(&l->ck, e, fpath, seg, "expected a model name (a string)");
            stage_single(&r->stages[i], NULL, (int)conf_line(e));
        } else {
            stage_single(&r->stages[i], resolve_model(l, e, fpath, seg), (int)conf_line(e));
        }
    }
    free(fpath);
}

static void load_cascade(struct load *l, const config_setting_t *g, const char *path,
                         struct route *r)
{
    const config_setting_t *list = conf_list(&l->ck, g, path, "cascade", 1, 0);
    unsigned n = list ? (unsigned)config_setting_length(list) : 0;

    if (list == NULL)
        return;
    if (n == 0) {
        conf_err(&l->ck, list, path, "cascade", "needs at least one stage");
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
            conf_err(&l->ck, e, spath, NULL, "expected a group { ... }");
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

static void load_route(struct load *l, const config_setting_t *list, unsigned idx, const char *path)
{
    const config_setting_t *g = config_setting_get_elem(list, idx);
    struct route *r = &l->cfg->routes[idx];
    static const char *const kinds[] = {"model", "fallback", "cascade"};
    const config_setting_t *kind_s[3];
    const struct model *clash;
    const char *s;
    char qb[CONF_QBUF];
    int nkinds = 0;

    r->line = (int)conf_line(g);
    conf_defaults(config_keys_route, r);
    conf_read(&l->ck, g, path, config_keys_route, r);
    r->name = get_elem_name(l, list, idx, path, "route");
    /* A request's `model` names a route or a model; the same name for both
     * would make it ambiguous. */
    if (r->name && (clash = find_model(l->cfg, r->name)) != NULL) {
        char *w = conf_where(
            &l->ck, config_setting_get_elem(l->models_list, (unsigned)(clash - l->cfg->models)));

        conf_err(&l->ck, config_setting_get_member(g, "name"), path, "name",
                 "route %s has the same name as a model (defined at %s); a request's "
                 "\"model\" would be ambiguous",
                 conf_quote(qb, r->name), w);
        free(w);
    }

    for (int k = 0; k < 3; k++) {
        kind_s[k] = config_setting_get_member(g, kinds[k]);
        nkinds += kind_s[k] != NULL;
    }
    if (nkinds == 0) {
        conf_err(&l->ck, g, path, NULL, "needs one of 'model', 'fallback' or 'cascade'");
    } else if (nkinds > 1) {
        for (int k = 2; k >= 0; k--) {
            if (kind_s[k]) {
                conf_err(&l->ck, kind_s[k], path, kinds[k],
                         "'model', 'fallback' and 'cascade' are mutually exclusive");
                break;
            }
        }
    } else if (kind_s[0]) {
        r->kind = ROUTE_SINGLE;
        if (conf_str(&l->ck, g, path, "model", 1, &s) > 0) {
            r->stages = xcalloc(1, sizeof(*r->stages));
            r->nstages = 1;
            stage_single(&r->stages[0], resolve_model(l, kind_s[0], path, "model"),
                         (int)conf_line(kind_s[0]));
        }
    } else if (kind_s[1]) {
        r->kind = ROUTE_FALLBACK;
        load_fallback(l, g, path, r);
    } else {
        r->kind = ROUTE_CASCADE;
        load_cascade(l, g, path, r);
    }
    if (route_models(r) > ROUTE_MODELS_MAX)
        conf_err(&l->ck, g, path, NULL,
                 "names more than %d distinct models; a route may name at most %d",
                 ROUTE_MODELS_MAX, ROUTE_MODELS_MAX);
}

/* Routes are optional: every model gets an implicit route anyway. The array
 * has room for those too, so pointers into it never move. */
static void load_routes(struct load *l, const config_setting_t *root)
{
    struct config *cfg = l->cfg;
    const config_setting_t *list = NULL;
    unsigned n = 0;

    if (config_setting_get_member(root, "routes")) {
        list = conf_list(&l->ck, root, "", "routes", 0, 0);
        n = list ? (unsigned)config_setting_length(list) : 0;
    }
    cfg->routes = xcalloc(n + cfg->nmodels, sizeof(*cfg->routes));
    cfg->nroutes = n;
    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, i);
        char *path = elem_path("routes", e, i);

        if (!config_setting_is_group(e))
            conf_err(&l->ck, e, path, NULL, "expected a group { ... }");
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

static void load_admin(struct load *l, const config_setting_t *root)
{
    const config_setting_t *g = conf_group(&l->ck, root, "", "admin");
    struct admin_conf *a = &l->cfg->admin;
    const char *s;
    char qb[CONF_QBUF];

    conf_defaults(config_keys_admin, a);
    if (g != NULL) {
        conf_keys(&l->ck, g, "admin", config_keys_admin);
        if (conf_str(&l->ck, g, "admin", "listen", 1, &s) > 0) {
            const char *why = conf_listen_check(s);

            if (why)
                conf_err(&l->ck, config_setting_get_member(g, "listen"), "admin", "listen",
                         "%s (got %s)", why, conf_quote(qb, s));
            else
                a->listen = xstrdup(s);
        }
        if (conf_str(&l->ck, g, "admin", "key_env", 0, &s) > 0) {
            if (!conf_env_name_ok(s)) {
                conf_err(&l->ck, config_setting_get_member(g, "key_env"), "admin", "key_env",
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
    char qb[CONF_QBUF];

    k->line = (int)conf_line(g);
    conf_defaults(config_keys_key, k);
    conf_read(&l->ck, g, path, config_keys_key, k);
    k->name = get_elem_name(l, list, idx, path, "key");
    if (conf_str(&l->ck, g, path, "key_sha256", 1, &s) > 0) {
        int ok = strlen(s) == 64;

        for (int i = 0; ok && i < 32; i++) {
            int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);

            ok = hi >= 0 && lo >= 0;
            if (ok) /* -1 << 4 would be undefined */
                k->sha256[i] = (unsigned char)(hi << 4 | lo);
        }
        if (!ok)
            conf_err(&l->ck, config_setting_get_member(g, "key_sha256"), path, "key_sha256",
                     "expected the 64 hex digits of the key's SHA-256 (sluice keygen prints "
                     "it), never the key itself");
    }
    routes = conf_list(&l->ck, g, path, "routes", 0, 1);
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
                conf_err(&l->ck, e, epath, NULL, "expected a route name");
            else if (config_route(l->cfg, rn) == NULL && find_model(l->cfg, rn) == NULL)
                conf_err(&l->ck, e, epath, NULL, "unknown route %s", conf_quote(qb, rn));
            else
                k->route_names[k->nroutes++] = xstrdup(rn);
            free(epath);
        }
    }
}

static void load_keys(struct load *l, const config_setting_t *root)
{
    const config_setting_t *list = conf_list(&l->ck, root, "", "keys", 0, 0);

    if (list == NULL)
        return;
    l->cfg->nkeys = (size_t)config_setting_length(list);
    l->cfg->keys = xcalloc(l->cfg->nkeys ? l->cfg->nkeys : 1, sizeof(*l->cfg->keys));
    list_each(l, list, "keys", load_key);
    for (size_t i = 0; i < l->cfg->nkeys; i++)
        for (size_t j = 0; j < i; j++)
            if (memcmp(l->cfg->keys[i].sha256, l->cfg->keys[j].sha256, 32) == 0 &&
                l->cfg->keys[i].name && l->cfg->keys[j].name)
                conf_err(&l->ck, config_setting_get_elem(list, (unsigned)i), "keys",
                         l->cfg->keys[i].name, "the same key_sha256 as key \"%s\"",
                         l->cfg->keys[j].name);
}

static void load_root(struct load *l, const config_setting_t *root)
{
    struct config *cfg = l->cfg;
    const config_setting_t *list;
    const char *s;

    conf_defaults(config_keys_top, cfg);
    conf_read(&l->ck, root, "", config_keys_top, cfg);
    if (conf_str(&l->ck, root, "", "listen", 0, &s) > 0) {
        const char *why = conf_listen_check(s);
        char qb[CONF_QBUF];

        if (why) {
            conf_err(&l->ck, config_setting_get_member(root, "listen"), "", "listen", "%s (got %s)",
                     why, conf_quote(qb, s));
        } else {
            free(cfg->listen);
            cfg->listen = xstrdup(s);
        }
    }
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

/* Parse from fp or, when fp is NULL, from text; then check and build. name
 * is FILE in messages and its directory is where @include and relative
 * paths start. Returns a snapshot with one reference, or NULL with errs
 * filled. */
static struct config *load_common(const char *name, FILE *fp, const char *text,
                                  struct config_errors *errs)
{
    struct load l = {0};
    config_t lc;
    size_t nerrs;

    conf_check_init(&l.ck, name, errs);
    config_init(&lc);
    /* No CONFIG_OPTION_AUTOCONVERT: the getters accept ints and floats
     * themselves and report a string where a number belongs. */
#ifdef SLUICE_FUZZ
    /* A fuzzer would find @include "../../dev/zero". Every path under a
     * directory that does not exist fails, ".." included. */
    config_set_include_dir(&lc, "/nonexistent-sluice-fuzz");
#else
    config_set_include_dir(&lc, l.ck.dir);
#endif
    if (!(fp ? config_read(&lc, fp) : config_read_string(&lc, text))) {
        conf_syntax_error(&l.ck, &lc);
    } else {
        l.cfg = xcalloc(1, sizeof(*l.cfg));
        l.cfg->refs = 1;
        l.cfg->path = xstrdup(name);
        load_root(&l, config_root_setting(&lc));
        if (l.ck.nerrs == 0) {
            add_implicit_routes(l.cfg);
            resolve_key_routes(l.cfg);
        }
    }
    nerrs = conf_check_done(&l.ck); /* before config_destroy: it sorts by lc's file names */
    config_destroy(&lc);
    if (nerrs > 0) {
        if (l.cfg)
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
        conf_errors_add(errs, xasprintf("%s: cannot open: %s", path, strerror(errno)));
    } else if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
        conf_errors_add(errs, xasprintf("%s: not a regular file", path));
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
