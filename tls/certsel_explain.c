/*
 * tls/certsel in words: the rules of certsel_rules.def with the client's,
 * the certificate's and the policy's facts, for `sluice explain` and logs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "certsel_int.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

const struct certsel_rule_info certsel_rules[CERTSEL_R_COUNT] = {
#define R(name, label, kind, group, rfc, sentence, fix, ossl) \
	[CERTSEL_R_##name] = { label, rfc, sentence, fix, ossl, CERTSEL_##kind },
#include "certsel_rules.def"
#undef R
};

const char *certsel_rule_label(enum certsel_rule r)
{
	return (unsigned)r < CERTSEL_R_COUNT ? certsel_rules[r].label : "?";
}

enum certsel_kind certsel_rule_kind(enum certsel_rule r)
{
	return (unsigned)r < CERTSEL_R_COUNT ? certsel_rules[r].kind : CERTSEL_FAIL;
}

const char *certsel_rule_rfc(enum certsel_rule r)
{
	return (unsigned)r < CERTSEL_R_COUNT ? certsel_rules[r].rfc : "";
}

const char *certsel_rule_openssl(enum certsel_rule r)
{
	return (unsigned)r < CERTSEL_R_COUNT ? certsel_rules[r].ossl : "";
}

/* ------------------------------------------------------------- in words --- */

/* An snprintf that appends and keeps counting past the end. */
struct out {
	char *buf;
	size_t len, pos;
};

__attribute__((format(printf, 2, 3)))
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(o->pos < o->len ? o->buf + o->pos : NULL,
		      o->pos < o->len ? o->len - o->pos : 0, fmt, ap);
	va_end(ap);
	if (k > 0)
		o->pos += (size_t)k;
}

/* What a sentence is about. */
struct about {
	const struct hello *h;
	const struct policy *p;
	const struct certsel_cert *ct;    /* NULL: the hello itself */
	const struct certsel_result *r;   /* NULL likewise */
};

static void put_suite(struct out *o, uint16_t id)
{
	const struct policy_suite *s = policy_suite(id);

	if (s)
		put(o, "%s", s->ossl);
	else
		put(o, "0x%04x", id);
}

static void put_group(struct out *o, uint16_t id)
{
	const struct policy_group *g = policy_group(id);

	if (g)
		put(o, "%s", g->iana);
	else
		put(o, "0x%04x", id);
}

static void put_sigalg(struct out *o, uint16_t id)
{
	const struct policy_sigalg *s = policy_sigalg(id);

	if (id == CERTSEL_SIG_RSA_MD5_SHA1)
		put(o, "rsa_pkcs1_md5_sha1");
	else if (s)
		put(o, "%s", s->iana);
	else
		put(o, "0x%04x", id);
}

static void put_version(struct out *o, uint16_t v)
{
	char b[16];

	put(o, "%s", policy_version_name(v, b, sizeof(b)));
}

/* A client list without GREASE, at most 10 names; put_one names one. */
static void put_list(struct out *o, const uint16_t *l, unsigned n, unsigned sent,
		     void (*put_one)(struct out *, uint16_t), int only13)
{
	unsigned i, k = 0, more = sent > n ? sent - n : 0;

	for (i = 0; i < n; i++) {
		if (hello_is_grease(l[i]) || l[i] == 0x00ff || l[i] == 0x5600)
			continue;
		if (only13 >= 0 && ((l[i] >> 8) == 0x13) != (only13 > 0))
			continue;
		if (k == 10) {
			more++;
			continue;
		}
		put(o, "%s", k++ ? ", " : "");
		put_one(o, l[i]);
	}
	if (!k)
		put(o, "none");
	if (more)
		put(o, " and %u more", more);
}

static bool is13(const struct about *a)
{
	return a->r && a->r->version >= TLSV_1_3;
}

/* The schemes of the policy that a key could sign with at the version. */
static void put_schemes(struct out *o, const struct about *a)
{
	unsigned i, k = 0;

	for (i = 0; a->ct && i < a->p->n_sigalgs; i++) {
		const struct policy_sigalg *s = policy_sigalg(a->p->sigalg_ids[i]);

		if (!s || !certsel_fam_fits_key(s->family, a->ct->key))
			continue;
		if (is13(a) && (s->family == POLICY_SIG_RSA || s->hash == POLICY_HASH_SHA1 ||
				(s->family == POLICY_SIG_ECDSA && s->curve != certsel_key_curve(a->ct->key))))
			continue;
		put(o, "%s%s", k++ ? ", " : "", s->iana);
	}
	if (!k)
		put(o, "none");
}

