/*
 * loadgen: the benchmark rig's load generator.
 *
 *   loadgen --port 7465 --workload handshake --tls 1.3 --sig ecdsa \
 *           --concurrency 32 --duration 5
 *
 * Workloads (lg_conn.c has the scripts): handshake, resume, smtp, imap,
 * bulk, idle. Closed loop (--concurrency C ops in flight) or open loop
 * (--rate R ops started per second whatever the server does, latency timed
 * from when each op was due). Ends after --duration seconds (ops in flight
 * then finish) or --count ops. Prints one JSON object on stdout.
 *
 * The idle workload opens --count connections and parks them twice, each
 * time printing a line {"phase": ...} and waiting for a line on stdin: once
 * connected before any TLS byte, once after the handshake and greeting. The
 * rig reads the server's memory at each stop.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "lg.h"

const char *const lg_err_names[LG_E_COUNT] = {
#define X(name, what) #name,
#include "lg_errors.def"
#undef X
};

static const char *const workload_names[] = {
	[WL_HANDSHAKE] = "handshake", [WL_RESUME] = "resume", [WL_SMTP] = "smtp",
	[WL_IMAP] = "imap", [WL_BULK] = "bulk", [WL_IDLE] = "idle",
};

uint64_t lg_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The transport's interest in c's readiness (epoll; nothing natively). */
void lg_set_events(struct lg *g, struct lg_conn *c, uint32_t ev)
{
	g->io->want(g, c, ev);
}

/* ------------------------------------------------------- connections --- */

static struct lg_conn *conn_get(struct lg *g)
{
	struct lg_conn *c = g->free_list;

	if (c)
		g->free_list = c->next_free;
	else if (!(c = malloc(sizeof(*c))))
		return NULL;
	memset(c, 0, offsetof(struct lg_conn, rbuf));
	c->fd = -1;
	if (g->nactive == g->cap_active) {
		unsigned cap = g->cap_active ? 2 * g->cap_active : 256;
		struct lg_conn **a = realloc(g->active, cap * sizeof(*a));

		if (!a) {
			free(c);
			return NULL;
		}
		g->active = a;
		g->cap_active = cap;
	}
	c->active_ix = g->nactive;
	g->active[g->nactive++] = c;
	return c;
}

/* Close c and return it to the free list. */
static void conn_put(struct lg *g, struct lg_conn *c)
{
	struct lg_conn *last = g->active[--g->nactive];

	last->active_ix = c->active_ix;
	g->active[c->active_ix] = last;
	if (c->ssl) {
		/* No close_notify (mail clients rarely send one); but freed
		 * without a shutdown, OpenSSL would take the session for bad and
		 * mark it not resumable. */
		SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(c->ssl);
	}
	g->io->close(g, c);
	c->next_free = g->free_list;
	g->free_list = c;
}

/* End of an operation: success (err < 0) is timed, a failure counted. */
void lg_op_end(struct lg *g, struct lg_conn *c, int err, const char *why)
{
	if (c->held)
		g->held--;
	if (err < 0) {
		g->done++;
		hist_record(&g->lat, (lg_now() - c->t0) / 1000);
	} else {
		g->failed++;
		g->err[err]++;
		/* the whole message sent, its reply never read (a refusal is
		 * a reply): the server may or may not have taken it (RFC
		 * 1047's duplicate window) */
		if (err != LG_E_refused && c->step && c->step != g->script &&
		    c->step->op == OP_SMTP &&
		    c->step[-1].op == OP_SEND_MSG)
			g->msgs_unanswered++;
		if (why && !g->first_error[0])
			snprintf(g->first_error, sizeof(g->first_error), "%s: %s",
				 lg_err_names[err], why);
	}
	conn_put(g, c);
}

