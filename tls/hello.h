/*
 * tls/hello: the ClientHello parser. A pure function of the bytes a client
 * sent first, as they came off the wire (TLS records, or the SSLv2-compatible
 * CLIENT-HELLO of RFC 5246 E.2), that returns a fixed-size summary for quirk
 * detection, certificate selection and the failure explainer: versions,
 * cipher suites, groups, signature algorithms, SNI, ALPN, the flags that
 * matter (EMS, SCSVs, PSK...), and the JA3 and JA4 fingerprints.
 *
 * No I/O, no globals, no allocation of its own (OpenSSL's EVP digests for
 * MD5 and SHA-256 allocate their context), no recursion, no VLA. Stack use
 * is bounded: about 42 KiB, for a scratch copy of the full lists that the
 * fingerprints are computed over and a set of the extension types met.
 *
 * Limits:
 *   - the ClientHello handshake message may be at most HELLO_MAX_MSG bytes
 *     (4-byte handshake header included), spread over at most
 *     HELLO_MAX_RECORDS records; beyond either it is rejected;
 *   - each list in struct hello keeps its first entries only (HELLO_*_MAX);
 *     the count of what was sent is kept whole, HELLO_F_TRUNCATED is set,
 *     and the fingerprints are computed over the full lists all the same. A
 *     legal hello is never rejected for being long.
 */
#ifndef SLUICE_HELLO_H
#define SLUICE_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HELLO_MAX_MSG        32768  /* ClientHello message, header included */
#define HELLO_MAX_RECORDS    1024   /* records it may be fragmented into */

#define HELLO_CIPHERS_MAX    128
#define HELLO_EXTS_MAX       48
#define HELLO_GROUPS_MAX     32
#define HELLO_POINT_FORMATS_MAX 8
#define HELLO_SIGALGS_MAX    48
#define HELLO_VERSIONS_MAX   8
#define HELLO_KEY_SHARES_MAX 8
#define HELLO_ALPN_MAX       8
#define HELLO_ALPN_NAME_MAX  32     /* bytes kept of each protocol name */
#define HELLO_SNI_MAX        255    /* longest host_name accepted (as OpenSSL) */
#define HELLO_JA3_MAX        1024   /* JA3 string kept, NUL included */
#define HELLO_JA4_LEN        36     /* "t13d1516h2_8daaf6152771_e5627efa2ab1" */

enum hello_result {
	HELLO_OK,       /* *out holds the summary; out->consumed bytes made it */
	HELLO_MORE,     /* incomplete: call again with more bytes (the same
			   bytes first), at least out->need of them */
	HELLO_NOT_TLS,  /* the first bytes are not TLS at all (a plaintext
			   client): decided from the first 1 to 5 bytes */
	HELLO_BAD,      /* TLS, but not a well-formed ClientHello; out->err */
};

enum hello_reason {
#define R(name, label, format) HELLO_R_##name,
#include "hello_reasons.def"
#undef R
	HELLO_R_COUNT
};

/* Flags of struct hello: X(name, label). */
#define HELLO_FLAGS(X) \
	X(SSLV2,              "sslv2")              /* SSLv2-compatible CLIENT-HELLO */ \
	X(SNI,                "sni")                /* server_name extension present */ \
	X(ALPN,               "alpn")               /* ALPN extension present */ \
	X(EMS,                "ems")                /* extended_master_secret (RFC 7627) */ \
	X(ETM,                "etm")                /* encrypt_then_mac (RFC 7366) */ \
	X(RENEG_INFO,         "reneg_info")         /* renegotiation_info (RFC 5746) */ \
	X(RENEG_SCSV,         "reneg_scsv")         /* TLS_EMPTY_RENEGOTIATION_INFO_SCSV 0x00ff */ \
	X(FALLBACK_SCSV,      "fallback_scsv")      /* TLS_FALLBACK_SCSV 0x5600 (RFC 7507) */ \
	X(SESSION_TICKET,     "session_ticket")     /* session_ticket (RFC 5077) */ \
	X(PSK,                "psk")                /* pre_shared_key (RFC 8446 4.2.11) */ \
	X(PSK_MODES,          "psk_modes")          /* psk_key_exchange_modes */ \
	X(EARLY_DATA,         "early_data")         /* early_data */ \
	X(PADDING,            "padding")            /* padding (RFC 7685) */ \
	X(PADDING_NONZERO,    "padding_nonzero")    /* padding with non-zero bytes */ \
	X(STATUS_REQUEST,     "status_request")     /* OCSP stapling asked for */ \
	X(SUPPORTED_VERSIONS, "supported_versions") /* supported_versions present */ \
	X(KEY_SHARE,          "key_share")          /* key_share present */ \
	X(POST_HS_AUTH,       "post_handshake_auth") \
	X(COMPRESSION,        "compression")        /* a method other than null */ \
	X(GREASE,             "grease")             /* a GREASE value anywhere (RFC 8701) */ \
	X(TRUNCATED,          "truncated")          /* a list kept only in part */ \
	X(JA3_TRUNCATED,      "ja3_truncated")      /* ja3[] holds the string's start */

enum hello_flag_bit {
#define X(name, label) HELLO_FB_##name,
	HELLO_FLAGS(X)
#undef X
	HELLO_FB_COUNT
};

