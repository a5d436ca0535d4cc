/*
 * Newline-delimited JSON over a non-blocking socket (docs/control.md, "Wire
 * format"): one object per line each way. Both of sluice-control's sockets
 * use it; neither side may block the other, so reads and writes only move
 * what the socket takes now, and both buffers are bounded.
 */
#ifndef SLUICE_CTL_JLINE_H
#define SLUICE_CTL_JLINE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define JLINE_MAX (16u << 20)   /* a request or answer line; longer: refused */

struct jline {
	int fd;                 /* owned: jline_close() closes it */
	char *in;               /* bytes read, not yet a whole line */
	size_t in_len, in_cap;
	char *out;              /* bytes to write */
	size_t out_off, out_len, out_cap;
	bool eof;               /* the peer closed its side */
	bool too_long;          /* a line passed JLINE_MAX: the rest is dropped */
};

void jline_init(struct jline *j, int fd);
void jline_close(struct jline *j);
/* Read what the socket holds now (at most until JLINE_MAX is buffered).
 * >0 bytes read, 0 nothing now, -errno (or -EPIPE at end of file) when the
 * connection is done for reading. */
ssize_t jline_read(struct jline *j);
/*
 * The next whole line as JSON: 1 and *out (a new reference) when one
 * parsed, 0 when no whole line is buffered, -EINVAL with a reason in err
 * for a line that is not a JSON object or is too long (the line is
 * consumed: the next call looks at the one after it).
 */
int jline_next(struct jline *j, json_t **out, char *err, size_t errlen);
/* Queue v (not stolen) as one line. 0, or -ENOBUFS past max bytes queued. */
int jline_queue(struct jline *j, const json_t *v, size_t max);
/* Write what the socket takes. 1 all written, 0 some left, -errno. */
int jline_flush(struct jline *j);
static inline bool jline_pending(const struct jline *j)
{
	return j->out_len > j->out_off;
}

/* {"ok": false, "error": msg} as a new reference. */
json_t *jline_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A JSON string of s, bytes that are not UTF-8 replaced by '?'. */
json_t *jline_str(const char *s);

/* Overwrite every string in v with zeros (keys, before they are freed). */
void jline_wipe(json_t *v);
/* json_decref, wiping first when this is the last reference. */
void jline_free_secret(json_t *v);

#endif
