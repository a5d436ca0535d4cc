/*
 * Who would break, and what would change, if a staged configuration were
 * committed (impact.h). Every recorded ClientHello is parsed again
 * (tls/hello) and given to certificate selection (tls/certsel) twice: with
 * the cert set its SNI picks and the policy its address gets under the
 * running configuration, then under the staged one. A fingerprint that
 * gets a certificate now and none after is a break; the certsel rule that
 * fails after is the reason, in the words `sluice explain` uses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certsel.h"
#include "config.h"
#include "hello.h"
#include "control/impact.h"
#include "control/impact_int.h"
#include "tls.h"

#define IMPACT_SETS_MAX 64 /* cert sets of one listener we look at */
#define IMPACT_IPS_MAX 8   /* client addresses of one row we judge */

/* One row of the `hellos` answer, parsed. */
struct row {
	const char *listener, *ja4, *client;
	const char *ips[IMPACT_IPS_MAX]; /* distinct addresses: "clients", else client */
	unsigned n_ips;
	long long count, ok, fail, first_seen, last_seen;
	struct hello h;
};

/* What one configuration does for one hello. */
struct judged {
	bool ok;                    /* a certificate serves it */
	enum cfg_policy policy;
	unsigned set;               /* index among the listener's sets */
	const struct tls_certset *cs;
	struct certsel_verdict v;
};

/* ------------------------------------------------------------- input --- */

static int unhex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* hex into a malloc'd buffer; NULL when not hex (or out of memory). */
static uint8_t *unhex(const char *s, size_t *len)
{
	size_t n = strlen(s);
	uint8_t *b;

	if (n % 2 || !(b = malloc(n / 2 + 1)))
		return NULL;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = unhex_digit(s[2 * i]), lo = unhex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(b);
			return NULL;
		}
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return b;
}

/* The rows of hellos (the answer, or its array) in the window, parsed.
 * *unparsed counts those whose hello does not parse (cut, or empty).
 * Returns how many rows, or -ENOMEM. */
static int rows_load(const json_t *hellos, long long now_s, unsigned window_s,
		     struct row **out, unsigned *unparsed)
{
	const json_t *arr = json_is_array(hellos) ? hellos : json_object_get(hellos, "hellos");
	size_t n = json_array_size(arr), k = 0, i;
	const json_t *o;
	struct row *rows;

	*out = NULL;
	*unparsed = 0;
	if (!n)
		return 0;
	if (!(rows = calloc(n, sizeof(*rows))))
		return -ENOMEM;
	json_array_foreach(arr, i, o) {
		struct row *r = &rows[k];
		size_t len = 0;
		uint8_t *b;

		if (!json_is_object(o))
			continue;
		r->listener = jstr(o, "listener");
		r->ja4 = jstr(o, "ja4");
		r->client = jstr(o, "client");
		r->count = jint(o, "count");
		r->ok = jint(o, "ok");
		r->fail = jint(o, "fail");
		r->first_seen = jint(o, "first_seen");
		r->last_seen = jint(o, "last_seen");
		r->n_ips = 0;
		for (size_t c = 0; c < json_array_size(json_object_get(o, "clients")) &&
				   r->n_ips < IMPACT_IPS_MAX; c++) {
			const char *ip = json_string_value(json_array_get(json_object_get(o, "clients"), c));

			if (ip && *ip)
				r->ips[r->n_ips++] = ip;
		}
		if (!r->n_ips)
			r->ips[r->n_ips++] = r->client; /* "" when unknown: the listener's policy */
		if (window_s && r->last_seen < now_s - (long long)window_s)
			continue;
		b = unhex(jstr(o, "hello"), &len);
		if (!b || !len || hello_parse(b, len, &r->h, NULL) != HELLO_OK) {
			(*unparsed)++;
			free(b);
			continue;
		}
		free(b);
		k++;
	}
	*out = rows;
	return (int)k;
}

/* --------------------------------------------------------- judging --- */

/* Index of the listener called name in tc, or -1. */
static int listener_index(const struct tls_conf *tc, const char *name)
{
	for (unsigned i = 0; i < tc->c->n_listeners; i++)
		if (!strcmp(tc->c->listeners[i].name, name))
			return (int)i;
	return -1;
}

/* The cert sets of listener i, as tls_certset_for_sni() takes them. */
static unsigned listener_sets(const struct tls_conf *tc, unsigned i,
			      struct tls_certset *sets[IMPACT_SETS_MAX])
{
	unsigned n = tc->l[i].n_sets < IMPACT_SETS_MAX ? tc->l[i].n_sets : IMPACT_SETS_MAX;

