/*
 * SMTP engine (RFC 5321, STARTTLS per RFC 3207, opportunistic TLS per
 * RFC 7435). Before the backend is connected, sluice answers the opening
 * itself: banner, EHLO/HELO with the backend's capabilities plus STARTTLS,
 * NOOP, RSET, HELP, QUIT, STARTTLS. The first command that needs the mail
 * system (MAIL, RCPT, DATA, BDAT, VRFY, EXPN, ETRN; after TLS, EHLO) hands
 * the session to the backend; this file then opens the backend: swallow its
 * greeting, replay the client's EHLO on the plaintext path, or pass the
 * backend's EHLO reply without STARTTLS inside TLS.
 *
 * A command table in the style of OpenSMTPD's smtp_session.c: each verb has
 * a class (enum proto_class: the STARTTLS rules and "TLS first" are decided
 * once, in proto.c) and one handler; "HELO first" is cmd_backend's.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proto.h"

#define SMTP_LINE_MAX 512  /* RFC 5321 4.5.3.1.4, CRLF included */
#define SMTP_MAX_ERRORS 20 /* as Postfix's smtpd_hard_error_limit */

enum smtp_phase {
	SP_DIALOGUE,  /* sluice answers (before TLS, or in TLS before EHLO) */
	SP_HELD,      /* client input held for the backend */
};

enum smtp_bphase {
	BP_GREETING,  /* swallow the backend's 220 */
	BP_REPLAY,    /* plaintext path: our replayed EHLO/HELO, swallow the 250 */
	BP_FILTER,    /* TLS path: client's EHLO reply, without STARTTLS */
	BP_DONE,
};

/* What a relayed command was, for the reply that answers it (rule 2.7:
 * STARTTLS only outside a mail transaction, RFC 3207 4.2). */
enum smtp_kind {
	K_OTHER,
	K_MAIL,       /* a 2xx starts a transaction */
	K_RESET,      /* RSET, EHLO, HELO: a 2xx ends it (RFC 5321 4.1.4) */
	K_END,        /* end of data, BDAT LAST: any final reply ends it */
};

#define SMTP_PENDING 16 /* MAIL, RSET, EHLO, ends of data in flight; other
			     commands (RCPT...) take no room */

/* The engine's own state, in ps->priv. */
struct smtp_state {
	uint8_t phase;          /* enum smtp_phase */
	uint8_t bphase;         /* enum smtp_bphase: backend opening */
	bool greeted;           /* client said HELO/EHLO */
	bool ehlo;              /* ... and it was EHLO */
	uint8_t rmode;          /* relay tracker: enum smtp_rmode */
	uint8_t rstate;         /* relay tracker: position in a body line */
	bool in_txn;            /* a MAIL got its 2xx and nothing ended it */
	bool kinds_lost;        /* more in flight than pend[] holds: in_txn
				   unknown, STARTTLS refused from then on */
	uint8_t pend_head, pend_len; /* pend[] as a ring */
	char *replay;           /* EHLO/HELO to replay to the backend, malloc'd */
	char *acc;              /* EHLO reply line held back inside TLS */
	size_t acc_len;
	uint32_t data_at;       /* ps->cmds at the last DATA */
	uint64_t chunk_left;    /* bytes of a BDAT chunk still to pass */
	/* The trace header (ps->trace; smtp_c2b_inject). */
	char helo[64];          /* the client's EHLO/HELO name, made safe */
	bool authed;            /* a 235 came: ESMTPA (RFC 3848) */
	bool bdat_first;        /* a MAIL went by: its first BDAT gets the line */
	uint8_t inj;            /* enum smtp_inj: what inject_due is for */
	bool inj_last;          /* the BDAT to rewrite has LAST */
	uint64_t inj_chunk;     /* ... and this chunk size */
	struct {
		uint32_t n;     /* the relayed command's number (ps->cmds) */
		uint8_t kind;   /* enum smtp_kind, never K_OTHER */
	} pend[SMTP_PENDING];   /* the commands whose reply moves in_txn */
};

_Static_assert(sizeof(struct smtp_state) <= PROTO_PRIV_MAX, "smtp_state fits ps->priv");

enum smtp_inj { INJ_NONE, INJ_DATA, INJ_BDAT };

/* The engine's own state in the session's room for it. */
static struct smtp_state *smtp_st(struct proto_sess *ps)
{
	return (struct smtp_state *)ps->priv;
}

extern const struct proto_ops smtp_ops;

static void smtp_error(const struct proto_env *env, struct proto_sess *ps,
		       struct proto_out *o, int ctr, const char *reason)
{
	proto_error(&smtp_ops, env, ps, o, ctr, reason);
}

/* Keep the client's EHLO/HELO name for the trace header: what a domain
 * or an address literal may hold, anything else as '?', at most 63
 * bytes (a Received: line must not carry the client's CR, LF or
 * parentheses). */
