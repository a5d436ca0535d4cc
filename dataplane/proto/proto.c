/* The protocol table and helpers shared by the engines. */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"

#define P(e, name, ops) extern const struct proto_ops ops;
#include "proto.def"
#undef P

const struct proto_ops *proto_get(enum cfg_proto p)
{
	switch (p) {
#define P(e, name, ops) case CFG_PROTO_##e: return &ops;
#include "proto.def"
#undef P
	default:
		return NULL;
	}
}

void po_reset(struct proto_out *o)
{
	o->flags = 0;
	o->literal = 0;
	o->counter = -1;
	o->reason = NULL;
	o->reply_len = 0;
	o->to_backend_len = 0;
}

static void po_vappend(char *buf, size_t cap, size_t *len, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf + *len, cap - *len, fmt, ap);

	if (n < 0)
		return;
	*len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

void po_reply(struct proto_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	po_vappend(o->reply, sizeof(o->reply), &o->reply_len, fmt, ap);
	va_end(ap);
}

void po_backend(struct proto_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	po_vappend(o->to_backend, sizeof(o->to_backend), &o->to_backend_len, fmt, ap);
	va_end(ap);
}

void caps_free(struct proto_caps *c)
{
	unsigned i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		free(c->item[i]);
	free(c);
}

static const bool proto_word_tagged[PW__COUNT] = {
#define W(name, tagged) [PW_##name] = tagged,
#include "proto_words.def"
#undef W
};

/* The word w of the engine into o, with tag in front where it is tagged. */
void proto_say(const struct proto_ops *ops, const struct proto_env *env,
	       struct proto_out *o, enum proto_word w, const char *tag)
{
	if (ops->tagged && proto_word_tagged[w] && tag && *tag)
		po_reply(o, "%s ", tag);
	po_reply(o, ops->words[w], env->hostname);
	po_reply(o, "\r\n");
}

/* A protocol error: counted; at the engine's limit, its too-many-errors
 * word and a close (as Postfix's smtpd_hard_error_limit). */
void proto_error(const struct proto_ops *ops, const struct proto_env *env,
		 struct proto_sess *ps, struct proto_out *o, int ctr, const char *reason)
{
	ps->errors++;
	o->counter = ctr;
	o->reason = reason;
	if (ps->errors >= ops->max_errors && !(o->flags & PO_CLOSE)) {
		proto_say(ops, env, o, PW_TOO_MANY_ERRORS, NULL);
		o->flags |= PO_CLOSE | PO_ERROR;
		o->counter = CTR_too_many_errors;
		o->reason = "too many errors";
		return;
	}
	proto_junk(ops, env, ps, o); /* an error makes no progress either */
}

/* A command without progress: see proto.h. As Postfix's
 * smtpd_junk_command_limit, but the next one is refused outright: sluice's
 * own dialogue has nothing to offer a client that only marks time. */
bool proto_junk(const struct proto_ops *ops, const struct proto_env *env,
		struct proto_sess *ps, struct proto_out *o)
{
	if (ps->junk < UINT16_MAX)
		ps->junk++;
	if (!env->junk_limit || ps->junk <= env->junk_limit || (o->flags & PO_CLOSE))
		return false;
	proto_refuse(ops, env, o, PW_TOO_MANY_JUNK, CTR_junk_refused,
		     "too many commands without progress");
	o->flags |= PO_ERROR;
	return true;
}

/* The session's timer fired: see proto.h. */
void proto_timeout(const struct proto_ops *ops, const struct proto_env *env,
		   struct proto_sess *ps, bool relay, struct proto_out *o)
{
	if (relay && (ps->untracked || ps->b_cur_len ||
		      (ops->mid_response && ops->mid_response(ps)))) {
		o->flags |= PO_CLOSE; /* the client sees the close: as ->lost */
		return;
	}
	ops->timeout(env, ps, o);
}

/* A limit refuses the client (limits.c, or the session's dialogue
 * limits): the protocol's temporary refusal w, counted, then close. */
void proto_refuse(const struct proto_ops *ops, const struct proto_env *env,
		  struct proto_out *o, enum proto_word w, int ctr, const char *reason)
{
	proto_say(ops, env, o, w, NULL);
	o->flags |= PO_CLOSE;
	o->counter = ctr;
	o->reason = reason;
}