	for (unsigned k = 0; k < n; k++)
		sets[k] = tls_conf_set(tc, i, k);
	return n;
}

/* A bare address into ss. */
static bool client_addr_bare(const char *a, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		return true;
	}
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return true;
	}
	return false;
}

/* "192.0.2.1", "2001:db8::1", or with a port as fmt_addr writes them
 * ("192.0.2.1:25", "[2001:db8::1]:25") into ss; false if none of these. */
static bool client_addr(const char *s, struct sockaddr_storage *ss)
{
	char a[INET6_ADDRSTRLEN + 1];
	const char *from = s, *end;
	size_t n;

	if (client_addr_bare(s, ss))
		return true;
	if (*s == '[')
		end = strchr(++from, ']');
	else
		end = strrchr(s, ':');
	if (!end || (n = (size_t)(end - from)) >= sizeof(a))
		return false;
	memcpy(a, from, n);
	a[n] = 0;
	return client_addr_bare(a, ss);
}

/* What listener i of tc does with hello h from client: the set its SNI
 * picks, the policy the client's network gets, certsel's verdict. */
static void judge(const struct tls_conf *tc, unsigned i, const struct hello *h,
		  const char *client, long long now_s, struct judged *j)
{
	struct tls_certset *sets[IMPACT_SETS_MAX];
	unsigned n = listener_sets(tc, i, sets);
	const struct cfg_listener *l = &tc->c->listeners[i];
	struct sockaddr_storage ss;

	memset(j, 0, sizeof(*j));
	j->policy = client_addr(client, &ss) ? cfg_policy_for(l, (struct sockaddr *)&ss)
					      : l->policy;
	if (!n) {
		j->v.rule = CERTSEL_R_NO_CERTS;
		return;
	}
	j->set = tls_certset_for_sni(sets, n, h);
	j->cs = sets[j->set];
	j->ok = certsel_choose(h, j->cs->sel, j->cs->n, tls_policy(j->policy), now_s, &j->v) == 0;
}

/* The failing rule of a verdict in words ("label: sentence (RFC)"). */
static void reason(const struct hello *h, const struct judged *j, char *buf, size_t len)
{
	if (!j->cs) {
		snprintf(buf, len, "no_certs: the listener holds no certificate");
		return;
	}
	certsel_reason(h, j->cs->sel, j->cs->n, tls_policy(j->policy), &j->v, -1, buf, len);
}

/* "24 h", "90 min", "2 d" for a window. */
static const char *window_words(unsigned s, char *buf, size_t len)
{
	if (!s)
		snprintf(buf, len, "recorded");
	else if (s % 86400 == 0 && s > 86400 * 2)
		snprintf(buf, len, "in the last %u d", s / 86400);
	else if (s % 3600 == 0)
		snprintf(buf, len, "in the last %u h", s / 3600);
	else if (s % 60 == 0)
		snprintf(buf, len, "in the last %u min", s / 60);
	else
		snprintf(buf, len, "in the last %u s", s);
	return buf;
}

static json_t *clients_of(const struct row *r)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < r->n_ips; i++)
		if (r->ips[i][0])
			json_array_append_new(a, json_string(r->ips[i]));
	return a;
}

