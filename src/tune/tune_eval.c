/* tune_eval.c - `sluice-tune eval`: run labelled data through a live sluice
 * (backed by `sluice-mock --replay` of the same files) and check that what
 * the gateway does end to end is what the offline simulation says it does.
 *
 * Every query goes to the route under test and to each single model's
 * implicit route, as one user message. The answering model is the
 * x-sluice-model header, the cost the x-sluice-cost header; an answer is
 * correct when the recorded answer of that model to that query was graded
 * correct (the mock serves exactly the recorded content, which is checked
 * too). A non-200 answer is wrong and costs what the gateway reports.
 *
 * Each row is compared with tune_simulate() of the same chain, query by
 * query: correctness exactly, cost within 1e-9 USD. A difference is a bug in
 * the gateway or in the simulation, so eval exits non-zero on any.
 */
#include "tune.h"
#include "caps.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <errno.h>

#define EVAL_MAX_CONCURRENCY 256
#define EVAL_COST_EPS 1e-9 /* USD, per query and per $/query */
#define EVAL_SHOW_DIFFS 10 /* differing queries listed per row */

enum {
    OPT_GATEWAY = TUNE_OPT_FIRST_OWN,
    OPT_ROUTE,
    OPT_CHAIN,
    OPT_WEIGHTS_DIR,
    OPT_CONCURRENCY,
    OPT_TIMEOUT_MS,
    OPT_API_KEY_ENV,
    OPT_ROUTES,
};

static const struct option eval_options[] = {
    TUNE_COMMON_OPTIONS,
    {"gateway", required_argument, NULL, OPT_GATEWAY},
    {"route", required_argument, NULL, OPT_ROUTE},
    {"chain", required_argument, NULL, OPT_CHAIN},
    {"weights-dir", required_argument, NULL, OPT_WEIGHTS_DIR},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
    {"api-key-env", required_argument, NULL, OPT_API_KEY_ENV},
    {"routes", required_argument, NULL, OPT_ROUTES},
    {NULL, 0, NULL, 0},
};

static void eval_usage(FILE *out)
{
    fprintf(out,
            "usage: sluice-tune eval --gateway URL --data FILE.jsonl [--data ...]\n"
            "           (--prices prices.json | --config gateway.conf) --route NAME\n"
            "           [--models m1,m2,...|none] [--chain CHAIN | --routes FILE]\n"
            "           [--weights-dir DIR]\n"
            "           [--concurrency 8]\n"
            "\n"
            "Send every query of the data through a running sluice, whose provider is\n"
            "`sluice-mock --replay` of the same files, to route NAME and to each single\n"
            "model's own route; print accuracy and $/query end to end beside the offline\n"
            "simulation of the same chains, query by query. Exits 1 when they differ:\n"
            "a difference is a bug.\n"
            "\n"
            "  --gateway URL       the gateway's base URL (http://127.0.0.1:8080); requests\n"
            "                      go to URL/v1/chat/completions\n"
            "  --route NAME        the route under test (the request's \"model\")\n"
            "  --chain CHAIN       the route's chain, as `simulate --chain` takes it\n"
            "  --routes FILE       or take it from the \"# chain:\" comment fit wrote above\n"
            "                      the route in FILE (default: ./routes.conf when there is\n"
            "                      one); with neither, the route is measured, not compared\n"
            "  --weights-dir DIR   the weights files of the chain's learned stages (the\n"
            "                      directory the gateway's `weights` paths point into;\n"
            "                      default with --routes: scorers/ beside FILE)\n"
            "  --models LIST       single models to measure too (default: every model of\n"
            "                      the data that has a price; \"none\": only the route)\n"
            "  --concurrency N     requests in flight (default 8)\n"
            "  --timeout-ms N      per request (default 300000)\n"
            "  --api-key-env VAR   send \"Authorization: Bearer $VAR\"\n"
            "\n"
            "Answers are matched to the data by the x-sluice-model header: the gateway's\n"
            "model name, which is the data's name, or with --config, the model whose id\n"
            "is the data's name. Requests carry \"Cache-Control: no-store\", so the\n"
            "gateway's cache neither serves nor keeps them. The simulation has no budget:\n"
            "compare routes without max_cost.\n"
            "\n%s",
            tune_common_help);
}

/* What the gateway did with one query on one row. */
struct eval_answer {
    int status;   /* HTTP status, 0 on a transport error */
    int model;    /* data index of x-sluice-model, -1 when none or unknown */
    int correct;  /* recorded grade of that model's answer */
    int mismatch; /* 200, but not the recorded content of that model */
    int salvage;  /* x-sluice-stages ends in a salvaged answer */
    int skip;     /* a stage was skipped over budget */
    int cache;    /* x-sluice-cache says it was a hit */
    double cost;  /* x-sluice-cost, 0 when absent */
    char *stages; /* x-sluice-stages, for the difference report */
    char *why;    /* transport error, unknown model, mismatch: for the report */
};

