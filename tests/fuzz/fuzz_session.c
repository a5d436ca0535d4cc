/*
 * The session layer (dataplane/session/) driven by a script: client
 * connections on a listener of each protocol and TLS mode, through the
 * real engines (SMTP, IMAP, POP3, FTP), the real timer wheel and backend pool,
 * on a scripted in-memory stack (struct stream_ops and struct io_ops of
 * its own: the target is the session's state machine, not a network).
 * tests/fuzz/session_seeds.py writes the seed corpus in this encoding:
 *
 *   byte 0        the listener: FZ_LISTENERS[b % N] (protocol, tls mode)
 *   then ops      op = b % OP__COUNT, with its argument bytes:
 *     CLI_DATA n bytes    the client sends min(n, rest) bytes
 *     BE_DATA  n bytes    the backend sends them (queued while connecting)
 *     CLI_FIN, BE_FIN     that side finished sending
 *     CLI_RST, BE_RST     that side reset the connection
 *     TIME n              the clock moves n*n*4 ms (in 5 s passes)
 *     CLI_WIN n, BE_WIN n what that side accepts from now on: 0 nothing,
 *                         255 everything, else n*64 bytes more
 *     CONNECT n           the backend's connect: n%3 0 up, 1 refused,
 *                         2 the next connect fails locally (EMFILE)
 *     WORKER              the handshake jobs out come back failed
 *     TICK n              the clock moves n ms (one pass)
 *     DRAIN               a drain starts: goodbyes where they are safe
 *                         (session/goodbye.c), as drain.c's sweep
 *     CUT                 the drain's deadline: every session cut
 *     ACCEPT              another client connects (on the same listener);
 *                         the client and backend ops are its from now on
 *     NEXT                the next open client's turn
 *
 * After every op the core's pass runs as core.c runs it (jobs back,
 * run-again list, timer wheel, reap) until no session asks to run again.
 *
 * TLS: no handshake completes here (no worker runs; a job posted comes
 * back failed on WORKER, or the handshake times out). Covered: tls: off,
 * the plaintext dialogue and STARTTLS of starttls/required listeners (the
 * OK, pipelined bytes discarded, a repeated STARTTLS, the ClientHello read
 * by tls/hello and certsel on a generated cert set, plaintext after the OK),
 * the held greeting of detect_implicit_ms, implicit listeners up to the
 * first job, and the relay of plaintext sessions with the late STARTTLS.
 *
 * Aborts on (besides ASAN/UBSAN/LSan findings):
 *   - bytes to the backend of a listener whose tls forbids plaintext to
 *     it (required, implicit) or after STARTTLS was answered, except the
 *     QUIT/LOGOUT of a retiring backend (rule 2.4, 2.7);
 *   - anything for the client after the STARTTLS OK but that OK again,
 *     twice at most, then TLS records (rule 2.1: nothing after STARTTLS
 *     is executed; a TLS alert may refuse the ClientHello);
 *   - a session that keeps running without input (FZ_PASSES passes);
 *   - at the end, after sess_close_all: a session, a stream, a timer or a
 *     snapshot reference left.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config.h"
#include "core.h"
#include "fpstat.h"
#include "fuzz_args.h"
#include "io/io.h"
#include "log.h"
#include "session/backend.h"
#include "session/session.h"
#include "session/session_int.h"
#include "snap.h"
#include "tls.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__ubsan_default_options(void);

/* Undefined behaviour in the session layer is a finding, not a line. */
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_PASSES   1000u     /* passes after one op before it is a spin */
#define FZ_SIDES    16u       /* streams per input */
#define FZ_JOBS     8u
#define FZ_OUT_MAX  (1u << 20) /* what a side records of what it got */
#define FZ_STEP_MS  5000u
#define FZ_WIN_ALL  UINT32_MAX

enum { CLI_DATA, BE_DATA, CLI_FIN, BE_FIN, CLI_RST, BE_RST, TIME, CLI_WIN, BE_WIN,
       CONNECT, WORKER, TICK, DRAIN, CUT, ACCEPT, NEXT, OP__COUNT };

