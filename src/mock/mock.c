/* mock.c - sluice-mock: an OpenAI-compatible fake provider for sluice's tests,
 * demos and benchmarks. This file is its main: the command line, startup,
 * signals and shutdown.
 *
 * One thread, one epoll loop (loop.c), non-blocking sockets. Its parts: the
 * connections (mock_conn.c: accept, read, write, keep-alive, the timing of
 * each reply), the HTTP parser (mock_http.c), the endpoints (mock_ep.c),
 * the parser of a request's "mock" controls (mock_ctl.c) and the answers'
 * bytes (mock_reply.c, mock_gen.c, mock_anthropic.c), with recorded answers
 * from --replay files (mock_replay.c). main() starts the connections with
 * the endpoints' request callback, so the connections know nothing of the
 * API.
 */
#include "loop.h"
#include "mock_conn.h"
#include "mock_ctl.h"
#include "mock_ep.h"
#include "mock_replay.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MOCK_DEFAULT_LISTEN "127.0.0.1:8081"

struct mock_opts {
    const char *listen;
    struct mock_ep_opts ep;
    json_t *defaults; /* model -> default "mock" object (--mock, --content) */
    int quiet;
};

/* ---- signals ---- */

static void mock_signal_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;

    UNUSED(events);
    UNUSED(arg);
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        loop_stop(loop);
}

/* ---- command line ---- */

static void mock_usage(FILE *f)
{
    fputs("usage: sluice-mock [--listen HOST:PORT] [--replay FILE.jsonl ...]\n"
          "                   [--require-key KEY] [--first-byte-ms N] [--chunks N]\n"
          "                   [--interval-ms N] [--content MODEL=TEXT] [--mock MODEL=JSON]\n"
          "                   [--quiet] [--verbose] [--help]\n"
          "\n"
          "An OpenAI-compatible fake provider for sluice's tests and benchmarks; it also\n"
          "answers Anthropic's POST /v1/messages and /v1/messages/count_tokens in\n"
          "Anthropic's wire format (an \"anthropic-version\" header is required there).\n"
          "\n"
          "  --listen HOST:PORT   address to listen on (default 127.0.0.1:8081; port 0\n"
          "                       picks a free port). Prints one line to stdout:\n"
          "                       \"sluice-mock listening on http://HOST:PORT\"\n"
          "  --replay FILE...     RouterBench JSONL files; their models answer with the\n"
          "                       recorded content and usage (404 replay_miss otherwise)\n"
          "  --require-key KEY    require \"Authorization: Bearer KEY\" (\"api-key: KEY\" on\n"
          "                       Azure paths; \"x-api-key: KEY\" or the bearer token on\n"
          "                       Anthropic paths), else 401\n"
          "  --first-byte-ms N    delay before the first response byte (default 0)\n"
          "  --chunks N           content chunks per streamed choice (default 5)\n"
          "  --interval-ms N      delay between stream chunks (default 0)\n"
          "  --content MODEL=TEXT MODEL always answers TEXT (e.g. a judge's score)\n"
          "  --mock MODEL=JSON    default \"mock\" controls for MODEL, e.g.\n"
          "                       'slow={\"first_byte_ms\":500}'; a request's own override\n"
          "  --quiet              no startup messages on stderr\n"
          "  --verbose            one line per request on stderr\n"
          "\n"
          "Per request, a body field \"mock\": {content, choices, status, retry_after,\n"
          "error_message, fault (hang|reset|truncate|malformed|error_event|error_200),\n"
          "first_byte_ms, chunks, interval_ms, logprob, model, fail_times, key,\n"
          "tool_calls, cache_read_tokens, cache_write_tokens} overrides the defaults; an\n"
          "array of such objects applies the first whose \"model\" matches.\n"
          "error_event: a 200 stream that fails with an error event before its first\n"
          "token (a whole answer: 503, or Anthropic's 529 overloaded_error). tool_calls\n"
          "(Anthropic mode, 1..16): that many tool_use blocks over the request's tools,\n"
          "after a text block when content is given. cache_read_tokens and\n"
          "cache_write_tokens: prompt tokens reported as read from and written to a\n"
          "prompt cache (OpenAI: prompt_tokens_details.cached_tokens).\n"
          "GET /_mock/stats counts requests and streams; POST /_mock/reset zeroes it.\n",
          f);
}

/* The value of option `name` at argv[*i]: "--name=value" or "--name value".
 * Return NULL when argv[*i] is not this option. Exits on a missing value. */
static const char *mock_opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "sluice-mock: %s needs a value\n", name);
        exit(2);
    }
    return argv[++*i];
}

static long mock_opt_long(const char *name, const char *v, long min, long max)
{
    long x;

    if (parse_long(v, min, max, &x) < 0) {
        fprintf(stderr, "sluice-mock: %s must be an integer from %ld to %ld\n", name, min, max);
        exit(2);
    }
    return x;
}

/* --mock MODEL=JSON and --content MODEL=TEXT: merge the value into the
 * model's default controls in o->defaults. Exits on a bad value. */
