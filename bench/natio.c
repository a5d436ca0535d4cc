/*
 * natio: DPDK under the bench tools' native transport (natio.h). One EAL
 * lcore, one port with one RX/TX queue pair or more (all polled, TX on the
 * first), one net stack per local IPv4
 * address. Modelled on dataplane/io/dpdk.c (frames copied into mbufs by the
 * stack's tx callback, sent in bursts, a pass's busy or idle TSC counted),
 * without its cores, rings and RSS: a bench process is one thread. A
 * net_memif port's bursts run inside the interrupt gate (slot 0): the
 * peer's disconnect unmaps the rings in the EAL's interrupt thread
 * (dataplane/io/intr_gate.h).
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Before DPDK: <netinet/ip6.h> (through rte_ip.h) defines ip6_plen as a
 * macro, and net.h has a field of that name. */
#include "flatdir.h"
#include "natio.h"
#include "io/intr_gate.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#define NATIO_BURST 32
#define NATIO_TXQ 2048             /* frames held while the port's ring is full */
#define NATIO_DESC 1024

struct natio {
	struct natio_config cfg;
	uint16_t port;
	bool eal_up, started;
	bool gated;                        /* bursts inside the interrupt gate */
	struct rte_mempool *pool;
	uint32_t base4;                    /* the first local address, host order */
	struct net_stack *st[NATIO_MAX_ADDRS];
	unsigned n_st;
	struct rte_mbuf *tx[NATIO_TXQ];    /* frames queued by natio_tx, oldest first */
	unsigned n_tx;
	uint64_t pass_tsc, pass_tx;        /* the pass under way: its start, tx_frames then */
	unsigned pass_rx, idle;
	struct natio_stats s;
	char runtime_dir[PATH_MAX];
};

uint64_t natio_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- frames out ----------------------------------------------------------- */

/* Send what is queued, in bursts, while the port takes it. What it does
 * not take waits for the next pass (a memif ring is full until the peer
 * polls): a burst of SYNs or of a window's segments is not lost to it. */
static void natio_burst(struct natio *n)
{
	unsigned done = 0;

	while (done < n->n_tx) {
		uint16_t want = (uint16_t)RTE_MIN(n->n_tx - done, (unsigned)NATIO_BURST);
		uint16_t sent;

		if (n->gated)
			intr_gate_enter(0);
		sent = rte_eth_tx_burst(n->port, 0, n->tx + done, want);
		if (n->gated)
			intr_gate_leave(0);
		done += sent;
		n->s.tx_frames += sent;
		if (sent < want)
			break;
	}
	if (done && done < n->n_tx)
		memmove(n->tx, n->tx + done, (n->n_tx - done) * sizeof(n->tx[0]));
	n->n_tx -= done;
}

/* net_config.tx: copy the frame into an mbuf of the batch. */
static void natio_tx(void *ctx, const uint8_t *frame, uint32_t len)
{
	struct natio *n = ctx;
	struct rte_mbuf *m = rte_pktmbuf_alloc(n->pool);
	char *p;

	if (!m) {
		n->s.tx_nombuf++;      /* TCP sends it again */
		return;
	}
	if (len > UINT16_MAX || !(p = rte_pktmbuf_append(m, (uint16_t)len))) {
		rte_pktmbuf_free(m);
		n->s.tx_drops++;
		return;
	}
	memcpy(p, frame, len);
	if (n->n_tx >= NATIO_BURST)
		natio_burst(n);
	if (n->n_tx == NATIO_TXQ) {    /* the peer is not polling: TCP sends it again */
		rte_pktmbuf_free(m);
		n->s.tx_drops++;
		return;
	}
	n->s.tx_bytes += len;
	n->tx[n->n_tx++] = m;
}

void natio_flush(struct natio *n)
{
	natio_burst(n);
}

/* ---- frames in ------------------------------------------------------------ */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The stack a frame is for: by its IPv4 destination, or an ARP message's
 * target; NULL for none of ours. */
static struct net_stack *natio_dest(struct natio *n, const uint8_t *f, uint32_t len)
{
	uint16_t type;
	uint32_t a;

	if (n->n_st == 1)
		return n->st[0];
	if (len < 14)
		return NULL;
	type = (uint16_t)(f[12] << 8 | f[13]);
	if (type == 0x0800 && len >= 34)
		a = be32(f + 30);
	else if (type == 0x0806 && len >= 42)
		a = be32(f + 38);                  /* RFC 826: target protocol address */
	else
		return n->st[0];
	a -= n->base4;
	return a < n->n_st ? n->st[a] : NULL;
}

