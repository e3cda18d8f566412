/* redis.c - the gateway's Redis client: standalone, Sentinel or Cluster;
 * see redis.h. The connections themselves are redis_conn.c's; replies about
 * topology are read by redis_topo.c. */
#include "redis.h"
#include "caps.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "redis_conn.h"
#include "redis_topo.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define REDIRECTS_MAX 5
#define CONNECT_MIN_MS 2000L
#define SENTINEL_TIMEOUT_MIN_MS 1000L
/* How often the topology is looked at again: while something is down (a
 * failover under way), and when all is well. */
#define TOPO_RETRY_MS 200
#define TOPO_IDLE_MS 5000
/* Sentinels are asked again at most this often on errors. */
#define REFIND_MIN_MS 500

enum redis_mode {
    MODE_ONE,
    MODE_SENTINEL,
    MODE_CLUSTER,
};

static const char *const mode_names[] = {"standalone", "sentinel", "cluster"};

/* A server the client talks to, with its one connection. */
struct rnode {
    struct redis *r;
    char addr[REDIS_ADDR_MAX];
    struct redis_conn *conn;
    char logged[200]; /* the last error logged for it, so a retry loop logs once */
    int mark;
};

struct redis {
    struct loop *loop;
    enum redis_mode mode;
    struct redis_conf *conf; /* own copy, for redis_conf_same */
    SSL_CTX *tls;
    struct redis_conn_opts opts;  /* data nodes */
    struct redis_conn_opts sopts; /* sentinels: no AUTH, no SELECT, no retry */
    char **seeds;                 /* numeric HOST:PORT: the server, sentinels or cluster nodes */
    size_t nseeds;
    struct rnode **nodes; /* the server, the sentinel's master, or the cluster's nodes */
    size_t nnodes;
    struct rnode *slots[REDIS_SLOTS]; /* cluster: the master of each slot, or NULL */
    int have_map;
    int refreshing; /* CLUSTER SLOTS in flight */
    char refresh_addr[REDIS_ADDR_MAX]; /* to whom */
    char *server_name;                 /* TLS: the name certificates must carry */
    struct redis_conn *sentinel;
    size_t sentinel_next;
    uint64_t last_refind_us;
    struct loop_timer topo;
    int stopping;
    char error[200];
    struct redis_stats st;
};

/* ---- what /readyz shows (any thread) ---- */

static pthread_mutex_t status_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    const struct redis *owner; /* the client reporting, NULL: none */
    const char *mode;
    const char *state;
    char error[200];
    char master[REDIS_ADDR_MAX];
} status;

static int node_ready(const struct rnode *n)
{
    return n && n->conn && redis_conn_ready(n->conn);
}

int redis_up(const struct redis *r)
{
    if (r->mode != MODE_CLUSTER)
        return r->nnodes > 0 && node_ready(r->nodes[0]);
    if (!r->have_map)
        return 0;
    for (size_t i = 0; i < REDIS_SLOTS; i++)
        if (r->slots[i] && !node_ready(r->slots[i]))
            return 0;
    return 1;
}

static void status_update(struct redis *r)
{
    const char *state;
    int any = 0;

    if (r->stopping)
        return;
    for (size_t i = 0; i < r->nnodes; i++)
        any |= node_ready(r->nodes[i]);
    if (redis_up(r))
        state = "up";
    else if (r->mode == MODE_CLUSTER && r->have_map && any)
        state = "degraded";
    else if (r->error[0])
        state = "down";
    else
        state = "connecting";
    pthread_mutex_lock(&status_mu);
    status.owner = r;
    status.mode = mode_names[r->mode];
    status.state = state;
    snprintf(status.error, sizeof(status.error), "%s", r->error);
    snprintf(status.master, sizeof(status.master), "%s",
             r->mode != MODE_CLUSTER && r->nnodes ? r->nodes[0]->addr : "");
    pthread_mutex_unlock(&status_mu);
}

json_t *redis_report(void)
{
    json_t *o = NULL;

    pthread_mutex_lock(&status_mu);
    if (status.owner)
        o = json_pack("{s:s, s:s, s:s?, s:s?}", "mode", status.mode, "state", status.state,
                      "error", status.error[0] ? status.error : NULL, "master",
                      status.master[0] ? status.master : NULL);
    pthread_mutex_unlock(&status_mu);
    return o;
}

