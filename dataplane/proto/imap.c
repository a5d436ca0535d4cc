/*
 * IMAP engine (RFC 9051 / RFC 3501, STARTTLS per RFC 2595, LITERAL+ per
 * RFC 7888). Before login, sluice answers the not-authenticated state
 * itself: greeting, CAPABILITY, NOOP, LOGOUT, STARTTLS, ID. LOGIN and
 * AUTHENTICATE are refused with NO [PRIVACYREQUIRED] where TLS is required
 * and not yet up; otherwise they hand the session to the backend, whose
 * greeting is swallowed. Tags are kept.
 *
 * Literals: a command line ending in {n} or {n+} is followed by n bytes of
 * data. The line reader is told to skip them (lr_literal), so a literal that
 * holds "a STARTTLS" is never read as a command. A synchronizing literal
 * {n} waits for our "+" continuation: sluice gives it only to commands it
 * will complete itself (ID); the others get their tagged answer at once and
 * the client sends no literal. A non-synchronizing {n+} literal comes
 * anyway: it is skipped (at most IMAP_LITERAL_MAX bytes; larger ones end
 * the session with BYE, as RFC 7888 allows).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"

#define IMAP_LINE_MAX 8192     /* RFC 7162 3.2.1 recommends at least 8000 */
#define IMAP_LITERAL_MAX 65536 /* literals sluice reads itself, before login */
#define IMAP_MAX_ERRORS 10
#define IMAP_TAG_MAX 64

extern const struct proto_ops imap_ops;

enum imap_phase {
	IP_DIALOGUE,  /* sluice answers */
	IP_CONT,      /* the rest of a command whose literal was skipped */
	IP_HELD,      /* client input held for the backend */
};

/* What ends a command continued over literals. Before the backend is
 * involved, st->pending holds it (and st->pend_tag the command's tag). */
enum imap_pending {
	PEND_IGNORE,    /* already answered */
	PEND_ID,
};

#define IMAP_TAIL 24

/* The engine's own state, in ps->priv. */
struct imap_state {
	uint8_t phase;               /* enum imap_phase */
	uint8_t pending;             /* enum imap_pending */
	char pend_tag[IMAP_TAG_MAX + 1]; /* its tag; "" none */
	bool lit_has, lit_sync;      /* the command line being run ends in a */
	uint64_t lit;                /* literal announcement: {lit} or {lit+} */
	/* relay trackers */
	uint8_t rmode;               /* client -> backend: enum imap_rmode */
	int8_t verdict;              /* sync literal: 0 waiting, 1 invited ("+"),
					-1 answered */
	bool auth_pending;           /* AUTHENTICATE sent, its tagged reply not yet
					come: the lines between are SASL */
	bool authed;                 /* a tagged OK to LOGIN/AUTHENTICATE: the
					authenticated state (a PREAUTH greeting is
					refused: sluice held a LOGIN for it) */
	bool b_cont;                 /* the backend line in progress continues a
					response after its literal */
	bool idle_sent;              /* IDLE relayed, its tagged reply not come
					(RFC 2177): its "+" sets ps->idle_wait */
	uint8_t tag_len;
	uint8_t auth_tag_len;
	uint8_t head_len, tail_len;
	char tag[IMAP_TAG_MAX + 2];  /* "tag " of the command whose literal waits */
	char auth_tag[IMAP_TAG_MAX + 2]; /* "tag " of the last LOGIN/AUTHENTICATE */
	char head[IMAP_TAG_MAX + 8]; /* first bytes of the backend line in progress */
	char tail[IMAP_TAIL];        /* its last bytes */
	uint64_t chunk_left;         /* client literal bytes still to pass */
	uint64_t b_literal;          /* backend literal bytes still to pass */
};

_Static_assert(sizeof(struct imap_state) <= PROTO_PRIV_MAX, "imap_state fits ps->priv");
_Static_assert(IMAP_TAG_MAX <= PROTO_TAG_MAX, "a tag fits struct proto_line");

/* The engine's own state in the session's room for it. */
static struct imap_state *imap_st(struct proto_sess *ps)
{
	return (struct imap_state *)ps->priv;
}

