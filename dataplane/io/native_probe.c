/*
 * Backend capability probes and health checks over the native stack.
 *
 * With the native stack the backends sit behind sluice's DPDK ports, where
 * no kernel socket reaches them, so the probe thread of the kernel stack
 * cannot run. Core 0 runs the same conversation instead (session/backend.c:
 * be_probe_begin/input, the engines' probe parsers, be_probe_result for the
 * marking, publishing and logging), one native TCP connection per server,
 * all servers of a pool at once, every health_interval. The connections
 * are active opens like the sessions' backend connections: from the port
 * that reaches the server, with a source port whose answers come back to
 * core 0 (RSS or software spread). The first round, at core 0's first loop,
 * logs every result; later rounds log changes.
 *
 * The stack's callbacks only note that a probe has something to do; the
 * conversation moves in nat_probe_poll(), from core 0's loop, never from
 * inside the stack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

#include "core.h"
#include "io/native.h"
#include "session/backend.h"

/* One server's probe. */
struct nprobe {
	struct be_pool *pool;
	unsigned srv;                /* index in pool->srv */
	struct tcp_conn *tc;         /* NULL: no probe under way */
	bool busy;                   /* a probe is under way (tc may be gone) */
	bool draining;               /* result given; reading until the server's FIN */
	bool woken;                  /* the stack reported something */
	bool connected, closed;
	int err;                     /* closed: the stack's errno (0: FIN) */
	bool verbose;
	uint64_t deadline_ms;        /* no progress by then: timed out */
	struct be_probe pr;
};

static struct {
	struct be_pool *pools;
	unsigned n_pools;
	const char *hostname;
	struct nprobe *pr;           /* every server of every pool, in order */
	unsigned n_pr;
	uint64_t *next_ms;           /* per pool: the next round */
	bool *probed;                /* per pool: a first round was started */
	bool woken;                  /* some probe was woken */
	uint64_t check_ms;           /* the next look for timeouts */
} NP;

static void np_wake(struct nprobe *np)
{
	np->woken = true;
	NP.woken = true;
}

static void ev_connected(struct tcp_conn *c, void *ctx)
{
	struct nprobe *np = ctx;

	(void)c;
	np->connected = true;
	np_wake(np);
}

static void ev_data(struct tcp_conn *c, void *ctx)
{
	(void)c;
	np_wake(ctx);
}

/* The stack is done with the connection: it must not be touched again. */
static void ev_closed(struct tcp_conn *c, void *ctx, int err)
{
	struct nprobe *np = ctx;

	(void)c;
	np->tc = NULL;
	np->closed = true;
	np->err = err < 0 ? -err : err;
	np_wake(np);
}

static const struct tcp_ops np_ops = { ev_connected, ev_data, ev_data, ev_closed };