/* An error worth telling: logged when it changes, shown by /readyz. */
static void note_error(struct redis *r, struct rnode *n, const char *what, const char *why)
{
    char msg[200];

    snprintf(msg, sizeof(msg), "%s: %s", what, why);
    if (n ? strcmp(n->logged, msg) != 0 : strcmp(r->error, msg) != 0) {
        log_msg(LOG_ERROR, "redis %s; failing open until it answers", msg);
        if (n)
            snprintf(n->logged, sizeof(n->logged), "%s", msg);
    }
    snprintf(r->error, sizeof(r->error), "%s", msg);
    status_update(r);
}

/* ---- topology work, on a timer so that no callback re-enters it ---- */

static void topo_kick(struct redis *r, long ms)
{
    uint64_t us = (uint64_t)ms * 1000u;

    if (r->stopping)
        return;
    if (loop_timer_armed(&r->topo) && r->topo.when_us <= loop_now_us(r->loop) + us)
        return;
    loop_timer_start(r->loop, &r->topo, us ? us : 1);
}

/* ---- nodes ---- */

static void node_event_cb(void *arg, struct redis_conn *c, enum redis_conn_event ev,
                          const char *why)
{
    struct rnode *n = arg;
    struct redis *r = n->r;

    UNUSED(c);
    if (ev == REDIS_CONN_UP) {
        if (n->logged[0])
            log_msg(LOG_INFO, "redis %s: connected again", n->addr);
        n->logged[0] = '\0';
        r->st.reconnects++;
        if (redis_up(r))
            r->error[0] = '\0';
        status_update(r);
        if (r->mode == MODE_CLUSTER && !r->have_map)
            topo_kick(r, 0);
        return;
    }
    note_error(r, n, n->addr, why);
    if (r->mode == MODE_CLUSTER)
        topo_kick(r, 0);
    else if (r->mode == MODE_SENTINEL)
        topo_kick(r, REFIND_MIN_MS);
}

static struct rnode *node_find(const struct redis *r, const char *addr)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (strcmp(r->nodes[i]->addr, addr) == 0)
            return r->nodes[i];
    return NULL;
}

/* The node at addr, made (and connecting) if new. */
static struct rnode *node_get(struct redis *r, const char *addr)
{
    struct rnode *n = node_find(r, addr);

    if (n)
        return n;
    n = xcalloc(1, sizeof(*n));
    n->r = r;
    snprintf(n->addr, sizeof(n->addr), "%s", addr);
    r->nodes = xrealloc(r->nodes, (r->nnodes + 1) * sizeof(*r->nodes));
    r->nodes[r->nnodes++] = n;
    n->conn = redis_conn_new(r->loop, addr, &r->opts, node_event_cb, NULL, n);
    if (!redis_conn_ready(n->conn) && redis_conn_error(n->conn)[0])
        note_error(r, n, addr, redis_conn_error(n->conn));
    return n;
}

/* Forget node i: its waiting commands hear "down". */
static void node_drop(struct redis *r, size_t i)
{
    struct rnode *n = r->nodes[i];

    r->nodes[i] = r->nodes[--r->nnodes];
    for (size_t s = 0; s < REDIS_SLOTS && r->mode == MODE_CLUSTER; s++)
        if (r->slots[s] == n)
            r->slots[s] = NULL;
    redis_conn_free(n->conn, 0);
    free(n);
}

/* ---- commands ---- */

/* A command on its way: kept (in RESP) until answered, to follow
 * redirections. */
struct rreq {
    struct redis *r;
    redis_cb cb;
    void *arg;
    char *cmd;
    size_t len;
    int redirects;
    char node[REDIS_ADDR_MAX]; /* where it went last */
};

static const char ASKING_CMD[] = "*1\r\n$6\r\nASKING\r\n";

static void ignore_cb(void *arg, const char *err, struct redisReply *reply)
{
    UNUSED(arg);
    UNUSED(err);
    UNUSED(reply);
}

static void rreq_cb(void *arg, const char *err, struct redisReply *reply);