/* Short timeouts, so that a few TIME ops reach each of them. */
static const char fz_yaml[] =
	"hostname: mx.fuzz.test\n"
	"timeouts: {plaintext: 30, handshake: 10, idle: 60}\n"
	"backends:\n"
	"  - {name: pf, protocol: smtp, proxy: v2, connect_timeout: 3,\n"
	"     servers: [192.0.2.25:10025, 192.0.2.26:10025]}\n"
	"  - {name: dvi, protocol: imap, proxy: v1, connect_timeout: 3,\n"
	"     servers: [192.0.2.143:10143]}\n"
	"  - {name: dvp, protocol: pop3, proxy: none, connect_timeout: 3,\n"
	"     servers: [192.0.2.110:10110]}\n"
	"  - {name: vs, protocol: ftp, proxy: none, connect_timeout: 3,\n"
	"     servers: [192.0.2.21:10021]}\n"
	"listeners:\n"
#define L(n, port, proto, tls, be, extra) \
	"  - {name: " n ", address: '127.0.0.1:" port "', protocol: " proto \
	", tls: " tls ", backend: " be extra "}\n"
	L("s-off", "2001", "smtp", "'off'", "pf", "")
	L("s-stls", "2002", "smtp", "starttls", "pf", "")
	L("s-req", "2003", "smtp", "required", "pf", "")
	L("s-impl", "2004", "smtp", "implicit", "pf", "")
	L("s-detect", "2005", "smtp", "starttls", "pf", ", detect_implicit_ms: 300")
	L("i-off", "2011", "imap", "'off'", "dvi", "")
	L("i-stls", "2012", "imap", "starttls", "dvi", "")
	L("i-req", "2013", "imap", "required", "dvi", "")
	L("i-impl", "2014", "imap", "implicit", "dvi", "")
	L("p-off", "2021", "pop3", "'off'", "dvp", "")
	L("p-stls", "2022", "pop3", "starttls", "dvp", "")
	L("p-req", "2023", "pop3", "required", "dvp", "")
	L("p-impl", "2024", "pop3", "implicit", "dvp", "")
	L("f-off", "2031", "ftp", "'off'", "vs", ", ftp: {data_ports: 2100-2101}")
	L("f-stls", "2032", "ftp", "starttls", "vs", ", ftp: {data_ports: 2100-2101}");
#undef L

/* One end of a scripted connection, as the session sees it. */
struct fside {
	struct stream *st;       /* where the stream lives (after open) */
	bool used, open, closed, backend;
	uint8_t *in;             /* what the peer sent, not read yet */
	uint32_t in_len, in_cap;
	bool fin, rst;           /* the peer finished / reset */
	int conn_rc;             /* backend: 0, -EINPROGRESS, -errno */
	uint32_t win;            /* what it accepts (FZ_WIN_ALL: anything) */
	uint8_t *out;            /* what it got */
	uint32_t out_len, out_cap;
	/* client: rule 2.1 bookkeeping */
	bool marked;
	uint32_t mark;           /* bytes up to the STARTTLS OK */
	uint32_t ok_len;         /* the OK's length (its last line) */
};

static struct {
	struct cfg *cfg;
	struct be_pool *pools;
	struct listener *ls;
	struct tls_certset *set;
	uint16_t set_id;
	struct core core;
	struct snap snap;
	struct fside side[FZ_SIDES];
	struct tls_job *jobs[FZ_JOBS];  /* posted, not back */
	unsigned n_jobs;
	struct tls_job *back[FZ_JOBS];  /* to hand back in the next pass */
	unsigned n_back;
	bool connect_fails;
	struct fside *cur;       /* the client the ops speak for */
	const struct listener *l; /* the input's listener */
} F;

static void fz_trace(void);
static int fz_err_fd = 2;        /* stderr before -close_fd_mask=2 */

static void fz_die(const char *what)
{
	dprintf(fz_err_fd, "fuzz_session: %s\n", what);
	fz_trace();
	abort();
}

static void fz_append(uint8_t **p, uint32_t *len, uint32_t *cap, const uint8_t *d, uint32_t n)
{
	if (*len + n > FZ_OUT_MAX)
		n = FZ_OUT_MAX - *len;
	if (!n)
		return;
	if (*len + n > *cap) {
		uint32_t c = *cap ? *cap : 256;

		while (c < *len + n)
			c *= 2;
		if (!(*p = realloc(*p, c)))
			fz_die("out of memory");
		*cap = c;
	}
	memcpy(*p + *len, d, n);
	*len += n;
}

