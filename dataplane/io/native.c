/*
 * The native stack's side of the streams: one struct net_stack per core
 * and port, the listeners on them, accepted connections handed to
 * io_up.accept as native streams (net/tcp_stream.h), connections from the
 * port that reaches the server with a source port that brings the answer
 * back to this core, and the stacks' counters and cycles.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>
#include <time.h>

#include <rte_cycles.h>

#include "clock.h"
#include "config.h"
#include "io/io.h"
#include "io/native.h"
#include "log.h"
#include "net/net.h"
#include "net/tcp_stream.h"

/* A connection reached ESTABLISHED on a listener: the loop's owner takes
 * it (and opens the stream where it will live) or refuses it (a limit):
 * then the refusal line it said through stream_ops.say goes out, and a
 * FIN after it, as on the kernel stack; never a bare RST. */
static int nat_accept(void *lctx, struct tcp_conn *tc)
{
	struct nat_lsn *ls = lctx;
	struct core *c = ls->q->nc->core;
	struct tcp_stream ts;

	/* Accepting paused (the TLS workers' rings nearly full, core.c): the
	 * connection waits in the listener's accept queue, as in a kernel
	 * listen queue, until nat_accept_queued() offers it again. */
	if (c->accept_after_ms > c->now_ms)
		return -EAGAIN;
	tcp_stream_take(&ts, tc, SK_CLIENT);
	if (io_up.accept(c, ls->idx, &ts.s) < 0)
		tcp_stream_drop(&ts);
	return 0;
}

unsigned nat_accept_queued(struct nat_core *nc)
{
	struct core *c = nc->core;
	unsigned work = 0;

	if (c->accept_after_ms > c->now_ms)
		return 0;
	for (unsigned i = 0; i < nc->n_pq; i++)
		for (unsigned k = 0; k < nc->pq[i].n_lsn; k++)
			if (nc->pq[i].lsn[k].tl)
				work += tcp_accept_queued(nc->pq[i].lsn[k].tl);
	return work;
}

/* Does listener l listen on port pc? Sets *a to the address to bind
 * (the port's, or the family's wildcard). */
static bool nat_listens(const struct cfg_listener *l, const struct cfg_native_port *pc,
			struct net_addr *a)
{
	static const uint8_t zero[16];
	uint16_t port;

	net_from_sockaddr((const struct sockaddr *)&l->addr, a, &port);
	if (a->family == NET_AF4)
		return pc->has_ip4 && (!memcmp(a->a, zero, 4) || !memcmp(a->a, pc->ip4, 4));
	return pc->has_ip6 && (!memcmp(a->a, zero, 16) || !memcmp(a->a, pc->ip6, 16));
}