/* Park c at an OP_HOLD step (idle workload). */
void lg_hold(struct lg *g, struct lg_conn *c)
{
	c->held = true;
	c->deadline = 0;
	g->held++;
	/* only a close from the server is of interest while parked */
	lg_set_events(g, c, EPOLLRDHUP);
}

/* Start one operation due at time t0: the transport's TCP open. */
static void op_start(struct lg *g, uint64_t t0)
{
	struct lg_conn *c = conn_get(g);
	int rc;

	g->started++;
	if (!c) {
		g->failed++;
		g->err[LG_E_connect]++;
		return;
	}
	c->t0 = t0;
	c->deadline = lg_now() + (uint64_t)(g->timeout * 1e9);
	c->step = g->script;
	if ((rc = g->io->connect(g, c)) < 0)
		lg_op_end(g, c, LG_E_connect, strerror(-rc));
}

/* Fail every op past its deadline. */
static void check_timeouts(struct lg *g, uint64_t now)
{
	unsigned i = 0;

	while (i < g->nactive) {
		struct lg_conn *c = g->active[i];

		if (c->deadline && now > c->deadline)
			lg_op_end(g, c, LG_E_timeout, "no progress within --timeout");
		else
			i++;
	}
}

/* ----------------------------------------------------------- idle rig --- */

/* All idle connections parked (or failed): tell the rig, wait for "go". */
static void idle_check_phase(struct lg *g)
{
	static const char *const phase[] = { "plain", "tls" };

	if (g->waiting_go || g->held == 0 || g->held != g->nactive ||
	    g->started < g->count || g->hold_phase >= 2)
		return;
	printf("{\"phase\": \"%s\", \"held\": %u, \"failed\": %llu}\n",
	       phase[g->hold_phase], g->held, (unsigned long long)g->failed);
	fflush(stdout);
	g->waiting_go = true;
}

/* A line from the rig on stdin: release the parked connections. */
static int idle_go(struct lg *g)
{
	char buf[64];
	ssize_t n = read(0, buf, sizeof(buf));
	unsigned i;

	if (n <= 0)
		return -1;              /* the rig went away: stop */
	if (!g->waiting_go)
		return 0;
	g->waiting_go = false;
	g->hold_phase++;
	for (i = 0; i < g->nactive; i++) {
		struct lg_conn *c = g->active[i];

		c->deadline = lg_now() + (uint64_t)(g->timeout * 1e9);
		lg_set_events(g, c, EPOLLIN);
	}
	/* lg_drive may end connections and reorder active[]: walk a copy */
	{
		unsigned n_held = g->nactive;
		struct lg_conn **copy = malloc(n_held * sizeof(*copy));

		if (!copy)
			return -1;
		memcpy(copy, g->active, n_held * sizeof(*copy));
		for (i = 0; i < n_held; i++)
			lg_drive(g, copy[i]);
		free(copy);
	}
	return 0;
}

/* -------------------------------------------------------------- run --- */

static bool may_start(const struct lg *g, uint64_t now)
{
	if (g->count && g->started >= g->count)
		return false;
	if (g->duration > 0 && now >= g->t_begin + (uint64_t)(g->duration * 1e9))
		return false;
	return true;
}

