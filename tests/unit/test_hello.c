/*
 * tls/hello: the ClientHello parser, as scenarios.
 *
 *   - hand-built hellos (a tiny builder below: record header + handshake
 *     header + body + extensions) for each extension and each flag;
 *   - a table of inputs and the result and reason each must give, one row
 *     at least per rejection reason;
 *   - a real hello (openssl s_client) split into every possible pair of
 *     records and fed in every prefix length;
 *   - SSLv2-compatible CLIENT-HELLOs, plaintext clients, oversized hellos;
 *   - JA3 and JA4 against published reference values (sources at each test).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "hello.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------- builder --- */

struct b {
	uint8_t p[80000];
	size_t n;
	size_t at[8];           /* open length fields: offset */
	unsigned width[8];      /* and size */
	int depth;
};

static void b_u8(struct b *b, unsigned v)
{
	assert_true(b->n < sizeof(b->p));
	b->p[b->n++] = (uint8_t)v;
}

static void b_u16(struct b *b, unsigned v)
{
	b_u8(b, v >> 8);
	b_u8(b, v & 0xff);
}

static void b_mem(struct b *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->p));
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void b_fill(struct b *b, unsigned v, size_t n)
{
	while (n--)
		b_u8(b, v);
}

/* Hex digits, spaces ignored; 'R' stands for 32 bytes of 0x52 (a random). */
static void b_hex(struct b *b, const char *s)
{
	unsigned v = 0, half = 0;

	for (; *s; s++) {
		if (*s == ' ')
			continue;
		if (*s == 'R') {
			b_fill(b, 0x52, 32);
			continue;
		}
		assert_non_null(strchr("0123456789abcdefABCDEF", *s));
		v = v << 4 | (unsigned)(*s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10);
		if (++half == 2) {
			b_u8(b, v);
			v = half = 0;
		}
	}
	assert_int_equal(half, 0);
}

/* A length field of width bytes, filled in by b_close(). */
static void b_open(struct b *b, unsigned width)
{
	b->at[b->depth] = b->n;
	b->width[b->depth++] = width;
	b_fill(b, 0, width);
}

static void b_close(struct b *b)
{
	size_t at = b->at[--b->depth], w = b->width[b->depth], len = b->n - at - w, i;

	for (i = 0; i < w; i++)
		b->p[at + i] = (uint8_t)(len >> 8 * (w - 1 - i));
}

static const uint16_t base_ciphers[] = { 0x1301, 0x1302, 0xc02f };

/* Record header, handshake header, client_version, random, a 32-byte
 * session id, the ciphers, null compression, and the extensions length
 * left open: add extensions, then hello_end(). */
static void hello_begin(struct b *b, unsigned version, const uint16_t *ciphers, size_t n)
{
	size_t i;

	memset(b, 0, sizeof(*b));
	b_u8(b, 22);
	b_u16(b, 0x0301);
	b_open(b, 2);           /* record */
	b_u8(b, 1);
	b_open(b, 3);           /* handshake */
	b_u16(b, version);
	b_fill(b, 0x52, 32);
	b_u8(b, 32);
	b_fill(b, 0x53, 32);
	b_open(b, 2);
	for (i = 0; i < n; i++)
		b_u16(b, ciphers[i]);
	b_close(b);
	b_hex(b, "01 00");
	b_open(b, 2);           /* extensions */
}

static void hello_end(struct b *b)
{
	while (b->depth)
		b_close(b);
}

static void ext_begin(struct b *b, unsigned type)
{
	b_u16(b, type);
	b_open(b, 2);
}

static void ext_u16s(struct b *b, unsigned type, unsigned lw, const uint16_t *v, size_t n)
{
	size_t i;

	ext_begin(b, type);
	b_open(b, lw);
	for (i = 0; i < n; i++)
		b_u16(b, v[i]);
	b_close(b);
	b_close(b);
}

static void ext_sni(struct b *b, const char *name)
{
	ext_begin(b, 0);
	b_open(b, 2);
	b_u8(b, 0);
	b_open(b, 2);
	b_mem(b, name, strlen(name));
	b_close(b);
	b_close(b);
	b_close(b);
}

/* ALPN protocol names, NULL-terminated list. */
static void ext_alpn(struct b *b, const char *const *names)
{
	ext_begin(b, 16);
	b_open(b, 2);
	for (; *names; names++) {
		b_u8(b, (unsigned)strlen(*names));
		b_mem(b, *names, strlen(*names));
	}
	b_close(b);
	b_close(b);
}

static void ext_key_share(struct b *b, const uint16_t *groups, size_t n)
{
	size_t i;

	ext_begin(b, 51);
	b_open(b, 2);
	for (i = 0; i < n; i++) {
		b_u16(b, groups[i]);
		b_u16(b, 32);
		b_fill(b, 0x4b, 32);
	}
	b_close(b);
	b_close(b);
}

static void ext_raw(struct b *b, unsigned type, const char *hex)
{
	ext_begin(b, type);
	b_hex(b, hex);
	b_close(b);
}

/* Input as hex (spaces ignored, no 'R'). */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	static struct b tmp;

	tmp.n = 0;
	tmp.depth = 0;
	b_hex(&tmp, s);
	assert_true(tmp.n <= cap);
	memcpy(out, tmp.p, tmp.n);
	return tmp.n;
}

static enum hello_result parse(const struct b *b, struct hello *h, enum hello_reason *why)
{
	return hello_parse(b->p, b->n, h, why);
}

static char *explain(const struct hello *h)
{
	static char s[512];

	hello_explain(h, s, sizeof(s));
	return s;
}

#define assert_ok(b, h) do {                                            \
	enum hello_reason why_;                                         \
	enum hello_result r_ = parse(b, h, &why_);                      \
	if (r_ != HELLO_OK)                                             \
		fail_msg("result %d: %s", r_, explain(h));              \
	assert_int_equal(why_, HELLO_R_NONE);                           \
} while (0)

/* --------------------------------------------- every extension, parsed --- */

