/*
 * The session's relay (DESIGN.md §1, §2): SS_RELAY moves bytes both ways
 * through the engine's trackers (c2b/b2c pumps) and propagates the
 * half-closes; a STARTTLS the tracker held in a plaintext relay is answered
 * here (rule 2.7), the plaintext backend retired. session.c's sess_run
 * decides when.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "proto/proto.h"
#include "session/ftp_data.h"
#include "session/session.h"
#include "session/session_int.h"

/* The plaintext backend that a late STARTTLS retired (rule 2.7): what it
 * still sends (the reply to QUIT/LOGOUT) is swallowed; it is closed once
 * the QUIT went out and it closed, or when a new backend is needed. */
void sess_retire_step(struct sess *s, bool now)
{
	if (!s->be_retiring)
		return;
	buf_consume(&s->bin, buf_len(&s->bin));
	if (!now && stream_is_open(&s->be) && !s->be.failed &&
	    (buf_len(&s->bout) || !s->be.eof))
		return;
	sess_close_backend(s);
	s->be_retiring = false;
	s->be_connected = false;
	s->be_fin_sent = false;
}

/* One pass client -> backend: the engine's tracker over what is new in
 * src, then what it approved (s->scan_ok bytes at the head) into bout. */
static bool sess_pump_c2b_once(struct sess *s, struct buf *src)
{
	uint32_t n, room;
	bool did = false;

	if (buf_len(src) > s->scan_ok && !s->ps.inject_due) {
		bool tracked = !s->ps.untracked;

		if (s->l->ops->c2b_scan)
			s->scan_ok += (uint32_t)s->l->ops->c2b_scan(&s->ps, buf_head(src) + s->scan_ok,
								    buf_len(src) - s->scan_ok);
		if (tracked && s->ps.untracked)
			sctr_inc(s, CTR_relay_untracked);
		if (!s->l->ops->c2b_scan)
			s->scan_ok = buf_len(src);
		/* At the end, an unfinished line goes as it is: no server
		 * acts on a line without its LF. (A held STARTTLS does not,
		 * nor what waits behind a trace header, nor a line sluice
		 * answers itself.) */
		if (sess_client_eof(s) && !s->ps.tls_held && !s->ps.inject_due &&
		    !s->ps.local_due)
			s->scan_ok = buf_len(src);
	}
	n = s->scan_ok;
	room = buf_room(&s->bout);
	if (n > room)
		n = room;
	if (n)
		n = buf_put(&s->bout, buf_head(src), n);
	if (n) {
		buf_consume(src, n);
		s->scan_ok -= n;
		s->bytes_in += n;
		sctr_add(s, CTR_bytes_from_client, n);
		did = true;
	}
	return did;
}

/* Client -> backend: plaintext from pin (TLS) or cin, through the engine's
 * tracker, into bout. The tracker may stop where the engine adds bytes of
 * its own (a trace header, session/trace.c): what it approved goes first,
 * then those, then it scans on. */
bool sess_pump_c2b(struct sess *s)
{
	struct buf *src = s->tls ? &s->pin : &s->cin;
	bool did = false;

	if (s->tls)
		did = sess_tls_pull(s, &s->pin);
	for (;;) {
		did |= sess_pump_c2b_once(s, src);
		if (!s->ps.inject_due || s->scan_ok || !sess_inject(s, src))
			break;
		did = true;
	}
	return did;
}

/*
 * The backend line the engine's b2c_safe stopped at, whole (FTP: the
 * answer to PASV/EPSV, ftp_data.c): relayed as it is or replaced by the
 * engine's line, then given to the tracker as if relayed. Returns true
 * when it went; false while it is incomplete or the client's buffer has
 * no room for it.
 */