int nat_stacks_init(struct nat_core *nc, const struct cfg *c, char *err, size_t errlen)
{
	uint64_t t = clock_mono_us();

	for (unsigned i = 0; i < nc->n_pq; i++) {
		struct nat_pq *q = &nc->pq[i];
		const struct cfg_native_port *pc = q->port->cfg;
		struct net_neigh nb[NET_MAX_STATIC_NEIGH];
		struct net_config nf;
		unsigned k, nn = 0;
		int rc;

		memset(&nf, 0, sizeof(nf));
		memcpy(nf.mac, q->port->mac, 6);
		nf.mtu = pc->mtu;
		nf.has_ip4 = pc->has_ip4;
		memcpy(nf.ip4, pc->ip4, 4);
		if (pc->has_gw4)
			memcpy(nf.ip4_gw, pc->gw4, 4);
		nf.ip4_plen = (uint8_t)pc->ip4_prefix;
		nf.has_ip6 = pc->has_ip6;
		memcpy(nf.ip6, pc->ip6, 16);
		if (pc->has_gw6)
			memcpy(nf.ip6_gw, pc->gw6, 16);
		nf.ip6_plen = (uint8_t)pc->ip6_prefix;
		if (getrandom(nf.secret, sizeof(nf.secret), 0) != sizeof(nf.secret))
			return -EIO;
		nf.tx = nat_tx;
		nf.tx_ctx = q;
		nf.cycles = nat_cycles;
		nf.tcp.cc = c->native->cc == CFG_CC_NEWRENO ? NET_CC_NEWRENO : NET_CC_CUBIC;
		nf.tcp.max_conns = c->native->max_conns;
		nf.tcp.syn_backlog = c->native->syn_backlog;
		/* the static neighbours of the families this port has */
		for (k = 0; k < c->native->n_neighbours && nn < NET_MAX_STATIC_NEIGH; k++) {
			const struct cfg_native_neigh *cn = &c->native->neighbours[k];

			if (cn->v6 ? !pc->has_ip6 : !pc->has_ip4)
				continue;
			memset(&nb[nn], 0, sizeof(nb[nn]));
			nb[nn].addr.family = cn->v6 ? NET_AF6 : NET_AF4;
			memcpy(nb[nn].addr.a, cn->addr, cn->v6 ? 16 : 4);
			memcpy(nb[nn].mac, cn->mac_addr, 6);
			nn++;
		}
		nf.neigh = nb;
		nf.n_neigh = nn;
		q->st = net_stack_new(&nf, t);
		if (!q->st) {
			snprintf(err, errlen, "%s:%u: native.ports[%u]: the stack refuses this "
				 "port's settings: %s", c->path, pc->line, i, strerror(errno));
			return -EINVAL;
		}
		q->lsn = calloc(c->n_listeners ? c->n_listeners : 1, sizeof(*q->lsn));
		if (!q->lsn)
			return -ENOMEM;
		for (k = 0; k < c->n_listeners; k++) {
			const struct cfg_listener *l = &c->listeners[k];
			struct nat_lsn *ls = &q->lsn[q->n_lsn];
			struct net_addr a;
			uint16_t port = 0;

			if (!nat_listens(l, pc, &a))
				continue;
			net_from_sockaddr((const struct sockaddr *)&l->addr, &a, &port);
			ls->q = q;
			ls->idx = k;
			rc = tcp_listen(q->st, &a, port, nat_accept, ls, &ls->tl);
			if (rc < 0) {
				snprintf(err, errlen, "%s:%u: listeners[%u].address: cannot listen "
					 "on %s natively: %s", c->path, l->line, k, l->address,
					 strerror(-rc));
				return rc;
			}
			q->n_lsn++;
		}
	}
	return 0;
}

/*
 * io_ops.listen: a drain takes the listeners out of the core's stacks
 * (tcp_unlisten: their half-open connections are reset), so that a SYN
 * finds no listener and gets the stack's RST (counted as
 * net_tcp_no_listener); resuming listens again on the same address.
 */
void nat_listen(struct core *c, bool on)
{
	struct nat_core *nc = c->io_core;

	for (unsigned i = 0; i < nc->n_pq; i++) {
		struct nat_pq *q = &nc->pq[i];

		for (unsigned k = 0; k < q->n_lsn; k++) {
			struct nat_lsn *ls = &q->lsn[k];
			const struct cfg_listener *l = &RT.cfg->listeners[ls->idx];
			struct net_addr a;
			uint16_t port = 0;
			int rc;

			if (!on && ls->tl) {
				tcp_unlisten(ls->tl);
				ls->tl = NULL;
			} else if (on && !ls->tl) {
				net_from_sockaddr((const struct sockaddr *)&l->addr, &a, &port);
				if (!nat_listens(l, q->port->cfg, &a))
					continue;
				rc = tcp_listen(q->st, &a, port, nat_accept, ls, &ls->tl);
				if (rc < 0) {
					ls->tl = NULL;
					log_msg(LOG_ERR, "core %u: cannot listen on %s natively again: %s",
						c->id, l->address, strerror(-rc));
				}
			}
		}
	}
}

void nat_stacks_fini(struct nat_core *nc)
{
	for (unsigned i = 0; i < nc->n_pq; i++) {
		struct nat_pq *q = &nc->pq[i];

		if (q->st)
			net_stack_free(q->st);   /* listeners and connections with it */
		q->st = NULL;
		free(q->lsn);
		q->lsn = NULL;
	}
}

/* Do a and b agree on the first plen bits? */
static bool same_net(const uint8_t *a, const uint8_t *b, unsigned plen)
{
	unsigned full = plen / 8, rest = plen % 8;

	if (memcmp(a, b, full))
		return false;
	return !rest || !((a[full] ^ b[full]) & (0xff00 >> rest));
}

/* The port that reaches a: on-link first, then one with a gateway. */
static struct nat_pq *nat_route(struct nat_core *nc, const struct net_addr *a)
{
	bool v4 = a->family == NET_AF4;