static void test_extensions(void **state)
{
	static const uint16_t ciphers[] = { 0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0x5600, 0x00ff };
	static const uint16_t groups[] = { 0x2a2a, 0x001d, 0x0017, 0x0018, 0x0100 };
	static const uint16_t sigalgs[] = { 0x0403, 0x0804, 0x0401 };
	static const uint16_t sigalgs_cert[] = { 0x0403, 0x0503 };
	static const uint16_t versions[] = { 0x3a3a, 0x0304, 0x0303 };
	static const uint16_t shares[] = { 0x2a2a, 0x001d };
	static const char *const alpn[] = { "smtp", "imap", "http/1.1", NULL };
	struct b b;
	struct hello h;
	unsigned i;

	hello_begin(&b, 0x0303, ciphers, ARRAY_SIZE(ciphers));
	ext_raw(&b, 0x0a0a, "");                        /* GREASE, first */
	ext_sni(&b, "mail.example.test");
	ext_u16s(&b, 10, 2, groups, ARRAY_SIZE(groups));
	ext_raw(&b, 11, "03 00 01 02");
	ext_u16s(&b, 13, 2, sigalgs, ARRAY_SIZE(sigalgs));
	ext_u16s(&b, 50, 2, sigalgs_cert, ARRAY_SIZE(sigalgs_cert));
	ext_u16s(&b, 43, 1, versions, ARRAY_SIZE(versions));
	ext_key_share(&b, shares, ARRAY_SIZE(shares));
	ext_alpn(&b, alpn);
	ext_raw(&b, 23, "");                            /* extended_master_secret */
	ext_raw(&b, 22, "");                            /* encrypt_then_mac */
	ext_raw(&b, 0xff01, "00");                      /* renegotiation_info */
	ext_raw(&b, 35, "");                            /* session_ticket, empty */
	ext_raw(&b, 5, "01 0000 0000");                 /* status_request */
	ext_raw(&b, 45, "02 01 00");                    /* psk_dhe_ke, psk_ke */
	ext_raw(&b, 42, "");                            /* early_data */
	ext_raw(&b, 49, "");                            /* post_handshake_auth */
	ext_raw(&b, 21, "00000000000000");              /* padding */
	ext_raw(&b, 0x1a1a, "00");                      /* GREASE */
	ext_raw(&b, 41, "0010 000a 0102030405060708090a 00000001"   /* pre_shared_key */
		"0021 20 1111111111111111111111111111111111111111111111111111111111111111");
	hello_end(&b);
	assert_ok(&b, &h);

	assert_int_equal(h.consumed, b.n);
	assert_int_equal(h.records, 1);
	assert_int_equal(h.msg_len, b.n - 5);
	assert_int_equal(h.record_version, 0x0301);
	assert_int_equal(h.legacy_version, 0x0303);
	assert_int_equal(h.version, 0x0304);
	assert_int_equal(h.session_id_len, 32);
	assert_int_equal(h.compression_n, 1);
	assert_int_equal(h.ciphers.n, ARRAY_SIZE(ciphers));
	assert_memory_equal(h.ciphers.v, ciphers, sizeof(ciphers));
	assert_int_equal(h.groups.n, ARRAY_SIZE(groups));
	assert_memory_equal(h.groups.v, groups, sizeof(groups));
	assert_int_equal(h.point_formats.n, 3);
	assert_int_equal(h.point_formats.v[2], 2);
	assert_memory_equal(h.sigalgs.v, sigalgs, sizeof(sigalgs));
	assert_int_equal(h.sigalgs_cert.n, 2);
	assert_memory_equal(h.sigalgs_cert.v, sigalgs_cert, sizeof(sigalgs_cert));
	assert_memory_equal(h.versions.v, versions, sizeof(versions));
	assert_int_equal(h.key_shares.n, 2);
	assert_int_equal(h.key_shares.v[1], 0x001d);
	assert_string_equal(h.sni, "mail.example.test");
	assert_int_equal(h.sni_len, 17);
	assert_int_equal(h.alpn.n, 3);
	for (i = 0; alpn[i]; i++) {
		assert_string_equal(h.alpn.v[i].name, alpn[i]);
		assert_int_equal(h.alpn.v[i].len, strlen(alpn[i]));
	}
	assert_int_equal(h.psk_modes, 3);
	assert_int_equal(h.psk_identities, 1);
	assert_int_equal(h.padding_len, 7);
	assert_int_equal(h.ticket_len, 0);
	assert_int_equal(h.reneg_info_len, 0);
	assert_int_equal(h.exts.n, 20);
	assert_int_equal(h.exts.v[0], 0x0a0a);
	assert_int_equal(h.exts.v[1], 0);
	assert_int_equal(h.exts.v[19], 41);
	assert_int_equal(h.flags,
			 HELLO_F_SNI | HELLO_F_ALPN | HELLO_F_EMS | HELLO_F_ETM | HELLO_F_RENEG_INFO |
			 HELLO_F_RENEG_SCSV | HELLO_F_FALLBACK_SCSV | HELLO_F_SESSION_TICKET |
			 HELLO_F_PSK | HELLO_F_PSK_MODES | HELLO_F_EARLY_DATA | HELLO_F_PADDING |
			 HELLO_F_STATUS_REQUEST | HELLO_F_SUPPORTED_VERSIONS | HELLO_F_KEY_SHARE |
			 HELLO_F_POST_HS_AUTH | HELLO_F_GREASE);
	/* JA3: GREASE out of ciphers, extensions and groups */
	assert_string_equal(h.ja3, "771,4865-4866-4867-49195-22016-255,"
			    "0-10-11-13-50-43-51-16-23-22-65281-35-5-45-42-49-21-41,"
			    "29-23-24-256,0-1-2");
	assert_int_equal(strlen(h.ja3_md5), 32);
	assert_int_equal(strlen(h.ja4), HELLO_JA4_LEN);
	assert_memory_equal(h.ja4, "t13d0618sp_", 11);
}

/* Flags and values that the hello above does not show. */
static void test_extension_values(void **state)
{
	struct b b;
	struct hello h;

	/* a ticket, renegotiation_info of a renegotiation, non-zero padding,
	 * deflate offered, psk_ke only, a GREASE psk mode, no SNI */
	hello_begin(&b, 0x0303, base_ciphers, 3);
	b.n -= 4;               /* rewrite compression: null and deflate */
	b.depth--;
	b_hex(&b, "02 01 00");
	b_open(&b, 2);
	ext_raw(&b, 35, "0102030405");
	ext_raw(&b, 0xff01, "03 aabbcc");
	ext_raw(&b, 21, "0001");
	ext_raw(&b, 45, "02 00 0b");
	hello_end(&b);
	assert_ok(&b, &h);
	assert_int_equal(h.compression_n, 2);
	assert_int_equal(h.ticket_len, 5);
	assert_int_equal(h.reneg_info_len, 3);
	assert_int_equal(h.padding_len, 2);
	assert_int_equal(h.psk_modes, 1);
	assert_int_equal(h.sni_len, 0);
	assert_int_equal(h.flags, HELLO_F_COMPRESSION | HELLO_F_SESSION_TICKET | HELLO_F_RENEG_INFO |
			 HELLO_F_PADDING | HELLO_F_PADDING_NONZERO | HELLO_F_PSK_MODES |
			 HELLO_F_GREASE);
	assert_int_equal(h.version, 0x0303);    /* no supported_versions */
	assert_memory_equal(h.ja4, "t12i030400_", 11);

	/* supported_versions with only GREASE: no version JA4 knows */
	hello_begin(&b, 0x0303, base_ciphers, 3);
	ext_raw(&b, 43, "02 7a7a");
	hello_end(&b);
	assert_ok(&b, &h);
	assert_int_equal(h.version, 0);
	assert_memory_equal(h.ja4, "t00i030100_", 11);

	/* no extensions block at all (TLS 1.0 era) */
	hello_begin(&b, 0x0301, base_ciphers, 3);
	b.n -= 2;
	b.depth--;
	hello_end(&b);
	assert_ok(&b, &h);
	assert_int_equal(h.exts.n, 0);
	assert_string_equal(h.ja3, "769,4865-4866-49199,,,");
	assert_string_equal(h.ja4, "t10i030000_40b44b994229_000000000000");

	/* SNI of another name type is stepped over; a 255-byte name is fine */
	{
		char name[256];

		memset(name, 'a', 255);
		name[255] = '\0';
		hello_begin(&b, 0x0303, base_ciphers, 3);
		ext_begin(&b, 0);
		b_open(&b, 2);
		b_hex(&b, "07 0003 616263");
		b_u8(&b, 0);
		b_u16(&b, 255);
		b_mem(&b, name, 255);
		b_close(&b);
		b_close(&b);
		hello_end(&b);
		assert_ok(&b, &h);
		assert_string_equal(h.sni, name);
	}
}

