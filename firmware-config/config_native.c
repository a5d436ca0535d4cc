/*
 * The `native` section of the configuration: sluice's own TCP/IP on DPDK
 * ports instead of the kernel's (DESIGN.md §6, docs/native.md). Its schema
 * and its checks; the load context and the error helpers are config.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

/* ---- schema -------------------------------------------------------------- */

static const cyaml_strval_t cfg_cc_strs[] = {
	{ "cubic", CFG_CC_CUBIC }, { "newreno", CFG_CC_NEWRENO },
};

#define OPT   CYAML_FLAG_OPTIONAL
#define PTR   CYAML_FLAG_POINTER
#define STR(key, flags, st, m) \
	CYAML_FIELD_STRING_PTR(key, (flags) | PTR, st, m, 1, CFG_STR_MAX)

static const cyaml_schema_value_t cfg_native_string = {
	CYAML_VALUE_STRING(PTR, char, 1, CFG_STR_MAX),
};

static const cyaml_schema_value_t cfg_native_uint = {
	CYAML_VALUE_UINT(CYAML_FLAG_DEFAULT, unsigned),
};

static const cyaml_schema_field_t cfg_native_eal_fields[] = {
	CYAML_FIELD_BOOL("hugepages", OPT, struct cfg_native_eal, hugepages),
	CYAML_FIELD_UINT("memory_mb", OPT, struct cfg_native_eal, memory_mb),
	CYAML_FIELD_BOOL("no_pci", OPT, struct cfg_native_eal, no_pci),
	CYAML_FIELD_SEQUENCE_COUNT("args", OPT | PTR, struct cfg_native_eal, args, n_args,
				   &cfg_native_string, 0, CFG_LIST_MAX),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t cfg_native_port_fields[] = {
	STR("device", 0, struct cfg_native_port, device),
	STR("mac", OPT, struct cfg_native_port, mac),
	STR("ipv4", OPT, struct cfg_native_port, ipv4),
	STR("ipv4_gateway", OPT, struct cfg_native_port, ipv4_gateway),
	STR("ipv6", OPT, struct cfg_native_port, ipv6),
	STR("ipv6_gateway", OPT, struct cfg_native_port, ipv6_gateway),
	CYAML_FIELD_UINT("mtu", OPT, struct cfg_native_port, mtu),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_native_port_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_native_port, cfg_native_port_fields),
};

static const cyaml_schema_field_t cfg_native_neigh_fields[] = {
	STR("address", 0, struct cfg_native_neigh, address),
	STR("mac", 0, struct cfg_native_neigh, mac),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_native_neigh_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_native_neigh, cfg_native_neigh_fields),
};

const cyaml_schema_field_t cfg_native_fields[] = {
	CYAML_FIELD_MAPPING("eal", OPT, struct cfg_native, eal, cfg_native_eal_fields),
	CYAML_FIELD_SEQUENCE_COUNT("ports", PTR, struct cfg_native, ports, n_ports,
				   &cfg_native_port_schema, 1, 16),
	CYAML_FIELD_SEQUENCE_COUNT("cpus", OPT | PTR, struct cfg_native, cpus, n_cpus,
				   &cfg_native_uint, 1, CFG_LIST_MAX),
	CYAML_FIELD_UINT("idle_polls", OPT, struct cfg_native, idle_polls),
	CYAML_FIELD_UINT("idle_pause_us", OPT, struct cfg_native, idle_pause_us),
	CYAML_FIELD_UINT("mbufs", OPT, struct cfg_native, mbufs),
	CYAML_FIELD_ENUM("cc", OPT | CYAML_FLAG_STRICT, struct cfg_native, cc, cfg_cc_strs,
			 CYAML_ARRAY_LEN(cfg_cc_strs)),
	CYAML_FIELD_UINT("max_conns", OPT, struct cfg_native, max_conns),
	CYAML_FIELD_UINT("syn_backlog", OPT, struct cfg_native, syn_backlog),
	/* the stack's table holds 64 (NET_MAX_STATIC_NEIGH) */
	CYAML_FIELD_SEQUENCE_COUNT("neighbours", OPT | PTR, struct cfg_native, neighbours, n_neighbours,
				   &cfg_native_neigh_schema, 0, 64),
	CYAML_FIELD_END
};

