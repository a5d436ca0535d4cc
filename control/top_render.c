/*
 * sluicectl top's frame (top_render.h): the header, the listeners, the
 * cores, the backends, the handshake failures and the limits' refusals,
 * with rates from the difference of two reads. The counters are
 * dataplane/counters.def's names as the stats answer gives them
 * (docs/control.md); a figure the answer does not have is shown as "-",
 * so that a dataplane without per-listener counters or core busy figures
 * still gets a frame.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "top_render.h"

#define TAB_COLS 12
#define TOP_REASONS 5           /* failure reasons shown */

/* The frame being built; err sticks at the first failure. */
struct fb {
	struct top_frame *f;
	unsigned width;
	int err;
};

/* One line (printf), cut at the width. */
static void put(struct fb *b, const char *fmt, ...)
{
	char *s = NULL, **l;
	va_list ap;

	if (b->err)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s || !(l = realloc(b->f->line, (b->f->n + 1) * sizeof(*l)))) {
		free(s);
		b->err = -ENOMEM;
		return;
	}
	/* Trailing blanks would only make a line wider than it looks. */
	for (size_t n = strlen(s); n && s[n - 1] == ' '; n--)
		s[n - 1] = 0;
	if (b->width && strlen(s) > b->width)
		s[b->width] = 0;
	b->f->line = l;
	b->f->line[b->f->n++] = s;
}

/* A table: cells copied, columns aligned when emitted (right: numbers). */
struct tab {
	unsigned cols, n;
	bool right[TAB_COLS];
	char *(*row)[TAB_COLS];
	int err;
};

static void tab_add(struct tab *t, ...)
{
	char *(*r)[TAB_COLS];
	va_list ap;

	if (t->err || !(r = realloc(t->row, (t->n + 1) * sizeof(*r)))) {
		t->err = -ENOMEM;
		return;
	}
	t->row = r;
	va_start(ap, t);
	for (unsigned k = 0; k < t->cols; k++) {
		const char *s = va_arg(ap, const char *);

		if (!(r[t->n][k] = strdup(s ? s : "-")))
			t->err = -ENOMEM;
	}
	va_end(ap);
	t->n++;
}