/* The event loop: returns when no op may start and none is in flight. */
static int run(struct lg *g)
{
	uint64_t last_scan = 0;

	g->t_begin = g->next_due = lg_now();
	for (;;) {
		uint64_t now = lg_now();
		int wait_ms = 50, go;

		if (g->rate > 0) {
			while (may_start(g, now) && g->next_due <= now) {
				if (g->nactive >= g->max_inflight) {
					g->started++;
					g->failed++;
					g->err[LG_E_overload]++;
				} else {
					op_start(g, g->next_due);
				}
				g->next_due += (uint64_t)(1e9 / g->rate);
			}
			if (may_start(g, now))
				wait_ms = (int)((g->next_due - now) / 1000000);
		} else {
			unsigned c = g->wl == WL_IDLE ? (unsigned)g->count : g->concurrency;
			unsigned budget = g->io->start_burst ? g->io->start_burst : UINT_MAX;

			while (may_start(g, now) && g->nactive < c && budget--)
				op_start(g, now);
		}
		if (!may_start(g, now) && g->nactive == 0)
			break;
		if (g->wl == WL_IDLE) {
			idle_check_phase(g);
			if (g->hold_phase >= 2 && g->nactive == 0)
				break;
		}
		if ((go = g->io->wait(g, wait_ms)) < 0)
			return go;
		/* after the batch: releasing may end connections that still had
		 * an event in it */
		if (go && idle_go(g) < 0)
			return -EPIPE;
		now = lg_now();
		if (now - last_scan > 100000000u) {
			check_timeouts(g, now);
			last_scan = now;
		}
	}
	g->t_end_start = lg_now();
	return 0;
}

/* ------------------------------------------------------------ set-up --- */

/* The client context: one version, X25519 only, AES-128-GCM, and the one
 * signature algorithm of --sig, so that the run measures exactly the
 * handshake it names whatever the server would prefer. */
static SSL_CTX *client_ctx(const struct lg *g)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	bool rsa = !strcmp(g->sig, "rsa");

	if (!ctx)
		return NULL;
	SSL_CTX_set_security_level(ctx, 1);
	SSL_CTX_set_min_proto_version(ctx, g->tls_version);
	SSL_CTX_set_max_proto_version(ctx, g->tls_version);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
				       SSL_SESS_CACHE_NO_INTERNAL_STORE);
	if (!SSL_CTX_set1_groups_list(ctx, "X25519") ||
	    !SSL_CTX_set1_sigalgs_list(ctx, rsa ? "rsa_pss_rsae_sha256" : "ECDSA+SHA256") ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") ||
	    !SSL_CTX_set_cipher_list(ctx, rsa ? "ECDHE-RSA-AES128-GCM-SHA256"
					      : "ECDHE-ECDSA-AES128-GCM-SHA256")) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* The message: headers and 76-column lines up to size bytes, then the
 * end-of-data line. No line starts with '.', so no dot-stuffing. */
static int make_message(struct lg *g)
{
	static const char head[] =
		"From: <loadgen@bench.test>\r\nTo: <sink@bench.test>\r\n"
		"Subject: sluice bench\r\nMessage-ID: <bench@loadgen.bench>\r\n\r\n";
	size_t size = g->msg_size < sizeof(head) ? sizeof(head) : g->msg_size;
	size_t n = sizeof(head) - 1, i = 0;
	char *m = malloc(size + 8);

	if (!m)
		return -ENOMEM;
	memcpy(m, head, n);
	while (n + 2 < size) {
		m[n++] = (char)('a' + i % 26);
		if (++i % 76 == 0 || n + 2 >= size) {
			m[n++] = '\r';
			m[n++] = '\n';
		}
	}
	memcpy(m + n, ".\r\n", 3);
	g->msg = m;
	g->msg_len = n + 3;
	return 0;
}

/* "a.b.c.d" or "a.b.c.d/N" (N source addresses from a.b.c.d up). */
static int parse_sources(struct lg *g, const char *arg)
{
	char ip[32];
	const char *slash = strchr(arg, '/');
	unsigned n = slash ? (unsigned)atoi(slash + 1) : 1, i;
	struct in_addr a;

	snprintf(ip, sizeof(ip), "%.*s", slash ? (int)(slash - arg) : (int)strlen(arg), arg);
	if (!inet_aton(ip, &a) || n < 1 || n > 65536)
		return -EINVAL;
	if (!(g->src = calloc(n, sizeof(*g->src))))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		g->src[i].sin_family = AF_INET;
		g->src[i].sin_addr.s_addr = htonl(ntohl(a.s_addr) + i);
	}
	g->nsrc = n;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: loadgen --port N --workload W [options]\n"
