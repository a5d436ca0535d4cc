/*
 * The loader's certificate and TLS-policy checks: cert sets (their names
 * as a certificate may carry them, key types, lines) and a listener's
 * certificates and cipher policy with its per-network rules
 * (docs/configuration.md "Certificates", "Cipher policy").
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

static const char *const cfg_key_kinds[] = { "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa" };

/* A host name as a certificate may carry it: labels of letters, digits and
 * hyphens, or "*." before such a name (RFC 6125 6.4.3: leftmost label only). */
static bool cfg_host_name_ok(const char *n)
{
	size_t label = 0;

	if (!strncmp(n, "*.", 2))
		n += 2;
	if (!*n || strlen(n) > 253)
		return false;
	for (; *n; n++) {
		if (*n == '.') {
			if (!label)
				return false;
			label = 0;
		} else if ((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
			   (*n >= '0' && *n <= '9') || (*n == '-' && label)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

/* Cert set i: unique name, valid names and key types, lines. */
int cfg_check_cert_set(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_cert_set *cs = &c->cert_sets[i];
	char p[CFG_PATH_MAX];

	snprintf(p, sizeof(p), "cert_sets[%u]", i);
	cs->line = cfg_line(ld, p, false, false);
	snprintf(p, sizeof(p), "cert_sets[%u].name", i);
	for (unsigned j = 0; j < i; j++)
		if (!strcmp(c->cert_sets[j].name, cs->name))
			return cfg_err(ld, p, "duplicate cert set name '%s' (first at line %u)",
				       cs->name, c->cert_sets[j].line);
	for (unsigned j = 0; j < cs->n_names; j++) {
		snprintf(p, sizeof(p), "cert_sets[%u].names[%u]", i, j);
		if (!cfg_host_name_ok(cs->names[j]))
			return cfg_err(ld, p, "'%s' is not a host name (a wildcard is '*.' "
				       "before a name)", cs->names[j]);
	}
	for (unsigned j = 0; j < cs->n_prefer; j++) {
		size_t k;

		snprintf(p, sizeof(p), "cert_sets[%u].prefer[%u]", i, j);
		for (k = 0; k < CYAML_ARRAY_LEN(cfg_key_kinds); k++)
			if (!strcmp(cs->prefer[j], cfg_key_kinds[k]))
				break;
		if (k == CYAML_ARRAY_LEN(cfg_key_kinds))
			return cfg_err(ld, p, "unknown key type '%s' (expected ecdsa-p256, "
				       "ecdsa-p384, ed25519, rsa)", cs->prefer[j]);
		for (unsigned m = 0; m < j; m++)
			if (!strcmp(cs->prefer[m], cs->prefer[j]))
				return cfg_err(ld, p, "'%s' is listed twice", cs->prefer[j]);
	}
	for (unsigned j = 0; j < cs->n_certs; j++) {
		snprintf(p, sizeof(p), "cert_sets[%u].certs[%u]", i, j);
		cs->certs[j].line = cfg_line(ld, p, false, false);
	}
	return 0;
}

/* The policy of the listener, or of its first rule whose networks hold
 * the client. */
enum cfg_policy cfg_policy_for(const struct cfg_listener *l, const struct sockaddr *sa)
{
	for (unsigned i = 0; i < l->n_policy_rules; i++)
		for (unsigned j = 0; j < l->policy_by_network[i].n_networks; j++)
			if (cfg_net_contains(&l->policy_by_network[i].nets[j], sa))
				return l->policy_by_network[i].policy;
	return l->policy;
}

/* Listener i: cert sets resolved, policy and its network rules. */
int cfg_check_listener_tls(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_listener *l = &c->listeners[i];
	char p[CFG_PATH_MAX];

	if (l->n_certs && l->n_cert_sets) {
		snprintf(p, sizeof(p), "listeners[%u].cert_sets", i);
		return cfg_err(ld, p, "a listener names its certificates with certs or "
			       "cert_sets, not both");
	}
	if (l->n_cert_sets && !(l->sets = calloc(l->n_cert_sets, sizeof(*l->sets))))
		return cfg_oom(ld);
	for (unsigned j = 0; j < l->n_cert_sets; j++) {
		snprintf(p, sizeof(p), "listeners[%u].cert_sets[%u]", i, j);
		for (unsigned k = 0; k < c->n_cert_sets && !l->sets[j]; k++)
			if (!strcmp(c->cert_sets[k].name, l->cert_sets[j]))
				l->sets[j] = &c->cert_sets[k];
		if (!l->sets[j])
			return cfg_err(ld, p, "no cert set named '%s'", l->cert_sets[j]);
		for (unsigned k = 0; k < j; k++)
			if (l->sets[k] == l->sets[j])
				return cfg_err(ld, p, "cert set '%s' is listed twice", l->cert_sets[j]);
	}
	snprintf(p, sizeof(p), "listeners[%u].policy", i);
	if (!cfg_present(ld, p))
		l->policy = CFG_POLICY_INTERMEDIATE;
	for (unsigned j = 0; j < l->n_policy_rules; j++) {
		struct cfg_policy_rule *r = &l->policy_by_network[j];

		snprintf(p, sizeof(p), "listeners[%u].policy_by_network[%u]", i, j);
		r->line = cfg_line(ld, p, false, false);
		if (!(r->nets = calloc(r->n_networks, sizeof(*r->nets))))
			return cfg_oom(ld);
		for (unsigned k = 0; k < r->n_networks; k++) {
			snprintf(p, sizeof(p), "listeners[%u].policy_by_network[%u].networks[%u]",
				 i, j, k);
			if (cfg_parse_net(r->networks[k], &r->nets[k]) < 0)
				return cfg_err(ld, p, "cannot parse network '%s' (expected "
					       "ADDRESS/PREFIX, e.g. 192.0.2.0/24 or "
					       "2001:db8::/32)", r->networks[k]);
		}
	}
	return 0;
}