#undef OPT
#undef PTR
#undef STR

const char *cfg_cc_name(enum cfg_native_cc cc)
{
	for (size_t i = 0; i < CYAML_ARRAY_LEN(cfg_cc_strs); i++)
		if (cfg_cc_strs[i].val == (int64_t)cc)
			return cfg_cc_strs[i].str;
	return "?";
}

/* ---- values -------------------------------------------------------------- */

/* "0000:03:00.0" or "03:00.0": a PCI address (EAL -a), not a vdev. */
static bool cfg_is_pci(const char *s)
{
	unsigned d, b, dev, f;
	char tail;

	return sscanf(s, "%x:%x:%x.%x%c", &d, &b, &dev, &f, &tail) == 4 ||
	       sscanf(s, "%x:%x.%x%c", &b, &dev, &f, &tail) == 3;
}

/* "02:00:5e:00:53:01" into mac; a unicast, non-zero address. 0 or -EINVAL. */
static int cfg_parse_mac(const char *s, unsigned char mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &tail) != 6 || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (unsigned char)v[i];
	if ((mac[0] & 1) || !(v[0] | v[1] | v[2] | v[3] | v[4] | v[5]))
		return -EINVAL;
	return 0;
}

/* "ADDRESS/PREFIX" of family af (an interface address: host bits set).
 * 0 or -EINVAL. */
static int cfg_parse_ifaddr(const char *s, int af, unsigned char *addr, unsigned *plen)
{
	char host[64], *end;
	const char *slash = strchr(s, '/');
	unsigned long p;

	if (!slash || (size_t)(slash - s) >= sizeof(host) || !slash[1])
		return -EINVAL;
	memcpy(host, s, (size_t)(slash - s));
	host[slash - s] = 0;
	if (inet_pton(af, host, addr) != 1)
		return -EINVAL;
	p = strtoul(slash + 1, &end, 10);
	if (*end || p < 1 || p > (af == AF_INET ? 32u : 128u))
		return -EINVAL;
	*plen = (unsigned)p;
	return 0;
}

/* Do a and b agree on the first plen bits? */
static bool cfg_same_net(const unsigned char *a, const unsigned char *b, unsigned plen)
{
	unsigned full = plen / 8, rest = plen % 8;

	if (memcmp(a, b, full))
		return false;
	return !rest || !((a[full] ^ b[full]) & (0xff00 >> rest));
}

/* ---- checks -------------------------------------------------------------- */

