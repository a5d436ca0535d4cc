/*
 * Backend pools: the servers of one backend, which of them are believed
 * down, and the capabilities learned by probing them. Cores read a pool
 * without locks: server state is one atomic word per server, and the
 * capabilities are an immutable snapshot published by pointer.
 */
#ifndef SLUICE_BACKEND_H
#define SLUICE_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "proto/proto.h"

struct be_server {
	struct sockaddr_storage addr;
	socklen_t len;
	char name[64];                   /* "127.0.0.1:10026" */
	_Atomic uint64_t down_until_ms;  /* skipped until then; 0 = up */
};

struct be_pool {
	const struct cfg_backend *cfg;
	const struct proto_ops *ops;
	unsigned n;
	struct be_server *srv;
	_Atomic(struct proto_caps *) caps;  /* NULL until a probe succeeded */
	struct proto_caps *retired;         /* previous snapshot (see be_publish) */
};

int be_pools_init(const struct cfg *c, struct be_pool **pools, char *err, size_t errlen);
void be_pools_free(struct be_pool *pools, unsigned n);

/* The server for the attempt-th try of a session (seed spreads sessions),
 * skipping servers marked down unless all are. -1 when attempts are used up. */
int be_pick(struct be_pool *p, uint64_t seed, unsigned attempt, uint64_t now_ms);
/* Returns true if the server was believed up until now (log it once). */
bool be_mark_down(struct be_pool *p, int idx, uint64_t now_ms);

static inline const struct proto_caps *be_caps(struct be_pool *p)
{
	return atomic_load_explicit(&p->caps, memory_order_acquire);
}

/* Probe every server of every pool once (blocking), then keep probing on a
 * thread every health_interval. Log what was found. */
void be_probe_all(struct be_pool *pools, unsigned n, const char *hostname);
int be_health_start(struct be_pool *pools, unsigned n, const char *hostname);
void be_health_stop(void);

#endif
