/* Newline-delimited JSON over non-blocking sockets (jline.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jline.h"

void jline_init(struct jline *j, int fd)
{
	memset(j, 0, sizeof(*j));
	j->fd = fd;
}

void jline_close(struct jline *j)
{
	if (j->fd >= 0)
		close(j->fd);
	if (j->out)
		explicit_bzero(j->out, j->out_cap);
	free(j->in);
	free(j->out);
	memset(j, 0, sizeof(*j));
	j->fd = -1;
}

/* Room for n more bytes in *p (cap *cap, len used), growing by doubling. */
static int grow(char **p, size_t *cap, size_t len, size_t n)
{
	size_t c = *cap ? *cap : 4096;
	char *q;

	while (c - len < n)
		c *= 2;
	if (c == *cap)
		return 0;
	/* Not realloc: the old block may hold a request with keys. */
	if (!(q = malloc(c)))
		return -ENOMEM;
	if (*p) {
		memcpy(q, *p, len);
		explicit_bzero(*p, *cap);
		free(*p);
	}
	*p = q;
	*cap = c;
	return 0;
}

ssize_t jline_read(struct jline *j)
{
	ssize_t total = 0;

	for (;;) {
		ssize_t r;

		/* Bounded: a line longer than JLINE_MAX is cut off by jline_next
		 * before more is read. */
		if (j->in_len >= JLINE_MAX + 1)
			return total;
		if (grow(&j->in, &j->in_cap, j->in_len, 65536) < 0)
			return -ENOMEM;
		r = read(j->fd, j->in + j->in_len, j->in_cap - j->in_len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return total;
		if (r < 0)
			return -errno;
		if (r == 0) {
			j->eof = true;
			return total ? total : -EPIPE;
		}
		j->in_len += (size_t)r;
		total += r;
	}
}

/* Drop the first n bytes of the input. */
static void consume(struct jline *j, size_t n)
{
	memmove(j->in, j->in + n, j->in_len - n);
	j->in_len -= n;
}

int jline_next(struct jline *j, json_t **out, char *err, size_t errlen)
{
	char *nl = j->in_len ? memchr(j->in, '\n', j->in_len) : NULL;
	json_error_t je;
	size_t n;
	json_t *v;

	*out = NULL;
	if (j->too_long) {
		/* Skip to the end of the line that was too long. */
		if (!nl) {
			j->in_len = 0;
			return 0;
		}
		consume(j, (size_t)(nl - j->in) + 1);
		j->too_long = false;
		return jline_next(j, out, err, errlen);
	}
	if (!nl) {
		if (j->in_len > JLINE_MAX) {
			j->too_long = true;
			j->in_len = 0;
			snprintf(err, errlen, "request longer than %u bytes", JLINE_MAX);
			return -EINVAL;
		}
		return 0;
	}
	n = (size_t)(nl - j->in);
	v = json_loadb(j->in, n, JSON_REJECT_DUPLICATES, &je);
	consume(j, n + 1);
	if (!v) {
		snprintf(err, errlen, "not JSON: %s (column %d)", je.text, je.column);
		return -EINVAL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		snprintf(err, errlen, "not a JSON object");
		return -EINVAL;
	}
	*out = v;
	return 1;
}

int jline_queue(struct jline *j, const json_t *v, size_t max)
{
	char *s = json_dumps(v, JSON_COMPACT);
	size_t n;

	if (!s)
		return -ENOMEM;
	n = strlen(s);
	if (j->out_len - j->out_off + n + 1 > max) {
		explicit_bzero(s, n);
		free(s);
		return -ENOBUFS;
	}
	if (j->out_off) {
		size_t left = j->out_len - j->out_off;

		memmove(j->out, j->out + j->out_off, left);
		explicit_bzero(j->out + left, j->out_off);
		j->out_len = left;
		j->out_off = 0;
	}
	if (grow(&j->out, &j->out_cap, j->out_len, n + 1) < 0) {
		explicit_bzero(s, n);
		free(s);
		return -ENOMEM;
	}
	memcpy(j->out + j->out_len, s, n);
	j->out[j->out_len + n] = '\n';
	j->out_len += n + 1;
	explicit_bzero(s, n);   /* a load or a tickets request carries keys */
	free(s);
	return 0;
}

int jline_flush(struct jline *j)
{
	while (jline_pending(j)) {
		ssize_t w = send(j->fd, j->out + j->out_off, j->out_len - j->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w < 0)
			return -errno;
		j->out_off += (size_t)w;
	}
	explicit_bzero(j->out, j->out_len);     /* sent: no key stays behind */
	j->out_off = j->out_len = 0;
	return 1;
}

json_t *jline_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:o}", "ok", 0, "error", jline_str(msg));
}

json_t *jline_str(const char *s)
{
	json_t *v = json_string(s);
	char *c;

	if (v || !s)
		return v ? v : json_null();
	/* Not UTF-8 (a file name in some other encoding): said with '?'. */
	if (!(c = strdup(s)))
		return json_null();
	for (char *p = c; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(c);
	free(c);
	return v ? v : json_null();
}

void jline_wipe(json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;

	if (!v)
		return;
	if (json_is_string(v)) {
		/* jansson's own copy: the only one left once it is freed. */
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, x)
			jline_wipe(x);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			jline_wipe(x);
	}
}

void jline_free_secret(json_t *v)
{
	if (v && v->refcount == 1)
		jline_wipe(v);
	json_decref(v);
}
