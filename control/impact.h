/*
 * control/impact: what a certificate or policy change would break, decided
 * before it is committed (issue 11, DESIGN.md §5): the ClientHellos the
 * dataplane recorded (its `hellos` answer) run through certificate
 * selection (tls/certsel) under the running configuration and under the
 * staged one. A library: no I/O but the FILE the print functions are
 * given; everything it reads comes in its arguments.
 */
#ifndef SLUICE_IMPACT_H
#define SLUICE_IMPACT_H

#include <stdio.h>

#include <jansson.h>

#include "conf.h"

/*
 * Compare the running configuration now with staged, for the hellos
 * recorded (the dataplane's `hellos` answer: the whole object, or its
 * "hellos" array; rows last seen before now_s - window_s are left out;
 * window_s 0: all). Returns a new object (NULL only when out of memory):
 *
 *   ok         true when breaks and refusals are both empty
 *   breaks     [{listener, ja4, sni, count, ok, fail, clients [..],
 *                first_seen, last_seen, policy_now, policy_after,
 *                set_now, set_after, cert_now, rule, reason, explain}]
 *              each fingerprint that gets a certificate now and would get
 *              none after: rule is the certsel rule that fails
 *              (certsel_rule_label), reason its sentence (certsel_reason),
 *              explain the whole certsel_explain() text under the staged set
 *   summary    [{listener, rule, fingerprints, handshakes, line}] the
 *              breaks grouped by listener and reason, line in words: "3 fingerprints, 41
 *              handshakes in the last 24 h, would get no certificate: ..."
 *   refusals   [{kind, set?, listener?, cert?, name?, not_after?, days?,
 *                handshakes?, line}] what needs no hello:
 *                kind "expires_soon": a certificate the change brings ends
 *                  within margin_days;
 *                kind "name_not_covered": an SNI name that a certificate
 *                  covers now (configured in a cert set's names, or seen in
 *                  a recorded hello of that listener) that none covers after.
 *              (a chain out of order, a key of another certificate, an
 *              expired certificate: tls_certset_load refuses them already,
 *              so staged never holds one)
 *   changes    [{what: "cert", set, key, change: added|removed|replaced,
 *                old {serial, not_after, names}, new {...}}
 *               {what: "policy", listener, old, new}
 *               {what: "listener", listener, change: added|removed}]
 *   checked    {fingerprints, handshakes, unparsed, window_s, margin_days}
 */
json_t *impact_check(const struct tls_conf *now, const struct tls_conf *staged,
		     const json_t *hellos, long long now_s, unsigned window_s,
		     unsigned margin_days);

/* The impact_check() result for people: the summary lines, each break,
 * each refusal, the changes, and the verdict. */
void impact_print(FILE *f, const json_t *result);

/*
 * The fingerprint report (`sluicectl fingerprints`): for each recorded
 * hello of a listener that exists in now: {listener, ja4, sni, version
 * (offered), count, ok, fail, clients, first_seen, last_seen, policy (the
 * one this client gets), set, verdicts {modern, intermediate, legacy: "ok"
 * or the certsel rule}, reason (why it fails under its own policy, or
 * absent)}. Returns {fingerprints [...], unparsed n}; NULL when out of
 * memory.
 */
json_t *impact_fingerprints(const struct tls_conf *now, const json_t *hellos, long long now_s);

/* impact_fingerprints() for people: one line per fingerprint. */
void impact_fingerprints_print(FILE *f, const json_t *report);

#endif