/* ---------------------------------------------------- inputs and results --- */

enum kind {
	WIRE,   /* hex is the whole input */
	BODY,   /* hex is the ClientHello body: wrapped in correct headers */
	EXT,    /* hex is extensions: appended to a good hello's extensions */
};

struct row {
	const char *what;
	enum kind kind;
	const char *hex;
	enum hello_result result;
	enum hello_reason why;
	int ext;                /* err.ext expected (BAD, NOT_TLS) */
};

#define GOOD_BODY "0303 R 00 0004 1301 c02f 01 00"
#define NOT_TLS(w, hex, r)   { w, WIRE, hex, HELLO_NOT_TLS, HELLO_R_##r, -1 }
#define MORE(w, kind, hex)   { w, kind, hex, HELLO_MORE, HELLO_R_NONE, -1 }
#define BAD(w, kind, hex, r) { w, kind, hex, HELLO_BAD, HELLO_R_##r, -1 }
#define BADX(w, hex, r, x)   { w, EXT, hex, HELLO_BAD, HELLO_R_##r, x }
#define OK(w, kind, hex)     { w, kind, hex, HELLO_OK, HELLO_R_NONE, -1 }

static const struct row rows[] = {
	/* plaintext clients: decided from the first bytes */
	NOT_TLS("EHLO", "45484c4f206d782e6578616d706c650d0a", NOT_TLS),
	NOT_TLS("HTTP request", "474554202f20485454502f312e310d0a", NOT_TLS),
	NOT_TLS("IMAP tag", "6131205354415254544c530d0a", NOT_TLS),
	NOT_TLS("empty line", "0d0a", NOT_TLS),
	NOT_TLS("0x16 then not 3", "16 02 00", NOT_TLS_VERSION),
	NOT_TLS("0x16 then text", "16 41", NOT_TLS_VERSION),
	NOT_TLS("high bit, not CLIENT-HELLO", "80 2e 02 0301", NOT_TLS_SSLV2),
	NOT_TLS("high bit, version 0x0400", "80 2e 01 0400", NOT_TLS_SSLV2),
	NOT_TLS("UTF-8 text", "c3a9c3a9c3a9", NOT_TLS_SSLV2),
	NOT_TLS("control character, then text", "1541", NOT_TLS),
	MORE("alert's first byte", WIRE, "15"),
	MORE("nothing yet", WIRE, ""),
	MORE("one byte of a record", WIRE, "16"),
	MORE("record header", WIRE, "16 0301 00"),
	MORE("SSLv2 header so far", WIRE, "80 2e 01 03"),
	MORE("record, no handshake header yet", WIRE, "16 0301 0040"),
	MORE("half a hello", WIRE, "16 0301 0040 01 00003c 0303"),

	/* records */
	BAD("alert first", WIRE, "15 0301 0002 0228", RECORD_TYPE),
	BAD("application data first", WIRE, "17 0303 0010", RECORD_TYPE),
	BAD("record version 0x0200", WIRE, "16 0300 0004 01000010 16 0200 0001 00", RECORD_VERSION),
	BAD("zero-length record", WIRE, "16 0301 0000", RECORD_EMPTY),
	BAD("record over 2^14", WIRE, "16 0301 4001", RECORD_OVERFLOW),
	BAD("server hello", WIRE, "16 0303 0004 02 000000", HANDSHAKE_TYPE),
	BAD("hello over 32 KiB", WIRE, "16 0301 0004 01 007ffd", TOO_LARGE),
	BAD("CCS between fragments", WIRE, "16 0301 0002 0100 14 0303 0001 01", RECORD_TYPE),
	BAD("alert between fragments", WIRE, "16 0301 0003 010000 15", RECORD_TYPE),
	BAD("bytes after the hello in its record", WIRE,
	    "16 0301 002e 01 000029 0303 R 00 0002 1301 01 00 16", RECORD_TRAILING),
	OK("app data after the hello's record", WIRE,
	   "16 0301 002d 01 000029 0303 R 00 0002 1301 01 00 17 0303 0001 00"),

	/* SSLv2 */
	BAD("SSLv2 too short", WIRE, "80 08 01 0301 0003 0000", V2_SHORT),
	BAD("SSLv2 cipher specs not /3", WIRE, "80 2d 01 0301 0004 0000 0020 00002f00 R", V2_CIPHER_SPECS),
	BAD("SSLv2 no cipher specs", WIRE, "80 29 01 0301 0000 0000 0020 R", V2_CIPHER_SPECS),
	BAD("SSLv2 session id 8", WIRE, "80 34 01 0301 0003 0008 0020 00002f 0000000000000000 R", V2_SESSION_ID),
	BAD("SSLv2 challenge 8", WIRE, "80 14 01 0301 0003 0000 0008 00002f 0000000000000000", V2_CHALLENGE),
	BAD("SSLv2 challenge 33", WIRE, "80 2d 01 0301 0003 0000 0021 00002f R 00", V2_CHALLENGE),
	BAD("SSLv2 lengths short", WIRE, "80 2d 01 0301 0003 0000 0020 00002f R 00", V2_LENGTHS),

	/* the body */
	BAD("body of 20 bytes", BODY, "0303 000000000000000000000000000000000000", BODY_SHORT),
	BAD("client_version 0x0200", BODY, "0200 R 00 0002 1301 01 00", LEGACY_VERSION),
	BAD("session_id of 33", BODY, "0303 R 21 " "R" "00", SESSION_ID_LEN),
	BAD("session_id past the end", BODY, "0303 R 20 0102", SESSION_ID_OVERRUN),
	BAD("no cipher_suites length", BODY, "0303 R 00 00", CIPHERS_SHORT),
	BAD("cipher_suites past the end", BODY, "0303 R 00 0010 1301 01 00", CIPHERS_OVERRUN),
	BAD("cipher_suites empty", BODY, "0303 R 00 0000 01 00", CIPHERS_EMPTY),
	BAD("cipher_suites odd", BODY, "0303 R 00 0003 1301 c0 01 00", CIPHERS_ODD),
	BAD("no compression_methods", BODY, "0303 R 00 0002 1301", COMPRESSION_SHORT),
	BAD("compression past the end", BODY, "0303 R 00 0002 1301 02 00", COMPRESSION_OVERRUN),
	BAD("compression empty", BODY, "0303 R 00 0002 1301 00", COMPRESSION_EMPTY),
	BAD("one byte of extensions length", BODY, "0303 R 00 0002 1301 01 00 00", EXTS_SHORT),
	BAD("extensions past the end", BODY, "0303 R 00 0002 1301 01 00 0005 0017 0000", EXTS_OVERRUN),
	BAD("garbage after extensions", BODY, "0303 R 00 0002 1301 01 00 0004 0017 0000 ff", EXTS_TRAILING),
	OK("empty extensions block", BODY, "0303 R 00 0002 1301 01 00 0000"),

	/* extensions */
	BAD("half an extension header", EXT, "0017 00", EXT_HEADER),
	BADX("extension past the block", "0017 0004 00", EXT_OVERRUN, 23),
	BADX("key_share twice", "0033 0002 0000 0033 0002 0000", EXT_DUPLICATE, 51),
	BADX("GREASE twice", "0a0a 0000 0a0a 0000", EXT_DUPLICATE, 0x0a0a),
	BADX("unknown type twice", "1234 0000 1234 0001 00", EXT_DUPLICATE, 0x1234),
	BADX("server_name list longer than the extension",
	     "0000 0009 000c 00 0004 74657374", EXT_LIST_OVERRUN, 0),
	BADX("server_name list shorter than the extension",
	     "0000 000a 0007 00 0004 74657374 00", EXT_LIST_TRAILING, 0),
	BADX("server_name empty extension", "0000 0000", EXT_SHORT, 0),
	BADX("server_name empty list", "0000 0002 0000", EXT_LIST_EMPTY, 0),
	BADX("server_name entry header cut", "0000 0004 0002 0000", ENTRY_SHORT, 0),
	BADX("server_name name past the list", "0000 0008 0006 00 0005 74657374", ENTRY_OVERRUN, 0),
	BADX("server_name empty name", "0000 0005 0003 00 0000", ENTRY_EMPTY, 0),
	BADX("server_name two host_names", "0000 000e 000c 00 0003 616263 00 0003 646566",
	     SNI_DUPLICATE, 0),
	BADX("server_name NUL", "0000 0009 0007 00 0004 74650074", SNI_NUL, 0),
	BADX("server_name of 256 bytes", "0000 0105 0103 00 0100 RRRRRRRR", SNI_TOO_LONG, 0),
	BADX("supported_groups odd", "000a 0005 0003 001d00", EXT_LIST_ODD, 10),
	BADX("supported_groups empty", "000a 0002 0000", EXT_LIST_EMPTY, 10),
	BADX("supported_groups overrun", "000a 0004 0004 001d", EXT_LIST_OVERRUN, 10),
	BADX("ec_point_formats empty", "000b 0001 00", EXT_LIST_EMPTY, 11),
	BADX("ec_point_formats trailing", "000b 0003 01 00 00", EXT_LIST_TRAILING, 11),
	BADX("signature_algorithms odd", "000d 0005 0003 040308", EXT_LIST_ODD, 13),
	BADX("signature_algorithms empty", "000d 0002 0000", EXT_LIST_EMPTY, 13),
	BADX("signature_algorithms_cert odd", "0032 0003 0001 04", EXT_LIST_ODD, 50),
	BADX("supported_versions odd", "002b 0002 01 03", EXT_LIST_ODD, 43),
	BADX("supported_versions empty", "002b 0001 00", EXT_LIST_EMPTY, 43),
	BADX("supported_versions 2-byte length", "002b 0004 0002 0304", EXT_LIST_TRAILING, 43),
	BADX("key_share entry cut", "0033 0005 0003 001d00", ENTRY_SHORT, 51),
	BADX("key_share empty key", "0033 0006 0004 001d 0000", ENTRY_EMPTY, 51),
	BADX("key_share key past the list", "0033 0007 0005 001d 0002 00", ENTRY_OVERRUN, 51),
	BADX("key_share same group twice", "0033 000c 000a 001d 0001 00 001d 0001 00",
	     KEY_SHARE_DUPLICATE, 51),
	BADX("ALPN empty list", "0010 0002 0000", EXT_LIST_EMPTY, 16),
	BADX("ALPN empty name", "0010 0004 0002 00 00", ENTRY_EMPTY, 16),
	BADX("ALPN name past the list", "0010 0005 0003 04 683200", ENTRY_OVERRUN, 16),
	BADX("extended_master_secret with data", "0017 0001 00", EXT_NOT_EMPTY, 23),
	BADX("encrypt_then_mac with data", "0016 0002 0000", EXT_NOT_EMPTY, 22),
	BADX("early_data with data", "002a 0004 00000000", EXT_NOT_EMPTY, 42),
	BADX("post_handshake_auth with data", "0031 0001 00", EXT_NOT_EMPTY, 49),
	BADX("renegotiation_info length off", "ff01 0001 01", EXT_LIST_OVERRUN, 0xff01),
	BADX("psk_key_exchange_modes empty", "002d 0001 00", EXT_LIST_EMPTY, 45),
	BADX("pre_shared_key not last",
	     "0029 002f 000a 0004 01020304 00000000 0021 20 " "R" " 0017 0000", PSK_NOT_LAST, 41),
	BADX("pre_shared_key no identities", "0029 0002 0000", EXT_LIST_EMPTY, 41),
	BADX("pre_shared_key identities overrun", "0029 0004 0010 0000", EXT_LIST_OVERRUN, 41),
	BADX("pre_shared_key identity without age", "0029 0008 0006 0004 01020304", ENTRY_SHORT, 41),
	BADX("pre_shared_key binders length", "0029 000f 000a 0004 01020304 00000000 0005 00",
	     PSK_BINDERS_LEN, 41),
	BADX("pre_shared_key binder of 16", "0029 001f 000a 0004 01020304 00000000 0011 10 "
	     "00000000000000000000000000000000", ENTRY_TOO_SHORT, 41),
	BADX("pre_shared_key two binders, one identity",
	     "0029 0050 000a 0004 01020304 00000000 0042 20 R 20 R", PSK_BINDERS, 41),
	BADX("pre_shared_key no binders length", "0029 000c 000a 0004 01020304 00000000",
	     ENTRY_SHORT, 41),
	OK("unknown extension skipped", EXT, "fe0d 0003 010203"),
	OK("empty key_share (HelloRetryRequest coming)", EXT, "0033 0002 0000"),
	OK("renegotiation_info with data", EXT, "ff01 0003 02 0102"),
};