	for (unsigned i = 0; i < nc->n_pq; i++) {
		const struct cfg_native_port *pc = nc->pq[i].port->cfg;

		if (v4 ? pc->has_ip4 && same_net(a->a, pc->ip4, pc->ip4_prefix)
		       : pc->has_ip6 && same_net(a->a, pc->ip6, pc->ip6_prefix))
			return &nc->pq[i];
	}
	for (unsigned i = 0; i < nc->n_pq; i++) {
		const struct cfg_native_port *pc = nc->pq[i].port->cfg;

		if (v4 ? pc->has_gw4 : pc->has_gw6)
			return &nc->pq[i];
	}
	return NULL;
}

/* tcp_connect_req.port_ok: the answer to this source port comes back here. */
static bool nat_port_ok(void *arg, const struct net_addr *laddr, uint16_t lport,
			const struct net_addr *raddr, uint16_t rport)
{
	const struct nat_pq *q = arg;

	return nat_flow_owner(q->port, raddr, rport, laddr, lport) == q->nc->core->id;
}

/* A tcp_connect_req to addr from the port that reaches it, with a source
 * port whose answers come back to core c; returns that port's state on
 * core c (q->st is the stack to connect on), or NULL with errno set. */
static struct nat_pq *nat_connect_req(struct core *c, const struct sockaddr *addr,
				      struct tcp_connect_req *req)
{
	struct nat_pq *q;

	memset(req, 0, sizeof(*req));
	if (!net_from_sockaddr(addr, &req->raddr, &req->rport)) {
		errno = EAFNOSUPPORT;
		return NULL;
	}
	if (!(q = nat_route(c->io_core, &req->raddr))) {
		errno = ENETUNREACH;
		return NULL;
	}
	req->port_ok = nat_port_ok;
	req->port_arg = q;
	return q;
}

int nat_stream_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
		       socklen_t len)
{
	struct tcp_stream *ts = (struct tcp_stream *)s;
	struct tcp_connect_req req;
	struct nat_pq *q;
	stream_wake_fn wake = s->wake;
	void *owner = s->owner, *arg = s->wake_arg;
	int rc;

	(void)len;
	if (!(q = nat_connect_req(c, addr, &req)))
		return -errno;
	rc = tcp_stream_connect(q->st, ts, &req, owner, wake, arg);
	if (rc < 0)
		s->kind = SK_DEAD;
	return rc;
}

#define OUT(...)                                                               \
	do {                                                                   \
		if (o < len)                                                   \
			o += (size_t)snprintf(line + o, len - o, __VA_ARGS__); \
	} while (0)

bool nat_net_counters(uint64_t *v, unsigned n)
{
	for (unsigned k = 0; k < RT.n_cores; k++) {
		const struct nat_core *nc = RT.cores[k].io_core;

		for (unsigned i = 0; nc && i < nc->n_pq; i++) {
			const uint64_t *c = net_counters(nc->pq[i].st);

			for (unsigned j = 0; j < n && j < NET_C__COUNT; j++)
				v[j] += c[j];
		}
	}
	return true;
}

