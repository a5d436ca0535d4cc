/* The transcript runner shared by the engine tests: see transcript.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transcript.h"

struct proto_caps *caps_make(const char *const *list)
{
	struct proto_caps *c;

	if (!list)
		return NULL;
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	for (; *list; list++) {
		assert_true(c->n < CAPS_MAX);
		c->item[c->n] = strdup(*list);
		assert_non_null(c->item[c->n]);
		c->n++;
	}
	return c;
}

const char *flag_names(unsigned f, char *buf, size_t cap)
{
	static const char *const names[] = {
		"CLOSE", "STARTTLS", "BACKEND", "FLUSH_HELD", "RELAY", "FAIL", "ERROR",
		"OFFERED_TLS",
	};
	size_t n = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < 32 && n < cap; i++)
		if (f & (1u << i))
			n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "|" : "",
					      i < sizeof(names) / sizeof(names[0]) ? names[i] : "?");
	if (!n)
		snprintf(buf, cap, "0");
	return buf;
}

char *dup_exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);

	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

/* Does the reply list STARTTLS (STLS) among capabilities: SMTP's EHLO
 * answer, IMAP's CAPABILITY answer (not its greeting), POP3's CAPA, FTP's
 * FEAT (AUTH TLS)? */
static bool lists_starttls(const struct proto_out *o)
{
	char *r = strndup(o->reply, o->reply_len);
	bool yes;

	assert_non_null(r);
	yes = strstr(r, "250 STARTTLS\r\n") || strstr(r, "\nSTLS\r\n") ||
	      strstr(r, "\n AUTH TLS\r\n") ||
	      (!strncmp(r, "* CAPABILITY ", 13) && strstr(r, " STARTTLS"));
	free(r);
	return yes;
}

/*
 * Check one engine answer against a step; idx and the input name the step.
 * Returns false with the reason in why[] (the caller cleans up, then fails).
 */
#define MISMATCH(...) do { snprintf(why, cap, __VA_ARGS__); return false; } while (0)
static bool check_out(const struct transcript_proto *tp, const struct step *st, unsigned idx,
		      const char *input, const struct proto_out *o, char *why, size_t cap)
{
	char got[128], want[128];
	size_t tail = o->reply_len > 120 ? o->reply_len - 120 : 0;

	/* PO_OFFERED_TLS only counts (starttls_offered): the transcripts
	 * need not say it, it must be there exactly when STARTTLS is listed. */
	if (!!(o->flags & PO_OFFERED_TLS) != lists_starttls(o))
		MISMATCH("step %u (%s): PO_OFFERED_TLS %s, but the reply %s STARTTLS: \"%.*s\"",
			 idx, input, (o->flags & PO_OFFERED_TLS) ? "set" : "not set",
			 lists_starttls(o) ? "lists" : "does not list", (int)o->reply_len, o->reply);
	if ((o->flags & ~(unsigned)PO_OFFERED_TLS) != st->expect_flags)
		MISMATCH("step %u (%s): flags %s (0x%x), want %s (0x%x); reply \"%.*s\"", idx,
			 input, flag_names(o->flags, got, sizeof(got)), o->flags,
			 flag_names(st->expect_flags, want, sizeof(want)), st->expect_flags,
			 (int)o->reply_len, o->reply);
	if (o->literal != st->literal)
		MISMATCH("step %u (%s): literal %llu, want %llu; reply \"%.*s\"", idx, input,
			 (unsigned long long)o->literal, (unsigned long long)st->literal,
			 (int)o->reply_len, o->reply);
	if (!st->expect_reply_prefix) {
		if (o->reply_len)
			MISMATCH("step %u (%s): unexpected reply \"%.*s\"", idx, input,
				 (int)o->reply_len, o->reply);
	} else {
		size_t n = strlen(st->expect_reply_prefix);

		if (o->reply_len < n || memcmp(o->reply, st->expect_reply_prefix, n) ||
		    (st->exact && o->reply_len != n))
			MISMATCH("step %u (%s): reply \"%.*s\", want %s \"%s\"", idx, input,
				 (int)o->reply_len, o->reply, st->exact ? "exactly" : "a start of",
				 st->expect_reply_prefix);
		if (!tp->well_formed(st, o))
			MISMATCH("step %u (%s): not %s (%zu bytes): \"%s%.*s\"", idx, input,
				 tp->unit, o->reply_len, tail ? "..." : "",
				 (int)(o->reply_len - tail), o->reply + tail);
	}
	if (st->contains && (!o->reply_len ||
			     !memmem(o->reply, o->reply_len, st->contains, strlen(st->contains))))
		MISMATCH("step %u (%s): reply \"%.*s\" lacks \"%s\"", idx, input,
			 (int)o->reply_len, o->reply, st->contains);
	if (st->check_ctr && o->counter != st->ctr)
		MISMATCH("step %u (%s): counter %d, want %d", idx, input, o->counter, st->ctr);
	if (!st->expect_to_backend) {
		if (o->to_backend_len)
			MISMATCH("step %u (%s): unexpected bytes for the backend \"%.*s\"", idx,
				 input, (int)o->to_backend_len, o->to_backend);
	} else if (o->to_backend_len != strlen(st->expect_to_backend) ||
		   memcmp(o->to_backend, st->expect_to_backend, o->to_backend_len)) {
		MISMATCH("step %u (%s): to backend \"%.*s\", want \"%s\"", idx, input,
			 (int)o->to_backend_len, o->to_backend, st->expect_to_backend);
	}
	return true;
}
#undef MISMATCH

