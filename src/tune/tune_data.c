/* tune_data.c - sluice-tune's inputs: price tables (prices.json or the
 * models of a gateway.conf) and routerbench-style labelled JSONL.
 */
#include "tune.h"
#include "caps.h"

#include <errno.h>
#include <jansson.h>
#include <libconfig.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TUNE_MAX_LINE ((size_t)64 << 20) /* one JSONL record */
#define TUNE_MAX_QUERIES 1000000
#define TUNE_MAX_MODELS 32 /* a chain's model set is a 32-bit mask */
#define TUNE_KEY_MAX 256

/* ---- prices ---- */

static void prices_add(struct tune_prices *pr, const char *name, const char *id, double in,
                       double out)
{
    pr->p = xrealloc(pr->p, (pr->n + 1) * sizeof(*pr->p));
    pr->p[pr->n].name = xstrdup(name);
    pr->p[pr->n].id = id ? xstrdup(id) : NULL;
    pr->p[pr->n].in_per_mtok = in;
    pr->p[pr->n].out_per_mtok = out;
    pr->n++;
}

static int price_ok(double v)
{
    return isfinite(v) && v >= 0 && v < 1e6;
}

int tune_prices_load_json(struct tune_prices *pr, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr), *v;
    const char *name;

    memset(pr, 0, sizeof(*pr));
    if (root == NULL) {
        snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: expected an object of models", path);
        json_decref(root);
        return -1;
    }
    json_object_foreach (root, name, v) {
        json_t *in = json_object_get(v, "input_per_mtok");
        json_t *out = json_object_get(v, "output_per_mtok");

        if (!json_is_number(in) || !json_is_number(out) || !price_ok(json_number_value(in)) ||
            !price_ok(json_number_value(out))) {
            snprintf(err, errlen,
                     "%s: model \"%s\": input_per_mtok and output_per_mtok must be "
                     "non-negative numbers",
                     path, name);
            json_decref(root);
            tune_prices_free(pr);
            return -1;
        }
        prices_add(pr, name, NULL, json_number_value(in), json_number_value(out));
    }
    json_decref(root);
    return 0;
}

/* A number setting of a libconfig group, int or float. */
static int conf_number(const config_setting_t *g, const char *key, double *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);

    if (s == NULL)
        return -1;
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
        *out = (double)config_setting_get_int(s);
        return 0;
    case CONFIG_TYPE_INT64:
        *out = (double)config_setting_get_int64(s);
        return 0;
    case CONFIG_TYPE_FLOAT:
        *out = config_setting_get_float(s);
        return 0;
    default:
        return -1;
    }
}

/* Only models[].name, .id and the two prices are read: the gateway's own
 * config.c validates the rest, and tune must not depend on it. */
int tune_prices_load_conf(struct tune_prices *pr, const char *path, char *err, size_t errlen)
{
    config_t cfg;
    config_setting_t *models;
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    int n;

    memset(pr, 0, sizeof(*pr));
    config_init(&cfg);
    if (slash) {
        *slash = '\0';
        config_set_include_dir(&cfg, dir);
    }
    if (config_read_file(&cfg, path) != CONFIG_TRUE) {
        snprintf(err, errlen, "%s:%d: %s", config_error_file(&cfg) ? config_error_file(&cfg) : path,
                 config_error_line(&cfg), config_error_text(&cfg));
        config_destroy(&cfg);
        free(dir);
        return -1;
    }
    free(dir);
    models = config_lookup(&cfg, "models");
    if (models == NULL || !(config_setting_is_list(models) || config_setting_is_array(models))) {
        snprintf(err, errlen, "%s: no models list", path);
        config_destroy(&cfg);
        return -1;
    }
    n = config_setting_length(models);
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(models, (unsigned)i);
        const char *name = NULL, *id = NULL;
        double in, out;

        if (g == NULL || !config_setting_is_group(g) ||
            !config_setting_lookup_string(g, "name", &name)) {
            snprintf(err, errlen, "%s:%d: models[%d]: no name", path,
                     g ? config_setting_source_line(g) : 0, i);
            goto fail;
        }
        config_setting_lookup_string(g, "id", &id);
        if (conf_number(g, "input_per_mtok", &in) < 0 ||
            conf_number(g, "output_per_mtok", &out) < 0 || !price_ok(in) || !price_ok(out)) {
            snprintf(err, errlen,
                     "%s:%d: model \"%s\": input_per_mtok and output_per_mtok must be "
                     "non-negative numbers",
                     path, config_setting_source_line(g), name);
            goto fail;
        }
        prices_add(pr, name, id, in, out);
    }
    config_destroy(&cfg);
    return 0;

