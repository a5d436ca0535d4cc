/*
 * tls/explain_input: a ClientHello from pasted hex or from fields.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "explain_input.h"
#include "policy.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ hex --- */

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static bool all_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (hexval((unsigned char)s[i]) < 0)
			return false;
	return n > 0;
}

/* A token's text for an error message: at most 16 characters. */
static void tok_err(char *err, size_t errlen, unsigned line, size_t col, const char *t,
		    size_t tl, const char *why)
{
	snprintf(err, errlen, "line %u, column %zu: '%.*s%s' %s", line, col,
		 (int)(tl > 16 ? 16 : tl), t, tl > 16 ? "..." : "", why);
}

struct unhex {
	uint8_t *out;
	size_t cap, n;
	char *err;
	size_t errlen;
};

/* Append the hex digits t[0, tl) (even count). */
static int put_hex(struct unhex *u, const char *t, size_t tl, unsigned line, size_t col)
{
	size_t i;

	if (tl % 2) {
		tok_err(u->err, u->errlen, line, col, t, tl, "has an odd number of hex digits");
		return -EINVAL;
	}
	for (i = 0; i < tl; i += 2) {
		if (u->n >= u->cap) {
			snprintf(u->err, u->errlen, "line %u: more than %zu bytes", line, u->cap);
			return -EINVAL;
		}
		u->out[u->n++] = (uint8_t)(hexval((unsigned char)t[i]) << 4 |
					   hexval((unsigned char)t[i + 1]));
	}
	return 0;
}

/*
 * A plain token: hex digits, possibly in pieces split by ':' ',' ';' or
 * "\x", each piece possibly with a 0x prefix.
 */
static int plain_token(struct unhex *u, const char *t, size_t tl, unsigned line, size_t col)
{
	size_t i = 0, s;

	while (i < tl) {
		if (strchr(":,;", t[i])) {
			i++;
			continue;
		}
		if (t[i] == '\\' && i + 1 < tl && (t[i + 1] | 0x20) == 'x') {
			i += 2;
			continue;
		}
		if (t[i] == '0' && i + 1 < tl && (t[i + 1] | 0x20) == 'x')
			i += 2;
		s = i;
		while (i < tl && hexval((unsigned char)t[i]) >= 0)
			i++;
		if (i == s || (i < tl && !strchr(":,;\\", t[i]))) {
			size_t e = i;

			while (e < tl && !strchr(":,;", t[e]))
				e++;
			tok_err(u->err, u->errlen, line, col + s, t + s, e > s ? e - s : 1,
				"is not a hex byte");
			return -EINVAL;
		}
		if (put_hex(u, t + s, i - s, line, col + s))
			return -EINVAL;
	}
	return 0;
}

/* Whether the first token of a dump line is an offset (see the header). */
static bool is_offset(const char *t, size_t tl, size_t gap, size_t count, size_t prev_width,
		      size_t *width)
{
	bool pfx = tl > 2 && t[0] == '0' && (t[1] | 0x20) == 'x', colon = tl && t[tl - 1] == ':';
	const char *d = t + (pfx ? 2 : 0);
	size_t dl = tl - (pfx ? 2 : 0) - (colon ? 1 : 0), i;
	unsigned long v = 0;

	if (dl < 4 || dl > 8 || !all_hex(d, dl))
		return false;
	for (i = 0; i < dl; i++)
		v = v << 4 | (unsigned long)hexval((unsigned char)d[i]);
	*width = dl;
	return pfx || colon || gap >= 2 || v == count || dl == prev_width;
}

