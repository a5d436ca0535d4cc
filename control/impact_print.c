/*
 * control/impact's results in words (impact.h): impact_print() for
 * `sluicectl certs check` and `policy check`, impact_fingerprints_print()
 * for `sluicectl fingerprints`. Reads only the JSON it is given.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "control/impact.h"
#include "control/impact_int.h"

/* "2027-12-04" for a Unix time. */
static const char *day(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d", &tm))
		snprintf(buf, len, "%lld", t);
	return buf;
}

/* "192.0.2.7, 198.51.100.9" of a clients array ("-" when empty). */
static void put_clients(FILE *f, const json_t *c)
{
	size_t i;
	const json_t *x;

	if (!json_array_size(c))
		fputc('-', f);
	json_array_foreach(c, i, x)
		fprintf(f, "%s%s", i ? ", " : "", json_string_value(x) ? json_string_value(x) : "?");
}

void impact_print(FILE *f, const json_t *r)
{
	const json_t *checked = json_object_get(r, "checked"), *o;
	size_t i;
	char d[32];

	fprintf(f, "checked %lld fingerprint%s, %lld handshake%s (%lld hello%s not readable)\n",
		jint(checked, "fingerprints"), jint(checked, "fingerprints") == 1 ? "" : "s",
		jint(checked, "handshakes"), jint(checked, "handshakes") == 1 ? "" : "s",
		jint(checked, "unparsed"), jint(checked, "unparsed") == 1 ? "" : "s");
	json_array_foreach(json_object_get(r, "changes"), i, o) {
		const char *what = jstr(o, "what");

		if (!strcmp(what, "cert")) {
			const json_t *old = json_object_get(o, "old"), *nw = json_object_get(o, "new");

			fprintf(f, "change: cert set %s, %s: %s", jstr(o, "set"), jstr(o, "key"),
				jstr(o, "change"));
			if (old)
				fprintf(f, "; old serial %s, notAfter %s", jstr(old, "serial"),
					day(jint(old, "not_after"), d, sizeof(d)));
			if (nw)
				fprintf(f, "; new serial %s, notAfter %s", jstr(nw, "serial"),
					day(jint(nw, "not_after"), d, sizeof(d)));
			fputc('\n', f);
		} else if (!strcmp(what, "policy")) {
			fprintf(f, "change: listener %s policy %s -> %s (network rules %lld -> %lld)\n",
				jstr(o, "listener"), jstr(o, "old"), jstr(o, "new"),
				jint(o, "old_rules"), jint(o, "new_rules"));
		} else {
			fprintf(f, "change: listener %s %s\n", jstr(o, "listener"), jstr(o, "change"));
		}
	}
	json_array_foreach(json_object_get(r, "summary"), i, o)
		fprintf(f, "BREAKS %s\n", jstr(o, "line"));
	json_array_foreach(json_object_get(r, "breaks"), i, o) {
		const json_t *c = json_object_get(o, "clients");

		fprintf(f, "  %s %s sni=%s count=%lld clients ", jstr(o, "listener"), jstr(o, "ja4"),
			*jstr(o, "sni") ? jstr(o, "sni") : "-", jint(o, "count"));
		put_clients(f, c);
		fprintf(f, ": now %s with %s (%s), after %s (%s): %s\n",
			jstr(o, "set_now"), jstr(o, "cert_now"), jstr(o, "policy_now"),
			jstr(o, "set_after"), jstr(o, "policy_after"), jstr(o, "reason"));
	}
	json_array_foreach(json_object_get(r, "refusals"), i, o)
		fprintf(f, "REFUSED %s\n", jstr(o, "line"));
	fprintf(f, "%s\n", json_is_true(json_object_get(r, "ok"))
		? "ok: no recorded client breaks, nothing refused"
		: "not ok: commit refuses this change without --force");
}

void impact_fingerprints_print(FILE *f, const json_t *rep)
{
	const json_t *o;
	size_t i;

	json_array_foreach(json_object_get(rep, "fingerprints"), i, o) {
		const json_t *v = json_object_get(o, "verdicts"), *c = json_object_get(o, "clients");
		const char *k;
		const json_t *x;

		fprintf(f, "%s %s sni=%s %s count=%lld ok=%lld fail=%lld policy=%s set=%s",
			jstr(o, "listener"), jstr(o, "ja4"), *jstr(o, "sni") ? jstr(o, "sni") : "-",
			jstr(o, "version"), jint(o, "count"), jint(o, "ok"), jint(o, "fail"),
			jstr(o, "policy"), jstr(o, "set"));
		json_object_foreach((json_t *)v, k, x)
			fprintf(f, " %s=%s", k, json_string_value(x));
		fputs(" clients ", f);
		put_clients(f, c);
		fputc('\n', f);
		if (json_object_get(o, "reason"))
			fprintf(f, "  fails: %s\n", jstr(o, "reason"));
	}
	if (jint(rep, "unparsed"))
		fprintf(f, "%lld recorded hello%s not readable (cut at 4 KiB)\n", jint(rep, "unparsed"),
			jint(rep, "unparsed") == 1 ? "" : "s");
}
