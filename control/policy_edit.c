/* A listener's policy: line edited in place (policy_edit.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_edit.h"

/* Start of line n (1-based) of s, or NULL. */
static const char *line_start(const char *s, size_t len, unsigned n)
{
	const char *p = s, *end = s + len;

	while (--n) {
		p = memchr(p, '\n', (size_t)(end - p));
		if (!p)
			return NULL;
		p++;
	}
	return p <= end ? p : NULL;
}

int policy_edit(const char *yaml, size_t len, unsigned line, const char *listener,
		const char *policy, char **out, size_t *outlen, unsigned *at, char *err,
		size_t errlen)
{
	const char *end = yaml + len, *p = line_start(yaml, len, line), *q;
	size_t key_col, col;
	unsigned n = line;

	if (!p || !line) {
		snprintf(err, errlen, "listener %s: line %u is not in the file", listener, line);
		return -EINVAL;
	}
	/* The column of the listener's keys: after "  - " on its first line. */
	q = p;
	while (q < end && *q == ' ')
		q++;
	if (q < end && *q == '-' && q + 1 < end && q[1] == ' ')
		for (q++; q < end && *q == ' '; q++)
			;
	key_col = (size_t)(q - p);
	for (;;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *k = p + key_col;

		if (!eol)
			eol = end;
		for (q = p, col = 0; q < eol && *q == ' '; q++)
			col++;
		if (n != line && q < eol && *q != '#' && col < key_col)
			break;          /* past the listener's mapping */
		if ((n == line || col == key_col) && k < eol &&
		    (size_t)(eol - k) > 7 && !strncmp(k, "policy:", 7)) {
			const char *v = k + 7, *ve;
			size_t pre, plen = strlen(policy);
			char *o;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			for (ve = v; ve < eol && *ve != ' ' && *ve != '\t' && *ve != '#' &&
				     *ve != '\r'; ve++)
				;
			pre = (size_t)(v - yaml);
			if (!(o = malloc(len - (size_t)(ve - v) + plen + 1))) {
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			memcpy(o, yaml, pre);
			memcpy(o + pre, policy, plen);
			memcpy(o + pre + plen, ve, (size_t)(end - ve));
			*outlen = pre + plen + (size_t)(end - ve);
			o[*outlen] = 0;
			*out = o;
			*at = n;
			return 0;
		}
		if (eol == end)
			break;
		p = eol + 1;
		n++;
	}
	snprintf(err, errlen, "listener %s (line %u) has no policy: line of its own; add "
		 "\"policy: %s\" to it in the file and run sluicectl reload (policy stage only "
		 "edits an existing line, so that the file stays as written)", listener, line,
		 policy);
	return -ENOENT;
}