int explain_unhex(const char *text, uint8_t *out, size_t cap, size_t *n, char *err, size_t errlen)
{
	struct unhex u = { out, cap, 0, err, errlen };
	const char *p = text, *eol;
	unsigned line = 0;
	size_t prev_width = 0;

	if (errlen)
		err[0] = 0;
	while (*p) {
		const char *q, *t;
		size_t tl, bytes = 0, width = 0, gap;
		bool dump = false, first = true;

		line++;
		eol = strchr(p, '\n');
		if (!eol)
			eol = p + strlen(p);
		for (q = p; q < eol;) {
			const char *ws = q;

			while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r'))
				q++;
			gap = (size_t)(q - ws) + (size_t)(q > ws && q[-1] == '\t') * 2;
			if (q == eol)
				break;
			t = q;
			while (q < eol && *q != ' ' && *q != '\t' && *q != '\r')
				q++;
			tl = (size_t)(q - t);
			if (first) {
				const char *r = q;
				size_t g;

				first = false;
				while (r < eol && (*r == ' ' || *r == '\t'))
					r++;
				g = (size_t)(r - q);
				if (r < eol && is_offset(t, tl, g, u.n, prev_width, &width)) {
					dump = true;
					continue;
				}
			}
			if (dump) {
				/* Bytes until 16 of them, a wide gap or a token that
				 * is not hex: then the ASCII column. */
				if (bytes >= 16 || (bytes && gap >= 3) || tl % 2 || tl > 8 ||
				    !all_hex(t, tl) || bytes + tl / 2 > 16)
					break;
				if (put_hex(&u, t, tl, line, (size_t)(t - p) + 1))
					return -EINVAL;
				bytes += tl / 2;
				continue;
			}
			if (plain_token(&u, t, tl, line, (size_t)(t - p) + 1))
				return -EINVAL;
		}
		prev_width = dump ? width : 0;
		p = *eol ? eol + 1 : eol;
	}
	if (!u.n) {
		snprintf(err, errlen, "no hex bytes in the input");
		return -EINVAL;
	}
	*n = u.n;
	return 0;
}

/* Where a TLS record carrying a ClientHello starts in a frame, or -1. */
static long find_record(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i + 6 <= n && i < 256; i++)
		if (b[i] == 0x16 && b[i + 1] == 0x03 && b[i + 2] <= 0x04 && b[i + 5] == 0x01 &&
		    (size_t)(b[i + 3] << 8 | b[i + 4]) > 0)
			return (long)i;
	return -1;
}

/* Wrap a bare handshake message into TLS records of at most 16384 bytes. */
static size_t wrap(const uint8_t *msg, size_t n, uint8_t *out, size_t cap)
{
	size_t o = 0, k;

	while (n && o + 5 < cap) {
		k = n > 16384 ? 16384 : n;
		if (o + 5 + k > cap)
			k = cap - o - 5;
		out[o++] = 0x16;
		out[o++] = 0x03;
		out[o++] = 0x01;
		out[o++] = (uint8_t)(k >> 8);
		out[o++] = (uint8_t)k;
		memcpy(out + o, msg, k);
		o += k;
		msg += k;
		n -= k;
	}
	return o;
}

/* hello_parse() with its answer in words. */
static int parse(const uint8_t *b, size_t n, struct hello *h, char *err, size_t errlen,
		 const char *what)
{
	char why[256];

	switch (hello_parse(b, n, h, NULL)) {
	case HELLO_OK:
		return 0;
	case HELLO_MORE:
		snprintf(err, errlen, "%s: the ClientHello is incomplete: %zu bytes given, at least "
			 "%zu needed (copy every TCP segment of it)", what, n, h->need);
		return -EINVAL;
	default:
		hello_explain(h, why, sizeof(why));
		snprintf(err, errlen, "%s: byte %zu: %s", what, h->err.offset, why);
		return -EINVAL;
	}
}

int explain_hex(const char *text, struct hello *h, char *err, size_t errlen)
{
	uint8_t raw[EXPLAIN_BYTES_MAX], rec[EXPLAIN_BYTES_MAX + 16];
	size_t n = 0;
	long at;
	int rc;

	if ((rc = explain_unhex(text, raw, sizeof(raw), &n, err, errlen)) < 0)
		return rc;
	if (raw[0] == 0x16)
		return parse(raw, n, h, err, errlen, "as a TLS record");
	if (raw[0] == 0x01 && n >= 4) {
		rc = parse(rec, wrap(raw, n, rec, sizeof(rec)), h, err, errlen,
			   "as a handshake message");
		return rc;
	}
	at = find_record(raw, n);
	if (at > 0) {
		rc = parse(raw + at, n - (size_t)at, h, err, errlen, "as a frame");
		if (!rc)
			snprintf(err, errlen, "skipped %ld bytes before the TLS record", at);
		return rc;
	}
	snprintf(err, errlen, "the bytes start with 0x%02x: neither a TLS handshake record "
		 "(0x16) nor a ClientHello message (0x01), and no record follows", raw[0]);
	return -EINVAL;
}