static void rreq_send(struct rreq *rq, struct rnode *n, int asking)
{
    snprintf(rq->node, sizeof(rq->node), "%s", n->addr);
    if (asking)
        redis_conn_send(n->conn, ASKING_CMD, sizeof(ASKING_CMD) - 1, ignore_cb, NULL);
    redis_conn_send(n->conn, rq->cmd, rq->len, rreq_cb, rq);
}

static void sentinel_refind(struct redis *r);

/* A MOVED or ASK answer: send the command where it points. Returns 1 when
 * it was sent again. */
static int follow(struct rreq *rq, const struct redisReply *reply)
{
    struct redis *r = rq->r;
    char addr[REDIS_ADDR_MAX];
    unsigned slot;
    int kind;
    struct rnode *n;

    if (r->stopping || rq->redirects >= REDIRECTS_MAX)
        return 0;
    kind = redis_redirect_parse(reply->str, reply->len, &slot, addr);
    if (kind == 0)
        return 0;
    if (addr[0] == ':') { /* no host: the node that answered */
        char host[REDIS_HOST_MAX], ebuf[8];
        int port;
        long rport;

        if (redis_addr_parse(rq->node, strlen(rq->node), host, sizeof(host), &port, ebuf,
                             sizeof(ebuf)) < 0 ||
            parse_long(addr + 1, 1, 65535, &rport) < 0)
            return 0;
        redis_addr_format(addr, sizeof(addr), host, (int)rport);
    }
    n = node_get(r, addr);
    if (kind == 1) {
        r->slots[slot] = n;
        topo_kick(r, 0); /* more slots moved, most likely */
    }
    rq->redirects++;
    r->st.redirects++;
    rreq_send(rq, n, kind == 2);
    return 1;
}

static void rreq_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct rreq *rq = arg;
    struct redis *r = rq->r;

    if (err == NULL && reply->type == REDIS_REPLY_ERROR) {
        if (r->mode == MODE_CLUSTER) {
            if (follow(rq, reply))
                return;
            if (strncmp(reply->str, "CLUSTERDOWN", 11) == 0 ||
                strncmp(reply->str, "TRYAGAIN", 8) == 0)
                topo_kick(r, TOPO_RETRY_MS);
        } else if (r->mode == MODE_SENTINEL && strncmp(reply->str, "READONLY", 8) == 0) {
            /* A master that became a replica: ask the sentinels again. */
            sentinel_refind(r);
        }
        /* A server that wants a password we do not send, or a user without
         * the rights: as plain a misconfiguration as a wrong password. */
        if (strncmp(reply->str, "NOAUTH", 6) == 0 || strncmp(reply->str, "NOPERM", 6) == 0)
            note_error(r, NULL, rq->node, reply->str);
    }
    if (err) {
        r->st.errors++;
        if (strcmp(err, "timeout") == 0)
            r->st.timeouts++;
        metrics_redis_error();
    }
    rq->cb(rq->arg, err, reply);
    free(rq->cmd);
    free(rq);
}

static void fail_now(struct redis *r, redis_cb cb, void *arg, const char *err)
{
    r->st.errors++;
    metrics_redis_error();
    cb(arg, err, NULL);
}

/* The slot of a command's key, or -1 for a command without one. */
static int command_slot(int argc, const char **argv, const size_t *lens)
{
    if (argc >= 3 && (strcasecmp(argv[0], "EVAL") == 0 || strcasecmp(argv[0], "EVALSHA") == 0))
        return argc >= 4 && !(lens[2] == 1 && argv[2][0] == '0')
                   ? (int)redis_key_slot(argv[3], lens[3])
                   : -1;
    return argc >= 2 ? (int)redis_key_slot(argv[1], lens[1]) : -1;
}

static struct rnode *route(struct redis *r, int slot)
{
    if (r->mode != MODE_CLUSTER)
        return r->nnodes ? r->nodes[0] : NULL;
    if (slot >= 0)
        return r->slots[slot];
    for (size_t i = 0; i < r->nnodes; i++)
        if (node_ready(r->nodes[i]))
            return r->nodes[i];
    return NULL;
}

