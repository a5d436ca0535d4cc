/*
 * DPDK under the native stack: the EAL from the configuration, one mempool
 * and one RX/TX queue pair per core on each port, and the stack's side of
 * the core loop (nat_io_ops: rx burst -> net_input; net_poll and tx burst;
 * the idle pause). Everything that can fail is done in nat_init(), before a
 * core runs; the loop itself only counts what goes wrong (DPDK
 * examples/l3fwd).
 *
 * Flows and cores. A TCP flow belongs to one core: its stack holds the
 * connection. Where the NIC does RSS and lets us program the key and the
 * redirection table, queue i is core i and the flow arrives where it
 * belongs. Elsewhere (net_tap, single-queue ports) each core hashes the
 * TCP frames it receives (nat_soft_hash) and hands the others' over a ring.
 * Backend connections choose a source port whose hash, RSS or software,
 * brings the answer back to the connecting core (io/native.c). ARP, NDP
 * and the ICMP errors TCP uses go to every core: each stack keeps its own
 * neighbour table.
 *
 * A net_memif port's bursts run inside the core's slot of the interrupt
 * gate (io/intr_gate.h): the driver unmaps a departed peer's rings in the
 * EAL's interrupt thread, which the gate keeps out of the bursts.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Before DPDK: <netinet/ip6.h> (through rte_ip.h) defines ip6_plen as a
 * macro, and net.h has a field of that name. */
#include "net/net.h"

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_thash.h>

#include "clock.h"
#include "config.h"
#include "flatdir.h"
#include "io/intr_gate.h"
#include "io/io.h"
#include "io/native.h"
#include "log.h"

#define NAT_RX_DESC 1024
#define NAT_TX_DESC 1024
#define NAT_RING 4096
#define NAT_EAL_ARGS 64

/* What nat_init() built; read-only while the cores run. */
static struct {
	const struct cfg_native *cfg;
	struct nat_port port[NAT_PORTS_MAX];
	unsigned n_ports;
	uint8_t pidx[RTE_MAX_ETHPORTS];  /* DPDK port id -> index in port[] */
	struct nat_core **cores;
	unsigned n_cores;
	uint32_t seed;                   /* keys the software spread */
	bool eal_up, started[NAT_PORTS_MAX];
	bool gate;                       /* io/intr_gate.h is up (a net_memif port) */
} N;