"  --host IP           server address (127.0.0.1)\n"
"  --workload W        handshake | resume | smtp | imap | bulk | idle\n"
"  --tls 1.2|1.3       the one version offered (1.3)\n"
"  --sig ecdsa|rsa     the one signature scheme offered (ecdsa)\n"
"  --implicit          smtp, bulk: TLS from the first byte, no STARTTLS\n"
"  --concurrency C     closed loop: C ops in flight (16)\n"
"  --rate R            open loop: R ops started per second\n"
"  --max-inflight M    open loop: ops beyond M in flight fail as overload (10000)\n"
"  --duration S        start ops for S seconds, then let those in flight end\n"
"  --count N           N ops (idle: N connections held)\n"
"  --size B            message size (smtp 4096, bulk 10485760)\n"
"  --timeout S         per op (30)\n"
"  --user U --pass P   imap LOGIN (bob / secret)\n"
"  --source IP[/N]     bind clients to N addresses from IP up, round robin\n"
"  --rcpt ADDR         smtp, bulk: the recipient (sink@bench.test)\n"
"native transport (no kernel on the data path; bench/README.md):\n"
"  --native VDEV       a DPDK port, e.g. net_memif0,role=client,socket=/tmp/m.sock\n"
"  --native-addr A/L   the first client address and its prefix length\n"
"  --native-addrs N    N client addresses from A up, connections in turn (1)\n"
"  --native-cpu N      the CPU of the native loop (the first one allowed)\n");
}

static void print_json(const struct lg *g)
{
	double secs = (double)(g->t_end_start - g->t_begin) / 1e9;
	struct rusage ru;
	unsigned i;

	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\": \"%s\", \"tls\": \"%s\", \"sig\": \"%s\", \"implicit\": %s, "
	       "\"mode\": \"%s\", \"concurrency\": %u, \"rate\": %.1f, ",
	       g->wl_name, g->tls_version == TLS1_3_VERSION ? "1.3" : "1.2", g->sig,
	       g->implicit ? "true" : "false", g->rate > 0 ? "open" : "closed",
	       g->concurrency, g->rate);
	printf("\"ops\": %llu, \"started\": %llu, \"error_total\": %llu, \"errors\": {",
	       (unsigned long long)g->done, (unsigned long long)g->started,
	       (unsigned long long)g->failed);
	for (i = 0; i < LG_E_COUNT; i++)
		printf("%s\"%s\": %llu", i ? ", " : "", lg_err_names[i],
		       (unsigned long long)g->err[i]);
	printf("}, \"first_error\": \"");
	for (i = 0; g->first_error[i]; i++)
		putchar(g->first_error[i] == '"' || g->first_error[i] == '\\' ? '\'' : g->first_error[i]);
	printf("\", \"duration_s\": %.6f, \"ops_per_s\": %.2f, ", secs,
	       secs > 0 ? (double)g->done / secs : 0.0);
	printf("\"latency_us\": {\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"max\": %llu, "
	       "\"mean\": %.1f}, ",
	       (unsigned long long)hist_quantile(&g->lat, 0.50),
	       (unsigned long long)hist_quantile(&g->lat, 0.90),
	       (unsigned long long)hist_quantile(&g->lat, 0.99),
	       (unsigned long long)g->lat.max, hist_mean(&g->lat));
	printf("\"payload_bytes\": %llu, \"messages_accepted\": %llu, "
	       "\"messages_unanswered\": %llu, \"mib_per_s\": %.3f, "
	       "\"resumed\": %llu, \"resumed_fraction\": %.4f, \"client_cpu_s\": %.3f",
	       (unsigned long long)g->payload_bytes, (unsigned long long)g->msgs_accepted,
	       (unsigned long long)g->msgs_unanswered,
	       secs > 0 ? (double)g->payload_bytes / 1048576.0 / secs : 0.0,
	       (unsigned long long)g->resumed,
	       g->done ? (double)g->resumed / (double)g->done : 0.0,
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	if (g->io->json)
		g->io->json(g);
	printf("}\n");
	fflush(stdout);
}

