/*
 * FTP's passive data connections (RFC 959 4.1.2 PASV, RFC 2428 EPSV, RFC
 * 4217 7 and 10; docs/ftp.md). The engine hands the session the backend's
 * answer to PASV/EPSV (proto_ops.b2c_line); here sluice opens a listener
 * of its own on a port of ftp.data_ports, the client gets that port in
 * the answer instead (data_reply), and the one connection that comes:
 *
 *   FD_LISTEN     a plain listening socket, one accept, ftp.data_timeout;
 *                 a connection from another address than the control
 *                 connection's is closed, counted and logged
 *   FD_CONNECT    sluice connects to the backend's data port at once, on
 *                 the backend server's address (never another host: a 227
 *                 naming one was refused, the FTP bounce of RFC 2577):
 *                 the server sends its 150 only once its data connection
 *                 is there, and many clients (Python's ftplib) start TLS
 *                 only after the 150
 *   FD_HANDSHAKE  PROT P: the TLS server handshake, on the TLS workers as
 *                 the control connection's; then the checks: its session
 *                 must resume the control connection's (ftp.
 *                 require_resumption), TLS <= 1.2 must have the extended
 *                 master secret (ftp.require_ems). No byte moves before.
 *                 From the accept until bytes move, timeouts.handshake
 *                 (a client that trickles a ClientHello in keeps the
 *                 control session active, but not this stage open)
 *   FD_RELAY      bytes both ways; the half-closes passed on; the 226 on
 *                 the control connection is the backend's
 *
 * A refused data connection is closed, and the backend's data connection
 * reset, not ended: the backend answers the transfer command itself (426,
 * or 425 when it was never connected), so the control connection never
 * carries a reply of sluice's that the backend's would follow, and an
 * upload cut short is never taken for a complete one.
 *
 * "Of this control connection" (the check Windows Schannel and FileZilla
 * Server make, since the attack on unbound data connections): a session
 * resumed from a ticket carries the token the ticket was issued with
 * (tls/resume.c, SSL_SESSION_set1_ticket_appdata: one random token per
 * full handshake, kept by every ticket issued from a session resumed from
 * it); one resumed from the session-ID cache has the control session's
 * ID. OpenSSL does the crypto, sluice compares.
 *
 * The data connection's streams wake the control session, whose sess_run
 * calls fdata_run: one place decides the session's I/O still.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "io/io.h"
#include "log.h"
#include "session/backend.h"
#include "session/ftp_data.h"
#include "session/session.h"
#include "session/session_int.h"
#include "snap.h"

#define FD_TLS_SLACK 256u     /* as handshake.c's TLS_WRITE_SLACK */
#define FD_READ_ROOM 128u
#define FD_LINGER_MS 5000u    /* after our FIN, the client's close */

enum fd_state {
	FD_LISTEN,
	FD_HANDSHAKE,
	FD_CONNECT,
	FD_RELAY,
	FD_DONE,
};

struct fdata {
	struct sess *s;            /* the control session, which owns this */
	uint8_t state;             /* enum fd_state */
	struct proto_data d;
	struct stream ls;          /* the data listener (FD_LISTEN) */
	struct stream cli;         /* the client's data connection */
	struct stream be;          /* to the backend's data port */
	struct buf cin, cout;      /* client wire bytes (ciphertext under TLS) */
	struct buf c2b, b2c;       /* plaintext each way */
	struct tls_io tio;         /* the BIO's buffers: cin, cout */
	SSL *ssl;                  /* PROT P; the worker's while job_out */
	struct tls_job job;
	bool job_out;              /* the worker owns ssl, cin and cout */
	bool dead;                 /* freed by the session while job_out: the
				      job's return frees it */
	bool want_write_first;
	uint32_t hs_left;
	bool tls_up, tls_in_done, tls_failed, close_sent;
	bool be_fin_sent, cli_fin_sent, counted;
	uint64_t deadline_ms;      /* FD_LISTEN: data_timeout; from the
				      accept to the relay: timeouts.
				      handshake; after our FIN: the linger */
	struct sockaddr_storage be_addr;
	socklen_t be_len;
	char peer[64];
};