uint64_t nat_cycles(void *ctx)
{
	(void)ctx;
	return rte_rdtsc();
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- which core owns a flow ---------------------------------------------- */

/* The software spread's hash of a flow as received (src = the peer). */
static uint32_t nat_soft_hash(unsigned words, const uint8_t *src, const uint8_t *dst,
			      uint16_t sport, uint16_t dport)
{
	uint32_t h = N.seed ^ ((uint32_t)sport << 16 | dport);

	for (unsigned i = 0; i < words; i++) {
		h = (h ^ be32(src + 4 * i)) * 0x9e3779b1u;
		h ^= h >> 15;
		h = (h ^ be32(dst + 4 * i)) * 0x85ebca6bu;
		h ^= h >> 13;
	}
	h *= 0xc2b2ae35u;
	return h ^ (h >> 16);
}

/* The NIC's Toeplitz hash of the flow, as it hashes a received frame. */
static uint32_t nat_rss_hash(const struct nat_port *p, unsigned words, const uint8_t *src,
			     const uint8_t *dst, uint16_t sport, uint16_t dport)
{
	uint32_t t[9];
	unsigned i;

	for (i = 0; i < words; i++) {
		t[i] = be32(src + 4 * i);
		t[words + i] = be32(dst + 4 * i);
	}
	t[2 * words] = (uint32_t)sport << 16 | dport;
	return rte_softrss(t, 2 * words + 1, p->rss_key);
}

static unsigned nat_owner(const struct nat_port *p, unsigned words, const uint8_t *src,
			  const uint8_t *dst, uint16_t sport, uint16_t dport)
{
	if (N.n_cores == 1)
		return 0;
	if (p->rss)
		return p->reta[nat_rss_hash(p, words, src, dst, sport, dport) % p->reta_size];
	return nat_soft_hash(words, src, dst, sport, dport) % N.n_cores;
}

unsigned nat_flow_owner(const struct nat_port *p, const struct net_addr *raddr, uint16_t rport,
			const struct net_addr *laddr, uint16_t lport)
{
	return nat_owner(p, raddr->family == NET_AF4 ? 1 : 4, raddr->a, laddr->a, rport, lport);
}

#define NAT_LOCAL (-1)   /* this core's stack takes it */
#define NAT_ALL   (-2)   /* every core's stack takes it */

/* Where a received frame goes: NAT_LOCAL, NAT_ALL or a core index. */
static int nat_classify(const struct nat_port *p, const uint8_t *f, uint32_t len)
{
	uint16_t type;
	uint32_t ihl;

	if (len < 14)
		return NAT_LOCAL;
	type = (uint16_t)(f[12] << 8 | f[13]);
	f += 14;
	len -= 14;
	if (type == 0x0806)
		return NAT_ALL;                        /* ARP */
	if (type == 0x0800 && len >= 20) {
		ihl = (f[0] & 15u) * 4;
		if ((f[6] & 0x3f) || f[7])             /* a fragment: no ports */
			return NAT_LOCAL;
		if (f[9] == 6 && len >= ihl + 4)
			return (int)nat_owner(p, 1, f + 12, f + 16,
					      (uint16_t)(f[ihl] << 8 | f[ihl + 1]),
					      (uint16_t)(f[ihl + 2] << 8 | f[ihl + 3]));
		if (f[9] == 1 && len >= ihl + 1 && f[ihl] == 3)
			return NAT_ALL;                /* unreachable, frag needed */
		return NAT_LOCAL;
	}
	if (type == 0x86dd && len >= 44) {
		if (f[6] == 6)
			return (int)nat_owner(p, 4, f + 8, f + 24, (uint16_t)(f[40] << 8 | f[41]),
					      (uint16_t)(f[42] << 8 | f[43]));
		/* NDP (RFC 4861: 133-137), packet too big, unreachable */
		if (f[6] == 58 && (f[40] == 1 || f[40] == 2 || (f[40] >= 133 && f[40] <= 137)))
			return NAT_ALL;
	}
	return NAT_LOCAL;
}

/* ---- frames in and out --------------------------------------------------- */

/* The bursts of a port whose driver the EAL's interrupt thread can pull
 * the rings from under (net_memif: io/intr_gate.h) run inside this core's
 * slot of the gate. */
static uint16_t nat_rx_burst(struct nat_pq *q, struct rte_mbuf **pkts)
{
	uint16_t n;

	if (!q->port->gated)
		return rte_eth_rx_burst(q->port->id, q->rxq, pkts, NAT_BURST);
	intr_gate_enter(q->nc->core->id);
	n = rte_eth_rx_burst(q->port->id, q->rxq, pkts, NAT_BURST);
	intr_gate_leave(q->nc->core->id);
	return n;
}

static uint16_t nat_tx_burst(struct nat_pq *q)
{
	uint16_t n;

	if (!q->port->gated)
		return rte_eth_tx_burst(q->port->id, q->txq, q->tx, q->n_tx);
	intr_gate_enter(q->nc->core->id);
	n = rte_eth_tx_burst(q->port->id, q->txq, q->tx, q->n_tx);
	intr_gate_leave(q->nc->core->id);
	return n;
}

void nat_tx(void *ctx, const uint8_t *frame, uint32_t len)
{
	struct nat_pq *q = ctx;
	struct rte_mbuf *m = rte_pktmbuf_alloc(q->port->pool);
	char *p;

	if (!m) {
		q->tx_nombuf++;        /* TCP sends it again */
		return;
	}
	p = rte_pktmbuf_append(m, (uint16_t)len);
	if (!p || len > UINT16_MAX) {
		rte_pktmbuf_free(m);
		q->tx_drops++;
		return;
	}
	memcpy(p, frame, len);
	q->tx[q->n_tx++] = m;
	q->tx_bytes += len;
	if (q->n_tx == NAT_BURST) {
		uint16_t sent = nat_tx_burst(q);

		q->tx_frames += sent;
		/* What the NIC did not take is still ours to free. */
		if (sent < q->n_tx) {
			q->tx_drops += q->n_tx - sent;
			rte_pktmbuf_free_bulk(&q->tx[sent], q->n_tx - sent);
		}
		q->n_tx = 0;
	}
}

static void nat_flush(struct nat_pq *q)
{
	uint16_t sent;

	if (!q->n_tx)
		return;
	sent = nat_tx_burst(q);
	q->tx_frames += sent;
	if (sent < q->n_tx) {
		q->tx_drops += q->n_tx - sent;
		rte_pktmbuf_free_bulk(&q->tx[sent], q->n_tx - sent);
	}
	q->n_tx = 0;
}

/* This core's stack takes the frame; the mbuf is freed here. */
static void nat_input(struct nat_core *nc, struct rte_mbuf *m, uint64_t now_us)
{
	struct nat_pq *q = &nc->pq[N.pidx[m->port]];
	uint8_t flat[RTE_ETHER_MAX_JUMBO_FRAME_LEN];
	const uint8_t *f;
	uint32_t len = rte_pktmbuf_pkt_len(m);

	if (m->nb_segs == 1)
		f = rte_pktmbuf_mtod(m, const uint8_t *);
	else if (len <= sizeof(flat))
		f = rte_pktmbuf_read(m, 0, len, flat);
	else
		f = NULL;
	q->rx_frames++;
	q->rx_bytes += len;
	if (f)
		net_input(q->st, f, len, now_us);
	rte_pktmbuf_free(m);
}

/* Hand m to core k. On a full ring the reference is still ours: freed. */
static void nat_handover(struct nat_core *nc, unsigned k, struct rte_mbuf *m)
{
	if (rte_ring_mp_enqueue(N.cores[k]->in, m) == 0) {
		nc->spread_out++;
	} else {
		nc->spread_drops++;
		rte_pktmbuf_free(m);
	}
}

/* A frame from this core's RX queue: to its owner, to every core, or here. */
static void nat_rx_one(struct nat_core *nc, struct rte_mbuf *m, uint64_t now_us)
{
	const struct nat_port *p = &N.port[N.pidx[m->port]];
	unsigned me = nc->core->id, k;
	int to;

	if (N.n_cores == 1 || m->nb_segs != 1) {
		nat_input(nc, m, now_us);
		return;
	}
	to = nat_classify(p, rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_pkt_len(m));
	if (to == NAT_ALL) {
		rte_mbuf_refcnt_update(m, (int16_t)(N.n_cores - 1));
		for (k = 0; k < N.n_cores; k++)
			if (k != me)
				nat_handover(nc, k, m);
		nat_input(nc, m, now_us);
	} else if (to >= 0 && (unsigned)to != me && !p->rss) {
		nat_handover(nc, (unsigned)to, m);
	} else {
		nat_input(nc, m, now_us);
	}
}

/* ---- the stack's side of the core loop ----------------------------------- */

/* io_ops.enter: an EAL thread (mbuf caches), pinned where configured. */
static int nat_enter(struct core *c)
{
	const struct cfg_native *cfg = N.cfg;

	if (rte_thread_register() < 0)
		log_msg(LOG_WARNING, "core %u: not an EAL thread (%s): mbuf caches off", c->id,
			rte_strerror(rte_errno));
	if (cfg->n_cpus) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cfg->cpus[c->id], &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
			log_msg(LOG_WARNING, "core %u: cannot pin to CPU %u", c->id,
				cfg->cpus[c->id]);
	}
	return 0;
}

