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

/* One row's value in the struct at base, as the dump shows it: a URL
 * redacted, a secret only as set or not. Returns NULL to leave the row out
 * (CONF_UNSET rows while unset). */
static json_t *row_json(const struct conf_key *k, const void *base)
{
    const void *f = conf_field(base, k);
    double v = 0;

    switch (k->type) {
    case CONF_STR: {
        const char *s = *(char *const *)f;

        if (s == NULL && (k->flags & CONF_UNSET))
            return NULL;
        if (k->flags & CONF_SECRET)
            return s ? json_string(REDACTED) : json_null();
        return (k->flags & CONF_URL) ? url_json(s) : str_or_null(s);
    }
    case CONF_INT:
        v = (double)*(const long *)f;
        break;
    case CONF_SIZE:
        v = (double)*(const size_t *)f;
        break;
    case CONF_NUM:
        v = *(const double *)f;
        break;
    case CONF_BOOL:
        return json_boolean(*(const int *)f);
    case CONF_ENUM:
        return json_string(k->names[*(const int *)f]);
    default:
        sl_assert(!"a group or a list is not a value");
    }
    if ((k->flags & CONF_UNSET) && (v == k->def || v < 0))
        return NULL;
    if (k->type == CONF_NUM)
        return json_real(v);
    return json_integer(k->type == CONF_SIZE ? (json_int_t) * (const size_t *)f
                                             : (json_int_t) * (const long *)f);
}

/* The keys of table tab in the struct at base, as config.c's key table
 * describes them; a group with a table of its own is a nested object. Rows
 * without a field (lists, header groups, what the file names but the
 * struct keeps another way), old forms and CONF_NODUMP rows are left to
 * the caller. Returns a new object. */
static json_t *table_json(const struct conf_key *tab, const void *base)
{
    json_t *o = json_object();

    for (const struct conf_key *k = tab; k->name; k++) {
        json_t *v;

        if ((k->flags & (CONF_REFUSED | CONF_OLD | CONF_NODUMP)) || k->off == CONF_NO_FIELD ||
            k->type == CONF_LIST)
            continue;
        if (k->type == CONF_GROUP)
            v = k->sub ? table_json(k->sub, conf_field(base, k)) : NULL;
        else
            v = row_json(k, base);
        if (v)
            json_object_set_new(o, k->name, v);
    }
    return o;
}

/* Header names with their values redacted: they often carry tokens. */
static json_t *headers_json(const struct header_kv *h, size_t n)
{
    json_t *o = json_object();

    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, h[i].name, json_string(REDACTED));
    return o;
}

static json_t *str_list(char **v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* Set key in o to a secret read from the environment, shown only as set
 * (<redacted>) or not: as `unset`, or null when that is NULL. */
static void secret_json(json_t *o, const char *key, const char *v, const char *unset)
{
    json_object_set_new(o, key, v ? json_string(REDACTED) : str_or_null(unset));
}

static json_t *provider_json(const struct provider *p)
{
    json_t *o = table_json(config_keys_provider, p);

    secret_json(o, "api_key", p->api_key, NULL);
    json_object_set_new(o, "headers", headers_json(p->headers, p->nheaders));
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

    /* The file first, then its keys. */
    json_object_set_new(o, "path", str_or_null(cfg->path));
    json_object_update(o, a = table_json(config_keys_top, cfg));
    json_decref(a);
    secret_json(json_object_get(o, "admin"), "key", cfg->admin.key, "(unset)");
    if (cfg->redis.configured) {
        json_t *r = json_object_get(o, "redis");

        secret_json(r, "password", cfg->redis.password, "(unset)");
        json_object_set_new(r, "sentinels", str_list(cfg->redis.sentinels, cfg->redis.nsentinels));
        json_object_set_new(r, "cluster_nodes",
                            str_list(cfg->redis.cluster_nodes, cfg->redis.ncluster_nodes));
    } else {
        json_object_set_new(o, "redis", json_null());
    }
    if (cfg->trace.path == NULL && !cfg->trace.stream_on)
        json_object_set_new(o, "trace", json_null());
    else if (!cfg->trace.stream_on)
        json_object_set_new(json_object_get(o, "trace"), "stream", json_null());
    if (cfg->otel.endpoint)
        json_object_set_new(json_object_get(o, "otel"), "headers",
                            headers_json(cfg->otel.headers, cfg->otel.nheaders));
    else
        json_object_set_new(o, "otel", json_null());
    a = json_array();
    for (size_t i = 0; i < cfg->nproviders; i++)
        json_array_append_new(a, provider_json(&cfg->providers[i]));
    json_object_set_new(o, "providers", a);
    a = json_array();
    for (size_t i = 0; i < cfg->nmodels; i++) {
        const struct model *m = &cfg->models[i];
        json_t *mo = table_json(config_keys_model, m);

        json_object_set_new(mo, "provider", json_string(m->provider->name));
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
        ro = table_json(config_keys_route, r);
        json_object_set_new(ro, "kind", json_string(kinds[r->kind]));
        json_object_set_new(ro, "stages", stages);
        json_array_append_new(a, ro);
    }
    json_object_set_new(o, "routes", a);
    return o;
}
