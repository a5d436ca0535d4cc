/*
 * A byte buffer owned by a session: one direction of one socket.
 *
 * Storage is allocated on first use and released when the buffer drains, so
 * an idle connection holds no buffer memory at all. Bytes live in
 * data[head, tail); space is [tail, cap). buf_compact() moves the live bytes
 * to the front when the free tail runs short.
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUF_CAP 20480u /* a whole TLS record fits: 5 + 2^14 + 2048 */

struct buf {
	uint8_t *data;  /* NULL until first use */
	uint32_t head;  /* first live byte */
	uint32_t tail;  /* one past the last live byte */
};

static inline uint32_t buf_len(const struct buf *b) { return b->tail - b->head; }
static inline uint8_t *buf_head(const struct buf *b) { return b->data + b->head; }

/* Free space at the tail, compacting first. Returns 0 and sets *p, or -ENOMEM. */
static inline int buf_space(struct buf *b, uint8_t **p, uint32_t *n)
{
	if (!b->data) {
		b->data = malloc(BUF_CAP);
		if (!b->data)
			return -12; /* -ENOMEM */
		b->head = b->tail = 0;
	}
	if (b->head == b->tail) {
		b->head = b->tail = 0;
	} else if (b->head > 0 && BUF_CAP - b->tail < BUF_CAP / 4) {
		memmove(b->data, b->data + b->head, b->tail - b->head);
		b->tail -= b->head;
		b->head = 0;
	}
	*p = b->data + b->tail;
	*n = BUF_CAP - b->tail;
	return 0;
}

static inline uint32_t buf_room(const struct buf *b)
{
	if (!b->data)
		return BUF_CAP;
	return BUF_CAP - (b->tail - b->head);
}

/* Drop n bytes from the head; release storage once empty. */
static inline void buf_consume(struct buf *b, uint32_t n)
{
	b->head += n;
	if (b->head == b->tail) {
		free(b->data);
		b->data = NULL;
		b->head = b->tail = 0;
	}
}

/* Append up to n bytes; returns how many fit: min(n, buf_room()). */
static inline uint32_t buf_put(struct buf *b, const void *src, uint32_t n)
{
	uint8_t *p;
	uint32_t room;

	if (n == 0 || buf_space(b, &p, &room) < 0)
		return 0;
	if (n > room && b->head > 0) {
		/* buf_space() left the dead head in place, but buf_room()
		 * counted it: callers size n by buf_room(). */
		memmove(b->data, b->data + b->head, b->tail - b->head);
		b->tail -= b->head;
		b->head = 0;
		p = b->data + b->tail;
		room = BUF_CAP - b->tail;
	}
	if (n > room)
		n = room;
	memcpy(p, src, n);
	b->tail += n;
	return n;
}

static inline void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->head = b->tail = 0;
}

#endif
