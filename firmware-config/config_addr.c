/*
 * Addresses in the configuration: "host:port" of listeners and backend
 * servers, networks of policy rules.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

/* Parse "a.b.c.d:port", "[v6]:port" or "host:port"; 0, -EINVAL, -ERANGE, -ENOENT. */
int cfg_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *port, *c;
	size_t hlen;
	bool v6 = s[0] == '[';
	unsigned long pn;
	int rc;

	if (v6) {
		c = strchr(s, ']');
		if (!c || c[1] != ':')
			return -EINVAL;
		hlen = (size_t)(c - s - 1);
		s++;
		port = c + 2;
	} else {
		c = strrchr(s, ':');
		if (!c || memchr(s, ':', (size_t)(c - s)))
			return -EINVAL;
		hlen = (size_t)(c - s);
		port = c + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host) || !*port || strlen(port) > 5 ||
	    strspn(port, "0123456789") != strlen(port))
		return -EINVAL;
	pn = strtoul(port, NULL, 10);
	if (pn < 1 || pn > 65535)
		return -ERANGE;
	memcpy(host, s, hlen);
	host[hlen] = '\0';

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = v6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
#ifndef SLUICE_FUZZ /* the fuzz build looks up no names: no DNS from a fuzzer */
	if (rc == EAI_NONAME && !v6) {
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(host, port, &hints, &res);
	}
#endif
	if (rc)
		return rc == EAI_MEMORY ? -ENOMEM : v6 ? -EINVAL : -ENOENT;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* cfg_parse_addr with the error written for path; 0 or negative errno. */
int cfg_addr_at(struct cfg_ld *ld, const char *path, const char *s,
		       struct sockaddr_storage *ss, socklen_t *len)
{
	switch (cfg_parse_addr(s, ss, len)) {
	case 0:
		return 0;
	case -ENOMEM:
		return cfg_oom(ld);
	case -ERANGE:
		return cfg_err(ld, path, "port out of range in '%s' (expected 1..65535)", s);
	case -ENOENT:
		return cfg_err(ld, path, "cannot resolve host in '%s'", s);
	default:
		return cfg_err(ld, path, "cannot parse address '%s' (expected HOST:PORT)", s);
	}
}

int cfg_parse_net(const char *s, struct cfg_net *n)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long prefix;
	char *end;

	memset(n, 0, sizeof(*n));
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = 0;
	if (inet_pton(AF_INET, host, n->addr) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, host, n->addr) == 1)
		n->family = AF_INET6;
	else
		return -EINVAL;
	prefix = n->family == AF_INET ? 32 : 128;
	if (slash) {
		unsigned long max = prefix;

		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (!slash[1] || *end || errno || prefix > max)
			return -EINVAL;
	}
	n->prefix = (unsigned)prefix;
	/* Host bits set ("192.0.2.1/24") would be a typo: refuse it. */
	for (unsigned b = n->prefix; b < (n->family == AF_INET ? 32u : 128u); b++)
		if (n->addr[b / 8] & (0x80 >> (b % 8)))
			return -EINVAL;
	return 0;
}

bool cfg_net_contains(const struct cfg_net *n, const struct sockaddr *sa)
{
	const unsigned char *a;
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (sa->sa_family == AF_INET && n->family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (n->family == AF_INET) {
			/* an IPv4 client on a dual-stack socket: ::ffff:a.b.c.d */
			static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };

			if (memcmp(a, mapped, 12))
				return false;
			a += 12;
		}
	} else {
		return false;
	}
	if (memcmp(a, n->addr, full))
		return false;
	return !rest || !((a[full] ^ n->addr[full]) & (0xff00 >> rest));
}

/* Same family, address and port. */
bool cfg_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *x4 = (const void *)a, *y4 = (const void *)b;
	const struct sockaddr_in6 *x6 = (const void *)a, *y6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return x4->sin_port == y4->sin_port && x4->sin_addr.s_addr == y4->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return x6->sin6_port == y6->sin6_port &&
		       !memcmp(&x6->sin6_addr, &y6->sin6_addr, sizeof(x6->sin6_addr));
	return false;
}