static void smtp_note_helo(struct smtp_state *st, const char *a, size_t n)
{
	size_t i;

	while (n && (*a == ' ' || *a == '\t'))
		a++, n--;
	for (i = 0; i < n && i < sizeof(st->helo) - 1 && a[i] != ' ' && a[i] != '\t' &&
		    a[i] != '\r' && a[i] != '\n'; i++)
		st->helo[i] = isalnum((unsigned char)a[i]) || (a[i] && strchr(".-_:[]", a[i])) ? a[i] : '?';
	st->helo[i] = 0;
}

/* EHLO/HELO before TLS: sluice's own reply, the line kept for the replay;
 * inside TLS: the backend's (RFC 3207 4.2: the client starts again). */
static void cmd_ehlo(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o, bool ehlo)
{
	struct smtp_state *st = smtp_st(ps);
	unsigned i, n = 0;
	bool offer_tls = !ps->in_tls && env->tls_available &&
			 env->tls_mode != CFG_TLS_OFF;

	if (!pl->arg_len) {
		po_reply(o, "501 5.5.4 Syntax: %s hostname\r\n", ehlo ? "EHLO" : "HELO");
		smtp_error(env, ps, o, CTR_bad_syntax, "EHLO without a name");
		return;
	}
	smtp_note_helo(st, pl->arg, pl->arg_len);
	if (ps->in_tls) {
		/* After TLS the backend answers EHLO: the client gets the real
		 * capabilities (AUTH among them), STARTTLS filtered out. */
		o->flags |= PO_BACKEND;
		st->phase = SP_HELD;
		st->bphase = BP_GREETING;
		st->ehlo = ehlo;
		return;
	}
	free(st->replay);
	st->replay = NULL;
	if (asprintf(&st->replay, "%s %.*s", ehlo ? "EHLO" : "HELO", (int)pl->arg_len,
		     pl->arg) < 0)
		st->replay = NULL;
	st->greeted = true;
	st->ehlo = ehlo;
	if (!ehlo) {
		po_reply(o, "250 %s\r\n", env->hostname);
		return;
	}

	/* Choose what is listed: AUTH never before TLS, STARTTLS is ours to
	 * offer, and the reply must fit (a backend with absurd keywords
	 * loses the ones that do not). */
	const char *list[CAPS_MAX];
	size_t budget = PO_REPLY_MAX - strlen(env->hostname) - 32;

	for (i = 0; env->caps && i < env->caps->n; i++) {
		const char *c = env->caps->item[i];
		size_t l = strlen(c) + 6;

		if (!strncasecmp(c, "AUTH", 4) || !strcasecmp(c, "STARTTLS") || l > budget)
			continue;
		budget -= l;
		list[n++] = c;
	}
	po_reply(o, "250%c%s\r\n", (n || offer_tls) ? '-' : ' ', env->hostname);
	for (i = 0; i < n; i++)
		po_reply(o, "250%c%s\r\n", (i == n - 1 && !offer_tls) ? ' ' : '-', list[i]);
	if (offer_tls) {
		po_reply(o, "250 STARTTLS\r\n");
		o->flags |= PO_OFFERED_TLS;
	}
}

static void cmd_ehlo_e(const struct proto_env *env, struct proto_sess *ps,
		       const struct proto_line *pl, struct proto_out *o)
{
	cmd_ehlo(env, ps, pl, o, true);
}

static void cmd_helo(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o)
{
	cmd_ehlo(env, ps, pl, o, false);
}

static void cmd_noop(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "250 2.0.0 Ok\r\n");
}

static void cmd_help(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS\r\n");
}

static void cmd_quit(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "221 2.0.0 Bye\r\n");
	o->flags |= PO_CLOSE;
	o->reason = "client quit";
}

/* A command for the mail system (MAIL, RCPT, DATA...): on the plaintext
 * path (RFC 7435) open the backend, replay EHLO, then hand it this
 * command; it needs HELO/EHLO first. */
static void cmd_backend(const struct proto_env *env, struct proto_sess *ps,
			const struct proto_line *pl, struct proto_out *o)
{
	struct smtp_state *st = smtp_st(ps);

	if (!st->greeted || ps->in_tls) {
		/* In TLS, the EHLO goes to the backend and ends sluice's
		 * part; anything before it is too early. */
		po_reply(o, "503 5.5.1 Error: send HELO/EHLO first\r\n");
		smtp_error(env, ps, o, CTR_bad_syntax, "command before EHLO");
		return;
	}
	o->flags |= PO_BACKEND;
	st->phase = SP_HELD;
	st->bphase = BP_GREETING;
}

/* AUTH is never offered before TLS, and never carried in plaintext where
 * TLS is offered; on tls: off it goes to the backend. */
static void cmd_auth(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o)
{
	if (env->tls_mode == CFG_TLS_OFF) {
		cmd_backend(env, ps, pl, o);
	} else if (ps->in_tls) {
		po_reply(o, "503 5.5.1 Error: send HELO/EHLO first\r\n");
		smtp_error(env, ps, o, CTR_bad_syntax, "AUTH before EHLO");
	} else {
		po_reply(o, "530 5.7.0 Must issue a STARTTLS command first\r\n");
		smtp_error(env, ps, o, CTR_refused_before_tls, "AUTH before TLS");
	}
}