/* The native transport's options (lg_io_native.c). */
enum { OPT_NATIVE = 1000, OPT_NATIVE_ADDR, OPT_NATIVE_ADDRS, OPT_NATIVE_CPU };

static int native_opt(struct lg *g, int o, const char *arg)
{
	switch (o) {
	case OPT_NATIVE:
#ifdef LG_NATIVE
		g->nat_dev = arg;
		g->io = &lg_io_native;
		return 0;
#else
		fprintf(stderr, "loadgen: built without DPDK: no --native\n");
		return -ENOTSUP;
#endif
	case OPT_NATIVE_ADDR:
		free(g->nat_addr);
		return (g->nat_addr = strdup(arg)) ? 0 : -ENOMEM;
	case OPT_NATIVE_ADDRS:
		g->nat_addrs = (unsigned)strtoul(arg, NULL, 10);
		return g->nat_addrs >= 1 && g->nat_addrs <= 256 ? 0 : -EINVAL;
	case OPT_NATIVE_CPU:
		g->nat_cpu = (int)strtol(arg, NULL, 10);
		return g->nat_cpu >= 0 ? 0 : -EINVAL;
	}
	return -EINVAL;
}

/* Options into g; 0, or -EINVAL with a message on stderr. */
static int parse_args(struct lg *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "workload", 1, 0, 'w' },
		{ "tls", 1, 0, 't' }, { "sig", 1, 0, 's' }, { "implicit", 0, 0, 'i' },
		{ "concurrency", 1, 0, 'c' }, { "rate", 1, 0, 'r' },
		{ "max-inflight", 1, 0, 'm' }, { "duration", 1, 0, 'd' },
		{ "count", 1, 0, 'n' }, { "size", 1, 0, 'z' }, { "timeout", 1, 0, 'T' },
		{ "user", 1, 0, 'u' }, { "pass", 1, 0, 'P' }, { "source", 1, 0, 'S' },
		{ "rcpt", 1, 0, 'R' },
		{ "native", 1, 0, OPT_NATIVE }, { "native-addr", 1, 0, OPT_NATIVE_ADDR },
		{ "native-addrs", 1, 0, OPT_NATIVE_ADDRS }, { "native-cpu", 1, 0, OPT_NATIVE_CPU },
		{ "help", 0, 0, '?' }, { 0, 0, 0, 0 },
	};
	const char *host = "127.0.0.1", *user = "bob", *pass = "secret";
	const char *rcpt = "sink@bench.test";
	long port = 0;
	unsigned i;
	int o;

	g->tls_version = TLS1_3_VERSION;
	g->sig = "ecdsa";
	g->concurrency = 16;
	g->max_inflight = 10000;
	g->timeout = 30;
	g->wl_name = NULL;
	g->io = &lg_io_kernel;
	g->nat_cpu = -1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'h': host = optarg; break;
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'w': g->wl_name = optarg; break;
		case 't':
			if (strcmp(optarg, "1.2") && strcmp(optarg, "1.3"))
				goto bad;
			g->tls_version = strcmp(optarg, "1.2") ? TLS1_3_VERSION : TLS1_2_VERSION;
			break;
		case 's':
			if (strcmp(optarg, "ecdsa") && strcmp(optarg, "rsa"))
				goto bad;
			g->sig = optarg;
			break;
		case 'i': g->implicit = true; break;
		case 'c': g->concurrency = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': g->rate = strtod(optarg, NULL); break;
		case 'm': g->max_inflight = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': g->duration = strtod(optarg, NULL); break;
		case 'n': g->count = strtoull(optarg, NULL, 10); break;
		case 'z': g->msg_size = strtoull(optarg, NULL, 10); break;
		case 'T': g->timeout = strtod(optarg, NULL); break;
		case 'u': user = optarg; break;
		case 'P': pass = optarg; break;
		case 'R': rcpt = optarg; break;
		case 'S':
			if (parse_sources(g, optarg) < 0)
				goto bad;
			break;
		case OPT_NATIVE ... OPT_NATIVE_CPU:
			if (native_opt(g, o, optarg) < 0)
				goto bad;
			break;
		case '?':
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	g->wl = (enum lg_workload)-1;
	for (i = 0; g->wl_name && i < sizeof(workload_names) / sizeof(*workload_names); i++)
		if (!strcmp(g->wl_name, workload_names[i]))
			g->wl = (enum lg_workload)i;
	if ((int)g->wl < 0 || port < 1 || port > 65535 || !inet_aton(host, &g->dst.sin_addr)) {
		fprintf(stderr, "loadgen: --workload (one of handshake, resume, smtp, imap, bulk,"
			" idle), --port and a valid --host are required\n");
		return -EINVAL;
	}
	if (g->nat_dev && (!g->nat_addr || g->nsrc)) {
		fprintf(stderr, "loadgen: --native needs --native-addr (and no --source)\n");
		return -EINVAL;
	}
	if (g->wl == WL_IDLE ? !g->count : (!g->count && g->duration <= 0)) {
		fprintf(stderr, "loadgen: give --duration or --count (idle: --count)\n");
		return -EINVAL;
	}
	if (!g->concurrency || g->rate < 0 || g->timeout <= 0 || (g->rate > 0 && g->wl == WL_IDLE)) {
		fprintf(stderr, "loadgen: bad --concurrency, --rate or --timeout\n");
		return -EINVAL;
	}
	g->dst.sin_family = AF_INET;
	g->dst.sin_port = htons((uint16_t)port);
	if (!g->msg_size)
		g->msg_size = g->wl == WL_BULK ? 10u << 20 : 4096;
	if (g->wl == WL_IDLE || g->wl == WL_HANDSHAKE || g->wl == WL_RESUME)
		g->implicit = true;
	if (asprintf(&g->login_cmd, "b LOGIN %s %s\r\n", user, pass) < 0 ||
	    asprintf(&g->rcpt_cmd, "RCPT TO:<%s>\r\n", rcpt) < 0)
		return -ENOMEM;
	return 0;