/* Free what d holds, now or (job out) when the job comes back. */
static void fdata_destroy(struct fdata *d, bool abort)
{
	stream_close(&d->ls);
	stream_close(&d->cli);
	if (abort)
		stream_abort(&d->be);
	else
		stream_close(&d->be);
	if (d->job_out) {
		atomic_store_explicit(&d->job.cancelled, true, memory_order_release);
		d->dead = true;
		return;
	}
	if (d->ssl) {
		if (d->tls_up && !d->tls_failed && !SSL_in_init(d->ssl)) {
			SSL_set_quiet_shutdown(d->ssl, 1);
			(void)SSL_shutdown(d->ssl);
			ERR_clear_error();
		}
		SSL_free(d->ssl);
	}
	buf_free(&d->cin);
	buf_free(&d->cout);
	buf_free(&d->c2b);
	buf_free(&d->b2c);
	free(d);
}

/* The data connection ends (reason for the log when it is an error). */
static void fdata_end(struct sess *s, int ctr, const char *why)
{
	struct fdata *d = s->fdata;

	if (!d)
		return;
	if (ctr >= 0)
		sctr_inc(s, ctr);
	/* Accepted but never relayed: the transfer's 2yz would be false
	 * (ftp_b2c_line makes it 426); the reply waits no longer. */
	if (d->state == FD_CONNECT || d->state == FD_HANDSHAKE)
		s->ps.data_refused = true;
	s->ps.data_pending = false;
	if (why)
		log_msg(LOG_NOTICE, "event=ftp-data conn=%llx listener=%s client=%s result=refused "
			"reason=\"%s\"", (unsigned long long)s->id, s->l->cfg->name,
			d->peer[0] ? d->peer : "-", why);
	s->fdata = NULL;
	/* a cut transfer is reset on the backend's side: never a FIN that
	 * would end an upload as if complete */
	fdata_destroy(d, why != NULL || ctr == CTR_ftp_data_failed || ctr == CTR_ftp_data_cut);
}

void fdata_free(struct sess *s)
{
	const struct fdata *d = s->fdata;

	/* past our FIN to the client, it relayed to the end */
	fdata_end(s, !d || d->state == FD_LISTEN ? -1
		  : d->cli_fin_sent ? CTR_ftp_data_ok : CTR_ftp_data_cut, NULL);
}

/* The session's timer no later than d's deadline. */
static void fdata_arm(struct sess *s, const struct fdata *d)
{
	if (!timer_armed(&s->tm) || s->tm.expire_ms > d->deadline_ms)
		sess_arm(s, d->deadline_ms > s->core->now_ms ? d->deadline_ms - s->core->now_ms : 0);
}

/* a's port, IPv4 or IPv6. */
static void fdata_set_port(struct sockaddr_storage *a, uint16_t port)
{
	if (a->ss_family == AF_INET6)
		((struct sockaddr_in6 *)a)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)a)->sin_port = htons(port);
}

/* The backend server's IPv4 address, or false. */
static bool fdata_be_ip4(const struct sess *s, uint8_t out[4])
{
	const struct sockaddr_storage *a;

	if (s->be_idx < 0)
		return false;
	a = &s->l->pool->srv[s->be_idx].addr;
	if (a->ss_family != AF_INET)
		return false;
	memcpy(out, &((const struct sockaddr_in *)a)->sin_addr, 4);
	return true;
}

/* A listener on a free port of the range, from a per-process cursor. */
static int fdata_listen(struct sess *s, struct fdata *d)
{
	static _Atomic unsigned cursor;
	const struct cfg_ftp *f = &s->l->cfg->ftp;
	unsigned n = f->port_hi - f->port_lo + 1, start;
	struct sockaddr_storage a = f->data_addr;
	bool v6 = a.ss_family == AF_INET6;

	if (!s->core->io->listen_one)
		return -ENOTSUP;
	start = atomic_fetch_add_explicit(&cursor, 1, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++) {
		unsigned port = f->port_lo + (start + i) % n;
		int rc;

		fdata_set_port(&a, (uint16_t)port);
		d->ls = (struct stream){ .owner = s, .wake = sess_stream_wake, .wake_arg = s,
					 .fd = -1, .kind = SK_DEAD };
		rc = s->core->io->listen_one(s->core, &d->ls, (const struct sockaddr *)&a,
					     v6 ? sizeof(struct sockaddr_in6)
						: sizeof(struct sockaddr_in));
		if (rc == 0) {
			d->d.port = (uint16_t)port;
			if (!v6)
				memcpy(d->d.host, &((struct sockaddr_in *)&a)->sin_addr, 4);
			return 0;
		}
		if (rc != -EADDRINUSE)
			return rc;
	}
	return -EADDRINUSE;
}

