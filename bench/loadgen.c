/*
 * sluice-loadgen: a load generator for mail servers (docs/loadgen.md), and
 * the benchmark rig's client (bench/README.md).
 *
 *   sluice-loadgen --host mx.example --workload smtp --tls starttls \
 *                  --rate 50 --duration 60
 *
 * Workloads (lg_script.c has the scripts): handshake, resume, smtp, imap,
 * pop3, bulk, idle; each over STARTTLS, implicit TLS or none. Closed loop
 * (--concurrency C ops in flight) or open loop (--rate R ops started per
 * second whatever the server does, latency timed from when each op was
 * due). Ends after --duration seconds (ops in flight then finish) or
 * --count ops. A summary on stdout (or one JSON object with --json), a
 * progress line a second on stderr; exit 0 when every op succeeded, 1 when
 * some failed, 2 on a bad command line.
 *
 * The idle workload opens --count connections and parks them twice, each
 * time printing a line ({"phase": ...} with --json) and waiting for a line
 * on stdin: once connected before any TLS byte, once after the handshake
 * and greeting. The rig reads the server's memory at each stop.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
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

#define STDIN_TAG ((void *)1)

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
	else if (!(c = calloc(1, sizeof(*c))))
		return NULL;
	memset(c, 0, offsetof(struct lg_conn, rbuf));
	c->fd = -1;
	if (!c->rbuf && !(c->rbuf = malloc(LG_RBUF))) {
		free(c);
		return NULL;
	}
	if (g->nactive == g->cap_active) {
		unsigned cap = g->cap_active ? 2 * g->cap_active : 256;
		struct lg_conn **a = realloc(g->active, cap * sizeof(*a));

		if (!a) {
			free(c->rbuf);
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
	if (c->probe) {
		/* timed apart: the figure is a new session's latency under load */
		g->probe_done++;
		if (err < 0) {
			hist_record(&g->probe_lat, (lg_now() - c->t0) / 1000);
		} else {
			g->probe_failed++;
			g->err[err]++;
			if (why)
				lg_note_error(g, err, why);
		}
		conn_put(g, c);
		return;
	}
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
		if (why)
			lg_note_error(g, err, why);
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

/* --idle-release: the SSL (about 8 KiB of OpenSSL's client state, the
 * traffic keys with it) and the read buffer go; the parked connection is
 * its struct lg_conn and the transport's TCP connection. It can only be
 * closed from here on: the rig asks nothing more of it. */
