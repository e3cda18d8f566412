/* Copied from /work/shared/bench/mhd_curl_proxy.c (issue 15's "Must not regress": the floor
 * that bench/run.sh measures sluice against), so that a clean clone has it. One change: main
 * reads its numbers with strtol and a check, not atoi (banned by scripts/check-style.sh). */
/* mhd_curl_proxy.c - the floor of what libmicrohttpd + libcurl can do as a proxy on this
 * machine: N threads, each with one epoll holding its own MHD daemon (external epoll, the port
 * shared with SO_REUSEPORT) and its own curl multi; a request never leaves its thread.
 * POST body in, same body POSTed to UPSTREAM, its answer back. No JSON, no logging, no cache.
 * Easy handles are pooled, CURLOPT_NOSIGNAL is set, TURBO=1 in the environment adds MHD_USE_TURBO.
 * Measured on 2 cores in one run (POST chat, no cache, nginx with 2 workers): nginx proxy_pass
 * 47.6-49.3k req/s, added p50 34 us; this 20.7-23.4k, 111 us; sluice 21.4-25.8k, 125 us.
 * Build: cc -O2 -o mhd_curl_proxy mhd_curl_proxy.c -lmicrohttpd -lcurl -pthread
 * Run:   ./mhd_curl_proxy PORT UPSTREAM_URL THREADS */
#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

static const char *upstream;
static int port;

struct req {
    struct MHD_Connection *conn;
    char *in; size_t in_len;
    char *out; size_t out_len;
    int done, status;
    struct curl_slist *hdrs;
};

struct worker {
    int ep, tfd;
    struct MHD_Daemon *d;
    CURLM *multi;
    CURL *pool[64];
    int pool_n;
    pthread_t th;
};

static size_t write_cb(char *p, size_t sz, size_t n, void *ud)
{
    struct req *r = ud;
    r->out = realloc(r->out, r->out_len + sz * n);
    memcpy(r->out + r->out_len, p, sz * n);
    r->out_len += sz * n;
    return sz * n;
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *up, void *sp)
{
    struct worker *w = up;
    struct epoll_event ev = {0};
    ev.data.u64 = (uint64_t)s | (1ULL << 40);
    if (what == CURL_POLL_REMOVE) { epoll_ctl(w->ep, EPOLL_CTL_DEL, s, NULL); return 0; }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, s, &ev) < 0) epoll_ctl(w->ep, EPOLL_CTL_ADD, s, &ev);
    return 0;
}

static int timer_cb(CURLM *m, long ms, void *up)
{
    struct worker *w = up;
    struct itimerspec its = {0};
    if (ms == 0) its.it_value.tv_nsec = 1;
    else if (ms > 0) { its.it_value.tv_sec = ms / 1000; its.it_value.tv_nsec = (ms % 1000) * 1000000; }
    timerfd_settime(w->tfd, 0, &its, NULL);
    return 0;
}

static __thread struct worker *self;

static void check_done(struct worker *w)
{
    CURLMsg *m; int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct req *r; long code = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        curl_multi_remove_handle(w->multi, m->easy_handle);
        if (w->pool_n < 64) w->pool[w->pool_n++] = m->easy_handle; else curl_easy_cleanup(m->easy_handle);
        r->status = m->data.result == CURLE_OK ? (int)code : 502;
        r->done = 1;
        MHD_resume_connection(r->conn);
    }
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *ver, const char *data, size_t *size, void **pp)
{
    struct worker *w = self;
    struct req *r = *pp;
    if (!r) { r = calloc(1, sizeof *r); r->conn = c; *pp = r; return MHD_YES; }
    if (*size) { r->in = realloc(r->in, r->in_len + *size); memcpy(r->in + r->in_len, data, *size); r->in_len += *size; *size = 0; return MHD_YES; }
    if (!r->done && !r->hdrs) {
        CURL *e = w->pool_n ? w->pool[--w->pool_n] : curl_easy_init();
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_URL, upstream);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->in);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->in_len);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(e, CURLOPT_PRIVATE, r);
        curl_multi_add_handle(w->multi, e);
        MHD_suspend_connection(c);
        return MHD_YES;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->out_len, r->out, MHD_RESPMEM_MUST_FREE);
    r->out = NULL;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **pp, enum MHD_RequestTerminationCode t)
{
    struct req *r = *pp;
    if (!r) return;
    curl_slist_free_all(r->hdrs); free(r->in); free(r->out); free(r);
    *pp = NULL;
}

static void *run(void *arg)
{
    struct worker *w = arg; self = w;
    w->ep = epoll_create1(0);
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    w->multi = curl_multi_init();
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    w->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | (getenv("TURBO") ? MHD_USE_TURBO : 0), port, NULL, NULL, access_cb, NULL,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL,
                            MHD_OPTION_CONNECTION_LIMIT, 10000, MHD_OPTION_END);
    if (!w->d) { fprintf(stderr, "MHD_start_daemon failed\n"); exit(1); }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1ULL << 41};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, di->epoll_fd, &ev);
    ev.data.u64 = 1ULL << 42;
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tfd, &ev);
    struct epoll_event evs[256];
    int running;
    for (;;) {
        MHD_UNSIGNED_LONG_LONG to = 0; int tms = 1000;
        if (MHD_get_timeout(w->d, &to) == MHD_YES) tms = to < 1000 ? (int)to : 1000;
        int n = epoll_wait(w->ep, evs, 256, tms);
        for (int i = 0; i < n; i++) {
            uint64_t u = evs[i].data.u64;
            if (u & (1ULL << 40)) {
                int fl = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) | (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                         (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
                curl_multi_socket_action(w->multi, (curl_socket_t)(u & 0xffffffffu), fl, &running);
            } else if (u & (1ULL << 42)) {
                uint64_t x; (void)!read(w->tfd, &x, 8);
                curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            }
        }
        check_done(w);
        MHD_run(w->d); /* every turn: MHD keeps its own ready list (edge-triggered) */
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) { fprintf(stderr, "usage: %s PORT UPSTREAM_URL THREADS\n", argv[0]); return 2; }
    char *end1, *end3;
    long p = strtol(argv[1], &end1, 10), nl = strtol(argv[3], &end3, 10);
    if (*end1 || *end3 || p < 1 || p > 65535 || nl < 1 || nl > 256) { fprintf(stderr, "bad PORT or THREADS\n"); return 2; }
    port = (int)p; upstream = argv[2]; int n = (int)nl;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct worker *ws = calloc(n, sizeof *ws);
    for (int i = 0; i < n; i++) pthread_create(&ws[i].th, NULL, run, &ws[i]);
    pthread_join(ws[0].th, NULL);
    return 0;
}
