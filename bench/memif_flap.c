/*
 * memif-flap: a net_memif client that connects to a server, fills the
 * ring towards it with frames and disconnects at once, N times: what a
 * load generator's exit does to sluice (its last burst of FINs, then the
 * port closed), without the sessions, and many times a second.
 *
 *   memif-flap --socket PATH [--count N] [--frames F] [--size B] [--cpu C]
 *
 * Before the interrupt gate (dataplane/io/intr_gate.h) a memif server
 * polling its ring died of SIGSEGV in eth_memif_rx at such a disconnect,
 * about once in a dozen load generator exits; with a full ring of
 * 1,500-byte frames the server is mid-copy at nearly every one.
 * bench/idle-scale runs it against sluice before its rows. The frames are
 * broadcasts of an experimental ethertype (IEEE 802 local, 0x88b5): the
 * server's stack drops them.
 *
 * Prints one JSON line {"flaps": N, "connected": K, "frames": S}; exit
 * status 0 when every connect came up, 1 otherwise, 2 on bad usage.
 */
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flatdir.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#define FLAP_BURST 32
#define LINK_WAIT_MS 3000

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool link_up(uint16_t port)
{
	struct rte_eth_link link;
	uint64_t end = now_ms() + LINK_WAIT_MS;

	do {
		if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status)
			return true;
		usleep(1000);
	} while (now_ms() < end);
	return false;
}

/* Up to want frames of size bytes into the port's ring; returns how many
 * it took (a memif ring is full until the server polls). */
static unsigned fill(uint16_t port, struct rte_mempool *pool, unsigned want, unsigned size)
{
	struct rte_mbuf *m[FLAP_BURST];
	uint8_t frame[1514];
	unsigned done = 0;

	memset(frame, 0xff, 6);                         /* broadcast */
	memcpy(frame + 6, "\x02\x00\x00\x00\x00\xfe", 6);
	frame[12] = 0x88;
	frame[13] = 0xb5;
	memset(frame + 14, 0x5a, sizeof(frame) - 14);

	while (done < want) {
		unsigned k, n = want - done < FLAP_BURST ? want - done : FLAP_BURST;
		uint16_t sent;

		if (rte_pktmbuf_alloc_bulk(pool, m, n) < 0)
			break;
		for (k = 0; k < n; k++) {
			char *f = rte_pktmbuf_append(m[k], (uint16_t)size);

			if (!f) {
				rte_pktmbuf_free_bulk(m, n);
				return done;
			}
			memcpy(f, frame, size);
		}
		sent = rte_eth_tx_burst(port, 0, m, (uint16_t)n);
		done += sent;
		if (sent < n) {
			rte_pktmbuf_free_bulk(m + sent, n - sent);
			break;
		}
	}
	return done;
}

static void usage(void)
{
	fprintf(stderr, "usage: memif-flap --socket PATH [--count N] [--frames F] [--size B] "
		"[--cpu C]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' }, { "count", required_argument, NULL, 'n' },
		{ "frames", required_argument, NULL, 'f' }, { "size", required_argument, NULL, 'b' },
		{ "cpu", required_argument, NULL, 'c' }, { NULL, 0, NULL, 0 } };
	const char *sock = NULL;
	unsigned count = 100, frames = 1024, size = 1500, cpu = 0, up = 0, i;
	unsigned long long sent = 0;
	char lcore[16], prefix[64], vdev[512], rundir[PATH_MAX];
	char *eal[16];
	struct rte_eth_conf conf;
	struct rte_mempool *pool;
	uint16_t port;
	int c, ea = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'n': count = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'f': frames = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'b': size = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': cpu = (unsigned)strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (!sock || size < 60 || size > 1514 || !count || count > 100000)
		usage();
	snprintf(lcore, sizeof(lcore), "%u", cpu);
	snprintf(prefix, sizeof(prefix), "--file-prefix=memif-flap%ld", (long)getpid());
	snprintf(vdev, sizeof(vdev), "net_memif0,role=client,socket=%s,socket-abstract=no,"
		 "mac=02:00:00:00:00:fe", sock);
	eal[ea++] = argv[0];
	eal[ea++] = "-l";
	eal[ea++] = lcore;
	eal[ea++] = "--no-telemetry";
	eal[ea++] = "--no-huge";
	eal[ea++] = "--no-pci";
	eal[ea++] = prefix;
	eal[ea++] = "-m";
	eal[ea++] = "64";
	eal[ea++] = "--log-level=lib.eal:error";
	eal[ea++] = "--vdev";
	eal[ea++] = vdev;
	eal[ea] = NULL;
	if (rte_eal_init(ea, eal) < 0) {
		fprintf(stderr, "memif-flap: DPDK did not start: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	pool = rte_pktmbuf_pool_create("flap", 4095, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       SOCKET_ID_ANY);
	memset(&conf, 0, sizeof(conf));
	if (!pool || rte_eth_dev_get_port_by_name("net_memif0", &port) < 0 ||
	    rte_eth_dev_configure(port, 1, 1, &conf) < 0 ||
	    rte_eth_rx_queue_setup(port, 0, 1024, SOCKET_ID_ANY, NULL, pool) < 0 ||
	    rte_eth_tx_queue_setup(port, 0, 1024, SOCKET_ID_ANY, NULL) < 0) {
		fprintf(stderr, "memif-flap: cannot set up the port on %s\n", sock);
		up = 0;
		goto out;
	}
	/* Start (connect), fill, stop (the control channel closed: the
	 * server's interrupt thread unmaps the rings while it reads them). */
	for (i = 0; i < count; i++) {
		if (rte_eth_dev_start(port) < 0)
			break;
		if (link_up(port)) {
			up++;
			sent += fill(port, pool, frames, size);
		}
		rte_eth_dev_stop(port);
	}
	rte_eth_dev_close(port);
	printf("{\"flaps\": %u, \"connected\": %u, \"frames\": %llu}\n", i, up, sent);
out:
	rte_mempool_free(pool);
	snprintf(rundir, sizeof(rundir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	flatdir_remove(rundir);
	return up == count ? 0 : 1;
}
