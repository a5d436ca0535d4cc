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

extern const struct proto_ops pop3_ops;

enum pop3_phase {
	PP_DIALOGUE,
	PP_HELD,
};

/* What a relayed command was, for the answer that comes to it. */
enum pop3_kind {
	K_OTHER,
	K_MULTI,      /* a +OK starts a multi-line answer (CAPA, LIST, RETR...) */
	K_LOGIN,      /* PASS, APOP: a +OK logs in */
	K_AUTH,       /* AUTH mechanism: SASL lines, then +OK logs in */
};

#define POP3_KINDS 32 /* commands in flight whose kind is kept */

/* The engine's own state, in ps->priv. */
struct pop3_state {
	uint8_t phase;          /* enum pop3_phase */
	bool c_long;            /* c2b: inside a line over the limit */
	bool auth_pending;      /* AUTH sent, its +OK/-ERR not come: SASL lines */
	bool authed;            /* +OK to PASS/APOP/AUTH: TRANSACTION state */
	bool kinds_lost;        /* more in flight than kind[] holds */
	bool b_multi;           /* b2c: inside a multi-line answer, up to "." */
	uint8_t b_len;          /* bytes of the backend line so far (saturates) */
	char b_head[4];         /* how it began */
	uint8_t kind[POP3_KINDS]; /* enum pop3_kind of relayed command n at
				     [(n - 1) % POP3_KINDS] */
};

_Static_assert(sizeof(struct pop3_state) <= PROTO_PRIV_MAX, "pop3_state fits ps->priv");

/* The engine's own state in the session's room for it. */
static struct pop3_state *pop3_st(struct proto_sess *ps)
{
	return (struct pop3_state *)ps->priv;
}

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
	if (offer_tls) {
		po_reply(o, "STLS\r\n");
		o->flags |= PO_OFFERED_TLS;
	}
	po_reply(o, ".\r\n");
}

static void pop3_greeting(const struct proto_env *env, struct proto_sess *ps,
			  struct proto_out *o)
{
	po_reply(o, "+OK %s POP3 ready.\r\n", env->hostname);
}

static void pop3_error(const struct proto_env *env, struct proto_sess *ps,
		       struct proto_out *o, int ctr, const char *reason)
{
	proto_error(&pop3_ops, env, ps, o, ctr, reason);
}

/* The grammar: a keyword of letters, blanks, the arguments (RFC 1939 3). */
static int pop3_parse(const char *l, size_t len, struct proto_line *pl)
{
	return proto_parse_verb(l, len, pl);
}

/* USER, PASS, APOP, AUTH where TLS is up or not required: the backend
 * authenticates. */
static void pop3_login(const struct proto_env *env, struct proto_sess *ps,
		       const struct proto_line *pl, struct proto_out *o)
{
	o->flags |= PO_BACKEND;
	pop3_st(ps)->phase = PP_HELD;
}

static void pop3_capa_cmd(const struct proto_env *env, struct proto_sess *ps,
			  const struct proto_line *pl, struct proto_out *o)
{
	pop3_capa(env, ps, o);
}

static void pop3_noop(const struct proto_env *env, struct proto_sess *ps,
		      const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "+OK\r\n");
}

static void pop3_quit(const struct proto_env *env, struct proto_sess *ps,
		      const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "+OK Logging out.\r\n");
	o->flags |= PO_CLOSE;
	o->reason = "client quit";
}

/* The AUTHORIZATION state's commands (RFC 1939 4, RFC 2449, RFC 2595 4);
 * the rest is unknown before login. */
static const struct proto_cmd pop3_cmds[] = {
	{ "USER", PC_TLS_FIRST, true,  pop3_login, PJ_PROGRESS },
	{ "PASS", PC_TLS_FIRST, true,  pop3_login, PJ_PROGRESS },
	{ "APOP", PC_TLS_FIRST, true,  pop3_login, PJ_PROGRESS },
	{ "AUTH", PC_TLS_FIRST, true,  pop3_login, PJ_PROGRESS },
	{ "STLS", PC_STARTTLS,  false, NULL, PJ_PROGRESS },
	{ "CAPA", PC_LOCAL,     false, pop3_capa_cmd, PJ_REPEAT },
	{ "NOOP", PC_LOCAL,     false, pop3_noop,     PJ_JUNK },
	{ "QUIT", PC_LOCAL,     false, pop3_quit, PJ_PROGRESS },
};

/* One client line: the grammar, then the command table (proto_run). */
static void pop3_client_line(const struct proto_env *env, struct proto_sess *ps,
			     const char *line, size_t len, bool has_nul, struct proto_out *o)
{
	const struct proto_cmd *cmd;
	struct proto_line pl;

	if (has_nul) {
		po_reply(o, "-ERR Bad command syntax.\r\n");
		pop3_error(env, ps, o, CTR_bad_syntax, "NUL in command");
		return;
	}
	if (pop3_parse(line, len, &pl) < 0) {
		po_reply(o, "-ERR Unknown command.\r\n");
		pop3_error(env, ps, o, CTR_bad_syntax, len ? "bad command" : "empty line");
		return;
	}
	if (!(cmd = proto_find(&pop3_ops, &pl))) {
		po_reply(o, "-ERR Unknown command.\r\n");
		pop3_error(env, ps, o, CTR_unknown_command, "unknown command");
		return;
	}
	proto_run(&pop3_ops, env, ps, &pl, cmd, o);
}

