/*
 * sluice-loadgen's command line: one table gives getopt its options and
 * --help its text (docs/loadgen.md explains each at length). Every
 * refusal names the option and exits 2; nothing is guessed.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "lg.h"

enum {
	O_HOST = 256, O_PORT, O_WORKLOAD, O_PROTOCOL, O_TLS, O_IMPLICIT, O_TLS_VERSION,
	O_SIG, O_PIN, O_RESUME, O_VERIFY, O_CA, O_SERVERNAME, O_CONCURRENCY, O_RATE,
	O_MAX_INFLIGHT, O_DURATION, O_COUNT, O_TIMEOUT, O_SIZE, O_FROM, O_TO, O_RCPT,
	O_EHLO, O_SUBJECT, O_USER, O_PASSWORD, O_PASS, O_SOURCE, O_JSON, O_PROGRESS,
	O_NO_PROGRESS, O_NATIVE, O_NATIVE_ADDR, O_NATIVE_ADDRS, O_NATIVE_QUEUES, O_NATIVE_CPU, O_HELP,
	O_IDLE_RELEASE, O_PROBE,
};

struct optdef {
	const char *name;
	int id;
	const char *arg;        /* metavariable; NULL: a flag */
	const char *help;       /* NULL: a hidden alias */
};

static const struct optdef optdefs[] = {
	{ "host", O_HOST, "HOST", "server address or name, IPv4 (127.0.0.1)" },
	{ "port", O_PORT, "N", "server port (default by protocol and --tls: 25/465, 143/993, 110/995)" },
	{ "workload", O_WORKLOAD, "W", "handshake | resume | smtp | imap | pop3 | bulk | idle" },
	{ "protocol", O_PROTOCOL, "P", "smtp | imap | pop3: for handshake, resume, idle "
	  "(needed with --tls starttls)" },
	{ "tls", O_TLS, "MODE", "starttls | implicit | none (smtp, imap, pop3, bulk: starttls; "
	  "handshake, resume, idle: implicit)" },
	{ "implicit", O_IMPLICIT, NULL, NULL },
	{ "tls-version", O_TLS_VERSION, "V", "1.2 | 1.3: offer only that version (both)" },
	{ "sig", O_SIG, "S", "ecdsa | rsa: offer only that signature scheme (OpenSSL's list)" },
	{ "pin", O_PIN, NULL, "the rig's client: one version (1.3), one scheme (ecdsa), "
	  "X25519, AES-128-GCM" },
	{ "resume", O_RESUME, NULL, "offer the newest TLS session held; report the fraction resumed" },
	{ "verify", O_VERIFY, NULL, "verify the server's certificate and name (default: not)" },
	{ "ca", O_CA, "FILE", "trust anchors for --verify, PEM (the system's); implies --verify" },
	{ "servername", O_SERVERNAME, "NAME", "SNI and the name --verify checks (--host if a name)" },
	{ "concurrency", O_CONCURRENCY, "C", "closed loop: C ops in flight (16)" },
	{ "rate", O_RATE, "R", "open loop: R ops started per second, timed from when due" },
	{ "max-inflight", O_MAX_INFLIGHT, "M", "open loop: an op due beyond M in flight fails "
	  "as overload (10000)" },
	{ "duration", O_DURATION, "S", "start ops for S seconds, then let those in flight end" },
	{ "count", O_COUNT, "N", "N ops (idle: N connections held)" },
	{ "idle-release", O_IDLE_RELEASE, NULL, "idle: a connection parked after TLS frees its "
	  "SSL and read buffer, keeping only its TCP connection (nothing more is read)" },
	{ "probe", O_PROBE, "K", "idle: once all are held, K new sessions one after another, "
	  "timed (the latency under that load)" },
	{ "timeout", O_TIMEOUT, "S", "per op (30)" },
	{ "size", O_SIZE, "B", "message size in bytes (smtp 4096, bulk 10485760)" },
	{ "from", O_FROM, "ADDR", "MAIL FROM (loadgen@bench.test)" },
	{ "to", O_TO, "ADDR", "RCPT TO (sink@bench.test)" },
	{ "rcpt", O_RCPT, "ADDR", NULL },
	{ "ehlo", O_EHLO, "NAME", "the EHLO name (loadgen.bench)" },
	{ "subject", O_SUBJECT, "TEXT", "the message's Subject (sluice-loadgen)" },
	{ "user", O_USER, "U", "imap LOGIN, pop3 USER (bob); smtp: AUTH PLAIN after EHLO "
	  "when given" },
	{ "password", O_PASSWORD, "P", "imap LOGIN, pop3 PASS, smtp AUTH (secret)" },
	{ "pass", O_PASS, "P", NULL },
	{ "source", O_SOURCE, "IP[/N]", "bind clients to N addresses from IP up, round robin" },
	{ "json", O_JSON, NULL, "one JSON object on stdout instead of the summary" },
	{ "progress", O_PROGRESS, NULL, "a progress line a second on stderr (default when "
	  "stderr is a terminal)" },
	{ "no-progress", O_NO_PROGRESS, NULL, "no progress line" },
	{ "native", O_NATIVE, "VDEV", "the native transport (no kernel on the data path): a DPDK "
	  "port, e.g. net_memif0,role=client,socket=/tmp/m.sock" },
	{ "native-addr", O_NATIVE_ADDR, "A/L", "native: the first client address and its prefix" },
	{ "native-addrs", O_NATIVE_ADDRS, "N", "native: N client addresses from A up, in turn (1)" },
	{ "native-queues", O_NATIVE_QUEUES, "N", "native: RX/TX queue pairs, all polled (1); a "
	  "memif server with N cores answers on N rings" },
	{ "native-cpu", O_NATIVE_CPU, "N", "native: the CPU of the loop (the first allowed)" },
	{ "help", O_HELP, NULL, "this text" },
};
#define NOPTS (sizeof(optdefs) / sizeof(optdefs[0]))