size_t nat_report(char *line, size_t len, size_t o)
{
	uint64_t net[NET_C__COUNT] = { 0 };
	struct net_cycle_stats cs, tot = { 0 };
	struct net_conn_stats ncs;
	uint64_t rx = 0, tx = 0, txd = 0, nomb = 0, sout = 0, sdrop = 0, pauses = 0;
	uint64_t busy = 0, idle = 0, drv = 0, rxb = 0, txb = 0, conns = 0, bufb = 0;
	unsigned k, i, n;

	for (k = 0; k < RT.n_cores; k++) {
		const struct nat_core *nc = RT.cores[k].io_core;

		if (!nc)
			continue;
		for (i = 0; i < nc->n_pq; i++) {
			const struct nat_pq *q = &nc->pq[i];
			const uint64_t *v = net_counters(q->st);

			for (n = 0; n < NET_C__COUNT; n++)
				net[n] += v[n];
			net_cycle_stats(q->st, &cs);
			net_conn_stats(q->st, &ncs);
			conns += ncs.conns;
			bufb += ncs.buf_bytes;
			tot.rx_frames += cs.rx_frames;
			tot.rx_cycles += cs.rx_cycles;
			tot.polls += cs.polls;
			tot.poll_cycles += cs.poll_cycles;
			tot.api_calls += cs.api_calls;
			tot.api_cycles += cs.api_cycles;
			rx += q->rx_frames;
			rxb += q->rx_bytes;
			tx += q->tx_frames;
			txb += q->tx_bytes;
			txd += q->tx_drops;
			nomb += q->tx_nombuf;
		}
		sout += nc->spread_out;
		sdrop += nc->spread_drops;
		pauses += nc->pauses;
		busy += nc->busy_cycles;
		idle += nc->idle_cycles;
		drv += nc->drv_cycles;
	}
	for (n = 0; n < NET_C__COUNT; n++)
		if (net[n])
			OUT(" net_%s=%llu", net_counter_names[n], (unsigned long long)net[n]);
	/* Gauges: connections held and the memory of their TCP buffers (an
	 * idle connection holds none: net/tcp_buf.c). */
	OUT(" nat_conns=%llu nat_buf_bytes=%llu", (unsigned long long)conns, (unsigned long long)bufb);
	OUT(" nat_rx_frames=%llu nat_rx_bytes=%llu nat_tx_frames=%llu nat_tx_bytes=%llu "
	    "nat_tx_drops=%llu nat_tx_nombuf=%llu nat_spread_out=%llu nat_spread_drops=%llu "
	    "nat_pauses=%llu",
	    (unsigned long long)rx, (unsigned long long)rxb, (unsigned long long)tx,
	    (unsigned long long)txb, (unsigned long long)txd, (unsigned long long)nomb,
	    (unsigned long long)sout, (unsigned long long)sdrop, (unsigned long long)pauses);
	/* Per core: what it served, so that the spread over cores shows. */
	for (k = 0; k < RT.n_cores; k++) {
		const struct core *c = &RT.cores[k];
		const struct nat_core *nc = c->io_core;
		uint64_t crx = 0;

		if (!nc)
			continue;
		for (i = 0; i < nc->n_pq; i++)
			crx += nc->pq[i].rx_frames;
		OUT(" nat_core%u_conns=%llu nat_core%u_backend_opens=%llu nat_core%u_frames=%llu "
		    "nat_core%u_spread_in=%llu", k,
		    (unsigned long long)ctr_sum(c, CTR_conn_accepted), k,
		    (unsigned long long)ctr_sum(c, CTR_backend_connect_ok), k,
		    (unsigned long long)crx, k, (unsigned long long)nc->spread_in);
	}
	/* Busy cycles over work done (DESIGN.md §10): per frame, per timer run,
	 * per API call, and the share of loop time that found work. */
	OUT(" nat_cycles_per_frame=%llu nat_cycles_per_poll=%llu nat_cycles_per_call=%llu "
	    "nat_busy_permille=%llu",
	    (unsigned long long)(tot.rx_frames ? tot.rx_cycles / tot.rx_frames : 0),
	    (unsigned long long)(tot.polls ? tot.poll_cycles / tot.polls : 0),
	    (unsigned long long)(tot.api_calls ? tot.api_cycles / tot.api_calls : 0),
	    (unsigned long long)(busy + idle ? busy * 1000 / (busy + idle) : 0));
	/* The raw sums too, and the TSC's rate: a reader that takes two
	 * reports gets the busy cycles between them (the bench's cycles per
	 * operation); pauses count in neither sum. */
	OUT(" nat_busy_cycles=%llu nat_idle_cycles=%llu nat_tsc_hz=%llu",
	    (unsigned long long)busy, (unsigned long long)idle,
	    (unsigned long long)rte_get_tsc_hz());
	/* The packet path's sums, outside TLS and the session: the stacks'
	 * input, timers and API calls (tcp_send's segments and their copies
	 * into mbufs, tcp_read's copies out), and the driver's bursts and
	 * frees (io/dpdk.c). Over frames both ways: the stack's cycles per
	 * packet. */
	OUT(" nat_stack_rx_cycles=%llu nat_stack_poll_cycles=%llu nat_stack_api_cycles=%llu "
	    "nat_stack_api_calls=%llu nat_drv_cycles=%llu",
	    (unsigned long long)tot.rx_cycles, (unsigned long long)tot.poll_cycles,
	    (unsigned long long)tot.api_cycles, (unsigned long long)tot.api_calls,
	    (unsigned long long)drv);
	return o < len ? o : len - 1;
}