static const struct proto_cmd smtp_cmds[] = {
	{ "EHLO",     PC_LOCAL,     true, cmd_ehlo_e, PJ_REPEAT },
	{ "HELO",     PC_LOCAL,     true, cmd_helo,   PJ_REPEAT },
	{ "STARTTLS", PC_STARTTLS,  true, NULL, PJ_PROGRESS },
	{ "NOOP",     PC_LOCAL,     true, cmd_noop,   PJ_JUNK },
	{ "RSET",     PC_LOCAL,     true, cmd_noop,   PJ_JUNK },
	{ "HELP",     PC_LOCAL,     true, cmd_help,   PJ_JUNK },
	{ "QUIT",     PC_LOCAL,     true, cmd_quit, PJ_PROGRESS },
	{ "AUTH",     PC_TLS_FIRST, true, cmd_auth, PJ_PROGRESS },
	{ "MAIL",     PC_BACKEND,   true, cmd_backend, PJ_PROGRESS },
	{ "RCPT",     PC_BACKEND,   true, cmd_backend, PJ_PROGRESS },
	{ "DATA",     PC_BACKEND,   true, cmd_backend, PJ_PROGRESS },
	{ "BDAT",     PC_BACKEND,   true, cmd_backend, PJ_PROGRESS },
	{ "VRFY",     PC_BACKEND,   true, cmd_backend, PJ_PROGRESS },
	{ "EXPN",     PC_BACKEND,   true, cmd_backend, PJ_PROGRESS },
	{ "ETRN",     PC_BACKEND,   true, cmd_backend, PJ_PROGRESS },
};

/* The grammar: a verb, blanks, the argument (RFC 5321 4.1.1). */
static int smtp_parse(const char *l, size_t len, struct proto_line *pl)
{
	size_t v = 0;

	memset(pl, 0, sizeof(*pl));
	while (len && (l[len - 1] == ' ' || l[len - 1] == '\t'))
		len--;
	while (v < len && l[v] != ' ' && l[v] != '\t')
		v++;
	if (!v)
		return -1;
	if (v < sizeof(pl->verb)) /* a longer one is no verb of ours */
		memcpy(pl->verb, l, v);
	while (v < len && (l[v] == ' ' || l[v] == '\t'))
		v++;
	pl->arg = l + v;
	pl->arg_len = len - v;
	return 0;
}

static void smtp_greeting(const struct proto_env *env, struct proto_sess *ps,
			  struct proto_out *o)
{
	po_reply(o, "220 %s ESMTP\r\n", env->hostname);
}

/* One client line: the grammar, then the command table (proto_run). */
static void smtp_client_line(const struct proto_env *env, struct proto_sess *ps,
			     const char *line, size_t len, bool has_nul,
			     struct proto_out *o)
{
	const struct proto_cmd *c;
	struct proto_line pl;

	if (has_nul || len == 0 || len > SMTP_LINE_MAX || smtp_parse(line, len, &pl) < 0) {
		po_reply(o, "500 5.5.2 Error: bad syntax\r\n");
		smtp_error(env, ps, o, CTR_bad_syntax, has_nul ? "NUL in command" : "empty command");
		return;
	}
	if (!(c = proto_find(&smtp_ops, &pl))) {
		po_reply(o, "502 5.5.2 Error: command not recognized\r\n");
		smtp_error(env, ps, o, CTR_unknown_command, "unknown command");
		return;
	}
	proto_run(&smtp_ops, env, ps, &pl, c, o);
}

static void smtp_too_long(const struct proto_env *env, struct proto_sess *ps,
			  struct proto_out *o)
{
	po_reply(o, "500 5.5.2 Error: line too long\r\n");
	smtp_error(env, ps, o, CTR_line_too_long, "line too long");
}

/* Rule 2 of DESIGN.md: nothing learned before TLS survives it. */
static void smtp_tls_started(struct proto_sess *ps)
{
	struct smtp_state *st = smtp_st(ps);

	free(st->replay);
	free(st->acc);
	proto_sess_tls(ps); /* greeted, EHLO, the trackers: all gone */
}

static void smtp_unavailable(const struct proto_env *env, struct proto_sess *ps,
			     struct proto_out *o)
{
	po_reply(o, "421 4.4.2 %s Error: backend not available, try again later\r\n",
		 env->hostname);
	o->flags |= PO_CLOSE;
}

