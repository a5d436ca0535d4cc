/*
 * The load generator over sluice's own TCP/IP on a DPDK port (natio.h):
 * no kernel on the data path and no descriptor per connection. The stack's
 * callbacks say when a connection may go on; SSL reads and writes the
 * connection's buffers through natio's BIO. Connections take the client
 * addresses in turn (one stack each, its own ephemeral ports), so the run
 * can hold addresses x ports of them.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "natio.h"
#include "lg.h"

static struct lg *G;                    /* callbacks carry the connection only */
static uint64_t last_stdin_us;

static void n_connected(struct tcp_conn *tc, void *ctx)
{
	struct lg_conn *c = ctx;

	c->connecting = false;
	lg_drive(G, c);
}

static void n_data(struct tcp_conn *tc, void *ctx)
{
	struct lg_conn *c = ctx;

	if (c->held) {
		/* parked: only the server's end is of interest */
		if (tcp_peer_closed(tc))
			lg_op_end(G, c, LG_E_closed, "server closed an idle connection");
		return;
	}
	if (!c->connecting)
		lg_drive(G, c);
}

static void n_writable(struct tcp_conn *tc, void *ctx)
{
	struct lg_conn *c = ctx;

	if (!c->held && !c->connecting)
		lg_drive(G, c);
}

/* The handle is gone: SSL must not reach it any more. */
static void n_closed(struct tcp_conn *tc, void *ctx, int err)
{
	struct lg_conn *c = ctx;

	c->tc = NULL;
	if (c->ssl)
		natio_bio_detach(SSL_get_rbio(c->ssl));
	if (c->connecting)
		lg_op_end(G, c, LG_E_connect, strerror(err ? -err : ECONNREFUSED));
	else
		lg_op_end(G, c, LG_E_closed, err ? strerror(-err) : "closed by the server");
}

static const struct tcp_ops n_ops = {
	.connected = n_connected,
	.data = n_data,
	.writable = n_writable,
	.closed = n_closed,
};

/* "a.b.c.d/len" */
static int parse_prefix(const char *s, uint8_t ip[4], uint8_t *plen)
{
	char buf[32];
	const char *slash = strchr(s, '/');
	struct in_addr a;
	long l = slash ? strtol(slash + 1, NULL, 10) : 24;

	snprintf(buf, sizeof(buf), "%.*s", slash ? (int)(slash - s) : (int)strlen(s), s);
	if (!inet_aton(buf, &a) || l < 1 || l > 32)
		return -EINVAL;
	memcpy(ip, &a, 4);
	*plen = (uint8_t)l;
	return 0;
}

static int n_init(struct lg *g)
{
	struct natio_config nc = {
		.device = g->nat_dev, .prog = "loadgen", .cpu = g->nat_cpu,
		.n_addrs = g->nat_addrs ? g->nat_addrs : 1, .queues = g->nat_queues,
	};
	char err[256];

	if (parse_prefix(g->nat_addr ? g->nat_addr : "", nc.ip4, &nc.plen) < 0) {
		fprintf(stderr, "loadgen: --native-addr wants A.B.C.D/LEN\n");
		return -EINVAL;
	}
	/* Small buffers but for bulk: what one connection holds is what a
	 * million idle ones cost. */
	if (g->wl != WL_BULK)
		nc.tcp.sndbuf = nc.tcp.rcvbuf = 64u << 10;
	nc.tcp.max_conns = 1u << 17; /* per address: its ~28,000 ports and TIME_WAIT */
	G = g;
	if (!(g->nat = natio_open(&nc, err, sizeof(err)))) {
		fprintf(stderr, "loadgen: native: %s\n", err);
		return -EIO;
	}
	if (natio_resolve(g->nat, (const uint8_t *)&g->dst.sin_addr, 3000) < 0)
		fprintf(stderr, "loadgen: native: no ARP reply from %s on every address\n",
			inet_ntoa(g->dst.sin_addr));
	return 0;
}

static void n_fini(struct lg *g)
{
	if (g->nat)
		natio_drain(g->nat, 1000);
	natio_close(g->nat);
	g->nat = NULL;
}

