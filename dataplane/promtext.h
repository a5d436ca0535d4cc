/*
 * Prometheus text exposition (format 0.0.4) into a growing buffer: the
 * writing and escaping only; what is written is ctl_metrics.c's. For the
 * control thread (it allocates), never a core.
 */
#ifndef SLUICE_PROMTEXT_H
#define SLUICE_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>

struct ptext {
	char *p;             /* NUL-terminated while not failed */
	size_t len, cap;
	size_t max;          /* the text never grows past this */
	bool failed;         /* out of memory or over max: the text is cut */
};

void pt_init(struct ptext *t, size_t max);
void pt_free(struct ptext *t);
void pt_printf(struct ptext *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A label value, escaped: backslash, double quote and newline. */
void pt_label_value(struct ptext *t, const char *v);
/* "# HELP name help\n# TYPE name type\n", the help escaped (backslash,
 * newline). */
void pt_family(struct ptext *t, const char *name, const char *type, const char *help);
/* A label value escaped into dst[n] (cut to fit, always terminated);
 * returns the length written. */
size_t pt_escape(char *dst, size_t n, const char *v);

#endif
