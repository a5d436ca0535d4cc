/*
 * A connection's send and receive buffers, as memory that follows what is
 * in flight. The configured sizes (tcp_params sndbuf, rcvbuf) bound what
 * may be queued and are the window we advertise; the memory behind them
 * is a ring of a power of two bytes, allocated on the first byte it has
 * to hold, doubled (the live bytes copied by sequence) as more is held,
 * and freed once it has been empty (everything sent acknowledged,
 * everything received read) for buf_idle_us. An idle connection holds no
 * buffer: 1,000,000 IMAP IDLE sessions hold their struct tcp_conn only.
 *
 * The release is driven by the stack's buffer-idle list, longest empty
 * first, not by a timer per connection: net_poll() looks at its head, so
 * a connection costs one list move when its buffers empty and one free,
 * and nothing per idle second after that.
 */
#include <errno.h>
#include <stdlib.h>

#include "net/net_int.h"

/* The smallest ring: a ClientHello, a greeting, an IMAP command. */
#define TCP_BUF_MIN 2048u

/* Copy n bytes of sequence space from seq on between two rings. */
static void ring_move(uint8_t *dst, uint32_t dmem, const uint8_t *src, uint32_t smem, uint32_t seq,
		      uint32_t n)
{
	while (n) {
		uint32_t d = seq & (dmem - 1), s = seq & (smem - 1), k = n;

		if (k > dmem - d)
			k = dmem - d;
		if (k > smem - s)
			k = smem - s;
		memcpy(dst + d, src + s, k);
		seq += k;
		n -= k;
	}
}

/* The ring *buf of *mem bytes holds at least bytes from base on (bytes <=
 * size): grown to the next power of two, what it held moved along.
 * Returns 0 or -ENOMEM (the old ring stays). */
static int reserve(struct tcp_conn *c, uint8_t **buf, uint32_t *mem, uint32_t size, uint32_t base,
		   uint32_t bytes)
{
	uint32_t m = *mem ? *mem * 2 : TCP_BUF_MIN;
	uint8_t *p;

	if (bytes <= *mem)
		return 0;
	while (m < bytes)
		m <<= 1;
	if (m > size)
		m = size;
	p = malloc(m);
	if (!p)
		return -ENOMEM;
	if (*buf) {
		ring_move(p, m, *buf, *mem, base, *mem);
		free(*buf);
	}
	c->st->buf_bytes += m - *mem;
	*buf = p;
	*mem = m;
	return 0;
}

/* Room in the send ring for bytes from the oldest unacknowledged byte on. */
int tcp_sbuf_reserve(struct tcp_conn *c, uint32_t bytes)
{
	return reserve(c, &c->sbuf, &c->sbuf_mem, c->sbuf_size, tcp_snd_data_una(c), bytes);
}

/* Room in the receive ring for bytes from the next byte to read on. */
int tcp_rbuf_reserve(struct tcp_conn *c, uint32_t bytes)
{
	return reserve(c, &c->rbuf, &c->rbuf_mem, c->rbuf_size, c->rcv_read, bytes);
}

void tcp_free_sbuf(struct tcp_conn *c)
{
	if (c->sbuf) {
		c->st->buf_bytes -= c->sbuf_mem;
		free(c->sbuf);
		c->sbuf = NULL;
		c->sbuf_mem = 0;
	}
}

void tcp_free_rbuf(struct tcp_conn *c)
{
	if (c->rbuf) {
		c->st->buf_bytes -= c->rbuf_mem;
		free(c->rbuf);
		c->rbuf = NULL;
		c->rbuf_mem = 0;
	}
}

/* Nothing queued that the peer has not acknowledged. */
static bool sbuf_empty(const struct tcp_conn *c)
{
	return c->snd_qend == tcp_snd_data_una(c);
}

/* Nothing received that the application has not read, in order or not. */
static bool rbuf_empty(const struct tcp_conn *c)
{
	return c->rcv_nxt - c->rcv_read - (c->fin_rcvd ? 1u : 0u) == 0 && c->nooo == 0;
}

/* Off the buffer-idle list, if on it. */
void tcp_buf_unlist(struct tcp_conn *c)
{
	struct net_stack *st = c->st;

	if (!c->on_bi)
		return;
	if (c->bi_prev)
		c->bi_prev->bi_next = c->bi_next;
	else
		st->bi_head = c->bi_next;
	if (c->bi_next)
		c->bi_next->bi_prev = c->bi_prev;
	else
		st->bi_tail = c->bi_prev;
	c->bi_prev = c->bi_next = NULL;
	c->on_bi = false;
}

/* A buffer may have emptied (an ACK came, the application read): a
 * connection holding an empty one goes to the tail of the list, its
 * clock started again. TIME_WAIT trims its buffers itself (tcp_tw_trim)
 * and uses the same links for its own list. */
void tcp_buf_check(struct tcp_conn *c)
{
	struct net_stack *st = c->st;

	if (c->in_tw || c->dead || !((c->sbuf && sbuf_empty(c)) || (c->rbuf && rbuf_empty(c))))
		return;
	tcp_buf_unlist(c);
	c->on_bi = true;
	c->bi_us = st->now_us;
	c->bi_next = NULL;
	c->bi_prev = st->bi_tail;
	if (st->bi_tail)
		st->bi_tail->bi_next = c;
	else
		st->bi_head = c;
	st->bi_tail = c;
}

/* From net_poll(): free the buffers empty for buf_idle_us. One that
 * filled again meanwhile stays; its next emptying lists it again. */
void tcp_buf_poll(struct net_stack *st)
{
	struct tcp_conn *c;

	while ((c = st->bi_head) && st->now_us - c->bi_us >= st->tp.buf_idle_us) {
		tcp_buf_unlist(c);
		if (c->sbuf && sbuf_empty(c)) {
			tcp_free_sbuf(c);
			net_count(st, NET_C_tcp_buf_released);
		}
		if (c->rbuf && rbuf_empty(c)) {
			tcp_free_rbuf(c);
			net_count(st, NET_C_tcp_buf_released);
		}
	}
}