/* Start of a pass: the previous one was busy if frames went in or out. */
static void natio_pass(struct natio *n)
{
	uint64_t t = rte_rdtsc();

	if (n->pass_tsc) {
		if (n->pass_rx || n->s.tx_frames + n->n_tx != n->pass_tx)
			n->s.busy_cycles += t - n->pass_tsc;
		else
			n->s.idle_cycles += t - n->pass_tsc;
	}
	n->s.passes++;
	n->pass_tsc = t;
	n->pass_tx = n->s.tx_frames + n->n_tx;
}

unsigned natio_poll(struct natio *n)
{
	struct rte_mbuf *pkts[NATIO_BURST];
	unsigned i, k, total = 0;
	uint64_t now;
	uint16_t got;

	natio_pass(n);
	now = natio_now_us();
	for (uint16_t q = 0; q < n->cfg.queues; q++) {
		if (n->gated)
			intr_gate_enter(0);
		got = rte_eth_rx_burst(n->port, q, pkts, NATIO_BURST);
		if (n->gated)
			intr_gate_leave(0);
		for (k = 0; k < got; k++) {
			struct rte_mbuf *m = pkts[k];
			uint32_t len = rte_pktmbuf_pkt_len(m);
			const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
			struct net_stack *st;

			n->s.rx_frames++;
			n->s.rx_bytes += len;
			/* one segment: the pool's mbufs hold a whole frame */
			if (m->nb_segs == 1 && (st = natio_dest(n, f, len)))
				net_input(st, f, len, now);
			else
				n->s.rx_unknown++;
			rte_pktmbuf_free(m);
		}
		total += got;
	}
	for (i = 0; i < n->n_st; i++)
		net_poll(n->st[i], now);
	natio_burst(n);
	n->pass_rx = total;
	return total;
}

void natio_idle(struct natio *n, unsigned work)
{
	struct timespec ts;

	if (work || n->s.tx_frames + n->n_tx != n->pass_tx) {
		n->idle = 0;
		return;
	}
	if (++n->idle < n->cfg.idle_polls)
		return;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)n->cfg.idle_pause_us * 1000;
	nanosleep(&ts, NULL);
	n->s.pauses++;
}

int natio_resolve(struct natio *n, const uint8_t peer4[4], unsigned max_ms)
{
	static const struct tcp_ops none;
	struct tcp_connect_req req = { .rport = 9, .ops = &none };
	uint64_t end = natio_now_us() + (uint64_t)max_ms * 1000;
	unsigned i, left;

	req.raddr.family = NET_AF4;
	memcpy(req.raddr.a, peer4, 4);
	for (i = 0; i < n->n_st; i++) {
		struct tcp_conn *c;

		if (net_counters(n->st[i])[NET_C_arp_reply_rx] == 0 &&
		    tcp_connect(n->st[i], &req, &c) == 0)
			tcp_abort(c);
	}
	do {
		natio_idle(n, natio_poll(n));
		for (i = left = 0; i < n->n_st; i++)
			left += net_counters(n->st[i])[NET_C_arp_reply_rx] == 0;
		if (!left)
			return 0;
	} while (natio_now_us() < end);
	return -ETIMEDOUT;
}

void natio_drain(struct natio *n, unsigned max_ms)
{
	uint64_t end = natio_now_us() + (uint64_t)max_ms * 1000;

	while (natio_now_us() < end) {
		struct net_conn_stats cs;
		unsigned i, open = 0;

		for (i = 0; i < n->n_st; i++) {
			net_conn_stats(n->st[i], &cs);
			open += cs.conns;
		}
		if (!open)
			return;
		natio_idle(n, natio_poll(n));
	}
}

void natio_stats(const struct natio *n, struct natio_stats *out)
{
	*out = n->s;
	out->tsc_hz = rte_get_tsc_hz();
	for (unsigned i = 0; i < n->n_st; i++) {
		const uint64_t *c = net_counters(n->st[i]);

		out->tcp_rto += c[NET_C_tcp_rto];
		out->tcp_retrans_segs += c[NET_C_tcp_retrans_segs];
	}
}

unsigned natio_n_stacks(const struct natio *n)
{
	return n->n_st;
}

struct net_stack *natio_stack(struct natio *n, unsigned i)
{
	return i < n->n_st ? n->st[i] : NULL;
}

/* ---- start-up ------------------------------------------------------------- */

/* The EAL's argv: one lcore, no hugepages, no PCI scan, the shared config
 * kept (memif registers a multi-process action at probe time, which
 * --no-shconf turns into an error) under a prefix of our own. */