static void send_to(struct redis *r, struct rnode *n, int argc, const char **argv,
                    const size_t *lens, redis_cb cb, void *arg)
{
    struct rreq *rq;
    char *cmd;
    int len;

    r->st.commands++;
    if (n == NULL || r->stopping) {
        if (r->mode == MODE_CLUSTER)
            topo_kick(r, 0);
        fail_now(r, cb, arg, "down");
        return;
    }
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        sl_panic("redisFormatCommandArgv: out of memory");
    rq = xcalloc(1, sizeof(*rq));
    rq->r = r;
    rq->cb = cb;
    rq->arg = arg;
    rq->cmd = cmd;
    rq->len = (size_t)len;
    rreq_send(rq, n, 0);
}

void redis_command(struct redis *r, int argc, const char **argv, const size_t *lens, redis_cb cb,
                   void *arg)
{
    send_to(r, route(r, r->mode == MODE_CLUSTER ? command_slot(argc, argv, lens) : -1), argc,
            argv, lens, cb, arg);
}

void redis_command_at(struct redis *r, const char *addr, int argc, const char **argv,
                      const size_t *lens, redis_cb cb, void *arg)
{
    send_to(r, node_find(r, addr), argc, argv, lens, cb, arg);
}

size_t redis_masters(const struct redis *r, char (*addrs)[REDIS_ADDR_MAX], size_t max)
{
    size_t n = 0;

    if (r->mode != MODE_CLUSTER) {
        if (r->nnodes && max)
            snprintf(addrs[n++], REDIS_ADDR_MAX, "%s", r->nodes[0]->addr);
        return n;
    }
    for (size_t i = 0; i < r->nnodes && n < max; i++) {
        for (size_t s = 0; s < REDIS_SLOTS; s++) {
            if (r->slots[s] == r->nodes[i]) {
                snprintf(addrs[n++], REDIS_ADDR_MAX, "%s", r->nodes[i]->addr);
                break;
            }
        }
    }
    return n;
}

int redis_is_cluster(const struct redis *r)
{
    return r->mode == MODE_CLUSTER;
}

void redis_stats(const struct redis *r, struct redis_stats *out)
{
    *out = r->st;
}

/* ---- Cluster: the slot map ---- */

static void slots_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct redis *r = arg;
    struct redis_slot_range *v;
    size_t nv;
    char e[200], host[REDIS_HOST_MAX], ebuf[8];
    int port, all_ready = 1;

    r->refreshing = 0;
    if (r->stopping)
        return;
    if (err) {
        snprintf(e, sizeof(e), "CLUSTER SLOTS: %s", err);
        note_error(r, NULL, "cluster", e);
        topo_kick(r, TOPO_RETRY_MS);
        return;
    }
    /* An empty host in the reply is the node that answered. */
    if (redis_addr_parse(r->refresh_addr, strlen(r->refresh_addr), host, sizeof(host), &port,
                         ebuf, sizeof(ebuf)) < 0)
        host[0] = '\0';
    if (redis_slots_parse(reply, host, REDIS_NODES_MAX, &v, &nv, e, sizeof(e)) < 0) {
        note_error(r, NULL, "cluster", e);
        topo_kick(r, TOPO_RETRY_MS);
        return;
    }
    for (size_t i = 0; i < r->nnodes; i++)
        r->nodes[i]->mark = 0;
    memset(r->slots, 0, sizeof(r->slots));
    for (size_t i = 0; i < nv; i++) {
        struct rnode *n = node_get(r, v[i].addr);

        n->mark = 1;
        for (unsigned s = v[i].from; s <= v[i].to; s++)
            r->slots[s] = n;
    }
    free(v);
    for (size_t i = r->nnodes; i > 0; i--)
        if (!r->nodes[i - 1]->mark)
            node_drop(r, i - 1);
    r->have_map = 1;
    for (size_t s = 0; s < REDIS_SLOTS; s++)
        if (r->slots[s] == NULL || !node_ready(r->slots[s]))
            all_ready = 0;
    if (all_ready)
        r->error[0] = '\0';
    status_update(r);
    topo_kick(r, all_ready ? TOPO_IDLE_MS : TOPO_RETRY_MS);
}