static void usage(FILE *f)
{
	unsigned i;

	fprintf(f, "usage: sluice-loadgen --workload W [--host HOST] [--port N] "
		"(--duration S | --count N) [options]\n");
	for (i = 0; i < NOPTS; i++) {
		char left[40];

		if (!optdefs[i].help)
			continue;
#ifndef LG_NATIVE       /* the rig reads --help to know whether --native is there */
		if (optdefs[i].id >= O_NATIVE && optdefs[i].id <= O_NATIVE_CPU)
			continue;
#endif
		snprintf(left, sizeof(left), "--%s%s%s", optdefs[i].name,
			 optdefs[i].arg ? " " : "", optdefs[i].arg ? optdefs[i].arg : "");
		fprintf(f, "  %-22s %s\n", left, optdefs[i].help);
	}
	fprintf(f, "Exit status: 0 every op succeeded, 1 some failed, 2 bad usage. "
		"See docs/loadgen.md.\n");
}

static int bad(const char *opt, const char *fmt, const char *val)
{
	fprintf(stderr, "sluice-loadgen: --%s: ", opt);
	fprintf(stderr, fmt, val);
	fprintf(stderr, " (see --help)\n");
	return -EINVAL;
}

/* A number in [lo, hi], the whole argument; 0 or -EINVAL (said). */
static int num(const char *opt, const char *v, double lo, double hi, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || *end || d < lo || d > hi) {
		char msg[96];

		snprintf(msg, sizeof(msg), "'%%s' is not a number from %g to %g", lo, hi);
		return bad(opt, msg, v);
	}
	*out = d;
	return 0;
}

/* One of a list of words: its index, or -EINVAL (said). */
static int word(const char *opt, const char *v, const char *const *words, unsigned n)
{
	char list[160] = "";
	unsigned i;

	for (i = 0; i < n; i++)
		if (words[i] && !strcmp(v, words[i]))
			return (int)i;
	for (i = 0; i < n; i++)
		if (words[i])
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 list[0] ? ", " : "", words[i]);
	fprintf(stderr, "sluice-loadgen: --%s: '%s' is not one of %s (see --help)\n",
		opt, v, list);
	return -EINVAL;
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
		return bad("source", "'%s' is not IPv4[/N] with N from 1 to 65536", arg);
	free(g->src);
	if (!(g->src = calloc(n, sizeof(*g->src))))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		g->src[i].sin_family = AF_INET;
		g->src[i].sin_addr.s_addr = htonl(ntohl(a.s_addr) + i);
	}
	g->nsrc = n;
	return 0;
}