/* The input a row describes. */
static void row_input(const struct row *r, struct b *b)
{
	if (r->kind == WIRE) {
		memset(b, 0, sizeof(*b));
		b_hex(b, r->hex);
		return;
	}
	if (r->kind == BODY) {
		memset(b, 0, sizeof(*b));
		b_hex(b, "16 0301");
		b_open(b, 2);
		b_u8(b, 1);
		b_open(b, 3);
		b_hex(b, r->hex);
		hello_end(b);
		return;
	}
	hello_begin(b, 0x0303, base_ciphers, 3);
	ext_raw(b, 0x0023, "");         /* tested by no row */
	b_hex(b, r->hex);
	hello_end(b);
}

static void test_table(void **state)
{
	static struct b b;
	struct hello h;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		const struct row *r = &rows[i];
		enum hello_reason why;
		enum hello_result res;
		char s[512];
		int n;

		row_input(r, &b);
		res = hello_parse(b.p, b.n, &h, &why);
		n = hello_explain(&h, s, sizeof(s));
		if (res != r->result || why != r->why)
			fail_msg("%s: got %d %s (%s), want %d %s", r->what, res,
				 hello_reason_str(why), s, r->result, hello_reason_str(r->why));
		assert_int_equal(h.err.reason, why);
		assert_true(n > 0 && (size_t)n < sizeof(s));
		if (res == HELLO_BAD || res == HELLO_NOT_TLS) {
			assert_int_equal(h.err.ext, r->ext);
			assert_true(h.err.offset <= b.n);
			assert_null(strstr(s, "%"));
		}
		if (res == HELLO_MORE)
			assert_true(h.need > b.n);
	}
}

