/* conf_check.c - the generic half of gateway.conf checking; see
 * conf_check.h. No key of sluice's is named here: config.c has the schema.
 *
 * Messages are "FILE:LINE: key.path: message". LINE is libconfig's source
 * line of the offending setting; for a missing key it is the line of the
 * enclosing group.
 */
#include "conf_check.h"

#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- a check and its messages ------------------------------------------ */

void conf_check_init(struct conf_check *ck, const char *name, struct config_errors *errs)
{
    const char *slash = strrchr(name, '/');

    memset(ck, 0, sizeof(*ck));
    ck->name = name;
    ck->errs = errs;
    if (slash == NULL)
        ck->dir = xstrdup(".");
    else if (slash == name)
        ck->dir = xstrdup("/");
    else
        ck->dir = xstrndup(name, (size_t)(slash - name));
}

static int same_file(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Put the messages in file order, then line order, as a compiler would;
 * files come in the order their first message was made. Messages were made
 * in check order (a schema may check lists out of the file's order).
 * Insertion sort, stable: there are at most CONF_MAX_ERRORS. */
static void sort_errors(struct conf_check *ck)
{
    struct config_errors *errs = ck->errs;
    unsigned *rank = xcalloc(errs->n ? errs->n : 1, sizeof(*rank));

    for (size_t i = 0; i < errs->n; i++) {
        size_t j = 0;

        while (!same_file(ck->pos[j].file, ck->pos[i].file))
            j++;
        rank[i] = (unsigned)j;
    }
    for (size_t i = 1; i < errs->n; i++) {
        struct conf_err_pos p = ck->pos[i];
        char *msg = errs->msgs[i];
        unsigned r = rank[i];
        size_t j = i;

        while (j > 0 && (rank[j - 1] > r || (rank[j - 1] == r && ck->pos[j - 1].line > p.line))) {
            ck->pos[j] = ck->pos[j - 1];
            errs->msgs[j] = errs->msgs[j - 1];
            rank[j] = rank[j - 1];
            j--;
        }
        ck->pos[j] = p;
        errs->msgs[j] = msg;
        rank[j] = r;
    }
    free(rank);
}

size_t conf_check_done(struct conf_check *ck)
{
    size_t n = ck->nerrs;

    sort_errors(ck);
    if (ck->nerrs > ck->errs->n)
        conf_errors_add(ck->errs, xasprintf("%s: %zu more errors not shown", ck->name,
                                            ck->nerrs - ck->errs->n));
    free(ck->pos);
    free(ck->dir);
    ck->pos = NULL;
    ck->dir = NULL;
    return n;
}

void conf_errors_add(struct config_errors *errs, char *msg)
{
    errs->msgs = xrealloc(errs->msgs, (errs->n + 1) * sizeof(*errs->msgs));
    errs->msgs[errs->n++] = msg;
}

/* Count one error and, under the cap, keep msg (taking ownership) with its
 * position for sorting; past the cap msg is dropped. */
static void record(struct conf_check *ck, const char *file, unsigned line, char *msg)
{
    ck->nerrs++;
    if (ck->errs->n >= CONF_MAX_ERRORS) {
        free(msg);
        return;
    }
    ck->pos = xrealloc(ck->pos, (ck->errs->n + 1) * sizeof(*ck->pos));
    ck->pos[ck->errs->n].file = file;
    ck->pos[ck->errs->n].line = line;
    conf_errors_add(ck->errs, msg);
}

char *conf_display_file(const struct conf_check *ck, const char *f)
{
    if (f == NULL || strcmp(f, ck->name) == 0)
        return xstrdup(ck->name);
    if (f[0] == '/' || strcmp(ck->dir, ".") == 0)
        return xstrdup(f);
    return xasprintf("%s/%s", ck->dir, f);
}

void conf_syntax_error(struct conf_check *ck, const config_t *lc)
{
    char *file = conf_display_file(ck, config_error_file(lc));

    record(ck, config_error_file(lc), (unsigned)config_error_line(lc),
           xasprintf("%s:%d: syntax: %s", file, config_error_line(lc),
                     config_error_text(lc) ? config_error_text(lc) : "error"));
    free(file);
}

unsigned conf_line(const config_setting_t *s)
{
    unsigned n = s ? config_setting_source_line(s) : 0;

    /* The root group has no line of its own; point at the file's start. */
    return n ? n : 1;
}

char *conf_where(const struct conf_check *ck, const config_setting_t *s)
{
    char *f = conf_display_file(ck, s ? config_setting_source_file(s) : NULL);
    char *w = xasprintf("%s:%u", f, conf_line(s));

    free(f);
    return w;
}

char *conf_resolve_path(const struct conf_check *ck, const char *p)
{
    if (p[0] == '/' || strcmp(ck->dir, ".") == 0)
        return xstrdup(p);
    return xasprintf("%s/%s", ck->dir, p);
}

void conf_err(struct conf_check *ck, const config_setting_t *s, const char *path, const char *key,
              const char *fmt, ...)
{
    va_list ap;
    char *msg, *file;

    if (ck->errs->n >= CONF_MAX_ERRORS) {
        ck->nerrs++;
        return;
    }
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        sl_panic("out of memory formatting a config error");
    va_end(ap);
    file = conf_display_file(ck, s ? config_setting_source_file(s) : NULL);
    record(ck, s ? config_setting_source_file(s) : NULL, conf_line(s),
           xasprintf("%s:%u: %s%s%s: %s", file, conf_line(s), path, (*path && key) ? "." : "",
                     key ? key : "", msg));
    free(file);
    free(msg);
}

const char *conf_quote(char out[CONF_QBUF], const char *s)
{
    size_t o = 0, i;

    out[o++] = '"';
    for (i = 0; s[i] != '\0' && i < CONF_QUOTE_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, CONF_QBUF - o, "\\x%02x", ch);
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

/* ---- key tables -------------------------------------------------------- */

const struct conf_key *conf_key_find(const struct conf_key *tab, const char *name)
{
    for (; tab->name; tab++)
        if (strcmp(tab->name, name) == 0)
            return tab;
    return NULL;
}

void *conf_field(const void *base, const struct conf_key *k)
{
    sl_assert(k->off != CONF_NO_FIELD);
    return (char *)base + k->off;
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

void conf_keys(struct conf_check *ck, const config_setting_t *g, const char *path,
               const struct conf_key *tab)
{
    int n = config_setting_length(g);

    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *key = config_setting_name(m);
        const struct conf_key *k = conf_key_find(tab, key);
        const char *best = NULL;
        size_t best_d = 3;

        if (k && !(k->flags & CONF_REFUSED))
            continue;
        if (k) {
            conf_err(ck, m, path, key, "unknown key; %s", k->doc);
            continue;
        }
        for (k = tab; k->name; k++) {
            size_t d = edit_distance(key, k->name);

            if (!(k->flags & CONF_REFUSED) && d < best_d && d < strlen(key)) {
                best_d = d;
                best = k->name;
            }
        }
        if (best)
            conf_err(ck, m, path, key, "unknown key (did you mean '%s'?)", best);
        else
            conf_err(ck, m, path, key, "unknown key");
    }
}

/* Has row k a value of its own in the struct (not a group, a list or a
 * refused name)? */
static int has_value(const struct conf_key *k)
{
    return !(k->flags & CONF_REFUSED) && k->off != CONF_NO_FIELD && k->type != CONF_GROUP &&
           k->type != CONF_LIST;
}

static size_t names_len(const char *const *names)
{
    size_t n = 0;

    while (names[n])
        n++;
    return n;
}

void conf_defaults(const struct conf_key *tab, void *base)
{
    for (const struct conf_key *k = tab; k->name; k++) {
        void *f;

        if (!has_value(k))
            continue;
        f = conf_field(base, k);
        switch (k->type) {
        case CONF_STR:
            free(*(char **)f);
            *(char **)f = k->def_str ? xstrdup(k->def_str) : NULL;
            break;
        case CONF_INT:
            *(long *)f = (long)k->def;
            break;
        case CONF_SIZE:
            *(size_t *)f = (size_t)k->def;
            break;
        case CONF_NUM:
            *(double *)f = k->def;
            break;
        case CONF_BOOL:
        case CONF_ENUM:
            *(int *)f = (int)k->def;
            break;
        default:
            break;
        }
    }
}

/* Read row k from group g into its field of base, by its type and limits.
 * Returns as the getters do. */
static int read_row(struct conf_check *ck, const config_setting_t *g, const char *path,
                    const struct conf_key *k, void *base)
{
    void *f = conf_field(base, k);
    const char *s;
    long v;
    int iv, r = 0;

    switch (k->type) {
    case CONF_STR:
        if ((r = conf_str(ck, g, path, k->name, 0, &s)) > 0) {
            free(*(char **)f);
            *(char **)f = xstrdup(s);
        }
        break;
    case CONF_INT:
        r = conf_int(ck, g, path, k->name, 0, (long)k->min, (long)k->max, (long *)f);
        break;
    case CONF_SIZE:
        if ((r = conf_int(ck, g, path, k->name, 0, (long)k->min, (long)k->max, &v)) > 0)
            *(size_t *)f = (size_t)v;
        break;
    case CONF_NUM:
        r = conf_num(ck, g, path, k->name, 0, k->min, k->max, (double *)f);
        break;
    case CONF_BOOL:
        r = conf_bool(ck, g, path, k->name, (int *)f);
        break;
    case CONF_ENUM:
        if ((r = conf_enum(ck, g, path, k->name, k->names, names_len(k->names), &iv)) > 0)
            *(int *)f = iv;
        break;
    default:
        sl_assert(!"a group or a list has no value to read");
    }
    return r;
}

void conf_read(struct conf_check *ck, const config_setting_t *g, const char *path,
               const struct conf_key *tab, void *base)
{
    conf_keys(ck, g, path, tab);
    for (const struct conf_key *k = tab; k->name; k++)
        if (has_value(k) && !(k->flags & CONF_HAND))
            read_row(ck, g, path, k, base);
}

int conf_read_key(struct conf_check *ck, const config_setting_t *g, const char *path,
                  const struct conf_key *tab, const char *name, void *base)
{
    const struct conf_key *k = conf_key_find(tab, name);

    sl_assert(k != NULL && has_value(k));
    return read_row(ck, g, path, k, base);
}

/* ---- typed getters ----------------------------------------------------- */

static int missing(struct conf_check *ck, const config_setting_t *g, const char *path,
                   const char *key, int required)
{
    if (required)
        conf_err(ck, g, path, key, "missing required key");
    return 0;
}

int conf_str(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
             int required, const char **out)
{
    const config_setting_t *s = config_setting_get_member(g, key);

    if (s == NULL)
        return missing(ck, g, path, key, required);
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        conf_err(ck, s, path, key, "expected a string");
        return -1;
    }
    *out = config_setting_get_string(s);
    return 1;
}

/* libconfig tells int 2 from float 2.0; a user should not have to. */
int conf_int(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
             int required, long min, long max, long *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    long long v;

    if (s == NULL)
        return missing(ck, g, path, key, required);
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v = config_setting_get_int64(s);
        break;
    case CONFIG_TYPE_FLOAT: {
        double d = config_setting_get_float(s);

        if (!isfinite(d) || d != floor(d) || fabs(d) > 9e18) {
            conf_err(ck, s, path, key, "expected an integer");
            return -1;
        }
        v = (long long)d;
        break;
    }
    default:
        conf_err(ck, s, path, key, "expected an integer");
        return -1;
    }
    if (v < min || v > max) {
        conf_err(ck, s, path, key, "must be between %ld and %ld (got %lld)", min, max, v);
        return -1;
    }
    *out = (long)v;
    return 1;
}

int conf_num(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
             int required, double min, double max, double *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    double v;

    if (s == NULL)
        return missing(ck, g, path, key, required);
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v = (double)config_setting_get_int64(s);
        break;
    case CONFIG_TYPE_FLOAT:
        v = config_setting_get_float(s);
        break;
    default:
        conf_err(ck, s, path, key, "expected a number");
        return -1;
    }
    if (!isfinite(v)) {
        conf_err(ck, s, path, key, "expected a finite number");
        return -1;
    }
    if (v < min || v > max) {
        if (isinf(max))
            conf_err(ck, s, path, key, "must be >= %g (got %g)", min, v);
        else
            conf_err(ck, s, path, key, "must be between %g and %g (got %g)", min, max, v);
        return -1;
    }
    *out = v;
    return 1;
}