/* The breaks of rows, with their summary by (listener, rule). */
static void find_breaks(const struct tls_conf *now, const struct tls_conf *staged,
			const struct row *rows, unsigned n, long long now_s, unsigned window_s,
			json_t *breaks, json_t *summary)
{
	char why[512], line[768], win[32];

	for (unsigned k = 0; k < n; k++) {
		const struct row *r = &rows[k];
		int a = listener_index(now, r->listener), b = listener_index(staged, r->listener);
		struct judged before, after, b1, a1;
		json_t *o, *ips = json_array();
		bool broke = false;

		if (!ips)
			continue;
		if (a < 0 || b < 0 || !now->l[a].n_sets || !staged->l[b].n_sets) {
			json_decref(ips);
			continue; /* a listener added, removed, or without TLS */
		}
		/* Each client address: a policy_by_network rule may give each
		 * its own policy, now or after. */
		for (unsigned c = 0; c < r->n_ips; c++) {
			judge(now, (unsigned)a, &r->h, r->ips[c], now_s, &b1);
			judge(staged, (unsigned)b, &r->h, r->ips[c], now_s, &a1);
			if (!b1.ok || a1.ok)
				continue;
			if (!broke) {
				before = b1;
				after = a1;
			}
			broke = true;
			if (r->ips[c][0])
				json_array_append_new(ips, json_string(r->ips[c]));
		}
		if (!broke) {
			json_decref(ips);
			continue;
		}
		reason(&r->h, &after, why, sizeof(why));
		o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:s, s:I, s:I, s:s, s:s, s:s, s:s, "
			      "s:s, s:s, s:s}",
			      "listener", r->listener, "ja4", r->ja4, "sni", r->h.sni,
			      "count", (json_int_t)r->count, "ok", (json_int_t)r->ok,
			      "fail", (json_int_t)r->fail, "clients", ips, "client", r->client,
			      "first_seen", (json_int_t)r->first_seen,
			      "last_seen", (json_int_t)r->last_seen,
			      "policy_now", cfg_policy_name(before.policy),
			      "policy_after", cfg_policy_name(after.policy),
			      "set_now", before.cs->name, "set_after", after.cs ? after.cs->name : "",
			      "cert_now", before.cs->cert[before.v.chosen].kind,
			      "rule", certsel_rule_label(after.v.rule), "reason", why);
		if (!o)
			continue;
		if (after.cs) { /* the whole reasoning, as `sluice explain` gives it */
			char *ex = malloc(8192);

			if (ex && certsel_explain(&r->h, after.cs->sel, after.cs->n,
						  tls_policy(after.policy), &after.v, ex, 8192) > 0)
				json_object_set_new(o, "explain", json_string(ex));
			free(ex);
		}
		json_array_append_new(breaks, o);
	}

	/* Grouped by listener and reason (the rule and its facts: two clients
	 * that fail the same rule for different groups are two lines), in the
	 * order first met. */
	size_t i, m;
	json_t *br, *g;

	json_array_foreach(breaks, i, br) {
		const char *l = jstr(br, "listener"), *rule = jstr(br, "rule");
		bool found = false;

		json_array_foreach(summary, m, g)
			if (!strcmp(jstr(g, "listener"), l) && !strcmp(jstr(g, "reason"), jstr(br, "reason"))) {
				json_object_set_new(g, "fingerprints", json_integer(jint(g, "fingerprints") + 1));
				json_object_set_new(g, "handshakes", json_integer(jint(g, "handshakes") +
										 jint(br, "count")));
				found = true;
				break;
			}
		if (!found)
			json_array_append_new(summary, json_pack("{s:s, s:s, s:i, s:I, s:s}",
							  "listener", l, "rule", rule,
							  "fingerprints", 1,
							  "handshakes", (json_int_t)jint(br, "count"),
							  "reason", jstr(br, "reason")));
	}
	json_array_foreach(summary, m, g) {
		long long fps = jint(g, "fingerprints"), hs = jint(g, "handshakes");
		const char *sentence = strchr(jstr(g, "reason"), ':');

		snprintf(line, sizeof(line), "listener %s: %lld fingerprint%s, %lld handshake%s %s, "
			 "would get no certificate: %s", jstr(g, "listener"), fps, fps == 1 ? "" : "s",
			 hs, hs == 1 ? "" : "s", window_words(window_s, win, sizeof(win)),
			 sentence ? sentence + 2 : jstr(g, "reason"));
		json_object_set_new(g, "line", json_string(line));
		json_object_del(g, "reason");
	}
}

/* ------------------------------------------------------- certificates --- */

/* The leaf's serial number in hex ("" when it cannot be read). */
static void leaf_serial(const struct tls_cert *tc, char *out, size_t len)
{
	BIO *b = BIO_new_mem_buf(tc->cert_pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIGNUM *bn = x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	snprintf(out, len, "%s", hex ? hex : "");
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
	BIO_free(b);
}

static json_t *names_json(char *const *names, unsigned n)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(names[i]));
	return a;
}

static json_t *cert_json(const struct tls_cert *tc)
{
	char serial[128];

	leaf_serial(tc, serial, sizeof(serial));
	return json_pack("{s:s, s:s, s:I, s:o}", "kind", tc->kind, "serial", serial,
			 "not_after", (json_int_t)tc->not_after,
			 "names", names_json(tc->names, tc->n_names));
}

static const struct tls_certset *set_by_name(const struct tls_conf *tc, const char *name)
{
	for (unsigned i = 0; i < tc->n_sets; i++)
		if (!strcmp(tc->sets[i]->name, name))
			return tc->sets[i];
	return NULL;
}