enum {
#define X(name, label) HELLO_F_##name = 1u << HELLO_FB_##name,
	HELLO_FLAGS(X)
#undef X
};

/* A list of at most max entries: n were sent, the first kept are in v. */
#define HELLO_LIST(type, max) struct { unsigned n, kept; type v[max]; }

struct hello_alpn {
	uint8_t len;                         /* the protocol name's length as sent */
	char name[HELLO_ALPN_NAME_MAX + 1];  /* its first bytes, NUL-terminated */
};

/* Where and why a ClientHello was rejected; hello_explain() says it. */
struct hello_err {
	enum hello_reason reason;
	int ext;                /* extension it is in, or -1 */
	unsigned long a, b, c;  /* the numbers of the reason's sentence */
	size_t offset;          /* input offset at which it was found */
};

struct hello {
	size_t consumed;          /* HELLO_OK: input bytes of the records that
				     carried the ClientHello (what follows is
				     not the parser's) */
	size_t need;              /* HELLO_MORE: useful input length, at least */
	unsigned records;         /* how many records carried it */
	uint32_t msg_len;         /* handshake message length with its header
				     (SSLv2: the message after the 2-byte header) */
	uint16_t record_version;  /* of the first record; 0x0002 for SSLv2 */
	uint16_t legacy_version;  /* ClientHello.client_version */
	uint16_t version;         /* highest offered: supported_versions minus
				     GREASE (0 if it held only GREASE) when sent,
				     else client_version (as JA4 counts it) */
	uint8_t session_id_len;
	uint8_t compression_n;    /* compression methods offered */
	uint32_t flags;           /* HELLO_F_* */

	HELLO_LIST(uint16_t, HELLO_CIPHERS_MAX) ciphers;      /* in order, SCSVs and
				     GREASE included; SSLv2 specs 0x00XXXX as 0xXXXX */
	unsigned ciphers_v2only;  /* SSLv2 specs with a non-zero first byte:
				     not TLS suites, counted only */
	HELLO_LIST(uint16_t, HELLO_EXTS_MAX) exts;            /* types in order */
	HELLO_LIST(uint16_t, HELLO_GROUPS_MAX) groups;        /* supported_groups */
	HELLO_LIST(uint8_t, HELLO_POINT_FORMATS_MAX) point_formats;
	HELLO_LIST(uint16_t, HELLO_SIGALGS_MAX) sigalgs;      /* signature_algorithms */
	HELLO_LIST(uint16_t, HELLO_SIGALGS_MAX) sigalgs_cert; /* signature_algorithms_cert */
	HELLO_LIST(uint16_t, HELLO_VERSIONS_MAX) versions;    /* supported_versions */
	HELLO_LIST(uint16_t, HELLO_KEY_SHARES_MAX) key_shares; /* key_share groups */
	HELLO_LIST(struct hello_alpn, HELLO_ALPN_MAX) alpn;   /* protocols in order */
	uint8_t psk_modes;        /* bit m: psk_key_exchange_mode m (m < 8) */
	uint8_t reneg_info_len;   /* renegotiated_connection length (0 initially) */
	uint16_t padding_len;
	uint16_t ticket_len;      /* session_ticket data (0: asks for a new one) */
	unsigned psk_identities;
	uint16_t sni_len;         /* 0: no host_name */
	char sni[HELLO_SNI_MAX + 1];

	char ja3[HELLO_JA3_MAX];  /* "SSLVersion,Ciphers,Extensions,Curves,PointFormats" */
	char ja3_md5[33];         /* its MD5 (of the whole string), hex */
	char ja4[HELLO_JA4_LEN + 1];

	struct hello_err err;     /* HELLO_NOT_TLS, HELLO_BAD: why */
};

/*
 * Parse the first bytes a client sent, buf[0, len), always from their start
 * (no state is kept between calls). Returns HELLO_MORE until a whole
 * ClientHello is there: call again with the same bytes and more, once there
 * are out->need of them. A decision, once made, stays the same whatever
 * bytes follow. On HELLO_NOT_TLS and HELLO_BAD, *why (if why is not NULL)
 * and out->err say why; on HELLO_OK and HELLO_MORE *why is HELLO_R_NONE.
 * *out is cleared first; on HELLO_BAD the fields read before the problem
 * stay filled in (the SNI, say) and the fingerprints stay empty. Each call
 * reads all of buf: O(len).
 */
enum hello_result hello_parse(const uint8_t *buf, size_t len, struct hello *out,
			      enum hello_reason *why);

/* Short stable label of a reason, for logs and metrics ("ext_list_overrun"). */
const char *hello_reason_str(enum hello_reason why);

/* The rejection in words into buf, e.g. "extension server_name: list length 12
 * exceeds extension length 9 less its 2-byte length field". Returns what
 * snprintf returns. */
int hello_explain(const struct hello *h, char *buf, size_t len);

/* IANA name of an extension type ("server_name"), or NULL if unknown. */
const char *hello_ext_name(uint16_t type);

/* Label of flag bit (HELLO_FB_*), or NULL. */
const char *hello_flag_name(unsigned bit);

/* A GREASE value (RFC 8701 2): 0x0a0a, 0x1a1a ... 0xfafa. */
static inline bool hello_is_grease(uint16_t v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

#endif
