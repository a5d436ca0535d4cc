/* sluicectl's human output, one printer per answer (sluicectl.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duration.h"
#include "sluicectl.h"

void table_row(struct table *t, unsigned cols, ...)
{
	char ***r = realloc(t->rows, (t->n + 1) * sizeof(*r));
	va_list ap;

	if (!r)
		return;
	t->rows = r;
	r[t->n] = calloc(cols, sizeof(char *));
	if (!r[t->n])
		return;
	va_start(ap, cols);
	for (unsigned i = 0; i < cols; i++) {
		const char *s = va_arg(ap, const char *);

		r[t->n][i] = strdup(s ? s : "-");
	}
	va_end(ap);
	t->cols = cols > t->cols ? cols : t->cols;
	t->n++;
}

void table_print(struct table *t)
{
	size_t w[16] = { 0 };

	for (unsigned i = 0; i < t->n; i++)
		for (unsigned k = 0; k < t->cols && k < 16; k++)
			if (t->rows[i][k] && strlen(t->rows[i][k]) > w[k])
				w[k] = strlen(t->rows[i][k]);
	for (unsigned i = 0; i < t->n; i++) {
		for (unsigned k = 0; k < t->cols && k < 16; k++) {
			const char *s = t->rows[i][k] ? t->rows[i][k] : "";

			if (k + 1 == t->cols)
				printf("%s", s);
			else
				printf("%-*s  ", (int)w[k], s);
			free(t->rows[i][k]);
		}
		printf("\n");
		free(t->rows[i]);
	}
	free(t->rows);
	memset(t, 0, sizeof(*t));
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

static long long num(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* "3d04h", "1h02m", "42s" */
static const char *dur(long long s, char *b, size_t n)
{
	if (s < 0) {
		/* Not yet: a ticket key pushed ahead of its window. */
		char f[32];

		snprintf(b, n, "in %s", dur(-s, f, sizeof(f)));
		return b;
	}
	return fmt_duration(s, b, n);
}

static const char *when(long long t, char *b, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t || !gmtime_r(&tt, &tm))
		return "-";
	strftime(b, n, "%Y-%m-%d %H:%M:%SZ", &tm);
	return b;
}

static const char *yesno(json_t *o, const char *k)
{
	return json_is_true(json_object_get(o, k)) ? "yes" : "no";
}

/* The strings of array a joined by sep. */
static const char *join(json_t *a, const char *sep, char *b, size_t n)
{
	size_t i, o = 0;
	json_t *v;

	b[0] = 0;
	json_array_foreach(a, i, v)
		o += (size_t)snprintf(b + o, o < n ? n - o : 0, "%s%s", i ? sep : "",
				      json_is_string(v) ? json_string_value(v) : "?");
	return b[0] ? b : "-";
}