/* Parse "NNN-" / "NNN " / "NNN": returns the code, or -1. *final set. */
static int smtp_reply_code(const char *l, size_t len, bool *final)
{
	if (len < 3 || !isdigit((unsigned char)l[0]) || !isdigit((unsigned char)l[1]) ||
	    !isdigit((unsigned char)l[2]))
		return -1;
	if (len > 3 && l[3] != '-' && l[3] != ' ')
		return -1;
	*final = len == 3 || l[3] == ' ';
	return (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
}

static bool smtp_is_starttls_line(const char *l, size_t len)
{
	const char *k = l + 4;
	size_t n;

	if (len < 4)
		return false;
	n = len - 4;
	while (n && (k[n - 1] == ' ' || k[n - 1] == '\t'))
		n--;
	return n == 8 && !strncasecmp(k, "STARTTLS", 8);
}

/*
 * One line of the backend's EHLO reply inside TLS, passed on without
 * STARTTLS. Lines go out as they come, one behind: the line held in acc
 * becomes the final one ("250 ") if the final line turns out to be the
 * STARTTLS that is dropped.
 */
static void smtp_filter(const struct proto_env *env, struct proto_sess *ps,
			const char *l, size_t len, bool final, struct proto_out *o)
{
	struct smtp_state *st = smtp_st(ps);
	bool drop = smtp_is_starttls_line(l, len);

	if (!st->acc) {
		st->acc = malloc(BACKEND_LINE_MAX + 2);
		st->acc_len = 0;
		if (!st->acc) {
			proto_backend_refused(&smtp_ops, env, ps, o, "out of memory");
			return;
		}
	}
	if (final && drop && st->acc_len >= 4)
		st->acc[3] = ' ';
	if (!drop || final) {
		/* the held line can go now */
		memcpy(o->reply + o->reply_len, st->acc, st->acc_len);
		o->reply_len += st->acc_len;
		st->acc_len = 0;
	}
	if (!drop && len <= BACKEND_LINE_MAX) {
		memcpy(st->acc, l, len);
		memcpy(st->acc + len, "\r\n", 2);
		st->acc_len = len + 2;
	}
	if (!final)
		return;
	memcpy(o->reply + o->reply_len, st->acc, st->acc_len);
	o->reply_len += st->acc_len;
	free(st->acc);
	st->acc = NULL;
	st->acc_len = 0;
	ps->replies++; /* the client's EHLO was relayed and counted */
	o->flags |= PO_RELAY;
	st->bphase = BP_DONE;
}

static void smtp_backend_line(const struct proto_env *env, struct proto_sess *ps,
			      const char *l, size_t len, struct proto_out *o)
{
	struct smtp_state *st = smtp_st(ps);
	bool final = false;
	int code = smtp_reply_code(l, len, &final);

	if (code < 0) {
		proto_backend_refused(&smtp_ops, env, ps, o, "backend sent a malformed reply");
		return;
	}
	switch (st->bphase) {
	case BP_GREETING:
		if (!final)
			return;
		if (code != 220) {
			proto_backend_refused(&smtp_ops, env, ps, o, "backend greeting refused");
			return;
		}
		if (ps->in_tls) {
			o->flags |= PO_FLUSH_HELD; /* the client's own EHLO */
			st->bphase = BP_FILTER;
		} else {
			po_backend(o, "%s\r\n", st->replay ? st->replay : "EHLO localhost");
			st->bphase = BP_REPLAY;
		}
		return;
	case BP_REPLAY:
		if (!final)
			return;
		if (code != 250) {
			proto_backend_refused(&smtp_ops, env, ps, o, "backend refused the replayed EHLO");
			return;
		}
		o->flags |= PO_FLUSH_HELD | PO_RELAY;
		st->bphase = BP_DONE;
		return;
	case BP_FILTER:
		smtp_filter(env, ps, l, len, final, o);
		return;
	default:
		return;
	}
}

static void smtp_timeout(const struct proto_env *env, struct proto_sess *ps,
			 struct proto_out *o)
{
	po_reply(o, "421 4.4.2 %s Error: timeout exceeded\r\n", env->hostname);
	o->flags |= PO_CLOSE;
}

static void smtp_lost(const struct proto_env *env, struct proto_sess *ps,
		      const char *last, size_t len, struct proto_out *o)
{
	/* After the backend's 221 or 421 the close is expected. Elsewhere the
	 * client must learn that nothing was accepted: a 421 at a line
	 * boundary (RFC 5321 3.8), never anything that reads as success. */
	if (len >= 3 && (!strncmp(last, "221", 3) || !strncmp(last, "421", 3)))
		return;
	po_reply(o, "421 4.4.2 %s Error: backend connection lost\r\n", env->hostname);
}

static bool smtp_starttls_again(const struct proto_env *env, struct proto_sess *ps,
				const char *l, size_t len, struct proto_out *o)
{
	if (len != 8 || strncasecmp(l, "STARTTLS", 8))
		return false;
	po_reply(o, "220 2.0.0 Ready to start TLS\r\n");
	return true;
}

/* Probe: *state 0 reads the greeting, 1 the EHLO reply's first line (the
 * server's name), 2 its keywords. Returns 1 when the request is due, 2 when
 * the capabilities are complete, 0 for more, -1 when the backend refuses. */
static int smtp_probe_line(int *state, const char *l, size_t len,
			   struct proto_caps *caps)
{
	bool final = false;
	int code = smtp_reply_code(l, len, &final);

	if (code < 0)
		return -1;
	if (*state == 0) {
		if (code != 220)
			return -1;
		if (final)
			*state = 1;
		return final ? 1 : 0;
	}
	if (code != 250)
		return -1;
	if (*state == 2 && len > 4 && caps->n < CAPS_MAX) {
		caps->item[caps->n] = strndup(l + 4, len - 4);
		if (caps->item[caps->n])
			caps->n++;
	}
	*state = 2;
	return final ? 2 : 0;
}

/*
 * The relay tracker. Inside TLS, after EHLO, the client's bytes go to the
 * backend, which may itself offer STARTTLS (it is only hidden from the EHLO
 * reply). A STARTTLS there would start a second handshake with the backend,
 * so a STARTTLS command is rewritten to an unknown verb of the same length:
 * the backend answers with its own error, in pipelining order (rule 2.2).
 * In the plaintext relay (port 25) a STARTTLS is held instead: the scan
 * stops before it and the session decides (rule 2.7), by the transaction
 * state that the replies to MAIL, RSET, EHLO and the end of data keep.
 * To know what is a command, lines are framed by LF as Postfix frames them,
 * and message content is skipped: after DATA and its 354, up to the line
 * "."; after BDAT n, n bytes (RFC 3030).
 */
enum smtp_rmode { RM_COMMAND, RM_DATA_WAIT, RM_BODY, RM_CHUNK, RM_LONGLINE };

#define SMTP_SCAN_HOLD 1024 /* longer command lines pass before their end */
#define SMTP_DENIED_VERB "XTLSDENY" /* strlen("STARTTLS") */

static bool smtp_verb_is(const uint8_t *p, size_t len, const char *verb)
{
	size_t n = strlen(verb);

	return len >= n && !strncasecmp((const char *)p, verb, n) &&
	       (len == n || p[n] == ' ' || p[n] == '\r' || p[n] == '\t');
}

/* One more relayed command that gets a reply; remember it if its reply
 * moves the transaction. */
static void smtp_sent(struct proto_sess *ps, struct smtp_state *st, enum smtp_kind k)
{
	ps->cmds++;
	if (k == K_OTHER)
		return;
	if (st->pend_len == SMTP_PENDING) {
		st->kinds_lost = true;
		return;
	}
	st->pend[(st->pend_head + st->pend_len) % SMTP_PENDING].n = ps->cmds;
	st->pend[(st->pend_head + st->pend_len) % SMTP_PENDING].kind = (uint8_t)k;
	st->pend_len++;
}

/* What kind of command the line l[0, ll) is. */
static enum smtp_kind smtp_kind_of(const uint8_t *l, size_t ll)
{
	if (smtp_verb_is(l, ll, "MAIL"))
		return K_MAIL;
	if (smtp_verb_is(l, ll, "RSET") || smtp_verb_is(l, ll, "EHLO") ||
	    smtp_verb_is(l, ll, "HELO"))
		return K_RESET;
	if (smtp_verb_is(l, ll, "BDAT")) {
		size_t e = ll;

		while (e && (l[e - 1] == '\r' || l[e - 1] == ' ' || l[e - 1] == '\t'))
			e--;
		if (e > 9 && !strncasecmp((const char *)l + e - 4, "LAST", 4) &&
		    (l[e - 5] == ' ' || l[e - 5] == '\t'))
			return K_END;
	}
	return K_OTHER;
}

/*
 * The chunk size of the BDAT line l[0, ll) (LF excluded), parsed strictly
 * (RFC 3030 2: "BDAT" SP chunk-size [SP end-marker], chunk-size 1*DIGIT,
 * end-marker "LAST"). Returns 0, or -1 for anything else ("BDAT 10x",
 * "BDAT", a size of 20 digits): what the backend makes of such a line
 * cannot be known, so the tracker must not guess a chunk.
 */
static int smtp_bdat_size(const uint8_t *l, size_t ll, uint64_t *n)
{
	size_t k = 4, d = 0, e = ll;

	if (e && l[e - 1] == '\r')
		e--;
	while (k < e && (l[k] == ' ' || l[k] == '\t'))
		k++;
	*n = 0;
	for (; k < e && isdigit(l[k]); k++, d++) {
		if (d == 19)
			return -1; /* past 10^19: no real chunk */
		*n = *n * 10 + (uint64_t)(l[k] - '0');
	}
	if (!d)
		return -1;
	while (k < e && (l[k] == ' ' || l[k] == '\t'))
		k++;
	if (k + 4 <= e && !strncasecmp((const char *)l + k, "LAST", 4) &&
	    (l[k - 1] == ' ' || l[k - 1] == '\t'))
		k += 4;
	while (k < e && (l[k] == ' ' || l[k] == '\t'))
		k++;
	return k == e ? 0 : -1;
}

static size_t smtp_c2b_scan(struct proto_sess *ps, uint8_t *p, size_t len)
{
	struct smtp_state *st = smtp_st(ps);
	size_t i = 0;

	if (ps->tls_held || ps->inject_due)
		return 0; /* nothing passes the held STARTTLS, or the trace line's place */
	while (i < len) {
		switch (st->rmode) {
		case RM_CHUNK: {
			uint64_t n = len - i < st->chunk_left ? len - i : st->chunk_left;

			i += n;
			st->chunk_left -= n;
			if (!st->chunk_left)
				st->rmode = RM_COMMAND;
			break;
		}
		case RM_DATA_WAIT:
			/* What follows DATA is content only if DATA's own reply
			 * was 354. A client waits for that reply (RFC 2920
			 * 3.1); bytes sent before it are held until it came. */
			if (ps->replies < st->data_at)
				return i;
			st->rmode = strncmp(ps->last_reply, "354", 3) ? RM_COMMAND : RM_BODY;
			st->rstate = 1;
			if (st->rmode == RM_BODY && ps->trace) {
				/* The message starts here: its trace line first. */
				st->inj = INJ_DATA;
				ps->inject_due = true;
				return i;
			}
			break;
		case RM_BODY:
			while (i < len && st->rmode == RM_BODY) {
				uint8_t c;

				if (st->rstate == 0) {
					/* Inside a line, the next place that can
					 * matter is a "." just after an LF: look
					 * for dots, not line ends (base64 has no
					 * dots, and a line end comes every 78
					 * bytes). The byte before p + i was not
					 * an LF, or the state would be 1. */
					const uint8_t *dot = memchr(p + i, '.', len - i);

					if (!dot) {
						st->rstate = p[len - 1] == '\n';
						i = len;
						break;
					}
					i = (size_t)(dot - p) + 1;
					st->rstate = dot > p && dot[-1] == '\n' ? 2 : 0;
					continue;
				}
				c = p[i++];
				switch (st->rstate) {
				case 1: /* at a line start */
					st->rstate = c == '.' ? 2 : c == '\n';
					break;
				case 2: /* "." */
					st->rstate = c == '\r' ? 3 : 0;
					if (c == '\n') {
						st->rmode = RM_COMMAND;
						/* the end of data gets a reply */
						smtp_sent(ps, st, K_END);
					}
					break;
				default: /* ".\r" */
					st->rstate = 0;
					if (c == '\n') {
						st->rmode = RM_COMMAND;
						smtp_sent(ps, st, K_END);
					}
					break;
				}
			}
			break;
		case RM_LONGLINE: {
			const uint8_t *lf = memchr(p + i, '\n', len - i);

			if (!lf)
				return len;
			i = (size_t)(lf - p) + 1;
			st->rmode = RM_COMMAND;
			break;
		}
		default: { /* RM_COMMAND, at a line start */
			const uint8_t *lf = memchr(p + i, '\n', len - i);
			uint8_t *l = p + i;
			size_t ll = lf ? (size_t)(lf - l) : len - i;

			if (!lf) {
				if (ll < SMTP_SCAN_HOLD)
					return i; /* wait for the rest of the line */
				st->rmode = RM_LONGLINE; /* no verb of ours is that long */
				smtp_sent(ps, st, K_OTHER);
				break;
			}
			if (smtp_verb_is(l, ll, "STARTTLS") && !ps->in_tls) {
				ps->tls_held = true; /* rule 2.7: the session decides */
				return i;
			}
			if (smtp_verb_is(l, ll, "EHLO") || smtp_verb_is(l, ll, "HELO")) {
				smtp_note_helo(st, (const char *)l + 4, ll - 4);
				st->ehlo = smtp_verb_is(l, ll, "EHLO");
			}
			if (ps->trace && smtp_verb_is(l, ll, "MAIL"))
				st->bdat_first = true;
			if (ps->trace && st->bdat_first && smtp_verb_is(l, ll, "BDAT")) {
				uint64_t n;

				if (smtp_bdat_size(l, ll, &n) == 0) {
					/* A message's first chunk: the line is
					 * rewritten to count the trace line that
					 * goes in front of the chunk. */
					st->inj = INJ_BDAT;
					st->inj_chunk = n;
					st->inj_last = smtp_kind_of(l, ll) == K_END;
					ps->inject_due = true;
					return i;
				}
			}
			smtp_sent(ps, st, smtp_kind_of(l, ll));
			if (smtp_verb_is(l, ll, "STARTTLS")) {
				memcpy(l, SMTP_DENIED_VERB, 8);
				ps->denied++;
			} else if (smtp_verb_is(l, ll, "DATA")) {
				st->rmode = RM_DATA_WAIT;
				st->data_at = ps->cmds;
			} else if (smtp_verb_is(l, ll, "BDAT")) {
				uint64_t n;

				if (smtp_bdat_size(l, ll, &n) < 0)
					ps->untracked = true; /* no chunk skipped */
				else if (n)
					st->chunk_left = n, st->rmode = RM_CHUNK;
			}
			i += ll + 1;
			break;
		}
		}
	}
	return i;
}

/*
 * The trace header (listeners[].trace_header), RFC 5321 4.4's Received:
 * line of sluice's hop, in front of each message: at the body's start
 * after DATA's 354, or in the first BDAT chunk after a MAIL, whose line
 * is rewritten to count it (RFC 3030: the chunk size is the bytes that
 * follow). With the TLS facts in Postfix's words and RFC 3848's protocol
 * names (ESMTPS, ESMTPSA...). The message itself passes unchanged.
 */
static size_t smtp_trace_line(const struct proto_env *env, const struct smtp_state *st,
			      char *out, size_t n)
{
	const struct proto_trace *t = env->trace;
	char date[48];
	struct tm tm;
	time_t now;
	int w;

	if (!t)
		return 0;
	now = (time_t)t->now;
	if (!gmtime_r(&now, &tm) ||
	    !strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm))
		snprintf(date, sizeof(date), "Thu, 01 Jan 1970 00:00:00 +0000");
	w = snprintf(out, n, "Received: from %s ([%s])\r\n%s%s%s\tby %.255s (sluice) with %s%s%s;"
		     "\r\n\t%s\r\n", st->helo[0] ? st->helo : "unknown", t->client,
		     *t->tls ? "\t(" : "", t->tls, *t->tls ? ")\r\n" : "", env->hostname,
		     st->ehlo ? "ESMTP" : "SMTP", *t->tls ? "S" : "", st->authed ? "A" : "", date);
	return w > 0 && (size_t)w < n ? (size_t)w : 0;
}