static bool sess_b2c_line(struct sess *s)
{
	const uint8_t *h = buf_head(&s->bin);
	uint32_t avail = buf_len(&s->bin), total, len;
	const uint8_t *lf = memchr(h, '\n', avail);
	struct proto_out o;

	bool whole = lf && lf - h < 1024;

	if (!lf && avail < 1024 && !s->be.eof && !s->be.failed)
		return false;
	if (buf_room(&s->cout) < PO_REPLY_MAX + 512)
		return false;
	/* A line too long is not the reply the engine waits for: its head
	 * goes as bytes, and the tracker is inside a line after it. */
	total = whole ? (uint32_t)(lf - h) + 1 : (avail < 1024 ? avail : 1024);
	len = total;
	while (whole && len && (h[len - 1] == '\n' || h[len - 1] == '\r'))
		len--;
	po_reset(&o);
	if (whole && fdata_passive(s, (const char *)h, len, &o) == 1)
		return false; /* a transfer's reply: its data connection is checked */
	if (!o.reply_len && sess_to_client(s, h, total) < 0)
		return false;
	sess_apply(s, &o);
	if (s->l->ops->b2c_scan)
		s->l->ops->b2c_scan(&s->ps, h, total);
	buf_consume(&s->bin, total);
	s->bytes_out += total;
	sctr_add(s, CTR_bytes_to_client, total);
	return true;
}

/*
 * A client line the engine's c2b tracker stopped at, to be answered by
 * sluice (ps.local_due: FTP's PBSZ, PROT, PORT), once what came before it
 * went to the backend and every earlier command has its reply. Returns
 * true when it was answered.
 */
static bool sess_c2b_local(struct sess *s)
{
	struct buf *src = s->tls ? &s->pin : &s->cin;
	struct linereader lr;
	struct lr_line line;
	struct proto_env env;
	struct proto_out o;
	size_t used;

	if (s->scan_ok || !s->l->ops->c2b_local || s->ps.replies < s->ps.cmds ||
	    s->ps.b_cur_len || (s->l->ops->mid_response && s->l->ops->mid_response(&s->ps)))
		return false;
	if (buf_room(&s->cout) < PO_REPLY_MAX + 512)
		return false;
	if (!buf_len(src)) {
		s->ps.local_due = false; /* the line is gone (the session moved on) */
		return true;
	}
	lr_init(&lr, s->l->ops->line_max);
	if (lr_next(&lr, buf_head(src), buf_len(src), &line, &used) != LR_LINE)
		return false;
	env = sess_env(s);
	po_reset(&o);
	s->l->ops->c2b_local(&env, &s->ps, line.p, line.len, &o);
	buf_consume(src, (uint32_t)used);
	s->bytes_in += used;
	sess_apply(s, &o);
	return true;
}

/* Backend -> client. */
static bool sess_pump_b2c(struct sess *s)
{
	bool did = false;

	while (buf_len(&s->bin) && !s->cli.failed) {
		uint32_t n = buf_len(&s->bin);

		if (s->l->ops->b2c_safe) {
			n = (uint32_t)s->l->ops->b2c_safe(&s->ps, buf_head(&s->bin), n);
			if (n == 0) {
				if (!sess_b2c_line(s))
					break;
				did = true;
				continue;
			}
		}

		if (s->tls) {
			int w;

			if (buf_room(&s->cout) == 0)
				break;
			w = sess_tls_write(s, buf_head(&s->bin), n);
			if (w <= 0)
				break; /* no room; or failed: sess_run closes */
			n = (uint32_t)w;
		} else {
			if (n > buf_room(&s->cout))
				n = buf_room(&s->cout);
			if (n == 0)
				break;
			n = buf_put(&s->cout, buf_head(&s->bin), n);
		}
		if (s->l->ops->b2c_scan)
			s->l->ops->b2c_scan(&s->ps, buf_head(&s->bin), n);
		buf_consume(&s->bin, n);
		s->bytes_out += n;
		sctr_add(s, CTR_bytes_to_client, n);
		did = true;
	}
	return did;
}