void out_status(json_t *a)
{
	json_t *c = json_object_get(a, "control"), *lr = json_object_get(c, "last_reload");
	json_t *v;
	struct table t = { 0 };
	char b1[32], b2[64], b3[512];
	size_t i, k;

	printf("sluice %s  pid %lld  up %s  generation %lld  %s stack  cores %lld  workers %lld"
	       "  sessions %lld  draining %s\n", str(a, "version"), num(a, "pid"),
	       dur(num(a, "uptime_s"), b1, sizeof(b1)), num(a, "generation"), str(a, "stack"),
	       num(a, "cores"), num(a, "workers"), num(a, "sessions"), yesno(a, "draining"));
	if (c) {
		if (!num(lr, "time"))
			printf("last reload: none since sluice-control started\n");
		else if (json_is_true(json_object_get(lr, "ok")))
			printf("last reload: ok at %s, generation %lld\n",
			       when(num(lr, "time"), b2, sizeof(b2)), num(lr, "generation"));
		else
			printf("last reload: FAILED at %s: %s\n", when(num(lr, "time"), b2, sizeof(b2)),
			       str(lr, "error"));
		printf("sluice-control: pid %lld, up %s, %s, config %s, reloads %lld ok %lld failed\n",
		       num(c, "pid"), dur(num(c, "uptime_s"), b1, sizeof(b1)),
		       json_is_true(json_object_get(c, "attached")) ? "attached" : "NOT attached",
		       str(c, "config"), num(c, "reloads_ok"), num(c, "reloads_failed"));
		if (json_is_string(json_object_get(c, "staged")))
			printf("staged: %s\n", str(c, "staged"));
	}
	table_row(&t, 5, "LISTENER", "ADDRESS", "PROTO", "TLS", "CERTS");
	json_array_foreach(json_object_get(a, "listeners"), i, v) {
		json_t *cs = json_object_get(v, "certs");

		table_row(&t, 5, str(v, "name"), str(v, "address"), str(v, "proto"), str(v, "tls"),
			  json_is_array(cs) ? join(cs, ",", b3, sizeof(b3)) : str(v, "certs"));
	}
	printf("\n");
	table_print(&t);
	table_row(&t, 3, "BACKEND", "SERVER", "STATE");
	json_array_foreach(json_object_get(a, "backends"), i, v) {
		json_t *s;

		json_array_foreach(json_object_get(v, "servers"), k, s)
			table_row(&t, 3, str(v, "name"), str(s, "address"),
				  json_is_true(json_object_get(s, "up")) ? "up" : "DOWN");
	}
	printf("\n");
	table_print(&t);
}

/* "name value" lines of an object of numbers. */
static void counters(json_t *o)
{
	struct table t = { 0 };
	const char *k;
	json_t *v;
	char b[32];

	json_object_foreach(o, k, v) {
		snprintf(b, sizeof(b), "%lld", (long long)json_integer_value(v));
		table_row(&t, 2, k, b);
	}
	table_print(&t);
}

void out_stats(json_t *a)
{
	json_t *cores = json_object_get(a, "cores"), *c0, *v;
	const char *k;
	size_t i;

	if (!json_is_array(cores)) {
		counters(json_object_get(a, "counters"));
		return;
	}
	/* One column per core, one row per counter, as the first core lists them. */
	c0 = json_array_get(cores, 0);
	printf("%-32s", "COUNTER");
	json_array_foreach(cores, i, v) {
		char h[32];

		snprintf(h, sizeof(h), "core%zu", i);
		printf(" %12s", h);
	}
	printf("\n");
	json_object_foreach(c0, k, v) {
		json_t *c;

		printf("%-32s", k);
		json_array_foreach(cores, i, c)
			printf(" %12lld", (long long)json_integer_value(json_object_get(c, k)));
		printf("\n");
	}
}

void out_health(json_t *a)
{
	printf("%s, %s\n", json_is_true(json_object_get(a, "serving")) ? "serving" : "NOT serving",
	       json_is_true(json_object_get(a, "draining")) ? "draining" : "not draining");
}

void out_reload(json_t *a)
{
	printf("reloaded: generation %lld\n", num(a, "generation"));
	if (json_is_string(json_object_get(a, "dropped_staged")))
		printf("the staged change was dropped: %s\n", str(a, "dropped_staged"));
}

void out_drain(json_t *a)
{
	printf("draining: %lld sessions still open\n", num(a, "sessions"));
}

static void out_hellos_table(json_t *a);

void out_ok(json_t *a)
{
	(void)a;
	printf("ok\n");
}

void out_certs_list(json_t *a)
{
	struct table t = { 0 };
	char b1[32], b2[512], b3[16];
	size_t i, k;
	json_t *s, *c;

	table_row(&t, 6, "SET", "KIND", "NOT_AFTER", "DAYS", "NAMES", "FILE");
	json_array_foreach(json_object_get(a, "sets"), i, s)
		json_array_foreach(json_object_get(s, "certs"), k, c) {
			snprintf(b3, sizeof(b3), "%lld", num(c, "days_left"));
			table_row(&t, 6, str(s, "name"), str(c, "kind"),
				  when(num(c, "not_after_s"), b1, sizeof(b1)), b3,
				  join(json_object_get(c, "names"), ",", b2, sizeof(b2)),
				  str(c, "source"));
		}
	table_print(&t);
}