static size_t smtp_c2b_inject(const struct proto_env *env, struct proto_sess *ps,
			      const uint8_t *p, size_t len, uint8_t *out, size_t room,
			      size_t *skip)
{
	struct smtp_state *st = smtp_st(ps);
	char hdr[1024], line[64];
	size_t h = smtp_trace_line(env, st, hdr, sizeof(hdr)), k = 0;
	const uint8_t *lf;

	*skip = 0;
	if (st->inj == INJ_BDAT) {
		if (!(lf = memchr(p, '\n', len))) { /* never: the tracker saw the line */
			ps->inject_due = false;
			st->inj = INJ_NONE;
			return 0;
		}
		k = (size_t)snprintf(line, sizeof(line), "BDAT %llu%s\r\n",
				     (unsigned long long)(st->inj_chunk + h),
				     st->inj_last ? " LAST" : "");
		if (k + h > room)
			return 0;
		memcpy(out, line, k);
		*skip = (size_t)(lf - p) + 1;
		smtp_sent(ps, st, st->inj_last ? K_END : K_OTHER);
		st->bdat_first = false;
		if (st->inj_chunk) {
			st->chunk_left = st->inj_chunk;
			st->rmode = RM_CHUNK;
		}
	} else if (h > room) {
		return 0;
	}
	memcpy(out + k, hdr, h);
	ps->inject_due = false;
	st->inj = INJ_NONE;
	return k + h;
}