/* The backend's answer to PASV/EPSV, whole: see ftp_data.h. */
int fdata_passive(struct sess *s, const char *l, size_t len, struct proto_out *o)
{
	struct proto_env env = sess_env(s);
	struct proto_data pd;
	struct fdata *d;
	uint8_t be4[4];
	int r, rc;

	po_reset(o);
	r = s->l->ops->b2c_line(&env, &s->ps, l, len, &pd, o);
	if (r == 2)
		return 1; /* a transfer's reply, its data connection checked */
	if (r <= 0)
		return 0; /* o empty: the line as it is; else the refusal */
	if (!pd.epsv && s->l->cfg->ftp.data_addr.ss_family == AF_INET6) {
		/* a 227 names only IPv4, and this listener's clients are IPv6
		 * (RFC 2428 3: EPSV) */
		po_reply(o, "425 Use EPSV over IPv6.\r\n");
		o->counter = CTR_ftp_pasv_v6_refused;
		return 0;
	}
	if (s->be_idx < 0 ||
	    (!pd.epsv && (!fdata_be_ip4(s, be4) || memcmp(pd.be_host, be4, 4)))) {
		po_reply(o, "425 Cannot open data connection.\r\n");
		o->counter = CTR_ftp_data_bounce;
		log_msg(LOG_WARNING, "event=ftp-bounce conn=%llx listener=%s backend_host=%u.%u.%u.%u "
			"reason=\"a 227 naming a host other than the backend server\"",
			(unsigned long long)s->id, s->l->cfg->name, pd.be_host[0], pd.be_host[1],
			pd.be_host[2], pd.be_host[3]);
		return 0;
	}
	fdata_free(s); /* a new PASV replaces the one not used */
	if (!(d = calloc(1, sizeof(*d)))) {
		po_reply(o, "425 Cannot open data connection.\r\n");
		return 0;
	}
	d->s = s;
	d->d = pd;
	d->cli = (struct stream){ .fd = -1, .kind = SK_DEAD };
	d->be = (struct stream){ .fd = -1, .kind = SK_DEAD };
	d->tio.in = &d->cin;
	d->tio.out = &d->cout;
	memcpy(&d->be_addr, &s->l->pool->srv[s->be_idx].addr, sizeof(d->be_addr));
	d->be_len = s->l->pool->srv[s->be_idx].len;
	fdata_set_port(&d->be_addr, pd.be_port);
	if ((rc = fdata_listen(s, d)) < 0) {
		free(d);
		po_reply(o, "425 Cannot open data connection.\r\n");
		o->counter = CTR_ftp_data_no_port;
		log_msg(LOG_WARNING, "event=ftp-data conn=%llx listener=%s result=no-port "
			"reason=\"%s\"", (unsigned long long)s->id, s->l->cfg->name,
			rc == -EADDRINUSE ? "every port of ftp.data_ports is taken" : strerror(-rc));
		return 0;
	}
	s->fdata = d;
	d->state = FD_LISTEN;
	d->deadline_ms = s->core->now_ms + s->l->cfg->ftp.data_timeout * 1000ull;
	sctr_inc(s, CTR_ftp_data_listen);
	s->l->ops->data_reply(&env, &s->ps, &d->d, o);
	fdata_arm(s, d);
	return 0;
}

/* Same IP address, whatever the ports (and v4 in v6 as v4). */
static bool fdata_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	uint8_t x[16], y[16];
	size_t nx = 0, ny = 0;

	for (int k = 0; k < 2; k++) {
		const struct sockaddr_storage *p = k ? b : a;
		uint8_t *o = k ? y : x;
		size_t *n = k ? &ny : &nx;

		if (p->ss_family == AF_INET) {
			memcpy(o, &((const struct sockaddr_in *)p)->sin_addr, 4);
			*n = 4;
		} else if (p->ss_family == AF_INET6) {
			const struct in6_addr *i6 = &((const struct sockaddr_in6 *)p)->sin6_addr;

			if (IN6_IS_ADDR_V4MAPPED(i6)) {
				memcpy(o, &i6->s6_addr[12], 4);
				*n = 4;
			} else {
				memcpy(o, i6, 16);
				*n = 16;
			}
		}
	}
	return nx && nx == ny && !memcmp(x, y, nx);
}

