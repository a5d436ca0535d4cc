/*
 * flood: the stress rig's attacker (bench/stress drives it).
 *
 *   flood --port 7465 --mode hello --source 127.1.0.1/300 --duration 5
 *   flood --port 7587 --mode idle --max-conns 1500 --duration 20
 *   flood --host 192.0.2.10 --port 7465 --mode syn --source 192.0.2.100/100 --rate 20000
 *
 * Modes:
 *   idle     connect and say nothing: hold up to --max-conns connections
 *            (a slowloris); one the server closes is opened again
 *   hello    connect, send one TLS 1.3 ClientHello, close: the server's
 *            handshake work (a signature) for a client that is gone
 *   connect  connect and close at once
 *   syn      raw TCP SYNs (IP_HDRINCL) from the --source addresses, no
 *            handshake: for the native stack in a namespace only
 *
 * Every run is bounded: --duration seconds (default 10, at most 3600) and,
 * if given, --count connections (or SYNs). hello and connect go as fast as
 * the machine allows with --max-conns in flight, or at --rate per second.
 * Source addresses (--source IP/N) are used round robin with bind() before
 * connect(), as the loadgen does. One JSON line a second on stdout
 * ("t", "held", ...), and a last one with "final": true.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

enum mode { M_IDLE, M_HELLO, M_CONNECT, M_SYN };
static const char *const mode_names[] = { "idle", "hello", "connect", "syn" };

#define MAX_DURATION 3600.0
#define MAX_CONNS    200000u

struct conn {
	int fd;
	bool connecting;
	struct conn *prev, *next;       /* every open connection, to close at exit */
};

static struct {
	enum mode mode;
	struct sockaddr_in dst;
	struct sockaddr_in *src;
	unsigned nsrc, src_next;
	double duration, rate;
	uint64_t count;
	unsigned max_conns;
	unsigned char hello[2048];
	size_t hello_len;

	int ep;
	struct conn *open;              /* list of open connections */
	unsigned inflight, held, held_peak;
	uint64_t attempts, connected, hellos_sent, closed_by_server;
	uint64_t err_connect, err_emfile, err_addr, err_other, syns;
	volatile sig_atomic_t stop;
} F;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
	(void)sig;
	F.stop = 1;
}

/* One TLS 1.3 ClientHello (X25519 share, the usual extensions), made once
 * by OpenSSL over memory BIOs and sent as is by every connection: the
 * server's work per hello is the same whether the bytes repeat or not. */
static int make_hello(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	int n = -1;

	if (ssl && rb && wb) {
		SSL_set_min_proto_version(ssl, TLS1_3_VERSION);
		SSL_set1_groups_list(ssl, "X25519");
		SSL_set_tlsext_host_name(ssl, "bench.test");
		SSL_set_bio(ssl, rb, wb);
		rb = wb = NULL;
		SSL_set_connect_state(ssl);
		SSL_do_handshake(ssl);  /* wants to read: the hello is written */
		n = BIO_read(SSL_get_wbio(ssl), F.hello, sizeof(F.hello));
	}
	BIO_free(rb);
	BIO_free(wb);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (n <= 0)
		return -EIO;
	F.hello_len = (size_t)n;
	return 0;
}

static void count_error(int err)
{
	if (err == EMFILE || err == ENFILE)
		F.err_emfile++;
	else if (err == EADDRNOTAVAIL || err == EADDRINUSE)
		F.err_addr++;
	else if (err == ECONNREFUSED || err == ECONNRESET || err == ETIMEDOUT)
		F.err_connect++;
	else
		F.err_other++;
}

static void conn_close(struct conn *c)
{
	if (!c->connecting)
		F.held--;
	F.inflight--;
	if (c->prev)
		c->prev->next = c->next;
	else
		F.open = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close(c->fd);
	free(c);
}