/* The cycles the stacks charged to net_input so far. */
static uint64_t nat_input_cycles(const struct nat_core *nc)
{
	struct net_cycle_stats cs;
	uint64_t sum = 0;

	for (unsigned i = 0; i < nc->n_pq; i++) {
		net_cycle_stats(nc->pq[i].st, &cs);
		sum += cs.rx_cycles;
	}
	return sum;
}

/* io_ops.poll: an RX burst from each port's queue, then the frames other
 * cores handed over. Never waits (nat_idle pauses instead). */
static unsigned nat_poll(struct core *c)
{
	struct nat_core *nc = c->io_core;
	struct rte_mbuf *pkts[NAT_BURST];
	unsigned i, k, n, work = 0;
	uint64_t in0 = nat_input_cycles(nc);

	nc->pass_tsc = rte_rdtsc();
	nc->now_us = clock_mono_us();
	for (i = 0; i < nc->n_pq; i++) {
		struct nat_pq *q = &nc->pq[i];

		if (!q->has_rxq)
			continue;
		n = nat_rx_burst(q, pkts);
		for (k = 0; k < n; k++)
			nat_rx_one(nc, pkts[k], nc->now_us);
		work += n;
	}
	if (nc->in) {
		n = rte_ring_sc_dequeue_burst(nc->in, (void **)pkts, NAT_BURST, NULL);
		for (k = 0; k < n; k++)
			nat_input(nc, pkts[k], nc->now_us);
		nc->spread_in += n;
		work += n;
	}
	if (work) {
		/* The pass's RX work less what net_input charged the stacks;
		 * an empty poll is the idle loop's, not a packet's. */
		nc->drv_cycles += rte_rdtsc() - nc->pass_tsc - (nat_input_cycles(nc) - in0);
	}
	work += nat_accept_queued(nc);
	return work;
}