/* A final reply came to relayed command number ps->replies: follow the
 * mail transaction (RFC 5321 4.1.4, 4.1.1.4; RFC 3030 for BDAT LAST). */
static void smtp_replied(struct proto_sess *ps, struct smtp_state *st, char cls)
{
	enum smtp_kind k;

	while (st->pend_len && st->pend[st->pend_head].n < ps->replies) {
		st->pend_head = (uint8_t)((st->pend_head + 1) % SMTP_PENDING);
		st->pend_len--; /* (answered out of count: forgotten) */
	}
	if (!st->pend_len || st->pend[st->pend_head].n != ps->replies)
		return; /* a reply that moves nothing, or an unsolicited one */
	k = (enum smtp_kind)st->pend[st->pend_head].kind;
	st->pend_head = (uint8_t)((st->pend_head + 1) % SMTP_PENDING);
	st->pend_len--;
	switch (k) {
	case K_MAIL:
		if (cls == '2')
			st->in_txn = true;
		break;
	case K_RESET:
		if (cls == '2')
			st->in_txn = false;
		break;
	case K_END:
		st->in_txn = false;
		break;
	default:
		break;
	}
}

/* Count the backend's final reply lines ("NNN " or "NNN"), remember how
 * the last line began, and follow the mail transaction. */
