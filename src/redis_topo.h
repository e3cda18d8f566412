/* redis_topo.h - what Redis says about its own topology: Cluster key slots
 * (CRC16 and hash tags), the slot map of CLUSTER SLOTS, MOVED and ASK
 * redirections, and Sentinel's answers (get-master-addr-by-name and the
 * +switch-master message).
 *
 * Pure functions over replies as hiredis's reader builds them; every reply
 * is outside input and is checked, never trusted. Used by redis.c.
 */
#ifndef SLUICE_REDIS_TOPO_H
#define SLUICE_REDIS_TOPO_H

#include "redis_url.h"

#include <stddef.h>
#include <stdint.h>

struct redisReply;

#define REDIS_SLOTS 16384

/* CRC16-CCITT (XModem), as Redis Cluster computes it: "123456789" gives
 * 0x31C3. */
uint16_t redis_crc16(const void *buf, size_t len);
/* The slot of a key: CRC16 of the hash tag (the text between the first '{'
 * and the next '}', when not empty) or else of the whole key, mod 16384. */
unsigned redis_key_slot(const char *key, size_t len);

/* An error reply "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>".
 * Returns 1 (MOVED) or 2 (ASK) with *slot and addr (HOST:PORT, at least
 * REDIS_ADDR_MAX bytes) set, or 0 when err is neither or is malformed. An
 * empty host (a node that does not know its address) is left empty. */
int redis_redirect_parse(const char *err, size_t len, unsigned *slot, char *addr);

/* One slot range and the address of its master. */
struct redis_slot_range {
    unsigned from, to;
    char addr[REDIS_ADDR_MAX];
};

/* The reply to CLUSTER SLOTS as ranges, into out (malloc'd, the caller
 * frees) and *n. A master given with an empty or "?" host is the node that
 * was asked: self_host names it. At most max_nodes distinct masters.
 * Returns 0, or -1 with a message in err. */
int redis_slots_parse(const struct redisReply *r, const char *self_host, size_t max_nodes,
                      struct redis_slot_range **out, size_t *n, char *err, size_t errlen);

/* The reply to SENTINEL get-master-addr-by-name: [host, port] into addr
 * (REDIS_ADDR_MAX bytes). Returns 0, or -1 (nil: the name is unknown to
 * this sentinel; or malformed). */
int redis_sentinel_master_parse(const struct redisReply *r, char *addr);

/* A pub/sub message ["message", "+switch-master", "<name> <old-ip>
 * <old-port> <new-ip> <new-port>"] for master name: the new address into
 * addr. Returns 0, or -1 when r is no such message or names another
 * master. */
int redis_switch_master_parse(const struct redisReply *r, const char *name, char *addr);

#endif