/* io_ops.flush: the stacks' timers, then the TX bursts. */
static void nat_flush_all(struct core *c)
{
	struct nat_core *nc = c->io_core;
	unsigned i;

	/* The stacks' timers tick in WHEEL_TICK_MS (lib/timer.h): within a
	 * millisecond nothing new is due, and running them every pass cost
	 * about 400 cycles per packet of a handshake (NATIVE.md). What a
	 * frame or an API call does runs at once, not in net_poll. */
	if (nc->now_us / 1000 != nc->poll_ms) {
		nc->poll_ms = nc->now_us / 1000;
		for (i = 0; i < nc->n_pq; i++)
			net_poll(nc->pq[i].st, nc->now_us);
	}
	for (i = 0; i < nc->n_pq; i++)
		if (nc->pq[i].n_tx) {  /* an empty flush is the idle loop's */
			uint64_t t0 = rte_rdtsc();

			nat_flush(&nc->pq[i]);
			nc->drv_cycles += rte_rdtsc() - t0;
		}
}

/* Idle: sleep up to us, or until a TLS worker hands a job back. */
static void nat_pause(struct core *c, unsigned us)
{
	struct pollfd pfd = { .fd = c->wake_fd, .events = POLLIN };
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };
	uint64_t v;

	if (ppoll(&pfd, 1, &ts, NULL) > 0)
		(void)!read(pfd.fd, &v, sizeof(v));
}

/* io_ops.idle: busy and idle cycles of the pass; after idle_polls idle
 * passes in a row (and nothing to run again), a pause. */
static void nat_idle(struct core *c, unsigned work)
{
	struct nat_core *nc = c->io_core;
	const struct cfg_native *cfg = N.cfg;
	uint64_t t1 = rte_rdtsc();

	nc->loops++;
	if (work) {
		nc->idle = 0;
		nc->busy_cycles += t1 - nc->pass_tsc;
		return;
	}
	nc->idle_loops++;
	nc->idle_cycles += t1 - nc->pass_tsc;
	if (++nc->idle >= cfg->idle_polls && cfg->idle_pause_us && !c->again) {
		nat_pause(c, cfg->idle_pause_us);
		nc->pauses++;
	}
}