static struct fside *fz_side(bool backend)
{
	for (unsigned i = 0; i < FZ_SIDES; i++)
		if (!F.side[i].used) {
			struct fside *f = &F.side[i];

			memset(f, 0, sizeof(*f));
			f->used = true;
			f->backend = backend;
			f->win = FZ_WIN_ALL;
			return f;
		}
	return NULL;
}

static const struct stream_ops fz_stream_ops;

/* The current client's stream, or its session's backend, if open. (An
 * open client stream is inside a live session: sess_finish closes it
 * before the session is freed.) */
static struct fside *fz_live(bool backend)
{
	struct fside *c = F.cur;
	const struct sess *s;

	if (!c || !c->open || c->closed)
		return NULL;
	if (!backend)
		return c;
	s = c->st->owner;
	if (s->be.ops != &fz_stream_ops || !stream_is_open(&s->be))
		return NULL;
	return s->be.stack;
}

/* ---- the invariants ------------------------------------------------------ */

/* The client's bytes so far, and the ones still queued for it. */
static void fz_mark_starttls(const struct sess *s, struct fside *cli)
{
	uint32_t q = buf_len(&s->cout), n;
	uint8_t *all = NULL;
	uint32_t len = 0, cap = 0, i;

	if (cli->marked || !s->starttls || s->tls)
		return;
	fz_append(&all, &len, &cap, cli->out, cli->out_len);
	if (q)
		fz_append(&all, &len, &cap, buf_head(&s->cout), q);
	/* The OK is the last line queued. */
	n = len;
	if (n < 2 || all[n - 1] != '\n')
		fz_die("STARTTLS answered without a whole reply line");
	for (i = n - 1; i > 0 && all[i - 1] != '\n'; i--)
		;
	cli->marked = true;
	cli->mark = len;
	cli->ok_len = n - i;
	free(all);
}

/* TLS records from p on (an alert refusing the ClientHello, say): whole or
 * the last one on its way, nothing else. */
static bool fz_tls_records(const uint8_t *p, const uint8_t *end)
{
	while (end - p >= 5) {
		size_t len = (size_t)p[3] << 8 | p[4];

		if (p[0] < 0x14 || p[0] > 0x17 || p[1] != 0x03 || len > 16384 + 2048)
			return false;
		if ((size_t)(end - p) < 5 + len)
			return true;
		p += 5 + len;
	}
	return p == end || ((p[0] >= 0x14 && p[0] <= 0x17) && (end - p < 2 || p[1] == 0x03));
}

/* What the client got after the OK: the OK again (IMAP: with the repeat's
 * own tag; the same words from the first space on), twice at most; then
 * only TLS records. */
static void fz_check_after_starttls(const struct fside *cli)
{
	const uint8_t *ok, *ok_sp, *p, *end = cli->out + cli->out_len;
	unsigned lines = 0;

	if (!cli->marked || cli->out_len <= cli->mark)
		return; /* (the OK itself may still be on its way) */
	ok = cli->out + cli->mark - cli->ok_len;
	if (!(ok_sp = memchr(ok, ' ', cli->ok_len)))
		fz_die("a STARTTLS OK without a space");
	for (p = cli->out + cli->mark; p < end; lines++) {
		const uint8_t *nl, *sp;
		size_t rest = (size_t)(ok + cli->ok_len - ok_sp);

		if (*p >= 0x14 && *p <= 0x17) {
			if (!fz_tls_records(p, end))
				fz_die("client bytes after the STARTTLS OK: not TLS records");
			return;
		}
		if (!(nl = memchr(p, '\n', (size_t)(end - p))))
			return; /* a line half-sent: judged when it is whole */
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (lines == 2 || !sp || (size_t)(nl + 1 - sp) != rest || memcmp(sp, ok_sp, rest))
			fz_die("client bytes after the STARTTLS OK (rule 2.1)");
		p = nl + 1;
	}
}