/* Accepted, not relaying yet: the backend's data port still connecting,
 * or the TLS handshake not done. Bytes that trickle in keep the control
 * session active, so this has a deadline of its own from the accept, as
 * a control connection's handshake has. */
static bool fdata_setting_up(const struct fdata *d)
{
	return d->state == FD_CONNECT || d->state == FD_HANDSHAKE ||
	       (d->state == FD_RELAY && d->be.connecting);
}

/* FD_LISTEN: take the one connection; one from elsewhere is closed. */
static bool fdata_accept(struct sess *s, struct fdata *d)
{
	struct sockaddr_storage peer;
	bool did = false;

	while (d->ls.readable) {
		int rc;

		d->cli = (struct stream){ .owner = s, .fd = -1, .kind = SK_DEAD };
		rc = s->core->io->accept_one(s->core, &d->ls, &d->cli, &peer);
		if (rc == -EAGAIN)
			break;
		if (rc < 0)
			return did;
		did = true;
		if (!fdata_same_host(&peer, &s->peer)) {
			char a[64];

			sctr_inc(s, CTR_ftp_data_foreign);
			log_msg(LOG_WARNING, "event=ftp-data conn=%llx listener=%s client=%s "
				"data_peer=%s result=refused reason=\"data connection from "
				"another address than the control connection's\"",
				(unsigned long long)s->id, s->l->cfg->name,
				fmt_addr(&s->peer, d->peer, sizeof(d->peer)),
				fmt_addr(&peer, a, sizeof(a)));
			stream_close(&d->cli);
			continue; /* the client itself may still come */
		}
		fmt_addr(&peer, d->peer, sizeof(d->peer));
		stream_close(&d->ls);
		d->state = FD_CONNECT;
		d->deadline_ms = s->core->now_ms + sess_handshake_ms(s);
		fdata_arm(s, d);
		/* the transfer's final reply waits until it relays */
		s->ps.data_pending = true;
		s->ps.data_refused = false;
		return true;
	}
	return did;
}

static void fdata_job_done(struct tls_job *j);

/* FD_HANDSHAKE: post the next step when its input is there. */
static bool fdata_handshake(struct sess *s, struct fdata *d)
{
	if (d->job_out)
		return false;
	if (buf_len(&d->cout))
		return false;
	if (d->ssl && !d->want_write_first && buf_len(&d->cin) <= d->hs_left) {
		if (d->cli.eof || d->cli.failed) {
			fdata_end(s, CTR_ftp_data_tls_failed, "client closed during the handshake");
			return true;
		}
		return false;
	}
	if (!d->ssl && buf_len(&d->cin) == 0) {
		if (d->cli.eof || d->cli.failed) {
			fdata_end(s, CTR_ftp_data_tls_failed, "client closed before its ClientHello");
			return true;
		}
		return false;
	}
	d->want_write_first = false;
	d->tio.in_eof = d->cli.eof;
	d->job.owner = d;
	d->job.kind = TLSJ_SERVER;
	d->job.done = fdata_job_done;
	d->job.ssl = d->ssl;
	d->job.io = &d->tio;
	d->job.sid = s->l->cfg->name; /* the control's context: resumable */
	d->job.ctxs = s->snap->ctxs;
	d->job.set = s->l->set_ids[s->set];
	d->job.cert = s->cert;
	d->job.policy = s->policy;
	d->job.reason[0] = 0;
	d->job.peer_alert = -1;
	atomic_store_explicit(&d->job.cancelled, false, memory_order_relaxed);
	if (!tlsw_post(s->core->id, &d->job)) {
		sctr_inc(s, CTR_ftp_data_busy);
		fdata_end(s, CTR_worker_queue_full, "all TLS workers are busy");
		return true;
	}
	s->core->jobs_posted++;
	d->job_out = true;
	return true;
}

