/*
 * The timer wheel: every timer fires once, no earlier than its deadline and
 * no later than one tick after it, however the wheel is advanced (small
 * steps, big jumps, deadlines in the middle of a tick, re-arming from the
 * callback, timers further out than one turn); a far timer waits on the
 * second level, untouched, until its turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "timer.h"

#define N 400

struct item {
	struct timer t;
	uint64_t deadline;
	uint64_t fired_at;
	int fired;
	int rearm;           /* re-arm this many more times, 7 ms later each */
};

static struct wheel W;
static uint64_t now;

static void on_fire(struct timer *t)
{
	struct item *it = (struct item *)((char *)t - offsetof(struct item, t));

	it->fired++;
	it->fired_at = now;
	if (it->rearm > 0) {
		it->rearm--;
		it->fired--;
		it->deadline = now + 7;
		timer_arm(&W, &it->t, it->deadline);
	}
}

static void run(uint64_t start, const uint64_t *steps, size_t nsteps, uint64_t horizon)
{
	static struct item items[N];
	size_t i, k = 0;

	now = start;
	wheel_init(&W, now);
	for (i = 0; i < N; i++) {
		items[i] = (struct item){ 0 };
		/* deadlines spread over the horizon, at odd milliseconds */
		items[i].deadline = now + 1 + (i * 7919u) % horizon;
		items[i].rearm = i % 5 == 0 ? 3 : 0;
		timer_arm(&W, &items[i].t, items[i].deadline);
	}
	for (;;) {
		int waiting = 0;

		for (i = 0; i < N; i++)
			waiting += !items[i].fired;
		if (!waiting)
			break;
		if (now > start + horizon + 200000)
			fail_msg("%d timers never fired", waiting);
		now += steps[k++ % nsteps];
		wheel_advance(&W, now, on_fire);
		for (i = 0; i < N; i++) {
			if (items[i].fired)
				continue;
			/* not yet fired: it must not be overdue by more than a tick */
			if (now > items[i].deadline + WHEEL_TICK_MS + steps[(k - 1) % nsteps])
				fail_msg("timer %zu due at %llu still waits at %llu", i,
					 (unsigned long long)items[i].deadline,
					 (unsigned long long)now);
		}
	}
	for (i = 0; i < N; i++) {
		assert_int_equal(items[i].fired, 1);
		assert_true(items[i].fired_at >= items[i].deadline);
		assert_false(timer_armed(&items[i].t));
	}
}

static void test_small_steps(void **state)
{
	static const uint64_t steps[] = { 1, 3, 2, 9, 11, 4 };

	run(1000003, steps, 6, 3000);
}

static void test_steps_of_a_tick(void **state)
{
	static const uint64_t steps[] = { WHEEL_TICK_MS };

	run(5, steps, 1, 2000);
}

static void test_long_timers(void **state)
{
	/* deadlines up to three turns of the wheel away */
	static const uint64_t steps[] = { 13, 50, 7 };

	run(777, steps, 3, 3 * WHEEL_SLOTS * WHEEL_TICK_MS);
}

static void test_big_jumps(void **state)
{
	static const uint64_t steps[] = { 5, 20000, 3, 45000 };

	run(12345, steps, 4, 60000);
}

static void test_many_turns(void **state)
{
	/* deadlines up to 60 turns away (41 min), small and big steps */
	static const uint64_t steps[] = { 40, 3, 900, 20 };

	run(4242, steps, 4, 60ull * WHEEL_SLOTS * WHEEL_TICK_MS);
}

static void test_far_jumps(void **state)
{
	/* jumps of several turns at once over hours of deadlines */
	static const uint64_t steps[] = { 7, 200000, 13, 1000000 };

	run(99, steps, 4, 5ull * 3600 * 1000);
}

/* Where a timer waits: in a first-level slot, or on the second level. */
static bool on_far(const struct timer *t)
{
	return t->pprev >= &W.far[0] && t->pprev < &W.far[WHEEL_SLOTS];
}

static bool on_near(const struct timer *t)
{
	return t->pprev >= &W.slot[0] && t->pprev < &W.slot[WHEEL_SLOTS];
}

/* A timer an hour out stays where it was put while the wheel turns (no
 * work for it per turn: an idle session's timeout costs nothing until
 * its last turn), comes down to the first level when its turn begins, and
 * fires on time. */
static void test_far_timer_untouched(void **state)
{
	struct item a = { 0 };
	struct timer **where;

	now = 123456;
	wheel_init(&W, now);
	a.deadline = now + 3600 * 1000;
	timer_arm(&W, &a.t, a.deadline);
	assert_true(on_far(&a.t));
	where = a.t.pprev;
	for (int k = 0; k < 3000; k++) { /* 50 min in steps of a second */
		now += 1000;
		wheel_advance(&W, now, on_fire);
		assert_ptr_equal(a.t.pprev, where);
	}
	while (a.deadline - now > (uint64_t)WHEEL_SLOTS * WHEEL_TICK_MS) {
		now += 1000;
		wheel_advance(&W, now, on_fire);
	}
	while (!a.fired) {
		now += 1;
		wheel_advance(&W, now, on_fire);
		if (!a.fired)
			assert_true(on_near(&a.t) || on_far(&a.t));
	}
	assert_true(now >= a.deadline && now <= a.deadline + WHEEL_TICK_MS);
}

static void test_cancel(void **state)
{
	struct item a = { 0 }, b = { 0 };

	now = 100;
	wheel_init(&W, now);
	timer_arm(&W, &a.t, 150);
	timer_arm(&W, &b.t, 150);
	timer_cancel(&a.t);
	timer_cancel(&a.t); /* twice is harmless */
	now = 300;
	wheel_advance(&W, now, on_fire);
	assert_int_equal(a.fired, 0);
	assert_int_equal(b.fired, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_steps),
		cmocka_unit_test(test_steps_of_a_tick),
		cmocka_unit_test(test_long_timers),
		cmocka_unit_test(test_big_jumps),
		cmocka_unit_test(test_many_turns),
		cmocka_unit_test(test_far_jumps),
		cmocka_unit_test(test_far_timer_untouched),
		cmocka_unit_test(test_cancel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
