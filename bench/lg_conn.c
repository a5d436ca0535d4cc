/*
 * sluice-loadgen's client side of one operation: the state machine that
 * walks one connection through its script (lg_script.c) without ever
 * blocking: plain or TLS I/O, and the reply parsers for SMTP, IMAP, POP3
 * and greetings.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "lg.h"

/* Step results besides an error kind (>= 0): */
#define STEP_DONE   (-1)
#define STEP_AGAIN  (-2)

/* Note the error's words for the output (lg_report.c); returns kind. */
static int fail(struct lg *g, int kind, const char *fmt, const char *detail)
{
	char buf[200];

	snprintf(buf, sizeof(buf), "%s%s%s", fmt, detail ? ": " : "", detail ? detail : "");
	lg_note_error(g, kind, buf);
	return kind;
}

/* An SSL_ERROR_* after a failed call: AGAIN with the epoll interest set, or
 * an error kind. */
static int ssl_result(struct lg *g, struct lg_conn *c, int r, const char *what)
{
	char buf[160];

	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		lg_set_events(g, c, EPOLLIN);
		return STEP_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		lg_set_events(g, c, EPOLLIN | EPOLLOUT);
		return STEP_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return fail(g, LG_E_closed, what, "close_notify");
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return fail(g, LG_E_closed, what, errno ? strerror(errno) : "EOF");
	default:
		ERR_error_string_n(ERR_peek_last_error(), buf, sizeof(buf));
		ERR_clear_error();
		/* --verify: the chain or the name did not pass */
		if (!c->tls && g->verify && SSL_get_verify_result(c->ssl) != X509_V_OK)
			return fail(g, LG_E_verify, "certificate",
				    X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
		return fail(g, c->tls ? LG_E_closed : LG_E_tls, what, buf);
	}
}

/* Begin or continue the client handshake. */
static int step_tls(struct lg *g, struct lg_conn *c)
{
	int r;

	if (!c->ssl) {
		if (c->rlen)    /* RFC 3207 §4: nothing may follow the 220 */
			return fail(g, LG_E_protocol, "bytes after the STARTTLS reply", NULL);
		if (!(c->ssl = SSL_new(g->ctx)) || !g->io->ssl_bind(c, c->ssl))
			return fail(g, LG_E_tls, "SSL_new", NULL);
		SSL_set_connect_state(c->ssl);
		if (lg_tls_prepare(g, c->ssl) < 0)
			return fail(g, LG_E_tls, "SNI, session or name to verify", NULL);
	}
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->tls = true;
		return STEP_DONE;
	}
	return ssl_result(g, c, r, "handshake");
}

/* Send the pending bytes of an OP_SEND / OP_SEND_MSG step. */
static int step_send(struct lg *g, struct lg_conn *c)
{
	if (!c->wp)
		c->wp = lg_step_text(g, c, &c->wleft);
	while (c->wleft) {
		size_t chunk = c->wleft > (256u << 10) ? 256u << 10 : c->wleft;
		ssize_t n;

		if (c->tls) {
			int r = SSL_write(c->ssl, c->wp, (int)chunk);

			if (r <= 0)
				return ssl_result(g, c, r, "write");
			n = r;
		} else {
			n = g->io->send(c, c->wp, chunk);
			if (n < 0) {
				if (n == -EAGAIN) {
					lg_set_events(g, c, EPOLLIN | EPOLLOUT);
					return STEP_AGAIN;
				}
				return fail(g, LG_E_closed, "send", strerror((int)-n));
			}
		}
		c->wp += n;
		c->wleft -= (size_t)n;
	}
	c->wp = NULL;
	return STEP_DONE;
}