/* --host: an IPv4 address, or a name resolved once now (IPv4). */
static int resolve(struct lg *g, const char *host)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	int r;

	if (inet_aton(host, &g->dst.sin_addr))
		return 0;
	if ((r = getaddrinfo(host, NULL, &hints, &ai)) != 0) {
		fprintf(stderr, "sluice-loadgen: --host: %s: %s (see --help)\n", host,
			gai_strerror(r));
		return -EINVAL;
	}
	g->dst.sin_addr = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
	freeaddrinfo(ai);
	if (!g->servername)             /* a name: the one the server expects */
		g->servername = host;
	return 0;
}

/* The usual port of a protocol over a TLS mode (RFC 8314 §7.3 for the
 * implicit ones; 25 not 587 for SMTP: what an MX listens on). */
static long default_port(enum lg_proto p, enum lg_tls t)
{
	static const long ports[][3] = {
		[LG_P_SMTP] = { [LG_TLS_IMPLICIT] = 465, [LG_TLS_STARTTLS] = 25, [LG_TLS_NONE] = 25 },
		[LG_P_IMAP] = { [LG_TLS_IMPLICIT] = 993, [LG_TLS_STARTTLS] = 143, [LG_TLS_NONE] = 143 },
		[LG_P_POP3] = { [LG_TLS_IMPLICIT] = 995, [LG_TLS_STARTTLS] = 110, [LG_TLS_NONE] = 110 },
	};

	return p == LG_P_ANY ? 0 : ports[p][t];
}

/* What the options leave open, decided; 0 or -EINVAL (said). */
static int settle(struct lg *g, const char *host, long port, int tls_mode, int proto)
{
	static const enum lg_proto own[WL_COUNT] = {
		[WL_SMTP] = LG_P_SMTP, [WL_BULK] = LG_P_SMTP, [WL_IMAP] = LG_P_IMAP,
		[WL_POP3] = LG_P_POP3,
	};
	static const char *const pnames[] = { "any", "smtp", "imap", "pop3" };
	bool session = own[g->wl] != LG_P_ANY;

	if (session && proto >= 0 && (enum lg_proto)proto != own[g->wl])
		return bad("protocol", "'%s' does not fit the workload (it speaks its own)",
			   pnames[proto]);
	g->proto = session ? own[g->wl] : proto >= 0 ? (enum lg_proto)proto : LG_P_ANY;
	g->tls_mode = tls_mode >= 0 ? (enum lg_tls)tls_mode
				    : session ? LG_TLS_STARTTLS : LG_TLS_IMPLICIT;
	g->implicit = g->tls_mode == LG_TLS_IMPLICIT;
	if (!session && g->tls_mode == LG_TLS_NONE)
		return bad("tls", "'%s': this workload is a TLS handshake", "none");
	if (g->tls_mode == LG_TLS_STARTTLS && g->proto == LG_P_ANY)
		return bad("tls", "'%s' needs --protocol smtp, imap or pop3", "starttls");
	if (g->wl == WL_RESUME)
		g->resume = true;
	if (!port && !(port = default_port(g->proto, g->tls_mode)))
		return bad("port", "%s", "required with this workload (no --protocol to take "
			   "the usual port from)");
	g->dst.sin_family = AF_INET;
	g->dst.sin_port = htons((uint16_t)port);
	g->host = host;
	if (resolve(g, host) < 0)
		return -EINVAL;
	if (g->wl == WL_IDLE ? !g->count : (!g->count && g->duration <= 0)) {
		fprintf(stderr, "sluice-loadgen: give --duration or --count%s (see --help)\n",
			g->wl == WL_IDLE ? " (idle: --count)" : "");
		return -EINVAL;
	}
	if ((g->idle_release || g->probe_n) && g->wl != WL_IDLE)
		return bad(g->probe_n ? "probe" : "idle-release", "%s", "only with the idle workload");
	if (g->idle_release && g->tls_mode == LG_TLS_NONE)
		return bad("idle-release", "%s", "needs TLS (it frees the SSL of a parked connection)");
	if (g->ca_file)
		g->verify = true;
	if (g->pin) {                   /* the rig's client, unless told otherwise */
		if (!g->tls_version)
			g->tls_version = TLS1_3_VERSION;
		if (!g->sig)
			g->sig = "ecdsa";
	}
	if (!g->msg_size)
		g->msg_size = g->wl == WL_BULK ? 10u << 20 : 4096;
	return 0;
}