/* Is c allowed in a tag? (RFC 9051: astring-char except "+") */
static bool imap_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\+", c);
}

/* Does the line end in a literal announcement {n} or {n+}? Leading zeros
 * are allowed (RFC 9051 number); a huge n saturates (and is refused). */
static bool imap_literal_at_end(const char *l, size_t len, uint64_t *n, bool *sync)
{
	size_t i, d = 0;
	uint64_t v = 0;

	if (len < 3 || l[len - 1] != '}')
		return false;
	i = len - 2;
	*sync = l[i] != '+';
	if (!*sync)
		i--;
	while (i > 0 && isdigit((unsigned char)l[i])) {
		i--;
		d++;
	}
	if (!d || l[i] != '{')
		return false;
	for (size_t k = i + 1; k < i + 1 + d; k++)
		v = v > UINT64_MAX / 20 ? UINT64_MAX / 2 : v * 10 + (uint64_t)(l[k] - '0');
	*n = v;
	return true;
}

/* The capability list sluice shows: the backend's, without STARTTLS and
 * LOGINDISABLED; without AUTH= while STARTTLS is offered and not done (no
 * mechanism is invited in plaintext; LOGIN stays possible where policy
 * allows it); plus STARTTLS while it can be used, plus LOGINDISABLED where
 * TLS is required. */
static void imap_caps(const struct proto_env *env, const struct proto_sess *ps,
		      struct proto_out *o)
{
	bool offer_tls = !ps->in_tls && env->tls_available && env->tls_mode != CFG_TLS_OFF;
	bool must_tls = !ps->in_tls && env->tls_mode == CFG_TLS_REQUIRED;
	/* Room for the words around the list and for what sluice adds: a
	 * backend with absurd capabilities loses those that do not fit. */
	size_t budget = PO_REPLY_MAX - strlen(env->hostname) - IMAP_TAG_MAX - 96;
	const char *sep = "";
	unsigned i;

	if (!env->caps || !env->caps->n) {
		po_reply(o, "IMAP4rev1");
		sep = " ";
	}
	for (i = 0; env->caps && i < env->caps->n; i++) {
		const char *c = env->caps->item[i];
		size_t l = strlen(c) + 1;

		if (!strcasecmp(c, "STARTTLS") || !strcasecmp(c, "LOGINDISABLED") ||
		    ((must_tls || offer_tls) && !strncasecmp(c, "AUTH=", 5)) || l > budget)
			continue;
		budget -= l;
		po_reply(o, "%s%s", sep, c);
		sep = " ";
	}
	if (offer_tls) {
		po_reply(o, "%sSTARTTLS", sep);
		o->flags |= PO_OFFERED_TLS;
	}
	if (must_tls)
		po_reply(o, " LOGINDISABLED");
}

static void imap_greeting(const struct proto_env *env, struct proto_sess *ps,
			  struct proto_out *o)
{
	po_reply(o, "* OK [CAPABILITY ");
	imap_caps(env, ps, o);
	o->flags &= ~PO_OFFERED_TLS; /* a greeting, not an answer to CAPABILITY */
	po_reply(o, "] %s IMAP ready.\r\n", env->hostname);
}

static void imap_error(const struct proto_env *env, struct proto_sess *ps,
		       struct proto_out *o, int ctr, const char *reason)
{
	proto_error(&imap_ops, env, ps, o, ctr, reason);
}

static void imap_bye(struct proto_out *o, const char *text, const char *reason)
{
	po_reply(o, "* BYE %s\r\n", text);
	o->flags |= PO_CLOSE | PO_ERROR;
	o->reason = reason;
}

/* Skip a literal that follows; false (and BYE) if it is too large. */
static bool imap_skip(struct proto_sess *ps, struct proto_out *o, uint64_t n)
{
	if (n > IMAP_LITERAL_MAX) {
		imap_bye(o, "Literal too large.", "literal too large");
		o->counter = CTR_line_too_long;
		return false;
	}
	o->literal = n;
	imap_st(ps)->phase = IP_CONT;
	return true;
}

/* The grammar: a tag, a blank, a command of letters (RFC 9051 9). Returns
 * the offset of the arguments, or -1 with how far it got in pl (tag only,
 * or nothing). */