/* One row of the table: the route under test or one model's own route. */
struct eval_row {
    const char *name; /* the request's "model" (borrowed) */
    int model;        /* data model of a single-model row, -1 for the route */
    struct tune_chain chain;
    int have_chain;
    struct eval_answer *ans; /* [nq] */
    /* offline, per query: the answering stage (-1: salvaged or failed) */
    int *sim_stage;
    unsigned char *sim_correct;
    double *sim_cost;
    struct tune_result sim;
};

struct eval {
    const struct tune_data *d;
    struct eval_row *rows;
    size_t nrows;
    char *url;
    struct curl_slist *hdrs;
    long timeout_ms;
    struct tune_progress prog;
};

/* One request in flight. */
struct eval_job {
    struct eval *ev;
    size_t row, q;
    CURL *h;
    char *req; /* the request body */
    struct buf body;
    char model_hdr[TUNE_EVAL_HDR_MAX], route_hdr[TUNE_EVAL_HDR_MAX], cost_hdr[64], cache_hdr[64];
    struct buf stages_hdr;
    int have_model, have_cost, have_route;
};

/* ---- requests ---- */

/* Copy a header's value (trimmed) into out, cut to outlen - 1 bytes. */
static void hdr_value(const char *v, size_t n, char *out, size_t outlen)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

/* Header match: "name:" at the start of line, case-insensitively. Returns
 * the value's start or NULL. */
static const char *hdr_match(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);

    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return NULL;
    return line + k + 1;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    struct eval_job *j = arg;
    size_t n = size * nmemb;
    const char *v;

    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue, say): forget the last one's. */
        j->have_model = j->have_cost = j->have_route = 0;
        j->cache_hdr[0] = '\0';
        buf_reset(&j->stages_hdr);
    } else if ((v = hdr_match(p, n, "x-sluice-model"))) {
        hdr_value(v, n - (size_t)(v - p), j->model_hdr, sizeof(j->model_hdr));
        j->have_model = 1;
    } else if ((v = hdr_match(p, n, "x-sluice-route"))) {
        hdr_value(v, n - (size_t)(v - p), j->route_hdr, sizeof(j->route_hdr));
        j->have_route = 1;
    } else if ((v = hdr_match(p, n, "x-sluice-cost"))) {
        hdr_value(v, n - (size_t)(v - p), j->cost_hdr, sizeof(j->cost_hdr));
        j->have_cost = 1;
    } else if ((v = hdr_match(p, n, "x-sluice-cache"))) {
        hdr_value(v, n - (size_t)(v - p), j->cache_hdr, sizeof(j->cache_hdr));
    } else if ((v = hdr_match(p, n, "x-sluice-stages"))) {
        char tmp[TUNE_EVAL_HDR_MAX];

        hdr_value(v, n - (size_t)(v - p), tmp, sizeof(tmp));
        buf_reset(&j->stages_hdr);
        /* tmp is cut to TUNE_EVAL_HDR_MAX - 1 bytes, the buffer's cap: it fits. */
        if (buf_puts(&j->stages_hdr, tmp) < 0)
            sl_panic("x-sluice-stages: %zu bytes do not fit a buffer of %d", strlen(tmp),
                     TUNE_EVAL_HDR_MAX);
    }
    return n;
}

static size_t body_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    struct eval_job *j = arg;
    size_t n = size * nmemb;

    /* Returning less than n makes curl fail the transfer: the cap is hit. */
    return buf_append(&j->body, p, n) < 0 ? 0 : n;
}

/* Start the request for query q on row r. The job is owned by the caller
 * and handed to curl as the handle's private pointer. */
static struct eval_job *job_start(struct eval *ev, CURLM *multi, size_t r, size_t q)
{
    struct eval_job *j = xcalloc(1, sizeof(*j));
    json_t *body = json_pack("{s:s, s:[{s:s, s:s}]}", "model", ev->rows[r].name, "messages", "role",
                             "user", "content", ev->d->q[q].prompt);