/* Is the data connection's TLS session a resumption of the control's? */
static bool fdata_resumes_control(const struct sess *s, const struct fdata *d)
{
	const SSL_SESSION *ds = SSL_get0_session(d->ssl), *cs = SSL_get0_session(s->ssl);
	const unsigned char *di, *ci;
	unsigned dl = 0, cl = 0;
	void *da = NULL, *ca = NULL;
	size_t dal = 0, cal = 0;

	if (!ds || !cs || SSL_session_reused(d->ssl) != 1)
		return false;
	if (SSL_SESSION_get0_ticket_appdata((SSL_SESSION *)ds, &da, &dal) == 1 && dal &&
	    SSL_SESSION_get0_ticket_appdata((SSL_SESSION *)cs, &ca, &cal) == 1 && cal == dal)
		return CRYPTO_memcmp(da, ca, dal) == 0;
	di = SSL_SESSION_get_id(ds, &dl);
	ci = SSL_SESSION_get_id(cs, &cl);
	return dl && dl == cl && !memcmp(di, ci, dl);
}

/* The data connection's handshake is done: the checks, then the backend. */
static void fdata_tls_done(struct sess *s, struct fdata *d)
{
	const struct cfg_ftp *f = &s->l->cfg->ftp;
	bool ems = SSL_version(d->ssl) == TLS1_3_VERSION || SSL_get_extms_support(d->ssl) == 1;

	d->tls_up = true;
	if (!ems) {
		sctr_inc(s, CTR_ftp_no_ems);
		if (f->require_ems) {
			sctr_inc(s, CTR_ftp_data_refused_ems);
			fdata_end(s, CTR_ftp_refused_ems, "data connection without the extended "
				  "master secret (ftp.require_ems)");
			return;
		}
	}
	if (fdata_resumes_control(s, d)) {
		sctr_inc(s, CTR_ftp_data_resumed);
	} else {
		sctr_inc(s, CTR_ftp_data_not_resumed);
		if (f->require_resumption) {
			fdata_end(s, CTR_ftp_data_refused_resumption,
				  SSL_session_reused(d->ssl) == 1
				  ? "data connection resumed a TLS session not of this control "
				    "connection (ftp.require_resumption)"
				  : "data connection's TLS session is not a resumption of the "
				    "control connection's (ftp.require_resumption)");
			return;
		}
	}
	d->state = FD_RELAY;
	s->ps.data_pending = false;
}

static void fdata_job_done(struct tls_job *j)
{
	struct fdata *d = j->owner;
	struct sess *s = d->s;

	d->job_out = false;
	d->ssl = j->ssl;
	if (d->dead) {
		fdata_destroy(d, true);
		return;
	}
	switch (j->status) {
	case TLSJ_DONE:
		fdata_tls_done(s, d);
		break;
	case TLSJ_WANT_READ:
		d->hs_left = buf_len(&d->cin);
			break;
	case TLSJ_WANT_WRITE:
		d->want_write_first = true;
			break;
	default: {
		char why[160];

			snprintf(why, sizeof(why), "data connection's TLS handshake failed: %s", j->reason);
		/* Its alert may be in cout: sent on a best-effort basis. */
		while (buf_len(&d->cout) && d->cli.writable && stream_send(&d->cli, &d->cout) > 0)
			;
		fdata_end(s, CTR_ftp_data_tls_failed, why);
		break;
	}
	}
	sess_run(s);
}

bool fdata_job(struct tls_job *j)
{
	if (!j->done)
		return false;
	j->done(j);
	return true;
}