/* Every reason is in the table above (but the ones that cannot be reached
 * from a short input: checked elsewhere), with a label and a sentence. */
static void test_reasons(void **state)
{
	bool seen[HELLO_R_COUNT] = { false };
	size_t i;
	int r;

	for (i = 0; i < ARRAY_SIZE(rows); i++)
		seen[rows[i].why] = true;
	seen[HELLO_R_TOO_MANY_RECORDS] = true;  /* test_too_many_records */
	seen[HELLO_R_INTERNAL] = true;          /* a parser bug, never sent */
	for (r = 0; r < HELLO_R_COUNT; r++) {
		const char *label = hello_reason_str((enum hello_reason)r);

		if (!seen[r])
			fail_msg("reason %s has no test row", label);
		assert_true(strlen(label) > 2);
		assert_null(strchr(label, ' '));
	}
	assert_string_equal(hello_reason_str(HELLO_R_COUNT), "unknown");
}

/* The sentence a log line shows. */
static void test_explain(void **state)
{
	static struct b b;
	struct hello h;
	char s[128];

	hello_begin(&b, 0x0303, base_ciphers, 3);
	b_hex(&b, "0000 0009 000c 00 0004 74657374");
	hello_end(&b);
	assert_int_equal(parse(&b, &h, NULL), HELLO_BAD);
	assert_string_equal(explain(&h), "extension server_name: list length 12 exceeds "
			    "extension length 9 less its 2-byte length field");
	/* where: the input offset of the byte after the list length */
	assert_int_equal(h.err.offset, b.n - 7);

	hello_begin(&b, 0x0303, base_ciphers, 3);
	b_hex(&b, "fafa 0000 fafa 0000");
	hello_end(&b);
	assert_int_equal(parse(&b, &h, NULL), HELLO_BAD);
	assert_string_equal(explain(&h), "extension GREASE 0xfafa: sent twice (RFC 8446 4.2: "
			    "no more than one extension of the same type)");

	hello_begin(&b, 0x0303, base_ciphers, 3);
	b_hex(&b, "4321 0001 00 4321 0000");
	hello_end(&b);
	assert_int_equal(parse(&b, &h, NULL), HELLO_BAD);
	assert_memory_equal(explain(&h), "extension 0x4321: sent twice", 28);

	assert_int_equal(hello_parse((const uint8_t *)"EHLO", 4, &h, NULL), HELLO_NOT_TLS);
	assert_string_equal(explain(&h), "first byte 0x45 is neither a TLS record header "
			    "nor an SSLv2 header");

	/* a short buffer: truncated, NUL-terminated, full length returned */
	assert_int_equal(hello_explain(&h, s, 10), 66);
	assert_string_equal(s, "first byt");
	assert_int_equal(hello_explain(&h, NULL, 0), 66);

	assert_string_equal(hello_ext_name(16), "application_layer_protocol_negotiation");
	assert_null(hello_ext_name(0x4321));
	assert_string_equal(hello_flag_name(HELLO_FB_EMS), "ems");
	assert_null(hello_flag_name(HELLO_FB_COUNT));
}

/* A rejection, once decided, stays whatever follows; before, HELLO_MORE. */
static void test_prefixes_of_bad(void **state)
{
	static struct b b;
	struct hello h, whole;
	enum hello_result r, rw;
	size_t i, k;

	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		if (rows[i].result == HELLO_MORE)
			continue;
		row_input(&rows[i], &b);
		rw = hello_parse(b.p, b.n, &whole, NULL);
		for (k = 0; k < b.n; k++) {
			r = hello_parse(b.p, k, &h, NULL);
			if (r == HELLO_MORE) {
				assert_true(h.need > k);
				continue;
			}
			if (r != rw || h.err.reason != whole.err.reason)
				fail_msg("%s: prefix %zu gives %d %s, the whole %d %s", rows[i].what, k,
					 r, hello_reason_str(h.err.reason), rw,
					 hello_reason_str(whole.err.reason));
		}
	}
}

/* ------------------------------------------------------- fragmentation --- */

/* openssl s_client -tls1_3 -servername mail.example.test -alpn smtp,imap
 * (OpenSSL 3.0, Debian 12), recorded off the wire. */
static const char openssl_tls13[] =
	"16030101060100010203034af999fd9ede77579e96ef7f3e124c449378d26b93"
	"f900eae0b2c8b2fc47cc6e20a3bb2b46ba1b17b8d525c612c336c803817a5473"
	"9bd9d2e0ff7542783252 55f80008130213031301 00ff0100 00b1"
	"0000 0016 0014 0000 11 6d61696c2e6578616d706c652e74657374"
	"000b 0004 03 000102"
	"000a 0016 0014 001d 0017 001e 0019 0018 0100 0101 0102 0103 0104"
	"0023 0000"
	"0010 000c 000a 04736d7470 04696d6170"
	"0016 0000 0017 0000"
	"000d 001e 001c 0403 0503 0603 0807 0808 0809 080a 080b 0804 0805 0806 0401 0501 0601"
	"002b 0003 02 0304"
	"002d 0002 01 01"
	"0033 0026 0024 001d 0020 6b94b9eb8070a12d80d804cda8b5859d9c5e28f281e1970484e4692f7fd2d77b";

static void check_openssl_tls13(const struct hello *h)
{
	static const uint16_t groups[] = { 0x001d, 0x0017, 0x001e, 0x0019, 0x0018,
					   0x0100, 0x0101, 0x0102, 0x0103, 0x0104 };

	assert_string_equal(h->sni, "mail.example.test");
	assert_int_equal(h->alpn.n, 2);
	assert_string_equal(h->alpn.v[0].name, "smtp");
	assert_string_equal(h->alpn.v[1].name, "imap");
	assert_int_equal(h->ciphers.n, 4);
	assert_int_equal(h->ciphers.v[3], 0x00ff);
	assert_int_equal(h->groups.n, 10);
	assert_memory_equal(h->groups.v, groups, sizeof(groups));
	assert_int_equal(h->versions.n, 1);
	assert_int_equal(h->version, 0x0304);
	assert_int_equal(h->key_shares.v[0], 0x001d);
	assert_int_equal(h->sigalgs.n, 14);
	assert_int_equal(h->psk_modes, 2);
	assert_true(h->flags & HELLO_F_EMS);
	assert_true(h->flags & HELLO_F_ETM);
	assert_true(h->flags & HELLO_F_RENEG_SCSV);
	assert_false(h->flags & HELLO_F_GREASE);
	assert_string_equal(h->ja3, "771,4866-4867-4865-255,0-11-10-35-16-22-23-13-43-45-51,"
			    "29-23-30-25-24-256-257-258-259-260,0-1-2");
	assert_memory_equal(h->ja4, "t13d0411sp_", 11);
}