    if (body == NULL)
        sl_panic("json_pack: eval request");
    j->ev = ev;
    j->row = r;
    j->q = q;
    j->req = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (j->req == NULL)
        sl_panic("json_dumps: out of memory");
    buf_init(&j->body, TUNE_EVAL_BODY_MAX);
    buf_init(&j->stages_hdr, TUNE_EVAL_HDR_MAX);
    j->h = curl_easy_init();
    if (j->h == NULL)
        sl_panic("curl_easy_init failed");
    curl_easy_setopt(j->h, CURLOPT_URL, ev->url);
    curl_easy_setopt(j->h, CURLOPT_HTTPHEADER, ev->hdrs);
    curl_easy_setopt(j->h, CURLOPT_POSTFIELDS, j->req);
    curl_easy_setopt(j->h, CURLOPT_POSTFIELDSIZE, (long)strlen(j->req));
    curl_easy_setopt(j->h, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(j->h, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(j->h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(j->h, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(j->h, CURLOPT_TIMEOUT_MS, ev->timeout_ms);
    curl_easy_setopt(j->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->h, CURLOPT_PRIVATE, j);
    if (curl_multi_add_handle(multi, j->h) != CURLM_OK)
        sl_panic("curl_multi_add_handle failed");
    return j;
}

static void job_free(struct eval_job *j)
{
    curl_easy_cleanup(j->h);
    free(j->req);
    buf_free(&j->body);
    buf_free(&j->stages_hdr);
    free(j);
}

/* The data model the gateway names: its config name is the model's
 * route_name (the data's name without --config). */
static int model_by_route_name(const struct tune_data *d, const char *name)
{
    for (size_t m = 0; m < d->nmodels; m++)
        if (strcmp(d->models[m].route_name, name) == 0)
            return (int)m;
    return -1;
}

/* The content of choices[0] of a chat completion ("" for null), or NULL when
 * there is none. Borrowed from resp. */
static const char *answer_content(json_t *resp)
{
    json_t *c0 = json_array_get(json_object_get(resp, "choices"), 0);
    json_t *content = json_object_get(json_object_get(c0, "message"), "content");

    if (json_is_null(content))
        return "";
    return json_string_value(content);
}

/* Does the x-sluice-stages value end in a salvaged answer, and was any
 * stage skipped over budget? */
static void stages_flags(const char *s, int *salvage, int *skip)
{
    size_t n = strlen(s);

    *salvage = n >= 8 && strcmp(s + n - 8, ":salvage") == 0;
    *skip = strstr(s, ":skip") != NULL;
}

/* Record what is wrong with an answer; the first reason is kept. Takes
 * ownership of why. */
static void bug(struct eval_answer *a, char *why)
{
    if (a->why == NULL)
        a->why = why;
    else
        free(why);
}

/* A request is done: read what the gateway answered into its row. */
static void job_finish(struct eval_job *j, CURLcode res)
{
    struct eval *ev = j->ev;
    const struct tune_data *d = ev->d;
    struct eval_answer *a = &ev->rows[j->row].ans[j->q];
    long status = 0;

    a->model = -1;
    if (res != CURLE_OK) {
        bug(a, xasprintf("request failed: %s", curl_easy_strerror(res)));
        return;
    }
    curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
    a->status = (int)status;
    if (j->have_cost && (parse_double(j->cost_hdr, &a->cost) < 0 || !(a->cost >= 0))) {
        bug(a, xasprintf("bad x-sluice-cost \"%s\"", j->cost_hdr));
        a->cost = 0;
    }
    /* Without this, a misspelt --route would measure a row of 404s. */
    if (!j->have_route || strcmp(j->route_hdr, ev->rows[j->row].name) != 0)
        bug(a,
            xasprintf("the gateway has no route \"%s\" (HTTP %ld)", ev->rows[j->row].name, status));
    a->cache = j->cache_hdr[0] && str_has_prefix(j->cache_hdr, "hit");
    a->stages = xstrdup(j->stages_hdr.data ? j->stages_hdr.data : "");
    stages_flags(a->stages, &a->salvage, &a->skip);
    if (j->have_model) {
        a->model = model_by_route_name(d, j->model_hdr);
        if (a->model < 0)
            bug(a, xasprintf("x-sluice-model \"%s\" is no model of the data", j->model_hdr));
    }
    if (status != 200)
        return; /* wrong, at the reported cost */
    if (!j->have_model)
        bug(a, xstrdup("a 200 without x-sluice-model"));
    if (a->model < 0) {
        a->mismatch = 1;
        return;
    }
    {
        const struct tune_answer *rec = &d->q[j->q].ans[a->model];
        json_t *resp = json_loadb(j->body.data ? j->body.data : "", j->body.len, 0, NULL);
        const char *content = answer_content(resp);

        a->correct = rec->content ? rec->correct : 0;
        if (rec->content == NULL) {
            a->mismatch = 1;
            bug(a, xasprintf("%s has no recorded answer, yet answered", d->models[a->model].name));
        } else if (content == NULL) {
            a->mismatch = 1;
            bug(a, xasprintf("the response has no choices[0].message.content"));
        } else if (strcmp(content, rec->content) != 0) {
            a->mismatch = 1;
            bug(a, xasprintf("the content is not %s's recorded answer", d->models[a->model].name));
        }
        json_decref(resp);
    }
}

/* Send every (row, query) through the gateway, `conc` at a time. Returns 0,
 * or -1 when curl itself failed (each request's own failure is recorded in
 * its answer instead). */
static int eval_run(struct eval *ev, int conc)
{
    size_t nq = ev->d->nq, total = ev->nrows * nq, next = 0, active = 0;
    struct eval_job **slot = xcalloc((size_t)conc, sizeof(*slot));
    CURLM *multi = curl_multi_init();
    int rc = 0;

    if (multi == NULL)
        sl_panic("curl_multi_init failed");
    tune_progress_start(&ev->prog, "eval", total);
    while (next < total || active > 0) {
        CURLMsg *msg;
        int running, left;
        CURLMcode mc;

        /* Query-major order: every row sees the same load over time. */
        for (int i = 0; i < conc && next < total; i++) {
            if (slot[i] == NULL) {
                slot[i] = job_start(ev, multi, next % ev->nrows, next / ev->nrows);
                next++;
                active++;
            }
        }
        mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "sluice-tune: curl: %s\n", curl_multi_strerror(mc));
            rc = -1;
            break;
        }
        while ((msg = curl_multi_info_read(multi, &left))) {
            struct eval_job *j = NULL;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            job_finish(j, msg->data.result);
            for (int i = 0; i < conc; i++)
                if (slot[i] == j)
                    slot[i] = NULL;
            curl_multi_remove_handle(multi, j->h);
            job_free(j);
            active--;
            tune_progress_step(&ev->prog, 1);
        }
        if (running > 0 && (mc = curl_multi_poll(multi, NULL, 0, 1000, NULL)) != CURLM_OK) {
            fprintf(stderr, "sluice-tune: curl: %s\n", curl_multi_strerror(mc));
            rc = -1;
            break;
        }
    }
    tune_progress_end(&ev->prog);
    for (int i = 0; i < conc; i++) {
        if (slot[i]) {
            curl_multi_remove_handle(multi, slot[i]->h);
            job_free(slot[i]);
        }
    }
    free(slot);
    curl_multi_cleanup(multi);
    return rc;
}

/* ---- the offline side ---- */

/* Simulate the row's chain on all queries, and on each query alone for
 * the per-query comparison. */
static void row_simulate(const struct tune_data *d, struct eval_row *row,
                         const struct tune_scores *score)
{
    unsigned char *include = xcalloc(d->nq, 1);

    row->sim_stage = xmalloc(d->nq * sizeof(*row->sim_stage));
    row->sim_correct = xmalloc(d->nq);
    row->sim_cost = xmalloc(d->nq * sizeof(*row->sim_cost));
    tune_simulate(d, &row->chain, score, NULL, &row->sim);
    for (size_t q = 0; q < d->nq; q++) {
        struct tune_result r;

        include[q] = 1;
        tune_simulate(d, &row->chain, score, include, &r);
        include[q] = 0;
        row->sim_correct[q] = (unsigned char)r.correct;
        row->sim_cost[q] = r.cost;
        row->sim_stage[q] = -1;
        for (int s = 0; s < row->chain.n; s++)
            if (r.accepted[s])
                row->sim_stage[q] = s;
    }
    free(include);
}

/* ---- the report ---- */

struct row_totals {
    size_t n, correct, non200, bugs, cache, skip, diffs;
    double cost;
};

/* Did query q go differently end to end than offline: correctness, cost
 * (within EVAL_COST_EPS), or the stage that answered? */
static int answer_differs(const struct eval_row *row, size_t q)
{
    const struct eval_answer *a = &row->ans[q];
    int s = row->sim_stage[q];

    if (a->correct != row->sim_correct[q] || fabs(a->cost - row->sim_cost[q]) > EVAL_COST_EPS)
        return 1;
    /* The stage that answered must have been the same one, too. */
    if (s >= 0 && (a->status != 200 || a->salvage || a->model != row->chain.st[s].model))
        return 1;
    return a->status == 200 && s < 0 && !a->salvage;
}

/* Sum a row's answers; a mismatched answer is never counted right. */
static void row_totals(const struct tune_data *d, const struct eval_row *row, struct row_totals *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t q = 0; q < d->nq; q++) {
        const struct eval_answer *a = &row->ans[q];

        t->n++;
        t->correct += a->status == 200 && !a->mismatch ? (size_t)a->correct : 0;
        t->cost += a->cost; /* in query order, as the simulation sums */
        t->non200 += a->status != 200;
        t->bugs += a->mismatch || a->why != NULL;
        t->cache += a->cache;
        t->skip += a->skip;
        if (row->have_chain)
            t->diffs += answer_differs(row, q);
    }
}

static int name_cell(struct buf *out, const struct eval_row *row)
{
    if (row->model < 0)
        return buf_printf(out, "%s (route)", row->name);
    return buf_puts(out, row->name);
}

static const char *model_label(const struct tune_data *d, int m)
{
    return m >= 0 ? d->models[m].name : "-";
}

/* List the first queries on which the row's end to end and offline answers
 * differ, and every bug of its answers. */
static int report_row_details(const struct tune_data *d, const struct eval_row *row,
                              struct buf *out)
{
    int r = 0;
    size_t shown = 0, bugs = 0;

