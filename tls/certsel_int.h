/*
 * tls/certsel internals shared by certsel.c (the decision) and
 * certsel_explain.c (the words). Not for other modules.
 */
#ifndef SLUICE_CERTSEL_INT_H
#define SLUICE_CERTSEL_INT_H

#include "certsel.h"

struct certsel_rule_info {
	const char *label, *rfc, *sentence, *fix, *ossl;
	enum certsel_kind kind;
};

/* certsel_rules.def as a table, indexed by enum certsel_rule. */
extern const struct certsel_rule_info certsel_rules[CERTSEL_R_COUNT];

bool certsel_key_is_ec(enum certsel_key k);
/* The named group of an ECDSA key's curve, or 0. */
uint16_t certsel_key_curve(enum certsel_key k);
/* Security bits of a key, as EVP_PKEY_get_security_bits(). */
int certsel_key_secbits(const struct certsel_cert *c);
/* Whether key k signs with signature family f (OpenSSL's sig_idx). */
bool certsel_fam_fits_key(enum policy_sigfam f, enum certsel_key k);
/* Whether v is among l[0, n). */
bool certsel_has(const uint16_t *l, unsigned n, uint16_t v);

#endif
