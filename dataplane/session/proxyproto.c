#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxyproto.h"

static int tlv_put(uint8_t *out, size_t cap, size_t *off, uint8_t type,
		   const void *val, size_t len)
{
	if (len > 0xffff || *off + 3 + len > cap)
		return -ENOSPC;
	out[*off] = type;
	out[*off + 1] = (uint8_t)(len >> 8);
	out[*off + 2] = (uint8_t)len;
	memcpy(out + *off + 3, val, len);
	*off += 3 + len;
	return 0;
}

int pp2_encode(uint8_t *out, size_t cap, const struct sockaddr *src,
	       const struct sockaddr *dst, const struct pp_tls *tls)
{
	size_t off = 16, ssl_at, sub;
	int rc;

	if (cap < 16 + 12)
		return -ENOSPC;
	memcpy(out, PP2_SIG, PP2_SIG_LEN);
	out[12] = PP2_VERSION | PP2_CMD_PROXY;
	if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;

		out[13] = PP2_FAM_TCP4;
		memcpy(out + off, &s->sin_addr, 4);
		memcpy(out + off + 4, &d->sin_addr, 4);
		memcpy(out + off + 8, &s->sin_port, 2);
		memcpy(out + off + 10, &d->sin_port, 2);
		off += 12;
	} else if (src->sa_family == AF_INET6 && dst->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;

		if (cap < 16 + 36)
			return -ENOSPC;
		out[13] = PP2_FAM_TCP6;
		memcpy(out + off, &s->sin6_addr, 16);
		memcpy(out + off + 16, &d->sin6_addr, 16);
		memcpy(out + off + 32, &s->sin6_port, 2);
		memcpy(out + off + 34, &d->sin6_port, 2);
		off += 36;
	} else {
		return -EAFNOSUPPORT;
	}

	if (tls) {
		if (tls->sni && *tls->sni) {
			rc = tlv_put(out, cap, &off, PP2_TYPE_AUTHORITY, tls->sni,
				     strlen(tls->sni));
			if (rc < 0)
				return rc;
		}
		/* PP2_TYPE_SSL: client flags (1), verify (4), then sub-TLVs. No
		 * client certificate is asked for, so verify is non-zero
		 * ("zero if the client presented a certificate and it was
		 * successfully verified"). */
		ssl_at = off;
		if (off + 3 + 5 > cap)
			return -ENOSPC;
		off += 3;
		out[off++] = PP2_CLIENT_SSL;
		out[off++] = 0;
		out[off++] = 0;
		out[off++] = 0;
		out[off++] = 1;
		if (tls->version &&
		    (rc = tlv_put(out, cap, &off, PP2_SUBTYPE_SSL_VERSION, tls->version,
				  strlen(tls->version))) < 0)
			return rc;
		if (tls->cipher &&
		    (rc = tlv_put(out, cap, &off, PP2_SUBTYPE_SSL_CIPHER, tls->cipher,
				  strlen(tls->cipher))) < 0)
			return rc;
		sub = off - ssl_at - 3;
		out[ssl_at] = PP2_TYPE_SSL;
		out[ssl_at + 1] = (uint8_t)(sub >> 8);
		out[ssl_at + 2] = (uint8_t)sub;
	}
	out[14] = (uint8_t)((off - 16) >> 8);
	out[15] = (uint8_t)(off - 16);
	return (int)off;
}

int pp2_encode_local(uint8_t *out, size_t cap)
{
	if (cap < 16)
		return -ENOSPC;
	memcpy(out, PP2_SIG, PP2_SIG_LEN);
	out[12] = PP2_VERSION | PP2_CMD_LOCAL;
	out[13] = PP2_FAM_UNSPEC;
	out[14] = 0;
	out[15] = 0;
	return 16;
}

int pp1_encode(char *out, size_t cap, const struct sockaddr *src,
	       const struct sockaddr *dst)
{
	char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
	unsigned sp, dp;
	const char *fam;
	int n;

	if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;

		fam = "TCP4";
		inet_ntop(AF_INET, &s->sin_addr, sa, sizeof(sa));
		inet_ntop(AF_INET, &d->sin_addr, da, sizeof(da));
		sp = ntohs(s->sin_port);
		dp = ntohs(d->sin_port);
	} else if (src->sa_family == AF_INET6 && dst->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;

		fam = "TCP6";
		inet_ntop(AF_INET6, &s->sin6_addr, sa, sizeof(sa));
		inet_ntop(AF_INET6, &d->sin6_addr, da, sizeof(da));
		sp = ntohs(s->sin6_port);
		dp = ntohs(d->sin6_port);
	} else {
		return -EAFNOSUPPORT;
	}
	n = snprintf(out, cap, "PROXY %s %s %s %u %u\r\n", fam, sa, da, sp, dp);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}

/* The header for a backend that wants one: see proxyproto.h. */
int pp_header(unsigned version, uint8_t *out, size_t cap, const struct sockaddr *src,
	      const struct sockaddr *dst, const struct pp_tls *tls)
{
	switch (version) {
	case 0:
		return 0;
	case 1:
		return pp1_encode((char *)out, cap, src, dst);
	case 2:
		return pp2_encode(out, cap, src, dst, tls);
	default:
		return -EINVAL;
	}
}