static int natio_eal(struct natio *n, char *err, size_t errlen)
{
	char lcore[16], prefix[64], mem[16], vdev[512];
	char *argv[16];
	int argc = 0, cpu = n->cfg.cpu, rc;
	cpu_set_t aff;

	if (cpu < 0) {
		if (sched_getaffinity(0, sizeof(aff), &aff) < 0)
			return -errno;
		for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &aff); cpu++)
			;
	}
	snprintf(lcore, sizeof(lcore), "%d", cpu);
	snprintf(prefix, sizeof(prefix), "--file-prefix=%s%ld", n->cfg.prog, (long)getpid());
	snprintf(mem, sizeof(mem), "%u", 64 + n->cfg.mbufs / 256);
	/* net_memif takes its MAC only as a device argument (see natio_port) */
	if (!strncmp(n->cfg.device, "net_memif", 9) && !strstr(n->cfg.device, "mac="))
		snprintf(vdev, sizeof(vdev), "%s,mac=02:00:%02x:%02x:%02x:%02x", n->cfg.device,
			 n->cfg.ip4[0], n->cfg.ip4[1], n->cfg.ip4[2], n->cfg.ip4[3]);
	else
		snprintf(vdev, sizeof(vdev), "%s", n->cfg.device);
	argv[argc++] = (char *)n->cfg.prog;
	argv[argc++] = "-l";
	argv[argc++] = lcore;
	argv[argc++] = "--no-telemetry";
	argv[argc++] = "--no-huge";
	argv[argc++] = "--no-pci";
	argv[argc++] = prefix;
	argv[argc++] = "-m";
	argv[argc++] = mem;
	argv[argc++] = "--log-level=lib.eal:error";
	argv[argc++] = "--vdev";
	argv[argc++] = vdev;
	argv[argc] = NULL;
	rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		snprintf(err, errlen, "DPDK did not start (%s): %s", n->cfg.device,
			 rte_strerror(rte_errno));
		return -EINVAL;
	}
	n->eal_up = true;
	snprintf(n->runtime_dir, sizeof(n->runtime_dir), "%s", rte_eal_get_runtime_dir());
	return 0;
}

/* A memif port is up once its peer connected: frames sent before are
 * lost (and the first SYN waits out a whole RTO). Wait for it at start. */
static int natio_link_wait(struct natio *n, const char *name, char *err, size_t errlen)
{
	uint64_t end = natio_now_us() + (uint64_t)n->cfg.link_wait_ms * 1000;
	struct rte_eth_link link;

	for (;;) {
		if (rte_eth_link_get_nowait(n->port, &link) == 0 && link.link_status)
			return 0;
		if (natio_now_us() > end)
			break;
		usleep(10000);
	}
	snprintf(err, errlen, "%s: no link within %u ms (is the peer there?)", name,
		 n->cfg.link_wait_ms);
	return -ETIMEDOUT;
}

