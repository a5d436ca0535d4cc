/* Prometheus text exposition writing (promtext.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promtext.h"

void pt_init(struct ptext *t, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
}

void pt_free(struct ptext *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

/* Room for n more bytes and the NUL; false (failed) when it cannot be. */
static bool pt_room(struct ptext *t, size_t n)
{
	size_t cap;
	char *p;

	if (t->failed)
		return false;
	if (t->len + n + 1 <= t->cap)
		return true;
	if (t->len + n + 1 > t->max) {
		t->failed = true;
		return false;
	}
	for (cap = t->cap ? t->cap : 16384; cap < t->len + n + 1; cap *= 2)
		;
	if (cap > t->max)
		cap = t->max;
	if (!(p = realloc(t->p, cap))) {
		t->failed = true;
		return false;
	}
	t->p = p;
	t->cap = cap;
	return true;
}

void pt_printf(struct ptext *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !pt_room(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* s with backslash and newline escaped, and double quotes too when quote. */
static void pt_escaped(struct ptext *t, const char *s, bool quote)
{
	for (; *s; s++) {
		const char *e = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" :
				quote && *s == '"' ? "\\\"" : NULL;
		size_t n = e ? 2 : 1;

		if (!pt_room(t, n))
			return;
		memcpy(t->p + t->len, e ? e : s, n);
		t->len += n;
		t->p[t->len] = 0;
	}
}

void pt_label_value(struct ptext *t, const char *v)
{
	pt_escaped(t, v, true);
}

void pt_family(struct ptext *t, const char *name, const char *type, const char *help)
{
	pt_printf(t, "# HELP %s ", name);
	pt_escaped(t, help, false);
	pt_printf(t, "\n# TYPE %s %s\n", name, type);
}

size_t pt_escape(char *dst, size_t n, const char *v)
{
	size_t o = 0;

	if (!n)
		return 0;
	for (; *v; v++) {
		const char *e = *v == '\\' ? "\\\\" : *v == '\n' ? "\\n" : *v == '"' ? "\\\"" : NULL;
		size_t k = e ? 2 : 1;

		if (o + k >= n)
			break;
		memcpy(dst + o, e ? e : v, k);
		o += k;
	}
	dst[o] = 0;
	return o;
}