/* The key types the client's signature_algorithms (and the policy) allow. */
static void put_client_keys(struct out *o, const struct about *a)
{
	static const enum certsel_key keys[] = { CERTSEL_KEY_P256, CERTSEL_KEY_P384,
		CERTSEL_KEY_P521, CERTSEL_KEY_ED25519, CERTSEL_KEY_RSA };
	unsigned i, j, k = 0;
	char b[24];

	for (i = 0; i < ARRAY_SIZE(keys); i++) {
		for (j = 0; j < a->h->sigalgs.kept; j++) {
			const struct policy_sigalg *s = policy_sigalg(a->h->sigalgs.v[j]);

			if (!s || !certsel_fam_fits_key(s->family, keys[i]) || !policy_has_sigalg(a->p, s->id))
				continue;
			if (is13(a) && (s->family == POLICY_SIG_RSA ||
					(s->family == POLICY_SIG_ECDSA && s->curve != certsel_key_curve(keys[i]))))
				continue;
			break;
		}
		if (j < a->h->sigalgs.kept)
			put(o, "%s%s", k++ ? ", " : "",
			    keys[i] == CERTSEL_KEY_RSA ? "RSA" : certsel_key_name(keys[i], 0, b, sizeof(b)));
	}
	if (!k)
		put(o, "none that policy %s allows", a->p->name);
}

static void put_date(struct out *o, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char b[32];

	if (gmtime_r(&tt, &tm) && strftime(b, sizeof(b), "%Y-%m-%d %H:%M UTC", &tm))
		put(o, "%s", b);
	else
		put(o, "%lld", (long long)t);
}

/* Expand one {name} of a rule's template. */
static void fact(struct out *o, const char *n, size_t nl, const struct about *a)
{
	const struct hello *h = a->h;
	const struct policy *p = a->p;
	const struct certsel_cert *ct = a->ct;
	uint16_t about = a->r ? a->r->about : 0;
	char b[32];

#define IS(s) (nl == sizeof(s) - 1 && !memcmp(n, s, nl))
	if (IS("policy")) {
		put(o, "%s", p->name);
	} else if (IS("policy_versions")) {
		put_version(o, p->min_version);
		if (p->max_version != p->min_version) {
			put(o, " to ");
			put_version(o, p->max_version);
		} else {
			put(o, " only");
		}
	} else if (IS("max_version")) {
		put_version(o, p->max_version);
	} else if (IS("version")) {
		put_version(o, a->r ? a->r->version : h->version);
	} else if (IS("client_versions")) {
		if (h->flags & HELLO_F_SUPPORTED_VERSIONS) {
			put_list(o, h->versions.v, h->versions.kept, h->versions.n, put_version, -1);
		} else {
			put(o, "up to ");
			put_version(o, h->legacy_version);
			put(o, " (client_version; no supported_versions)");
		}
	} else if (IS("legacy_version")) {
		put(o, "0x%04x", h->legacy_version);
	} else if (IS("level")) {
		put(o, "%d", p->seclevel);
	} else if (IS("minbits")) {
		put(o, "%d", policy_level_bits(p->seclevel));
	} else if (IS("bits") && ct) {
		put(o, "%d", certsel_key_secbits(ct));
	} else if (IS("key") && ct) {
		put(o, "%s", certsel_key_name(ct->key, ct->bits, b, sizeof(b)));
	} else if (IS("curve") && ct) {
		put_group(o, certsel_key_curve(ct->key));
	} else if (IS("issuer_sig") && ct) {
		put_sigalg(o, ct->issuer_sig);
	} else if (IS("needed") && ct) {
		put(o, ct->key == CERTSEL_KEY_RSA ? "an ECDSA certificate" : "an RSA certificate");
	} else if (IS("suite")) {
		put_suite(o, about);
	} else if (IS("group")) {
		put_group(o, about);
	} else if (IS("client_suites")) {
		put_list(o, h->ciphers.v, h->ciphers.kept, h->ciphers.n, put_suite, is13(a));
	} else if (IS("policy_suites")) {
		put_list(o, p->suites, p->n_suites, p->n_suites, put_suite, is13(a));
	} else if (IS("client_groups")) {
		if (h->groups.n)
			put_list(o, h->groups.v, h->groups.kept, h->groups.n, put_group, -1);
		else
			put(o, "no supported_groups");
	} else if (IS("policy_groups")) {
		put_list(o, p->group_ids, p->n_groups, p->n_groups, put_group, -1);
	} else if (IS("client_sigalgs")) {
		put_list(o, h->sigalgs.v, h->sigalgs.kept, h->sigalgs.n, put_sigalg, -1);
	} else if (IS("client_sigalgs_cert")) {
		put_list(o, h->sigalgs_cert.v, h->sigalgs_cert.kept, h->sigalgs_cert.n, put_sigalg, -1);
	} else if (IS("policy_sigalgs")) {
		put_list(o, p->sigalg_ids, p->n_sigalgs, p->n_sigalgs, put_sigalg, -1);
	} else if (IS("schemes")) {
		put_schemes(o, a);
	} else if (IS("client_key_types")) {
		put_client_keys(o, a);
	} else if (IS("ecdsa_fix")) {
		if (h->groups.n && certsel_has(h->groups.v, h->groups.kept, 0x0017))
			put(o, "an RSA or a P-256 certificate");
		else if (h->groups.n && certsel_has(h->groups.v, h->groups.kept, 0x0018))
			put(o, "an RSA or a P-384 certificate");
		else
			put(o, "an RSA certificate (the client names no curve for an ECDSA key)");
	} else if (IS("sni")) {
		put(o, "%s", h->sni_len ? h->sni : "(no SNI)");
	} else if (IS("not_after") && ct) {
		put_date(o, ct->not_after);
	} else if (IS("not_before") && ct) {
		put_date(o, ct->not_before);
	} else if (IS("compression")) {
		put(o, "%u", h->compression_n);
	} else if (IS("sha1_why")) {
		put(o, a->r && a->r->version < TLSV_1_2 ? "there are no signature_algorithms"
						       : "the client sends no signature_algorithms");
	} else if (IS("sha1_hash")) {
		put(o, ct && ct->key == CERTSEL_KEY_RSA && a->r && a->r->version < TLSV_1_2
			       ? "MD5+SHA-1" : "SHA-1");
	} else {
		put(o, "{%.*s}", (int)nl, n);
	}
#undef IS
}