/* io_ops.leave: the FINs and RSTs of the closes go out. */
static void nat_leave(struct core *c)
{
	struct nat_core *nc = c->io_core;

	for (unsigned i = 0; i < nc->n_pq; i++) {
		net_poll(nc->pq[i].st, clock_mono_us());
		nat_flush(&nc->pq[i]);
	}
	rte_thread_unregister();
}

const struct io_ops nat_io_ops = {
	.name = "native",
	.probes_in_loop = true,
	.enter = nat_enter,
	.poll = nat_poll,
	.flush = nat_flush_all,
	.idle = nat_idle,
	.leave = nat_leave,
	.listen = nat_listen,
	.connect = nat_stream_connect,
};

/* ---- start-up ------------------------------------------------------------ */

/* The EAL's argv from native.eal and native.ports. Returns argc or -E2BIG. */
static int nat_eal_argv(const struct cfg_native *n, cpu_set_t *aff, char **argv, char *mem,
			char *lcore, char *prefix)
{
	int argc = 0, cpu = 0;

	while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, aff))
		cpu++;
	snprintf(lcore, 16, "%d", cpu < CPU_SETSIZE ? cpu : 0);
	argv[argc++] = "sluice";
	argv[argc++] = "-l";
	argv[argc++] = lcore;
	argv[argc++] = "--no-telemetry";
	if (n->eal.hugepages) {
		argv[argc++] = "--in-memory";   /* no files in /var/run: instances stay apart */
	} else {
		/* --no-huge is legacy memory, which --in-memory refuses. The
		 * memif driver registers a multi-process action at probe time,
		 * which --no-shconf turns into an error: keep the shared config
		 * then (in a directory of our own, removed by nat_fini). */
		bool memif = false;

		for (unsigned i = 0; i < n->n_ports; i++)
			memif |= !strncmp(n->ports[i].name, "net_memif", 9);
		snprintf(prefix, 32, "--file-prefix=sluice%ld", (long)getpid());
		argv[argc++] = "--no-huge";
		if (!memif)
			argv[argc++] = "--no-shconf";
		argv[argc++] = prefix;
	}
	if (n->eal.memory_mb) {
		snprintf(mem, 16, "%u", n->eal.memory_mb);
		argv[argc++] = "-m";
		argv[argc++] = mem;
	}
	if (n->eal.no_pci)
		argv[argc++] = "--no-pci";
	for (unsigned i = 0; i < n->n_ports; i++) {
		if (argc + 2 >= NAT_EAL_ARGS)
			return -E2BIG;
		argv[argc++] = n->ports[i].pci ? "-a" : "--vdev";
		argv[argc++] = n->ports[i].device;
	}
	for (unsigned i = 0; i < n->eal.n_args; i++) {
		if (argc + 1 >= NAT_EAL_ARGS)
			return -E2BIG;
		argv[argc++] = n->eal.args[i];
	}
	argv[argc] = NULL;
	return argc;
}

/* Program RSS: our key, and a redirection table where entry e sends to
 * queue e % n. True when the NIC took both (else: software spread). */