/* Port i: device, MAC, addresses, gateways, MTU. */
static int cfg_check_port(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_native_port *pt = &c->native->ports[i];
	char p[CFG_PATH_MAX];
	size_t n;
	int rc;

	snprintf(p, sizeof(p), "native.ports[%u]", i);
	pt->line = cfg_line(ld, p, false, false);
	snprintf(p, sizeof(p), "native.ports[%u].device", i);
	n = strcspn(pt->device, ",");
	if (n == 0 || n >= sizeof(pt->name))
		return cfg_err(ld, p, "'%s' names no device (expected a vdev such as "
			       "net_tap0,iface=sl0 or a PCI address such as 0000:03:00.0)",
			       pt->device);
	memcpy(pt->name, pt->device, n);
	pt->name[n] = 0;
	pt->pci = cfg_is_pci(pt->name);
	if (!pt->pci && strncmp(pt->name, "net_", 4))
		return cfg_err(ld, p, "'%s' is neither a PCI address nor a vdev (net_tap0, "
			       "net_memif0, net_af_packet0...)", pt->name);
	for (unsigned j = 0; j < i; j++)
		if (!strcmp(c->native->ports[j].name, pt->name))
			return cfg_err(ld, p, "device '%s' is already native.ports[%u] (line %u)",
				       pt->name, j, c->native->ports[j].line);
	snprintf(p, sizeof(p), "native.ports[%u].mac", i);
	if (pt->mac) {
		if (cfg_parse_mac(pt->mac, pt->mac_addr) < 0)
			return cfg_err(ld, p, "'%s' is not a unicast MAC address (expected "
				       "six hex pairs, e.g. 02:00:5e:00:53:01)", pt->mac);
		pt->has_mac = true;
	}
	snprintf(p, sizeof(p), "native.ports[%u].ipv4", i);
	if (pt->ipv4) {
		if (cfg_parse_ifaddr(pt->ipv4, AF_INET, pt->ip4, &pt->ip4_prefix) < 0)
			return cfg_err(ld, p, "cannot parse '%s' (expected ADDRESS/PREFIX, e.g. "
				       "192.0.2.10/24)", pt->ipv4);
		pt->has_ip4 = true;
	}
	snprintf(p, sizeof(p), "native.ports[%u].ipv6", i);
	if (pt->ipv6) {
		if (cfg_parse_ifaddr(pt->ipv6, AF_INET6, pt->ip6, &pt->ip6_prefix) < 0)
			return cfg_err(ld, p, "cannot parse '%s' (expected ADDRESS/PREFIX, e.g. "
				       "2001:db8::10/64)", pt->ipv6);
		if (pt->ip6[0] == 0xfe && (pt->ip6[1] & 0xc0) == 0x80)
			return cfg_err(ld, p, "'%s' is link-local: give the global address "
				       "(the link-local one comes from the MAC)", pt->ipv6);
		pt->has_ip6 = true;
	}
	if (!pt->has_ip4 && !pt->has_ip6) {
		snprintf(p, sizeof(p), "native.ports[%u]", i);
		return cfg_err(ld, p, "a port needs ipv4 or ipv6 (or both)");
	}
	snprintf(p, sizeof(p), "native.ports[%u].ipv4_gateway", i);
	if (pt->ipv4_gateway) {
		if (!pt->has_ip4)
			return cfg_err(ld, p, "a gateway without the port's ipv4 address");
		if (inet_pton(AF_INET, pt->ipv4_gateway, pt->gw4) != 1)
			return cfg_err(ld, p, "cannot parse '%s' (expected an IPv4 address)",
				       pt->ipv4_gateway);
		if (!cfg_same_net(pt->gw4, pt->ip4, pt->ip4_prefix))
			return cfg_err(ld, p, "%s is not on the port's network %s",
				       pt->ipv4_gateway, pt->ipv4);
		pt->has_gw4 = true;
	}
	snprintf(p, sizeof(p), "native.ports[%u].ipv6_gateway", i);
	if (pt->ipv6_gateway) {
		if (!pt->has_ip6)
			return cfg_err(ld, p, "a gateway without the port's ipv6 address");
		if (inet_pton(AF_INET6, pt->ipv6_gateway, pt->gw6) != 1)
			return cfg_err(ld, p, "cannot parse '%s' (expected an IPv6 address)",
				       pt->ipv6_gateway);
		if (!(pt->gw6[0] == 0xfe && (pt->gw6[1] & 0xc0) == 0x80) &&
		    !cfg_same_net(pt->gw6, pt->ip6, pt->ip6_prefix))
			return cfg_err(ld, p, "%s is neither link-local nor on the port's "
				       "network %s", pt->ipv6_gateway, pt->ipv6);
		pt->has_gw6 = true;
	}
	snprintf(p, sizeof(p), "native.ports[%u].mtu", i);
	/* RFC 8200 §5: an IPv6 link carries at least 1280 bytes. */
	if ((rc = cfg_uint(ld, p, &pt->mtu, 1500, pt->has_ip6 ? 1280 : 576, 9000)))
		return rc;
	return 0;
}

/* Static neighbour i: an address on a port's network (or IPv6
 * link-local), a unicast MAC, listed once. */
