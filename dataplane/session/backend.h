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

#include "client.h"
#include "config.h"
#include "proto/proto.h"
#include "session/proxyproto.h"

struct be_server {
	struct sockaddr_storage addr;
	socklen_t len;
	char name[64];                   /* "127.0.0.1:10026" */
	_Atomic uint64_t down_until_ms;  /* skipped until then; 0 = up */
	bool probe_down;                 /* the last probe failed (the prober's) */
	char down_why[128];              /* and why (the prober's): a new
					    reason is logged again */
	_Atomic uint64_t probed_ms;      /* the last probe's end (clock_mono_ms);
					    0: never (the metrics' probe age) */
	_Atomic uint64_t fallback_until_ms; /* TLS to it: the conservative hello
					    straight away until then
					    (fallback_memory); 0 never */
};

/* A replaced capability snapshot, freed once no core can still read it. */
struct be_retired {
	struct proto_caps *caps;
	uint64_t since_ms;
};

struct be_pool {
	const struct cfg_backend *cfg;
	struct tls_client tlsc;             /* cfg->tls.tls != off: its contexts */
	const struct proto_ops *ops;
	unsigned n;
	struct be_server *srv;
	_Atomic(struct proto_caps *) caps;  /* NULL until a probe succeeded */
	struct be_retired *retired;         /* replaced snapshots (see be_publish) */
	unsigned n_retired;                 /* slots: 2 per server, + 2 */
};

int be_pools_init(const struct cfg *c, struct be_pool **pools, char *err, size_t errlen);
void be_pools_free(struct be_pool *pools, unsigned n);

/* The server for the attempt-th try of a session (seed spreads sessions),
 * skipping servers marked down unless all are. -1 when attempts are used up. */
int be_pick(struct be_pool *p, uint64_t seed, unsigned attempt, uint64_t now_ms);
/* Returns true if the server was believed up until now (log it once). */
bool be_mark_down(struct be_pool *p, int idx, uint64_t now_ms);
/* Is a connect error (-errno) sluice's own (descriptors, source ports,
 * buffers, local policy) rather than the server's or the network's
 * (refused, reset, timed out, unreachable)? Only a remote one may mark a
 * server down: a core out of descriptors says nothing of the server. */
bool be_err_local(int err);

static inline const struct proto_caps *be_caps(struct be_pool *p)
{
	return atomic_load_explicit(&p->caps, memory_order_acquire);
}

/*
 * One capability probe as a conversation with no I/O of its own: the
 * caller connects, sends out[0, out_len) whenever it is not empty (then
 * sets out_len to 0), and feeds what it receives to be_probe_input().
 */
struct be_probe {
	const struct be_pool *p;
	const char *hostname;
	struct proto_caps *caps;         /* owned until be_probe_take() */
	int state;                       /* the engine's probe_line state */
	bool done;
	size_t in_len, out_len;
	char in[8192];                   /* a partial reply line */
	char out[PP_MAX + 320];          /* PROXY header, request, QUIT */
};

/* Start: queue the PROXY header the pool wants (me/peer: the connection's
 * addresses, NULL if unknown: a LOCAL header). 0 or -ENOMEM. */
int be_probe_begin(struct be_probe *pr, const struct be_pool *p, const char *hostname,
		   const struct sockaddr *me, const struct sockaddr *peer);
/* Received bytes. Returns 0 (more wanted), 1 (capabilities complete; the
 * QUIT is queued), or a negative errno with why[] filled. */
int be_probe_input(struct be_probe *pr, const void *data, size_t n, char *why, size_t wlen);
/* The capabilities of a complete probe (the caller owns them), or NULL. */
struct proto_caps *be_probe_take(struct be_probe *pr);
/* Free what the probe still holds. */
void be_probe_end(struct be_probe *pr);
/* What a probe of server i found (rc 0 with caps: up; else down, why):
 * mark the server, publish the capabilities (taking caps in every case),
 * log every result when verbose, else changes only. The prober's thread only. */
void be_probe_result(struct be_pool *p, unsigned i, int rc, struct proto_caps *caps,
		     const char *why, bool verbose, uint64_t now_ms);

/* Probe every server of every pool once (blocking), then keep probing on a
 * thread every health_interval. Log what was found. */
void be_probe_all(struct be_pool *pools, unsigned n, const char *hostname);
int be_health_start(struct be_pool *pools, unsigned n, const char *hostname);
void be_health_stop(void);

#endif
