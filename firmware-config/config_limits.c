/*
 * The `limits` section of the configuration and a listener's `limits`
 * (DESIGN.md §5, docs/configuration.md): how many sessions a core holds,
 * how many a client address may open and how fast, the networks exempt
 * from that, the dialogue's junk-command limit, and when stress mode
 * starts. The schema and the checks; the dataplane acts on them
 * (dataplane/conn_limits.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

#define OPT   CYAML_FLAG_OPTIONAL
#define PTR   CYAML_FLAG_POINTER

static const cyaml_schema_value_t cfg_limits_string = {
	CYAML_VALUE_STRING(PTR, char, 1, 64),
};

const cyaml_schema_field_t cfg_addr_limits_fields[] = {
	CYAML_FIELD_UINT("sessions", OPT, struct cfg_addr_limits, sessions),
	CYAML_FIELD_UINT("rate", OPT, struct cfg_addr_limits, rate),
	CYAML_FIELD_UINT("handshakes", OPT, struct cfg_addr_limits, handshakes),
	CYAML_FIELD_END
};

const cyaml_schema_field_t cfg_limits_fields[] = {
	CYAML_FIELD_UINT("sessions_per_core", OPT, struct cfg_limits, sessions_per_core),
	CYAML_FIELD_MAPPING("per_address", OPT, struct cfg_limits, per_address,
			    cfg_addr_limits_fields),
	CYAML_FIELD_UINT("ipv6_prefix", OPT, struct cfg_limits, ipv6_prefix),
	CYAML_FIELD_SEQUENCE_COUNT("exempt", OPT | PTR, struct cfg_limits, exempt, n_exempt,
				   &cfg_limits_string, 0, CFG_NETS_MAX),
	CYAML_FIELD_UINT("junk_commands", OPT, struct cfg_limits, junk_commands),
	CYAML_FIELD_UINT("stress_percent", OPT, struct cfg_limits, stress_percent),
	CYAML_FIELD_UINT("stress_plaintext", OPT, struct cfg_limits, stress_plaintext),
	CYAML_FIELD_UINT("stress_handshake", OPT, struct cfg_limits, stress_handshake),
	CYAML_FIELD_UINT("nofile", OPT, struct cfg_limits, nofile),
	CYAML_FIELD_END
};

#undef OPT
#undef PTR

/* A per_address block at prefix: defaults from def, ranges. */
static int cfg_addr_limits(struct cfg_ld *ld, const char *prefix, struct cfg_addr_limits *a,
			   const struct cfg_addr_limits *def)
{
	char p[CFG_PATH_MAX];
	int rc;

	snprintf(p, sizeof(p), "%s.sessions", prefix);
	if ((rc = cfg_uint(ld, p, &a->sessions, def->sessions, 0, 1000000)))
		return rc;
	snprintf(p, sizeof(p), "%s.rate", prefix);
	if ((rc = cfg_uint(ld, p, &a->rate, def->rate, 0, 10000000)))
		return rc;
	snprintf(p, sizeof(p), "%s.handshakes", prefix);
	return cfg_uint(ld, p, &a->handshakes, def->handshakes, 0, 10000000);
}

int cfg_check_limits(struct cfg_ld *ld, struct cfg *c)
{
	static const struct cfg_addr_limits def = { 50, 600, 300 };
	struct cfg_limits *k = &c->limits;
	char p[CFG_PATH_MAX];
	int rc;

	k->line = cfg_line(ld, "limits", true, false);
	if ((rc = cfg_uint(ld, "limits.sessions_per_core", &k->sessions_per_core, 20000, 16,
			   10000000)) ||
	    (rc = cfg_addr_limits(ld, "limits.per_address", &k->per_address, &def)) ||
	    (rc = cfg_uint(ld, "limits.ipv6_prefix", &k->ipv6_prefix, 64, 32, 128)) ||
	    (rc = cfg_uint(ld, "limits.junk_commands", &k->junk_commands, 100, 0, 100000)) ||
	    (rc = cfg_uint(ld, "limits.stress_percent", &k->stress_percent, 80, 10, 100)) ||
	    (rc = cfg_uint(ld, "limits.stress_plaintext", &k->stress_plaintext, 10, 1, 86400)) ||
	    (rc = cfg_uint(ld, "limits.stress_handshake", &k->stress_handshake, 5, 1, 86400)) ||
	    (rc = cfg_uint(ld, "limits.nofile", &k->nofile, 0, 0, 1u << 30)))
		return rc;
	if (k->nofile && k->nofile < 64)
		return cfg_err(ld, "limits.nofile", "%u is too few descriptors (at least 64)",
			       k->nofile);
	if (k->n_exempt && !(k->exempt_nets = calloc(k->n_exempt, sizeof(*k->exempt_nets))))
		return cfg_oom(ld);
	for (unsigned i = 0; i < k->n_exempt; i++) {
		snprintf(p, sizeof(p), "limits.exempt[%u]", i);
		if (cfg_parse_net(k->exempt[i], &k->exempt_nets[i]) < 0)
			return cfg_err(ld, p, "cannot parse network '%s' (expected ADDRESS/PREFIX, "
				       "e.g. 192.0.2.0/24 or 2001:db8::/32)", k->exempt[i]);
	}
	return 0;
}

int cfg_check_listener_limits(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	char p[CFG_PATH_MAX];

	snprintf(p, sizeof(p), "listeners[%u].limits", i);
	return cfg_addr_limits(ld, p, &c->listeners[i].limits, &c->limits.per_address);
}

bool cfg_limits_exempt(const struct cfg_limits *lim, const struct sockaddr *sa)
{
	for (unsigned i = 0; i < lim->n_exempt; i++)
		if (cfg_net_contains(&lim->exempt_nets[i], sa))
			return true;
	return false;
}