static void pop3_too_long(const struct proto_env *env, struct proto_sess *ps,
			  struct proto_out *o)
{
	po_reply(o, "-ERR Command line too long.\r\n");
	pop3_error(env, ps, o, CTR_line_too_long, "line too long");
}

static void pop3_tls_started(struct proto_sess *ps)
{
	proto_sess_tls(ps);
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
	proto_backend_refused(&pop3_ops, env, ps, o, "backend greeting refused");
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

/*
 * The relay trackers. Client -> backend: a command line "STLS" inside TLS is
 * rewritten to an unknown one of the same length ("XTLS"), so a backend that
 * offers STLS answers -ERR instead of starting a second handshake. In the
 * plaintext relay an STLS is held instead (rule 2.7): the scan stops before
 * it, and the session decides once every earlier command has its answer,
 * by whether PASS, APOP or AUTH got a +OK. Backend -> client: status lines
 * are counted, multi-line answers skipped to their "." (RFC 1939 3).
 */

/* One more relayed command; remember what it was. */
static void pop3_sent(struct proto_sess *ps, struct pop3_state *st, const uint8_t *l, size_t e)
{
	enum pop3_kind k = K_OTHER;
	struct proto_line pl;
	char line[POP3_LINE_MAX];

	memcpy(line, l, e < sizeof(line) ? e : sizeof(line));
	if (pop3_parse(line, e < sizeof(line) ? e : sizeof(line), &pl) == 0) {
		if (pop3_is(pl.verb, "CAPA") || pop3_is(pl.verb, "RETR") ||
		    pop3_is(pl.verb, "TOP") ||
		    ((pop3_is(pl.verb, "LIST") || pop3_is(pl.verb, "UIDL") ||
		      pop3_is(pl.verb, "AUTH")) && !pl.arg_len))
			k = K_MULTI;
		else if (pop3_is(pl.verb, "PASS") || pop3_is(pl.verb, "APOP"))
			k = K_LOGIN;
		else if (pop3_is(pl.verb, "AUTH"))
			k = K_AUTH;
	}
	if (k == K_AUTH)
		st->auth_pending = true;
	ps->cmds++;
	if (ps->cmds - ps->replies > POP3_KINDS)
		st->kinds_lost = true;
	st->kind[(ps->cmds - 1) % POP3_KINDS] = (uint8_t)k;
}

static size_t pop3_c2b_scan(struct proto_sess *ps, uint8_t *p, size_t len)
{
	struct pop3_state *st = pop3_st(ps);
	size_t i = 0;

	if (ps->tls_held)
		return 0; /* nothing passes the held STLS */
	while (i < len) {
		const uint8_t *lf = memchr(p + i, '\n', len - i);
		uint8_t *l = p + i;
		size_t ll = lf ? (size_t)(lf - l) : len - i, e;
		bool stls;

		if (!lf) {
			if (ll < POP3_LINE_MAX && !st->c_long)
				return i;
			if (!st->c_long && !st->auth_pending)
				pop3_sent(ps, st, l, 0);
			st->c_long = true; /* a long line: let it pass to its end */
			return len;
		}
		e = ll && l[ll - 1] == '\r' ? ll - 1 : ll;
		stls = !st->c_long && !st->auth_pending && e >= 4 &&
		       !strncasecmp((const char *)l, "STLS", 4) &&
		       (e == 4 || l[4] == ' ' || l[4] == '\t');
		if (stls && !ps->in_tls) {
			ps->tls_held = true; /* rule 2.7: the session decides */
			return i;
		}
		if (!st->c_long && !st->auth_pending)
			pop3_sent(ps, st, l, e);
		if (stls) {
			memcpy(l, "XTLS", 4);
			ps->denied++;
		}
		st->c_long = false;
		i += ll + 1;
	}
	return i;
}

/* A backend line ended: count a status line, follow login and multi-line
 * answers. */
static void pop3_b2c_line(struct proto_sess *ps, struct pop3_state *st)
{
	bool ok = st->b_len >= 3 && !strncmp(st->b_head, "+OK", 3);
	bool err = st->b_len >= 4 && !strncmp(st->b_head, "-ERR", 4);
	enum pop3_kind k;

	if (st->b_multi) {
		if ((st->b_len == 1 || (st->b_len == 2 && st->b_head[1] == '\r')) &&
		    st->b_head[0] == '.')
			st->b_multi = false;
		return;
	}
	if (!ok && !err)
		return; /* a SASL challenge ("+ ..."), or nothing we know */
	ps->replies++;
	if (ps->replies > ps->cmds)
		return; /* unsolicited */
	k = (enum pop3_kind)st->kind[(ps->replies - 1) % POP3_KINDS];
	if (k == K_MULTI && ok)
		st->b_multi = true;
	if (k == K_AUTH)
		st->auth_pending = false;
	if ((k == K_LOGIN || k == K_AUTH) && ok)
		st->authed = true;
}

/* Backend -> client: status lines counted, line by line across reads. */
static void pop3_b2c_scan(struct proto_sess *ps, const uint8_t *p, size_t len)
{
	struct pop3_state *st = pop3_st(ps);
	const uint8_t *end = p + len;

	while (p < end) {
		const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((lf ? lf : end) - p);

		for (size_t k = 0; k < n && st->b_len + k < sizeof(st->b_head); k++)
			st->b_head[st->b_len + k] = (char)p[k];
		st->b_len = (uint8_t)(st->b_len + n > 255 ? 255 : st->b_len + n);
		if (!lf)
			return;
		pop3_b2c_line(ps, st);
		st->b_len = 0;
		p = lf + 1;
	}
}

/* Rule 2.7: STLS in the AUTHORIZATION state only (RFC 2595 4). */
static bool pop3_starttls_allowed(const struct proto_sess *ps)
{
	const struct pop3_state *st = (const struct pop3_state *)ps->priv;

	return !st->authed && !st->auth_pending && !st->kinds_lost;
}

/*
 * Drain: -ERR where no answer is in flight (in the relay: every command
 * answered, not inside a multi-line answer or an AUTH exchange). The
 * backend gets QUIT only before login: after it, QUIT would enter the
 * UPDATE state and remove the messages the client marked with DELE, a
 * commit the client never asked for (RFC 1939 6); a close without QUIT
 * keeps them, so the client finds them again.
 */
static bool pop3_goodbye(const struct proto_sess *ps, bool relay, const char **be_bye)
{
	const struct pop3_state *st = (const struct pop3_state *)ps->priv;

	if (!relay)
		return st->phase == PP_DIALOGUE;
	if (st->b_multi || st->auth_pending || st->c_long || st->b_len || st->kinds_lost)
		return false;
	*be_bye = st->authed ? NULL : "QUIT\r\n";
	return true;
}

/* Relay: inside a multi-line answer (RETR, TOP, LIST...) up to its ".",
 * or a line begun: a -ERR of sluice's there would be message data. */
static bool pop3_mid_response(const struct proto_sess *ps)
{
	const struct pop3_state *st = (const struct pop3_state *)ps->priv;

	return st->b_multi || st->b_len;
}

/* What sluice says for the shared rules, in Dovecot's words. */
static const char *const pop3_words[PW__COUNT] = {
	[PW_STARTTLS_OK]      = "+OK Begin TLS negotiation now.",
	[PW_STARTTLS_IN_TLS]  = "-ERR Command not permitted when TLS active.",
	[PW_STARTTLS_OFF]     = "-ERR Unknown command.",
	[PW_STARTTLS_NO_CERT] = "-ERR [SYS/TEMP] TLS is not available.",
	[PW_STARTTLS_SYNTAX]  = "-ERR Unknown command.",
	[PW_STARTTLS_NOT_NOW] = "-ERR STLS is not valid after login.",
	[PW_STARTTLS_UNTRACKED] = "-ERR STLS after a command that could not be followed.",
	[PW_TLS_FIRST]        = ("-ERR [AUTH] Plaintext authentication disallowed on "
				 "non-secure (SSL/TLS) connections."),
	[PW_TOO_MANY_ERRORS]  = "-ERR Too many bad commands.",
	[PW_SHUTTING_DOWN]    = "-ERR [SYS/TEMP] %s Server shutting down.",
	[PW_TOO_MANY_SESSIONS] = "-ERR [SYS/TEMP] %s Too many sessions, try again later.",
	[PW_TOO_MANY_FROM_ADDR] = "-ERR [SYS/TEMP] Too many connections from your address.",
	[PW_RATE_LIMITED]      = "-ERR [SYS/TEMP] Too many connections from your address, try again later.",
	[PW_TOO_MANY_JUNK]     = "-ERR Too many commands without progress.",
	[PW_DEADLINE]          = "-ERR Disconnected for inactivity.",
};

const struct proto_ops pop3_ops = {
	.name = "pop3",
	.line_max = POP3_LINE_MAX,
	.max_errors = POP3_MAX_ERRORS,
	.words = pop3_words,
	.parse = pop3_parse,
	.cmds = pop3_cmds,
	.n_cmds = sizeof(pop3_cmds) / sizeof(pop3_cmds[0]),
	.starttls_allowed = pop3_starttls_allowed,
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
	.b2c_scan = pop3_b2c_scan,
	.goodbye = pop3_goodbye,
	.mid_response = pop3_mid_response,
};