    for (size_t q = 0; q < d->nq; q++) {
        const struct eval_answer *a = &row->ans[q];
        int s;

        if (a->why && bugs < EVAL_SHOW_DIFFS) {
            r |= buf_printf(out, "  %s: %s: %s\n", row->name, d->q[q].id, a->why);
            bugs++;
        }
        if (!row->have_chain || !answer_differs(row, q) || shown == EVAL_SHOW_DIFFS)
            continue;
        s = row->sim_stage[q];
        r |= buf_printf(out,
                        "  %s: %s differs:\n    end to end: HTTP %d, answered by %s, correct %d, "
                        "$%.12g, stages %s\n    offline:    ",
                        row->name, d->q[q].id, a->status, model_label(d, a->model), a->correct,
                        a->cost, a->stages && a->stages[0] ? a->stages : "-");
        if (s >= 0)
            r |= buf_printf(out, "stage %d (%s) accepts, correct %d, $%.12g\n", s + 1,
                            d->models[row->chain.st[s].model].name, row->sim_correct[q],
                            row->sim_cost[q]);
        else
            r |= buf_printf(out, "no stage accepts (salvaged or failed), correct %d, $%.12g\n",
                            row->sim_correct[q], row->sim_cost[q]);
        shown++;
    }
    return r;
}

/* Per stage of the route: queries each stage answered, end to end and
 * offline. End to end, a stage answered when its model did and the answer
 * was not a salvaged one. */
static int report_stages(const struct tune_data *d, const struct eval_row *row, struct buf *out)
{
    int r = 0;
    size_t other_e2e = 0, answered_sim = 0;

    r |= buf_printf(out, "\nstages of route \"%s\" (queries answered, end to end / offline):\n",
                    row->name);
    for (int s = 0; s < row->chain.n; s++) {
        size_t e2e = 0;

        for (size_t q = 0; q < d->nq; q++)
            e2e += row->ans[q].status == 200 && !row->ans[q].salvage &&
                   row->ans[q].model == row->chain.st[s].model;
        r |= buf_printf(out, "  %d %-36s %zu / %zu\n", s + 1,
                        d->models[row->chain.st[s].model].name, e2e, row->sim.accepted[s]);
        answered_sim += row->sim.accepted[s];
    }
    for (size_t q = 0; q < d->nq; q++) {
        const struct eval_answer *a = &row->ans[q];
        int by_stage = 0;

        for (int s = 0; s < row->chain.n; s++)
            by_stage |= a->status == 200 && !a->salvage && a->model == row->chain.st[s].model;
        other_e2e += !by_stage;
    }
    r |= buf_printf(out, "    %-36s %zu / %zu\n", "salvaged or failed", other_e2e,
                    row->sim.n - answered_sim);
    return r;
}

/* Print the table; return the number of rows whose end to end figures
 * differ from the simulation or that had bugs. */
static int report(const struct eval *ev, int ref, const char *chain_text, const char *wdir,
                  struct buf *out)
{
    int r = 0;
    const struct tune_data *d = ev->d;
    struct tune_chain rc = {.n = 1};
    struct tune_result rr;
    double rcost;
    int bad_rows = 0, any_cache = 0, any_skip = 0;