/* Start one connection; 0 or -errno. */
static int conn_start(void)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event e = { .events = EPOLLOUT };
	int one = 1;

	if (!c)
		return -ENOMEM;
	F.attempts++;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		int err = errno;

		free(c);
		count_error(err);
		return -err;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (F.nsrc) {
		struct sockaddr_in *s = &F.src[F.src_next++ % F.nsrc];

		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (struct sockaddr *)s, sizeof(*s)) < 0)
			goto fail;
	}
	if (connect(c->fd, (struct sockaddr *)&F.dst, sizeof(F.dst)) < 0 &&
	    errno != EINPROGRESS)
		goto fail;
	c->connecting = true;
	e.data.ptr = c;
	if (epoll_ctl(F.ep, EPOLL_CTL_ADD, c->fd, &e) < 0)
		goto fail;
	F.inflight++;
	c->next = F.open;
	if (F.open)
		F.open->prev = c;
	F.open = c;
	return 0;
fail:
	{
		int err = errno;

		count_error(err);
		close(c->fd);
		free(c);
		return -err;
	}
}

static void conn_event(struct conn *c, uint32_t ev)
{
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (ev & (EPOLLERR | EPOLLHUP))) {
			count_error(err ? err : ECONNREFUSED);
			conn_close(c);
			return;
		}
		c->connecting = false;
		F.connected++;
		F.held++;
		if (F.held > F.held_peak)
			F.held_peak = F.held;
		if (F.mode == M_HELLO) {
			if (write(c->fd, F.hello, F.hello_len) == (ssize_t)F.hello_len)
				F.hellos_sent++;
			conn_close(c);
		} else if (F.mode == M_CONNECT) {
			conn_close(c);
		} else {
			struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };

			epoll_ctl(F.ep, EPOLL_CTL_MOD, c->fd, &e);
		}
		return;
	}
	/* idle: the server said something (a greeting) or closed */
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		F.closed_by_server++;
		conn_close(c);
		return;
	}
	{
		char buf[512];
		ssize_t n = read(c->fd, buf, sizeof(buf));

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			F.closed_by_server++;
			conn_close(c);
		}
	}
}

/* ------------------------------------------------------------- SYNs --- */

