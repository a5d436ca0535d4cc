#include <string.h>

#include "linereader.h"

enum lr_event lr_next(struct linereader *lr, const uint8_t *buf, size_t len,
		      struct lr_line *line, size_t *consumed)
{
	const uint8_t *lf;
	size_t n;

	*consumed = 0;
	if (lr->literal) {
		n = len < lr->literal ? len : (size_t)lr->literal;
		lr->literal -= n;
		*consumed = n;
		return n ? LR_LITERAL : LR_NEED_MORE;
	}
	if (lr->discarding) {
		lf = memchr(buf, '\n', len);
		if (!lf) {
			*consumed = len;
			return LR_NEED_MORE;
		}
		*consumed = (size_t)(lf - buf) + 1;
		lr->discarding = false;
		return LR_TOO_LONG;
	}

	n = len < lr->max ? len : lr->max;
	lf = memchr(buf, '\n', n);
	if (lf) {
		size_t end = (size_t)(lf - buf);

		line->crlf = end > 0 && buf[end - 1] == '\r';
		line->p = (const char *)buf;
		line->len = line->crlf ? end - 1 : end;
		line->has_nul = memchr(buf, 0, line->len) != NULL;
		*consumed = end + 1;
		return LR_LINE;
	}
	if (len < lr->max)
		return LR_NEED_MORE;

	/* Over the limit: drop it all, up to and including its LF. */
	lf = memchr(buf + n, '\n', len - n);
	if (lf) {
		*consumed = (size_t)(lf - buf) + 1;
		return LR_TOO_LONG;
	}
	lr->discarding = true;
	*consumed = len;
	return LR_NEED_MORE;
}