    rc.st[0].model = ref;
    tune_simulate(d, &rc, NULL, NULL, &rr);
    rcost = rr.n ? rr.cost / (double)rr.n : 0;
    r |= buf_printf(out, "sluice-tune eval: %s: %zu queries through %s\n", d->source, d->nq,
                    ev->url);
    if (chain_text) {
        r |= buf_printf(out, "route \"%s\" is the chain: ", ev->rows[0].name);
        r |= tune_chain_format(d, &ev->rows[0].chain, out);
        r |= buf_printf(out, "\n  (learned scores: %s)\n",
                        wdir ? "from the weights files, as the gateway scores" : "not used");
    } else {
        r |= buf_printf(out, "route \"%s\": no --chain, so not compared offline\n",
                        ev->rows[0].name);
    }
    r |= buf_printf(out, "cost: %% of %s's $/query (%.6g)\n\n", d->models[ref].name, rcost);
    r |= buf_printf(out, "%-44s %-29s %s\n", "", "------- end to end --------",
                    "----- offline ------");
    r |= buf_printf(out, "%-44s %-8s %-11s %-6s   %-8s %-11s   %-7s %-4s %s\n", "route / model",
                    "accuracy", "$/query", "cost", "accuracy", "$/query", "non-200", "bugs",
                    "vs offline");
    for (size_t i = 0; i < ev->nrows; i++) {
        const struct eval_row *row = &ev->rows[i];
        struct row_totals t;
        struct buf name;
        double acc, cost;
        int differs = 0;

        row_totals(d, row, &t);
        acc = t.n ? (double)t.correct / (double)t.n : 0;
        cost = t.n ? t.cost / (double)t.n : 0;
        buf_init(&name, TUNE_NAMES_MAX);
        r |= name_cell(&name, row);
        r |= buf_printf(out, "%-44s %-8.4f %-11.6g %5.1f%%   ", name.data ? name.data : "?", acc,
                        cost, rcost > 0 ? 100 * cost / rcost : 0);
        buf_free(&name);
        if (row->have_chain) {
            double sacc = row->sim.n ? (double)row->sim.correct / (double)row->sim.n : 0;
            double scost = row->sim.n ? row->sim.cost / (double)row->sim.n : 0;

            differs = row->sim.correct != t.correct || row->sim.n != t.n ||
                      fabs(scost - cost) > EVAL_COST_EPS || t.diffs > 0;
            r |= buf_printf(out, "%-8.4f %-11.6g   ", sacc, scost);
            r |= buf_printf(out, "%-7zu %-4zu ", t.non200, t.bugs);
            if (!differs)
                r |= buf_puts(out, "equal");
            else
                r |= buf_printf(out, "DIFFERENT: %+.4f, %+.3g $/query, %zu queries", acc - sacc,
                                cost - scost, t.diffs);
        } else {
            r |= buf_printf(out, "%-8s %-11s   %-7zu %-4zu -", "-", "-", t.non200, t.bugs);
        }
        r |= buf_puts(out, "\n");
        any_cache |= t.cache > 0;
        any_skip |= t.skip > 0;
        if (differs || t.bugs > 0)
            bad_rows++;
    }
    if (ev->rows[0].have_chain)
        r |= report_stages(d, &ev->rows[0], out);
    if (any_cache)
        r |= buf_puts(out,
                      "\nnote: some answers came from the gateway's cache (x-sluice-cache: HIT) "
                      "at no cost, despite Cache-Control: no-store; the simulation has no "
                      "cache.\n");
    if (any_skip)
        r |= buf_puts(out, "\nnote: the gateway skipped stages over the route's max_cost; the "
                           "simulation has no budget.\n");
    if (bad_rows) {
        r |= buf_puts(out, "\ndifferences and bugs:\n");
        for (size_t i = 0; i < ev->nrows; i++)
            r |= report_row_details(d, &ev->rows[i], out);
    }
    return r < 0 ? -1 : bad_rows;
}

/* ---- main ---- */

/* The chain fit wrote for route `name` in a routes.conf: the last
 * "# chain: ..." comment above the route's `name = "NAME";` line. The file
 * is read a line at a time (a longer line is read as several, which can
 * only miss a match). Returns the chain (caller frees), or NULL with the
 * reason on stderr. */
static char *routes_chain(const char *path, const char *name)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    char *chain = NULL, *found = NULL;
    struct buf names;