/* The certificate of key type t in set s, or NULL. */
static const struct tls_cert *cert_of(const struct tls_certset *s, enum tls_key_type t)
{
	for (unsigned i = 0; s && i < s->n; i++)
		if (s->cert[i].type == t)
			return &s->cert[i];
	return NULL;
}

/* Has the staged certificate b the same bytes as the running a? */
static bool same_cert(const struct tls_cert *a, const struct tls_cert *b)
{
	return a && b && !strcmp(a->cert_pem, b->cert_pem);
}

/* One certificate change of set: old replaced by nw (either may be NULL:
 * added, removed). The key is the new one's type ("ecdsa-p256 ->
 * ecdsa-p384" when a renewal changed it). */
static void cert_change(const char *set, const struct tls_cert *old, const struct tls_cert *nw,
			json_t *changes)
{
	char key[64];
	json_t *c = json_pack("{s:s, s:s, s:s}", "what", "cert", "set", set,
			      "change", !old ? "added" : !nw ? "removed" : "replaced");

	if (!c)
		return;
	if (old && nw && strcmp(old->kind, nw->kind))
		snprintf(key, sizeof(key), "%s -> %s", old->kind, nw->kind);
	else
		snprintf(key, sizeof(key), "%s", (nw ? nw : old)->kind);
	json_object_set_new(c, "key", json_string(key));
	if (old)
		json_object_set_new(c, "old", cert_json(old));
	if (nw)
		json_object_set_new(c, "new", cert_json(nw));
	json_array_append_new(changes, c);
}

/* A certificate the change brings that ends within the margin: refused. */
static void margin_check(const char *set, const struct tls_cert *nw, long long now_s,
			 unsigned margin_days, json_t *refusals)
{
	char line[512];
	long long days = (nw->not_after - now_s) / 86400;

	if (!margin_days || nw->not_after - now_s >= (long long)margin_days * 86400)
		return;
	snprintf(line, sizeof(line), "cert set %s: the %s certificate ends in %lld day%s, "
		 "within control.cert_margin_days (%u)", set, nw->kind, days, days == 1 ? "" : "s",
		 margin_days);
	json_array_append_new(refusals, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}",
		"kind", "expires_soon", "set", set, "cert", nw->kind,
		"not_after", (json_int_t)nw->not_after, "days", (json_int_t)days, "line", line));
}

/* The certificate changes, set by set, and the refusals of new
 * certificates that end within the margin. Within a set in both, one key
 * type gone and one come is one replacement (a renewal that changed curve
 * or key type); otherwise each key type on its own. */
static void cert_changes(const struct tls_conf *now, const struct tls_conf *staged,
			 long long now_s, unsigned margin_days, json_t *changes, json_t *refusals)
{
	for (unsigned i = 0; i < staged->n_sets; i++) {
		const struct tls_certset *s = staged->sets[i], *o = set_by_name(now, s->name);
		const struct tls_cert *gone[TLS_KEY__COUNT], *come[TLS_KEY__COUNT];
		unsigned n_gone = 0, n_come = 0;

		if (s->generated && (!o || o->generated))
			continue; /* self-signed, made at each load: not a change */
		for (unsigned t = 0; t < TLS_KEY__COUNT; t++) {
			const struct tls_cert *nw = cert_of(s, t), *old = cert_of(o, t);

			if ((!nw && !old) || same_cert(old, nw))
				continue;
			if (nw)
				margin_check(s->name, nw, now_s, margin_days, refusals);
			if (old && nw)
				cert_change(s->name, old, nw, changes);
			else if (old)
				gone[n_gone++] = old;
			else
				come[n_come++] = nw;
		}
		if (n_gone == 1 && n_come == 1) {
			cert_change(s->name, gone[0], come[0], changes);
			continue;
		}
		for (unsigned k = 0; k < n_gone; k++)
			cert_change(s->name, gone[k], NULL, changes);
		for (unsigned k = 0; k < n_come; k++)
			cert_change(s->name, NULL, come[k], changes);
	}
	/* Sets only the running configuration has. */
	for (unsigned i = 0; i < now->n_sets; i++) {
		const struct tls_certset *o = now->sets[i];

		if (set_by_name(staged, o->name) || o->generated)
			continue;
		for (unsigned k = 0; k < o->n; k++)
			cert_change(o->name, &o->cert[k], NULL, changes);
	}
}

