/*
 * A hashed timer wheel per core: 10 ms ticks, 4096 slots. A timer further
 * out than one turn stays in its slot and is skipped until its turn comes.
 * Intrusive: the timer lives inside its owner, no allocation.
 */
#ifndef SLUICE_TIMER_H
#define SLUICE_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define WHEEL_TICK_MS 10u
#define WHEEL_SLOTS 4096u

struct timer {
	struct timer *next, **pprev; /* pprev NULL: not armed */
	uint64_t expire_ms;
};

struct wheel {
	uint64_t tick;               /* last tick processed */
	struct timer *slot[WHEEL_SLOTS];
};

static inline bool timer_armed(const struct timer *t) { return t->pprev != 0; }

static inline void timer_cancel(struct timer *t)
{
	if (!t->pprev)
		return;
	*t->pprev = t->next;
	if (t->next)
		t->next->pprev = t->pprev;
	t->next = 0;
	t->pprev = 0;
}

static inline void timer_arm(struct wheel *w, struct timer *t, uint64_t expire_ms)
{
	uint64_t tk = expire_ms / WHEEL_TICK_MS;
	struct timer **s;

	timer_cancel(t);
	if (tk <= w->tick)
		tk = w->tick + 1;
	s = &w->slot[tk % WHEEL_SLOTS];
	t->expire_ms = expire_ms;
	t->next = *s;
	if (*s)
		(*s)->pprev = &t->next;
	*s = t;
	t->pprev = s;
}

static inline void wheel_init(struct wheel *w, uint64_t now_ms)
{
	unsigned i;

	w->tick = now_ms / WHEEL_TICK_MS;
	for (i = 0; i < WHEEL_SLOTS; i++)
		w->slot[i] = 0;
}

/* Fire every timer due by now_ms: fn(t) is called with t already disarmed
 * and may re-arm it. */
static inline void wheel_advance(struct wheel *w, uint64_t now_ms, void (*fn)(struct timer *))
{
	uint64_t end = now_ms / WHEEL_TICK_MS, n;

	if (end - w->tick > WHEEL_SLOTS)
		w->tick = end - WHEEL_SLOTS; /* every slot once */
	for (n = w->tick + 1; n <= end; n++) {
		struct timer **s = &w->slot[n % WHEEL_SLOTS];
		struct timer *local = *s, *t;

		/* The wheel stands at n before the slot is looked at: a timer
		 * (re)armed from here on lands in a later slot, never in the
		 * one being emptied, where it would wait a whole turn. */
		w->tick = n;
		/* Detach the slot first: fn may arm or cancel any timer,
		 * including others of this slot. */
		*s = 0;
		if (local)
			local->pprev = &local;
		while ((t = local)) {
			timer_cancel(t);
			if (t->expire_ms <= now_ms)
				fn(t);
			else
				timer_arm(w, t, t->expire_ms); /* later in this tick, or a later turn */
		}
	}
	w->tick = end;
}

#endif
