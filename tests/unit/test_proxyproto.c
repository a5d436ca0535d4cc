/*
 * Unit tests for the PROXY protocol encoders (dataplane/session/proxyproto.c)
 * against the layout of haproxy.org's proxy-protocol.txt:
 *
 *   v2 (2.2):  12-byte signature, ver_cmd (0x2 << 4 | cmd), fam (address
 *              family << 4 | transport), 2-byte big-endian length of what
 *              follows, the addresses and ports in network order, then TLVs
 *              (type, 2-byte big-endian length, value).
 *   TLVs (2.2.1-2.2.5): PP2_TYPE_AUTHORITY 0x02 (the SNI), PP2_TYPE_SSL 0x20
 *              = client (1 byte) + verify (4 bytes) + sub-TLVs
 *              (0x21 version, 0x23 cipher).
 *   v1 (2.1):  "PROXY TCP4 <src> <dst> <sport> <dport>\r\n".
 *
 * Addresses are documentation ones: RFC 5737 and RFC 3849.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "session/proxyproto.h"

static const uint8_t sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

static struct sockaddr_in in4(const char *ip, unsigned port)
{
	struct sockaddr_in s;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	s.sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &s.sin_addr), 1);
	return s;
}

static struct sockaddr_in6 in6(const char *ip, unsigned port)
{
	struct sockaddr_in6 s;

	memset(&s, 0, sizeof(s));
	s.sin6_family = AF_INET6;
	s.sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &s.sin6_addr), 1);
	return s;
}

#define SA(x) ((const struct sockaddr *)&(x))

/* An expected header, built field by field. */
struct bytes {
	uint8_t b[PP_MAX];
	size_t n;
};

static void put(struct bytes *w, const void *p, size_t len)
{
	assert_true(w->n + len <= sizeof(w->b));
	memcpy(w->b + w->n, p, len);
	w->n += len;
}

static void put8(struct bytes *w, unsigned v)
{
	uint8_t b = (uint8_t)v;

	put(w, &b, 1);
}

static void put16(struct bytes *w, unsigned v)
{
	put8(w, v >> 8);
	put8(w, v & 0xff);
}

static void put_tlv_str(struct bytes *w, unsigned type, const char *s)
{
	put8(w, type);
	put16(w, (unsigned)strlen(s));
	put(w, s, strlen(s));
}

static void assert_bytes(const uint8_t *got, int len, const struct bytes *want)
{
	assert_int_equal(len, (int)want->n);
	for (size_t i = 0; i < want->n; i++)
		if (got[i] != want->b[i])
			fail_msg("byte %zu: 0x%02x, want 0x%02x", i, got[i], want->b[i]);
}

/*
 * Walk a v2 header as a receiver would: the length field covers exactly
 * the addresses and the TLVs, each TLV's length exactly its value, and the
 * SSL TLV's length exactly client + verify + its sub-TLVs. Returns the
 * number of top-level TLVs.
 */
static unsigned walk_v2(const uint8_t *h, int total, size_t addr_len)
{
	size_t len = (size_t)h[14] << 8 | h[15], off = 16 + addr_len, end;
	unsigned n = 0;

	assert_memory_equal(h, sig, 12);
	assert_int_equal((size_t)total, 16 + len);
	end = 16 + len;
	while (off < end) {
		size_t tl;

		assert_true(off + 3 <= end);
		tl = (size_t)h[off + 1] << 8 | h[off + 2];
		assert_true(off + 3 + tl <= end);
		if (h[off] == PP2_TYPE_SSL) {
			size_t s = off + 3 + 5, send = off + 3 + tl;

			assert_true(tl >= 5);
			while (s < send) {
				size_t sl;

				assert_true(s + 3 <= send);
				sl = (size_t)h[s + 1] << 8 | h[s + 2];
				assert_true(s + 3 + sl <= send);
				s += 3 + sl;
			}
			assert_int_equal(s, send);
		}
		off += 3 + tl;
		n++;
	}
	assert_int_equal(off, end);
	return n;
}

static const struct pp_tls tls13 = {
	.version = "TLSv1.3",
	.cipher = "TLS_AES_128_GCM_SHA256",
	.sni = "mail.example.org",
};

