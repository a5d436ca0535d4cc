/*
 * POP3 engine (RFC 1939, CAPA per RFC 2449, STLS per RFC 2595, response
 * codes per RFC 3206). Before login, sluice answers the AUTHORIZATION state
 * itself: greeting, CAPA, STLS, NOOP, QUIT. USER, PASS, APOP and AUTH are
 * refused with -ERR [AUTH] where TLS is required and not yet up; otherwise
 * they hand the session to the backend, whose greeting is swallowed.
 *
 * APOP needs the timestamp of the greeting the client saw; that greeting is
 * sluice's and carries none, so clients do not offer APOP (RFC 1939 7).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"

#define POP3_LINE_MAX 512      /* RFC 2449 4: 255; AUTH with an initial response needs more */
#define POP3_MAX_ERRORS 10

enum pop3_phase {
	PP_DIALOGUE,
	PP_HELD,
};

static bool pop3_is(const char *c, const char *name)
{
	return !strcasecmp(c, name);
}

/* The capability list: the backend's, without STLS, without USER and SASL
 * where TLS is required and not up; plus STLS while it can be used. */
static void pop3_capa(const struct proto_env *env, const struct proto_sess *ps,
		      struct proto_out *o)
{
	bool offer_tls = !ps->in_tls && env->tls_available && env->tls_mode != CFG_TLS_OFF;
	bool must_tls = !ps->in_tls && env->tls_mode == CFG_TLS_REQUIRED;
	size_t budget = PO_REPLY_MAX - 64; /* what does not fit is left out */
	unsigned i;

	po_reply(o, "+OK Capability list follows\r\n");
	for (i = 0; env->caps && i < env->caps->n; i++) {
		const char *c = env->caps->item[i];
		size_t l = strlen(c) + 2;

		if (!strcasecmp(c, "STLS") || l > budget ||
		    (must_tls && (!strcasecmp(c, "USER") || !strncasecmp(c, "SASL", 4))))
			continue;
		budget -= l;
		po_reply(o, "%s\r\n", c);
	}
	if (offer_tls)
		po_reply(o, "STLS\r\n");
	po_reply(o, ".\r\n");
}

static void pop3_greeting(const struct proto_env *env, struct proto_sess *ps,
			  struct proto_out *o)
{
	po_reply(o, "+OK %s POP3 ready.\r\n", env->hostname);
}

static void pop3_error(struct proto_sess *ps, struct proto_out *o, int ctr, const char *reason)
{
	ps->errors++;
	o->counter = ctr;
	o->reason = reason;
	if (ps->errors >= POP3_MAX_ERRORS && !(o->flags & PO_CLOSE)) {
		po_reply(o, "-ERR Too many bad commands.\r\n");
		o->flags |= PO_CLOSE | PO_ERROR;
		o->counter = CTR_too_many_errors;
		o->reason = "too many errors";
	}
}

static void pop3_client_line(const struct proto_env *env, struct proto_sess *ps,
			     const char *line, size_t len, bool has_nul, struct proto_out *o)
{
	char cmd[16];
	size_t i = 0, c = 0;

	if (has_nul) {
		po_reply(o, "-ERR Bad command syntax.\r\n");
		pop3_error(ps, o, CTR_bad_syntax, "NUL in command");
		return;
	}
	/* Trailing blanks after a verb change nothing. */
	while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	while (i < len && c < sizeof(cmd) - 1 && isalpha((unsigned char)line[i]))
		cmd[c++] = (char)line[i++];
	cmd[c] = 0;
	if (c == 0 || (i < len && line[i] != ' ')) {
		po_reply(o, "-ERR Unknown command.\r\n");
		pop3_error(ps, o, CTR_bad_syntax, len ? "bad command" : "empty line");
		return;
	}
	while (i < len && line[i] == ' ')
		i++;

	if (pop3_is(cmd, "USER") || pop3_is(cmd, "PASS") || pop3_is(cmd, "APOP") ||
	    pop3_is(cmd, "AUTH")) {
		if (!ps->in_tls && env->tls_mode == CFG_TLS_REQUIRED) {
			po_reply(o, "-ERR [AUTH] Plaintext authentication disallowed on "
				 "non-secure (SSL/TLS) connections.\r\n");
			pop3_error(ps, o, CTR_refused_before_tls, "login before TLS");
			return;
		}
		o->flags |= PO_BACKEND;
		ps->phase = PP_HELD;
		return;
	}
	if (pop3_is(cmd, "CAPA") && i == len) {
		pop3_capa(env, ps, o);
	} else if (pop3_is(cmd, "NOOP") && i == len) {
		po_reply(o, "+OK\r\n");
	} else if (pop3_is(cmd, "QUIT") && i == len) {
		po_reply(o, "+OK Logging out.\r\n");
		o->flags |= PO_CLOSE;
		o->reason = "client quit";
	} else if (pop3_is(cmd, "STLS") && i == len) {
		if (ps->in_tls) {
			po_reply(o, "-ERR Command not permitted when TLS active.\r\n");
			pop3_error(ps, o, CTR_starttls_in_tls, "STLS inside TLS");
		} else if (env->tls_mode == CFG_TLS_OFF) {
			po_reply(o, "-ERR Unknown command.\r\n");
			pop3_error(ps, o, CTR_unknown_command, "STLS on a plaintext listener");
		} else if (!env->tls_available) {
			po_reply(o, "-ERR [SYS/TEMP] TLS is not available.\r\n");
		} else {
			po_reply(o, "+OK Begin TLS negotiation now.\r\n");
			o->flags |= PO_STARTTLS;
		}
	} else {
		po_reply(o, "-ERR Unknown command.\r\n");
		pop3_error(ps, o, CTR_unknown_command, "unknown command");
	}
}

