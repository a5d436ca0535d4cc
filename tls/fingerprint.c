/*
 * JA3 and JA4 client fingerprints of a parsed ClientHello, from the full
 * lists (see fingerprint.h). The strings are streamed into their digests as
 * they are written, so a list of any length costs no more than its bytes.
 *
 * JA3 (salesforce/ja3 README and python/ja3.py):
 *   "SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats"
 *   in decimal, values joined by '-', in wire order, GREASE left out; the
 *   fingerprint is the string's MD5. SSLVersion is client_version. A hello
 *   without extensions gives "769,4-5-10,,,".
 *
 * JA4 (FoxIO-LLC/ja4 technical_details/JA4.md), "t13d1516h2_<b>_<c>":
 *   t; the version (highest supported_versions, else client_version:
 *   13 12 11 10 s3 s2, 00 unknown); d if a server_name extension is there,
 *   else i; cipher and extension counts (GREASE left out, at most 99); the
 *   first and last characters of the first ALPN protocol (00 without ALPN;
 *   hex digits when either is not alphanumeric); <b> the first 12 hex digits
 *   of the SHA-256 of the sorted cipher list ("002f,0035,..."); <c> the same
 *   of the sorted extension list without server_name (0000) and ALPN (0010),
 *   then "_" and the signature algorithms in wire order (no "_" without
 *   any). An empty list hashes to "000000000000". GREASE is left out
 *   everywhere, signature algorithms included (JA4.md: "ignore GREASE values
 *   anywhere"; FoxIO-LLC/ja4 issues 60 and 305).
 *
 * SSLv2 CLIENT-HELLOs: their 3-byte cipher specs 0x00XXXX count as the TLS
 * suite 0xXXXX, the others (SSLv2-only ciphers) are left out of both; they
 * have no extensions. Neither spec says more about them.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "fingerprint.h"

/* Text going into a digest and, if s is set, into a bounded string. */
struct sink {
	EVP_MD_CTX *md;        /* NULL once the digest failed */
	char *s;               /* the string kept (NUL-terminated), or NULL */
	size_t cap, len;
	bool trunc;            /* s holds only the start */
	size_t total;          /* bytes written in all */
	size_t n;              /* bytes batched in buf for the digest */
	unsigned char buf[256];
};

/*
 * MD5 and SHA-256, fetched once for the process. EVP_md5() and
 * EVP_sha256() are OpenSSL 3's legacy handles: each EVP_DigestInit_ex with
 * one fetches the implementation again (a lock, a hash lookup and name
 * compares), three times per ClientHello. A fetched EVP_MD is immutable
 * and may be shared by threads; it is kept to the end (never freed: a
 * core may still be reading a hello when another thread would free it).
 */
static EVP_MD *fp_md5, *fp_sha256;
static pthread_once_t fp_md_once = PTHREAD_ONCE_INIT;