/* Hand step st to the engine; returns the name of its input for messages,
 * or NULL for a step that expects no answer. */
static const char *step_feed(const struct proto_ops *ops, const struct proto_env *env,
			     struct proto_sess *ps, const struct step *st, struct proto_out *o)
{
	char *line;
	size_t len;

	switch (st->kind) {
	case S_CLIENT:
		len = st->len ? st->len : strlen(st->client);
		line = dup_exact(st->client, len);
		ops->client_line(env, ps, line, len, memchr(line, 0, len) != NULL, o);
		free(line);
		return st->client;
	case S_BACKEND:
		len = strlen(st->backend);
		line = dup_exact(st->backend, len);
		ops->backend_line(env, ps, line, len, o);
		free(line);
		return st->backend;
	case S_GREETING:
		ops->greeting(env, ps, o);
		return "(greeting)";
	case S_TOO_LONG:
		ops->too_long(env, ps, o);
		return "(line too long)";
	case S_TLS:
		ops->tls_started(ps);
		return NULL;
	case S_TIMEOUT:
		ops->timeout(env, ps, o);
		return "(timeout)";
	case S_UNAVAILABLE:
		ops->unavailable(env, ps, o);
		return "(unavailable)";
	}
	fail_msg("step kind %d", (int)st->kind);
	return NULL;
}

unsigned transcript_junk_limit;

void transcript_run(const struct transcript_proto *tp, const struct setup *su,
		    const struct step *steps, size_t n)
{
	const struct proto_ops *ops = proto_get(tp->proto);
	struct proto_caps *caps = caps_make(su->caps);
	struct proto_env env = {
		.hostname = "mx.test",
		.tls_mode = su->mode,
		.tls_available = su->tls_available,
		.caps = caps,
		.junk_limit = transcript_junk_limit,
	};
	struct proto_sess ps;
	struct proto_out *o = malloc(sizeof(*o));
	char why[4096] = "";
	bool ok = true;

	assert_non_null(ops);
	assert_non_null(o);
	assert_string_equal(ops->name, tp->name);
	assert_int_equal(ops->line_max, tp->line_max);
	memset(&ps, 0, sizeof(ps));

	for (unsigned i = 0; i < n && ok; i++) {
		const char *input;

		/* Garbage in, so a field the engine forgets to set shows. */
		memset(o, 0x5a, sizeof(*o));
		po_reset(o);
		input = step_feed(ops, &env, &ps, &steps[i], o);
		if (input)
			ok = check_out(tp, &steps[i], i, input, o, why, sizeof(why));
	}
	if (ops->fini)
		ops->fini(&ps);
	free(o);
	caps_free(caps);
	if (!ok)
		fail_msg("%s", why);
}

struct proto_caps *transcript_probe(const struct transcript_proto *tp,
				    const struct probe_step *t, size_t n)
{
	const struct proto_ops *ops = proto_get(tp->proto);
	struct proto_caps *caps = calloc(1, sizeof(*caps));
	int st = 0;

	assert_non_null(caps);
	if (tp->probe_request)
		assert_string_equal(ops->probe_request, tp->probe_request);
	if (tp->probe_quit)
		assert_string_equal(ops->probe_quit, tp->probe_quit);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(t[i].line);
		char *line = dup_exact(t[i].line, len);
		int rc = ops->probe_line(&st, line, len, caps);

		free(line);
		if (rc != t[i].rc) {
			caps_free(caps);
			fail_msg("probe step %zu \"%s\": %d, want %d", i, t[i].line, rc, t[i].rc);
		}
	}
	return caps;
}