/* The policy of every listener in both, and the listeners added or removed. */
static void listener_changes(const struct tls_conf *now, const struct tls_conf *staged,
			     json_t *changes)
{
	for (unsigned i = 0; i < staged->c->n_listeners; i++) {
		const struct cfg_listener *l = &staged->c->listeners[i];
		int a = listener_index(now, l->name);

		if (a < 0) {
			json_array_append_new(changes, json_pack("{s:s, s:s, s:s}", "what", "listener",
								 "listener", l->name, "change", "added"));
			continue;
		}
		const struct cfg_listener *o = &now->c->listeners[a];

		if (o->policy != l->policy || o->n_policy_rules != l->n_policy_rules)
			json_array_append_new(changes, json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}",
				"what", "policy", "listener", l->name,
				"old", cfg_policy_name(o->policy), "new", cfg_policy_name(l->policy),
				"old_rules", (int)o->n_policy_rules, "new_rules", (int)l->n_policy_rules));
	}
	for (unsigned i = 0; i < now->c->n_listeners; i++)
		if (listener_index(staged, now->c->listeners[i].name) < 0)
			json_array_append_new(changes, json_pack("{s:s, s:s, s:s}", "what", "listener",
				"listener", now->c->listeners[i].name, "change", "removed"));
}

/* ------------------------------------------------------------- names --- */

/* Does a certificate of the set that listener i of tc picks for name cover
 * it? A wildcard name ("*.example.net") is covered by the same wildcard. */
static bool name_covered(const struct tls_conf *tc, unsigned i, const char *name)
{
	struct tls_certset *sets[IMPACT_SETS_MAX];
	unsigned n = listener_sets(tc, i, sets);
	struct hello h;
	const struct tls_certset *s;

	if (!n)
		return false;
	memset(&h, 0, sizeof(h));
	snprintf(h.sni, sizeof(h.sni), "%s", name);
	h.sni_len = (uint16_t)strlen(h.sni);
	h.flags = HELLO_F_SNI;
	s = sets[tls_certset_for_sni(sets, n, &h)];
	for (unsigned c = 0; c < s->n; c++)
		for (unsigned k = 0; k < s->cert[c].n_names; k++) {
			const char *cn = s->cert[c].names[k];

			if (name[0] == '*' ? !strcasecmp(cn, name) : certsel_name_match(cn, name) > 0)
				return true;
		}
	return false;
}

/* Refuse name for listener l when covered now and not after (once per
 * listener and name: refusals already holding it are left alone). */
static void check_name(const struct tls_conf *now, const struct tls_conf *staged, unsigned a,
		       unsigned b, const char *name, const char *source, long long handshakes,
		       json_t *refusals)
{
	const char *l = now->c->listeners[a].name;
	size_t i;
	json_t *o;
	char line[512];

	if (!name[0] || !name_covered(now, a, name) || name_covered(staged, b, name))
		return;
	json_array_foreach(refusals, i, o)
		if (!strcmp(jstr(o, "kind"), "name_not_covered") && !strcmp(jstr(o, "listener"), l) &&
		    !strcasecmp(jstr(o, "name"), name))
			return;
	if (handshakes)
		snprintf(line, sizeof(line), "listener %s: %s (seen in %lld handshake%s) is covered "
			 "by a certificate now and would be by none after", l, name, handshakes,
			 handshakes == 1 ? "" : "s");
	else
		snprintf(line, sizeof(line), "listener %s: %s (%s) is covered by a certificate now "
			 "and would be by none after", l, name, source);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kind", "name_not_covered", "listener", l,
		      "name", name, "source", source, "line", line);
	if (o && handshakes)
		json_object_set_new(o, "handshakes", json_integer(handshakes));
	json_array_append_new(refusals, o);
}

/* The SNI names each listener's sets answer now, and those seen. */
static void names_refusals(const struct tls_conf *now, const struct tls_conf *staged,
			   const struct row *rows, unsigned n, json_t *refusals)
{
	for (unsigned a = 0; a < now->c->n_listeners; a++) {
		int b = listener_index(staged, now->c->listeners[a].name);
		struct tls_certset *sets[IMPACT_SETS_MAX];
		unsigned ns = listener_sets(now, a, sets);

		if (b < 0 || !staged->l[b].n_sets)
			continue;
		for (unsigned k = 0; k < n; k++) {
			long long hs = 0;

			if (strcmp(rows[k].listener, now->c->listeners[a].name) || !rows[k].h.sni_len)
				continue;
			for (unsigned m = 0; m < n; m++) /* the same name by other fingerprints */
				if (!strcmp(rows[m].listener, rows[k].listener) &&
				    !strcasecmp(rows[m].h.sni, rows[k].h.sni))
					hs += rows[m].count;
			check_name(now, staged, a, (unsigned)b, rows[k].h.sni, "seen", hs, refusals);
		}
		for (unsigned s = 0; s < ns; s++)
			for (unsigned k = 0; k < sets[s]->n_names; k++)
				check_name(now, staged, a, (unsigned)b, sets[s]->names[k], "configured",
					   0, refusals);
	}
}