static void fp_md_fetch(void)
{
	fp_md5 = EVP_MD_fetch(NULL, "MD5", NULL);
	fp_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* The fetched digest, or the legacy handle if the fetch failed. */
static const EVP_MD *fp_md(bool sha256)
{
	pthread_once(&fp_md_once, fp_md_fetch);
	if (sha256)
		return fp_sha256 ? fp_sha256 : EVP_sha256();
	return fp_md5 ? fp_md5 : EVP_md5();
}

static void sink_open(struct sink *k, const EVP_MD *type, char *s, size_t cap)
{
	k->md = EVP_MD_CTX_new();
	if (k->md && !EVP_DigestInit_ex(k->md, type, NULL)) {
		EVP_MD_CTX_free(k->md);
		k->md = NULL;
	}
	k->s = s;
	k->cap = cap;
	k->len = 0;
	k->trunc = false;
	k->total = 0;
	k->n = 0;
	if (s)
		s[0] = '\0';
}

static void sink_flush(struct sink *k)
{
	if (k->md && k->n && !EVP_DigestUpdate(k->md, k->buf, k->n)) {
		EVP_MD_CTX_free(k->md);
		k->md = NULL;
	}
	k->n = 0;
}

static void put(struct sink *k, const char *p, size_t n)
{
	k->total += n;
	if (k->s) {
		size_t room = k->cap - 1 - k->len, m = n < room ? n : room;

		memcpy(k->s + k->len, p, m);
		k->len += m;
		k->s[k->len] = '\0';
		if (m < n)
			k->trunc = true;
	}
	while (n) {
		size_t m = sizeof(k->buf) - k->n;

		if (m > n)
			m = n;
		memcpy(k->buf + k->n, p, m);
		k->n += m;
		p += m;
		n -= m;
		if (k->n == sizeof(k->buf))
			sink_flush(k);
	}
}

static void put_dec(struct sink *k, unsigned v)
{
	char t[12];

	put(k, t, (size_t)snprintf(t, sizeof(t), "%u", v));
}

static void put_hex4(struct sink *k, uint16_t v)
{
	static const char hex[] = "0123456789abcdef";
	char t[4] = { hex[v >> 12], hex[v >> 8 & 15], hex[v >> 4 & 15], hex[v & 15] };

	put(k, t, 4);
}

/* Finish the digest into lower-case hex, at most digits of it (out has room
 * for digits + 1). Returns false, out empty, when the digest failed. */
static bool sink_close(struct sink *k, char *out, size_t digits)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dlen = 0, i;

	sink_flush(k);
	out[0] = '\0';
	if (!k->md)
		return false;
	if (!EVP_DigestFinal_ex(k->md, d, &dlen))
		dlen = 0;
	EVP_MD_CTX_free(k->md);
	k->md = NULL;
	if (!dlen)
		return false;
	for (i = 0; i < dlen && 2 * i < digits; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[digits < 2 * dlen ? digits : 2 * dlen] = '\0';
	return true;
}

/* Keep the non-GREASE values of v[0, n), in order; returns how many. */
static size_t drop_grease(uint16_t *v, size_t n)
{
	size_t i, j = 0;

	for (i = 0; i < n; i++)
		if (!hello_is_grease(v[i]))
			v[j++] = v[i];
	return j;
}

/* Heapsort: O(n log n) whatever the input. */
static void sift_down(uint16_t *v, size_t i, size_t n)
{
	for (;;) {
		size_t c = 2 * i + 1;
		uint16_t t;

		if (c >= n)
			return;
		if (c + 1 < n && v[c + 1] > v[c])
			c++;
		if (v[i] >= v[c])
			return;
		t = v[i];
		v[i] = v[c];
		v[c] = t;
		i = c;
	}
}

void fp_sort16(uint16_t *v, size_t n)
{
	size_t i;

	for (i = n / 2; i-- > 0;)
		sift_down(v, i, n);
	while (n > 1) {
		uint16_t t = v[0];

		v[0] = v[--n];
		v[n] = t;
		sift_down(v, 0, n);
	}
}

/* v[0, n) joined by sep, decimal (JA3) or 4 hex digits (JA4). */
static void put_list(struct sink *k, const uint16_t *v, size_t n, char sep, bool hex,
		     bool skip_grease)
{
	bool first = true;
	size_t i;

	for (i = 0; i < n; i++) {
		if (skip_grease && hello_is_grease(v[i]))
			continue;
		if (!first)
			put(k, &sep, 1);
		first = false;
		if (hex)
			put_hex4(k, v[i]);
		else
			put_dec(k, v[i]);
	}
}

static void ja3(const struct fp_lists *l, struct hello *h)
{
	struct sink k;

	sink_open(&k, fp_md(false), h->ja3, sizeof(h->ja3));
	put_dec(&k, l->legacy_version);
	put(&k, ",", 1);
	put_list(&k, l->ciphers, l->nciphers, '-', false, true);
	put(&k, ",", 1);
	put_list(&k, l->exts, l->nexts, '-', false, true);
	put(&k, ",", 1);
	put_list(&k, l->groups, l->ngroups, '-', false, true);
	put(&k, ",", 1);
	put_list(&k, l->pf, l->npf, '-', false, false);
	if (k.trunc)
		h->flags |= HELLO_F_JA3_TRUNCATED;
	sink_close(&k, h->ja3_md5, 32);
}

static const char *ja4_version(uint16_t v)
{
	switch (v) {
	case 0x0304: return "13";
	case 0x0303: return "12";
	case 0x0302: return "11";
	case 0x0301: return "10";
	case 0x0300: return "s3";
	case 0x0002: return "s2";
	case 0xfeff: return "d1";
	case 0xfefd: return "d2";
	case 0xfefc: return "d3";
	default:     return "00";
	}
}

static bool alnum(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* The two ALPN characters of JA4's first part (JA4.md "ALPN Extension Value"). */
static void ja4_alpn(const struct fp_lists *l, char out[2])
{
	static const char hex[] = "0123456789abcdef";

	if (!l->alpn_len) {
		out[0] = out[1] = '0';
	} else if (alnum(l->alpn_first) && alnum(l->alpn_last)) {
		out[0] = (char)l->alpn_first;
		out[1] = (char)l->alpn_last;
	} else {        /* first and last digits of the protocol name in hex */
		out[0] = hex[l->alpn_first >> 4];
		out[1] = hex[l->alpn_last & 15];
	}
}

/* 12 hex digits of SHA-256 over the list(s), or "000000000000" if empty.
 * Returns false if the digest failed. */
static bool ja4_hash(const uint16_t *v, size_t n, const uint16_t *sig, size_t nsig,
		     char out[13])
{
	struct sink k;
	size_t i;

	if (!n) {
		memcpy(out, "000000000000", 13);
		return true;
	}
	sink_open(&k, fp_md(true), NULL, 0);
	put_list(&k, v, n, ',', true, false);
	for (i = 0; i < nsig && hello_is_grease(sig[i]); i++)
		;
	if (i < nsig) {
		put(&k, "_", 1);
		put_list(&k, sig, nsig, ',', true, true);
	}
	return sink_close(&k, out, 12);
}

static void ja4(struct fp_lists *l, struct hello *h)
{
	size_t nc, ne, i, j;
	char alpn[2], b[13], c[13];

	nc = drop_grease(l->ciphers, l->nciphers);
	ne = drop_grease(l->exts, l->nexts);
	ja4_alpn(l, alpn);
	fp_sort16(l->ciphers, nc);
	for (i = j = 0; i < ne; i++)            /* SNI and ALPN are in part a */
		if (l->exts[i] != 0x0000 && l->exts[i] != 0x0010)
			l->exts[j++] = l->exts[i];
	fp_sort16(l->exts, j);
	if (!ja4_hash(l->ciphers, nc, NULL, 0, b) ||
	    !ja4_hash(l->exts, j, l->sigalgs, l->nsigalgs, c))
		return;
	snprintf(h->ja4, sizeof(h->ja4), "t%s%c%02u%02u%c%c_%s_%s",
		 ja4_version(l->version), l->sni ? 'd' : 'i',
		 (unsigned)(nc > 99 ? 99 : nc), (unsigned)(ne > 99 ? 99 : ne),
		 alpn[0], alpn[1], b, c);
}

void fp_compute(struct fp_lists *l, struct hello *h)
{
	ja3(l, h);              /* first: it needs the wire order */
	ja4(l, h);
}