/* Two summaries equal but for where they came from. */
static void assert_same_hello(const struct hello *a, const struct hello *b)
{
	struct hello x = *a, y = *b;

	x.consumed = y.consumed = 0;
	x.records = y.records = 0;
	assert_memory_equal(&x, &y, sizeof(x));
}

static void test_fragmentation(void **state)
{
	static uint8_t one[1024], two[1024];
	static struct hello whole, h;
	size_t n, msg, k, p;

	n = unhex(openssl_tls13, one, sizeof(one));
	assert_int_equal(hello_parse(one, n, &whole, NULL), HELLO_OK);
	assert_int_equal(whole.consumed, n);
	check_openssl_tls13(&whole);
	msg = n - 5;

	/* every split of the handshake message into two records (the second
	 * record says TLS 1.2, as a TLS 1.3 client's later records do), each
	 * fed in every prefix length, as TCP segments might bring it */
	for (k = 1; k < msg; k++) {
		size_t len = msg + 10;

		memcpy(two, one, 5);
		two[3] = (uint8_t)(k >> 8);
		two[4] = (uint8_t)k;
		memcpy(two + 5, one + 5, k);
		memcpy(two + 5 + k, "\x16\x03\x03", 3);
		two[8 + k] = (uint8_t)((msg - k) >> 8);
		two[9 + k] = (uint8_t)(msg - k);
		memcpy(two + 10 + k, one + 5 + k, msg - k);
		for (p = 0; p < len; p++) {
			enum hello_result r = hello_parse(two, p, &h, NULL);

			if (r != HELLO_MORE)
				fail_msg("split %zu, prefix %zu: %d (%s)", k, p, r, explain(&h));
			assert_true(h.need > p && h.need <= len);
		}
		assert_int_equal(hello_parse(two, len, &h, NULL), HELLO_OK);
		assert_int_equal(h.consumed, len);
		assert_int_equal(h.records, 2);
		assert_same_hello(&h, &whole);
	}
}

/* A hello cut into records of one byte each, then too many of them. */
static void test_too_many_records(void **state)
{
	static uint8_t one[1024], frag[8192];
	static struct hello whole, h;
	size_t n, i, len = 0;

	n = unhex(openssl_tls13, one, sizeof(one));
	assert_int_equal(hello_parse(one, n, &whole, NULL), HELLO_OK);
	for (i = 5; i < n; i++) {
		memcpy(frag + len, "\x16\x03\x01\x00\x01", 5);
		frag[len + 5] = one[i];
		len += 6;
	}
	assert_int_equal(hello_parse(frag, len, &h, NULL), HELLO_OK);
	assert_int_equal(h.records, n - 5);
	assert_same_hello(&h, &whole);

	/* HELLO_MAX_RECORDS + 1 one-byte records of a big enough hello */
	{
		static struct b b;
		static uint8_t wire[HELLO_MAX_MSG * 6];
		enum hello_reason why;

		hello_begin(&b, 0x0303, base_ciphers, 3);
		ext_begin(&b, 21);
		b_fill(&b, 0, HELLO_MAX_RECORDS);
		b_close(&b);
		hello_end(&b);
		for (len = 0, i = 5; i < b.n; i++) {
			memcpy(wire + len, "\x16\x03\x01\x00\x01", 5);
			wire[len + 5] = b.p[i];
			len += 6;
		}
		assert_int_equal(hello_parse(wire, len, &h, &why), HELLO_BAD);
		assert_int_equal(why, HELLO_R_TOO_MANY_RECORDS);
		assert_int_equal(h.err.offset, HELLO_MAX_RECORDS * 6);
	}
}

/* --------------------------------------------------------------- SSLv2 --- */

/* An SSLv2-compatible CLIENT-HELLO as old Java and IE clients sent it:
 * TLS 1.0, one SSLv2-only cipher (RC4-MD5 0x010080), TLS suites, SCSV. */
static void test_sslv2(void **state)
{
	static const char v2[] =
		"80 2b 01 0301 0012 0000 0010"
		"010080 000004 00002f 000035 0000ff 0a0a0a"     /* last: not 00XXXX */
		"0102030405060708090a0b0c0d0e0f10";
	uint8_t in[128];
	struct hello h;
	enum hello_reason why;
	size_t n = unhex(v2, in, sizeof(in)), k;

	for (k = 0; k < n; k++)
		assert_int_equal(hello_parse(in, k, &h, NULL), HELLO_MORE);
	assert_int_equal(hello_parse(in, n, &h, &why), HELLO_OK);
	assert_int_equal(why, HELLO_R_NONE);
	assert_int_equal(h.consumed, n);
	assert_true(h.flags & HELLO_F_SSLV2);
	assert_true(h.flags & HELLO_F_RENEG_SCSV);
	assert_int_equal(h.record_version, 0x0002);
	assert_int_equal(h.legacy_version, 0x0301);
	assert_int_equal(h.version, 0x0301);
	assert_int_equal(h.ciphers.n, 4);
	assert_int_equal(h.ciphers.v[0], 0x0004);
	assert_int_equal(h.ciphers.v[3], 0x00ff);
	assert_int_equal(h.ciphers_v2only, 2);
	assert_int_equal(h.exts.n, 0);
	/* SSLv2-only specs are not TLS suites: left out of both fingerprints */
	assert_string_equal(h.ja3, "769,4-47-53-255,,,");
	assert_memory_equal(h.ja4, "t10i040000_", 11);
	assert_string_equal(h.ja4 + 24, "000000000000");

	/* an SSL 2.0 client (version 0x0002), with a 16-byte session id */
	n = unhex("80 2f 01 0002 0006 0010 0010 010080 0700c0"
		  "11111111111111111111111111111111 22222222222222222222222222222222", in, sizeof(in));
	assert_int_equal(hello_parse(in, n, &h, &why), HELLO_OK);
	assert_int_equal(h.legacy_version, 0x0002);
	assert_int_equal(h.session_id_len, 16);
	assert_int_equal(h.ciphers.n, 0);
	assert_int_equal(h.ciphers_v2only, 2);
	assert_string_equal(h.ja3, "2,,,,");
	assert_string_equal(h.ja4, "ts2i000000_000000000000_000000000000");
}

/* ------------------------------------------------------------ size caps --- */