    if (f == NULL) {
        tune_msg("--routes: %s: %s", path, strerror(errno));
        return NULL;
    }
    buf_init(&names, TUNE_NAMES_MAX);
    while (fgets(line, sizeof(line), f) && found == NULL) {
        char *p = line, *q;
        size_t n = strlen(line);

        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "# chain:", 8) == 0) {
            free(chain);
            chain = xstrdup(p + 8 + strspn(p + 8, " "));
            continue;
        }
        if (strncmp(p, "name", 4) != 0)
            continue;
        p += 4 + strspn(p + 4, " \t");
        if (*p != '=')
            continue;
        p += 1 + strspn(p + 1, " \t");
        if (*p != '"' || (q = strchr(p + 1, '"')) == NULL)
            continue;
        *q = '\0';
        if (strcmp(p + 1, name) == 0 && chain)
            found = xstrdup(chain);
        else if (buf_printf(&names, "%s%s", names.len ? ", " : "", p + 1) < 0)
            buf_reset(&names); /* the list is only for the message */
        free(chain);
        chain = NULL;
    }
    fclose(f);
    free(chain);
    if (found == NULL)
        tune_msg("--routes: %s has no route \"%s\" with a \"# chain:\" comment above it%s%s%s",
                 path, name, names.len ? " (it has: " : "", names.len ? names.data : "",
                 names.len ? ")" : "");
    buf_free(&names);
    return found;
}

/* URL/v1/chat/completions, whether URL ends in "/", "/v1" or neither. */
static char *chat_url(const char *base)
{
    size_t n = strlen(base);

    while (n > 0 && base[n - 1] == '/')
        n--;
    if (n >= 3 && strncmp(base + n - 3, "/v1", 3) == 0)
        return xasprintf("%.*s/chat/completions", (int)n, base);
    return xasprintf("%.*s/v1/chat/completions", (int)n, base);
}

