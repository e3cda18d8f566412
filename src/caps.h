/* caps.h - every hard cap on a buffer or a count of the gateway, named in one
 * place (curl's dynbuf "toobig" limits). A buffer is given its cap at
 * buf_init; going over it is an error that the caller handles (util.h).
 *
 * Caps that a user may change are config keys (config.h holds their
 * defaults); what is here is fixed at build time.
 */
#ifndef SLUICE_CAPS_H
#define SLUICE_CAPS_H

/* Redis (redis_conn.c, redis.c). Commands waiting to be written on one
 * connection: past it a command fails at once (fail open) rather than queue
 * without bound behind a slow server. */
#define REDIS_OUT_MAX (64UL << 20)
/* Reply bytes read but not yet a whole reply, per connection: Redis's own
 * largest string (512 MiB) and some. More is a broken server: the
 * connection is closed. */
#define REDIS_IN_MAX (520UL << 20)
/* Nodes a cluster's slot map may name (Redis Cluster's own advice is at
 * most 1000 masters). */
#define REDIS_NODES_MAX 1000
/* Sentinels or cluster seed nodes listed in the redis block. */
#define REDIS_SEEDS_MAX 32

#endif
