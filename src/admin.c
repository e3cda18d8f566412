/* admin.c - admin operations; see admin.h. */
#include "admin.h"
#include "config.h"
#include "scorer.h"
#include "util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REDACTED "<redacted>"

int admin_key_ok(const struct config *cfg, const char *given)
{
    const char *key = cfg->admin.key;
    size_t n;

    if (key == NULL || given == NULL)
        return 0;
    n = strlen(key);
    /* Compare the whole key whatever the first difference; a length
     * mismatch is no secret worth hiding. */
    return strlen(given) == n && CRYPTO_memcmp(given, key, n) == 0;
}

int admin_auth_ok(const struct config *cfg, const char *auth)
{
    unsigned char dec[512];
    const char *colon;
    size_t n;
    int len, ok;

    if (auth == NULL)
        return 0;
    if (strncasecmp(auth, "Bearer ", 7) == 0)
        return admin_key_ok(cfg, auth + 7);
    if (strncasecmp(auth, "Basic ", 6) != 0)
        return 0;
    /* A browser asks for Basic credentials; the key is the password, the
     * user name is anything. */
    auth += 6;
    n = strlen(auth);
    if (n == 0 || n % 4 != 0 || n / 4 * 3 >= sizeof(dec))
        return 0;
    len = EVP_DecodeBlock(dec, (const unsigned char *)auth, (int)n);
    if (len < 0)
        return 0;
    /* EVP_DecodeBlock counts the padding's zero bytes: drop them. */
    len -= (auth[n - 1] == '=') + (auth[n - 2] == '=');
    dec[len] = '\0';
    colon = memchr(dec, ':', (size_t)len);
    ok = colon && strlen((const char *)dec) == (size_t)len && admin_key_ok(cfg, colon + 1);
    explicit_bzero(dec, sizeof(dec));
    return ok;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

char *admin_url_redact(const char *url)
{
    const char *auth, *end, *at = NULL;

    if (url == NULL)
        return NULL;
    auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    end = auth + strcspn(auth, "/?#");
    /* The last '@' ends the user information: a password may hold an
     * unescaped '@', a host never does. */
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL)
        return xstrdup(url);
    return xasprintf("%.*s" REDACTED "%s", (int)(auth - url), url, at);
}

/* A URL for the admin API's eyes: see admin_url_redact. */
static json_t *url_json(const char *url)
{
    char *shown = admin_url_redact(url);
    json_t *j = str_or_null(shown);

    free(shown);
    return j;
}

/* The otel block; header values may be credentials (headers_env). */
static json_t *otel_json(const struct otel_conf *oc)
{
    json_t *h;

    if (oc->endpoint == NULL)
        return json_null();
    h = json_object();
    for (size_t i = 0; i < oc->nheaders; i++)
        json_object_set_new(h, oc->headers[i].name, json_string(REDACTED));
    return json_pack("{s:o, s:o, s:s, s:f, s:b, s:I, s:I}", "endpoint", url_json(oc->endpoint),
                     "headers", h,
                     "service_name", oc->service_name, "sample_ratio", oc->sample_ratio,
                     "capture_content", oc->capture_content, "timeout_ms",
                     (json_int_t)oc->timeout_ms, "max_queue", (json_int_t)oc->max_queue);
}

static json_t *str_list(char **v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* The redis block as it is in force; the password only as set or not. */
static json_t *redis_conf_json(const struct redis_conf *rc)
{
    if (!rc->configured)
        return json_null();
    return json_pack("{s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I}", "url",
                     url_json(rc->url), "username", str_or_null(rc->username), "password_env",
                     str_or_null(rc->password_env), "password",
                     rc->password ? REDACTED : "(unset)", "tls_ca_file",
                     str_or_null(rc->tls_ca_file), "tls_cert_file", str_or_null(rc->tls_cert_file),
                     "tls_key_file", str_or_null(rc->tls_key_file), "tls_server_name",
                     str_or_null(rc->tls_server_name), "sentinels",
                     str_list(rc->sentinels, rc->nsentinels), "master_name",
                     str_or_null(rc->master_name), "cluster_nodes",
                     str_list(rc->cluster_nodes, rc->ncluster_nodes), "timeout_ms",
                     (json_int_t)rc->timeout_ms);
}

static json_t *provider_json(const struct provider *p)
{
    json_t *o = json_object(), *h = json_object();

    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "type", json_string(config_provider_type_name(p->type)));
    json_object_set_new(o, "base_url", url_json(p->base_url));
    json_object_set_new(o, "api_key_env", str_or_null(p->api_key_env));
    json_object_set_new(o, "api_key", p->api_key ? json_string(REDACTED) : json_null());
    if (p->api_version)
        json_object_set_new(o, "api_version", json_string(p->api_version));
    if (p->type == PROVIDER_ANTHROPIC) {
        json_object_set_new(o, "anthropic_version", json_string(p->anthropic_version));
        json_object_set_new(o, "default_max_tokens", json_integer(p->default_max_tokens));
    }
    /* Extra headers often carry tokens too. */
    for (size_t i = 0; i < p->nheaders; i++)
        json_object_set_new(h, p->headers[i].name, json_string(REDACTED));
    json_object_set_new(o, "headers", h);
    json_object_set_new(o, "timeout_ms", json_integer(p->timeout_ms));
    json_object_set_new(o, "connect_timeout_ms", json_integer(p->connect_timeout_ms));
    json_object_set_new(o, "first_byte_timeout_ms", json_integer(p->first_byte_timeout_ms));
    json_object_set_new(o, "idle_timeout_ms", json_integer(p->idle_timeout_ms));
    json_object_set_new(o, "retries", json_integer(p->retries));
    json_object_set_new(o, "passthrough_auth", json_boolean(p->passthrough_auth));
    json_object_set_new(o, "http_version", json_string(config_http_version_name(p->http_version)));
    json_object_set_new(o, "ca_file", p->ca_file ? json_string(p->ca_file) : json_null());
    json_object_set_new(
        o, "breaker",
        json_pack("{s:I, s:f, s:I, s:I, s:I}", "failures", (json_int_t)p->breaker_failures,
                  "error_rate", p->breaker_error_rate, "min_requests",
                  (json_int_t)p->breaker_min_requests, "window_s", (json_int_t)p->breaker_window_s,
                  "cooldown_s", (json_int_t)p->breaker_cooldown_s));
    return o;
}