int conf_bool(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
              int *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);

    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        conf_err(ck, s, path, key, "expected true or false");
        return -1;
    }
    *out = config_setting_get_bool(s);
    return 1;
}

int conf_enum(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
              const char *const *names, size_t n, int *out)
{
    const char *s;
    int r = conf_str(ck, g, path, key, 0, &s);
    char qb[CONF_QBUF], expect[256];
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
    conf_err(ck, config_setting_get_member(g, key), path, key,
             "unknown value %s (expected one of: %s)", conf_quote(qb, s), expect);
    return -1;
}

const config_setting_t *conf_group(struct conf_check *ck, const config_setting_t *g,
                                   const char *path, const char *key)
{
    const config_setting_t *s = config_setting_get_member(g, key);

    if (s == NULL)
        return NULL;
    if (!config_setting_is_group(s)) {
        conf_err(ck, s, path, key, "expected a group { ... }");
        return NULL;
    }
    return s;
}

const config_setting_t *conf_list(struct conf_check *ck, const config_setting_t *g,
                                  const char *path, const char *key, int required, int arrays_ok)
{
    const config_setting_t *s = config_setting_get_member(g, key);

    if (s == NULL) {
        missing(ck, g, path, key, required);
        return NULL;
    }
    if (!config_setting_is_list(s) && !(arrays_ok && config_setting_is_array(s))) {
        conf_err(ck, s, path, key, "expected a list ( ... )");
        return NULL;
    }
    return s;
}

/* ---- value checks ------------------------------------------------------ */

int conf_token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

int conf_has_ctl_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}

int conf_url_ok(const char *s, const char *const *schemes)
{
    for (; *schemes; schemes++) {
        size_t n = strlen(*schemes);

        if (strncasecmp(s, *schemes, n) == 0)
            return s[n] != '\0' && s[n] != '/' && !conf_has_ctl_or_space(s);
    }
    return 0;
}

const char *conf_listen_check(const char *s)
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
    if (conf_has_ctl_or_space(s))
        return "must not contain spaces or control characters";
    if (!isdigit((unsigned char)colon[1]) || parse_long(colon + 1, 0, 65535, &port) < 0)
        return "the port must be a number 0..65535";
    return NULL;
}

int conf_env_name_ok(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}