/* An active open from the next client address (its stack picks the port). */
static int n_connect(struct lg *g, struct lg_conn *c)
{
	unsigned ns = natio_n_stacks(g->nat), i;
	struct tcp_connect_req req = { .rport = ntohs(g->dst.sin_port), .ops = &n_ops, .ctx = c };
	int rc = -EADDRNOTAVAIL;

	req.raddr.family = NET_AF4;
	memcpy(req.raddr.a, &g->dst.sin_addr, 4);
	/* an address out of ports passes the turn to the next one */
	for (i = 0; i < ns && rc == -EADDRNOTAVAIL; i++)
		rc = tcp_connect(natio_stack(g->nat, g->nat_next++ % ns), &req, &c->tc);
	if (rc < 0)
		return rc;
	tcp_set_nodelay(c->tc, true);
	c->connecting = true;
	return 0;
}

static ssize_t n_send(struct lg_conn *c, const void *p, size_t n)
{
	ssize_t r;

	if (!c->tc)
		return -ENOTCONN;
	r = tcp_send(c->tc, p, n);
	return r == 0 ? -EAGAIN : r;
}

static ssize_t n_recv(struct lg_conn *c, void *p, size_t n)
{
	ssize_t r;

	if (!c->tc)
		return -ECONNRESET;
	r = tcp_read(c->tc, p, n);
	return r == 0 && !tcp_eof(c->tc) ? -EAGAIN : r;
}

/* SSL over the connection's own buffers (the BIO is SSL's from here). */
static int n_ssl_bind(struct lg_conn *c, SSL *ssl)
{
	BIO *b = c->tc ? natio_bio_new(c->tc) : NULL;

	if (!b)
		return 0;
	SSL_set_bio(ssl, b, b);
	return 1;
}

/* Readiness comes from the stack's callbacks: nothing to register. */
static void n_want(struct lg *g, struct lg_conn *c, uint32_t ev)
{
}

/* A FIN after what was sent (a RST if bytes are unread); the stack
 * finishes alone and calls nothing more. Called after SSL_free (which
 * writes nothing: the shutdown flags are set). */
static void n_close(struct lg *g, struct lg_conn *c)
{
	if (c->tc)
		tcp_close(c->tc);
	c->tc = NULL;
}

/* One pass of the port; the idle workload's stdin looked at every ms. */
static int n_wait(struct lg *g, int wait_ms)
{
	unsigned work = natio_poll(g->nat);
	uint64_t now;

	natio_idle(g->nat, work);
	if (g->wl == WL_IDLE && (now = natio_now_us()) - last_stdin_us > 1000) {
		struct pollfd p = { .fd = 0, .events = POLLIN };

		last_stdin_us = now;
		return poll(&p, 1, 0) > 0;
	}
	return 0;
}

static void n_json(const struct lg *g)
{
	struct natio_stats s;
	unsigned long long ops = g->done ? (unsigned long long)g->done : 1;

	natio_stats(g->nat, &s);
	printf(", \"native\": {\"device\": \"%.*s\", \"addresses\": %u, \"tsc_hz\": %llu, "
	       "\"busy_cycles\": %llu, \"idle_cycles\": %llu, \"busy_cycles_per_op\": %.0f, "
	       "\"rx_frames\": %llu, \"tx_frames\": %llu, \"rx_bytes\": %llu, \"tx_bytes\": %llu, "
	       "\"tx_drops\": %llu, \"tx_nombuf\": %llu, \"rx_unknown\": %llu, \"pauses\": %llu, \"tcp_rto\": %llu, "
	       "\"tcp_retrans_segs\": %llu}",
	       (int)strcspn(g->nat_dev, ","), g->nat_dev,
	       natio_n_stacks(g->nat), (unsigned long long)s.tsc_hz,
	       (unsigned long long)s.busy_cycles, (unsigned long long)s.idle_cycles,
	       (double)s.busy_cycles / (double)ops,
	       (unsigned long long)s.rx_frames, (unsigned long long)s.tx_frames,
	       (unsigned long long)s.rx_bytes, (unsigned long long)s.tx_bytes,
	       (unsigned long long)s.tx_drops, (unsigned long long)s.tx_nombuf,
	       (unsigned long long)s.rx_unknown, (unsigned long long)s.pauses,
	       (unsigned long long)s.tcp_rto, (unsigned long long)s.tcp_retrans_segs);
}

const struct lg_io lg_io_native = {
	.name = "native",
	.init = n_init,
	.connect = n_connect,
	.send = n_send,
	.recv = n_recv,
	.ssl_bind = n_ssl_bind,
	.want = n_want,
	.close = n_close,
	.wait = n_wait,
	.json = n_json,
	.fini = n_fini,
	/* thousands of SYNs in one pass would only wait in the port's queue */
	.start_burst = 64,
};
