/*
 * A simulated Ethernet link for deterministic tests of the stack: two
 * ends, each a stack (or any receiver), frames carried with loss,
 * duplication, reordering, delay, jitter, an MTU, a rate and a queue
 * limit, all decided by a seeded PRNG and a virtual clock. The same seed
 * gives the same run, bit for bit.
 */
#ifndef SLUICE_SIMLINK_H
#define SLUICE_SIMLINK_H

#include <stdbool.h>
#include <stdint.h>

struct net_stack;

/* One direction's behaviour. Probabilities in parts per million. */
struct simlink_params {
	uint32_t loss_ppm;
	uint32_t dup_ppm;
	uint32_t reorder_ppm;      /* frames held back by reorder_us more */
	uint32_t reorder_us;
	uint32_t delay_us;         /* one-way propagation */
	uint32_t jitter_us;        /* uniform extra delay in [0, jitter_us) */
	uint32_t mtu;              /* IP MTU: longer frames are dropped; 0: none */
	uint64_t rate_bps;         /* serialization rate; 0: unlimited */
	uint32_t queue_bytes;      /* bytes waiting to be serialized before tail drop; 0: unlimited */
};

struct simlink_stats {
	uint64_t sent, delivered, lost, duplicated, reordered, mtu_dropped, queue_dropped, filtered;
};

/* Looks at a frame entering direction dir (0: end 0 -> end 1); returns
 * false to drop it (counted as filtered). */
typedef bool (*simlink_filter_fn)(void *arg, int dir, const uint8_t *frame, uint32_t len);
typedef void (*simlink_rx_fn)(void *arg, const uint8_t *frame, uint32_t len, uint64_t now_us);

struct simlink;

struct simlink *simlink_new(uint64_t seed, const struct simlink_params *p01, const struct simlink_params *p10);
void simlink_free(struct simlink *l);
/* The tx_ctx for net_config.tx = simlink_tx on end `end` (0 or 1). */
void *simlink_port(struct simlink *l, int end);
void simlink_tx(void *port, const uint8_t *frame, uint32_t len);
/* Deliver to a stack (net_input, and net_poll as time passes). */
void simlink_attach_stack(struct simlink *l, int end, struct net_stack *st);
/* Deliver to a function (a scripted peer). */
void simlink_attach_rx(struct simlink *l, int end, simlink_rx_fn rx, void *arg);
void simlink_set_filter(struct simlink *l, simlink_filter_fn f, void *arg);
void simlink_set_params(struct simlink *l, int dir, const struct simlink_params *p);
uint64_t simlink_now(const struct simlink *l);
/* Run until virtual time t_us or until done(arg) is true (checked every
 * step). Returns true if done() ended the run. */
bool simlink_run(struct simlink *l, uint64_t t_us, bool (*done)(void *arg), void *arg);
const struct simlink_stats *simlink_stats(const struct simlink *l, int dir);
/* The link's PRNG, for tests that want more deterministic randomness. */
uint64_t simlink_rand(struct simlink *l);

#endif
