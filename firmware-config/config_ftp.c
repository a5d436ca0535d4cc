/*
 * A listener's `ftp` mapping (protocol ftp, RFC 4217; docs/ftp.md): the
 * passive data ports sluice listens on, the address its 227/229 answers
 * name, and what a data connection's TLS must show (a resumption of the
 * control connection's session, the extended master secret).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "config_int.h"

#define OPT   CYAML_FLAG_OPTIONAL
#define PTR   CYAML_FLAG_POINTER
#define STR(key, flags, st, m) \
	CYAML_FIELD_STRING_PTR(key, (flags) | PTR, st, m, 1, CFG_STR_MAX)

#define CFG_FTP_DATA_TIMEOUT 30   /* s: a PASV answer's port waits this long */
#define CFG_FTP_DATA_TIMEOUT_MAX 600

const cyaml_schema_field_t cfg_ftp_fields[] = {
	STR("data_ports", OPT, struct cfg_ftp, data_ports),
	STR("data_address", OPT, struct cfg_ftp, data_address),
	CYAML_FIELD_BOOL("require_resumption", OPT, struct cfg_ftp, require_resumption),
	CYAML_FIELD_BOOL("require_ems", OPT, struct cfg_ftp, require_ems),
	CYAML_FIELD_BOOL("allow_prot_c", OPT, struct cfg_ftp, allow_prot_c),
	CYAML_FIELD_UINT("data_timeout", OPT, struct cfg_ftp, data_timeout),
	CYAML_FIELD_END
};

/* "LO-HI" (or one port) into *lo, *hi; -1 if it is not that. */
static int cfg_port_range(const char *s, unsigned *lo, unsigned *hi)
{
	char *end;
	unsigned long a, b;

	a = strtoul(s, &end, 10);
	if (end == s || a == 0 || a > 65535)
		return -1;
	b = a;
	if (*end == '-') {
		const char *t = end + 1;

		b = strtoul(t, &end, 10);
		if (end == t || b == 0 || b > 65535)
			return -1;
	}
	if (*end || b < a)
		return -1;
	*lo = (unsigned)a;
	*hi = (unsigned)b;
	return 0;
}

/* Listener i's ftp: mapping: see config_int.h. */
int cfg_check_listener_ftp(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_listener *l = &c->listeners[i];
	struct cfg_ftp *f = &l->ftp;
	char p[CFG_PATH_MAX];
	int rc;

	snprintf(p, sizeof(p), "listeners[%u].ftp", i);
	if (l->protocol != CFG_PROTO_FTP) {
		if (cfg_present(ld, p))
			return cfg_err(ld, p, "only for protocol ftp");
		return 0;
	}
	if (c->native) {
		snprintf(p, sizeof(p), "listeners[%u].protocol", i);
		return cfg_err(ld, p, "ftp is not supported on the native stack (its data "
			       "connections need listeners opened per transfer); run this "
			       "listener on the kernel stack (no native: section)");
	}
	if (l->be && l->be->tls.tls != CFG_BE_TLS_OFF) {
		snprintf(p, sizeof(p), "listeners[%u].backend", i);
		return cfg_err(ld, p, "backend '%s': TLS to an FTP backend is not offered (its "
			       "data connections are plain); set its tls: off", l->backend);
	}
	snprintf(p, sizeof(p), "listeners[%u].ftp.require_resumption", i);
	if (!cfg_present(ld, p))
		f->require_resumption = true; /* Schannel's and FileZilla's rule */
	snprintf(p, sizeof(p), "listeners[%u].ftp.data_timeout", i);
	if ((rc = cfg_uint(ld, p, &f->data_timeout, CFG_FTP_DATA_TIMEOUT, 1,
			   CFG_FTP_DATA_TIMEOUT_MAX)))
		return rc;
	snprintf(p, sizeof(p), "listeners[%u].ftp.data_ports", i);
	if (!f->data_ports) {
		snprintf(p, sizeof(p), "listeners[%u].protocol", i);
		return cfg_err(ld, p, "protocol ftp needs ftp.data_ports (e.g. 44100-44199): "
			       "the passive data ports sluice listens on");
	}
	if (cfg_port_range(f->data_ports, &f->port_lo, &f->port_hi) < 0)
		return cfg_err(ld, p, "'%s' is not a port range (expected LO-HI, e.g. "
			       "44100-44199)", f->data_ports);
	snprintf(p, sizeof(p), "listeners[%u].ftp.data_address", i);
	/* The listener's family: its clients connect from that family
	 * (an IPv6 listener is IPV6_V6ONLY), and a data connection must
	 * come from the control connection's address. */
	memset(&f->data_addr, 0, sizeof(f->data_addr));
	if (f->data_address) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&f->data_addr;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&f->data_addr;

		if (l->addr.ss_family == AF_INET6) {
			sin6->sin6_family = AF_INET6;
			if (inet_pton(AF_INET6, f->data_address, &sin6->sin6_addr) != 1 ||
			    IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
				return cfg_err(ld, p, "'%s' is not an IPv6 address (the listener's "
					       "address is IPv6, so are its clients')",
					       f->data_address);
		} else {
			sin->sin_family = AF_INET;
			if (inet_pton(AF_INET, f->data_address, &sin->sin_addr) != 1 ||
			    sin->sin_addr.s_addr == htonl(INADDR_ANY))
				return cfg_err(ld, p, "'%s' is not an IPv4 address (the listener's "
					       "address is IPv4, so are its clients'; a 227 "
					       "answer names it)", f->data_address);
		}
	} else {
		bool any = l->addr.ss_family == AF_INET
			   ? ((struct sockaddr_in *)&l->addr)->sin_addr.s_addr == htonl(INADDR_ANY)
			   : IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&l->addr)->sin6_addr);

		if (any)
			return cfg_err(ld, p, "needed: the listener's address is not one address "
				       "that clients can reach");
		f->data_addr = l->addr;
		if (l->addr.ss_family == AF_INET)
			((struct sockaddr_in *)&f->data_addr)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&f->data_addr)->sin6_port = 0;
	}
	return 0;
}
