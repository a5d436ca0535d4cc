/*
 * The interrupt gate: keeps the EAL's interrupt thread out of the RX and
 * TX bursts of the threads that poll ports.
 *
 * Why. net_memif handles its peer's control channel in the EAL's
 * interrupt thread; when the peer goes away (its process exits, or closes
 * the port) memif_disconnect() there clears the port's "connected" flag
 * and at once munmap()s the shared regions, the rings and the packet
 * buffers. Nothing orders that against rte_eth_rx_burst() on a polling
 * thread that read the flag a moment before: DPDK 22.11's eth_memif_rx()
 * then reads an unmapped descriptor or buffer and the process dies of
 * SIGSEGV (bench/IDLE.md has the two faults seen, at offsets 0x8f87 and
 * 0x8a9a of librte_net_memif.so.23: both in eth_memif_rx, both reads of
 * the shared region). DPDK gives no hook before the unmap, so the gate
 * makes every callback of the interrupt thread run while it holds the
 * pollers' locks:
 *
 *   - one mutex per polling thread ("slot"), taken by that thread around
 *     each burst on a gated port (uncontended: an atomic exchange);
 *   - a callback of our own on an eventfd that is always readable, so the
 *     interrupt thread calls it on each pass: it releases the slots,
 *     sleeps INTR_GATE_PERIOD_MS, and takes every slot again (waiting for
 *     bursts in progress to end) before it returns to the other
 *     callbacks of the next pass.
 *
 * The pollers thus burst while the interrupt thread sleeps in the gate,
 * and the interrupt thread runs memif's (and every other) callback only
 * between two bursts. The cost: the interrupt thread wakes every period,
 * and its events (a memif peer's connect and disconnect, alarms) wait up
 * to a period.
 *
 * Needs the EAL up. One gate per process.
 */
#ifndef SLUICE_INTR_GATE_H
#define SLUICE_INTR_GATE_H

#include <pthread.h>
#include <stdbool.h>

#define INTR_GATE_PERIOD_MS 10
#define INTR_GATE_SLOTS_MAX 128

/* Register the gate for n_slots polling threads (slot i: thread i).
 * 0 or a negative errno (no gate then: the caller says so and goes on). */
int intr_gate_init(unsigned n_slots);

/* A polling thread's bursts on a gated port: between enter and leave the
 * interrupt thread runs no callback. No-ops when the gate is not up. */
void intr_gate_enter(unsigned slot);
void intr_gate_leave(unsigned slot);

/* Take the gate down (after the pollers stopped): the interrupt thread
 * lets the slots go and no longer calls the gate. */
void intr_gate_fini(void);

/* Does the port's driver need the gate? (net_memif) */
bool intr_gate_wanted(const char *driver_name);

#endif
