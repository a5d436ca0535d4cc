/*
 * The trace header (listeners[].trace_header, SMTP): where the engine's
 * relay tracker stopped at the start of a message (ps.inject_due), the
 * session gathers the facts of this hop that only it knows (the client's
 * address, what TLS agreed on, the time) and lets the engine write its
 * Received: line (proto_ops.c2b_inject) into the backend's buffer, before
 * the message's first byte. Postfix cannot: it reads the client's address
 * from PROXY v2 but not the TLS fields, so without this its own Received:
 * line says nothing of the TLS the client used.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "proto/proto.h"
#include "session/session.h"
#include "session/session_int.h"

#define TRACE_OUT_MAX 1400 /* the engine's line and a rewritten BDAT line */

/* The client's address as an address literal's inside (RFC 5321 4.1.3). */
static void trace_client(const struct sess *s, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN];

	if (s->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&s->peer;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], a, sizeof(a));
			snprintf(out, n, "%s", a);
		} else {
			inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
			snprintf(out, n, "IPv6:%s", a);
		}
	} else if (s->peer.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&s->peer)->sin_addr, a, sizeof(a));
		snprintf(out, n, "%s", a);
	} else {
		snprintf(out, n, "unknown");
	}
}

/* What TLS agreed on, in Postfix's words (its Received: line and its log):
 * "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" and,
 * folded, " key-exchange X25519" or " key-exchange ECDHE (P-256)". */
static void trace_tls(const struct sess *s, char *out, size_t n)
{
	const SSL_CIPHER *c;
	int use, alg = 0, nid;
	size_t k;

	out[0] = 0;
	if (!s->tls || !s->ssl || !(c = SSL_get_current_cipher(s->ssl)))
		return;
	use = SSL_CIPHER_get_bits(c, &alg);
	k = (size_t)snprintf(out, n, "using %s with cipher %s (%d/%d bits)",
			     SSL_get_version(s->ssl), SSL_CIPHER_get_name(c), use, alg);
	if (k >= n)
		return;
	nid = SSL_get_negotiated_group(s->ssl);
	if (nid == NID_X25519 || nid == NID_X448)
		snprintf(out + k, n - k, "\r\n\t key-exchange %s", OBJ_nid2sn(nid));
	else if (nid != NID_undef && EC_curve_nid2nist(nid))
		snprintf(out + k, n - k, "\r\n\t key-exchange ECDHE (%s)", EC_curve_nid2nist(nid));
	else if (nid != NID_undef && OBJ_nid2sn(nid))
		snprintf(out + k, n - k, "\r\n\t key-exchange %s", OBJ_nid2sn(nid));
}

bool sess_inject(struct sess *s, struct buf *src)
{
	char client[INET6_ADDRSTRLEN + 8], tls[256];
	struct proto_trace t = { client, tls, clock_real_s() };
	struct proto_env env = sess_env(s);
	uint8_t out[TRACE_OUT_MAX];
	size_t skip = 0, w;

	if (!s->l->ops->c2b_inject) {
		s->ps.inject_due = false;
		return false;
	}
	trace_client(s, client, sizeof(client));
	trace_tls(s, tls, sizeof(tls));
	env.trace = &t;
	w = s->l->ops->c2b_inject(&env, &s->ps, buf_head(src), buf_len(src), out,
				  buf_room(&s->bout) < sizeof(out) ? buf_room(&s->bout) : sizeof(out),
				  &skip);
	if (s->ps.inject_due)
		return false; /* no room in bout yet: again when it drained */
	if (w)
		buf_put(&s->bout, out, (uint32_t)w);
	if (skip) {
		buf_consume(src, (uint32_t)skip);
		s->bytes_in += skip;
		sctr_add(s, CTR_bytes_from_client, skip);
	}
	sctr_inc(s, CTR_trace_header);
	return true;
}