int nat_probe_setup(struct be_pool *pools, unsigned n, const char *hostname)
{
	unsigned i, j, k = 0;

	NP.pools = pools;
	NP.n_pools = n;
	NP.hostname = hostname;
	for (i = 0; i < n; i++)
		NP.n_pr += pools[i].n;
	NP.pr = calloc(NP.n_pr ? NP.n_pr : 1, sizeof(*NP.pr));
	NP.next_ms = calloc(n ? n : 1, sizeof(*NP.next_ms));
	NP.probed = calloc(n ? n : 1, sizeof(*NP.probed));
	if (!NP.pr || !NP.next_ms || !NP.probed) {
		nat_probe_stop();
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		for (j = 0; j < pools[i].n; j++) {
			NP.pr[k].pool = &pools[i];
			NP.pr[k++].srv = j;
		}
	return 0;
}

/* The connection is no longer needed: let it go, the probe is idle. */
static void np_release(struct nprobe *np)
{
	if (np->tc)
		tcp_close(np->tc);   /* RST if the server's bytes were left unread */
	np->tc = NULL;
	np->busy = np->draining = false;
}

/*
 * The probe is over: hand the result on. After a good one the QUIT is on
 * its way with our FIN behind it; the connection stays until the server's
 * answer and FIN are read, so that it ends without a reset (RFC 9293
 * §3.10.4: closing with unread data resets).
 */
static void np_finish(struct nprobe *np, int rc, const char *why, uint64_t now_ms)
{
	struct proto_caps *caps = rc == 0 ? be_probe_take(&np->pr) : NULL;

	be_probe_end(&np->pr);
	be_probe_result(np->pool, np->srv, rc, caps, why, np->verbose, now_ms);
	if (rc == 0 && np->tc) {
		tcp_shutdown_wr(np->tc);
		np->draining = true;
		np->deadline_ms = now_ms + np->pool->cfg->connect_timeout * 1000ull;
	} else {
		np_release(np);
	}
}

/* Draining: discard what the server still says; done at its FIN. */
static void np_drain(struct nprobe *np, uint64_t now_ms)
{
	char buf[512];

	while (np->tc && tcp_read(np->tc, buf, sizeof(buf)) > 0)
		;
	if (!np->tc || tcp_eof(np->tc) || now_ms >= np->deadline_ms)
		np_release(np);
}

/* Send what the conversation queued (it fits: a few hundred bytes into an
 * empty send buffer). 0 or -errno. */
static int np_flush(struct nprobe *np)
{
	ssize_t n;

	if (!np->pr.out_len)
		return 0;
	n = tcp_send(np->tc, np->pr.out, np->pr.out_len);
	if (n < 0)
		return (int)n;
	memmove(np->pr.out, np->pr.out + n, np->pr.out_len - (size_t)n);
	np->pr.out_len -= (size_t)n;
	return 0;
}

/* Start probing server np->srv: the SYN goes out. */
static void np_start(struct core *c, struct nprobe *np, bool verbose, uint64_t now_ms)
{
	const struct be_server *s = &np->pool->srv[np->srv];
	struct tcp_connect_req req;
	struct nat_pq *q;
	char why[128];
	int rc;

	np->busy = true;
	np->connected = np->closed = np->woken = false;
	np->err = 0;
	np->verbose = verbose;
	np->deadline_ms = now_ms + np->pool->cfg->connect_timeout * 1000ull;
	memset(&np->pr, 0, sizeof(np->pr));
	if (!(q = nat_connect_req(c, (const struct sockaddr *)&s->addr, &req))) {
		rc = -errno;
	} else {
		req.ops = &np_ops;
		req.ctx = np;
		rc = tcp_connect(q->st, &req, &np->tc);
	}
	if (rc < 0) {
		np->tc = NULL;
		snprintf(why, sizeof(why), "connect: %s", strerror(-rc));
		np_finish(np, rc, why, now_ms);
	}
}

/* Advance one conversation as far as it goes now. */
static void np_step(struct nprobe *np, uint64_t now_ms)
{
	char why[128] = "", buf[4096];
	int rc;

	np->woken = false;
	if (np->draining) {
		np_drain(np, now_ms);
		return;
	}
	if (!np->pr.p) {                          /* not connected before */
		struct sockaddr_storage me, peer;
		struct tcp_conn_info ti;

		if (!np->connected || !np->tc) {
			if (np->closed) {
				snprintf(why, sizeof(why), "connect: %s",
					 strerror(np->err ? np->err : ECONNREFUSED));
				np_finish(np, -(np->err ? np->err : ECONNREFUSED), why, now_ms);
			} else if (now_ms >= np->deadline_ms) {
				np_finish(np, -ETIMEDOUT, "connect: timed out", now_ms);
			}
			return;
		}
		tcp_get_info(np->tc, &ti);
		nat_sockaddr(&ti.laddr, ti.lport, &me);
		nat_sockaddr(&ti.raddr, ti.rport, &peer);
		if ((rc = be_probe_begin(&np->pr, np->pool, NP.hostname,
					 (struct sockaddr *)&me, (struct sockaddr *)&peer)) < 0) {
			np_finish(np, rc, "out of memory", now_ms);
			return;
		}
		np->deadline_ms = now_ms + np->pool->cfg->connect_timeout * 1000ull;
	}
	for (;;) {
		ssize_t n;

		if (np->tc && (rc = np_flush(np)) < 0) {
			snprintf(why, sizeof(why), "%s", strerror(-rc));
			np_finish(np, rc, why, now_ms);
			return;
		}
		n = np->tc ? tcp_read(np->tc, buf, sizeof(buf)) : 0;
		if (n < 0) {
			snprintf(why, sizeof(why), "%s", strerror((int)-n));
			np_finish(np, (int)n, why, now_ms);
			return;
		}
		if (n == 0)
			break;
		np->deadline_ms = now_ms + np->pool->cfg->connect_timeout * 1000ull;
		rc = be_probe_input(&np->pr, buf, (size_t)n, why, sizeof(why));
		if (rc < 0) {
			np_finish(np, rc, why, now_ms);
			return;
		}
		if (rc == 1) {
			np_flush(np);                    /* the QUIT */
			np_finish(np, 0, "", now_ms);
			return;
		}
	}
	if (!np->tc || tcp_eof(np->tc)) {
		rc = np->closed && np->err ? -np->err : -ECONNRESET;
		snprintf(why, sizeof(why), "%s", rc == -ECONNRESET && !np->closed ?
			 "closed the connection" : strerror(-rc));
		np_finish(np, rc, why, now_ms);
	} else if (now_ms >= np->deadline_ms) {
		np_finish(np, -ETIMEDOUT, "timed out", now_ms);
	}
}

unsigned nat_probe_poll(struct core *c, uint64_t now_ms)
{
	unsigned i, k = 0, work = 0;

	/* Woken probes; timeouts need a look at every busy one, which is
	 * cheap (a few servers) but not needed every loop. */
	if (NP.woken || now_ms >= NP.check_ms) {
		NP.woken = false;
		NP.check_ms = now_ms + 50;
		for (i = 0; i < NP.n_pr; i++) {
			struct nprobe *np = &NP.pr[i];

			if (np->busy && (np->woken || now_ms >= np->deadline_ms)) {
				np_step(np, now_ms);
				work++;
			}
		}
	}
	for (i = 0; i < NP.n_pools; i++) {
		struct be_pool *p = &NP.pools[i];
		unsigned j;

		if (now_ms >= NP.next_ms[i]) {
			/* A server whose last probe is still under way keeps it. */
			for (j = 0; j < p->n; j++)
				if (!NP.pr[k + j].busy) {
					np_start(c, &NP.pr[k + j], !NP.probed[i], now_ms);
					work++;
				}
			NP.probed[i] = true;
			NP.next_ms[i] = now_ms + p->cfg->health_interval * 1000ull;
		}
		k += p->n;
	}
	return work;
}

void nat_probe_stop(void)
{
	for (unsigned i = 0; NP.pr && i < NP.n_pr; i++) {
		np_release(&NP.pr[i]);
		be_probe_end(&NP.pr[i].pr);
	}
	free(NP.pr);
	free(NP.next_ms);
	free(NP.probed);
	memset(&NP, 0, sizeof(NP));
}