/*
 * STARTTLS, wherever it comes (DESIGN.md §2): never twice (rule 2.2), not
 * on a plaintext listener, only with a usable certificate (rule 2.5), and
 * only alone on its line. The go-ahead sets PO_STARTTLS: the session
 * discards what followed (rule 2.1) and starts the handshake once the
 * reply drained (rule 2.3).
 */
static void proto_starttls(const struct proto_ops *ops, const struct proto_env *env,
			   struct proto_sess *ps, const struct proto_line *pl,
			   struct proto_out *o)
{
	if (ps->in_tls) {
		proto_say(ops, env, o, PW_STARTTLS_IN_TLS, pl->tag);
		proto_error(ops, env, ps, o, CTR_starttls_in_tls, "STARTTLS inside TLS");
	} else if (env->tls_mode == CFG_TLS_OFF) {
		proto_say(ops, env, o, PW_STARTTLS_OFF, pl->tag);
		proto_error(ops, env, ps, o, CTR_unknown_command,
			    "STARTTLS on a plaintext listener");
	} else if (!env->tls_available) {
		proto_say(ops, env, o, PW_STARTTLS_NO_CERT, pl->tag);
	} else if (pl->arg_len) {
		proto_say(ops, env, o, PW_STARTTLS_SYNTAX, pl->tag);
		proto_error(ops, env, ps, o, CTR_bad_syntax, "STARTTLS with an argument");
	} else {
		proto_say(ops, env, o, PW_STARTTLS_OK, pl->tag);
		o->flags |= PO_STARTTLS;
	}
}

/* The shared part of every command: see proto.h. */
bool proto_dispatch(const struct proto_ops *ops, const struct proto_env *env,
		    struct proto_sess *ps, const struct proto_line *pl,
		    enum proto_class cls, struct proto_out *o)
{
	switch (cls) {
	case PC_STARTTLS:
		proto_starttls(ops, env, ps, pl, o);
		return true;
	case PC_TLS_FIRST:
	case PC_BACKEND:
		/* Rule 2.6: tls: required means required, not only AUTH. */
		if (ps->in_tls || env->tls_mode != CFG_TLS_REQUIRED)
			return false;
		proto_say(ops, env, o, PW_TLS_FIRST, pl->tag);
		proto_error(ops, env, ps, o, CTR_refused_before_tls,
			    cls == PC_TLS_FIRST ? "login before TLS" : "mail command before TLS");
		return true;
	default:
		return false;
	}
}

/* The entry of the engine's table for pl: see proto.h. */
const struct proto_cmd *proto_find(const struct proto_ops *ops, const struct proto_line *pl)
{
	for (size_t i = 0; i < ops->n_cmds; i++) {
		const struct proto_cmd *c = &ops->cmds[i];

		if (!strcasecmp(c->verb, pl->verb) && (c->args || !pl->arg_len))
			return c;
	}
	return NULL;
}

/* Run command c: the shared rules of its class first. */
void proto_run(const struct proto_ops *ops, const struct proto_env *env,
	       struct proto_sess *ps, const struct proto_line *pl,
	       const struct proto_cmd *c, struct proto_out *o)
{
	if (c->junk == PJ_JUNK || (c->junk == PJ_REPEAT && ps->repeats++ >= PROTO_REPEATS_FREE)) {
		if (ps->repeats > PROTO_REPEATS_FREE)
			ps->repeats = PROTO_REPEATS_FREE + 1; /* (saturates) */
		if (proto_junk(ops, env, ps, o))
			return; /* refused instead of answered */
	}
	if (!proto_dispatch(ops, env, ps, pl, c->cls, o) && c->fn)
		c->fn(env, ps, pl, o);
}

/* The backend refused to be opened: see proto.h. */
void proto_backend_refused(const struct proto_ops *ops, const struct proto_env *env,
			   struct proto_sess *ps, struct proto_out *o, const char *reason)
{
	ops->unavailable(env, ps, o);
	o->flags |= PO_FAIL;
	o->counter = CTR_backend_refused;
	o->reason = reason;
}

/* Rule 2.7, the STARTTLS line the plaintext relay's tracker held: see
 * proto.h. */