static void mock_default_add(struct mock_opts *o, const char *opt, const char *spec, int is_content)
{
    const char *eq = strchr(spec, '=');
    struct mock_ctl ctl;
    struct mock_err err;
    json_error_t jerr;
    json_t *obj, *cur;
    char *model;

    if (eq == NULL || eq == spec) {
        fprintf(stderr, "sluice-mock: %s wants MODEL=%s\n", opt, is_content ? "TEXT" : "JSON");
        exit(2);
    }
    model = xstrndup(spec, (size_t)(eq - spec));
    obj = is_content ? json_pack("{s:s}", "content", eq + 1) : json_loads(eq + 1, 0, &jerr);
    if (!json_is_object(obj) || mock_ctl_parse(obj, &ctl, &err) < 0) {
        fprintf(stderr, "sluice-mock: %s %s: %s\n", opt, spec,
                obj == NULL           ? (is_content ? "not UTF-8" : jerr.text)
                : json_is_object(obj) ? err.message
                                      : "the value must be a JSON object");
        exit(2);
    }
    json_object_del(obj, "model"); /* the model is the key here */
    cur = json_object_get(o->defaults, model);
    if (cur)
        json_object_update(cur, obj);
    else
        json_object_set(o->defaults, model, obj);
    json_decref(obj);
    free(model);
}

/* Parse argv into o and the list of replay files (argv pointers). */
static void mock_parse_args(int argc, char **argv, struct mock_opts *o, const char ***files,
                            size_t *nfiles)
{
    *files = xcalloc((size_t)argc, sizeof(**files));
    *nfiles = 0;
    o->listen = MOCK_DEFAULT_LISTEN;
    o->ep.chunks = 5;
    o->defaults = json_object();
    for (int i = 1; i < argc; i++) {
        const char *v;

        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            mock_usage(stdout);
            exit(0);
        } else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            o->quiet = 1;
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            o->ep.verbose = 1;
        } else if ((v = mock_opt_value(argc, argv, &i, "--listen"))) {
            o->listen = v;
        } else if ((v = mock_opt_value(argc, argv, &i, "--require-key"))) {
            o->ep.require_key = v;
        } else if ((v = mock_opt_value(argc, argv, &i, "--first-byte-ms"))) {
            o->ep.first_byte_ms = mock_opt_long("--first-byte-ms", v, 0, MOCK_CTL_MAX_DELAY_MS);
        } else if ((v = mock_opt_value(argc, argv, &i, "--chunks"))) {
            o->ep.chunks = mock_opt_long("--chunks", v, 1, MOCK_CTL_MAX_CHUNKS);
        } else if ((v = mock_opt_value(argc, argv, &i, "--interval-ms"))) {
            o->ep.interval_ms = mock_opt_long("--interval-ms", v, 0, MOCK_CTL_MAX_DELAY_MS);
        } else if ((v = mock_opt_value(argc, argv, &i, "--content"))) {
            mock_default_add(o, "--content", v, 1);
        } else if ((v = mock_opt_value(argc, argv, &i, "--mock"))) {
            mock_default_add(o, "--mock", v, 0);
        } else if ((v = mock_opt_value(argc, argv, &i, "--replay"))) {
            /* "--replay a.jsonl b.jsonl" and "--replay a --replay b" both work. */
            (*files)[(*nfiles)++] = v;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                (*files)[(*nfiles)++] = argv[++i];
        } else {
            fprintf(stderr, "sluice-mock: unknown argument '%s'\n", argv[i]);
            mock_usage(stderr);
            exit(2);
        }
    }
}

/* Descriptors are the limit on concurrent streams: take all we may. */
static void mock_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && rl.rlim_max == RLIM_INFINITY) {
        rl.rlim_cur = 1 << 20;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Load the --replay files. Return the table (NULL without files), or exit
 * on a bad file. */
static struct mock_replay *mock_load_replay(const char **files, size_t nfiles, int quiet)
{
    struct mock_replay *replay;
    uint64_t t0 = now_ms();

    if (nfiles == 0)
        return NULL;
    replay = mock_replay_new();
    for (size_t i = 0; i < nfiles; i++) {
        char err[512];

        if (mock_replay_load(replay, files[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "sluice-mock: replay: %s\n", err);
            exit(1);
        }
    }
    if (!quiet)
        fprintf(stderr,
                "sluice-mock: replay: %zu answers of %zu models from %zu files in %llu ms\n",
                mock_replay_nanswers(replay), mock_replay_nmodels(replay), nfiles,
                (unsigned long long)(now_ms() - t0));
    return replay;
}

int main(int argc, char **argv)
{
    struct mock_opts o = {0};
    struct mock_replay *replay;
    struct loop *loop;
    struct loop_io sio;
    const char **files;
    size_t nfiles;
    char shown[300];
    sigset_t mask;
    int sfd;

    mock_parse_args(argc, argv, &o, &files, &nfiles);
    mock_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    replay = mock_load_replay(files, nfiles, o.quiet);
    free(files);
    mock_ep_init(&o.ep, replay, o.defaults);

    /* SIGINT/SIGTERM arrive as a readable fd, so the loop stops between
     * callbacks and can free everything. A shell starts background jobs
     * with SIGINT ignored, and an ignored signal never reaches a signalfd:
     * restore the default first (blocked, it cannot kill us). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        sl_panic("signalfd: %s", strerror(errno));

    loop = loop_new();
    if (mock_conn_listen(loop, o.listen, mock_ep_request_cb, NULL, shown, sizeof(shown)) < 0)
        return 1;
    if (loop_io_add(loop, &sio, sfd, EPOLLIN, mock_signal_cb, NULL) < 0)
        sl_panic("epoll_ctl: %s", strerror(errno));
    printf("sluice-mock listening on http://%s\n", shown);
    fflush(stdout);

    loop_run(loop);

    mock_conn_close_all();
    close(sfd);
    loop_free(loop);
    mock_ep_free();
    mock_replay_free(replay);
    if (!o.quiet)
        fprintf(stderr, "sluice-mock: stopped\n");
    return 0;
}
