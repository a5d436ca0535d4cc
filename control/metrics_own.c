/* sluice-control's own metric families (metrics_own.h). */
#include <time.h>

#include "ctl.h"
#include "metrics_own.h"
#include "tickets.h"
#include "tls.h"

enum {
#define M(id, name, type, help) MO_##id,
#include "metrics_own.def"
#undef M
	MO__COUNT
};

static const struct {
	const char *name, *type, *help;
} fam[MO__COUNT] = {
#define M(id, name, type, help) [MO_##id] = { name, type, help },
#include "metrics_own.def"
#undef M
};

/* The label `type`: the words of sluice_tls_certificates_total. */
static const char *const key_type[TLS_KEY__COUNT] = {
	[TLS_KEY_ECDSA_P256] = "ecdsa_p256",
	[TLS_KEY_ED25519] = "ed25519",
	[TLS_KEY_ECDSA_P384] = "ecdsa_p384",
	[TLS_KEY_RSA] = "rsa",
};

void metrics_label_value(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '"')
			fputs("\\\"", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void head(FILE *f, int id)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam[id].name, fam[id].help, fam[id].name,
		fam[id].type);
}

/* One sample per certificate of the running configuration (certs_list.c's
 * view: what was proved loadable, so notAfter is the file's). */
static void certs(FILE *f, const struct ctl *ctl)
{
	const struct tls_conf *tc = &ctl->cur.tc;

	head(f, MO_CERT_NOT_AFTER);
	for (unsigned i = 0; i < tc->n_sets; i++) {
		const struct tls_certset *s = tc->sets[i];

		for (unsigned k = 0; k < s->n; k++) {
			const struct tls_cert *c = &s->cert[k];

			fprintf(f, "%s{set=\"", fam[MO_CERT_NOT_AFTER].name);
			metrics_label_value(f, s->name);
			fprintf(f, "\",type=\"%s\",names=\"",
				c->type < TLS_KEY__COUNT ? key_type[c->type] : "other");
			for (unsigned n = 0; n < c->n_names; n++) {
				if (n)
					fputc(',', f);
				metrics_label_value(f, c->names[n]);
			}
			fprintf(f, "\"} %lld\n", c->not_after);
		}
	}
}

/* The sealing key of sluice-control's ring; none with a key file or
 * tickets off (the dataplane's own keys then, not this process's). */
static void ticket_age(FILE *f)
{
	json_t *show = tk_ring_show(), *keys = json_object_get(show, "keys"), *k;
	size_t i;

	head(f, MO_TICKET_KEY_AGE);
	json_array_foreach(keys, i, k)
		if (json_is_true(json_object_get(k, "sealing"))) {
			fprintf(f, "%s %lld\n", fam[MO_TICKET_KEY_AGE].name,
				(long long)json_integer_value(json_object_get(k, "age_s")));
			break;
		}
	json_decref(show);
}

/* The reloads sluice-control ran: the dataplane's own families count only
 * what reached it, and the commonest bad reload (a YAML error, a missing
 * key file) is refused here before it does. */
static void reloads(FILE *f, const struct ctl *ctl)
{
	head(f, MO_CTL_RELOADS);
	fprintf(f, "%s{result=\"ok\"} %lu\n", fam[MO_CTL_RELOADS].name, ctl->last.n_ok);
	fprintf(f, "%s{result=\"failed\"} %lu\n", fam[MO_CTL_RELOADS].name, ctl->last.n_failed);
	head(f, MO_CTL_LAST_OK);
	fprintf(f, "%s %d\n", fam[MO_CTL_LAST_OK].name, !ctl->last.any || ctl->last.ok);
	head(f, MO_CTL_LAST_TIME);
	fprintf(f, "%s %lld\n", fam[MO_CTL_LAST_TIME].name,
		ctl->last.any ? ctl->last.time : ctl->started);
}

void metrics_own_write(FILE *f, const struct ctl *ctl, bool dp_up)
{
	head(f, MO_DATAPLANE_UP);
	fprintf(f, "%s %d\n", fam[MO_DATAPLANE_UP].name, dp_up);
	certs(f, ctl);
	ticket_age(f);
	head(f, MO_TICKET_EXPORT_ERRORS);
	fprintf(f, "%s %lu\n", fam[MO_TICKET_EXPORT_ERRORS].name, ctl->tickets_export_errors);
	reloads(f, ctl);
}