fail:
    config_destroy(&cfg);
    tune_prices_free(pr);
    return -1;
}

void tune_prices_free(struct tune_prices *pr)
{
    for (size_t i = 0; i < pr->n; i++) {
        free(pr->p[i].name);
        free(pr->p[i].id);
    }
    free(pr->p);
    memset(pr, 0, sizeof(*pr));
}

/* The price of a data model: by gateway name first, then by upstream id. */
static const struct tune_price *price_find(const struct tune_prices *pr, const char *model)
{
    for (size_t i = 0; i < pr->n; i++)
        if (strcmp(pr->p[i].name, model) == 0)
            return &pr->p[i];
    for (size_t i = 0; i < pr->n; i++)
        if (pr->p[i].id && strcmp(pr->p[i].id, model) == 0)
            return &pr->p[i];
    return NULL;
}

/* ---- data ---- */

static int find_name(char **names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

/* Case-insensitive substring test. */
static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return n == 0;
}

static int name_match(char **names, size_t n, const char *s, char *err, size_t errlen)
{
    int found = find_name(names, n, s);

    if (found >= 0)
        return found;
    for (size_t i = 0; i < n; i++) {
        if (!contains_ci(names[i], s))
            continue;
        if (found >= 0) {
            snprintf(err, errlen, "model \"%s\" is ambiguous: %s, %s, ...", s, names[found],
                     names[i]);
            return -1;
        }
        found = (int)i;
    }
    if (found < 0)
        snprintf(err, errlen, "no model matches \"%s\"", s);
    return found;
}

int tune_model_find(const struct tune_data *d, const char *s, char *err, size_t errlen)
{
    char *names[TUNE_MAX_MODELS];

    for (size_t i = 0; i < d->nmodels; i++)
        names[i] = d->models[i].name;
    return name_match(names, d->nmodels, s, err, errlen);
}

/* A JSON number or boolean as a 0/1 correctness grade. */
static int json_grade(const json_t *v, int *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);

        if (x == 0 || x == 1) {
            *out = x == 1;
            return 0;
        }
    }
    return -1;
}

static int json_count(const json_t *v, long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000000)
        return -1;
    *out = (long)json_integer_value(v);
    return 0;
}

/* Raw records before the model set is known. */
struct raw {
    char *id, *prompt;
    json_t *answers; /* owned */
    const char *file;
    long line;
};

static char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');

    return xstrdup(s ? s + 1 : path);
}