static int imap_parse(const char *l, size_t len, struct proto_line *pl)
{
	size_t t, i, c;

	memset(pl, 0, sizeof(*pl));
	for (t = 0; t < len && t < IMAP_TAG_MAX && imap_tag_char((unsigned char)l[t]); t++)
		pl->tag[t] = l[t];
	if (t == 0 || (t < len && l[t] != ' ')) {
		pl->tag[0] = 0;
		return -1;
	}
	i = t;
	while (i < len && l[i] == ' ')
		i++;
	for (c = 0; i < len && c < sizeof(pl->verb) - 1 && isalpha((unsigned char)l[i]); i++)
		pl->verb[c++] = l[i];
	if (c == 0 || (i < len && l[i] != ' '))
		return -1;
	while (i < len && l[i] == ' ')
		i++;
	pl->arg = l + i;
	pl->arg_len = len - i;
	while (pl->arg_len && pl->arg[pl->arg_len - 1] == ' ')
		pl->arg_len--;
	return (int)i;
}

/* LOGIN, AUTHENTICATE where TLS is up or not required: the backend
 * authenticates; literals are its business. */
static void imap_login(const struct proto_env *env, struct proto_sess *ps,
		       const struct proto_line *pl, struct proto_out *o)
{
	struct imap_state *st = imap_st(ps);

	o->flags |= PO_BACKEND;
	st->phase = IP_HELD;
	st->pending = 0;
}

static void imap_capability(const struct proto_env *env, struct proto_sess *ps,
			    const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "* CAPABILITY ");
	imap_caps(env, ps, o);
	po_reply(o, "\r\n%s OK Capability completed.\r\n", pl->tag);
}

static void imap_noop(const struct proto_env *env, struct proto_sess *ps,
		      const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "%s OK NOOP completed.\r\n", pl->tag);
}

static void imap_logout(const struct proto_env *env, struct proto_sess *ps,
			const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "* BYE Logging out\r\n%s OK Logout completed.\r\n", pl->tag);
	o->flags |= PO_CLOSE;
	o->reason = "client logged out";
}

/* ID (RFC 2971): sluice tells nothing; with a literal (st->lit_*), answered
 * once the command is complete. */
static void imap_id(const struct proto_env *env, struct proto_sess *ps,
		    const struct proto_line *pl, struct proto_out *o)
{
	struct imap_state *st = imap_st(ps);

	if (!st->lit_has) {
		po_reply(o, "* ID NIL\r\n%s OK ID completed.\r\n", pl->tag);
		return;
	}
	snprintf(st->pend_tag, sizeof(st->pend_tag), "%s", pl->tag);
	st->pending = PEND_ID;
	if (st->lit_sync && st->lit > IMAP_LITERAL_MAX) {
		po_reply(o, "%s BAD Literal too large.\r\n", pl->tag);
		imap_error(env, ps, o, CTR_line_too_long, "literal too large");
		return;
	}
	if (st->lit_sync)
		po_reply(o, "+ Ready for literal data\r\n");
	imap_skip(ps, o, st->lit);
}

/* The not-authenticated state's commands (RFC 9051 6.1, 6.2); the rest is
 * unknown before login. */
static const struct proto_cmd imap_cmds[] = {
	{ "LOGIN",        PC_TLS_FIRST, true,  imap_login, PJ_PROGRESS },
	{ "AUTHENTICATE", PC_TLS_FIRST, true,  imap_login, PJ_PROGRESS },
	{ "STARTTLS",     PC_STARTTLS,  false, NULL, PJ_PROGRESS },
	{ "CAPABILITY",   PC_LOCAL,     false, imap_capability, PJ_REPEAT },
	{ "NOOP",         PC_LOCAL,     false, imap_noop,       PJ_JUNK },
	{ "LOGOUT",       PC_LOCAL,     false, imap_logout, PJ_PROGRESS },
	{ "ID",           PC_LOCAL,     true,  imap_id,         PJ_REPEAT },
};

/* One client line: the rest of a command continued over a literal, or a
 * command: the grammar, the literal rules, then the command table. */