/* The single-model rows: --models (names or unique substrings, "none"), or
 * every model of the data. Fills models[], returns how many, or -1. */
static int pick_models(const struct tune_data *d, const char *list, int *models)
{
    int n = 0;

    if (list == NULL) {
        for (size_t m = 0; m < d->nmodels; m++)
            models[n++] = (int)m;
        return n;
    }
    if (strcmp(list, "none") == 0)
        return 0;
    {
        char *copy = xstrdup(list), *t = copy;

        while (t) {
            char *comma = strchr(t, ',');
            char err[600];
            int m, seen = 0;

            if (comma)
                *comma = '\0';
            if (*t) {
                m = tune_model_find(d, t, err, sizeof(err));
                if (m < 0) {
                    fprintf(stderr, "sluice-tune: --models: %s\n", err);
                    free(copy);
                    return -1;
                }
                for (int k = 0; k < n; k++)
                    seen |= models[k] == m;
                if (!seen)
                    models[n++] = m;
            }
            t = comma ? comma + 1 : NULL;
        }
        free(copy);
    }
    return n;
}

static void rows_free(struct eval *ev)
{
    for (size_t i = 0; i < ev->nrows; i++) {
        struct eval_row *row = &ev->rows[i];

        for (size_t q = 0; row->ans && q < ev->d->nq; q++) {
            free(row->ans[q].stages);
            free(row->ans[q].why);
        }
        free(row->ans);
        free(row->sim_stage);
        free(row->sim_correct);
        free(row->sim_cost);
    }
    free(ev->rows);
}

/* `sluice-tune eval`: parse, load the data, simulate every row offline,
 * send every (row, query) through the gateway, report. Exits 0 when the
 * gateway matched the simulation everywhere with no bugs, 1 otherwise, 2 on
 * a bad command line. */