/* The table's rows as lines, and the table freed. */
static void tab_emit(struct fb *b, struct tab *t)
{
	size_t w[TAB_COLS] = { 0 };

	if (t->err && !b->err)
		b->err = t->err;
	for (unsigned i = 0; i < t->n; i++)
		for (unsigned k = 0; k < t->cols; k++)
			if (t->row[i][k] && strlen(t->row[i][k]) > w[k])
				w[k] = strlen(t->row[i][k]);
	for (unsigned i = 0; i < t->n; i++) {
		char line[1024];
		size_t o = 0;

		for (unsigned k = 0; k < t->cols && o < sizeof(line); k++) {
			const char *s = t->row[i][k] ? t->row[i][k] : "";

			o += (size_t)snprintf(line + o, sizeof(line) - o, t->right[k] ? "%*s%s" : "%-*s%s",
					      (int)w[k], s, k + 1 < t->cols ? "  " : "");
		}
		put(b, "%s", line);
		for (unsigned k = 0; k < t->cols; k++)
			free(t->row[i][k]);
	}
	free(t->row);
	memset(t, 0, sizeof(*t));
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

/* The counters of a listener or core object: its "counters" if it has
 * them, else the object itself (stats' per-core objects are flat). */
static json_t *ctrs(json_t *o)
{
	json_t *c = json_object_get(o, "counters");

	return json_is_object(c) ? c : o;
}

/* Counter name of o; false if o has no such number. */
static bool get(json_t *o, const char *name, long long *v)
{
	json_t *j = json_object_get(o, name);

	if (!json_is_integer(j))
		return false;
	*v = json_integer_value(j);
	return true;
}

/* What a rate is taken over: seconds, and whether prev is to be used. */
struct span {
	double dt;
	bool since_start;       /* prev unusable: counts since the dataplane started */
};

/* The increase of counter name from p to c (p NULL: all of c), or -1
 * if c has no such counter. A counter that went back (a new listener
 * under an old name) counts from zero. */
static long long delta(json_t *p, json_t *c, const char *name)
{
	long long a = 0, b;

	if (!get(c, name, &b))
		return -1;
	if (p && get(p, name, &a) && a <= b)
		return b - a;
	return b;
}

/* "-", "0", "3.5", "42", "1.2k", "3.4M" */
static const char *fmt_rate(double v, char *b, size_t n)
{
	if (v < 0)
		snprintf(b, n, "-");
	else if (v == 0)
		snprintf(b, n, "0");
	else if (v < 100)
		snprintf(b, n, "%.1f", v);
	else if (v < 1e4)
		snprintf(b, n, "%.0f", v);
	else if (v < 1e6)
		snprintf(b, n, "%.1fk", v / 1e3);
	else if (v < 1e9)
		snprintf(b, n, "%.1fM", v / 1e6);
	else
		snprintf(b, n, "%.1fG", v / 1e9);
	return b;
}

static const char *fmt_int(long long v, char *b, size_t n)
{
	if (v < 0)
		snprintf(b, n, "-");
	else
		snprintf(b, n, "%lld", v);
	return b;
}

/* The rate of counter name between p and c, as text. */
static const char *rate(const struct span *s, json_t *p, json_t *c, const char *name, char *b,
			size_t n)
{
	long long d = delta(s->since_start ? NULL : p, c, name);

	return fmt_rate(d < 0 ? -1 : (double)d / s->dt, b, n);
}

/* Sessions open now: a "sessions" figure of o, or accepted - closed. */
static long long sessions_of(json_t *o)
{
	long long v, closed;

	if (get(o, "sessions", &v) || get(ctrs(o), "sessions", &v))
		return v;
	if (get(ctrs(o), "conn_accepted", &v) && get(ctrs(o), "conn_closed", &closed) &&
	    v >= closed)
		return v - closed;
	return -1;
}

static const char *fmt_dur(long long s, char *b, size_t n)
{
	if (s < 0) {
		snprintf(b, n, "-");
		return b;
	}
	return fmt_duration(s, b, n);
}

/* The listener named name in a stats answer's "listeners", or NULL. */
static json_t *listener_named(json_t *stats, const char *name)
{
	json_t *l;
	size_t i;

	json_array_foreach(json_object_get(stats, "listeners"), i, l)
		if (!strcmp(str(l, "name"), name))
			return l;
	return NULL;
}

/* status' "tls" as the metrics' mode (docs/metrics.md). */
static const char *mode_of_tls(const char *tls)
{
	if (!strcmp(tls, "off"))
		return "plain";
	if (!strcmp(tls, "starttls") || !strcmp(tls, "required"))
		return "starttls";
	return tls;
}

/* One listener row: c and p its counters now and before (p may be NULL). */
static void listener_row(struct tab *t, const struct span *s, const char *name,
			 const char *proto, const char *mode, long long sess, json_t *p, json_t *c)
{
	char b[8][32];
	long long total = -1;

	get(c, "conn_accepted", &total);
	tab_add(t, name, proto, mode, fmt_int(sess, b[0], 32), fmt_int(total, b[1], 32),
		rate(s, p, c, "conn_accepted", b[2], 32), rate(s, p, c, "handshake_ok", b[3], 32),
		rate(s, p, c, "handshake_fail", b[4], 32), rate(s, p, c, "bytes_from_client", b[5], 32),
		rate(s, p, c, "bytes_to_client", b[6], 32), rate(s, p, c, "starttls", b[7], 32));
}

/* A listener's counters as stats gives them leave the zeros out: the
 * columns' counters, 0 where absent (a new reference; NULL for NULL). */
static json_t *filled(json_t *o)
{
	static const char *const cols[] = {
		"conn_accepted", "conn_closed", "handshake_ok", "handshake_fail",
		"bytes_from_client", "bytes_to_client", "starttls",
	};
	json_t *c = o ? json_copy(o) : NULL;

	for (unsigned i = 0; c && i < sizeof(cols) / sizeof(cols[0]); i++)
		if (!json_object_get(c, cols[i]))
			json_object_set_new(c, cols[i], json_integer(0));
	return c;
}

static void listeners(struct fb *b, const struct span *s, const struct top_read *prev,
		      const struct top_read *cur)
{
	json_t *ls = json_object_get(cur->stats, "listeners"), *l, *sum;
	json_t *psum = prev ? json_object_get(prev->stats, "counters") : NULL;
	struct tab t = { .cols = 11, .right = { [3] = true, true, true, true, true, true, true, true } };
	size_t i;

	tab_add(&t, "LISTENER", "PROTO", "MODE", "SESS", "TOTAL", "NEW/s", "HS/s", "HSFAIL/s",
		"IN B/s", "OUT B/s", "STLS/s");
	if (json_is_array(ls)) {
		json_array_foreach(ls, i, l) {
			json_t *pl = prev ? listener_named(prev->stats, str(l, "name")) : NULL;
			json_t *c = filled(ctrs(l)), *p = filled(pl ? ctrs(pl) : NULL);
			long long sess = -1;

			if (!get(l, "sessions", &sess))
				sess = sessions_of(c);
			listener_row(&t, s, str(l, "name"), str(l, "proto"), str(l, "mode"), sess, p, c);
			json_decref(c);
			json_decref(p);
		}
	} else {
		/* No per-listener counters from this dataplane: the names from
		 * status, the figures in the all row only. */
		json_array_foreach(json_object_get(cur->status, "listeners"), i, l)
			tab_add(&t, str(l, "name"), str(l, "proto"), mode_of_tls(str(l, "tls")), "-",
				"-", "-", "-", "-", "-", "-", "-");
	}
	sum = json_object_get(cur->stats, "counters");
	if (json_is_object(sum)) {
		long long sess = -1;

		if (!get(cur->status, "sessions", &sess))
			sess = sessions_of(sum);
		listener_row(&t, s, "(all)", "", "", sess, psum, sum);
	}
	tab_emit(b, &t);
	if (!json_is_array(ls) && cur->stats)
		put(b, "(this dataplane's stats has no per-listener counters: \"(all)\" sums every "
		    "listener)");
}

static bool in_stress(json_t *stats, size_t core)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(stats, "stress"), i, v)
		if (json_is_integer(v) && (size_t)json_integer_value(v) == core)
			return true;
	return false;
}

