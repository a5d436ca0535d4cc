/*
 * PROXY protocol header encoding (haproxy.org proxy-protocol.txt, v1 and v2).
 * Pure functions: addresses and TLS facts in, bytes out.
 */
#ifndef SLUICE_PROXYPROTO_H
#define SLUICE_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* v2 constants (proxy-protocol.txt 2.2) */
#define PP2_SIG "\r\n\r\n\0\r\nQUIT\n"
#define PP2_SIG_LEN 12
#define PP2_VERSION 0x20
#define PP2_CMD_LOCAL 0x00
#define PP2_CMD_PROXY 0x01
#define PP2_FAM_UNSPEC 0x00
#define PP2_FAM_TCP4 0x11
#define PP2_FAM_TCP6 0x21
#define PP2_TYPE_AUTHORITY 0x02
#define PP2_TYPE_SSL 0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CIPHER 0x23
#define PP2_CLIENT_SSL 0x01

/* TLS facts carried in the SSL TLV; NULL members are left out. */
struct pp_tls {
	const char *version;   /* "TLSv1.3" */
	const char *cipher;    /* "TLS_AES_128_GCM_SHA256" */
	const char *sni;       /* server name the client asked for (AUTHORITY) */
};

#define PP_MAX 536 /* v2 header with all TLVs fits; v1 needs at most 108 */

/*
 * Encode a v2 PROXY header for a TCP connection from src to dst. tls may be
 * NULL (no SSL TLV: the client did not use TLS). Returns the length written
 * or a negative errno (-EAFNOSUPPORT for mixed or unknown families,
 * -ENOSPC when cap is too small).
 */
int pp2_encode(uint8_t *out, size_t cap, const struct sockaddr *src,
	       const struct sockaddr *dst, const struct pp_tls *tls);

/* A v2 LOCAL header (health checks: no client to report). */
int pp2_encode_local(uint8_t *out, size_t cap);

/* A v1 line "PROXY TCP4 src dst sport dport\r\n". Same returns. */
int pp1_encode(char *out, size_t cap, const struct sockaddr *src,
	       const struct sockaddr *dst);

/*
 * The PROXY header of the given version (0: none, 1, 2) for a client at
 * src that reached dst, with the TLS facts tls (NULL: plaintext, v2 only).
 * Returns its length (0 for version 0), or a negative errno when it cannot
 * be encoded (a family it cannot express, no room): a backend that expects
 * the header must then not get the client at all, or it would take sluice
 * for the client (fail closed).
 */
int pp_header(unsigned version, uint8_t *out, size_t cap, const struct sockaddr *src,
	      const struct sockaddr *dst, const struct pp_tls *tls);

#endif