static void smtp_b2c_scan(struct proto_sess *ps, const uint8_t *p, size_t len)
{
	struct smtp_state *st = smtp_st(ps);
	const uint8_t *end = p + len, *lf;

	while (p < end) {
		lf = memchr(p, '\n', (size_t)(end - p));
		for (; p < (lf ? lf : end) && ps->b_cur_len < sizeof(ps->b_cur); p++)
			ps->b_cur[ps->b_cur_len++] = (char)*p;
		if (!lf)
			return;
		memset(ps->last_reply, 0, sizeof(ps->last_reply));
		memcpy(ps->last_reply, ps->b_cur, ps->b_cur_len);
		if (ps->b_cur_len < 4 || ps->b_cur[3] == ' ' || ps->b_cur[3] == '\r') {
			if (ps->b_cur_len >= 3 && !memcmp(ps->b_cur, "235", 3))
				st->authed = true; /* RFC 4954: authenticated */
			ps->replies++;
			smtp_replied(ps, st, ps->b_cur_len ? ps->b_cur[0] : 0);
		}
		ps->b_cur_len = 0;
		p = lf + 1;
	}
}

/* Rule 2.7: STARTTLS outside a mail transaction only (RFC 3207 4.2). */
static bool smtp_starttls_allowed(const struct proto_sess *ps)
{
	const struct smtp_state *st = (const struct smtp_state *)ps->priv;

	return !st->in_txn && !st->kinds_lost;
}

