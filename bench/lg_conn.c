/*
 * The load generator's client side of one operation: the workload scripts,
 * and the state machine that walks one connection through its script
 * without ever blocking (plain or TLS I/O, reply parsers for SMTP, IMAP and
 * greetings).
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

#define EHLO "EHLO loadgen.bench\r\n"

/* handshake and resume: implicit TLS, the greeting proves the server is
 * through its side of the handshake (TLS 1.3 lets the client finish first) */
static const struct lg_step script_handshake[] = {
	{ OP_TLS, NULL, 0 }, { OP_GREETING, NULL, 0 }, { OP_END, NULL, 0 },
};

/* RFC 5321 session with STARTTLS (RFC 3207), no pipelining: what a typical
 * MTA does once per message. */
static struct lg_step script_smtp[] = {
	{ OP_SMTP, NULL, '2' },
	{ OP_SEND, EHLO, 0 }, { OP_SMTP, NULL, '2' },
	{ OP_SEND, "STARTTLS\r\n", 0 }, { OP_SMTP, NULL, '2' },
	{ OP_TLS, NULL, 0 },
#define SMTP_AFTER_TLS 6
	{ OP_SEND, EHLO, 0 }, { OP_SMTP, NULL, '2' },
	{ OP_SEND, "MAIL FROM:<loadgen@bench.test>\r\n", 0 }, { OP_SMTP, NULL, '2' },
#define SMTP_RCPT 10
	{ OP_SEND, NULL, 0 }, { OP_SMTP, NULL, '2' },      /* --rcpt */
	{ OP_SEND, "DATA\r\n", 0 }, { OP_SMTP, NULL, '3' },
	{ OP_SEND_MSG, NULL, 0 }, { OP_SMTP, NULL, '2' },
	{ OP_SEND, "QUIT\r\n", 0 }, { OP_SMTP, NULL, '2' },
	{ OP_END, NULL, 0 },
};

/* The same session on implicit TLS (RFC 8314): TLS, greeting, then as above. */
static const struct lg_step script_smtp_implicit_head[] = {
	{ OP_TLS, NULL, 0 }, { OP_SMTP, NULL, '2' },
};

/* IMAP with STARTTLS (RFC 2595, RFC 9051): log in, open the inbox, fetch
 * the first message whole. The LOGIN line is filled in at start. */
static struct lg_step script_imap[] = {
	{ OP_GREETING, NULL, 0 },
	{ OP_SEND, "a STARTTLS\r\n", 0 }, { OP_IMAP, "a", 0 },
	{ OP_TLS, NULL, 0 },
	{ OP_SEND, NULL, 0 }, { OP_IMAP, "b", 0 },
#define IMAP_LOGIN 4
	{ OP_SEND, "c SELECT INBOX\r\n", 0 }, { OP_IMAP, "c", 0 },
	{ OP_SEND, "d FETCH 1 BODY[]\r\n", 0 }, { OP_IMAP, "d", 0 },
	{ OP_SEND, "e LOGOUT\r\n", 0 }, { OP_IMAP, "e", 0 },
	{ OP_END, NULL, 0 },
};

/* Idle: park after connect (the server holds a connection before TLS),
 * then after the handshake and greeting (an idle TLS connection). */
static const struct lg_step script_idle[] = {
	{ OP_HOLD, "plain", 0 },
	{ OP_TLS, NULL, 0 }, { OP_GREETING, NULL, 0 },
	{ OP_HOLD, "tls", 0 },
	{ OP_END, NULL, 0 },
};

static struct lg_step script_smtp_implicit[sizeof(script_smtp) / sizeof(script_smtp[0])
					  - SMTP_AFTER_TLS + 2];

/* Builds g->script for the workload (and the message for smtp/bulk). */
int lg_script_init(struct lg *g)
{
	size_t i, n_after = sizeof(script_smtp) / sizeof(script_smtp[0]) - SMTP_AFTER_TLS;

	script_smtp[SMTP_RCPT].arg = g->rcpt_cmd;
	memcpy(script_smtp_implicit, script_smtp_implicit_head,
	       sizeof(script_smtp_implicit_head));
	for (i = 0; i < n_after; i++)
		script_smtp_implicit[2 + i] = script_smtp[SMTP_AFTER_TLS + i];

	switch (g->wl) {
	case WL_HANDSHAKE:
	case WL_RESUME:
		g->script = script_handshake;
		break;
	case WL_SMTP:
	case WL_BULK:
		g->script = g->implicit ? script_smtp_implicit : script_smtp;
		break;
	case WL_IMAP:
		script_imap[IMAP_LOGIN].arg = g->login_cmd;
		g->script = script_imap;
		break;
	case WL_IDLE:
		g->script = script_idle;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

/* Note the first error's words for the JSON output. */
static int fail(struct lg *g, int kind, const char *fmt, const char *detail)
{
	if (!g->first_error[0])
		snprintf(g->first_error, sizeof(g->first_error), "%s: %s%s%s",
			 lg_err_names[kind], fmt, detail ? ": " : "", detail ? detail : "");
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
		SSL_set_tlsext_host_name(c->ssl, "bench.test");
		if (g->wl == WL_RESUME && g->session)
			SSL_set_session(c->ssl, g->session);
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
	if (!c->wp) {
		if (c->step->op == OP_SEND_MSG) {
			c->wp = g->msg;
			c->wleft = g->msg_len;
		} else {
			c->wp = c->step->arg;
			c->wleft = strlen(c->step->arg);
		}
	}
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
	size_t room = sizeof(c->rbuf) - c->rlen;
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
			return q[0] == s->expect ? STEP_DONE : fail(g, LG_E_refused, "SMTP reply", q);
		case OP_IMAP: {
			size_t tl = strlen(s->arg);

			c->lit_left = literal_of(c->rbuf, len);
			consume(c, len);
			if (!strncmp(q, s->arg, tl) && q[tl] == ' ')
				return !strncmp(q + tl + 1, "OK", 2) ? STEP_DONE
					: fail(g, LG_E_refused, "IMAP reply", q);
			if (q[0] == '+' && q[1] == ' ')
				return fail(g, LG_E_protocol, "unexpected continuation", q);
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

/* After a resumable handshake: count resumption, keep the newest session
 * (TLS 1.3 tickets arrive after the handshake, so this runs after the
 * greeting has been read). */
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
			r = step_send(g, c);
			if (r == STEP_DONE && c->step->op == OP_SEND_MSG)
				g->payload_bytes += g->msg_len;
			break;
		case OP_SMTP:
		case OP_IMAP:
		case OP_GREETING:
			r = step_expect(g, c);
			/* the reply to the message itself: one more the server
			 * took responsibility for (RFC 5321 §4.1.1.4) */
			if (r == STEP_DONE && c->step->op == OP_SMTP &&
			    c->step[-1].op == OP_SEND_MSG)
				g->msgs_accepted++;
			if (r == STEP_DONE && c->step->op == OP_GREETING && g->wl == WL_RESUME)
				note_session(g, c);
			break;
		case OP_HOLD:
			if (!c->held) {
				lg_hold(g, c);
				return;
			}
			c->held = false;        /* released by the rig */
			g->held--;
			r = STEP_DONE;
			break;
		case OP_END:
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