static void imap_client_line(const struct proto_env *env, struct proto_sess *ps,
			     const char *line, size_t len, bool has_nul, struct proto_out *o)
{
	struct imap_state *st = imap_st(ps);
	const struct proto_cmd *cmd;
	struct proto_line pl;
	const char *tag = pl.tag;
	uint64_t lit = 0;
	bool sync = false, has_lit = imap_literal_at_end(line, len, &lit, &sync);

	if (st->phase == IP_CONT) {
		/* The remainder of a command after a skipped literal. A
		 * synchronizing literal comes only when invited, and only the
		 * command sluice completes itself (ID) is invited. */
		if (has_lit && (!sync || st->pending == PEND_ID)) {
			if (sync && lit <= IMAP_LITERAL_MAX)
				po_reply(o, "+ Ready for literal data\r\n");
			imap_skip(ps, o, lit);
			return;
		}
		st->phase = IP_DIALOGUE;
		if (st->pending == PEND_ID && st->pend_tag[0])
			po_reply(o, "* ID NIL\r\n%s OK ID completed.\r\n", st->pend_tag);
		st->pend_tag[0] = 0;
		return;
	}

	if (imap_parse(line, len, &pl) < 0 || has_nul) {
		if (!pl.tag[0] || has_nul) {
			po_reply(o, "* BAD Error in IMAP command received by server.\r\n");
			imap_error(env, ps, o, CTR_bad_syntax,
				   has_nul ? "NUL in command" : len ? "bad tag" : "empty line");
		} else {
			po_reply(o, "%s BAD Error in IMAP command received by server.\r\n", tag);
			imap_error(env, ps, o, CTR_bad_syntax, "no command");
		}
		goto literal;
	}
	cmd = proto_find(&imap_ops, &pl);
	if (cmd && cmd->cls == PC_TLS_FIRST) {
		proto_run(&imap_ops, env, ps, &pl, cmd, o);
		if (!(o->flags & PO_BACKEND))
			goto literal; /* refused before TLS */
		return;
	}
	if (has_lit && strcasecmp(pl.verb, "ID")) {
		po_reply(o, "%s BAD Error in IMAP command received by server.\r\n", tag);
		imap_error(env, ps, o, CTR_bad_syntax, "literal in a command without one");
		goto literal;
	}
	if (!cmd) {
		po_reply(o, "%s BAD Command not permitted before login.\r\n", tag);
		imap_error(env, ps, o, CTR_unknown_command, "command before login");
		return;
	}
	st->lit_has = has_lit;
	st->lit_sync = sync;
	st->lit = lit;
	proto_run(&imap_ops, env, ps, &pl, cmd, o);
	return;
literal:
	/* A rejected command's non-synchronizing literal comes anyway. */
	if (has_lit && !sync && !(o->flags & PO_CLOSE) && imap_skip(ps, o, lit))
		st->pending = PEND_IGNORE;
}

/* A line over the limit may have ended in a literal announcement that went
 * with it: what follows cannot be told from commands any more. Close. */
static void imap_too_long(const struct proto_env *env, struct proto_sess *ps,
			  struct proto_out *o)
{
	imap_bye(o, "Command line too long.", "line too long");
	o->counter = CTR_line_too_long;
}

static void imap_tls_started(struct proto_sess *ps)
{
	proto_sess_tls(ps);
}

static void imap_unavailable(const struct proto_env *env, struct proto_sess *ps,
			     struct proto_out *o)
{
	po_reply(o, "* BYE [UNAVAILABLE] %s backend not available, try again later.\r\n",
		 env->hostname);
	o->flags |= PO_CLOSE;
}

/* The backend's greeting is swallowed; then the held command goes. */
static void imap_backend_line(const struct proto_env *env, struct proto_sess *ps,
			      const char *l, size_t len, struct proto_out *o)
{
	if (len >= 4 && !strncasecmp(l, "* OK", 4) && (len == 4 || l[4] == ' ')) {
		o->flags |= PO_FLUSH_HELD | PO_RELAY;
		return;
	}
	proto_backend_refused(&imap_ops, env, ps, o, "backend greeting refused");
}