static void test_oversized(void **state)
{
	static struct b b;
	static uint16_t many[300];
	static char ja3[4096];
	struct hello h;
	enum hello_reason why;
	unsigned char md[16];
	unsigned mdlen, i;
	size_t len;
	char hex[33];

	/* exactly HELLO_MAX_MSG, in two records (2^14 at most each): fine */
	hello_begin(&b, 0x0303, base_ciphers, 3);
	ext_begin(&b, 21);
	b_fill(&b, 0, HELLO_MAX_MSG - (b.n - 5));
	hello_end(&b);
	assert_int_equal(b.n - 5, HELLO_MAX_MSG);
	{
		static uint8_t w[HELLO_MAX_MSG + 20];
		size_t first = 16384, rest = HELLO_MAX_MSG - first;

		memcpy(w, "\x16\x03\x01\x40\x00", 5);
		memcpy(w + 5, b.p + 5, first);
		memcpy(w + 5 + first, "\x16\x03\x01", 3);
		w[8 + first] = (uint8_t)(rest >> 8);
		w[9 + first] = (uint8_t)rest;
		memcpy(w + 10 + first, b.p + 5 + first, rest);
		len = HELLO_MAX_MSG + 10;
		assert_int_equal(hello_parse(w, len, &h, &why), HELLO_OK);
		assert_int_equal(h.msg_len, HELLO_MAX_MSG);
		assert_int_equal(h.padding_len, HELLO_MAX_MSG - 4 - 2 - 32 - 1 - 32 - 2 - 6 - 2 - 2 - 4);

		/* one byte more: rejected as soon as the length is read */
		w[8 + first] = (uint8_t)((rest + 1) >> 8);
		w[9 + first] = (uint8_t)(rest + 1);
		w[8]++;                 /* handshake length + 1 */
		assert_int_equal(hello_parse(w, 9, &h, &why), HELLO_BAD);
		assert_int_equal(why, HELLO_R_TOO_LARGE);
		assert_int_equal(h.err.a, HELLO_MAX_MSG + 1);
	}

	/* more entries than the summary keeps: counted, first kept, truncated
	 * flag, fingerprints over all of them */
	for (i = 0; i < ARRAY_SIZE(many); i++)
		many[i] = (uint16_t)(0x0100 + i);
	hello_begin(&b, 0x0303, many, ARRAY_SIZE(many));
	ext_u16s(&b, 10, 2, many, 100);
	ext_u16s(&b, 13, 2, many, 60);
	for (i = 0; i < 60; i++)
		ext_raw(&b, 0x2000 + i, "");
	{
		static const char *const alpn[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i",
						    "a-protocol-name-longer-than-32-bytes-kept", NULL };

		ext_alpn(&b, alpn);
	}
	hello_end(&b);
	assert_ok(&b, &h);
	assert_true(h.flags & HELLO_F_TRUNCATED);
	assert_int_equal(h.ciphers.n, 300);
	assert_int_equal(h.ciphers.kept, HELLO_CIPHERS_MAX);
	assert_int_equal(h.ciphers.v[HELLO_CIPHERS_MAX - 1], 0x0100 + HELLO_CIPHERS_MAX - 1);
	assert_int_equal(h.groups.n, 100);
	assert_int_equal(h.groups.kept, HELLO_GROUPS_MAX);
	assert_int_equal(h.sigalgs.n, 60);
	assert_int_equal(h.sigalgs.kept, HELLO_SIGALGS_MAX);
	assert_int_equal(h.exts.n, 63);
	assert_int_equal(h.exts.kept, HELLO_EXTS_MAX);
	assert_int_equal(h.alpn.n, 10);
	assert_int_equal(h.alpn.kept, HELLO_ALPN_MAX);

	/* JA3 over the full lists: built here the obvious way */
	len = (size_t)snprintf(ja3, sizeof(ja3), "771,");
	for (i = 0; i < 300; i++)
		len += (size_t)snprintf(ja3 + len, sizeof(ja3) - len, "%s%u", i ? "-" : "", 0x0100 + i);
	len += (size_t)snprintf(ja3 + len, sizeof(ja3) - len, ",10-13");
	for (i = 0; i < 60; i++)
		len += (size_t)snprintf(ja3 + len, sizeof(ja3) - len, "-%u", 0x2000 + i);
	len += (size_t)snprintf(ja3 + len, sizeof(ja3) - len, "-16,");
	for (i = 0; i < 100; i++)
		len += (size_t)snprintf(ja3 + len, sizeof(ja3) - len, "%s%u", i ? "-" : "", 0x0100 + i);
	len += (size_t)snprintf(ja3 + len, sizeof(ja3) - len, ",");
	assert_true(len > HELLO_JA3_MAX);
	assert_true(h.flags & HELLO_F_JA3_TRUNCATED);
	assert_int_equal(strlen(h.ja3), HELLO_JA3_MAX - 1);
	assert_memory_equal(h.ja3, ja3, HELLO_JA3_MAX - 1);
	assert_true(EVP_Digest(ja3, len, md, &mdlen, EVP_md5(), NULL));
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	assert_string_equal(h.ja3_md5, hex);
	/* JA4 counts stop at 99 */
	assert_memory_equal(h.ja4, "t12i9963aa_", 11);
}

/* ---------------------------------------------------- JA3 / JA4 values --- */

static const uint16_t spec_ciphers[] = {
	0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9,
	0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035 };
static const uint16_t spec_sigalgs[] = {
	0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601 };

/*
 * A hello with the extensions of JA4.md's example in its order:
 * 001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,
 * 000a,0015 (GREASE added first and last, and in the ciphers, groups and
 * versions, as Chrome sends it: the fingerprint must not see them).
 * sigalgs: NULL for the spec's, else those.
 */
static void spec_hello(struct b *b, const uint16_t *sig, size_t nsig)
{
	static uint16_t ciphers[16];
	static const uint16_t versions[] = { 0x4a4a, 0x0304, 0x0303 };
	static const uint16_t groups[] = { 0x4a4a, 0x001d, 0x0017, 0x0018 };
	static const uint16_t shares[] = { 0x4a4a, 0x001d };
	static const char *const alpn[] = { "h2", "http/1.1", NULL };

	ciphers[0] = 0x3a3a;
	memcpy(ciphers + 1, spec_ciphers, sizeof(spec_ciphers));
	hello_begin(b, 0x0303, ciphers, 16);
	ext_raw(b, 0x2a2a, "");
	ext_raw(b, 0x001b, "02 0002");
	ext_sni(b, "example.com");
	ext_key_share(b, shares, 2);
	ext_alpn(b, alpn);
	ext_raw(b, 0x4469, "0003 026832");
	ext_raw(b, 0x0017, "");
	ext_raw(b, 0x002d, "01 01");
	ext_u16s(b, 0x000d, 2, sig ? sig : spec_sigalgs, sig ? nsig : ARRAY_SIZE(spec_sigalgs));
	ext_raw(b, 0x0005, "01 0000 0000");
	ext_raw(b, 0x0023, "");
	ext_raw(b, 0x0012, "");
	ext_u16s(b, 0x002b, 1, versions, ARRAY_SIZE(versions));
	ext_raw(b, 0xff01, "00");
	ext_raw(b, 0x000b, "01 00");
	ext_u16s(b, 0x000a, 2, groups, ARRAY_SIZE(groups));
	ext_raw(b, 0x0015, "0000");
	ext_raw(b, 0x3a3a, "00");
	hello_end(b);
}

/*
 * FoxIO-LLC/ja4 technical_details/JA4.md, section "Example":
 *   JA4 = t13d1516h2_8daaf6152771_e5627efa2ab1
 * and section "Extension hash": the same extensions without signature
 * algorithms hash to 6d807ffa2a79 (here: a GREASE-only list, which JA4 must
 * treat as none: "ignore GREASE values anywhere", FoxIO-LLC/ja4 issue 305).
 */