/* Options into g; 0, 1 (--help printed), or -EINVAL with a message naming
 * the option on stderr. */
int lg_parse_args(struct lg *g, int argc, char **argv)
{
	static const char *const tls_words[] = {
		[LG_TLS_IMPLICIT] = "implicit", [LG_TLS_STARTTLS] = "starttls",
		[LG_TLS_NONE] = "none",
	};
	static const char *const proto_words[] = { NULL, "smtp", "imap", "pop3" };
	static const char *const sig_words[] = { "ecdsa", "rsa" };
	struct option opts[NOPTS + 1];
	const char *host = "127.0.0.1";
	int tls_mode = -1, proto = -1, o, i;
	long port = 0;
	double d;

	memset(opts, 0, sizeof(opts));
	for (i = 0; i < (int)NOPTS; i++)
		opts[i] = (struct option){ optdefs[i].name, optdefs[i].arg ? 1 : 0, NULL,
					   optdefs[i].id };
	g->concurrency = 16;
	g->max_inflight = 10000;
	g->timeout = 30;
	g->user = "bob";
	g->password = "secret";
	g->mail_from = "loadgen@bench.test";
	g->rcpt_to = "sink@bench.test";
	g->ehlo_name = "loadgen.bench";
	g->subject = "sluice-loadgen";
	g->progress = isatty(2);
	g->wl = WL_COUNT;
	g->io = &lg_io_kernel;
	g->nat_cpu = -1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		const char *name = "";

		for (i = 0; i < (int)NOPTS; i++)
			if (optdefs[i].id == o)
				name = optdefs[i].name;
		switch (o) {
		case O_HOST: host = optarg; break;
		case O_PORT:
			if (num(name, optarg, 1, 65535, &d) < 0)
				return -EINVAL;
			port = (long)d;
			break;
		case O_WORKLOAD:
			if ((i = word(name, optarg, lg_workload_names, WL_COUNT)) < 0)
				return -EINVAL;
			g->wl = (enum lg_workload)i;
			g->wl_name = lg_workload_names[i];
			break;
		case O_PROTOCOL:
			if ((proto = word(name, optarg, proto_words, 4)) < 0)
				return -EINVAL;
			break;
		case O_TLS:
			/* before --tls named the mode it named the version */
			if (!strcmp(optarg, "1.2") || !strcmp(optarg, "1.3")) {
				g->tls_version = optarg[2] == '2' ? TLS1_2_VERSION : TLS1_3_VERSION;
				break;
			}
			if ((tls_mode = word(name, optarg, tls_words, 3)) < 0)
				return -EINVAL;
			break;
		case O_IMPLICIT: tls_mode = LG_TLS_IMPLICIT; break;
		case O_TLS_VERSION:
			if (strcmp(optarg, "1.2") && strcmp(optarg, "1.3"))
				return bad(name, "'%s' is not 1.2 or 1.3", optarg);
			g->tls_version = optarg[2] == '2' ? TLS1_2_VERSION : TLS1_3_VERSION;
			break;
		case O_SIG:
			if ((i = word(name, optarg, sig_words, 2)) < 0)
				return -EINVAL;
			g->sig = sig_words[i];
			break;
		case O_PIN: g->pin = true; break;
		case O_RESUME: g->resume = true; break;
		case O_VERIFY: g->verify = true; break;
		case O_CA:
			if (access(optarg, R_OK) < 0)
				return bad(name, "cannot read '%s'", optarg);
			g->ca_file = optarg;
			break;
		case O_SERVERNAME: g->servername = optarg; break;
		case O_CONCURRENCY:
			if (num(name, optarg, 1, 10000000, &d) < 0)
				return -EINVAL;
			g->concurrency = (unsigned)d;
			break;
		case O_RATE:
			if (num(name, optarg, 0.001, 10000000, &g->rate) < 0)
				return -EINVAL;
			break;
		case O_MAX_INFLIGHT:
			if (num(name, optarg, 1, 10000000, &d) < 0)
				return -EINVAL;
			g->max_inflight = (unsigned)d;
			break;
		case O_DURATION:
			if (num(name, optarg, 0.001, 1e7, &g->duration) < 0)
				return -EINVAL;
			break;
		case O_COUNT:
			if (num(name, optarg, 1, 1e15, &d) < 0)
				return -EINVAL;
			g->count = (uint64_t)d;
			break;
		case O_IDLE_RELEASE: g->idle_release = true; break;
		case O_PROBE:
			if (num(name, optarg, 1, 1000000, &d) < 0)
				return -EINVAL;
			g->probe_n = (unsigned)d;
			break;
		case O_TIMEOUT:
			if (num(name, optarg, 0.001, 1e6, &g->timeout) < 0)
				return -EINVAL;
			break;
		case O_SIZE:
			if (num(name, optarg, 1, 1ull << 40, &d) < 0)
				return -EINVAL;
			g->msg_size = (size_t)d;
			break;
		case O_FROM: g->mail_from = optarg; break;
		case O_TO: case O_RCPT: g->rcpt_to = optarg; break;
		case O_EHLO: g->ehlo_name = optarg; break;
		case O_SUBJECT: g->subject = optarg; break;
		case O_USER:
			g->user = optarg;
			g->smtp_auth = true;
			break;
		case O_PASSWORD: case O_PASS: g->password = optarg; break;
		case O_SOURCE:
			if (parse_sources(g, optarg) < 0)
				return -EINVAL;
			break;
		case O_JSON: g->json = true; break;
		case O_PROGRESS: g->progress = true; break;
		case O_NO_PROGRESS: g->progress = false; break;
		case O_NATIVE:
#ifdef LG_NATIVE
			g->nat_dev = optarg;
			g->io = &lg_io_native;
			break;
#else
			return bad("native", "'%s': this build has no DPDK (libdpdk-dev)", optarg);
#endif
		case O_NATIVE_ADDR:
			g->nat_addr = optarg;
			break;
		case O_NATIVE_ADDRS:
			if (num(name, optarg, 1, 256, &d) < 0)
				return -EINVAL;
			g->nat_addrs = (unsigned)d;
			break;
		case O_NATIVE_QUEUES:
			if (num(name, optarg, 1, 16, &d) < 0)
				return -EINVAL;
			g->nat_queues = (unsigned)d;
			break;
		case O_NATIVE_CPU:
			if (num(name, optarg, 0, 4095, &d) < 0)
				return -EINVAL;
			g->nat_cpu = (int)d;
			break;
		case O_HELP:
			usage(stdout);
			return 1;
		case ':':
			fprintf(stderr, "sluice-loadgen: %s needs a value (see --help)\n",
				argv[optind - 1]);
			return -EINVAL;
		default:
			fprintf(stderr, "sluice-loadgen: unknown option %s (see --help)\n",
				argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluice-loadgen: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return -EINVAL;
	}
	if (g->wl == WL_COUNT) {
		fprintf(stderr, "sluice-loadgen: --workload is required: handshake, resume, smtp,"
			" imap, pop3, bulk or idle (see --help)\n");
		return -EINVAL;
	}
	if (g->nat_dev && (!g->nat_addr || g->nsrc))
		return bad("native", "'%s' needs --native-addr, and no --source", g->nat_dev);
	return settle(g, host, port, tls_mode, proto);
}