static void imap_timeout(const struct proto_env *env, struct proto_sess *ps,
			 struct proto_out *o)
{
	po_reply(o, "* BYE Disconnected for inactivity.\r\n");
	o->flags |= PO_CLOSE;
}

/* A lost backend gets no words from sluice: the client may be inside a
 * literal, where any line would read as message data. It sees the close. */
static void imap_lost(const struct proto_env *env, struct proto_sess *ps,
		      const char *last, size_t len, struct proto_out *o)
{
}

/* "tag STARTTLS" again, any tag (Outlook mobile's second STARTTLS). */
static bool imap_starttls_again(const struct proto_env *env, struct proto_sess *ps,
				const char *l, size_t len, struct proto_out *o)
{
	size_t t = 0;

	while (t < len && t < IMAP_TAG_MAX && imap_tag_char((unsigned char)l[t]))
		t++;
	if (!t || len != t + 9 || l[t] != ' ' || strncasecmp(l + t + 1, "STARTTLS", 8))
		return false;
	po_reply(o, "%.*s OK Begin TLS negotiation now.\r\n", (int)t, l);
	return true;
}

/* Probe: greeting, then "a CAPABILITY": its tokens are the capabilities. */
static int imap_probe_line(int *state, const char *l, size_t len, struct proto_caps *caps)
{
	if (*state == 0) {
		if (len >= 4 && !strncasecmp(l, "* OK", 4)) {
			*state = 1;
			return 1;
		}
		return -1;
	}
	if (len > 13 && !strncasecmp(l, "* CAPABILITY ", 13)) {
		size_t i = 13;

		while (i < len && caps->n < CAPS_MAX) {
			size_t s = i;

			while (i < len && l[i] != ' ')
				i++;
			if (i > s && (caps->item[caps->n] = strndup(l + s, i - s)))
				caps->n++;
			while (i < len && l[i] == ' ')
				i++;
		}
		return 0;
	}
	if (len >= 4 && !strncasecmp(l, "a OK", 4))
		return 2;
	if (len >= 2 && !strncmp(l, "a ", 2))
		return -1;
	return 0;
}

/*
 * The relay trackers. Client -> backend: a command "tag STARTTLS ..." inside
 * the relayed session is rewritten to an unknown command of the same length,
 * so a backend that offers STARTTLS answers BAD instead of starting a second
 * handshake. Literals are data and are skipped. A non-synchronizing literal
 * {n+} follows its line at once; a synchronizing one {n} follows only if the
 * backend invites it with "+", and not if it answers the command instead:
 * the bytes after such a line wait until the backend has said which
 * (backend -> client tracker, which skips the backend's own literals).
 * In the plaintext relay a STARTTLS is held instead (rule 2.7): the scan
 * stops before it, and the session decides once every earlier command has
 * its tagged reply, by whether a LOGIN or AUTHENTICATE got its tagged OK.
 */
enum imap_rmode { RM_LINE, RM_CONT, RM_LITERAL, RM_LONG, RM_SYNC_WAIT };

#define IMAP_SCAN_HOLD 1024

/* The tracker's state is the engine's (struct imap_state). */
#define imap_track imap_state

/* Does l[0, e) start with "tag verb" for this verb (alone or with
 * arguments)? k is the tag's length. */
static bool imap_verb_at(const uint8_t *l, size_t e, size_t k, const char *verb)
{
	size_t n = strlen(verb);

	return k && k + 1 + n <= e && l[k] == ' ' &&
	       !strncasecmp((const char *)l + k + 1, verb, n) &&
	       (k + 1 + n == e || l[k + 1 + n] == ' ' || l[k + 1 + n] == '\t');
}

/* Keep the last IMAP_TAIL bytes seen of a line. */
static void imap_tail_add(char *tail, uint8_t *tlen, const uint8_t *p, size_t n)
{
	if (n >= IMAP_TAIL) {
		memcpy(tail, p + n - IMAP_TAIL, IMAP_TAIL);
		*tlen = IMAP_TAIL;
		return;
	}
	if (*tlen + n > IMAP_TAIL) {
		size_t drop = *tlen + n - IMAP_TAIL;

		memmove(tail, tail + drop, *tlen - drop);
		*tlen = (uint8_t)(*tlen - drop);
	}
	memcpy(tail + *tlen, p, n);
	*tlen = (uint8_t)(*tlen + n);
}