static int eval_main(int argc, char **argv)
{
    struct tune_inputs in;
    const char *gateway = NULL, *route = NULL, *chain_text = NULL, *wdir = NULL;
    const char *models_list = NULL, *key_env = NULL;
    long conc = 8, timeout_ms = 300000;
    struct tune_data d;
    struct eval ev = {0};
    struct tune_scores scores = {0};
    const char *routes_file = NULL;
    char *chain_buf = NULL, *wdir_buf = NULL;
    int c, rc = TUNE_EXIT_FAIL, ref, need_learned = 0;
    int models[64];
    int nmodels;
    char err[1024];
    struct buf out;

    tune_inputs_init(&in);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", eval_options, NULL)) != -1) {
        int k;

        /* --models names the rows here, not the models the data keeps: the
         * route may answer with any of them. */
        if (c == TUNE_OPT_MODELS) {
            models_list = optarg;
            continue;
        }
        k = tune_inputs_opt(&in, c, optarg);
        if (k < 0)
            return TUNE_EXIT_USAGE;
        if (k > 0)
            continue;
        switch (c) {
        case TUNE_OPT_HELP:
            eval_usage(stdout);
            return TUNE_EXIT_OK;
        case OPT_GATEWAY:
            gateway = optarg;
            break;
        case OPT_ROUTE:
            route = optarg;
            break;
        case OPT_CHAIN:
            chain_text = optarg;
            break;
        case OPT_WEIGHTS_DIR:
            wdir = optarg;
            break;
        case OPT_CONCURRENCY:
            if (tune_opt_long("--concurrency", optarg, 1, EVAL_MAX_CONCURRENCY, &conc) < 0)
                return TUNE_EXIT_USAGE;
            break;
        case OPT_TIMEOUT_MS:
            if (tune_opt_long("--timeout-ms", optarg, 1, 3600000, &timeout_ms) < 0)
                return TUNE_EXIT_USAGE;
            break;
        case OPT_API_KEY_ENV:
            key_env = optarg;
            break;
        case OPT_ROUTES:
            routes_file = optarg;
            break;
        default:
            eval_usage(stderr);
            return TUNE_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-tune: eval: unexpected argument \"%s\"\n", argv[optind]);
        return TUNE_EXIT_USAGE;
    }
    if (gateway == NULL || route == NULL || in.ndata == 0) {
        eval_usage(stderr);
        return TUNE_EXIT_USAGE;
    }
    if (key_env && getenv(key_env) == NULL) {
        fprintf(stderr, "sluice-tune: --api-key-env: %s is not set\n", key_env);
        return TUNE_EXIT_USAGE;
    }
    /* Without --chain, the route's chain is the "# chain:" comment fit wrote
     * above it in routes.conf, and its weights are in scorers/ beside it. */
    if (chain_text == NULL && (routes_file || access("routes.conf", R_OK) == 0)) {
        if (routes_file == NULL)
            routes_file = "routes.conf";
        chain_buf = routes_chain(routes_file, route);
        if (chain_buf == NULL)
            return TUNE_EXIT_USAGE;
        chain_text = chain_buf;
        if (wdir == NULL) {
            const char *slash = strrchr(routes_file, '/');

            wdir_buf = slash ? xasprintf("%.*s/scorers", (int)(slash - routes_file), routes_file)
                             : xstrdup("scorers");
            wdir = wdir_buf;
        }
        tune_msg("route %s: chain from %s: %s", route, routes_file, chain_text);
    }
    if (tune_inputs_load(&in, &d) < 0) {
        free(chain_buf);
        free(wdir_buf);
        return TUNE_EXIT_FAIL;
    }
    ev.d = &d;
    buf_init(&out, TUNE_REPORT_MAX);
    nmodels = d.nmodels <= ARRAY_LEN(models) ? pick_models(&d, models_list, models) : -1;
    if (nmodels < 0) {
        rc = TUNE_EXIT_USAGE;
        goto done;
    }
    ref = tune_reference(&in, &d);
    if (ref < 0)
        goto done;

    /* Row 0 is the route, then one row per single model. */
    ev.nrows = 1 + (size_t)nmodels;
    ev.rows = xcalloc(ev.nrows, sizeof(*ev.rows));
    ev.rows[0].name = route;
    ev.rows[0].model = -1;
    if (chain_text) {
        if (tune_chain_parse(&d, chain_text, &ev.rows[0].chain, err, sizeof(err)) < 0) {
            fprintf(stderr, "sluice-tune: --chain: %s\n", err);
            rc = TUNE_EXIT_USAGE;
            goto done;
        }
        ev.rows[0].have_chain = 1;
        for (int s = 0; s < ev.rows[0].chain.n - 1; s++)
            need_learned |= ev.rows[0].chain.st[s].kind == TS_LEARNED;
        if (need_learned && wdir == NULL) {
            fprintf(stderr, "sluice-tune: the chain has learned stages: give --weights-dir, "
                            "the weights the gateway scores with\n");
            rc = TUNE_EXIT_USAGE;
            goto done;
        }
    }
    for (int i = 0; i < nmodels; i++) {
        struct eval_row *row = &ev.rows[1 + i];

        row->name = d.models[models[i]].route_name;
        row->model = models[i];
        row->chain.n = 1;
        row->chain.st[0].model = models[i];
        row->chain.st[0].kind = TS_NONE;
        row->have_chain = 1;
    }
    if (need_learned && tune_scores_load(&d, &ev.rows[0].chain, wdir, &scores) < 0)
        goto done;
    for (size_t i = 0; i < ev.nrows; i++) {
        ev.rows[i].ans = xcalloc(d.nq, sizeof(*ev.rows[i].ans));
        if (ev.rows[i].have_chain)
            row_simulate(&d, &ev.rows[i], &scores);
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sluice-tune: curl_global_init failed\n");
        goto done;
    }
    ev.url = chat_url(gateway);
    ev.timeout_ms = timeout_ms;
    ev.hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    ev.hdrs = curl_slist_append(ev.hdrs, "Expect:"); /* no 100-continue round trip */
    /* Measure the cascade, not the cache, and leave the cache as it was. */
    ev.hdrs = curl_slist_append(ev.hdrs, "Cache-Control: no-store");
    if (key_env) {
        char *h = xasprintf("Authorization: Bearer %s", getenv(key_env));

        ev.hdrs = curl_slist_append(ev.hdrs, h);
        free(h);
    }
    if (ev.hdrs == NULL)
        sl_panic("curl_slist_append: out of memory");
    if (eval_run(&ev, (int)conc) == 0) {
        int bad = report(&ev, ref, chain_text, wdir, &out), r = bad < 0 ? -1 : 0;

        if (bad == 0 && chain_text)
            r |= buf_puts(&out, "\nresult: end to end equals the offline simulation\n");
        else if (bad == 0)
            r |= buf_puts(&out, "\nresult: no bugs; the route was not compared (no --chain)\n");
        else if (bad > 0)
            r |= buf_printf(&out,
                            "\nresult: %d row%s differ%s from the offline simulation or had "
                            "bugs: a difference is a bug\n",
                            bad, bad == 1 ? "" : "s", bad == 1 ? "s" : "");
        if (r < 0) {
            tune_msg("the report is longer than its cap of %zu bytes", out.max);
        } else {
            fwrite(out.data, 1, out.len, stdout);
            rc = bad == 0 ? TUNE_EXIT_OK : TUNE_EXIT_FAIL;
        }
    }
    curl_slist_free_all(ev.hdrs);
    free(ev.url);
    curl_global_cleanup();

done:
    buf_free(&out);
    rows_free(&ev);
    tune_scores_free(&scores);
    free(chain_buf);
    free(wdir_buf);
    tune_data_free(&d);
    return rc;
}

TUNE_COMMAND(eval, "eval",
             "run the data through a live gateway and check it against the simulation", eval_main)