static bool nat_rss_setup(struct nat_port *p, uint16_t nq, const struct rte_eth_dev_info *di)
{
	struct rte_eth_rss_reta_entry64 reta[NAT_RETA_MAX / RTE_ETH_RETA_GROUP_SIZE];
	struct rte_eth_rss_conf rc = { .rss_key = p->rss_key, .rss_key_len = sizeof(p->rss_key) };
	unsigned e;

	if (!di->reta_size || di->reta_size > NAT_RETA_MAX || di->hash_key_size != 40)
		return false;
	memset(reta, 0, sizeof(reta));
	for (e = 0; e < di->reta_size; e++) {
		reta[e / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ull << (e % RTE_ETH_RETA_GROUP_SIZE);
		reta[e / RTE_ETH_RETA_GROUP_SIZE].reta[e % RTE_ETH_RETA_GROUP_SIZE] =
			(uint16_t)(e % nq);
	}
	if (rte_eth_dev_rss_reta_update(p->id, reta, di->reta_size) < 0 ||
	    rte_eth_dev_rss_reta_query(p->id, reta, di->reta_size) < 0 ||
	    rte_eth_dev_rss_hash_conf_get(p->id, &rc) < 0)
		return false;
	for (e = 0; e < di->reta_size; e++)
		p->reta[e] = reta[e / RTE_ETH_RETA_GROUP_SIZE].reta[e % RTE_ETH_RETA_GROUP_SIZE];
	p->reta_size = di->reta_size;
	return true;
}

/* Port i: find it, mempool, configure one queue pair per core, MAC, MTU. */
static int nat_port_setup(const struct cfg *c, unsigned i, unsigned n_cores, char *err,
			  size_t errlen)
{
	const struct cfg_native_port *pc = &c->native->ports[i];
	struct nat_port *p = &N.port[i];
	struct rte_eth_conf conf;
	struct rte_eth_dev_info di;
	struct rte_ether_addr ea;
	char name[RTE_MEMPOOL_NAMESIZE];
	uint16_t nrx, ntx, q, rxd = NAT_RX_DESC, txd = NAT_TX_DESC;
	uint32_t room;
	int sock, rc;
	bool want_rss;

	p->cfg = pc;
	p->mtu = pc->mtu;
	if (rte_eth_dev_get_port_by_name(pc->name, &p->id) < 0) {
		snprintf(err, errlen, "%s:%u: native.ports[%u].device: DPDK has no port '%s' "
			 "(is the device bound to vfio-pci, or the vdev name right?)",
			 c->path, pc->line, i, pc->name);
		return -ENODEV;
	}
	N.pidx[p->id] = (uint8_t)i;
	if ((rc = rte_eth_dev_info_get(p->id, &di)) < 0)
		goto dev_fail;
	p->gated = intr_gate_wanted(di.driver_name);
	if (di.max_tx_queues < n_cores) {
		snprintf(err, errlen, "%s:%u: native.ports[%u]: %s has %u TX queues for %u "
			 "cores (each core needs one)", c->path, pc->line, i, pc->name,
			 di.max_tx_queues, n_cores);
		return -EINVAL;
	}
	ntx = (uint16_t)n_cores;
	nrx = (uint16_t)RTE_MIN(n_cores, di.max_rx_queues);
	want_rss = nrx > 1 && nrx == n_cores &&
		   (di.flow_type_rss_offloads & RTE_ETH_RSS_NONFRAG_IPV4_TCP) &&
		   (di.flow_type_rss_offloads & RTE_ETH_RSS_NONFRAG_IPV6_TCP);
	if (getrandom(p->rss_key, sizeof(p->rss_key), 0) != sizeof(p->rss_key))
		return -EIO;
	memset(&conf, 0, sizeof(conf));
	if (want_rss) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = p->rss_key;
		conf.rx_adv_conf.rss_conf.rss_key_len = sizeof(p->rss_key);
		conf.rx_adv_conf.rss_conf.rss_hf = di.flow_type_rss_offloads &
			(RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV6_TCP |
			 RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_IPV6);
	}
	if ((rc = rte_eth_dev_configure(p->id, nrx, ntx, &conf)) < 0 ||
	    (rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->id, &rxd, &txd)) < 0)
		goto dev_fail;
	/* Room for a whole frame in one mbuf: net_input() wants it flat. */
	room = RTE_MAX((uint32_t)RTE_MBUF_DEFAULT_DATAROOM, pc->mtu + RTE_ETHER_HDR_LEN + 8);
	sock = rte_eth_dev_socket_id(p->id);
	snprintf(name, sizeof(name), "sl_mbuf_%u", i);
	p->pool = rte_pktmbuf_pool_create(name, c->native->mbufs, 256, 0,
					  (uint16_t)(room + RTE_PKTMBUF_HEADROOM),
					  sock < 0 ? (int)SOCKET_ID_ANY : sock);
	if (!p->pool) {
		snprintf(err, errlen, "%s:%u: native.mbufs: cannot make %u mbufs for %s: %s "
			 "(more native.eal.memory_mb, or hugepages)", c->path, c->native->line,
			 c->native->mbufs, pc->name, rte_strerror(rte_errno));
		return -ENOMEM;
	}
	for (q = 0; q < nrx; q++)
		if ((rc = rte_eth_rx_queue_setup(p->id, q, rxd, (unsigned)sock, NULL, p->pool)) < 0)
			goto dev_fail;
	for (q = 0; q < ntx; q++)
		if ((rc = rte_eth_tx_queue_setup(p->id, q, txd, (unsigned)sock, NULL)) < 0)
			goto dev_fail;
	p->n_rxq = nrx;
	p->n_txq = ntx;
	if (pc->has_mac) {
		memcpy(ea.addr_bytes, pc->mac_addr, 6);
		if ((rc = rte_eth_dev_default_mac_addr_set(p->id, &ea)) < 0) {
			snprintf(err, errlen, "%s:%u: native.ports[%u].mac: %s does not take %s: %s",
				 c->path, pc->line, i, pc->name, pc->mac, rte_strerror(-rc));
			return rc;
		}
	}
	if ((rc = rte_eth_macaddr_get(p->id, &ea)) < 0)
		goto dev_fail;
	memcpy(p->mac, ea.addr_bytes, 6);
	rc = rte_eth_dev_set_mtu(p->id, (uint16_t)pc->mtu);
	if (rc < 0 && !(rc == -ENOTSUP && pc->mtu == 1500)) {
		snprintf(err, errlen, "%s:%u: native.ports[%u].mtu: %s does not take MTU %u: %s",
			 c->path, pc->line, i, pc->name, pc->mtu, rte_strerror(-rc));
		return rc;
	}
	if ((rc = rte_eth_dev_start(p->id)) < 0)
		goto dev_fail;
	N.started[i] = true;
	p->rss = want_rss && nat_rss_setup(p, nrx, &di);
	log_msg(LOG_INFO, "native port %s (port %u, %s): %02x:%02x:%02x:%02x:%02x:%02x mtu %u, "
		"%u RX / %u TX queues, %s", pc->name, p->id, di.driver_name, p->mac[0], p->mac[1],
		p->mac[2], p->mac[3], p->mac[4], p->mac[5], pc->mtu, nrx, ntx,
		n_cores == 1 ? "one core" : p->rss ? "RSS across cores" :
		"software spread across cores");
	return 0;