/* A command line ends: what follows it? */
static void imap_c2b_after_line(struct proto_sess *ps, struct imap_track *t,
				const uint8_t *l, size_t e)
{
	uint64_t n;
	bool sync;

	if (!imap_literal_at_end((const char *)l, e, &n, &sync)) {
		t->rmode = RM_LINE;
	} else if (t->rmode == RM_LINE && !t->auth_pending && !t->tag_len) {
		/* A literal announced by a line with no tag of ours (none, or
		 * one over IMAP_TAG_MAX): the backend refuses the line, and
		 * whether it then reads the literal as data cannot be known.
		 * Skipping n bytes on a guess would let a command through
		 * unseen: the tracker stops trusting the stream instead. */
		ps->untracked = true;
		t->rmode = RM_LINE;
	} else if (n == 0) {
		t->rmode = RM_CONT;
	} else if (!sync || !t->tag_len) {
		t->chunk_left = n;
		t->rmode = RM_LITERAL;
	} else {
		t->chunk_left = n;
		t->verdict = 0;
		t->rmode = RM_SYNC_WAIT;
	}
}

static size_t imap_c2b_scan(struct proto_sess *ps, uint8_t *p, size_t len)
{
	struct imap_track *t = imap_st(ps);
	size_t i = 0;

	if (ps->tls_held)
		return 0; /* nothing passes the held STARTTLS */
	while (i < len) {
		if (t->rmode == RM_SYNC_WAIT) {
			if (!t->verdict)
				return i; /* the backend has not said yet */
			t->rmode = t->verdict > 0 ? RM_LITERAL : RM_LINE;
			t->tag_len = 0;
			continue;
		}
		if (t->rmode == RM_LITERAL) {
			uint64_t n = len - i < t->chunk_left ? len - i : t->chunk_left;

			i += n;
			t->chunk_left -= n;
			if (!t->chunk_left)
				t->rmode = RM_CONT;
			continue;
		}
		const uint8_t *lf = memchr(p + i, '\n', len - i);
		uint8_t *l = p + i;
		size_t ll = lf ? (size_t)(lf - l) : len - i, e;

		if (t->rmode == RM_LONG) {
			if (!lf)
				return len;
			/* Its end is here (an announcement split exactly across
			 * two reads of a line this long is not seen). */
			e = ll && l[ll - 1] == '\r' ? ll - 1 : ll;
			imap_c2b_after_line(ps, t, l, e);
			i += ll + 1;
			continue;
		}
		if (!lf && ll < IMAP_SCAN_HOLD)
			return i; /* wait for the whole line */
		e = lf && ll && l[ll - 1] == '\r' ? ll - 1 : ll;
		if (t->rmode == RM_LINE) {
			size_t k = 0;

			while (k < e && imap_tag_char(l[k]))
				k++;
			/* (no SASL response has a blank: a command even there) */
			if (imap_verb_at(l, e, k, "STARTTLS") && !ps->in_tls && lf) {
				ps->tls_held = true; /* rule 2.7: the session decides */
				return i;
			}
		}
		if (t->rmode == RM_LINE && t->auth_pending) {
			/* a SASL response of AUTHENTICATE, not a command */
		} else if (t->rmode == RM_LINE) {
			size_t k = 0;

			while (k < e && imap_tag_char(l[k]))
				k++;
			/* remember the tag: its literal may have to wait */
			t->tag_len = 0;
			if (k > IMAP_TAG_MAX && k < e && l[k] == ' ')
				ps->untracked = true; /* a tag too long to follow:
							 its LOGIN, its literal */
			if (k && k <= IMAP_TAG_MAX) {
				memcpy(t->tag, l, k);
				t->tag[k] = ' ';
				t->tag_len = (uint8_t)(k + 1);
			}
			/* "tag command": it gets a tagged reply (not IDLE's DONE) */
			if (k && k < e && l[k] == ' ' && k + 1 < e && isalpha(l[k + 1]))
				ps->cmds++;
			if (k == 4 && e == 4 && !strncasecmp((const char *)l, "DONE", 4)) {
				/* IDLE ends (RFC 2177): its reply is due, and a
				 * "+" still on its way no longer means idling */
				ps->idle_wait = t->idle_sent = false;
			} else if (imap_verb_at(l, e, k, "IDLE")) {
				t->idle_sent = true;
			}
			if (imap_verb_at(l, e, k, "STARTTLS")) {
				memcpy(l + k + 1, "XTLSDENY", 8);
				ps->denied++;
			} else if (k <= IMAP_TAG_MAX && (imap_verb_at(l, e, k, "LOGIN") ||
						  imap_verb_at(l, e, k, "AUTHENTICATE"))) {
				memcpy(t->auth_tag, l, k + 1);
				t->auth_tag_len = (uint8_t)(k + 1);
				t->auth_pending = imap_verb_at(l, e, k, "AUTHENTICATE");
			}
		}
		if (!lf) {
			t->rmode = RM_LONG; /* no STARTTLS line is that long */
			return len;
		}
		imap_c2b_after_line(ps, t, l, e);
		i += ll + 1;
	}
	return i;
}