/* A rule's template with its facts. */
static void expand(struct out *o, const char *t, const struct about *a)
{
	const char *e;

	while (*t) {
		if (*t == '{' && (e = strchr(t, '}'))) {
			fact(o, t + 1, (size_t)(e - t - 1), a);
			t = e + 1;
			continue;
		}
		e = strchr(t, '{');
		if (!e)
			e = t + strlen(t);
		put(o, "%.*s", (int)(e - t), t);
		t = e;
	}
}

/* "label [RFC]: sentence" and, on a line of its own, the fix. */
static void put_rule(struct out *o, enum certsel_rule r, const struct about *a, const char *indent)
{
	put(o, "%s", certsel_rules[r].label);
	if (*certsel_rules[r].rfc)
		put(o, " [%s]", certsel_rules[r].rfc);
	put(o, ": ");
	expand(o, certsel_rules[r].sentence, a);
	if (*certsel_rules[r].fix) {
		put(o, "\n%sfix: ", indent);
		expand(o, certsel_rules[r].fix, a);
	}
}

static void put_cert_name(struct out *o, const struct certsel_cert *certs, int i)
{
	char b[24];

	put(o, "cert %d", i);
	if (certs[i].label)
		put(o, " %s", certs[i].label);
	put(o, " (%s)", certsel_key_name(certs[i].key, certs[i].bits, b, sizeof(b)));
}

static void put_success(struct out *o, const struct certsel_result *r)
{
	put_version(o, r->version);
	put(o, ", ");
	put_suite(o, r->suite);
	if (r->group) {
		put(o, ", group ");
		put_group(o, r->group);
		if (r->hrr)
			put(o, " after HelloRetryRequest");
	}
	put(o, ", signature ");
	if (r->sigalg)
		put_sigalg(o, r->sigalg);
	else
		put(o, "none (RSA key exchange)");
}