void lg_release(struct lg *g, struct lg_conn *c)
{
	if (c->ssl) {
		SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	free(c->rbuf);
	c->rbuf = NULL;
	c->rlen = 0;
	g->released++;
}

/* Start one operation due at time t0 (a --probe session when probe): the
 * transport's TCP open. */
static void op_start_as(struct lg *g, uint64_t t0, bool probe)
{
	struct lg_conn *c = conn_get(g);
	int rc;

	if (probe)
		g->probe_started++;
	else
		g->started++;
	if (!c) {
		if (probe) {
			g->probe_done++;
			g->probe_failed++;
		} else {
			g->failed++;
		}
		g->err[LG_E_connect]++;
		return;
	}
	c->t0 = t0;
	c->deadline = lg_now() + (uint64_t)(g->timeout * 1e9);
	c->probe = probe;
	c->step = probe ? g->probe_script : g->script;
	if ((rc = g->io->connect(g, c)) < 0)
		lg_op_end(g, c, LG_E_connect, strerror(-rc));
}

static void op_start(struct lg *g, uint64_t t0)
{
	op_start_as(g, t0, false);
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
	/* --idle-release freed each held connection's SSL between live
	 * allocations: give the free pages back, so that what a held
	 * connection costs is what it holds */
	if (g->released)
		malloc_trim(0);
	if (g->json)
		printf("{\"phase\": \"%s\", \"held\": %u, \"failed\": %llu, \"released\": %llu}\n",
		       phase[g->hold_phase], g->held, (unsigned long long)g->failed,
		       (unsigned long long)g->released);
	else
		printf("%u connections held %s (%llu failed); a line on stdin goes on\n",
		       g->held, g->hold_phase ? "after TLS and the greeting" : "before TLS",
		       (unsigned long long)g->failed);
	fflush(stdout);
	g->waiting_go = true;
}

static int idle_release_all(struct lg *g);

/* A line from the rig on stdin: release the parked connections. */
static int idle_go(struct lg *g)
{
	char buf[64];
	ssize_t n = read(0, buf, sizeof(buf));

	if (n <= 0)
		return -1;              /* the rig went away: stop */
	if (!g->waiting_go)
		return 0;
	g->waiting_go = false;
	g->hold_phase++;
	if (g->hold_phase == 2 && g->probe_n && !g->probing) {
		/* the probes first, the held connections still open */
		g->probing = true;
		return 0;
	}
	return idle_release_all(g);
}

/* Let every parked connection go on (to TLS, or to its close). */
static int idle_release_all(struct lg *g)
{
	unsigned i;

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

/* --probe: one new session at a time while the rest are held; when the
 * last has ended, its line, then the held ones are let go. */
static int idle_probe(struct lg *g)
{
	if (g->probe_started < g->probe_n) {
		if (g->probe_started == g->probe_done)
			op_start_as(g, lg_now(), true);
		return 0;
	}
	if (g->probe_done < g->probe_n)
		return 0;
	g->probing = false;
	g->probe_n = 0;         /* done: the next go is the release */
	if (g->json)
		printf("{\"phase\": \"probe\", \"probes\": %u, \"failed\": %u, \"held\": %u, "
		       "\"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, \"max_us\": %llu}\n",
		       g->probe_done, g->probe_failed, g->held,
		       (unsigned long long)hist_quantile(&g->probe_lat, 0.50),
		       (unsigned long long)hist_quantile(&g->probe_lat, 0.90),
		       (unsigned long long)hist_quantile(&g->probe_lat, 0.99),
		       (unsigned long long)g->probe_lat.max);
	else
		printf("%u new sessions with %u held (%u failed): p50 %llu µs, p99 %llu µs\n",
		       g->probe_done, g->held, g->probe_failed,
		       (unsigned long long)hist_quantile(&g->probe_lat, 0.50),
		       (unsigned long long)hist_quantile(&g->probe_lat, 0.99));
	fflush(stdout);
	return idle_release_all(g);
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
	g->next_progress = g->t_begin + 1000000000u;
	for (;;) {
		uint64_t now = lg_now();
		int wait_ms = 50, go;

		if (g->rate > 0) {
			while (may_start(g, now) && g->next_due <= now) {
				/* parked idle connections are not in flight */
				if (g->nactive - g->held >= g->max_inflight) {
					g->started++;
					g->failed++;
					g->err[LG_E_overload]++;
					lg_note_error(g, LG_E_overload,
						      "due with --max-inflight ops in flight");
				} else {
					op_start(g, g->next_due);
				}
				g->next_due += (uint64_t)(1e9 / g->rate);
			}
			if (may_start(g, now))
				wait_ms = (int)((g->next_due - now) / 1000000);
			if (wait_ms > 250)      /* the progress line's clock */
				wait_ms = 250;
		} else {
			unsigned c = g->wl == WL_IDLE ? (unsigned)g->count : g->concurrency;
			unsigned budget = g->io->start_burst ? g->io->start_burst : UINT_MAX;

			while (may_start(g, now) && g->nactive < c && budget--)
				op_start(g, now);
		}
		if (!may_start(g, now) && g->nactive == 0)
			break;
		if (g->wl == WL_IDLE) {
			if (g->probing && idle_probe(g) < 0)
				return -ENOMEM;
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
		if (g->progress && now >= g->next_progress)
			lg_progress(g, now);
	}
	g->t_end_start = lg_now();
	return 0;
}

/* ------------------------------------------------------------- main --- */

/* Exit status: 0 every op succeeded, 1 some failed (or the run could not
 * go on), 2 a bad command line (lg_opts.c says which option). */
int main(int argc, char **argv)
{
	static struct lg g;             /* the histogram is large: not on the stack */
	struct rlimit rl;
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	switch (lg_parse_args(&g, argc, argv)) {
	case 0:
		break;
	case 1:                 /* --help */
		return 0;
	default:
		return 2;
	}
	/* thousands of connections: take every descriptor allowed */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	if (!(g.ctx = lg_client_ctx(&g))) {
		unsigned long e = ERR_get_error();

		/* the one file the options name: a usage error */
		fprintf(stderr, "sluice-loadgen: %s: %s\n", g.ca_file ? "--ca" : "client TLS context",
			ERR_error_string(e, NULL));
		rc = g.ca_file ? 2 : 1;
		goto out;
	}
	if (lg_script_init(&g) < 0 || lg_make_message(&g) < 0) {
		fprintf(stderr, "sluice-loadgen: set-up failed\n");
		goto out;
	}
	if (g.io->init(&g) < 0)
		goto out;
	if (g.wl == WL_IDLE && g.rate > 0)
		g.hold_phase = 1;       /* no stop before TLS: the next is "tls" */
	if ((rc = run(&g)) < 0) {
		fprintf(stderr, "sluice-loadgen: %s\n", rc == -EPIPE ? "stdin closed before the idle"
			" phases ended" : strerror(-rc));
		rc = 1;
		goto out;
	}
	lg_report(&g);
	rc = g.failed ? 1 : 0;
out:
	while (g.nactive)
		conn_put(&g, g.active[0]);
	while (g.free_list) {
		struct lg_conn *c = g.free_list;

		g.free_list = c->next_free;
		free(c->rbuf);
		free(c);
	}
	g.io->fini(&g);
	free(g.active);
	free(g.msg);
	free(g.src);
	free(g.script);
	free(g.probe_script);
	while (g.ncmds)
		free(g.cmds[--g.ncmds]);
	SSL_SESSION_free(g.session);
	SSL_CTX_free(g.ctx);
	return rc;
}