/* The port: its queue pairs, a pool of whole-frame mbufs, started. */
static int natio_port(struct natio *n, uint8_t mac[6], char *err, size_t errlen)
{
	char name[RTE_DEV_NAME_MAX_LEN];
	struct rte_eth_conf conf;
	struct rte_ether_addr ea;
	uint16_t rxd = NATIO_DESC, txd = NATIO_DESC;
	const char *comma = strchr(n->cfg.device, ',');
	int rc;

	snprintf(name, sizeof(name), "%.*s",
		 comma ? (int)(comma - n->cfg.device) : (int)strlen(n->cfg.device), n->cfg.device);
	if (rte_eth_dev_get_port_by_name(name, &n->port) < 0) {
		snprintf(err, errlen, "DPDK has no port '%s'", name);
		return -ENODEV;
	}
	n->pool = rte_pktmbuf_pool_create("natio", n->cfg.mbufs, 256, 0,
					  RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (!n->pool) {
		snprintf(err, errlen, "cannot make %u mbufs: %s", n->cfg.mbufs,
			 rte_strerror(rte_errno));
		return -ENOMEM;
	}
	if (!strncmp(name, "net_memif", 9)) {
		if ((rc = intr_gate_init(1)) < 0) {
			snprintf(err, errlen, "%s: cannot set up the interrupt gate: %s", name,
				 strerror(-rc));
			return rc;
		}
		n->gated = true;
	}
	memset(&conf, 0, sizeof(conf));
	if ((rc = rte_eth_dev_configure(n->port, n->cfg.queues, n->cfg.queues, &conf)) < 0 ||
	    (rc = rte_eth_dev_adjust_nb_rx_tx_desc(n->port, &rxd, &txd)) < 0)
		goto fail;
	for (uint16_t q = 0; q < n->cfg.queues; q++)
		if ((rc = rte_eth_rx_queue_setup(n->port, q, rxd, SOCKET_ID_ANY, NULL,
						 n->pool)) < 0 ||
		    (rc = rte_eth_tx_queue_setup(n->port, q, txd, SOCKET_ID_ANY, NULL)) < 0)
			goto fail;
	/* The same MAC every run (locally administered, from the first
	 * address): a peer's neighbour entry from the last run stays right,
	 * where a new random one would be a stale entry it keeps probing. */
	ea.addr_bytes[0] = 0x02;
	ea.addr_bytes[1] = 0x00;
	memcpy(ea.addr_bytes + 2, n->cfg.ip4, 4);
	rte_eth_dev_default_mac_addr_set(n->port, &ea);   /* memif: its mac= devarg */
	if ((rc = rte_eth_macaddr_get(n->port, &ea)) < 0 ||
	    (rc = rte_eth_dev_start(n->port)) < 0) {
		goto fail;
	}
	n->started = true;
	memcpy(mac, ea.addr_bytes, 6);

	return natio_link_wait(n, name, err, errlen);
fail:
	snprintf(err, errlen, "cannot set up %s: %s", name, rte_strerror(-rc));
	return rc;
}

struct natio *natio_open(const struct natio_config *cfg, char *err, size_t errlen)
{
	struct natio *n = calloc(1, sizeof(*n));
	struct net_config nc;
	uint64_t now = natio_now_us();
	unsigned i;

	if (!n) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n->cfg = *cfg;
	if (!n->cfg.prog)
		n->cfg.prog = "natio";
	if (!n->cfg.mbufs)
		n->cfg.mbufs = 8191;
	if (!n->cfg.idle_polls)
		n->cfg.idle_polls = 64;
	if (!n->cfg.idle_pause_us)
		n->cfg.idle_pause_us = 50;
	if (!n->cfg.n_addrs)
		n->cfg.n_addrs = 1;
	if (!n->cfg.link_wait_ms)
		n->cfg.link_wait_ms = 10000;
	if (!n->cfg.queues)
		n->cfg.queues = 1;
	if (n->cfg.n_addrs > NATIO_MAX_ADDRS || !cfg->device || cfg->plen > 32) {
		snprintf(err, errlen, "bad native configuration (at most %u addresses)",
			 NATIO_MAX_ADDRS);
		goto fail;
	}
	memset(&nc, 0, sizeof(nc));
	if (natio_eal(n, err, errlen) < 0 || natio_port(n, nc.mac, err, errlen) < 0)
		goto fail;
	nc.has_ip4 = true;
	nc.ip4_plen = cfg->plen;
	memcpy(nc.ip4_gw, cfg->gw4, 4);
	nc.tx = natio_tx;
	nc.tx_ctx = n;
	nc.tcp = cfg->tcp;
	n->base4 = be32(cfg->ip4);
	for (i = 0; i < n->cfg.n_addrs; i++) {
		uint32_t a = n->base4 + i;

		nc.ip4[0] = (uint8_t)(a >> 24);
		nc.ip4[1] = (uint8_t)(a >> 16);
		nc.ip4[2] = (uint8_t)(a >> 8);
		nc.ip4[3] = (uint8_t)a;
		if (getrandom(nc.secret, sizeof(nc.secret), 0) != sizeof(nc.secret) ||
		    !(n->st[i] = net_stack_new(&nc, now))) {
			snprintf(err, errlen, "cannot make the stack of %u.%u.%u.%u: %s", nc.ip4[0],
				 nc.ip4[1], nc.ip4[2], nc.ip4[3], strerror(errno));
			goto fail;
		}
		n->n_st++;
	}
	return n;
fail:
	natio_close(n);
	return NULL;
}

void natio_close(struct natio *n)
{
	unsigned i;

	if (!n)
		return;
	if (n->started) {
		natio_burst(n);
		rte_pktmbuf_free_bulk(n->tx, n->n_tx);
		n->n_tx = 0;
		rte_eth_dev_stop(n->port);
		rte_eth_dev_close(n->port);
	}
	if (n->gated)
		intr_gate_fini();
	for (i = 0; i < n->n_st; i++)
		net_stack_free(n->st[i]);
	rte_mempool_free(n->pool);
	if (n->eal_up) {
		rte_eal_cleanup();
		if (n->runtime_dir[0])
			flatdir_remove(n->runtime_dir);
	}
	free(n);
}