void transcript_lost_is_silent(const struct transcript_proto *tp, const char *const *lasts,
			       size_t n)
{
	const struct proto_ops *ops = proto_get(tp->proto);
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, NULL, 0, NULL, false };

	for (size_t i = 0; i < n; i++) {
		struct proto_sess ps;
		struct proto_out o;
		char *l = dup_exact(lasts[i], strlen(lasts[i]));

		memset(&ps, 0, sizeof(ps));
		po_reset(&o);
		ops->lost(&env, &ps, l, strlen(lasts[i]), &o);
		free(l);
		if (o.reply_len || o.to_backend_len)
			fail_msg("lost after \"%s\": reply \"%.*s\", %zu bytes for the backend",
				 lasts[i], (int)o.reply_len, o.reply, o.to_backend_len);
		if (ops->fini)
			ops->fini(&ps);
	}
}

/* One relay step: see transcript.h. Returns false with why[] filled in. */
#define MISMATCH(...) do { snprintf(why, cap, __VA_ARGS__); return false; } while (0)
static bool relay_step(const struct proto_ops *ops, const struct proto_env *env,
		       struct proto_sess *ps, const struct relay_step *st, unsigned idx,
		       uint8_t *buf, size_t *held, char *why, size_t cap)
{
	size_t len = strlen(st->client), went, plen = strlen(st->pass);
	struct proto_out o;
	const uint8_t *lf;

	ops->b2c_scan(ps, (const uint8_t *)st->backend, strlen(st->backend));
	if (*held + len > 4096)
		MISMATCH("step %u: too much held", idx);
	memcpy(buf + *held, st->client, len);
	len += *held;
	went = ops->c2b_scan(ps, buf, len);
	if (went != plen || memcmp(buf, st->pass, plen))
		MISMATCH("step %u: \"%.*s\" goes to the backend, want \"%s\"", idx, (int)went,
			 (const char *)buf, st->pass);
	memmove(buf, buf + went, len - went);
	*held = len - went;
	if (ps->tls_held != st->held)
		MISMATCH("step %u: STARTTLS %sheld, want %sheld", idx, ps->tls_held ? "" : "not ",
			 st->held ? "" : "not ");
	if (!ps->tls_held)
		return true;
	lf = memchr(buf, '\n', *held);
	if (!lf)
		MISMATCH("step %u: the held line is not whole", idx);
	len = (size_t)(lf - buf);
	{
		char *l = dup_exact((const char *)buf, len && buf[len - 1] == '\r' ? len - 1 : len);
		bool answered;

		memset(&o, 0x5a, sizeof(o));
		po_reset(&o);
		answered = proto_late_starttls(ops, env, ps, l, len && buf[len - 1] == '\r' ?
					       len - 1 : len, &o);
		free(l);
		if (answered != !!st->answer)
			MISMATCH("step %u: STARTTLS %sanswered, want %sanswered", idx,
				 answered ? "" : "not ", st->answer ? "" : "not ");
		if (!answered)
			return true;
	}
	if (o.reply_len != strlen(st->answer) || memcmp(o.reply, st->answer, o.reply_len))
		MISMATCH("step %u: answer \"%.*s\", want \"%s\"", idx, (int)o.reply_len, o.reply,
			 st->answer);
	if (o.flags != st->flags)
		MISMATCH("step %u: flags 0x%x, want 0x%x", idx, o.flags, st->flags);
	if (o.to_backend_len != (st->to_backend ? strlen(st->to_backend) : 0) ||
	    memcmp(o.to_backend, st->to_backend ? st->to_backend : "", o.to_backend_len))
		MISMATCH("step %u: to the backend \"%.*s\", want \"%s\"", idx,
			 (int)o.to_backend_len, o.to_backend, st->to_backend ? st->to_backend : "");
	if (ps->tls_held)
		MISMATCH("step %u: still held after its answer", idx);
	len = (size_t)(lf - buf) + 1;
	memmove(buf, buf + len, *held - len);
	*held -= len;
	if (o.flags & PO_STARTTLS)
		*held = 0; /* rule 2.1 */
	return true;
}
#undef MISMATCH

void transcript_relay(const struct transcript_proto *tp, const struct setup *su,
		      const struct relay_step *steps, size_t n)
{
	const struct proto_ops *ops = proto_get(tp->proto);
	struct proto_caps *caps = caps_make(su->caps);
	struct proto_env env = { "mx.test", su->mode, su->tls_available, caps, 0, NULL, false };
	struct proto_sess ps;
	uint8_t *buf = malloc(4096);
	char why[1024] = "";
	size_t held = 0;
	bool ok = true;

	assert_non_null(buf);
	assert_non_null(ops->c2b_scan);
	assert_non_null(ops->b2c_scan);
	memset(&ps, 0, sizeof(ps));
	for (unsigned i = 0; i < n && ok; i++)
		ok = relay_step(ops, &env, &ps, &steps[i], i, buf, &held, why, sizeof(why));
	if (ops->fini)
		ops->fini(&ps);
	free(buf);
	caps_free(caps);
	if (!ok)
		fail_msg("%s", why);
}