static void cluster_refresh(struct redis *r)
{
    static const char cmd[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    struct rnode *ask = NULL;
    size_t start;

    if (r->refreshing)
        return;
    /* Ask a node that answers, starting at a random one so that a sick
     * node is not asked every time. */
    start = r->nnodes ? (size_t)(random_u64() % r->nnodes) : 0;
    for (size_t k = 0; k < r->nnodes && ask == NULL; k++) {
        struct rnode *n = r->nodes[(start + k) % r->nnodes];

        if (node_ready(n))
            ask = n;
    }
    if (ask == NULL) {
        /* None: (re)connect the seeds; their UP asks again. */
        for (size_t i = 0; i < r->nseeds; i++)
            node_get(r, r->seeds[i]);
        topo_kick(r, TOPO_RETRY_MS);
        return;
    }
    r->refreshing = 1;
    snprintf(r->refresh_addr, sizeof(r->refresh_addr), "%s", ask->addr);
    redis_conn_send(ask->conn, cmd, sizeof(cmd) - 1, slots_cb, r);
}

/* ---- Sentinel ---- */

static void sentinel_reset(struct redis *r)
{
    if (r->sentinel) {
        struct redis_conn *c = r->sentinel;

        r->sentinel = NULL;
        redis_conn_free(c, 0);
    }
    topo_kick(r, TOPO_RETRY_MS);
}

static void sentinel_refind(struct redis *r)
{
    uint64_t now = loop_now_us(r->loop);

    if (r->stopping || now - r->last_refind_us < REFIND_MIN_MS * 1000u)
        return;
    r->last_refind_us = now;
    sentinel_reset(r);
}

/* The master is at addr now. */
static void set_master(struct redis *r, const char *addr)
{
    if (r->nnodes && strcmp(r->nodes[0]->addr, addr) == 0)
        return;
    if (r->nnodes)
        log_msg(LOG_WARN, "redis: the master of '%s' moved from %s to %s", r->conf->master_name,
                r->nodes[0]->addr, addr);
    else
        log_msg(LOG_INFO, "redis: the master of '%s' is %s", r->conf->master_name, addr);
    while (r->nnodes)
        node_drop(r, 0);
    node_get(r, addr);
    status_update(r);
}

static void master_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct redis *r = arg;
    char addr[REDIS_ADDR_MAX], why[200];

    if (r->stopping || r->sentinel == NULL)
        return;
    if (err == NULL && redis_sentinel_master_parse(reply, addr) == 0) {
        set_master(r, addr);
        return;
    }
    snprintf(why, sizeof(why), "%s",
             err                                  ? err
             : reply->type == REDIS_REPLY_NIL     ? "does not know this master_name"
             : reply->type == REDIS_REPLY_ERROR   ? reply->str
                                                  : "a malformed answer");
    {
        char what[REDIS_ADDR_MAX + 16];

        snprintf(what, sizeof(what), "sentinel %s", redis_conn_addr(r->sentinel));
        note_error(r, NULL, what, why);
    }
    sentinel_reset(r);
}

static void sentinel_push_cb(void *arg, struct redis_conn *c, struct redisReply *reply)
{
    struct redis *r = arg;
    char addr[REDIS_ADDR_MAX];

    if (c == r->sentinel && redis_switch_master_parse(reply, r->conf->master_name, addr) == 0)
        set_master(r, addr);
}

static void sentinel_event_cb(void *arg, struct redis_conn *c, enum redis_conn_event ev,
                              const char *why)
{
    struct redis *r = arg;

    if (c != r->sentinel)
        return;
    if (ev == REDIS_CONN_UP) {
        const char *get[] = {"SENTINEL", "get-master-addr-by-name", r->conf->master_name};
        size_t lens[] = {8, 23, strlen(r->conf->master_name)};
        static const char sub[] = "*2\r\n$9\r\nSUBSCRIBE\r\n$14\r\n+switch-master\r\n";
        char *cmd;
        int len = redisFormatCommandArgv(&cmd, 3, get, lens);

        if (len < 0)
            sl_panic("redisFormatCommandArgv: out of memory");
        redis_conn_send(c, cmd, (size_t)len, master_cb, r);
        free(cmd);
        /* After this the connection only hears +switch-master messages. */
        if (r->sentinel == c)
            redis_conn_send(c, sub, sizeof(sub) - 1, ignore_cb, NULL);
        return;
    }
    {
        char what[REDIS_ADDR_MAX + 16];

        snprintf(what, sizeof(what), "sentinel %s", redis_conn_addr(c));
        note_error(r, NULL, what, why);
    }
    sentinel_reset(r);
}

