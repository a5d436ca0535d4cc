/*
 * tls/explain_input: the two ways `sluice explain` takes a ClientHello,
 * both ending in the struct hello that tls/hello makes of real traffic.
 *
 *   - hex, as people copy it: Wireshark's "Copy as Hex Dump" (offsets,
 *     then bytes, then an ASCII column), "as a Hex Stream", xxd and
 *     tcpdump -X dumps, bytes separated by spaces, colons or commas, with
 *     or without 0x or \x; a TLS record, a bare handshake message, or a
 *     whole frame (lower-layer headers are skipped up to the record);
 *   - fields: versions, suites, groups, key shares, signature algorithms
 *     (and _cert), SNI and a few options, by IANA or OpenSSL names or by
 *     number, built into ClientHello bytes and parsed like the real thing.
 *
 * Pure functions (no I/O, no globals, no allocation). Errors say where:
 * "line 3, column 17: 'zz' is not a hex byte", "ciphers: item 2
 * 'AES129-SHA' is not a cipher suite sluice knows".
 */
#ifndef SLUICE_EXPLAIN_INPUT_H
#define SLUICE_EXPLAIN_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "hello.h"

/* The longest input in bytes: a ClientHello message at its limit, in
 * records, behind a frame's headers. */
#define EXPLAIN_BYTES_MAX (HELLO_MAX_MSG + 4096)

struct explain_fields {
	const char *versions;     /* "tls1.2,tls1.3"; NULL: both */
	const char *ciphers;      /* required: "TLS_AES_128_GCM_SHA256,ECDHE-RSA-AES128-GCM-SHA256,0xc02f" */
	const char *groups;       /* "x25519,P-256,23"; NULL: no supported_groups */
	const char *key_shares;   /* TLS 1.3 shares; NULL: the first group */
	const char *sigalgs;      /* "ecdsa_secp256r1_sha256,RSA+SHA256,0x0804"; NULL: not sent */
	const char *sigalgs_cert; /* NULL: not sent */
	const char *sni;          /* NULL: no server_name */
	const char *options;      /* "fallback_scsv,reneg_scsv,ems,no_key_share,supported_versions" */
};

/*
 * Decode hex text into out[0, cap): *n bytes. Returns 0, or -EINVAL with
 * the line, column and token in err.
 */
int explain_unhex(const char *text, uint8_t *out, size_t cap, size_t *n,
		  char *err, size_t errlen);

/*
 * A ClientHello from hex text into *h. Returns 0, or -EINVAL with why in
 * err (the hex's position, or the hello's byte offset and rule). On
 * success err holds a note or "" (e.g. "skipped 66 bytes before the TLS
 * record").
 */
int explain_hex(const char *text, struct hello *h, char *err, size_t errlen);

/* The ClientHello bytes (one or more TLS records) the fields describe, in
 * out[0, cap): *n bytes. Returns 0, or -EINVAL with the field and item. */
int explain_build(const struct explain_fields *f, uint8_t *out, size_t cap, size_t *n,
		  char *err, size_t errlen);

/* explain_build(), then hello_parse() into *h. Returns 0 or -EINVAL. */
int explain_fields(const struct explain_fields *f, struct hello *h, char *err, size_t errlen);

/* A cipher suite, group, signature scheme or version by name or number:
 * 0 with *id, or -EINVAL. (Exposed for the command line's own checks.) */
int explain_suite_id(const char *name, uint16_t *id);
int explain_group_id(const char *name, uint16_t *id);
int explain_sigalg_id(const char *name, uint16_t *id);
int explain_version_id(const char *name, uint16_t *id);

#endif
