/*
 * The simulated link (simlink.h): a heap of frames in flight ordered by
 * arrival time (ties by send order), a virtual clock that jumps from one
 * event to the next (at most 1 ms at a time, so the stacks' timers run),
 * and xorshift64* for every random choice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "net/simlink.h"

#define STEP_US 1000u

struct sim_frame {
	uint64_t at, order;
	int to;
	uint32_t len;
	uint8_t *data;
};

struct sim_end {
	struct simlink *l;
	int id;
	struct net_stack *st;
	simlink_rx_fn rx;
	void *arg;
};

struct simlink {
	uint64_t now, rng, order;
	struct simlink_params p[2];
	struct simlink_stats s[2];
	uint64_t busy_until[2];
	struct sim_end end[2];
	struct sim_frame *heap;
	size_t n, cap;
	simlink_filter_fn filter;
	void *filter_arg;
};

/* xorshift64*: the only source of randomness of a run. */
uint64_t simlink_rand(struct simlink *l)
{
	uint64_t x = l->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	l->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* True with probability ppm / 10^6. */
static bool chance(struct simlink *l, uint32_t ppm)
{
	return ppm && simlink_rand(l) % 1000000u < ppm;
}

/* A link with the given behaviour per direction (NULL: perfect). NULL if out of memory. */
struct simlink *simlink_new(uint64_t seed, const struct simlink_params *p01, const struct simlink_params *p10)
{
	struct simlink *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
	if (p01)
		l->p[0] = *p01;
	if (p10)
		l->p[1] = *p10;
	l->end[0] = (struct sim_end){ .l = l, .id = 0 };
	l->end[1] = (struct sim_end){ .l = l, .id = 1 };
	return l;
}

/* Free the link and the frames still in flight. */
void simlink_free(struct simlink *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		free(l->heap[i].data);
	free(l->heap);
	free(l);
}

void *simlink_port(struct simlink *l, int end) { return &l->end[end & 1]; }
void simlink_attach_stack(struct simlink *l, int end, struct net_stack *st) { l->end[end & 1].st = st; }
void simlink_attach_rx(struct simlink *l, int end, simlink_rx_fn rx, void *arg)
{
	l->end[end & 1].rx = rx;
	l->end[end & 1].arg = arg;
}
void simlink_set_filter(struct simlink *l, simlink_filter_fn f, void *arg)
{
	l->filter = f;
	l->filter_arg = arg;
}
void simlink_set_params(struct simlink *l, int dir, const struct simlink_params *p) { l->p[dir & 1] = *p; }
uint64_t simlink_now(const struct simlink *l) { return l->now; }
const struct simlink_stats *simlink_stats(const struct simlink *l, int dir) { return &l->s[dir & 1]; }

/* Heap order: arrival time, then send order. */
static bool before(const struct sim_frame *a, const struct sim_frame *b)
{
	return a->at < b->at || (a->at == b->at && a->order < b->order);
}

/* Add a frame to the heap. Returns 0 or -ENOMEM (the caller frees the frame). */
static int heap_push(struct simlink *l, struct sim_frame f)
{
	size_t i;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 256;
		struct sim_frame *h = realloc(l->heap, nc * sizeof(*h));

		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->cap = nc;
	}
	i = l->n++;
	while (i > 0 && before(&f, &l->heap[(i - 1) / 2])) {
		l->heap[i] = l->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	l->heap[i] = f;
	return 0;
}

/* Remove and return the earliest frame (the heap is not empty). */
static struct sim_frame heap_pop(struct simlink *l)
{
	struct sim_frame top = l->heap[0], last = l->heap[--l->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= l->n)
			break;
		if (c + 1 < l->n && before(&l->heap[c + 1], &l->heap[c]))
			c++;
		if (!before(&l->heap[c], &last))
			break;
		l->heap[i] = l->heap[c];
		i = c;
	}
	if (l->n)
		l->heap[i] = last;
	return top;
}

/* Copy a frame into flight, arriving at time at. */
static void enqueue(struct simlink *l, int dir, const uint8_t *frame, uint32_t len, uint64_t at)
{
	struct sim_frame f = { .at = at, .order = l->order++, .to = 1 - dir, .len = len };

	f.data = malloc(len ? len : 1);
	if (!f.data)
		return;
	memcpy(f.data, frame, len);
	if (heap_push(l, f) < 0)
		free(f.data);
}

/* A frame sent by end `port`: the link decides its fate now. */
void simlink_tx(void *port, const uint8_t *frame, uint32_t len)
{
	struct sim_end *e = port;
	struct simlink *l = e->l;
	int dir = e->id;
	const struct simlink_params *p = &l->p[dir];
	struct simlink_stats *s = &l->s[dir];
	uint64_t start, at;

	s->sent++;
	if (l->filter && !l->filter(l->filter_arg, dir, frame, len)) {
		s->filtered++;
		return;
	}
	if (p->mtu && len > p->mtu + 14) {
		s->mtu_dropped++;
		return;
	}
	start = l->busy_until[dir] > l->now ? l->busy_until[dir] : l->now;
	if (p->rate_bps) {
		if (p->queue_bytes && (start - l->now) * p->rate_bps / 8000000u > p->queue_bytes) {
			s->queue_dropped++;
			return;
		}
		l->busy_until[dir] = start + ((uint64_t)len * 8 * 1000000u + p->rate_bps - 1) / p->rate_bps;
		start = l->busy_until[dir];
	}
	if (chance(l, p->loss_ppm)) {
		s->lost++;
		return;
	}
	at = start + p->delay_us + (p->jitter_us ? simlink_rand(l) % p->jitter_us : 0);
	if (chance(l, p->reorder_ppm)) {
		s->reordered++;
		at += p->reorder_us;
	}
	enqueue(l, dir, frame, len, at);
	if (chance(l, p->dup_ppm)) {
		s->duplicated++;
		enqueue(l, dir, frame, len, at + 1 + (p->jitter_us ? simlink_rand(l) % p->jitter_us : 0));
	}
}

/* Hand a frame to its end and free it. */
static void deliver(struct simlink *l, struct sim_frame *f)
{
	struct sim_end *e = &l->end[f->to];

	l->s[1 - f->to].delivered++;
	if (e->st)
		net_input(e->st, f->data, f->len, l->now);
	else if (e->rx)
		e->rx(e->arg, f->data, f->len, l->now);
	free(f->data);
}

/* See simlink.h: advance to the next arrival or by 1 ms, deliver, poll the stacks. */
bool simlink_run(struct simlink *l, uint64_t t_us, bool (*done)(void *arg), void *arg)
{
	for (;;) {
		uint64_t next;
		int i;

		if (done && done(arg))
			return true;
		if (l->now >= t_us)
			return false;
		next = l->now + STEP_US;
		if (l->n && l->heap[0].at < next)
			next = l->heap[0].at;
		if (next > t_us)
			next = t_us;
		if (next < l->now)
			next = l->now;
		l->now = next;
		while (l->n && l->heap[0].at <= l->now) {
			struct sim_frame f = heap_pop(l);

			deliver(l, &f);
		}
		for (i = 0; i < 2; i++)
			if (l->end[i].st)
				net_poll(l->end[i].st, l->now);
	}
}