static int cfg_check_neigh(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_native_neigh *nb = &c->native->neighbours[i];
	char p[CFG_PATH_MAX];
	bool ok = false;

	snprintf(p, sizeof(p), "native.neighbours[%u]", i);
	nb->line = cfg_line(ld, p, false, false);
	snprintf(p, sizeof(p), "native.neighbours[%u].address", i);
	if (inet_pton(AF_INET, nb->address, nb->addr) == 1) {
		nb->v6 = false;
	} else if (inet_pton(AF_INET6, nb->address, nb->addr) == 1) {
		nb->v6 = true;
	} else {
		return cfg_err(ld, p, "cannot parse '%s' (expected an IPv4 or IPv6 address, no "
			       "prefix or port)", nb->address);
	}
	if (nb->v6 ? nb->addr[0] == 0xff : (nb->addr[0] >= 224 || nb->addr[0] == 0 ||
					    nb->addr[0] == 127))
		return cfg_err(ld, p, "'%s' is not a unicast host address", nb->address);
	for (unsigned j = 0; j < c->native->n_ports && !ok; j++) {
		const struct cfg_native_port *pt = &c->native->ports[j];

		if (!nb->v6)
			ok = pt->has_ip4 && cfg_same_net(nb->addr, pt->ip4, pt->ip4_prefix);
		else
			ok = pt->has_ip6 && ((nb->addr[0] == 0xfe && (nb->addr[1] & 0xc0) == 0x80) ||
					     cfg_same_net(nb->addr, pt->ip6, pt->ip6_prefix));
	}
	if (!ok)
		return cfg_err(ld, p, "'%s' is on no native port's network (a neighbour is "
			       "on-link: a gateway or a backend next to sluice)", nb->address);
	for (unsigned j = 0; j < i; j++)
		if (c->native->neighbours[j].v6 == nb->v6 &&
		    !memcmp(c->native->neighbours[j].addr, nb->addr, nb->v6 ? 16 : 4))
			return cfg_err(ld, p, "'%s' is already native.neighbours[%u] (line %u)",
				       nb->address, j, c->native->neighbours[j].line);
	snprintf(p, sizeof(p), "native.neighbours[%u].mac", i);
	if (cfg_parse_mac(nb->mac, nb->mac_addr) < 0)
		return cfg_err(ld, p, "'%s' is not a unicast MAC address (expected six hex "
			       "pairs, e.g. 02:00:5e:00:53:01)", nb->mac);
	return 0;
}