/* A backend line ended (its head and tail are kept): a tagged reply is
 * counted, and one to LOGIN/AUTHENTICATE says whether it logged in. */
static void imap_b2c_line(struct proto_sess *ps, struct imap_track *t)
{
	uint64_t n;
	bool sync;
	size_t e = t->tail_len, k = 0;

	if (e && t->tail[e - 1] == '\r')
		e--;
	while (k < t->head_len && imap_tag_char((unsigned char)t->head[k]))
		k++;
	if (!t->b_cont && k && k < t->head_len && t->head[k] == ' ') {
		ps->replies++;
		if (ps->replies >= ps->cmds)
			t->idle_sent = false; /* IDLE's own (an earlier one's: its
						 "+" is still to come) */
		ps->idle_wait = false;
		if (t->auth_tag_len && k + 1 == t->auth_tag_len &&
		    !memcmp(t->head, t->auth_tag, k + 1)) {
			t->auth_pending = false;
			t->auth_tag_len = 0;
			if (k + 3 <= t->head_len && !strncasecmp(t->head + k + 1, "OK", 2))
				t->authed = true;
		}
	}
	if (t->idle_sent && !t->b_cont && t->head_len && t->head[0] == '+' &&
	    ps->replies + 1 == ps->cmds)
		ps->idle_wait = true; /* idling: only DONE ends it */
	if (t->tag_len && !t->verdict) {
		if (t->head_len && t->head[0] == '+')
			t->verdict = 1;
		else if (t->head_len >= t->tag_len && !memcmp(t->head, t->tag, t->tag_len))
			t->verdict = -1;
	}
	t->b_cont = false;
	if (imap_literal_at_end(t->tail, e, &n, &sync) && n) {
		t->b_literal = n;
		t->b_cont = true; /* what follows the literal ends this response */
	}
	t->head_len = t->tail_len = 0;
}

static void imap_b2c_scan(struct proto_sess *ps, const uint8_t *p, size_t len)
{
	struct imap_track *t = imap_st(ps);
	size_t i = 0;

	while (i < len) {
		if (t->b_literal) {
			uint64_t n = len - i < t->b_literal ? len - i : t->b_literal;

			i += n;
			t->b_literal -= n;
			continue;
		}
		const uint8_t *lf = memchr(p + i, '\n', len - i);
		size_t n = lf ? (size_t)(lf - (p + i)) : len - i;
		size_t h = sizeof(t->head) - t->head_len;

		memcpy(t->head + t->head_len, p + i, n < h ? n : h);
		t->head_len = (uint8_t)(t->head_len + (n < h ? n : h));
		imap_tail_add(t->tail, &t->tail_len, p + i, n);
		if (!lf)
			return;
		imap_b2c_line(ps, t);
		i += n + 1;
	}
}

/* Rule 2.7: STARTTLS in the not-authenticated state only (RFC 9051
 * 6.2.1). */
static bool imap_starttls_allowed(const struct proto_sess *ps)
{
	const struct imap_state *st = (const struct imap_state *)ps->priv;

	return !st->authed && !st->auth_pending;
}