/* The TLVs for tls13, as the specification lays them out. */
static void put_tls13_tlvs(struct bytes *w)
{
	put_tlv_str(w, 0x02, "mail.example.org");          /* PP2_TYPE_AUTHORITY */
	put8(w, 0x20);                                      /* PP2_TYPE_SSL */
	put16(w, 1 + 4 + (3 + 7) + (3 + 22));
	put8(w, 0x01);                                      /* PP2_CLIENT_SSL */
	put8(w, 0); put8(w, 0); put8(w, 0); put8(w, 1);     /* verify: no client cert */
	put_tlv_str(w, 0x21, "TLSv1.3");                   /* PP2_SUBTYPE_SSL_VERSION */
	put_tlv_str(w, 0x23, "TLS_AES_128_GCM_SHA256");    /* PP2_SUBTYPE_SSL_CIPHER */
}

/* ---- v2 ------------------------------------------------------------------ */

static void test_v2_ipv4(void **state)
{
	struct sockaddr_in src = in4("192.0.2.1", 12345), dst = in4("198.51.100.2", 25);
	struct bytes w = { .n = 0 };
	uint8_t out[PP_MAX];
	int n;

	put(&w, sig, 12);
	put8(&w, 0x21);                   /* version 2, PROXY */
	put8(&w, 0x11);                   /* TCP over IPv4 */
	put16(&w, 12);                    /* 4 + 4 + 2 + 2 */
	put(&w, "\xc0\x00\x02\x01", 4);   /* 192.0.2.1 */
	put(&w, "\xc6\x33\x64\x02", 4);   /* 198.51.100.2 */
	put16(&w, 12345);
	put16(&w, 25);

	n = pp2_encode(out, sizeof(out), SA(src), SA(dst), NULL);
	assert_bytes(out, n, &w);
	assert_int_equal(n, 28);
	assert_int_equal(walk_v2(out, n, 12), 0); /* without TLS, no TLVs */
}

static void test_v2_ipv4_tls(void **state)
{
	struct sockaddr_in src = in4("192.0.2.1", 12345), dst = in4("198.51.100.2", 25);
	struct bytes w = { .n = 0 };
	uint8_t out[PP_MAX];
	int n;

	put(&w, sig, 12);
	put8(&w, 0x21);
	put8(&w, 0x11);
	put16(&w, 12 + (3 + 16) + (3 + 40));
	put(&w, "\xc0\x00\x02\x01", 4);
	put(&w, "\xc6\x33\x64\x02", 4);
	put16(&w, 12345);
	put16(&w, 25);
	put_tls13_tlvs(&w);

	n = pp2_encode(out, sizeof(out), SA(src), SA(dst), &tls13);
	assert_bytes(out, n, &w);
	assert_int_equal(n, 90);
	assert_int_equal(walk_v2(out, n, 12), 2);
}