/* Rule 2.4/2.7: what may go to the backend now. */
static void fz_check_to_backend(const struct sess *s)
{
	enum cfg_tls t = s->l->cfg->tls;

	if (s->tls)
		fz_die("TLS up without a worker");
	if (s->be_retiring)
		return; /* its QUIT/LOGOUT */
	if (t == CFG_TLS_REQUIRED || t == CFG_TLS_IMPLICIT)
		fz_die("plaintext to the backend of a listener that requires TLS");
	if (s->starttls)
		fz_die("bytes to the backend after STARTTLS");
	if (s->state != SS_BACKEND && s->state != SS_RELAY && s->state != SS_CLOSING)
		fz_die("bytes to the backend outside SS_BACKEND/SS_RELAY");
	/* The client's bytes go through the engine's tracker (c2b) or as the
	 * engine's own to_backend while the backend opens: nothing else. */
	if (!s->c2b && s->state != SS_BACKEND)
		fz_die("bytes to the backend with the client's direction shut");
}

/* What core.c holds for the process (it is not linked here). */
struct runtime RT;

/* ---- the scripted stack ---------------------------------------------------- */

static int fz_open(struct stream *s, stream_wake_fn wake, void *arg)
{
	struct fside *f = s->stack;

	f->st = s;
	f->open = true;
	s->wake = wake;
	s->wake_arg = arg;
	s->readable = f->in_len || f->fin || f->rst;
	return 0;
}

static ssize_t fz_recv(struct stream *s, struct buf *b)
{
	struct fside *f = s->stack;
	uint8_t *p;
	uint32_t room, n;

	if (s->eof || s->failed || !s->readable || s->connecting)
		return 0;
	if (f->rst) {
		s->failed = true;
		s->err = ECONNRESET;
		return 0;
	}
	if (!f->in_len) {
		if (f->fin)
			s->eof = true;
		else
			s->readable = false;
		return 0;
	}
	if (buf_space(b, &p, &room) < 0 || room == 0)
		return 0;
	n = f->in_len < room ? f->in_len : room;
	memcpy(p, f->in, n);
	b->tail += n;
	memmove(f->in, f->in + n, f->in_len - n);
	f->in_len -= n;
	return n;
}

static ssize_t fz_send(struct stream *s, struct buf *b)
{
	struct fside *f = s->stack;
	uint32_t n = buf_len(b);

	if (f->closed || s->failed || s->connecting || !s->writable || !n)
		return 0;
	if (f->rst) {
		s->failed = true;
		s->err = EPIPE;
		return 0;
	}
	if (s->shut_wr)
		fz_die("send after our FIN");
	if (f->backend) {
		fz_check_to_backend(s->owner);
	} else {
		fz_mark_starttls(s->owner, f);
	}
	if (f->win != FZ_WIN_ALL && n > f->win)
		n = f->win;
	if (!n) {
		s->writable = false;
		return 0;
	}
	fz_append(&f->out, &f->out_len, &f->out_cap, buf_head(b), n);
	if (f->win != FZ_WIN_ALL)
		f->win -= n;
	if (n < buf_len(b))
		s->writable = false;
	buf_consume(b, n);
	if (!f->backend)
		fz_check_after_starttls(f);
	return n;
}

static void fz_shutdown_wr(struct stream *s)
{
	s->shut_wr = true;
}

static int fz_connected(struct stream *s)
{
	struct fside *f = s->stack;

	if (f->conn_rc == 0)
		s->connecting = false;
	else if (f->conn_rc == -EINPROGRESS)
		s->writable = false;
	return f->conn_rc;
}

static void fz_close(struct stream *s)
{
	struct fside *f = s->stack;

	if (f->closed)
		fz_die("stream closed twice");
	f->closed = true;
	s->kind = SK_DEAD;
}

static int fz_addrs(struct stream *s, struct sockaddr_storage *peer,
		    struct sockaddr_storage *local)
{
	struct sockaddr_in *p = (struct sockaddr_in *)peer, *l = (struct sockaddr_in *)local;

	memset(peer, 0, sizeof(*peer));
	memset(local, 0, sizeof(*local));
	p->sin_family = l->sin_family = AF_INET;
	p->sin_port = htons(40000);
	l->sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.1", &p->sin_addr);
	inet_pton(AF_INET, "198.51.100.25", &l->sin_addr);
	return 0;
}

static uint32_t fz_rtt_us(const struct stream *s)
{
	return 20000;
}

