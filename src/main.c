/* main.c - command line, signals and reload. The work is elsewhere. */
#include "breaker.h"
#include "cache.h"
#include "config.h"
#include "exchange.h"
#include "http.h"
#include "limits.h"
#include "metrics.h"
#include "log.h"
#include "server.h"
#include "trace.h"
#include "util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sluice keygen: a new client key and the SHA-256 that goes in
 * gateway.conf. Only the hash is ever configured. */
static int keygen(void)
{
    unsigned char rnd[32], sha[32];
    char key[16 + 2 * sizeof(rnd)], hex[2 * sizeof(sha) + 1];

    random_bytes(rnd, sizeof(rnd));
    memcpy(key, "sk-sluice-", 10);
    hex_encode(rnd, sizeof(rnd), key + 10);
    sha256(key, strlen(key), sha);
    hex_encode(sha, sizeof(sha), hex);
    printf("key:        %s\n"
           "key_sha256: %s\n"
           "\n"
           "Give the key to the client (Authorization: Bearer <key>); put only the hash in\n"
           "gateway.conf:  keys = ( { name = \"...\"; key_sha256 = \"%s\"; } );\n",
           key, hex, hex);
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: sluice [--config FILE] [--listen HOST:PORT]\n"
          "       sluice --check [--config] FILE\n"
          "       sluice keygen\n"
          "       sluice --version | --help\n"
          "\n"
          "  -c, --config FILE      gateway.conf to load (required; conf/dev.conf is what\n"
          "                         make run serves: sluice-mock on 127.0.0.1:8081)\n"
          "  -l, --listen HOST:PORT override the config's listen address (port 0 picks one)\n"
          "      --check            validate the config, print every error as\n"
          "                         FILE:LINE: key.path: message, exit 0 if valid, 1 if not\n"
          "  -V, --version          print the version\n"
          "  -h, --help             this help\n"
          "\n"
          "Signals: SIGHUP reloads the config; SIGTERM/SIGINT drain and exit.\n",
          out);
}

static void print_errors(const struct config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msgs[i]);
}

static struct config *load(const char *path)
{
    struct config_errors errs = {0};
    struct config *cfg = config_load(path, &errs);

    if (cfg == NULL)
        print_errors(&errs);
    config_errors_free(&errs);
    return cfg;
}

static double stream_gauge(void *arg)
{
    UNUSED(arg);
    return (double)ex_stream_memory();
}

static double inflight_gauge(void *arg)
{
    UNUSED(arg);
    return (double)http_api_inflight();
}

/* Entries or bytes of the in-process cache (or Redis's local copy). */
static double cache_gauge(void *arg)
{
    struct cache *c = cache_current();
    struct cache_stats st = {0};

    if (c == NULL)
        return 0;
    cache_stats(c, &st);
    cache_unref(c);
    return strcmp(arg, "entries") == 0 ? (double)st.entries : (double)st.bytes;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"check", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *listen = NULL;
    int check = 0, opt, sig;
    long drain_ms;
    struct config *cfg;
    sigset_t set;

    if (argc == 2 && strcmp(argv[1], "keygen") == 0)
        return keygen();
    while ((opt = getopt_long(argc, argv, "c:l:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'V':
            printf("sluice %s\n", SLUICE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (check && path == NULL && optind == argc - 1)
        path = argv[optind++]; /* sluice --check FILE, as people type it */
    if (optind < argc) {
        fprintf(stderr, "sluice: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (check && path == NULL) {
        fprintf(stderr, "sluice: --check needs --config FILE\n");
        return 2;
    }
    if (path == NULL) {
        fprintf(stderr, "sluice: no config: give --config FILE (conf/dev.conf serves sluice-mock "
                        "on 127.0.0.1:8081, as make run does)\n");
        usage(stderr);
        return 2;
    }

    cfg = load(path);
    if (cfg == NULL)
        return 1;
    if (check) {
        printf("%s: OK\n", path);
        config_unref(cfg);
        return 0;
    }

    /* Signals are taken synchronously by this thread; every thread started
     * after this inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (log_open(&cfg->log) < 0) {
        fprintf(stderr, "sluice: cannot open log %s\n", cfg->log.path);
        return 1;
    }
    if (trace_open(&cfg->trace) < 0) {
        fprintf(stderr, "sluice: cannot open trace %s\n", cfg->trace.path);
        return 1;
    }
    metrics_init();
    metrics_gauge_fn("sluice_inflight_requests", "API requests being handled right now.",
                     inflight_gauge, NULL);
    metrics_gauge_fn("sluice_cache_entries", "Answers in the in-process cache.", cache_gauge,
                     (void *)"entries");
    metrics_gauge_fn("sluice_cache_bytes", "Bytes of the in-process cache.", cache_gauge,
                     (void *)"bytes");
    metrics_gauge_fn("sluice_stream_buffer_bytes",
                     "Bytes the buffers of open streams hold for their clients "
                     "(capped by max_stream_memory_bytes).",
                     stream_gauge, NULL);
    server.config_path = path;
    config_swap(cfg);
    cfg = config_current();
    if (server_start(cfg, listen) < 0) {
        config_unref(cfg);
        return 1;
    }
    config_unref(cfg);

    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            char msg[4096];

            server_reload(msg, sizeof(msg));
            continue;
        }
        log_msg(LOG_INFO, "signal %d: shutting down", sig);
        break;
    }
    cfg = config_current();
    drain_ms = cfg->drain_timeout_s * 1000;
    config_unref(cfg);
    server_stop(drain_ms);
    config_swap(NULL);
    breaker_free_all();
    limits_free_all();
    metrics_free();
    curl_global_cleanup();
    return 0;
}
