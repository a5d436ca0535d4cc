/*
 * A timer wheel per core: 10 ms ticks, 4096 slots (one turn: 40.96 s),
 * and a second level of 4096 slots of one turn each (46.6 h) for timers
 * further out. A far timer waits in its turn's slot untouched until that
 * turn begins, then moves once into the first level: a million idle
 * sessions with timeouts of minutes or hours cost nothing per idle second
 * (a wheel of one level would walk each of them every turn). Beyond the
 * second level's 46.6 h a timer is moved again once per 46.6 h.
 * Intrusive: the timer lives inside its owner, no allocation.
 */
#ifndef SLUICE_TIMER_H
#define SLUICE_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define WHEEL_TICK_MS 10u
#define WHEEL_BITS 12u
#define WHEEL_SLOTS (1u << WHEEL_BITS)

struct timer {
	struct timer *next, **pprev; /* pprev NULL: not armed */
	uint64_t expire_ms;
};

struct wheel {
	uint64_t tick;               /* last tick processed */
	struct timer *slot[WHEEL_SLOTS]; /* due within WHEEL_SLOTS ticks: by tick */
	struct timer *far[WHEEL_SLOTS];  /* further: by turn (tick >> WHEEL_BITS) */
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
	/* Far: its turn begins at tick (tk >> WHEEL_BITS) << WHEEL_BITS,
	 * after w->tick (tk - w->tick >= WHEEL_SLOTS), when wheel_advance()
	 * moves it here. */
	if (tk - w->tick < WHEEL_SLOTS)
		s = &w->slot[tk % WHEEL_SLOTS];
	else
		s = &w->far[(tk >> WHEEL_BITS) % WHEEL_SLOTS];
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
		w->slot[i] = w->far[i] = 0;
}

/* Arm again every timer of list *s (detached first: timer_arm may put
 * one back in it). */
static inline void wheel_rearm_list(struct wheel *w, struct timer **s)
{
	struct timer *local = *s, *t;

	*s = 0;
	if (local)
		local->pprev = &local;
	while ((t = local)) {
		timer_cancel(t);
		timer_arm(w, t, t->expire_ms);
	}
}

/* Fire every timer due by now_ms: fn(t) is called with t already disarmed
 * and may re-arm it. */
static inline void wheel_advance(struct wheel *w, uint64_t now_ms, void (*fn)(struct timer *))
{
	uint64_t end = now_ms / WHEEL_TICK_MS, n;
	unsigned i;

	if (end - w->tick > WHEEL_SLOTS) {
		/* A jump past whole turns (a stalled loop, a test's clock):
		 * every slot once, and every far timer placed again from the
		 * new start, so none misses the turn it was waiting for. */
		w->tick = end - WHEEL_SLOTS;
		for (i = 0; i < WHEEL_SLOTS; i++)
			wheel_rearm_list(w, &w->far[i]);
	}
	for (n = w->tick + 1; n <= end; n++) {
		struct timer **s = &w->slot[n % WHEEL_SLOTS];
		struct timer *local, *t;

		/* A turn begins: its far timers come down to the first level,
		 * placed while the wheel still stands before n, so that one
		 * due at n itself lands in the slot emptied below. */
		if (n % WHEEL_SLOTS == 0) {
			w->tick = n - 1;
			wheel_rearm_list(w, &w->far[(n >> WHEEL_BITS) % WHEEL_SLOTS]);
		}
		local = *s;

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
				timer_arm(w, t, t->expire_ms); /* later in this tick */
		}
	}
	w->tick = end;
}

#endif