static void pop3_too_long(const struct proto_env *env, struct proto_sess *ps,
			  struct proto_out *o)
{
	po_reply(o, "-ERR Command line too long.\r\n");
	pop3_error(ps, o, CTR_line_too_long, "line too long");
}

static void pop3_tls_started(struct proto_sess *ps)
{
	ps->in_tls = true;
	ps->phase = PP_DIALOGUE;
}

static void pop3_unavailable(const struct proto_env *env, struct proto_sess *ps,
			     struct proto_out *o)
{
	po_reply(o, "-ERR [SYS/TEMP] %s backend not available, try again later.\r\n",
		 env->hostname);
	o->flags |= PO_CLOSE;
}

static void pop3_backend_line(const struct proto_env *env, struct proto_sess *ps,
			      const char *l, size_t len, struct proto_out *o)
{
	if (len >= 3 && !strncmp(l, "+OK", 3)) {
		o->flags |= PO_FLUSH_HELD | PO_RELAY;
		return;
	}
	pop3_unavailable(env, ps, o);
	o->flags |= PO_FAIL;
	o->counter = CTR_backend_refused;
	o->reason = "backend greeting refused";
}

static void pop3_timeout(const struct proto_env *env, struct proto_sess *ps,
			 struct proto_out *o)
{
	po_reply(o, "-ERR Disconnected for inactivity.\r\n");
	o->flags |= PO_CLOSE;
}

/* No words from sluice when the backend is lost: inside a multi-line
 * answer (RETR) a line would read as message data. The client sees the
 * close before the final "." and knows the answer is incomplete. */
static void pop3_lost(const struct proto_env *env, struct proto_sess *ps,
		      const char *last, size_t len, struct proto_out *o)
{
}

/* "STLS" again, exactly (Outlook mobile's second STARTTLS). */
static bool pop3_starttls_again(const struct proto_env *env, struct proto_sess *ps,
				const char *l, size_t len, struct proto_out *o)
{
	if (len != 4 || strncasecmp(l, "STLS", 4))
		return false;
	po_reply(o, "+OK Begin TLS negotiation now.\r\n");
	return true;
}

/* Probe: greeting, then CAPA: one capability a line up to ".". */
static int pop3_probe_line(int *state, const char *l, size_t len, struct proto_caps *caps)
{
	switch (*state) {
	case 0:
		if (len < 3 || strncmp(l, "+OK", 3))
			return -1;
		*state = 1;
		return 1;
	case 1:
		if (len < 3 || strncmp(l, "+OK", 3))
			return 2; /* no CAPA: nothing learned, nothing wrong */
		*state = 2;
		return 0;
	default:
		if (len == 1 && l[0] == '.')
			return 2;
		if (len && caps->n < CAPS_MAX && (caps->item[caps->n] = strndup(l, len)))
			caps->n++;
		return 0;
	}
}

/* The relay tracker: a command line "STLS" inside the relayed session is
 * rewritten to an unknown one of the same length ("XTLS"), so a backend
 * that offers STLS answers -ERR instead of starting a second handshake. */
static size_t pop3_c2b_scan(struct proto_sess *ps, uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const uint8_t *lf = memchr(p + i, '\n', len - i);
		uint8_t *l = p + i;
		size_t ll = lf ? (size_t)(lf - l) : len - i, e;

		if (!lf) {
			if (ll < POP3_LINE_MAX && !ps->rmode)
				return i;
			ps->rmode = 1; /* a long line: let it pass to its end */
			return len;
		}
		e = ll && l[ll - 1] == '\r' ? ll - 1 : ll;
		if (!ps->rmode && e >= 4 && !strncasecmp((const char *)l, "STLS", 4) &&
		    (e == 4 || l[4] == ' ' || l[4] == '\t')) {
			memcpy(l, "XTLS", 4);
			ps->denied++;
		}
		ps->rmode = 0;
		i += ll + 1;
	}
	return i;
}

const struct proto_ops pop3_ops = {
	.name = "pop3",
	.line_max = POP3_LINE_MAX,
	.greeting = pop3_greeting,
	.client_line = pop3_client_line,
	.too_long = pop3_too_long,
	.tls_started = pop3_tls_started,
	.backend_line = pop3_backend_line,
	.timeout = pop3_timeout,
	.unavailable = pop3_unavailable,
	.lost = pop3_lost,
	.probe_request = "CAPA\r\n",
	.probe_quit = "QUIT\r\n",
	.probe_line = pop3_probe_line,
	.starttls_again = pop3_starttls_again,
	.c2b_scan = pop3_c2b_scan,
};