/*
 * Rule 2.7: the tracker held a STARTTLS line in the plaintext relay. Once
 * what came before it went to the backend and every earlier command has
 * its reply (proto_late_starttls waits for that), it is answered: with the
 * protocol's error where its state forbids TLS now, and the relay goes on;
 * else the plaintext backend gets QUIT/LOGOUT (its answer swallowed), the
 * client sluice's OK, and the session goes on exactly as for a client that
 * began with STARTTLS: pipelined bytes discarded, the handshake once the
 * reply drained, the backend opened again after it with the SSL TLV.
 * Returns true if the line was answered.
 */
static bool sess_late_starttls(struct sess *s)
{
	struct linereader lr;
	struct lr_line line;
	struct proto_env env;
	struct proto_out o;
	size_t used;

	if (s->scan_ok || s->tls)
		return false; /* what came before it is not all with the backend */
	lr_init(&lr, s->l->ops->line_max);
	if (lr_next(&lr, buf_head(&s->cin), buf_len(&s->cin), &line, &used) != LR_LINE)
		return false; /* the tracker holds whole lines only */
	env = sess_env(s);
	po_reset(&o);
	if (!proto_late_starttls(s->l->ops, &env, &s->ps, line.p, line.len, &o))
		return false;
	buf_consume(&s->cin, (uint32_t)used);
	s->t_active = s->core->now_ms;
	if (o.flags & PO_STARTTLS) {
		sctr_inc(s, CTR_starttls_late);
		s->c2b = s->b2c = false; /* rule 2.4: nothing more moves in plaintext */
		s->be_retiring = true;
		sess_retire_step(s, false);
	}
	sess_apply(s, &o);
	return true;
}

/* SS_RELAY: both directions, then the half-closes. */
bool sess_relay(struct sess *s)
{
	bool did = false;

	if (s->c2b)
		did |= sess_pump_c2b(s);
	did |= sess_pump_b2c(s);
	if (s->ps.local_due && sess_c2b_local(s)) {
		s->t_active = s->core->now_ms;
		return true;
	}
	if (s->fdata)
		did |= fdata_run(s);
	if (s->ps.tls_held && sess_late_starttls(s)) {
		s->t_active = s->core->now_ms;
		return true;
	}
	if (did)
		s->t_active = s->core->now_ms;

	if (s->cli.failed) {
		sctr_inc(s, CTR_client_reset);
		sess_set_result(s, "client-error", "client connection failed");
		sess_finish(s);
		return false;
	}
	/* Client finished: pass the FIN on once its bytes are out. */
	if (sess_client_done(s) && buf_len(s->tls ? &s->pin : &s->cin) == 0 &&
	    buf_len(&s->bout) == 0 && buf_len(&s->bcout) == 0 &&
	    !s->be_fin_sent && stream_is_open(&s->be)) {
		/* TLS to the backend: its close_notify first, sent before
		 * the FIN (bcout must drain again). */
		if (sess_be_tls_close(s))
			return true;
		sess_set_result(s, "ok", "client closed");
		stream_shutdown_wr(&s->be);
		s->be_fin_sent = true;
		did = true;
	}
	/* Backend finished or failed: its last bytes out, then close. */
	if ((s->be.eof || s->be.failed) && sess_be_drained(s)) {
		struct proto_env env = sess_env(s);
		struct proto_out o;

		po_reset(&o);
		if (!sess_client_done(s)) {
			/* The client is still there: it must not take this
			 * close for success (DESIGN.md §1). */
			if (s->ps.b_cur_len == 0)
				s->l->ops->lost(&env, &s->ps, s->ps.last_reply,
						strnlen(s->ps.last_reply, sizeof(s->ps.last_reply)), &o);
			if (o.reply_len || s->ps.b_cur_len || s->be.failed) {
				sctr_inc(s, CTR_backend_lost);
				sess_set_result(s, "backend-lost", "%s",
						s->be.failed ? "backend connection failed"
							     : "backend closed mid-session");
			}
			sess_apply(s, &o);
		}
		sess_closing(s, "ok", "backend closed");
		return true;
	}
	return did;
}