static void test_v2_ipv6(void **state)
{
	struct sockaddr_in6 src = in6("2001:db8::1", 12345), dst = in6("2001:db8:1::25", 587);
	struct bytes w = { .n = 0 };
	uint8_t out[PP_MAX];
	int n;

	put(&w, sig, 12);
	put8(&w, 0x21);                   /* version 2, PROXY */
	put8(&w, 0x21);                   /* TCP over IPv6 */
	put16(&w, 36);                    /* 16 + 16 + 2 + 2 */
	put(&w, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	put(&w, "\x20\x01\x0d\xb8\0\x01\0\0\0\0\0\0\0\0\0\x25", 16);
	put16(&w, 12345);
	put16(&w, 587);

	n = pp2_encode(out, sizeof(out), SA(src), SA(dst), NULL);
	assert_bytes(out, n, &w);
	assert_int_equal(n, 52);
	assert_int_equal(walk_v2(out, n, 36), 0);
}

static void test_v2_ipv6_tls(void **state)
{
	struct sockaddr_in6 src = in6("2001:db8::1", 12345), dst = in6("2001:db8:1::25", 465);
	struct bytes w = { .n = 0 };
	uint8_t out[PP_MAX];
	int n;

	put(&w, sig, 12);
	put8(&w, 0x21);
	put8(&w, 0x21);
	put16(&w, 36 + (3 + 16) + (3 + 40));
	put(&w, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	put(&w, "\x20\x01\x0d\xb8\0\x01\0\0\0\0\0\0\0\0\0\x25", 16);
	put16(&w, 12345);
	put16(&w, 465);
	put_tls13_tlvs(&w);

	n = pp2_encode(out, sizeof(out), SA(src), SA(dst), &tls13);
	assert_bytes(out, n, &w);
	assert_int_equal(n, 114);
	assert_int_equal(walk_v2(out, n, 36), 2);
}

/* TLS facts that are missing are left out; the SSL TLV is still there. */
static void test_v2_partial_tls_facts(void **state)
{
	static const struct pp_tls nosni = { "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", NULL };
	static const struct pp_tls empty_sni = { "TLSv1.2", NULL, "" };
	static const struct pp_tls none = { NULL, NULL, NULL };
	struct sockaddr_in src = in4("192.0.2.1", 12345), dst = in4("198.51.100.2", 25);
	uint8_t out[PP_MAX];
	struct bytes w;
	int n;

	/* No SNI: no AUTHORITY TLV. */
	w.n = 0;
	put8(&w, 0x20);
	put16(&w, 5 + (3 + 7) + (3 + 27));
	put8(&w, 0x01);
	put8(&w, 0); put8(&w, 0); put8(&w, 0); put8(&w, 1);
	put_tlv_str(&w, 0x21, "TLSv1.2");
	put_tlv_str(&w, 0x23, "ECDHE-RSA-AES128-GCM-SHA256");
	n = pp2_encode(out, sizeof(out), SA(src), SA(dst), &nosni);
	assert_int_equal(n, 28 + (int)w.n);
	assert_int_equal(out[14] << 8 | out[15], 12 + w.n);
	assert_memory_equal(out + 28, w.b, w.n);
	assert_int_equal(walk_v2(out, n, 12), 1);

	/* An empty SNI is no SNI; no cipher: no cipher sub-TLV. */
	w.n = 0;
	put8(&w, 0x20);
	put16(&w, 5 + (3 + 7));
	put8(&w, 0x01);
	put8(&w, 0); put8(&w, 0); put8(&w, 0); put8(&w, 1);
	put_tlv_str(&w, 0x21, "TLSv1.2");
	n = pp2_encode(out, sizeof(out), SA(src), SA(dst), &empty_sni);
	assert_int_equal(n, 28 + (int)w.n);
	assert_memory_equal(out + 28, w.b, w.n);
	assert_int_equal(walk_v2(out, n, 12), 1);

	/* Nothing known but "it was TLS". */
	n = pp2_encode(out, sizeof(out), SA(src), SA(dst), &none);
	assert_int_equal(n, 28 + 3 + 5);
	assert_memory_equal(out + 28, "\x20\x00\x05\x01\x00\x00\x00\x01", 8);
	assert_int_equal(walk_v2(out, n, 12), 1);
}

/* The largest header sluice can make (a 255-byte SNI, IPv6) fits PP_MAX. */
static void test_v2_largest_fits(void **state)
{
	struct sockaddr_in6 src = in6("2001:db8::1", 65535), dst = in6("2001:db8::2", 65535);
	char sni[256];
	struct pp_tls t = { "TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", sni };
	uint8_t out[PP_MAX];
	int n;

	memset(sni, 'a', 255);
	sni[255] = 0;
	n = pp2_encode(out, sizeof(out), SA(src), SA(dst), &t);
	assert_true(n > 0);
	assert_true(n <= PP_MAX);
	assert_int_equal(walk_v2(out, n, 36), 2);
}

/*
 * A buffer too small for the header: -ENOSPC, and nothing written past
 * cap (the buffer sits inside a larger one filled with a canary).
 */
static void test_v2_enospc(void **state)
{
	struct sockaddr_in src4 = in4("192.0.2.1", 12345), dst4 = in4("198.51.100.2", 25);
	struct sockaddr_in6 src6 = in6("2001:db8::1", 12345), dst6 = in6("2001:db8::2", 25);
	static const struct {
		int v6;
		const struct pp_tls *tls;
		size_t need;
	} cases[] = {
		{ 0, NULL,   28 },
		{ 0, &tls13, 90 },
		{ 1, NULL,   52 },
		{ 1, &tls13, 114 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct sockaddr *s = cases[i].v6 ? SA(src6) : SA(src4);
		const struct sockaddr *d = cases[i].v6 ? SA(dst6) : SA(dst4);
		size_t caps[] = { 0, 1, 15, 16, 27, cases[i].need - 1 };

		for (size_t j = 0; j < sizeof(caps) / sizeof(caps[0]); j++) {
			uint8_t buf[PP_MAX + 64];
			int n;

			memset(buf, 0xee, sizeof(buf));
			n = pp2_encode(buf, caps[j], s, d, cases[i].tls);
			if (n != -ENOSPC)
				fail_msg("case %zu cap %zu: %d, want -ENOSPC", i, caps[j], n);
			for (size_t k = caps[j]; k < sizeof(buf); k++)
				if (buf[k] != 0xee)
					fail_msg("case %zu cap %zu: byte %zu written", i, caps[j], k);
		}
	}
}

/*
 * A buffer of exactly the header's size is enough. The IPv4 header without
 * TLS is 28 bytes; a caller that sizes its buffer for it must not get
 * -ENOSPC.
 */
static void test_v2_exact_size_buffer(void **state)
{
	struct sockaddr_in src4 = in4("192.0.2.1", 12345), dst4 = in4("198.51.100.2", 25);
	struct sockaddr_in6 src6 = in6("2001:db8::1", 12345), dst6 = in6("2001:db8::2", 25);
	static const struct {
		int v6;
		const struct pp_tls *tls;
		int need;
	} cases[] = {
		{ 1, NULL,   52 },
		{ 1, &tls13, 114 },
		{ 0, &tls13, 90 },
		{ 0, NULL,   28 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct sockaddr *s = cases[i].v6 ? SA(src6) : SA(src4);
		const struct sockaddr *d = cases[i].v6 ? SA(dst6) : SA(dst4);
		uint8_t buf[PP_MAX];
		int n = pp2_encode(buf, (size_t)cases[i].need, s, d, cases[i].tls);

		if (n != cases[i].need)
			fail_msg("%s%s in a %d-byte buffer: %d, want %d",
				 cases[i].v6 ? "IPv6" : "IPv4", cases[i].tls ? " with TLS" : "",
				 cases[i].need, n, cases[i].need);
	}
}

/* Mixed or unknown families: -EAFNOSUPPORT, for v2 and v1. */
static void test_families(void **state)
{
	struct sockaddr_in v4 = in4("192.0.2.1", 12345);
	struct sockaddr_in6 v6 = in6("2001:db8::1", 25);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	const struct {
		const struct sockaddr *s, *d;
	} cases[] = {
		{ SA(v4), SA(v6) },
		{ SA(v6), SA(v4) },
		{ SA(un), SA(un) },
		{ SA(v4), SA(un) },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[PP_MAX];
		char line[PP_MAX];

		assert_int_equal(pp2_encode(out, sizeof(out), cases[i].s, cases[i].d, NULL),
				 -EAFNOSUPPORT);
		assert_int_equal(pp2_encode(out, sizeof(out), cases[i].s, cases[i].d, &tls13),
				 -EAFNOSUPPORT);
		assert_int_equal(pp1_encode(line, sizeof(line), cases[i].s, cases[i].d),
				 -EAFNOSUPPORT);
	}
}

/* LOCAL (health checks): signature, 0x20, UNSPEC, length 0. */
static void test_v2_local(void **state)
{
	struct bytes w = { .n = 0 };
	uint8_t out[PP_MAX];

	put(&w, sig, 12);
	put8(&w, 0x20);   /* version 2, LOCAL */
	put8(&w, 0x00);   /* AF_UNSPEC, UNSPEC */
	put16(&w, 0);
	assert_bytes(out, pp2_encode_local(out, sizeof(out)), &w);
	assert_bytes(out, pp2_encode_local(out, 16), &w);
	assert_int_equal(pp2_encode_local(out, 15), -ENOSPC);
	assert_int_equal(pp2_encode_local(out, 0), -ENOSPC);
}

/* ---- v1 ------------------------------------------------------------------ */

static void test_v1_lines(void **state)
{
	struct sockaddr_in s4 = in4("192.0.2.1", 12345), d4 = in4("198.51.100.2", 25);
	struct sockaddr_in6 s6 = in6("2001:db8::1", 12345), d6 = in6("2001:db8:1::25", 587);
	struct sockaddr_in6 m6 = in6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	const struct {
		const struct sockaddr *s, *d;
		const char *line;
	} cases[] = {
		{ SA(s4), SA(d4), "PROXY TCP4 192.0.2.1 198.51.100.2 12345 25\r\n" },
		{ SA(d4), SA(s4), "PROXY TCP4 198.51.100.2 192.0.2.1 25 12345\r\n" },
		{ SA(s6), SA(d6), "PROXY TCP6 2001:db8::1 2001:db8:1::25 12345 587\r\n" },
		/* A long one: no "::" to shorten it, 5-digit ports. */
		{ SA(m6), SA(m6), "PROXY TCP6 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff "
				  "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[PP_MAX];
		int n = pp1_encode(out, sizeof(out), cases[i].s, cases[i].d);

		assert_int_equal(n, (int)strlen(cases[i].line));
		assert_memory_equal(out, cases[i].line, (size_t)n);
		assert_true(n <= 107); /* proxy-protocol.txt 2.1 */
		/* Too small a buffer: -ENOSPC. */
		assert_int_equal(pp1_encode(out, 20, cases[i].s, cases[i].d), -ENOSPC);
		assert_int_equal(pp1_encode(out, 0, cases[i].s, cases[i].d), -ENOSPC);
	}
}

/*
 * Finding 13: the header as the session asks for it (pp_header). What
 * cannot be encoded (a family PROXY cannot express, mixed families, no
 * room) is an error the session closes on, never "no header": a backend
 * that expects one would take sluice for the client.
 */
static void test_header_fails_closed(void **state)
{
	struct sockaddr_in s4 = in4("192.0.2.10", 40000), d4 = in4("198.51.100.1", 25);
	struct sockaddr_in6 d6 = in6("2001:db8::1", 25);
	struct sockaddr_un un;
	uint8_t out[PP_MAX], ref[PP_MAX];
	int n;

	(void)state;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_int_equal(pp_header(0, out, sizeof(out), SA(s4), SA(d4), NULL), 0);
	n = pp_header(1, out, sizeof(out), SA(s4), SA(d4), NULL);
	assert_int_equal(n, pp1_encode((char *)ref, sizeof(ref), SA(s4), SA(d4)));
	assert_memory_equal(out, ref, (size_t)n);
	n = pp_header(2, out, sizeof(out), SA(s4), SA(d4), NULL);
	assert_int_equal(n, 28);
	assert_memory_equal(out, sig, sizeof(sig));
	assert_int_equal(pp_header(1, out, sizeof(out), SA(s4), SA(d6), NULL), -EAFNOSUPPORT);
	assert_int_equal(pp_header(2, out, sizeof(out), SA(s4), SA(d6), NULL), -EAFNOSUPPORT);
	assert_int_equal(pp_header(2, out, sizeof(out), SA(un), SA(un), NULL), -EAFNOSUPPORT);
	assert_int_equal(pp_header(1, out, 20, SA(s4), SA(d4), NULL), -ENOSPC);
	assert_int_equal(pp_header(2, out, 20, SA(s4), SA(d4), NULL), -ENOSPC);
	assert_int_equal(pp_header(3, out, sizeof(out), SA(s4), SA(d4), NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2_ipv4),
		cmocka_unit_test(test_v2_ipv4_tls),
		cmocka_unit_test(test_v2_ipv6),
		cmocka_unit_test(test_v2_ipv6_tls),
		cmocka_unit_test(test_v2_partial_tls_facts),
		cmocka_unit_test(test_v2_largest_fits),
		cmocka_unit_test(test_v2_enospc),
		cmocka_unit_test(test_v2_exact_size_buffer),
		cmocka_unit_test(test_families),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v1_lines),
		cmocka_unit_test(test_header_fails_closed),
	};

	return cmocka_run_group_tests_name("proxyproto", tests, NULL, NULL);
}