unsigned transcript_probe_count(const struct transcript_proto *tp,
				const struct probe_step *t, size_t n)
{
	struct proto_caps *caps = transcript_probe(tp, t, n);
	unsigned got = caps->n;

	caps_free(caps);
	return got;
}

void transcript_many_caps(const struct transcript_proto *tp, const char *tail,
			  const char *cmd, struct proto_out *greeting, struct proto_out *reply)
{
	static char kw[CAPS_MAX][96];
	static const char *list[CAPS_MAX + 1];
	const struct proto_ops *ops = proto_get(tp->proto);
	struct proto_caps *caps;
	struct proto_env env;
	struct proto_sess ps;

	for (int i = 0; i < CAPS_MAX; i++) {
		int w = snprintf(kw[i], sizeof(kw[i]), "X-VENDOR-EXTENSION-%02d%s", i, tail);

		assert_true(w > 0 && (size_t)w < sizeof(kw[i]));
		list[i] = kw[i];
	}
	list[CAPS_MAX] = NULL;
	caps = caps_make(list);
	env = (struct proto_env){ "mx.test", CFG_TLS_STARTTLS, true, caps, 0, NULL, false };
	memset(&ps, 0, sizeof(ps));
	if (greeting) {
		po_reset(greeting);
		ops->greeting(&env, &ps, greeting);
	}
	po_reset(reply);
	ops->client_line(&env, &ps, cmd, strlen(cmd), false, reply);
	if (ops->fini)
		ops->fini(&ps);
	caps_free(caps);
}

void transcript_track(const struct transcript_proto *tp, const char *name,
		      const struct seg *t, size_t n)
{
	const struct proto_ops *ops = proto_get(tp->proto);
	struct proto_sess ps;
	static uint8_t buf[8192];
	size_t held = 0;

	assert_non_null(ops->c2b_scan);
	memset(&ps, 0, sizeof(ps));
	ps.in_tls = true; /* the plaintext relay holds STARTTLS instead */
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(t[i].in), went;

		if (t[i].backend) {
			assert_non_null(ops->b2c_scan);
			ops->b2c_scan(&ps, (const uint8_t *)t[i].backend, strlen(t[i].backend));
		}
		/* As the session does: bytes held back are offered again,
		 * with the new ones behind them. */
		assert_true(held + len <= sizeof(buf));
		memcpy(buf + held, t[i].in, len);
		len += held;
		went = ops->c2b_scan(&ps, buf, len);
		if (went != strlen(t[i].out) || memcmp(buf, t[i].out, went)) {
			char got[512];

			snprintf(got, sizeof(got), "%.*s", (int)(went < 400 ? went : 400),
				 (const char *)buf);
			if (ops->fini)
				ops->fini(&ps);
			fail_msg("%s, segment %zu: %zu bytes go \"%s\", want %zu \"%.400s\"", name, i,
				 went, got, strlen(t[i].out), t[i].out);
		}
		memmove(buf, buf + went, len - went);
		held = len - went;
	}
	if (ops->fini)
		ops->fini(&ps);
}

void transcript_idle_timeout(const struct transcript_proto *tp, bool tls, const char *cmd,
			     const char *say, const struct idle_step *t, size_t n)
{
	const struct proto_ops *ops = proto_get(tp->proto);
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, NULL, 0, NULL, false };
	struct proto_sess ps;
	struct proto_out o;

	memset(&ps, 0, sizeof(ps));
	if (tls)
		ops->tls_started(&ps);
	if (cmd) {
		size_t len = strlen(cmd);
		uint8_t *c = (uint8_t *)dup_exact(cmd, len);

		assert_int_equal(ops->c2b_scan(&ps, c, len), len);
		free(c);
	}
	for (unsigned i = 0; i < n; i++) {
		ops->b2c_scan(&ps, (const uint8_t *)t[i].backend, strlen(t[i].backend));
		po_reset(&o);
		proto_timeout(ops, &env, &ps, true, &o);
		if (t[i].speaks != (o.reply_len > 0) || !(o.flags & PO_CLOSE))
			fail_msg("step %u (\"%s\"): reply \"%.*s\", flags 0x%x", i, t[i].backend,
				 (int)o.reply_len, o.reply, o.flags);
		if (t[i].speaks && strncmp(o.reply, say, strlen(say)))
			fail_msg("step %u: reply \"%.*s\", want \"%s...\"", i, (int)o.reply_len,
				 o.reply, say);
	}
	if (ops->fini)
		ops->fini(&ps);
}