/* Drain: outside a mail transaction only (RFC 5321 3.8: the 421 comes
 * between transactions, never inside MAIL .. end of data); in the relay,
 * at a command line's start, and the backend gets QUIT. */
static bool smtp_goodbye(const struct proto_sess *ps, bool relay, const char **be_bye)
{
	const struct smtp_state *st = (const struct smtp_state *)ps->priv;

	if (!relay)
		return st->phase == SP_DIALOGUE;
	if (st->in_txn || st->kinds_lost || st->rmode != RM_COMMAND)
		return false;
	*be_bye = "QUIT\r\n";
	return true;
}

/* Relay: a multi-line reply not finished ("250-" last) must not get a
 * line of sluice's inside it (RFC 5321 4.2.1). Between replies, even in a
 * mail transaction or its data, a 421 is what Postfix says too. */
static bool smtp_mid_response(const struct proto_sess *ps)
{
	return ps->last_reply[3] == '-';
}

static void smtp_fini(struct proto_sess *ps)
{
	struct smtp_state *st = smtp_st(ps);

	free(st->replay);
	free(st->acc);
	st->replay = st->acc = NULL;
}

/* What sluice says for the shared rules, in Postfix's words. */
static const char *const smtp_words[PW__COUNT] = {
	[PW_STARTTLS_OK]      = "220 2.0.0 Ready to start TLS",
	[PW_STARTTLS_IN_TLS]  = "554 5.5.1 Error: TLS already active",
	[PW_STARTTLS_OFF]     = "502 5.5.1 Error: command not implemented",
	[PW_STARTTLS_NO_CERT] = "454 4.7.0 TLS not available due to local problem",
	[PW_STARTTLS_SYNTAX]  = "501 5.5.4 Syntax: STARTTLS",
	[PW_STARTTLS_NOT_NOW] = "503 5.5.1 Error: MAIL transaction in progress",
	[PW_STARTTLS_UNTRACKED] = "421 4.7.0 %s Error: STARTTLS after a command that could not be followed",
	[PW_TLS_FIRST]        = "530 5.7.0 Must issue a STARTTLS command first",
	[PW_TOO_MANY_ERRORS]  = "421 4.7.0 %s Error: too many errors",
	[PW_SHUTTING_DOWN]    = "421 4.3.2 %s Service shutting down, closing transmission channel",
	[PW_TOO_MANY_SESSIONS] = "421 4.3.2 %s Error: too many sessions, try again later",
	[PW_TOO_MANY_FROM_ADDR] = "421 4.7.0 %s Error: too many connections from your address",
	[PW_RATE_LIMITED]      = "421 4.7.0 %s Error: too many connections from your address, try again later",
	[PW_TOO_MANY_JUNK]     = "421 4.7.0 %s Error: too many commands without progress",
	[PW_DEADLINE]          = "421 4.4.2 %s Error: timeout exceeded",
};

const struct proto_ops smtp_ops = {
	.name = "smtp",
	.line_max = SMTP_LINE_MAX,
	.max_errors = SMTP_MAX_ERRORS,
	.words = smtp_words,
	.parse = smtp_parse,
	.cmds = smtp_cmds,
	.n_cmds = sizeof(smtp_cmds) / sizeof(smtp_cmds[0]),
	.starttls_allowed = smtp_starttls_allowed,
	.greeting = smtp_greeting,
	.client_line = smtp_client_line,
	.too_long = smtp_too_long,
	.tls_started = smtp_tls_started,
	.backend_line = smtp_backend_line,
	.timeout = smtp_timeout,
	.unavailable = smtp_unavailable,
	.lost = smtp_lost,
	.probe_request = "EHLO %s\r\n",
	.probe_quit = "QUIT\r\n",
	.probe_line = smtp_probe_line,
	.starttls_again = smtp_starttls_again,
	.c2b_scan = smtp_c2b_scan,
	.c2b_inject = smtp_c2b_inject,
	.b2c_scan = smtp_b2c_scan,
	.goodbye = smtp_goodbye,
	.mid_response = smtp_mid_response,
	.fini = smtp_fini,
};