static const struct stream_ops fz_stream_ops = {
	.size = sizeof(struct stream),
	.open = fz_open,
	.recv = fz_recv,
	.send = fz_send,
	.shutdown_wr = fz_shutdown_wr,
	.connected = fz_connected,
	.close = fz_close,
	.addrs = fz_addrs,
	.rtt_us = fz_rtt_us,
};

static int fz_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
		      socklen_t len)
{
	struct sess *ss = s->owner;
	struct fside *f;

	if (ss->l->cfg->tls == CFG_TLS_REQUIRED || ss->l->cfg->tls == CFG_TLS_IMPLICIT)
		fz_die("backend connected before TLS on a listener that requires it");
	if (F.connect_fails) {
		F.connect_fails = false;
		return -EMFILE;
	}
	if (!(f = fz_side(true)))
		return -EMFILE;
	s->ops = &fz_stream_ops;
	s->stack = f;
	s->kind = SK_BACKEND;
	s->fd = -1;
	s->readable = s->writable = s->eof = s->failed = s->shut_wr = false;
	s->connecting = true;
	s->err = 0;
	f->st = s;
	f->open = true;
	f->conn_rc = -EINPROGRESS;
	return 0;
}

static const struct io_ops fz_io_ops = {
	.name = "fuzz",
	.connect = fz_connect,
};

/* The worker pool, as handshake.c sees it (linked with --wrap=tlsw_post:
 * tls/worker.c may be there for its other calls): jobs stay out until
 * WORKER. */
bool __wrap_tlsw_post(unsigned core, struct tls_job *job);
bool __wrap_tlsw_post(unsigned core, struct tls_job *job)
{
	if (F.n_jobs == FZ_JOBS)
		return false;
	F.jobs[F.n_jobs++] = job;
	return true;
}

/* ---- the core's pass ---------------------------------------------------------- */

static void fz_pass(void)
{
	struct core *c = &F.core;
	unsigned n = F.n_back;

	F.n_back = 0;
	for (unsigned i = 0; i < n; i++)
		sess_job_done(F.back[i]);
	if (c->again)
		sess_run_again(c);
	wheel_advance(&c->wheel, c->now_ms, sess_timer);
	sess_reap(c);
}

/* Passes until the session rests; a session that never does spins. */
static void fz_settle(void)
{
	unsigned n;

	for (n = 0; n < FZ_PASSES; n++) {
		fz_pass();
		if (!F.core.again && !F.n_back)
			break;
	}
	if (n == FZ_PASSES)
		fz_die("a session runs again and again without input");
	for (struct sess *s = F.core.sessions; s; s = s->next)
		fz_mark_starttls(s, s->cli.stack);
}

/* The stack saw something on f's connection: wake its owner. */
static void fz_wake(struct fside *f)
{
	struct stream *s = f->st;

	if (!f->open || f->closed || s->kind == SK_DEAD)
		return;
	if (s->wake)
		s->wake(s, s->wake_arg);
}

static void fz_advance(uint64_t ms)
{
	while (ms) {
		uint64_t step = ms < FZ_STEP_MS ? ms : FZ_STEP_MS;

		F.core.now_ms += step;
		ms -= step;
		fz_settle();
	}
}

static uint32_t fz_window(uint8_t n)
{
	return n == 0 ? 0 : n == 255 ? FZ_WIN_ALL : n * 64u;
}

static void fz_set_window(struct fside *f, uint8_t n)
{
	if (!f)
		return;
	if (f->win != FZ_WIN_ALL && n && n != 255)
		f->win = f->win + fz_window(n) < f->win ? FZ_WIN_ALL : f->win + fz_window(n);
	else
		f->win = fz_window(n);
	if (f->win && !f->st->connecting) {
		f->st->writable = true;
		fz_wake(f);
	}
}

static void fz_data(struct fside *f, const uint8_t *p, uint32_t n)
{
	if (!f || f->fin || f->rst)
		return;
	fz_append(&f->in, &f->in_len, &f->in_cap, p, n);
	if (!f->st->connecting) {
		f->st->readable = true;
		fz_wake(f);
	}
}

static void fz_end(struct fside *f, bool rst)
{
	if (!f)
		return;
	if (rst)
		f->rst = true;
	else
		f->fin = true;
	if (f->st->connecting) {
		if (rst) {
			f->conn_rc = -ECONNREFUSED;
			f->st->writable = true;
			fz_wake(f);
		}
		return;
	}
	f->st->readable = true;
	fz_wake(f);
}