static uint16_t csum(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;

	while (len > 1) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int send_syn(int raw, uint32_t *rnd)
{
	struct {
		struct iphdr ip;
		struct tcphdr tcp;
		uint8_t mss[4];
	} __attribute__((packed)) pkt;
	struct {
		uint32_t src, dst;
		uint8_t zero, proto;
		uint16_t len;
	} __attribute__((packed)) ph;
	uint8_t buf[sizeof(ph) + sizeof(pkt.tcp) + 4];
	struct sockaddr_in *s = &F.src[F.src_next++ % F.nsrc];

	*rnd = *rnd * 1103515245u + 12345u;
	memset(&pkt, 0, sizeof(pkt));
	pkt.ip.ihl = 5;
	pkt.ip.version = 4;
	pkt.ip.ttl = 64;
	pkt.ip.protocol = IPPROTO_TCP;
	pkt.ip.tot_len = htons(sizeof(pkt));
	pkt.ip.saddr = s->sin_addr.s_addr;
	pkt.ip.daddr = F.dst.sin_addr.s_addr;
	pkt.tcp.source = htons((uint16_t)(20000 + (*rnd >> 8) % 40000));
	pkt.tcp.dest = F.dst.sin_port;
	pkt.tcp.seq = htonl(*rnd);
	pkt.tcp.doff = (sizeof(pkt.tcp) + 4) / 4;
	pkt.tcp.syn = 1;
	pkt.tcp.window = htons(65535);
	pkt.mss[0] = 2;
	pkt.mss[1] = 4;
	pkt.mss[2] = 0x05;
	pkt.mss[3] = 0xb4;      /* MSS 1460 */
	ph.src = pkt.ip.saddr;
	ph.dst = pkt.ip.daddr;
	ph.zero = 0;
	ph.proto = IPPROTO_TCP;
	ph.len = htons(sizeof(pkt.tcp) + 4);
	memcpy(buf, &ph, sizeof(ph));
	memcpy(buf + sizeof(ph), &pkt.tcp, sizeof(pkt.tcp) + 4);
	pkt.tcp.check = htons(csum(buf, sizeof(buf), 0));
	/* the kernel fills the IP checksum and id of an IP_HDRINCL packet */
	if (sendto(raw, &pkt, sizeof(pkt), 0, (struct sockaddr *)&F.dst, sizeof(F.dst)) < 0) {
		count_error(errno);
		return -errno;
	}
	F.syns++;
	return 0;
}

/* -------------------------------------------------------------- run --- */

static void report(double t, bool final)
{
	printf("{\"mode\": \"%s\", \"t\": %.2f, \"held\": %u, \"held_peak\": %u, "
	       "\"inflight\": %u, \"attempts\": %llu, \"connected\": %llu, "
	       "\"hellos_sent\": %llu, \"syns\": %llu, \"closed_by_server\": %llu, "
	       "\"errors\": {\"connect\": %llu, \"emfile\": %llu, \"address\": %llu, "
	       "\"other\": %llu}, \"final\": %s}\n",
	       mode_names[F.mode], t, F.held, F.held_peak, F.inflight,
	       (unsigned long long)F.attempts, (unsigned long long)F.connected,
	       (unsigned long long)F.hellos_sent, (unsigned long long)F.syns,
	       (unsigned long long)F.closed_by_server,
	       (unsigned long long)F.err_connect, (unsigned long long)F.err_emfile,
	       (unsigned long long)F.err_addr, (unsigned long long)F.err_other,
	       final ? "true" : "false");
	fflush(stdout);
}

static bool may_start(uint64_t n)
{
	return !F.stop && (!F.count || n < F.count);
}

static int run(void)
{
	struct epoll_event ev[512];
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(F.duration * 1e9);
	uint64_t next_report = t0 + 1000000000u, backoff_until = 0;
	uint32_t rnd = (uint32_t)t0 ^ (uint32_t)getpid();
	int raw = -1;

	if (F.mode == M_SYN) {
		int one = 1;

		raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
		if (raw < 0 || setsockopt(raw, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)) < 0) {
			fprintf(stderr, "flood: raw socket: %s\n", strerror(errno));
			return -errno;
		}
	}
	for (;;) {
		uint64_t now = now_ns();
		int i, n, wait_ms = 20;

		if (now >= end || F.stop)
			break;
		if (now >= next_report) {
			report((double)(now - t0) / 1e9, false);
			next_report += 1000000000u;
		}
		/* how many to start now: all the room (no --rate), or what the
		 * rate allows since the start, never more than 1000 a pass */
		{
			uint64_t done = F.mode == M_SYN ? F.syns + F.err_other + F.err_addr
							 : F.attempts;
			uint64_t due = F.rate > 0 ? (uint64_t)((double)(now - t0) / 1e9 * F.rate) + 1
						  : UINT64_MAX;
			unsigned k;

			for (k = 0; k < 1000 && done < due && may_start(done) && now >= backoff_until;
			     k++, done++) {
				if (F.mode == M_SYN) {
					if (send_syn(raw, &rnd) == -ENOBUFS)
						break;
					continue;
				}
				if (F.inflight >= F.max_conns)
					break;
				if (conn_start() == -EMFILE) {
					/* our own limit: wait for closes */
					backoff_until = now + 10000000u;
					break;
				}
			}
			if (F.mode == M_SYN && F.count && done >= F.count)
				break;
			if (F.mode != M_SYN && F.count && !may_start(F.attempts) && !F.inflight)
				break;
			if (F.rate > 0 || F.inflight >= F.max_conns || F.mode == M_SYN)
				wait_ms = 1;
			else
				wait_ms = 0;
			if (F.mode == M_IDLE && F.inflight >= F.max_conns)
				wait_ms = 20;
		}
		n = epoll_wait(F.ep, ev, 512, wait_ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		for (i = 0; i < n; i++)
			conn_event(ev[i].data.ptr, ev[i].events);
	}
	if (raw >= 0)
		close(raw);
	report((double)(now_ns() - t0) / 1e9, true);
	return 0;
}

/* "a.b.c.d" or "a.b.c.d/N": N addresses from a.b.c.d up. */
static int parse_sources(const char *arg)
{
	char ip[32];
	const char *slash = strchr(arg, '/');
	unsigned n = slash ? (unsigned)atoi(slash + 1) : 1, i;
	struct in_addr a;

	snprintf(ip, sizeof(ip), "%.*s", slash ? (int)(slash - arg) : (int)strlen(arg), arg);
	if (!inet_aton(ip, &a) || n < 1 || n > 65536)
		return -EINVAL;
	if (!(F.src = calloc(n, sizeof(*F.src))))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		F.src[i].sin_family = AF_INET;
		F.src[i].sin_addr.s_addr = htonl(ntohl(a.s_addr) + i);
	}
	F.nsrc = n;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: flood --port N --mode idle|hello|connect|syn [options]\n"
"  --host IP          target (127.0.0.1)\n"
"  --source IP[/N]    N source addresses from IP up, round robin (syn: required)\n"
"  --max-conns M      connections held or in flight at most (1000)\n"
"  --rate R           connections (syn: SYNs) started per second; 0: flat out\n"
"  --duration S       stop after S seconds (10; at most 3600)\n"
"  --count N          stop after N connections or SYNs\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "mode", 1, 0, 'm' },
		{ "source", 1, 0, 'S' }, { "max-conns", 1, 0, 'M' }, { "rate", 1, 0, 'r' },
		{ "duration", 1, 0, 'd' }, { "count", 1, 0, 'n' }, { "help", 0, 0, '?' },
		{ 0, 0, 0, 0 },
	};
	const char *host = "127.0.0.1", *mode = NULL;
	long port = 0;
	struct rlimit rl;
	struct sigaction sa = { .sa_handler = on_signal };
	unsigned i;
	int o, rc;

	F.max_conns = 1000;
	F.duration = 10;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'h': host = optarg; break;
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'm': mode = optarg; break;
		case 'S':
			if (parse_sources(optarg) < 0) {
				fprintf(stderr, "flood: bad --source %s\n", optarg);
				return 2;
			}
			break;
		case 'M': F.max_conns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': F.rate = strtod(optarg, NULL); break;
		case 'd': F.duration = strtod(optarg, NULL); break;
		case 'n': F.count = strtoull(optarg, NULL, 10); break;
		default:
			usage(stderr);
			return 2;
		}
	}
	F.mode = (enum mode)-1;
	for (i = 0; mode && i < sizeof(mode_names) / sizeof(*mode_names); i++)
		if (!strcmp(mode, mode_names[i]))
			F.mode = (enum mode)i;
	if ((int)F.mode < 0 || port < 1 || port > 65535 || !inet_aton(host, &F.dst.sin_addr) ||
	    F.duration <= 0 || F.duration > MAX_DURATION || F.rate < 0 ||
	    F.max_conns < 1 || F.max_conns > MAX_CONNS || (F.mode == M_SYN && !F.nsrc)) {
		usage(stderr);
		return 2;
	}
	F.dst.sin_family = AF_INET;
	F.dst.sin_port = htons((uint16_t)port);
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* thousands of connections: take every descriptor allowed, and more
	 * when we may (root) */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rlim_t want = F.max_conns + 64;

		if (rl.rlim_max < want) {
			struct rlimit up = { want, want };

			if (setrlimit(RLIMIT_NOFILE, &up) == 0)
				rl = up;
		}
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (F.mode == M_HELLO && make_hello() < 0) {
		fprintf(stderr, "flood: could not make a ClientHello\n");
		return 1;
	}
	if ((F.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return 1;
	rc = run();
	while (F.open)
		conn_close(F.open);
	close(F.ep);
	free(F.src);
	return rc < 0 ? 1 : 0;
}