/* Read more into rbuf: DONE when bytes came, else AGAIN or an error. */
static int fill(struct lg *g, struct lg_conn *c)
{
	size_t room = LG_RBUF - c->rlen;
	ssize_t n;

	if (!room)
		return fail(g, LG_E_protocol, "reply line longer than the buffer", NULL);
	if (c->tls) {
		int r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)room);

		if (r <= 0)
			return ssl_result(g, c, r, "read");
		n = r;
	} else {
		n = g->io->recv(c, c->rbuf + c->rlen, room);
		if (n == 0)
			return fail(g, LG_E_closed, "read", "EOF");
		if (n < 0) {
			if (n == -EAGAIN) {
				lg_set_events(g, c, EPOLLIN);
				return STEP_AGAIN;
			}
			return fail(g, LG_E_closed, "read", strerror((int)-n));
		}
	}
	c->rlen += (size_t)n;
	return STEP_DONE;
}

/* Drop the first n bytes of rbuf. */
static void consume(struct lg_conn *c, size_t n)
{
	memmove(c->rbuf, c->rbuf + n, c->rlen - n);
	c->rlen -= n;
}

/* One complete line in rbuf: its length including LF, or 0. */
static size_t line_len(const struct lg_conn *c)
{
	const char *nl = memchr(c->rbuf, '\n', c->rlen);

	return nl ? (size_t)(nl - c->rbuf) + 1 : 0;
}

static void quote(char *out, size_t outlen, const char *line, size_t len)
{
	size_t i, j = 0;

	for (i = 0; i < len && j + 1 < outlen; i++)
		out[j++] = (line[i] >= 32 && line[i] < 127) ? line[i] : '.';
	out[j] = 0;
}

/* RFC 9051 §4.3: a line ending in {n} or {n+} announces n bytes of
 * literal; returns n, or 0. */
static uint64_t literal_of(const char *line, size_t len)
{
	size_t i;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (!len || line[len - 1] != '}')
		return 0;
	for (i = len - 1; i > 0; i--)
		if (line[i - 1] == '{')
			return strtoull(line + i, NULL, 10);
	return 0;
}

/* Parse what is buffered for an expect step: DONE, AGAIN (need more bytes)
 * or an error kind. */
static int parse(struct lg *g, struct lg_conn *c)
{
	const struct lg_step *s = c->step;
	char q[80];
	size_t len;

	for (;;) {
		if (c->lit_left) {             /* IMAP literal content: skip */
			size_t k = c->rlen < c->lit_left ? c->rlen : (size_t)c->lit_left;

			consume(c, k);
			c->lit_left -= k;
			if (c->lit_left)
				return STEP_AGAIN;
		}
		if (!(len = line_len(c)))
			return STEP_AGAIN;
		quote(q, sizeof(q), c->rbuf, len);
		switch (s->op) {
		case OP_GREETING:
			consume(c, len);
			if (!strncmp(q, "220", 3) || !strncmp(q, "* OK", 4) || !strncmp(q, "+OK", 3))
				return STEP_DONE;
			return fail(g, LG_E_refused, "greeting", q);
		case OP_SMTP:          /* RFC 5321 §4.2.1: "ddd-" continues, "ddd " ends */
			consume(c, len);
			if (len < 5 || q[0] < '1' || q[0] > '5')
				return fail(g, LG_E_protocol, "SMTP reply", q);
			if (q[3] == '-')
				continue;
			return q[0] == s->expect ? STEP_DONE
				: fail(g, s->auth ? LG_E_auth : LG_E_refused, "SMTP reply", q);
		case OP_IMAP: {
			size_t tl = strlen(s->arg);
			unsigned n;

			c->lit_left = literal_of(c->rbuf, len);
			consume(c, len);
			if (!strncmp(q, s->arg, tl) && q[tl] == ' ')
				return !strncmp(q + tl + 1, "OK", 2) ? STEP_DONE
					: fail(g, s->auth ? LG_E_auth : LG_E_refused,
					       "IMAP reply", q);
			if (q[0] == '+' && q[1] == ' ')
				return fail(g, LG_E_protocol, "unexpected continuation", q);
			/* RFC 9051 §7.4.1: SELECT's "* n EXISTS" */
			if (s->count && sscanf(q, "* %u EXISTS", &n) == 1)
				c->msgs = n;
			continue;
		}
		case OP_POP3:           /* RFC 1939 §3: "+OK ..." or "-ERR ..." */
			consume(c, len);
			if (!strncmp(q, "+OK", 3)) {
				if (s->count && sscanf(q, "+OK %u", &c->msgs) != 1)
					return fail(g, LG_E_protocol, "STAT reply", q);
				return STEP_DONE;
			}
			if (!strncmp(q, "-ERR", 4))
				return fail(g, s->auth ? LG_E_auth : LG_E_refused, "POP3 reply", q);
			return fail(g, LG_E_protocol, "POP3 reply", q);
		case OP_POP3_MULTI: {   /* +OK, then lines up to a lone "." */
			bool dot = (len == 3 && !memcmp(c->rbuf, ".\r\n", 3)) ||
				   (len == 2 && !memcmp(c->rbuf, ".\n", 2));

			consume(c, len);
			if (c->in_body) {
				if (!dot)
					continue;
				c->in_body = false;
				return STEP_DONE;
			}
			if (!strncmp(q, "-ERR", 4))
				return fail(g, LG_E_refused, "POP3 reply", q);
			if (strncmp(q, "+OK", 3))
				return fail(g, LG_E_protocol, "POP3 reply", q);
			c->in_body = true;
			continue;
		}
		default:
			return fail(g, LG_E_protocol, "parse in a non-read step", NULL);
		}
	}
}