static void cores(struct fb *b, const struct span *s, const struct top_read *prev,
		  const struct top_read *cur)
{
	json_t *cs = json_object_get(cur->stats, "cores"), *o;
	json_t *pcs = prev ? json_object_get(prev->stats, "cores") : NULL;
	struct tab t = { .cols = 5, .right = { false, true, true, true } };
	size_t i;

	if (!json_is_array(cs))
		return;
	tab_add(&t, "CORE", "SESS", "BUSY%", "QUEUE", "STRESS");
	json_array_foreach(cs, i, o) {
		json_t *c = ctrs(o), *p = s->since_start ? NULL : json_array_get(pcs, i);
		char b0[24], b1[32], b2[32], b3[32];
		/* the dataplane's per-core figures beside its counters
		 * (docs/control.md, stats): core_busy_ns, worker_queue_depth */
		long long d = delta(p ? ctrs(p) : NULL, c, "core_busy_ns"), q = -1;

		(void)get(c, "worker_queue_depth", &q);
		snprintf(b0, sizeof(b0), "%zu", i);
		if (d >= 0)
			snprintf(b2, sizeof(b2), "%.1f", 100.0 * (double)d * 1e-9 / s->dt);
		else
			snprintf(b2, sizeof(b2), "-");
		tab_add(&t, b0, fmt_int(sessions_of(o), b1, 32), b2, fmt_int(q, b3, 32),
			in_stress(cur->stats, i) ? "yes" : "-");
	}
	put(b, "");
	tab_emit(b, &t);
}

static void backends(struct fb *b, json_t *status)
{
	struct tab t = { .cols = 3 };
	unsigned up = 0, down = 0;
	json_t *be, *sv;
	size_t i, k;

	json_array_foreach(json_object_get(status, "backends"), i, be)
		json_array_foreach(json_object_get(be, "servers"), k, sv)
			*(json_is_true(json_object_get(sv, "up")) ? &up : &down) += 1;
	if (!up && !down)
		return;
	tab_add(&t, "BACKEND", "SERVER", "STATE");
	json_array_foreach(json_object_get(status, "backends"), i, be)
		json_array_foreach(json_object_get(be, "servers"), k, sv)
			tab_add(&t, str(be, "name"), str(sv, "address"),
				json_is_true(json_object_get(sv, "up")) ? "up" : "DOWN");
	put(b, "");
	put(b, "backends: %u up, %u down", up, down);
	tab_emit(b, &t);
}

/* A family of counters: the failure reasons or the limits' refusals. */
static bool is_failure(const char *k)
{
	return (!strncmp(k, "certsel_", 8) && strcmp(k, "certsel_OK") &&
		strcmp(k, "certsel_disagree")) ||
	       !strncmp(k, "hsfail_", 7) || !strncmp(k, "handshake_fail_", 15) ||
	       !strcmp(k, "timeout_handshake") ||
	       !strcmp(k, "hello_too_big");
}

static bool is_refusal(const char *k)
{
	return !strncmp(k, "conn_refused_", 13) || !strcmp(k, "handshake_refused_rate") ||
	       !strcmp(k, "stress_evicted") || !strcmp(k, "worker_queue_full");
}

struct ranked {
	const char *name;
	long long d, total;
};

static int by_delta(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->d != y->d)
		return x->d < y->d ? 1 : -1;
	if (x->total != y->total)
		return x->total < y->total ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* The counters of the family that ever counted, most in the span first,
 * at most max of them. */