static json_t *stage_json(const struct stage *st)
{
    json_t *o = json_object(), *models = json_array();

    for (size_t i = 0; i < st->nmodels; i++)
        json_array_append_new(models, json_string(st->models[i]->name));
    json_object_set_new(o, "models", models);
    json_object_set_new(o, "scorer", json_string(scorer_name(st->scorer)));
    if (st->scorer != SCORER_NONE)
        json_object_set_new(o, "threshold", json_real(st->threshold));
    if (st->samples > 1)
        json_object_set_new(o, "samples", json_integer(st->samples));
    if (st->judge)
        json_object_set_new(o, "judge", json_string(st->judge->name));
    if (st->weights_path)
        json_object_set_new(o, "weights", json_string(st->weights_path));
    if (st->url)
        json_object_set_new(o, "url", url_json(st->url));
    return o;
}

json_t *admin_config_json(const struct config *cfg)
{
    static const char *kinds[] = {"single", "fallback", "cascade"};
    json_t *o = json_object(), *a;

    json_object_set_new(o, "path", str_or_null(cfg->path));
    json_object_set_new(o, "listen", json_string(cfg->listen));
    json_object_set_new(o, "workers", json_integer(cfg->workers));
    json_object_set_new(o, "max_body_bytes", json_integer((json_int_t)cfg->max_body_bytes));
    json_object_set_new(o, "max_header_bytes", json_integer((json_int_t)cfg->max_header_bytes));
    json_object_set_new(o, "max_connections", json_integer(cfg->max_connections));
    json_object_set_new(o, "max_inflight", json_integer(cfg->max_inflight));
    json_object_set_new(o, "drain_timeout_s", json_integer(cfg->drain_timeout_s));
    json_object_set_new(o, "client_timeout_s", json_integer(cfg->client_timeout_s));
    json_object_set_new(o, "client_header_timeout_s", json_integer(cfg->client_header_timeout_s));
    json_object_set_new(o, "client_body_timeout_s", json_integer(cfg->client_body_timeout_s));
    json_object_set_new(o, "max_stream_memory_bytes",
                        json_integer((json_int_t)cfg->max_stream_memory_bytes));
    json_object_set_new(o, "admin",
                        json_pack("{s:o, s:s, s:s}", "listen", str_or_null(cfg->admin.listen),
                                  "key_env", cfg->admin.key_env, "key",
                                  cfg->admin.key ? REDACTED : "(unset)"));
    json_object_set_new(o, "cache",
                        json_pack("{s:s, s:I, s:I, s:I, s:I}", "backend",
                                  cfg->cache.backend == CACHE_REDIS ? "redis" : "memory", "ttl_s",
                                  (json_int_t)cfg->cache.ttl_s, "timeout_ms",
                                  (json_int_t)cfg->cache.timeout_ms, "max_value_bytes",
                                  (json_int_t)cfg->cache.max_value_bytes, "max_bytes",
                                  (json_int_t)cfg->cache.max_bytes));
    json_object_set_new(o, "redis", redis_conf_json(&cfg->redis));
    json_object_set_new(o, "trace",
                        cfg->trace.path ? json_pack("{s:s, s:b}", "path", cfg->trace.path,
                                                    "include_content", cfg->trace.include_content)
                                        : json_null());
    json_object_set_new(o, "otel", otel_json(&cfg->otel));
    a = json_array();
    for (size_t i = 0; i < cfg->nproviders; i++)
        json_array_append_new(a, provider_json(&cfg->providers[i]));
    json_object_set_new(o, "providers", a);
    a = json_array();
    for (size_t i = 0; i < cfg->nmodels; i++) {
        const struct model *m = &cfg->models[i];

        json_t *mo = json_pack("{s:s, s:s, s:s, s:f, s:f}", "name", m->name, "provider",
                               m->provider->name, "id", m->id, "input_per_mtok", m->input_per_mtok,
                               "output_per_mtok", m->output_per_mtok);

        if (m->cache_read_per_mtok >= 0)
            json_object_set_new(mo, "cache_read_per_mtok", json_real(m->cache_read_per_mtok));
        if (m->cache_write_per_mtok >= 0)
            json_object_set_new(mo, "cache_write_per_mtok", json_real(m->cache_write_per_mtok));
        json_array_append_new(a, mo);
    }
    json_object_set_new(o, "models", a);
    a = json_array();
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct route *r = &cfg->routes[i];
        json_t *ro, *stages;

        if (r->implicit)
            continue;
        stages = json_array();
        for (size_t k = 0; k < r->nstages; k++)
            json_array_append_new(stages, stage_json(&r->stages[k]));
        ro = json_pack("{s:s, s:s, s:o, s:f, s:b, s:I, s:b}", "name", r->name, "kind",
                       kinds[r->kind], "stages", stages, "max_cost", r->max_cost, "cache", r->cache,
                       "cache_ttl_s", (json_int_t)r->cache_ttl_s, "cache_nondeterministic",
                       r->cache_nondeterministic);
        json_array_append_new(a, ro);
    }
    json_object_set_new(o, "routes", a);
    return o;
}