static void fz_connect_outcome(uint8_t n)
{
	struct fside *f = fz_live(true);

	if (n % 3 == 2) {
		F.connect_fails = true;
		return;
	}
	if (!f || !f->st->connecting || f->conn_rc != -EINPROGRESS)
		return;
	f->conn_rc = n % 3 == 0 ? 0 : -ECONNREFUSED;
	f->st->writable = true;
	if (f->conn_rc == 0 && (f->in_len || f->fin))
		f->st->readable = true;
	fz_wake(f);
}

static void fz_worker(void)
{
	for (unsigned i = 0; i < F.n_jobs; i++) {
		struct tls_job *j = F.jobs[i];

		j->status = TLSJ_FAIL;
		snprintf(j->reason, sizeof(j->reason), "fuzz: no TLS worker");
		F.back[F.n_back++] = j;
	}
	F.n_jobs = 0;
}

/* ---- set-up, once -------------------------------------------------------------- */

static void fz_init(void)
{
	struct cfg *c;
	char err[512];

	if (cfg_load_string(fz_yaml, sizeof(fz_yaml) - 1, "fuzz_session", &F.cfg, err,
			    sizeof(err)) < 0 ||
	    be_pools_init(F.cfg, &F.pools, err, sizeof(err)) < 0)
		fz_die(err);
	c = F.cfg;
	/* One generated cert set (ECDSA P-256 + RSA 2048) for every listener. */
	F.set = calloc(1, sizeof(*F.set));
	F.ls = calloc(c->n_listeners, sizeof(*F.ls));
	if (!F.set || !F.ls ||
	    tls_certset_load_listener(c, &c->listeners[1], F.set, err, sizeof(err)) < 0)
		fz_die(err);
	for (unsigned i = 0; i < c->n_listeners; i++) {
		struct listener *l = &F.ls[i];

		l->cfg = &c->listeners[i];
		l->idx = i;
		l->ops = proto_get(l->cfg->protocol);
		l->pool = &F.pools[l->cfg->be - c->backends];
		if (l->cfg->tls != CFG_TLS_OFF) {
			l->sets = &F.set;
			l->set_ids = &F.set_id;
			l->n_sets = 1;
			l->tls_available = true;
		}
	}
	F.snap.gen = 1;
	F.snap.tc.c = c;
	F.snap.listeners = F.ls;
	F.snap.n_listeners = c->n_listeners;
	F.snap.keep_cfg = true;
	RT.cfg = c;
	RT.cores = &F.core;
	RT.n_cores = 1;
	F.core.io = &fz_io_ops;
	F.core.fp = fp_table_new();
	if (!F.core.fp)
		fz_die("fp_table_new");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char quiet[] = "-close_fd_mask=2";

	/* One log line per session: to nowhere, unless asked for (the
	 * crash report still shows). */
	if (!getenv("FUZZ_SESSION_LOG")) {
		char *const add[] = { quiet };

		fuzz_args_append(argc, argv, add, 1);
		fz_err_fd = dup(2); /* what broke stays visible */
		if (fz_err_fd < 0)
			fz_err_fd = 2;
	}
	log_init(CFG_LOG_STDERR);
	fz_init();
	return 0;
}

/* ---- one input ------------------------------------------------------------------ */

static void fz_reset(void)
{
	struct core *c = &F.core;

	c->now_ms = 1000000;
	wheel_init(&c->wheel, c->now_ms);
	c->next_id = 0;
	c->snap = &F.snap;
	c->hold_until = 0;
	c->draining = false;
	for (unsigned i = 0; i < F.cfg->n_backends; i++)
		for (unsigned j = 0; j < F.pools[i].n; j++)
			atomic_store(&F.pools[i].srv[j].down_until_ms, 0);
	F.n_jobs = F.n_back = 0;
	F.connect_fails = false;
	F.cur = NULL;
}

/* FUZZ_SESSION_TRACE set: what each side got, on stderr. */
static void fz_trace(void)
{
	if (!getenv("FUZZ_SESSION_TRACE"))
		return;
	for (unsigned i = 0; i < FZ_SIDES; i++) {
		const struct fside *f = &F.side[i];

		if (!f->used)
			continue;
		dprintf(fz_err_fd, "--- %s %u got %u bytes:\n", f->backend ? "backend" : "client", i,
			f->out_len);
		for (uint32_t k = 0; k < f->out_len; k++)
			dprintf(fz_err_fd, f->out[k] == '\n' || (f->out[k] >= 32 && f->out[k] < 127)
					? "%c" : "\\x%02x", f->out[k]);
		dprintf(fz_err_fd, "\n");
	}
}