static void ranked(struct fb *b, const struct span *s, json_t *p, json_t *c, const char *title,
		   bool (*family)(const char *), unsigned max)
{
	struct tab t = { .cols = 3, .right = { false, true, true } };
	struct ranked r[256];
	unsigned n = 0;
	const char *k;
	json_t *v;

	json_object_foreach(c, k, v) {
		if (n == 256 || !json_is_integer(v) || !json_integer_value(v) || !family(k))
			continue;
		r[n].name = k;
		r[n].total = json_integer_value(v);
		r[n++].d = delta(s->since_start ? NULL : p, c, k);
	}
	qsort(r, n, sizeof(r[0]), by_delta);
	put(b, "");
	tab_add(&t, title, "/s", "TOTAL");
	for (unsigned i = 0; i < n && i < max; i++) {
		char b1[32], b2[32];

		tab_add(&t, r[i].name, fmt_rate((double)r[i].d / s->dt, b1, 32),
			fmt_int(r[i].total, b2, 32));
	}
	if (!n)
		tab_add(&t, "none", "", "");
	tab_emit(b, &t);
	if (n > max)
		put(b, "(%u more)", n - max);
}

/* Whether prev is a read of the same dataplane process as cur. */
static bool same_process(const struct top_read *prev, const struct top_read *cur)
{
	long long a, b;

	if (!prev || !prev->stats || !cur->stats)
		return false;
	if (get(prev->status, "pid", &a) && get(cur->status, "pid", &b) && a != b)
		return false;
	if (get(prev->status, "uptime_s", &a) && get(cur->status, "uptime_s", &b) && b < a)
		return false;
	return cur->t > prev->t;
}

static void header(struct fb *b, const struct span *s, const struct top_read *cur)
{
	json_t *st = cur->status, *sum = json_object_get(cur->stats, "counters");
	char u[32], r[8][32];
	long long up = -1, sess = -1;

	get(st, "uptime_s", &up);
	if (!get(st, "sessions", &sess))
		sess = sessions_of(sum);
	if (st)
		put(b, "sluice %s  up %s  generation %s  draining %s  sessions %s  cores %s  "
		    "workers %s  %s stack", str(st, "version"), fmt_dur(up, u, sizeof(u)),
		    fmt_int(json_integer_value(json_object_get(st, "generation")), r[0], 32),
		    json_is_true(json_object_get(st, "draining")) ? "YES" : "no",
		    fmt_int(sess, r[1], 32),
		    fmt_int(json_integer_value(json_object_get(st, "cores")), r[2], 32),
		    fmt_int(json_integer_value(json_object_get(st, "workers")), r[3], 32),
		    str(st, "stack"));
	else
		put(b, "sluice: no status");
	if (cur->error)
		put(b, "sluice-control: %s", cur->error);
	if (!cur->stats)
		;       /* no rates to speak of */
	else if (s->since_start)
		put(b, "rates: per second, averaged since the dataplane started");
	else
		put(b, "rates: per second over the last %.1f s", s->dt);
	put(b, "");
}

int top_render(const struct top_read *prev, const struct top_read *cur, unsigned width,
	       unsigned height, struct top_frame *f)
{
	struct fb b = { .f = f, .width = width };
	struct span s = { .since_start = !same_process(prev, cur) };
	json_t *sum = json_object_get(cur->stats, "counters");
	json_t *psum = s.since_start ? NULL : json_object_get(prev->stats, "counters");
	long long up = 0;

	memset(f, 0, sizeof(*f));
	if (s.since_start) {
		get(cur->status, "uptime_s", &up);
		s.dt = up > 0 ? (double)up : 1;
		prev = NULL;
	} else {
		s.dt = cur->t - prev->t;
	}
	header(&b, &s, cur);
	if (cur->stats) {
		listeners(&b, &s, prev, cur);
		cores(&b, &s, prev, cur);
	}
	backends(&b, cur->status);
	if (json_is_object(sum)) {
		ranked(&b, &s, psum, sum, "HANDSHAKE FAILURES", is_failure, TOP_REASONS);
		ranked(&b, &s, psum, sum, "REFUSED BY THE LIMITS", is_refusal, 8);
	}
	if (!b.err && height && f->n > height) {
		unsigned more = f->n - height + 1;

		while (f->n > height - 1)
			free(f->line[--f->n]);
		put(&b, "... %u more lines: a taller window shows them", more);
	}
	if (b.err) {
		top_frame_free(f);
		return b.err;
	}
	return 0;
}

void top_frame_free(struct top_frame *f)
{
	for (unsigned i = 0; i < f->n; i++)
		free(f->line[i]);
	free(f->line);
	memset(f, 0, sizeof(*f));
}