/* Client ciphertext -> c2b plaintext (SSL_read). */
static bool fdata_tls_pull(struct fdata *d)
{
	bool did = false;

	while (buf_room(&d->c2b) && !d->tls_failed && !d->tls_in_done) {
		uint8_t *p;
		uint32_t room;
		int n, e;

		if (buf_len(&d->cin) == 0 && !d->tio.in_eof && !SSL_has_pending(d->ssl))
			break;
		if (buf_room(&d->cout) < FD_READ_ROOM)
			break;
		if (buf_space(&d->c2b, &p, &room) < 0)
			break;
		ERR_clear_error();
		n = SSL_read(d->ssl, p, (int)room);
		if (n > 0) {
			d->c2b.tail += (uint32_t)n;
			did = true;
			continue;
		}
		buf_consume(&d->c2b, 0);
		e = SSL_get_error(d->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		if (e == SSL_ERROR_ZERO_RETURN)
			d->tls_in_done = true;
		else
			d->tls_failed = true;
		did = true;
		break;
	}
	return did;
}

/* b2c plaintext -> client ciphertext (SSL_write). */
static bool fdata_tls_push(struct fdata *d)
{
	bool did = false;

	while (buf_len(&d->b2c) && !d->tls_failed) {
		uint32_t n = buf_len(&d->b2c);
		int w;

		if (n > SSL3_RT_MAX_PLAIN_LENGTH)
			n = SSL3_RT_MAX_PLAIN_LENGTH;
		if (buf_room(&d->cout) < n + FD_TLS_SLACK)
			break;
		ERR_clear_error();
		w = SSL_write(d->ssl, buf_head(&d->b2c), (int)n);
		if (w <= 0) {
			int e = SSL_get_error(d->ssl, w);

			if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
				d->tls_failed = true;
			break;
		}
		buf_consume(&d->b2c, (uint32_t)w);
		did = true;
	}
	return did;
}

/* FD_RELAY: both ways, then the half-closes. Returns true if it moved. */
static bool fdata_relay(struct sess *s, struct fdata *d)
{
	bool did = false;
	uint32_t before;

	/* client -> backend */
	if (d->d.tls) {
		before = buf_len(&d->c2b);
		did |= fdata_tls_pull(d);
		if (buf_len(&d->c2b) > before)
			sctr_add(s, CTR_ftp_data_bytes_in, buf_len(&d->c2b) - before);
	} else {
		while (d->cli.readable && !d->cli.eof && !d->cli.failed && buf_room(&d->c2b)) {
			ssize_t n = stream_recv(&d->cli, &d->c2b);

			if (n <= 0)
				break;
			sctr_add(s, CTR_ftp_data_bytes_in, (uint64_t)n);
			did = true;
		}
	}
	while (buf_len(&d->c2b) && d->be.writable && !d->be.failed)
		if (stream_send(&d->be, &d->c2b) > 0)
			did = true;
		else
			break;
	/* backend -> client */
	while (d->be.readable && !d->be.eof && !d->be.failed && buf_room(&d->b2c)) {
		ssize_t n = stream_recv(&d->be, &d->b2c);

		if (n <= 0)
			break;
		sctr_add(s, CTR_ftp_data_bytes_out, (uint64_t)n);
		did = true;
	}
	if (d->d.tls) {
		did |= fdata_tls_push(d);
	} else {
		while (buf_len(&d->b2c) && d->cli.writable && !d->cli.failed)
			if (stream_send(&d->cli, &d->b2c) > 0)
				did = true;
			else
				break;
	}
	/* The client finished: FIN to the backend once its bytes are out. */
	if (!d->be_fin_sent && buf_len(&d->c2b) == 0 &&
	    (d->d.tls ? d->tls_in_done : d->cli.eof)) {
		stream_shutdown_wr(&d->be);
		d->be_fin_sent = true;
		did = true;
	}
	/* The backend finished: close_notify and FIN to the client. */
	if (d->be.eof && buf_len(&d->b2c) == 0 && !d->cli_fin_sent) {
		if (d->d.tls && !d->close_sent && buf_room(&d->cout) >= FD_READ_ROOM) {
			ERR_clear_error();
			(void)SSL_shutdown(d->ssl);
			ERR_clear_error();
			d->close_sent = true;
		}
		if (!d->d.tls || d->close_sent) {
			if (buf_len(&d->cout) == 0) {
				stream_shutdown_wr(&d->cli);
				d->cli_fin_sent = true;
				d->deadline_ms = s->core->now_ms + FD_LINGER_MS;
				did = true;
			}
		}
	}
	if (d->tls_failed || d->cli.failed || d->be.failed) {
		fdata_end(s, CTR_ftp_data_failed, d->be.failed ? "backend data connection failed"
			  : "client data connection failed");
		return true;
	}
	if (d->cli_fin_sent && d->be_fin_sent) {
		sctr_inc(s, CTR_ftp_data_ok);
		fdata_end(s, -1, NULL);
		return true;
	}
	return did;
}

/* The client's side: its bytes in and ours out. */
static bool fdata_client_io(struct fdata *d)
{
	bool did = false;

	while (buf_len(&d->cout) && d->cli.writable && !d->cli.failed)
		if (stream_send(&d->cli, &d->cout) > 0)
			did = true;
		else
			break;
	if (d->d.tls && !d->job_out) {
		while (d->cli.readable && !d->cli.eof && !d->cli.failed && buf_room(&d->cin)) {
			if (stream_recv(&d->cli, &d->cin) <= 0)
				break;
			did = true;
		}
		if (d->cli.eof)
			d->tio.in_eof = true;
	}
	return did;
}

bool fdata_run(struct sess *s)
{
	struct fdata *d = s->fdata;
	bool did = false;
	int rc;

	for (int guard = 0; d && guard < 16; guard++, d = s->fdata) {
		bool moved = false;

		if (d->job_out)
			return did;
		if (d->state != FD_LISTEN)
			moved |= fdata_client_io(d);
		switch (d->state) {
		case FD_LISTEN:
			moved |= fdata_accept(s, d);
			break;
		case FD_CONNECT:
			d->be = (struct stream){ .owner = s, .wake = sess_stream_wake, .wake_arg = s,
						 .fd = -1, .kind = SK_DEAD };
			rc = io_connect(s->core, &d->be, (const struct sockaddr *)&d->be_addr,
					d->be_len);
			if (rc < 0) {
				fdata_end(s, CTR_ftp_data_failed, "cannot connect to the backend's "
					  "data port");
				return true;
			}
			d->state = d->d.tls ? FD_HANDSHAKE : FD_RELAY;
			if (d->state == FD_RELAY)
				s->ps.data_pending = false;
			moved = true;
			break;
		case FD_RELAY:
		case FD_HANDSHAKE:
			if (d->be.connecting && (d->be.writable || d->be.hup)) {
				rc = stream_connected(&d->be);
				if (rc < 0 && rc != -EINPROGRESS) {
					fdata_end(s, CTR_ftp_data_failed, "backend's data port refused "
						  "the connection");
					return true;
				}
				if (rc == 0)
					d->be.writable = moved = true;
			}
			if (d->state == FD_HANDSHAKE) {
				moved |= fdata_handshake(s, d);
				break;
			}
			if (d->be.connecting)
				break;
			moved |= fdata_relay(s, d);
			if (s->fdata == d)
				moved |= fdata_client_io(d);
			break;
		default:
			break;
		}
		if (moved) {
			did = true;
			s->t_active = s->core->now_ms; /* a transfer keeps the control alive */
		} else {
			break;
		}
	}
	return did;
}

uint64_t fdata_deadline(struct sess *s)
{
	struct fdata *d = s->fdata;

	if (!d)
		return 0;
	if (fdata_setting_up(d)) {
		if (s->core->now_ms < d->deadline_ms)
			return d->deadline_ms;
		fdata_end(s, CTR_ftp_data_timeout_setup, d->state == FD_HANDSHAKE
			  ? "data connection's TLS handshake not done in timeouts.handshake"
			  : "backend's data port not connected in timeouts.handshake");
		return 0;
	}
	if (d->state == FD_LISTEN || d->cli_fin_sent) {
		if (s->core->now_ms >= d->deadline_ms) {
			if (d->state == FD_LISTEN)
				fdata_end(s, CTR_ftp_data_timeout, "no data connection in "
					  "ftp.data_timeout");
			else
				fdata_end(s, CTR_ftp_data_ok, NULL);
			return 0;
		}
		return d->deadline_ms;
	}
	return 0;
}

/* The control connection's TLS is up: the EMS rule for it (see
 * ftp_data.h). */
bool fdata_control_tls(struct sess *s)
{
	if (s->l->cfg->protocol != CFG_PROTO_FTP || !s->ssl ||
	    SSL_version(s->ssl) == TLS1_3_VERSION || SSL_get_extms_support(s->ssl) == 1)
		return true;
	sctr_inc(s, CTR_ftp_no_ems);
	if (!s->l->cfg->ftp.require_ems)
		return true;
	sctr_inc(s, CTR_ftp_refused_ems);
	sess_set_result(s, "tls-refused", "TLS without the extended master secret "
			"(ftp.require_ems)");
	return false;
}