static void sentinel_ask(struct redis *r)
{
    const char *addr = r->seeds[r->sentinel_next++ % r->nseeds];

    r->sentinel = redis_conn_new(r->loop, addr, &r->sopts, sentinel_event_cb, sentinel_push_cb, r);
}

/* ---- the timer ---- */

static void topo_cb(struct loop *loop, void *arg)
{
    struct redis *r = arg;

    UNUSED(loop);
    if (r->stopping)
        return;
    if (r->mode == MODE_CLUSTER) {
        cluster_refresh(r);
        if (!loop_timer_armed(&r->topo) && !r->refreshing)
            topo_kick(r, TOPO_IDLE_MS);
    } else if (r->mode == MODE_SENTINEL) {
        if (r->sentinel == NULL)
            sentinel_ask(r);
        else if (!node_ready(r->nnodes ? r->nodes[0] : NULL))
            sentinel_refind(r);
        topo_kick(r, redis_up(r) ? TOPO_IDLE_MS : REFIND_MIN_MS);
    }
}

/* ---- life cycle ---- */

/* Resolve HOST:PORT (or host and port) to a numeric HOST:PORT in out. */
static int resolve(const char *host, int port, char *out, char *err, size_t errlen)
{
    struct addrinfo hints, *res;
    char ip[REDIS_HOST_MAX];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        snprintf(err, errlen, "cannot resolve redis host '%s'", host);
        return -1;
    }
    if (getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(ip, sizeof(ip), "%s", host);
    freeaddrinfo(res);
    redis_addr_format(out, REDIS_ADDR_MAX, ip, port);
    return 0;
}