/* Everything closed and freed; the sides' memory back. */
static void fz_teardown(void)
{
	struct core *c = &F.core;

	fz_settle();
	sess_close_all(c);
	/* As at shutdown (tlsw_stop): the jobs still out are orphans. */
	for (unsigned i = 0; i < F.n_jobs; i++)
		sess_job_orphan(F.jobs[i]);
	for (unsigned i = 0; i < F.n_back; i++)
		sess_job_orphan(F.back[i]);
	F.n_jobs = F.n_back = 0;
	sess_reap(c);
	if (c->sessions || c->n_sess || c->dead || c->again)
		fz_die("a session outlived sess_close_all");
	if (atomic_load(&F.snap.refs[0]))
		fz_die("a session kept its snapshot");
	for (unsigned i = 0; i < WHEEL_SLOTS; i++)
		if (c->wheel.slot[i] || c->wheel.far[i])
			fz_die("a timer outlived its session");
	fz_trace();
	for (unsigned i = 0; i < FZ_SIDES; i++) {
		struct fside *f = &F.side[i];

		if (f->used && f->open && !f->closed)
			fz_die("a stream was never closed");
		free(f->in);
		free(f->out);
		memset(f, 0, sizeof(*f));
	}
}

/* A new client connection on the input's listener; it becomes current. */
static void fz_accept(void)
{
	struct fside *cli = fz_side(false);
	struct stream st;

	if (!cli)
		return; /* as many as the script may have */
	memset(&st, 0, sizeof(st));
	st.ops = &fz_stream_ops;
	st.stack = cli;
	st.kind = SK_CLIENT;
	st.fd = -1;
	if (sess_accept(&F.core, F.l, &st) < 0) {
		cli->used = false; /* refused: the stack closes it */
		return;
	}
	F.cur = cli;
}

/* The next open client (in the order they came) becomes current. */
static void fz_next(void)
{
	unsigned i = F.cur ? (unsigned)(F.cur - F.side) : 0;

	for (unsigned k = 1; k <= FZ_SIDES; k++) {
		struct fside *f = &F.side[(i + k) % FZ_SIDES];

		if (f->used && !f->backend && f->open && !f->closed) {
			F.cur = f;
			return;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;

	if (size < 1)
		return 0;
	fz_reset();
	F.l = &F.ls[*p++ % F.cfg->n_listeners];
	fz_accept();
	fz_settle();
	while (p < end) {
		uint8_t op = *p++ % OP__COUNT;
		uint8_t arg = p < end ? *p : 0;
		uint32_t n;

		switch (op) {
		case CLI_DATA:
		case BE_DATA:
			p += p < end;
			n = (uint32_t)(end - p) < arg ? (uint32_t)(end - p) : arg;
			fz_data(fz_live(op == BE_DATA), p, n);
			p += n;
			break;
		case CLI_FIN:
		case BE_FIN:
			fz_end(fz_live(op == BE_FIN), false);
			break;
		case CLI_RST:
		case BE_RST:
			fz_end(fz_live(op == BE_RST), true);
			break;
		case TIME:
			p += p < end;
			fz_advance((uint64_t)arg * arg * 4 + 1);
			continue;
		case TICK:
			p += p < end;
			F.core.now_ms += arg;
			break;
		case CLI_WIN:
		case BE_WIN:
			p += p < end;
			fz_set_window(fz_live(op == BE_WIN), arg);
			break;
		case CONNECT:
			p += p < end;
			fz_connect_outcome(arg);
			break;
		case WORKER:
			fz_worker();
			break;
		case DRAIN:
			F.core.draining = true;
			sess_drain_sweep(&F.core);
			break;
		case CUT:
			sess_drain_cut(&F.core);
			break;
		case ACCEPT:
			fz_accept();
			break;
		case NEXT:
			fz_next();
			break;
		}
		fz_settle();
	}
	fz_teardown();
	return 0;
}
