/*
 * sluice-control's own Prometheus families (metrics_own.def), in text
 * exposition format 0.0.4: appended to the dataplane's by each scrape
 * (metrics_http.c).
 */
#ifndef SLUICE_CTL_METRICS_OWN_H
#define SLUICE_CTL_METRICS_OWN_H

#include <stdbool.h>
#include <stdio.h>

struct ctl;

/* Write every family of metrics_own.def to f: dp_up is whether the
 * dataplane's families came with this scrape. */
void metrics_own_write(FILE *f, const struct ctl *ctl, bool dp_up);
/* s as a label value: backslash, double quote and newline escaped. */
void metrics_label_value(FILE *f, const char *s);

#endif
