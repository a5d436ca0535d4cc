/*
 * One staged change at a time (docs/operations.md): a certificate and key
 * for a cert set (certs stage), or a listener's policy (policy stage), held
 * as a whole new bundle, validated when staged; check says what it would
 * break, commit writes the changed files back atomically and loads them,
 * abort drops it.
 */
#ifndef SLUICE_CTL_STAGE_H
#define SLUICE_CTL_STAGE_H

struct stage;

const char *stage_what(const struct stage *st);
void stage_free(struct stage *st);

#endif