/* --------------------------------------------------------------- names --- */

/* A number: 0x hex, or decimal. */
static int number(const char *s, uint16_t *id)
{
	char *e;
	unsigned long v;

	if (!*s || !isdigit((unsigned char)*s))
		return -EINVAL;
	v = strtoul(s, &e, 0);
	if (*e || v > 0xffff)
		return -EINVAL;
	*id = (uint16_t)v;
	return 0;
}

int explain_suite_id(const char *name, uint16_t *id)
{
	const struct policy_suite *t;
	unsigned n, i;

	if (!number(name, id))
		return 0;
	if (!strcasecmp(name, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV")) {
		*id = 0x00ff;
		return 0;
	}
	if (!strcasecmp(name, "TLS_FALLBACK_SCSV")) {
		*id = 0x5600;
		return 0;
	}
	t = policy_suites(&n);
	for (i = 0; i < n; i++) {
		if (!strcasecmp(name, t[i].ossl) || !strcasecmp(name, t[i].iana)) {
			*id = t[i].id;
			return 0;
		}
	}
	return -EINVAL;
}

int explain_group_id(const char *name, uint16_t *id)
{
	static const struct { const char *alias; uint16_t id; } aliases[] = {
		{ "prime256v1", 0x0017 }, { "P256", 0x0017 }, { "P384", 0x0018 },
		{ "P521", 0x0019 },
	};
	const struct policy_group *t;
	unsigned n, i;

	if (!number(name, id))
		return 0;
	t = policy_groups(&n);
	for (i = 0; i < n; i++) {
		if (!strcasecmp(name, t[i].ossl) || !strcasecmp(name, t[i].iana)) {
			*id = t[i].id;
			return 0;
		}
	}
	for (i = 0; i < ARRAY_SIZE(aliases); i++) {
		if (!strcasecmp(name, aliases[i].alias)) {
			*id = aliases[i].id;
			return 0;
		}
	}
	return -EINVAL;
}

int explain_sigalg_id(const char *name, uint16_t *id)
{
	static const struct { const char *name; enum policy_sigfam f; } algs[] = {
		{ "RSA", POLICY_SIG_RSA }, { "RSA-PSS", POLICY_SIG_PSS_RSAE },
		{ "PSS", POLICY_SIG_PSS_RSAE }, { "ECDSA", POLICY_SIG_ECDSA }, { "DSA", POLICY_SIG_DSA },
	};
	static const struct { const char *name; enum policy_hash h; } hashes[] = {
		{ "SHA1", POLICY_HASH_SHA1 }, { "SHA224", POLICY_HASH_SHA224 },
		{ "SHA256", POLICY_HASH_SHA256 }, { "SHA384", POLICY_HASH_SHA384 },
		{ "SHA512", POLICY_HASH_SHA512 },
	};
	const struct policy_sigalg *t;
	const char *plus = strchr(name, '+');
	unsigned n, i, a, k;

	if (!number(name, id))
		return 0;
	t = policy_sigalgs(&n);
	for (i = 0; i < n; i++) {
		if (!strcasecmp(name, t[i].iana) || !strcasecmp(name, t[i].ossl)) {
			*id = t[i].id;
			return 0;
		}
	}
	if (!plus)
		return -EINVAL;
	/* OpenSSL's "ALG+HASH" form: in TLS 1.2 ECDSA+SHA256 is 0x0403. */
	for (a = 0; a < ARRAY_SIZE(algs); a++) {
		if (strlen(algs[a].name) != (size_t)(plus - name) ||
		    strncasecmp(name, algs[a].name, (size_t)(plus - name)))
			continue;
		for (k = 0; k < ARRAY_SIZE(hashes); k++) {
			if (strcasecmp(plus + 1, hashes[k].name))
				continue;
			for (i = 0; i < n; i++) {
				if (t[i].family == algs[a].f && t[i].hash == hashes[k].h) {
					*id = t[i].id;
					return 0;
				}
			}
		}
	}
	return -EINVAL;
}

int explain_version_id(const char *name, uint16_t *id)
{
	char b[16];
	size_t i, l = strlen(name);
	const char *s = b;

	if (l >= sizeof(b))
		return -EINVAL;
	if (!strncmp(name, "0x", 2))
		return number(name, id);
	for (i = 0; i <= l; i++)
		b[i] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
	if (!strcmp(b, "ssl3") || !strcmp(b, "sslv3") || !strcmp(b, "ssl3.0")) {
		*id = 0x0300;
		return 0;
	}
	if (!strncmp(s, "tlsv", 4))
		s += 4;
	else if (!strncmp(s, "tls", 3))
		s += 3;
	if (!strcmp(s, "1") || !strcmp(s, "1.0"))
		*id = 0x0301;
	else if (!strcmp(s, "1.1"))
		*id = 0x0302;
	else if (!strcmp(s, "1.2"))
		*id = 0x0303;
	else if (!strcmp(s, "1.3"))
		*id = 0x0304;
	else
		return -EINVAL;
	return 0;
}

/* ------------------------------------------------------------- fields --- */

#define FIELD_MAX 128   /* items in one field */

/*
 * Split a field at ',' or ':' into ids by lookup(); each item trimmed.
 * Returns 0, or -EINVAL naming the field, the item's number and text.
 */
static int items(const char *field, const char *s, int (*lookup)(const char *, uint16_t *),
		 const char *what, uint16_t *ids, unsigned *n, char *err, size_t errlen)
{
	char tok[96];
	unsigned k = 0;

	*n = 0;
	while (s && *s) {
		const char *e = s + strcspn(s, ",:");
		const char *a = s, *z = e;

		k++;
		while (a < z && isspace((unsigned char)*a))
			a++;
		while (z > a && isspace((unsigned char)z[-1]))
			z--;
		if (z == a || (size_t)(z - a) >= sizeof(tok)) {
			snprintf(err, errlen, "%s: item %u is %s", field, k,
				 z == a ? "empty" : "too long");
			return -EINVAL;
		}
		memcpy(tok, a, (size_t)(z - a));
		tok[z - a] = 0;
		if (*n >= FIELD_MAX) {
			snprintf(err, errlen, "%s: more than %d items", field, FIELD_MAX);
			return -EINVAL;
		}
		if (lookup(tok, &ids[*n])) {
			snprintf(err, errlen, "%s: item %u '%s' is not %s", field, k, tok, what);
			return -EINVAL;
		}
		(*n)++;
		s = *e ? e + 1 : e;
	}
	return 0;
}

static bool has_option(const char *opts, const char *o)
{
	size_t l = strlen(o);

	while (opts && *opts) {
		size_t k = strcspn(opts, ",: ");

		if (k == l && !strncasecmp(opts, o, l))
			return true;
		opts += k;
		opts += strspn(opts, ",: ");
	}
	return false;
}

static int check_options(const char *opts, char *err, size_t errlen)
{
	static const char *const known[] = { "fallback_scsv", "reneg_scsv", "ems",
		"no_key_share", "supported_versions" };
	unsigned i;

	while (opts && *opts) {
		size_t k = strcspn(opts, ",: ");

		for (i = 0; i < ARRAY_SIZE(known); i++)
			if (strlen(known[i]) == k && !strncasecmp(opts, known[i], k))
				break;
		if (k && i == ARRAY_SIZE(known)) {
			snprintf(err, errlen, "options: '%.*s' is not one of fallback_scsv, "
				 "reneg_scsv, ems, no_key_share, supported_versions", (int)k, opts);
			return -EINVAL;
		}
		opts += k;
		opts += strspn(opts, ",: ");
	}
	return 0;
}

/* A small writer over the output buffer. */
struct w {
	uint8_t *p;
	size_t cap, n;
	size_t at[6];
	unsigned wd[6];
	int depth;
	bool over;
};

static void w_u8(struct w *w, unsigned v)
{
	if (w->n < w->cap)
		w->p[w->n++] = (uint8_t)v;
	else
		w->over = true;
}

static void w_u16(struct w *w, unsigned v)
{
	w_u8(w, v >> 8);
	w_u8(w, v & 0xff);
}

static void w_open(struct w *w, unsigned width)
{
	unsigned i;

	w->at[w->depth] = w->n;
	w->wd[w->depth++] = width;
	for (i = 0; i < width; i++)
		w_u8(w, 0);
}

static void w_close(struct w *w)
{
	size_t at = w->at[--w->depth], wd = w->wd[w->depth], len, i;

	if (w->over)
		return;
	len = w->n - at - wd;
	for (i = 0; i < wd; i++)
		w->p[at + i] = (uint8_t)(len >> 8 * (wd - 1 - i));
}

static void w_list(struct w *w, unsigned type, unsigned lw, const uint16_t *v, unsigned n)
{
	unsigned i;

	w_u16(w, type);
	w_open(w, 2);
	w_open(w, lw);
	for (i = 0; i < n; i++)
		w_u16(w, v[i]);
	w_close(w);
	w_close(w);
}

static int check_sni(const char *s, char *err, size_t errlen)
{
	size_t i, l = strlen(s);

	if (!l || l > 253) {
		snprintf(err, errlen, "sni: '%s' must be 1 to 253 characters", s);
		return -EINVAL;
	}
	for (i = 0; i < l; i++) {
		if (!isalnum((unsigned char)s[i]) && !strchr(".-_", s[i])) {
			snprintf(err, errlen, "sni: character %zu of '%s' is not a host name character",
				 i + 1, s);
			return -EINVAL;
		}
	}
	return 0;
}

int explain_build(const struct explain_fields *f, uint8_t *out, size_t cap, size_t *n,
		  char *err, size_t errlen)
{
	uint16_t vers[FIELD_MAX], cs[FIELD_MAX + 2], gr[FIELD_MAX], ks[FIELD_MAX], sa[FIELD_MAX],
		 sac[FIELD_MAX], legacy = 0;
	unsigned nv, nc, ng = 0, nk = 0, ns = 0, nsc = 0, i, k;
	bool tls13 = false, sv;
	uint8_t msg[HELLO_MAX_MSG];
	struct w w = { msg, sizeof(msg), 0, { 0 }, { 0 }, 0, false };

	if (errlen)
		err[0] = 0;
	if (check_options(f->options, err, errlen))
		return -EINVAL;
	if (items("versions", f->versions ? f->versions : "tls1.2,tls1.3", explain_version_id,
		  "a protocol version (tls1.0 ... tls1.3)", vers, &nv, err, errlen))
		return -EINVAL;
	if (!nv) {
		snprintf(err, errlen, "versions: none given");
		return -EINVAL;
	}
	if (!f->ciphers || !*f->ciphers) {
		snprintf(err, errlen, "ciphers: none given");
		return -EINVAL;
	}
	if (items("ciphers", f->ciphers, explain_suite_id, "a cipher suite sluice knows (IANA or "
		  "OpenSSL name, or 0xNNNN)", cs, &nc, err, errlen) ||
	    items("groups", f->groups, explain_group_id, "a group (x25519, secp256r1, P-384, 23...)",
		  gr, &ng, err, errlen) ||
	    items("key_shares", f->key_shares, explain_group_id, "a group", ks, &nk, err, errlen) ||
	    items("sigalgs", f->sigalgs, explain_sigalg_id, "a signature scheme (IANA name, "
		  "ECDSA+SHA256, or 0xNNNN)", sa, &ns, err, errlen) ||
	    items("sigalgs_cert", f->sigalgs_cert, explain_sigalg_id, "a signature scheme",
		  sac, &nsc, err, errlen))
		return -EINVAL;
	if (f->groups && !ng) {
		snprintf(err, errlen, "groups: empty (leave it out to send no supported_groups)");
		return -EINVAL;
	}
	if (f->sni && check_sni(f->sni, err, errlen))
		return -EINVAL;
	for (i = 0; i < nv; i++) {
		tls13 |= vers[i] >= 0x0304;
		if (vers[i] > legacy)
			legacy = vers[i];
	}
	sv = tls13 || has_option(f->options, "supported_versions");
	if (legacy > 0x0303)
		legacy = 0x0303;
	if (has_option(f->options, "reneg_scsv"))
		cs[nc++] = 0x00ff;
	if (has_option(f->options, "fallback_scsv"))
		cs[nc++] = 0x5600;
	if (!nk && ng)
		ks[nk++] = gr[0];

	w_u8(&w, 1);                    /* client_hello */
	w_open(&w, 3);
	w_u16(&w, legacy);
	for (i = 0; i < 32; i++)
		w_u8(&w, 0x5a);         /* random */
	w_u8(&w, 32);                   /* a session id, as TLS 1.3 clients send */
	for (i = 0; i < 32; i++)
		w_u8(&w, 0x5b);
	w_open(&w, 2);
	for (i = 0; i < nc; i++)
		w_u16(&w, cs[i]);
	w_close(&w);
	w_u8(&w, 1);
	w_u8(&w, 0);                    /* null compression */
	w_open(&w, 2);
	if (f->sni) {
		w_u16(&w, 0);
		w_open(&w, 2);
		w_open(&w, 2);
		w_u8(&w, 0);
		w_open(&w, 2);
		for (i = 0; f->sni[i]; i++)
			w_u8(&w, (uint8_t)f->sni[i]);
		w_close(&w);
		w_close(&w);
		w_close(&w);
	}
	if (ng) {
		w_list(&w, 10, 2, gr, ng);
		w_u16(&w, 11);          /* ec_point_formats: uncompressed */
		w_u16(&w, 2);
		w_u8(&w, 1);
		w_u8(&w, 0);
	}
	if (ns)
		w_list(&w, 13, 2, sa, ns);
	if (nsc)
		w_list(&w, 50, 2, sac, nsc);
	if (has_option(f->options, "ems")) {
		w_u16(&w, 23);
		w_u16(&w, 0);
	}
	if (sv) {
		w_u16(&w, 43);
		w_open(&w, 2);
		w_open(&w, 1);
		for (i = 0; i < nv; i++)
			w_u16(&w, vers[i]);
		w_close(&w);
		w_close(&w);
	}
	if (tls13 && !has_option(f->options, "no_key_share")) {
		w_u16(&w, 51);
		w_open(&w, 2);
		w_open(&w, 2);
		for (i = 0; i < nk; i++) {
			w_u16(&w, ks[i]);
			w_u16(&w, 32);  /* the share's content is not read */
			for (k = 0; k < 32; k++)
				w_u8(&w, 0x4b);
		}
		w_close(&w);
		w_close(&w);
	}
	w_close(&w);                    /* extensions */
	w_close(&w);                    /* handshake */
	if (w.over) {
		snprintf(err, errlen, "the ClientHello would exceed %zu bytes", sizeof(msg));
		return -EINVAL;
	}
	*n = wrap(msg, w.n, out, cap);
	if (*n < w.n + 5) {
		snprintf(err, errlen, "output buffer of %zu bytes too small", cap);
		return -EINVAL;
	}
	return 0;
}

int explain_fields(const struct explain_fields *f, struct hello *h, char *err, size_t errlen)
{
	uint8_t b[EXPLAIN_BYTES_MAX];
	size_t n;

	if (explain_build(f, b, sizeof(b), &n, err, errlen))
		return -EINVAL;
	return parse(b, n, h, err, errlen, "fields");
}