/* File-safe model name: anything but [A-Za-z0-9._-] becomes '_'. */
static char *file_safe(const char *name)
{
    char *s = xstrdup(name);

    for (char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            *p = '_';
    if (s[0] == '.' || s[0] == '\0') { /* never a hidden file or "" */
        char *t = xasprintf("m%s", s);

        free(s);
        s = t;
    }
    return s;
}

static int read_records(char *const *files, size_t nfiles, struct raw **out, size_t *nout,
                        char *err, size_t errlen)
{
    struct raw *r = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;

    for (size_t fi = 0; fi < nfiles; fi++) {
        FILE *f = fopen(files[fi], "r");
        ssize_t len;
        long lineno = 0;

        if (f == NULL) {
            snprintf(err, errlen, "%s: %s", files[fi], strerror(errno));
            goto fail;
        }
        while ((len = getline(&line, &lcap, f)) >= 0) {
            json_error_t jerr;
            json_t *j, *prompt, *answers, *id;

            lineno++;
            if ((size_t)len > TUNE_MAX_LINE) {
                snprintf(err, errlen, "%s:%ld: record longer than %zu bytes", files[fi], lineno,
                         TUNE_MAX_LINE);
                fclose(f);
                goto fail;
            }
            while (len > 0 &&
                   (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
                len--;
            if (len == 0)
                continue;
            j = json_loadb(line, (size_t)len, 0, &jerr);
            if (j == NULL) {
                snprintf(err, errlen, "%s:%ld: %s", files[fi], lineno, jerr.text);
                fclose(f);
                goto fail;
            }
            prompt = json_object_get(j, "prompt");
            answers = json_object_get(j, "answers");
            id = json_object_get(j, "id");
            if (!json_is_string(prompt) || !json_is_object(answers)) {
                snprintf(err, errlen, "%s:%ld: need a \"prompt\" string and an \"answers\" object",
                         files[fi], lineno);
                json_decref(j);
                fclose(f);
                goto fail;
            }
            if (n == TUNE_MAX_QUERIES) {
                snprintf(err, errlen, "more than %d queries", TUNE_MAX_QUERIES);
                json_decref(j);
                fclose(f);
                goto fail;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                r = xrealloc(r, cap * sizeof(*r));
            }
            r[n].prompt = xstrdup(json_string_value(prompt));
            r[n].id = json_is_string(id) ? xstrdup(json_string_value(id))
                                         : xasprintf("%s:%ld", files[fi], lineno);
            r[n].answers = json_incref(answers);
            r[n].file = files[fi];
            r[n].line = lineno;
            n++;
            json_decref(j);
        }
        fclose(f);
    }
    free(line);
    *out = r;
    *nout = n;
    return 0;

fail:
    free(line);
    for (size_t i = 0; i < n; i++) {
        free(r[i].id);
        free(r[i].prompt);
        json_decref(r[i].answers);
    }
    free(r);
    return -1;
}

struct model_order {
    size_t idx;
    double mean_cost;
    const char *name;
};

static int model_order_cmp(const void *a, const void *b)
{
    const struct model_order *x = a, *y = b;

    if (x->mean_cost != y->mean_cost)
        return x->mean_cost < y->mean_cost ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Agreement key ids: equal normalised answers to a query get equal ids. An
 * empty key (no content, or only punctuation) never agrees with anything. */
static void assign_keys(struct tune_data *d, size_t qi)
{
    char keys[TUNE_MAX_MODELS][TUNE_KEY_MAX];
    struct tune_answer *a = d->q[qi].ans;

    for (size_t m = 0; m < d->nmodels; m++) {
        a[m].key = -1;
        if (a[m].content == NULL)
            continue;
        answer_agree_key(a[m].content, keys[m], sizeof(keys[m]));
        if (keys[m][0] == '\0')
            continue;
        a[m].key = (int)m;
        for (size_t k = 0; k < m; k++) {
            if (a[k].key >= 0 && strcmp(keys[k], keys[m]) == 0) {
                a[m].key = a[k].key;
                break;
            }
        }
    }
}

int tune_data_load(struct tune_data *d, char *const *files, size_t nfiles,
                   const struct tune_prices *pr, const char *only, char *err, size_t errlen)
{
    struct raw *r = NULL;
    size_t nr = 0, nnames = 0;
    char *names[256];
    int keep[256];
    struct model_order ord[TUNE_MAX_MODELS];
    int remap[256];
    struct buf src;

    memset(d, 0, sizeof(*d));
    if (read_records(files, nfiles, &r, &nr, err, errlen) < 0)
        return -1;
    if (nr == 0) {
        snprintf(err, errlen, "no records in the data");
        return -1;
    }

    /* Every model named in any record, in first-seen order. */
    for (size_t i = 0; i < nr; i++) {
        const char *name;
        json_t *v;

        json_object_foreach (r[i].answers, name, v) {
            if (find_name(names, nnames, name) >= 0)
                continue;
            if (nnames == ARRAY_LEN(names)) {
                snprintf(err, errlen, "more than %zu models", ARRAY_LEN(names));
                goto fail;
            }
            names[nnames++] = xstrdup(name);
        }
    }

    /* Keep the priced ones, and of those the ones asked for. */
    for (size_t i = 0; i < nnames; i++)
        keep[i] = price_find(pr, names[i]) != NULL;
    if (only) {
        char *list = xstrdup(only), *t = list;
        int want[256] = {0};

        while (t) {
            char *comma = strchr(t, ',');
            int k;

            if (comma)
                *comma = '\0';
            if (*t) {
                k = name_match(names, nnames, t, err, errlen);
                if (k < 0) {
                    free(list);
                    goto fail;
                }
                want[k] = 1;
            }
            t = comma ? comma + 1 : NULL;
        }
        free(list);
        for (size_t i = 0; i < nnames; i++) {
            if (want[i] && !keep[i]) {
                snprintf(err, errlen, "model \"%s\" has no price", names[i]);
                goto fail;
            }
            keep[i] = keep[i] && want[i];
        }
    } else {
        for (size_t i = 0; i < nnames; i++)
            if (!keep[i])
                fprintf(stderr, "sluice-tune: warning: model \"%s\" has no price; skipped\n",
                        names[i]);
    }
    for (size_t i = 0; i < nnames; i++) {
        remap[i] = -1;
        if (!keep[i])
            continue;
        if (d->nmodels == TUNE_MAX_MODELS) {
            snprintf(err, errlen, "more than %d priced models; use --models", TUNE_MAX_MODELS);
            goto fail;
        }
        remap[i] = (int)d->nmodels++;
    }
    if (d->nmodels == 0) {
        snprintf(err, errlen, "no model of the data has a price");
        goto fail;
    }
    d->models = xcalloc(d->nmodels, sizeof(*d->models));
    for (size_t i = 0; i < nnames; i++) {
        const struct tune_price *p;
        struct tune_model *m;

        if (remap[i] < 0)
            continue;
        p = price_find(pr, names[i]);
        m = &d->models[remap[i]];
        m->name = xstrdup(names[i]);
        m->route_name = xstrdup(strcmp(p->name, names[i]) == 0 ? names[i] : p->name);
        m->in_per_mtok = p->in_per_mtok;
        m->out_per_mtok = p->out_per_mtok;
    }

    /* The queries. */
    d->q = xcalloc(nr, sizeof(*d->q));
    d->nq = nr;
    for (size_t i = 0; i < nr; i++) {
        struct tune_query *q = &d->q[i];
        const char *name;
        json_t *v;

        q->id = r[i].id;
        q->prompt = r[i].prompt;
        r[i].id = r[i].prompt = NULL;
        q->ans = xcalloc(d->nmodels, sizeof(*q->ans));
        json_object_foreach (r[i].answers, name, v) {
            int k = remap[find_name(names, nnames, name)];
            struct tune_answer *a;
            json_t *content;

            if (k < 0)
                continue;
            a = &q->ans[k];
            content = json_object_get(v, "content");
            if (!json_is_object(v) || !json_is_string(content) ||
                json_grade(json_object_get(v, "correct"), &a->correct) < 0 ||
                json_count(json_object_get(v, "prompt_tokens"), &a->prompt_tokens) < 0 ||
                json_count(json_object_get(v, "completion_tokens"), &a->completion_tokens) < 0) {
                snprintf(err, errlen,
                         "%s:%ld: answer of \"%s\": need content (string), correct (0/1), "
                         "prompt_tokens and completion_tokens (counts)",
                         r[i].file, r[i].line, name);
                goto fail;
            }
            a->content = xstrdup(json_string_value(content));
            a->cost = ((double)a->prompt_tokens * d->models[k].in_per_mtok +
                       (double)a->completion_tokens * d->models[k].out_per_mtok) /
                      1e6;
            a->veto = answer_rules(a->content, NULL, 0);
        }
        assign_keys(d, i);
    }

    /* Models cheapest first (by mean cost where they answered), which is
     * how people read a frontier. Reorder the answers to match. */
    for (size_t m = 0; m < d->nmodels; m++) {
        double sum = 0;
        size_t cnt = 0;

        for (size_t i = 0; i < d->nq; i++) {
            if (d->q[i].ans[m].content) {
                sum += d->q[i].ans[m].cost;
                cnt++;
            }
        }
        ord[m].idx = m;
        ord[m].mean_cost = cnt ? sum / (double)cnt : 0;
        ord[m].name = d->models[m].name;
    }
    qsort(ord, d->nmodels, sizeof(ord[0]), model_order_cmp);
    {
        struct tune_model *nm = xcalloc(d->nmodels, sizeof(*nm));
        struct tune_answer *tmp = xcalloc(d->nmodels, sizeof(*tmp));

        for (size_t m = 0; m < d->nmodels; m++)
            nm[m] = d->models[ord[m].idx];
        free(d->models);
        d->models = nm;
        for (size_t i = 0; i < d->nq; i++) {
            for (size_t m = 0; m < d->nmodels; m++)
                tmp[m] = d->q[i].ans[ord[m].idx];
            memcpy(d->q[i].ans, tmp, d->nmodels * sizeof(*tmp));
            assign_keys(d, i); /* ids are model indices: renumber */
        }
        free(tmp);
    }
    for (size_t m = 0; m < d->nmodels; m++) {
        d->models[m].file_name = file_safe(d->models[m].name);
        for (size_t k = 0; k < m; k++)
            if (strcmp(d->models[k].file_name, d->models[m].file_name) == 0) {
                char *t = xasprintf("%s-%zu", d->models[m].file_name, m);

                free(d->models[m].file_name);
                d->models[m].file_name = t;
            }
    }

    buf_init(&src, TUNE_NAMES_MAX);
    for (size_t fi = 0; fi < nfiles; fi++) {
        char *b = base_name(files[fi]);

        if (buf_printf(&src, "%s%s", fi ? "," : "", b) < 0) {
            free(b);
            break; /* metadata only: a long list is cut */
        }
        free(b);
    }
    d->source = buf_steal(&src, NULL);

    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    for (size_t i = 0; i < nr; i++)
        json_decref(r[i].answers);
    free(r);
    return 0;

fail:
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    for (size_t i = 0; i < nr; i++) {
        free(r[i].id);
        free(r[i].prompt);
        json_decref(r[i].answers);
    }
    free(r);
    tune_data_free(d);
    return -1;
}

void tune_data_free(struct tune_data *d)
{
    for (size_t i = 0; i < d->nq; i++) {
        if (d->q[i].ans)
            for (size_t m = 0; m < d->nmodels; m++)
                free(d->q[i].ans[m].content);
        free(d->q[i].ans);
        free(d->q[i].id);
        free(d->q[i].prompt);
    }
    free(d->q);
    for (size_t m = 0; m < d->nmodels; m++) {
        free(d->models[m].name);
        free(d->models[m].route_name);
        free(d->models[m].file_name);
    }
    free(d->models);
    free(d->source);
    memset(d, 0, sizeof(*d));
}

void tune_model_stats(const struct tune_data *d, int m, double *acc, double *cost)
{
    size_t correct = 0;
    double sum = 0;

    for (size_t i = 0; i < d->nq; i++) {
        const struct tune_answer *a = &d->q[i].ans[m];

        if (a->content) {
            correct += (size_t)a->correct;
            sum += a->cost;
        }
    }
    *acc = d->nq ? (double)correct / (double)d->nq : 0;
    *cost = d->nq ? sum / (double)d->nq : 0;
}