void out_stage(json_t *a)
{
	printf("staged: %s\n(sluicectl certs check, then commit or abort)\n", str(a, "staged"));
}

void out_check(json_t *a)
{
	json_t *r, *refusals = json_object_get(a, "refusals");
	size_t i;

	printf("staged: %s\n", str(a, "staged"));
	printf("valid: %s\n", yesno(a, "valid"));
	printf("would break clients: %s\n", yesno(a, "breaks"));
	json_array_foreach(refusals, i, r)
		printf("  %s\n", json_is_string(r) ? json_string_value(r) : str(r, "reason"));
	if (json_is_string(json_object_get(a, "report")))
		fputs(str(a, "report"), stdout);   /* its own lines */
	if (json_is_string(json_object_get(a, "note")))
		printf("note: %s\n", str(a, "note"));
}

void out_commit(json_t *a)
{
	printf("committed: %s\ngeneration %lld\n", str(a, "committed"), num(a, "generation"));
}

static void key_table(json_t *keys)
{
	struct table t = { 0 };
	char b1[32], b2[48], b3[48];
	size_t i;
	json_t *k;

	table_row(&t, 5, "KEY", "AGE", "NOT_BEFORE", "NOT_AFTER", "SEALING");
	json_array_foreach(keys, i, k)
		table_row(&t, 5, str(k, "name"), dur(num(k, "age_s"), b1, sizeof(b1)),
			  when(num(k, "not_before"), b2, sizeof(b2)),
			  when(num(k, "not_after"), b3, sizeof(b3)), yesno(k, "sealing"));
	table_print(&t);
}

void out_tickets(json_t *a)
{
	json_t *dp = json_object_get(a, "dataplane");

	if (json_is_string(json_object_get(a, "source")))
		printf("keys from %s, rotated every %llds, kept %lld\n", str(a, "source"),
		       num(a, "rotate"), num(a, "keep"));
	key_table(json_object_get(a, "keys"));
	if (json_is_object(dp)) {
		printf("\nthe dataplane's:\n");
		key_table(json_object_get(dp, "keys"));
	} else if (json_is_string(json_object_get(a, "dataplane_error"))) {
		printf("\nthe dataplane's: %s\n", str(a, "dataplane_error"));
	}
}

void out_hellos(json_t *a)
{
	if (json_is_string(json_object_get(a, "report"))) {
		fputs(str(a, "report"), stdout);   /* sluice-control's judged report */
		return;
	}
	out_hellos_table(a);
}

static void out_hellos_table(json_t *a)
{
	struct table t = { 0 };
	char n[3][24], b[48];
	size_t i;
	json_t *h;

	table_row(&t, 7, "LISTENER", "JA4", "CLIENT", "COUNT", "OK", "FAIL", "LAST_SEEN");
	json_array_foreach(json_object_get(a, "hellos"), i, h) {
		snprintf(n[0], sizeof(n[0]), "%lld", num(h, "count"));
		snprintf(n[1], sizeof(n[1]), "%lld", num(h, "ok"));
		snprintf(n[2], sizeof(n[2]), "%lld", num(h, "fail"));
		table_row(&t, 7, str(h, "listener"), str(h, "ja4"), str(h, "client"), n[0], n[1],
			  n[2], when(num(h, "last_seen"), b, sizeof(b)));
	}
	table_print(&t);
}

void out_explain(json_t *a)
{
	printf("listener %s, policy %s, cert set %s\n", str(a, "listener"), str(a, "policy"),
	       str(a, "set"));
	if (json_is_string(json_object_get(a, "note")))
		printf("note: %s\n", str(a, "note"));
	fputs(str(a, "text"), stdout);
}