static int add_seed(struct redis *r, const char *hostport, char *err, size_t errlen)
{
    char host[REDIS_HOST_MAX], addr[REDIS_ADDR_MAX];
    int port;

    if (redis_addr_parse(hostport, strlen(hostport), host, sizeof(host), &port, err, errlen) < 0 ||
        resolve(host, port, addr, err, errlen) < 0)
        return -1;
    r->seeds = xrealloc(r->seeds, (r->nseeds + 1) * sizeof(*r->seeds));
    r->seeds[r->nseeds++] = xstrdup(addr);
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static char **dup_list(char **v, size_t n)
{
    char **out = n ? xcalloc(n, sizeof(*out)) : NULL;

    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static void conf_free(struct redis_conf *c)
{
    if (c == NULL)
        return;
    redis_conf_clear(c);
    free(c);
}

static struct redis_conf *conf_copy(const struct redis_conf *s)
{
    struct redis_conf *c = xcalloc(1, sizeof(*c));

    *c = *s;
    c->url = dup_or_null(s->url);
    c->username = dup_or_null(s->username);
    c->password_env = dup_or_null(s->password_env);
    c->password = dup_or_null(s->password);
    c->tls_ca_file = dup_or_null(s->tls_ca_file);
    c->tls_cert_file = dup_or_null(s->tls_cert_file);
    c->tls_key_file = dup_or_null(s->tls_key_file);
    c->tls_server_name = dup_or_null(s->tls_server_name);
    c->master_name = dup_or_null(s->master_name);
    c->sentinels = dup_list(s->sentinels, s->nsentinels);
    c->cluster_nodes = dup_list(s->cluster_nodes, s->ncluster_nodes);
    return c;
}

static int str_same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int list_same(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

int redis_conf_same(const struct redis_conf *a, const struct redis_conf *b)
{
    return str_same(a->url, b->url) && str_same(a->username, b->username) &&
           str_same(a->password, b->password) && str_same(a->tls_ca_file, b->tls_ca_file) &&
           str_same(a->tls_cert_file, b->tls_cert_file) &&
           str_same(a->tls_key_file, b->tls_key_file) &&
           str_same(a->tls_server_name, b->tls_server_name) &&
           str_same(a->master_name, b->master_name) &&
           list_same(a->sentinels, a->nsentinels, b->sentinels, b->nsentinels) &&
           list_same(a->cluster_nodes, a->ncluster_nodes, b->cluster_nodes, b->ncluster_nodes) &&
           a->timeout_ms == b->timeout_ms;
}

struct redis *redis_new(struct loop *loop, const struct redis_conf *conf, char *err,
                        size_t errlen)
{
    struct redis *r = xcalloc(1, sizeof(*r));
    struct redis_url u = {.port = 6379};
    int host_is_name = 0;

    r->loop = loop;
    r->conf = conf_copy(conf);
    loop_timer_init(&r->topo, topo_cb, r);
    r->mode = conf->nsentinels ? MODE_SENTINEL : conf->ncluster_nodes ? MODE_CLUSTER : MODE_ONE;
    if (conf->url && redis_url_parse(conf->url, &u, err, errlen) < 0)
        goto fail;
    if (conf->url)
        host_is_name = strspn(u.host, "0123456789.") != strlen(u.host) && !strchr(u.host, ':');
    if (r->mode == MODE_ONE) {
        char hp[REDIS_ADDR_MAX];

        if (conf->url == NULL) {
            snprintf(err, errlen, "redis: a url, sentinels or cluster_nodes is needed");
            goto fail;
        }
        redis_addr_format(hp, sizeof(hp), u.host, u.port);
        if (add_seed(r, hp, err, errlen) < 0)
            goto fail;
    } else {
        char **list = r->mode == MODE_SENTINEL ? conf->sentinels : conf->cluster_nodes;
        size_t n = r->mode == MODE_SENTINEL ? conf->nsentinels : conf->ncluster_nodes;

        for (size_t i = 0; i < n; i++)
            if (add_seed(r, list[i], err, errlen) < 0)
                goto fail;
    }
    if (u.tls) {
        r->tls = redis_tls_new(conf->tls_ca_file, conf->tls_cert_file, conf->tls_key_file, err,
                               errlen);
        if (r->tls == NULL)
            goto fail;
    }
    r->opts.tls = r->tls;
    /* The certificate must carry tls_server_name, or the url's host name;
     * without either, each node's address. */
    if (conf->tls_server_name)
        r->server_name = xstrdup(conf->tls_server_name);
    else if (host_is_name)
        r->server_name = xstrdup(u.host);
    r->opts.server_name = r->server_name;
    r->opts.username = r->conf->username;
    r->opts.password = r->conf->password;
    r->opts.db = u.db;
    r->opts.timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 20;
    r->opts.connect_ms =
        r->opts.timeout_ms > CONNECT_MIN_MS ? r->opts.timeout_ms : CONNECT_MIN_MS;
    r->opts.reconnect = 1;
    r->sopts = r->opts;
    r->sopts.username = r->sopts.password = NULL;
    r->sopts.db = 0;
    r->sopts.reconnect = 0;
    if (r->sopts.timeout_ms < SENTINEL_TIMEOUT_MIN_MS)
        r->sopts.timeout_ms = SENTINEL_TIMEOUT_MIN_MS;
    return r;
fail:
    redis_free(r, 1);
    return NULL;
}

void redis_start(struct redis *r)
{
    if (r->mode == MODE_ONE)
        node_get(r, r->seeds[0]);
    else
        topo_kick(r, 0);
    status_update(r);
}

void redis_free(struct redis *r, int now)
{
    if (r == NULL)
        return;
    r->stopping = 1;
    pthread_mutex_lock(&status_mu);
    if (status.owner == r)
        status.owner = NULL;
    pthread_mutex_unlock(&status_mu);
    loop_timer_stop(r->loop, &r->topo);
    if (r->sentinel)
        redis_conn_free(r->sentinel, now);
    while (r->nnodes) {
        struct rnode *n = r->nodes[--r->nnodes];

        redis_conn_free(n->conn, now);
        free(n);
    }
    free(r->nodes);
    for (size_t i = 0; i < r->nseeds; i++)
        free(r->seeds[i]);
    free(r->seeds);
    redis_tls_free(r->tls);
    free(r->server_name);
    conf_free(r->conf);
    free(r);
}