static void put_notes(struct out *o, uint64_t notes, const struct about *a)
{
	unsigned k;

	for (k = 0; k < CERTSEL_R_COUNT; k++) {
		if (!(notes & (1ull << k)))
			continue;
		put(o, "    %s ", certsel_rules[k].kind == CERTSEL_WARN ? "warn" : "note");
		put_rule(o, k, a, "      ");
		put(o, "\n");
	}
}

int certsel_explain(const struct hello *h, const struct certsel_cert *certs, unsigned n,
		    const struct policy *p, const struct certsel_verdict *v,
		    char *buf, size_t len)
{
	struct out o = { buf, len, 0 };
	struct about a = { h, p, NULL, NULL };
	unsigned i;

	if (len)
		buf[0] = 0;
	put(&o, "client: versions ");
	fact(&o, "client_versions", 15, &a);
	put(&o, "; suites ");
	put_list(&o, h->ciphers.v, h->ciphers.kept, h->ciphers.n, put_suite, -1);
	put(&o, "; groups ");
	fact(&o, "client_groups", 13, &a);
	if (h->flags & HELLO_F_KEY_SHARE) {
		put(&o, "; key shares ");
		put_list(&o, h->key_shares.v, h->key_shares.kept, h->key_shares.n, put_group, -1);
	}
	put(&o, "; signature_algorithms ");
	put_list(&o, h->sigalgs.v, h->sigalgs.kept, h->sigalgs.n, put_sigalg, -1);
	if (h->sigalgs_cert.n) {
		put(&o, "; signature_algorithms_cert ");
		put_list(&o, h->sigalgs_cert.v, h->sigalgs_cert.kept, h->sigalgs_cert.n, put_sigalg, -1);
	}
	put(&o, "; SNI %s\n", h->sni_len ? h->sni : "(none)");
	put(&o, "policy %s: ", p->name);
	fact(&o, "policy_versions", 15, &a);
	put(&o, ", security level %d\n", p->seclevel);

	for (i = 0; i < n && i < v->n; i++) {
		const struct certsel_result *r = &v->cert[i];

		a.ct = &certs[i];
		a.r = r;
		put_cert_name(&o, certs, (int)i);
		if (r->rule == CERTSEL_R_OK) {
			put(&o, ": OK ");
			put_success(&o, r);
		} else {
			put(&o, ": FAIL ");
			put_rule(&o, r->rule, &a, "    ");
		}
		put(&o, "\n");
		put_notes(&o, r->notes, &a);
		if (r->rule == CERTSEL_R_OK && r->considered && v->chosen >= 0 && v->chosen != (int)i)
			put(&o, "    note: works, but cert %d comes first (validity, preference, then cheaper signer)\n",
			    v->chosen);
	}
	a.ct = NULL;
	a.r = NULL;
	put_notes(&o, v->notes, &a);
	put(&o, "verdict: ");
	if (v->chosen >= 0) {
		put_cert_name(&o, certs, v->chosen);
		put(&o, ": ");
		put_success(&o, &v->cert[v->chosen]);
	} else {
		if (v->rule_cert >= 0) {
			a.ct = &certs[v->rule_cert];
			a.r = &v->cert[v->rule_cert];
			put(&o, "FAIL (closest: ");
			put_cert_name(&o, certs, v->rule_cert);
			put(&o, ") ");
		} else {
			put(&o, "FAIL ");
		}
		put_rule(&o, v->rule, &a, "    ");
	}
	put(&o, "\n");
	return (int)o.pos;
}

int certsel_reason(const struct hello *h, const struct certsel_cert *certs, unsigned n,
		   const struct policy *p, const struct certsel_verdict *v, int i,
		   char *buf, size_t len)
{
	struct out o = { buf, len, 0 };
	struct about a = { h, p, NULL, NULL };
	enum certsel_rule r = v->rule;

	if (len)
		buf[0] = 0;
	if (i < 0)
		i = v->rule_cert;
	if (i >= 0 && (unsigned)i < n && (unsigned)i < v->n) {
		a.ct = &certs[i];
		a.r = &v->cert[i];
		r = v->cert[i].rule;
	}
	put(&o, "%s: ", certsel_rules[r].label);
	expand(&o, certsel_rules[r].sentence, &a);
	if (*certsel_rules[r].rfc)
		put(&o, " (%s)", certsel_rules[r].rfc);
	return (int)o.pos;
}