dev_fail:
	snprintf(err, errlen, "%s:%u: native.ports[%u]: cannot set up %s: %s", c->path, pc->line,
		 i, pc->name, rte_strerror(-rc));
	return rc < 0 ? rc : -EIO;
}

int nat_init(const struct cfg *c, struct core *cores, unsigned n_cores, char *err,
	     size_t errlen)
{
	const struct cfg_native *n = c->native;
	char *argv[NAT_EAL_ARGS + 1], mem[16], lcore[16], prefix[32], ring[RTE_RING_NAMESIZE];
	cpu_set_t aff;
	unsigned i, k;
	int argc, rc;

	N.cfg = n;
	N.n_cores = n_cores;
	if (getrandom(&N.seed, sizeof(N.seed), 0) != sizeof(N.seed))
		return -EIO;
	if (sched_getaffinity(0, sizeof(aff), &aff) < 0)
		return -errno;
	if ((argc = nat_eal_argv(n, &aff, argv, mem, lcore, prefix)) < 0) {
		snprintf(err, errlen, "%s:%u: native.eal.args: too many EAL arguments", c->path,
			 n->line);
		return argc;
	}
	rc = rte_eal_init(argc, argv);
	/* The EAL pinned this thread to its main lcore; the cores and the TLS
	 * workers it starts must not inherit that. */
	sched_setaffinity(0, sizeof(aff), &aff);
	if (rc < 0) {
		snprintf(err, errlen, "%s:%u: native.eal: DPDK did not start: %s", c->path,
			 n->line, rte_strerror(rte_errno));
		return -EINVAL;
	}
	N.eal_up = true;
	N.n_ports = n->n_ports;
	for (i = 0; i < n->n_ports; i++)
		if ((rc = nat_port_setup(c, i, n_cores, err, errlen)) < 0)
			return rc;
	for (i = 0; i < n->n_ports && !N.gate; i++)
		if (N.port[i].gated) {
			if ((rc = intr_gate_init(n_cores)) < 0) {
				snprintf(err, errlen, "native: cannot set up the interrupt gate "
					 "that %s needs: %s", N.port[i].cfg->name, strerror(-rc));
				return rc;
			}
			N.gate = true;
		}
	if (!(N.cores = calloc(n_cores, sizeof(*N.cores))))
		return -ENOMEM;
	for (k = 0; k < n_cores; k++) {
		struct nat_core *nc = rte_zmalloc("sl_core", sizeof(*nc), RTE_CACHE_LINE_SIZE);

		if (!nc)
			return -ENOMEM;
		N.cores[k] = nc;
		cores[k].io_core = nc;
		nc->core = &cores[k];
		nc->n_pq = N.n_ports;
		for (i = 0; i < N.n_ports; i++) {
			nc->pq[i].nc = nc;
			nc->pq[i].port = &N.port[i];
			nc->pq[i].txq = (uint16_t)k;
			nc->pq[i].rxq = (uint16_t)k;
			nc->pq[i].has_rxq = k < N.port[i].n_rxq;
		}
		if (n_cores > 1) {
			snprintf(ring, sizeof(ring), "sl_in_%u", k);
			nc->in = rte_ring_create(ring, NAT_RING, SOCKET_ID_ANY, RING_F_SC_DEQ);
			if (!nc->in) {
				snprintf(err, errlen, "native: cannot make the ring of core %u: %s",
					 k, rte_strerror(rte_errno));
				return -ENOMEM;
			}
		}
		if ((rc = nat_stacks_init(nc, c, err, errlen)) < 0)
			return rc;
	}
	return 0;
}