bool proto_late_starttls(const struct proto_ops *ops, const struct proto_env *env,
			 struct proto_sess *ps, const char *l, size_t len,
			 struct proto_out *o)
{
	struct proto_line pl;
	bool bad;

	/* In pipelining order: every earlier command has its reply, and no
	 * backend response is half-relayed (an untagged line or a body in
	 * progress: our answer would land inside it). */
	if (ps->replies < ps->cmds || ps->b_cur_len ||
	    (ops->mid_response && ops->mid_response(ps)))
		return false;
	bad = ops->parse(l, len, &pl) < 0; /* (the tag stays, where there is one) */
	if (ps->untracked) {
		/* The tracker lost the stream earlier: this may not even be a
		 * command. No TLS on a stream sluice does not follow: refused,
		 * closed. (Were the counts wrong for good, the idle timeout
		 * ends the wait.) */
		ps->tls_held = false;
		proto_say(ops, env, o, PW_STARTTLS_UNTRACKED, pl.tag);
		o->flags |= PO_CLOSE | PO_ERROR;
		o->counter = CTR_starttls_untracked;
		o->reason = "STARTTLS after a command line the relay could not parse";
		return true;
	}
	ps->tls_held = false;
	if (!ps->in_tls && env->tls_mode != CFG_TLS_OFF && ops->starttls_allowed &&
	    !ops->starttls_allowed(ps)) {
		proto_say(ops, env, o, PW_STARTTLS_NOT_NOW, pl.tag);
		proto_error(ops, env, ps, o, CTR_starttls_not_now,
			    "STARTTLS where the protocol forbids it");
		return true;
	}
	if (bad) { /* e.g. "tag STARTTLS<TAB>": not the command, for IMAP */
		proto_say(ops, env, o, PW_STARTTLS_SYNTAX, pl.tag);
		proto_error(ops, env, ps, o, CTR_bad_syntax, "STARTTLS with bad syntax");
		return true;
	}
	proto_starttls(ops, env, ps, &pl, o);
	if (o->flags & PO_STARTTLS)
		po_backend(o, "%s", ops->probe_quit); /* the plaintext backend ends politely */
	return true;
}

/* Drain: the goodbye at a safe point: see proto.h. */
bool proto_goodbye(const struct proto_ops *ops, const struct proto_env *env,
		   struct proto_sess *ps, bool relay, struct proto_out *o)
{
	const char *be_bye = NULL;

	if (relay && (ps->tls_held || ps->b_cur_len || ps->untracked ||
		      ps->replies + (ps->idle_wait ? 1u : 0u) < ps->cmds))
		return false;
	if (!ops->goodbye || !ops->goodbye(ps, relay, &be_bye))
		return false;
	proto_say(ops, env, o, PW_SHUTTING_DOWN, NULL);
	o->flags |= PO_CLOSE;
	o->counter = CTR_drain_goodbye;
	o->reason = "sluice draining: goodbye said";
	if (relay && be_bye)
		po_backend(o, "%s", be_bye);
	return true;
}

/* Rule 2.2 for the shared part: the relay's counts and the engine's own
 * state start again from zero inside TLS (the engine freed what its state
 * pointed to); the error and junk counts stay. */
void proto_sess_tls(struct proto_sess *ps)
{
	uint16_t errors = ps->errors, denied = ps->denied, junk = ps->junk;
	uint8_t repeats = ps->repeats;
	bool trace = ps->trace;

	memset(ps, 0, sizeof(*ps));
	ps->trace = trace;      /* the listener's setting, not something learned */
	ps->errors = errors;
	ps->denied = denied;
	ps->junk = junk; /* one budget for the whole dialogue */
	ps->repeats = repeats;
	ps->in_tls = true;
}

int proto_parse_verb(const char *l, size_t len, struct proto_line *pl)
{
	size_t i = 0, c = 0;

	memset(pl, 0, sizeof(*pl));
	while (len && (l[len - 1] == ' ' || l[len - 1] == '\t'))
		len--;
	while (i < len && c < sizeof(pl->verb) - 1 && isalpha((unsigned char)l[i]))
		pl->verb[c++] = l[i++];
	if (c == 0 || (i < len && l[i] != ' '))
		return -1;
	while (i < len && l[i] == ' ')
		i++;
	pl->arg = l + i;
	pl->arg_len = len - i;
	return 0;
}