/* An expect step: parse what is there, read more until it completes. */
static int step_expect(struct lg *g, struct lg_conn *c)
{
	for (;;) {
		int r = parse(g, c);

		if (r != STEP_AGAIN)
			return r;
		if ((r = fill(g, c)) != STEP_DONE)
			return r;
	}
}

/* --resume, at the end of a successful operation: count resumption, keep
 * the newest session (TLS 1.3 tickets arrive after the handshake, so this
 * runs once the server's first words after it have been read). */
static void note_session(struct lg *g, struct lg_conn *c)
{
	SSL_SESSION *s;

	if (SSL_session_reused(c->ssl))
		g->resumed++;
	s = SSL_get1_session(c->ssl);
	if (s && SSL_SESSION_is_resumable(s)) {
		SSL_SESSION_free(g->session);
		g->session = s;
	} else {
		SSL_SESSION_free(s);
	}
}

/* Walk c through its script until it blocks, ends or fails. */
void lg_drive(struct lg *g, struct lg_conn *c)
{
	for (;;) {
		int r;

		switch (c->step->op) {
		case OP_TLS:
			r = step_tls(g, c);
			break;
		case OP_SEND:
		case OP_SEND_MSG:
		case OP_SEND_FETCH:
			r = step_send(g, c);
			if (r == STEP_DONE && c->step->op == OP_SEND_MSG)
				g->payload_bytes += g->msg_len;
			break;
		case OP_SMTP:
		case OP_IMAP:
		case OP_POP3:
		case OP_POP3_MULTI:
		case OP_GREETING:
			r = step_expect(g, c);
			/* the reply to the message itself: one more the server
			 * took responsibility for (RFC 5321 §4.1.1.4) */
			if (r == STEP_DONE && c->step->op == OP_SMTP &&
			    c->step > g->script && c->step[-1].op == OP_SEND_MSG)
				g->msgs_accepted++;
			break;
		case OP_HOLD:
			if (!c->held) {
				lg_hold(g, c);
				if (c->tls && g->idle_release)
					lg_release(g, c);
				return;
			}
			c->held = false;        /* released by the rig */
			g->held--;
			r = STEP_DONE;
			break;
		case OP_END:
			if (g->resume && c->ssl)
				note_session(g, c);
			lg_op_end(g, c, -1, NULL);
			return;
		default:
			r = fail(g, LG_E_protocol, "bad script step", NULL);
		}
		if (r == STEP_AGAIN)
			return;
		if (r >= 0) {
			lg_op_end(g, c, r, NULL);
			return;
		}
		c->step++;
	}
}
