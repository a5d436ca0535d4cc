/*
 * Who may connect (not limits.h: the dataplane's include path would hide
 * the C library's; DESIGN.md §5, docs/configuration.md "limits"): the
 * per-client-address table shared by the cores. SO_REUSEPORT spreads one
 * address over every core, so the counts live here, not in a core.
 *
 * A client address (IPv6: its limits.ipv6_prefix network) on one listener
 * has an entry: its concurrent sessions, and two leaky buckets, new
 * connections and full handshakes, each holding a burst of the per-minute
 * limit and draining at that limit per minute. The table has a fixed size
 * (twice the sessions the cores may hold, rounded to a power of two) and
 * is set-associative: an address hashes to one set of LIM_WAYS entries
 * under one short lock. A full set reuses its stalest entry that holds no
 * session (its rate history is forgotten: counted); a set whose every
 * entry holds sessions cannot track a new address, which is then admitted
 * untracked (counted, limits_untracked): the per-core limit and stress
 * mode still hold, and a legitimate client is never refused because
 * flooders filled the table.
 */
#ifndef SLUICE_CONN_LIMITS_H
#define SLUICE_CONN_LIMITS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

#define LIM_WAYS 8

/* What limits_admit decided. */
enum lim_verdict {
	LIM_OK,           /* admitted and counted (the ticket holds the entry) */
	LIM_EXEMPT,       /* limits.exempt: admitted, not counted */
	LIM_UNTRACKED,    /* admitted, not counted: the address's set is full */
	LIM_SESSIONS,     /* refused: per_address.sessions reached */
	LIM_RATE,         /* refused: per_address.rate reached */
};

/* A session's hold on its entry; released once when the session ends. */
struct lim_ticket {
	uint32_t slot;    /* LIM_NONE: nothing held */
	uint32_t gen;     /* the entry's generation when taken */
	bool forgot;      /* admitting it reused an entry with rate history */
};
#define LIM_NONE UINT32_MAX

/* The table for up to max_sessions concurrent sessions in all (0: a
 * small table, for tests), or entries exactly (a power of two, multiple
 * of LIM_WAYS) when entries is not 0. 0 or -ENOMEM. */
int limits_init(uint64_t max_sessions, unsigned entries);
void limits_fini(void);

/* A new connection from peer on listener li with the listener's limits
 * al (lim: the global limits: exempt networks, the IPv6 prefix) at
 * now_ms: the verdict, and *t the hold to release (LIM_NONE unless
 * LIM_OK). Any core, any time. */
enum lim_verdict limits_admit(const struct cfg_limits *lim, const struct cfg_addr_limits *al,
			      unsigned li, const struct sockaddr *peer, uint64_t now_ms,
			      struct lim_ticket *t);
/* The session ended: its concurrent count goes down (once; *t cleared). */
void limits_release(struct lim_ticket *t);
/* A full handshake is about to start for the session holding t: false
 * when the address is over al->handshakes this minute (then refuse). An
 * untracked or exempt session (LIM_NONE) always may. */
bool limits_handshake(const struct cfg_addr_limits *al, const struct lim_ticket *t,
		      uint64_t now_ms);
/* Descriptors kept beyond two per session: listeners, epoll sets, the
 * workers' eventfds, the control socket, logs, the reserve. */
#define LIM_NOFILE_RESERVE 256

/* At start-up: RLIMIT_NOFILE's soft limit to limits.nofile, or to what
 * the limits need (sessions_per_core x cores x 2 + LIM_NOFILE_RESERVE),
 * up to the hard limit (root may raise that too). *out: the limit set.
 * Without limits.nofile a hard limit too low is a warning (stress mode
 * works within it); limits.nofile over it is an error naming the key
 * and how to raise it. 0 or -errno with err filled. */
int limits_nofile(const struct cfg *c, unsigned *out, char *err, size_t errlen);

#endif