static void test_ja4_spec_example(void **state)
{
	static const uint16_t grease_only[] = { 0x0a0a };
	static const uint16_t grease_mixed[] = { 0x0a0a, 0x0403, 0x0804, 0x0401, 0x0503,
						 0x0805, 0x0501, 0x0806, 0x0601 };
	static struct b b;
	struct hello h;

	spec_hello(&b, NULL, 0);
	assert_ok(&b, &h);
	assert_string_equal(h.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");

	spec_hello(&b, grease_mixed, ARRAY_SIZE(grease_mixed));
	assert_ok(&b, &h);
	assert_string_equal(h.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");

	spec_hello(&b, grease_only, 1);
	assert_ok(&b, &h);
	assert_string_equal(h.ja4, "t13d1516h2_8daaf6152771_6d807ffa2a79");
}

/*
 * JA4.md "ALPN Extension Value": first and last characters of the first
 * protocol, hex digits if either is not alphanumeric; one character counts
 * as both; no ALPN: 00.
 */
static void test_ja4_alpn(void **state)
{
	static const struct {
		const char *hex;        /* the first protocol name */
		const char *want;
	} cases[] = {
		{ "6832", "h2" },                       /* "h2" */
		{ "687474702f312e31", "h1" },           /* "http/1.1" */
		{ "61", "aa" },                         /* "a" */
		{ "ab", "ab" },
		{ "abcd", "ad" },
		{ "30ab", "3b" },
		{ "3031abcd", "3d" },
		{ "30abcd31", "01" },
		{ "2f", "2f" },                         /* "/" */
	};
	static struct b b;
	struct hello h;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t name[16];
		size_t n = unhex(cases[i].hex, name, sizeof(name));

		hello_begin(&b, 0x0303, base_ciphers, 3);
		ext_begin(&b, 16);
		b_open(&b, 2);
		b_u8(&b, (unsigned)n);
		b_mem(&b, name, n);
		b_hex(&b, "02 6832");
		b_close(&b);
		b_close(&b);
		hello_end(&b);
		assert_ok(&b, &h);
		if (memcmp(h.ja4 + 8, cases[i].want, 2))
			fail_msg("ALPN %s: %.2s, want %s", cases[i].hex, h.ja4 + 8, cases[i].want);
	}
	hello_begin(&b, 0x0303, base_ciphers, 3);
	hello_end(&b);
	assert_ok(&b, &h);
	assert_memory_equal(h.ja4, "t12i030000_", 11);
}

/*
 * salesforce/ja3 README, "How it works":
 *   769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0
 *     --> ada70206e40642a3e4461f35503241d5
 *   769,4-5-10-9-100-98-3-6-19-18-99,,, --> de350869b8c85de67a350c8d186f11e6
 * Built as TLS 1.0 hellos with those fields.
 */
static void test_ja3_readme(void **state)
{
	static const uint16_t c1[] = { 47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4 };
	static const uint16_t c2[] = { 4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99 };
	static const uint16_t curves[] = { 23, 24, 25 };
	static struct b b;
	struct hello h;

	hello_begin(&b, 0x0301, c1, ARRAY_SIZE(c1));
	ext_sni(&b, "example.com");
	ext_u16s(&b, 10, 2, curves, 3);
	ext_raw(&b, 11, "01 00");
	hello_end(&b);
	assert_ok(&b, &h);
	assert_string_equal(h.ja3, "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0");
	assert_string_equal(h.ja3_md5, "ada70206e40642a3e4461f35503241d5");

	hello_begin(&b, 0x0301, c2, ARRAY_SIZE(c2));
	b.n -= 2;               /* no extensions block */
	b.depth--;
	hello_end(&b);
	assert_ok(&b, &h);
	assert_string_equal(h.ja3, "769,4-5-10-9-100-98-3-6-19-18-99,,,");
	assert_string_equal(h.ja3_md5, "de350869b8c85de67a350c8d186f11e6");
}

/*
 * A Chrome 143 ClientHello as browserleaks.com fingerprinted it (published in
 * github.com/service0427/v2_cp_app, tls.md): ja3_text, ja3_hash, ja4 and
 * ja4_ro give every field the fingerprints read, in wire order:
 *   ja3  771,4865-...-53,45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,
 *        4588-29-23-24,0 = 98487aa16281980e7d1120d399efb6a4
 *   ja4  t13d1516h2_8daaf6152771_d8a2da3f94cd
 * GREASE added where Chrome puts it.
 */
static void test_chrome_browserleaks(void **state)
{
	static const uint16_t ciphers[] = { 0x9a9a, 4865, 4866, 4867, 49195, 49199, 49196, 49200,
					    52393, 52392, 49171, 49172, 156, 157, 47, 53 };
	static const uint16_t groups[] = { 0x9a9a, 4588, 29, 23, 24 };
	static const uint16_t shares[] = { 0x9a9a, 4588, 29 };
	static const uint16_t versions[] = { 0x9a9a, 0x0304, 0x0303 };
	static const char *const alpn[] = { "h2", "http/1.1", NULL };
	static struct b b;
	struct hello h;

	hello_begin(&b, 0x0303, ciphers, ARRAY_SIZE(ciphers));
	ext_raw(&b, 0x9a9a, "");
	ext_raw(&b, 45, "01 01");
	ext_key_share(&b, shares, ARRAY_SIZE(shares));
	ext_alpn(&b, alpn);
	ext_raw(&b, 65037, "00 0001 0001 12 0020 " "R" " 0010 00000000000000000000000000000000");
	ext_raw(&b, 23, "");
	ext_raw(&b, 17613, "0003 026832");
	ext_sni(&b, "tls.browserleaks.com");
	ext_raw(&b, 11, "01 00");
	ext_u16s(&b, 10, 2, groups, ARRAY_SIZE(groups));
	ext_u16s(&b, 43, 1, versions, ARRAY_SIZE(versions));
	ext_raw(&b, 65281, "00");
	ext_raw(&b, 35, "");
	ext_raw(&b, 18, "");
	ext_raw(&b, 5, "01 0000 0000");
	ext_u16s(&b, 13, 2, spec_sigalgs, ARRAY_SIZE(spec_sigalgs));
	ext_raw(&b, 27, "02 0002");
	ext_raw(&b, 0xdada, "00");
	hello_end(&b);
	assert_ok(&b, &h);
	assert_string_equal(h.ja3, "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-"
			    "49172-156-157-47-53,45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-"
			    "13-27,4588-29-23-24,0");
	assert_string_equal(h.ja3_md5, "98487aa16281980e7d1120d399efb6a4");
	assert_string_equal(h.ja4, "t13d1516h2_8daaf6152771_d8a2da3f94cd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_extension_values),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_prefixes_of_bad),
		cmocka_unit_test(test_fragmentation),
		cmocka_unit_test(test_too_many_records),
		cmocka_unit_test(test_sslv2),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_ja4_spec_example),
		cmocka_unit_test(test_ja4_alpn),
		cmocka_unit_test(test_ja3_readme),
		cmocka_unit_test(test_chrome_browserleaks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