void nat_fini(void)
{
	unsigned i, k;

	for (i = 0; i < N.n_ports; i++)
		if (N.started[i]) {
			rte_eth_dev_stop(N.port[i].id);
			rte_eth_dev_close(N.port[i].id);
		}
	if (N.gate)
		intr_gate_fini();
	for (k = 0; N.cores && k < N.n_cores; k++) {
		if (!N.cores[k])
			continue;
		nat_stacks_fini(N.cores[k]);
		N.cores[k]->core->io_core = NULL;
		rte_ring_free(N.cores[k]->in);
		rte_free(N.cores[k]);
	}
	free(N.cores);
	for (i = 0; i < N.n_ports; i++)
		rte_mempool_free(N.port[i].pool);
	if (N.eal_up) {
		char dir[PATH_MAX];
		/* Ours alone when the prefix carries our pid (no hugepages). */
		bool own = N.cfg && !N.cfg->eal.hugepages;

		snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
		rte_eal_cleanup();
		if (own)
			flatdir_remove(dir);
	}
	memset(&N, 0, sizeof(N));
}

void nat_port_xstats(io_xstat_fn *fn, void *arg)
{
	for (unsigned i = 0; i < N.n_ports; i++) {
		uint16_t id = N.port[i].id;
		int n = N.started[i] ? rte_eth_xstats_get_names(id, NULL, 0) : -1;
		struct rte_eth_xstat_name *names;
		struct rte_eth_xstat *xs;

		if (n <= 0)
			continue;
		names = calloc((size_t)n, sizeof(*names));
		xs = calloc((size_t)n, sizeof(*xs));
		if (names && xs && rte_eth_xstats_get_names(id, names, (unsigned)n) == n &&
		    rte_eth_xstats_get(id, xs, (unsigned)n) == n)
			for (int k = 0; k < n; k++)
				if (xs[k].id < (uint64_t)n)
					fn(arg, i, names[xs[k].id].name, xs[k].value);
		free(names);
		free(xs);
	}
}