/* Drain: an untagged BYE (RFC 9051 7.1.5) where no command is in flight
 * (but IDLE, which waits on the client) and no response half-relayed: in
 * the relay, between command lines (not in a literal or an AUTHENTICATE
 * exchange), the backend's lines all ended; the backend gets LOGOUT (it
 * expunges nothing). */
static bool imap_goodbye(const struct proto_sess *ps, bool relay, const char **be_bye)
{
	const struct imap_state *st = (const struct imap_state *)ps->priv;

	if (!relay)
		return st->phase == IP_DIALOGUE;
	if (st->rmode != RM_LINE || st->auth_pending || st->b_literal || st->b_cont ||
	    st->head_len)
		return false;
	/* In IDLE the BYE may come too (RFC 2177): the backend is told DONE
	 * first, then LOGOUT, as a client would. */
	*be_bye = ps->idle_wait ? "DONE\r\nb LOGOUT\r\n" : "b LOGOUT\r\n";
	return true;
}

/* Relay: inside a backend response: a line begun, a literal (a FETCH
 * body) or what follows one. An untagged BYE there would be message data. */
static bool imap_mid_response(const struct proto_sess *ps)
{
	const struct imap_state *st = (const struct imap_state *)ps->priv;

	return st->b_literal || st->b_cont || st->head_len;
}

/* What sluice says for the shared rules, in Dovecot's words. */
static const char *const imap_words[PW__COUNT] = {
	[PW_STARTTLS_OK]      = "OK Begin TLS negotiation now.",
	[PW_STARTTLS_IN_TLS]  = "BAD TLS is already active.",
	[PW_STARTTLS_OFF]     = "BAD Unknown command.",
	[PW_STARTTLS_NO_CERT] = "NO [UNAVAILABLE] TLS is not available.",
	[PW_STARTTLS_SYNTAX]  = "BAD Error in IMAP command received by server.",
	[PW_STARTTLS_NOT_NOW] = "BAD STARTTLS is not valid in the authenticated state.",
	[PW_STARTTLS_UNTRACKED] = "BAD STARTTLS after a command that could not be followed.",
	[PW_TLS_FIRST]        = ("NO [PRIVACYREQUIRED] Plaintext authentication disallowed "
				 "on non-secure (SSL/TLS) connections."),
	[PW_TOO_MANY_ERRORS]  = "* BYE Too many invalid IMAP commands.",
	[PW_SHUTTING_DOWN]    = "* BYE %s Server shutting down.",
	[PW_TOO_MANY_SESSIONS] = "* BYE [UNAVAILABLE] %s Too many sessions, try again later.",
	[PW_TOO_MANY_FROM_ADDR] = "* BYE [UNAVAILABLE] Too many connections from your address.",
	[PW_RATE_LIMITED]      = "* BYE [UNAVAILABLE] Too many connections from your address, try again later.",
	[PW_TOO_MANY_JUNK]     = "* BYE Too many commands without progress.",
	[PW_DEADLINE]          = "* BYE Disconnected for inactivity.",
};

const struct proto_ops imap_ops = {
	.name = "imap",
	.line_max = IMAP_LINE_MAX,
	.max_errors = IMAP_MAX_ERRORS,
	.tagged = true,
	.words = imap_words,
	.parse = imap_parse,
	.cmds = imap_cmds,
	.n_cmds = sizeof(imap_cmds) / sizeof(imap_cmds[0]),
	.starttls_allowed = imap_starttls_allowed,
	.greeting = imap_greeting,
	.client_line = imap_client_line,
	.too_long = imap_too_long,
	.tls_started = imap_tls_started,
	.backend_line = imap_backend_line,
	.timeout = imap_timeout,
	.unavailable = imap_unavailable,
	.lost = imap_lost,
	.probe_request = "a CAPABILITY\r\n",
	.probe_quit = "b LOGOUT\r\n",
	.probe_line = imap_probe_line,
	.starttls_again = imap_starttls_again,
	.c2b_scan = imap_c2b_scan,
	.b2c_scan = imap_b2c_scan,
	.goodbye = imap_goodbye,
	.mid_response = imap_mid_response,
};
