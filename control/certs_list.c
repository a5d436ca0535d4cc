/* certs list: the cert sets of the last good configuration (verbs.def). */
#include <stdio.h>
#include <time.h>

#include "ctl.h"
#include "tls.h"

/* "2026-03-01T12:00:00Z" */
static json_t *iso_time(long long t)
{
	char s[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm))
		return json_null();
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(s);
}

static json_t *names(char *const *n, unsigned k)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < k; i++)
		json_array_append_new(a, jline_str(n[i]));
	return a;
}

json_t *adm_certs_list(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	const struct tls_conf *tc = &ctl->cur.tc;
	json_t *sets = json_array();

	if (!sets)
		return jline_error("out of memory");
	for (unsigned i = 0; i < tc->n_sets; i++) {
		const struct tls_certset *s = tc->sets[i];
		json_t *certs = json_array(), *users = json_array();

		for (unsigned k = 0; k < s->n; k++) {
			const struct tls_cert *tc1 = &s->cert[k];

			json_array_append_new(certs, json_pack(
				"{s:s,s:o,s:o,s:I,s:o,s:I,s:o}",
				"kind", tc1->kind, "names", names(tc1->names, tc1->n_names),
				"not_after", iso_time(tc1->not_after),
				"not_after_s", (json_int_t)tc1->not_after,
				"not_before", iso_time(tc1->not_before),
				"days_left", (json_int_t)((tc1->not_after - (long long)time(NULL)) / 86400),
				"source", jline_str(tc1->source)));
		}
		for (unsigned l = 0; l < tc->c->n_listeners; l++)
			for (unsigned k = 0; k < tc->l[l].n_sets; k++)
				if (tc->l[l].set_ids[k] == i)
					json_array_append_new(users, jline_str(tc->c->listeners[l].name));
		json_array_append_new(sets, json_pack("{s:o,s:o,s:b,s:o,s:o}",
			"name", jline_str(s->name), "names", names(s->names, s->n_names),
			"generated", s->generated, "listeners", users, "certs", certs));
	}
	return json_pack("{s:b,s:o,s:o}", "ok", 1,
			 "config", jline_str(ctl->path ? ctl->path : "(embedded default)"),
			 "sets", sets);
}
