/*
 * Backend capability probes and health checks from core 0's loop, for a
 * stack whose backends no kernel socket reaches (io_ops.probes_in_loop:
 * the native stack). The kernel stack's probes run on a thread of their
 * own (session/backend.c: be_probe_all, be_health_start).
 */
#ifndef SLUICE_PROBE_LOOP_H
#define SLUICE_PROBE_LOOP_H

#include <stdint.h>

struct be_pool;
struct core;

/* The pools to probe (before the cores start). 0 or -ENOMEM. */
int probe_loop_setup(struct be_pool *pools, unsigned n, const char *hostname);
/* Core 0's pass: start due rounds, advance the conversations, time them
 * out. Returns how many probes it moved (work, for the idle back-off). */
unsigned probe_loop_poll(struct core *c, uint64_t now_ms);
/* Core 0 stopping: close the probes' connections, free their state. */
void probe_loop_stop(void);

#endif