bad:
	fprintf(stderr, "loadgen: bad value: %s\n", optarg);
	usage(stderr);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	static struct lg g;             /* the histogram is large: not on the stack */
	struct rlimit rl;
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	if (parse_args(&g, argc, argv) < 0)
		return 2;
	/* thousands of connections: take every descriptor allowed */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	if (!(g.ctx = client_ctx(&g))) {
		fprintf(stderr, "loadgen: client TLS context: %s\n",
			ERR_error_string(ERR_get_error(), NULL));
		goto out;
	}
	if (lg_script_init(&g) < 0 || make_message(&g) < 0) {
		fprintf(stderr, "loadgen: set-up failed\n");
		goto out;
	}
	if (g.io->init(&g) < 0)
		goto out;
	if ((rc = run(&g)) < 0) {
		fprintf(stderr, "loadgen: %s\n", rc == -EPIPE ? "stdin closed before the idle"
			" phases ended" : strerror(-rc));
		rc = 1;
		goto out;
	}
	print_json(&g);
	rc = 0;
out:
	while (g.nactive)
		conn_put(&g, g.active[0]);
	while (g.free_list) {
		struct lg_conn *c = g.free_list;

		g.free_list = c->next_free;
		free(c);
	}
	g.io->fini(&g);
	free(g.active);
	free(g.msg);
	free(g.src);
	free(g.nat_addr);
	free(g.login_cmd);
	free(g.rcpt_cmd);
	SSL_SESSION_free(g.session);
	SSL_CTX_free(g.ctx);
	return rc;
}