/* --------------------------------------------------------------- API --- */

json_t *impact_check(const struct tls_conf *now, const struct tls_conf *staged,
		     const json_t *hellos, long long now_s, unsigned window_s,
		     unsigned margin_days)
{
	json_t *res = json_object(), *breaks = json_array(), *summary = json_array();
	json_t *refusals = json_array(), *changes = json_array();
	struct row *rows = NULL;
	unsigned unparsed = 0;
	long long hs = 0;
	int n = rows_load(hellos, now_s, window_s, &rows, &unparsed);

	if (!res || !breaks || !summary || !refusals || !changes || n < 0)
		goto fail;
	find_breaks(now, staged, rows, (unsigned)n, now_s, window_s, breaks, summary);
	cert_changes(now, staged, now_s, margin_days, changes, refusals);
	listener_changes(now, staged, changes);
	names_refusals(now, staged, rows, (unsigned)n, refusals);
	for (int k = 0; k < n; k++)
		hs += rows[k].count;
	json_object_set_new(res, "ok", json_boolean(!json_array_size(breaks) &&
						    !json_array_size(refusals)));
	json_object_set_new(res, "breaks", breaks);
	json_object_set_new(res, "summary", summary);
	json_object_set_new(res, "refusals", refusals);
	json_object_set_new(res, "changes", changes);
	json_object_set_new(res, "checked", json_pack("{s:i, s:I, s:i, s:i, s:i}",
		"fingerprints", n, "handshakes", (json_int_t)hs, "unparsed", (int)unparsed,
		"window_s", (int)window_s, "margin_days", (int)margin_days));
	free(rows);
	return res;
fail:
	free(rows);
	json_decref(res);
	json_decref(breaks);
	json_decref(summary);
	json_decref(refusals);
	json_decref(changes);
	return NULL;
}

json_t *impact_fingerprints(const struct tls_conf *now, const json_t *hellos, long long now_s)
{
	json_t *res = json_object(), *fps = json_array();
	struct row *rows = NULL;
	unsigned unparsed = 0;
	int n = rows_load(hellos, now_s, 0, &rows, &unparsed);
	char why[512], ver[16];

	if (!res || !fps || n < 0)
		goto fail;
	for (int k = 0; k < n; k++) {
		const struct row *r = &rows[k];
		int a = listener_index(now, r->listener);
		struct judged j;
		json_t *o, *verdicts;

		if (a < 0 || !now->l[a].n_sets)
			continue;
		judge(now, (unsigned)a, &r->h, r->client, now_s, &j);
		if (!(verdicts = json_object()))
			goto fail;
		for (unsigned p = 0; p < CFG_POLICY_COUNT && j.cs; p++) {
			struct certsel_verdict v;
			int rc = certsel_choose(&r->h, j.cs->sel, j.cs->n,
						tls_policy((enum cfg_policy)p), now_s, &v);

			json_object_set_new(verdicts, cfg_policy_name((enum cfg_policy)p),
					    json_string(rc == 0 ? "ok" : certsel_rule_label(v.rule)));
		}
		o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:I, s:I, s:s, s:s, s:o}",
			      "listener", r->listener, "ja4", r->ja4, "sni", r->h.sni,
			      "version", policy_version_name(r->h.version, ver, sizeof(ver)),
			      "count", (json_int_t)r->count, "ok", (json_int_t)r->ok,
			      "fail", (json_int_t)r->fail, "clients", clients_of(r),
			      "first_seen", (json_int_t)r->first_seen,
			      "last_seen", (json_int_t)r->last_seen,
			      "policy", cfg_policy_name(j.policy), "set", j.cs ? j.cs->name : "",
			      "verdicts", verdicts);
		if (!o)
			goto fail;
		if (!j.ok) {
			reason(&r->h, &j, why, sizeof(why));
			json_object_set_new(o, "reason", json_string(why));
		}
		json_array_append_new(fps, o);
	}
	json_object_set_new(res, "fingerprints", fps);
	json_object_set_new(res, "unparsed", json_integer(unparsed));
	free(rows);
	return res;
fail:
	free(rows);
	json_decref(res);
	json_decref(fps);
	return NULL;
}