/* The address of sockaddr ss: family (AF_INET, AF_INET6) and bytes. */
static const unsigned char *cfg_sa_bytes(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
	return (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
}

/* Listener i listens on a port's address, or on the wildcard of a family
 * some port has. */
static int cfg_check_native_listener(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	static const unsigned char zero[16];
	const struct cfg_listener *l = &c->listeners[i];
	const unsigned char *a = cfg_sa_bytes(&l->addr);
	bool v4 = l->addr.ss_family == AF_INET, any = !memcmp(a, zero, v4 ? 4 : 16);
	char p[CFG_PATH_MAX];

	for (unsigned j = 0; j < c->native->n_ports; j++) {
		const struct cfg_native_port *pt = &c->native->ports[j];

		if (v4 && pt->has_ip4 && (any || !memcmp(a, pt->ip4, 4)))
			return 0;
		if (!v4 && pt->has_ip6 && (any || !memcmp(a, pt->ip6, 16)))
			return 0;
	}
	snprintf(p, sizeof(p), "listeners[%u].address", i);
	return cfg_err(ld, p, "'%s' is not an address of a native port (native.ports[].%s)",
		       l->address, v4 ? "ipv4" : "ipv6");
}

/* Every backend server is on a port's network or behind its gateway. */
static int cfg_check_native_backend(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	const struct cfg_backend *b = &c->backends[i];
	char p[CFG_PATH_MAX];

	for (unsigned k = 0; k < b->n_servers; k++) {
		const unsigned char *a = cfg_sa_bytes(&b->addrs[k]);
		bool v4 = b->addrs[k].ss_family == AF_INET, ok = false;

		for (unsigned j = 0; j < c->native->n_ports && !ok; j++) {
			const struct cfg_native_port *pt = &c->native->ports[j];

			if (v4)
				ok = pt->has_ip4 && (pt->has_gw4 ||
						     cfg_same_net(a, pt->ip4, pt->ip4_prefix));
			else
				ok = pt->has_ip6 && (pt->has_gw6 ||
						     cfg_same_net(a, pt->ip6, pt->ip6_prefix));
		}
		if (!ok) {
			snprintf(p, sizeof(p), "backends[%u].servers[%u]", i, k);
			return cfg_err(ld, p, "'%s' is on no native port's network and no port "
				       "has an %s gateway", b->servers[k],
				       v4 ? "ipv4" : "ipv6");
		}
	}
	return 0;
}

int cfg_check_native(struct cfg_ld *ld, struct cfg *c)
{
	struct cfg_native *n = c->native;
	bool pci = false;
	int rc;

	n->line = cfg_line(ld, "native", true, false);
	for (unsigned i = 0; i < n->n_ports; i++) {
		if ((rc = cfg_check_port(ld, c, i)))
			return rc;
		pci |= n->ports[i].pci;
	}
	if (!cfg_present(ld, "native.eal.hugepages"))
		n->eal.hugepages = true;
	if (!cfg_present(ld, "native.eal.no_pci"))
		n->eal.no_pci = !pci;
	else if (n->eal.no_pci && pci)
		return cfg_err(ld, "native.eal.no_pci", "a port is a PCI device: PCI "
			       "cannot be off");
	if ((rc = cfg_uint(ld, "native.eal.memory_mb", &n->eal.memory_mb,
			   n->eal.hugepages ? 0 : 256, n->eal.hugepages ? 0 : 64, 1u << 20)))
		return rc;
	if (n->n_cpus && n->n_cpus != c->cores)
		return cfg_err(ld, "native.cpus", "%u CPUs for %u cores (one per core)",
			       n->n_cpus, c->cores);
	for (unsigned i = 0; i < n->n_cpus; i++) {
		char p[CFG_PATH_MAX];

		snprintf(p, sizeof(p), "native.cpus[%u]", i);
		if (n->cpus[i] >= CPU_SETSIZE)
			return cfg_err(ld, p, "%u is out of range (0..%u)", n->cpus[i],
				       CPU_SETSIZE - 1);
		for (unsigned j = 0; j < i; j++)
			if (n->cpus[j] == n->cpus[i])
				return cfg_err(ld, p, "CPU %u is listed twice", n->cpus[i]);
	}
	if ((rc = cfg_uint(ld, "native.idle_polls", &n->idle_polls, 64, 1, 1000000)) ||
	    (rc = cfg_uint(ld, "native.idle_pause_us", &n->idle_pause_us, 100, 0, 100000)) ||
	    (rc = cfg_uint(ld, "native.mbufs", &n->mbufs, 4096 + 2048 * c->cores, 1024,
			   1u << 20)))
		return rc;
	if (!cfg_present(ld, "native.cc"))
		n->cc = CFG_CC_CUBIC;
	if ((rc = cfg_uint(ld, "native.max_conns", &n->max_conns, 65536, 16, 1u << 22)) ||
	    (rc = cfg_uint(ld, "native.syn_backlog", &n->syn_backlog, 128, 1, 65536)))
		return rc;
	for (unsigned i = 0; i < n->n_neighbours; i++)
		if ((rc = cfg_check_neigh(ld, c, i)))
			return rc;
	for (unsigned i = 0; i < c->n_listeners; i++)
		if ((rc = cfg_check_native_listener(ld, c, i)))
			return rc;
	for (unsigned i = 0; i < c->n_backends; i++)
		if ((rc = cfg_check_native_backend(ld, c, i)))
			return rc;
	return 0;
}
