/*
 * Drain a box (DESIGN.md §5, docs/operations.md "Drain and upgrade"): stop
 * accepting at once, say goodbye to idle sessions at a safe point, let busy
 * ones finish until a deadline, close what is left, exit 0.
 *
 * Who does what:
 *   main / control thread   drain_start, drain_stop (undrain): flags in RT
 *                           and a generation, nothing else; drain_tick (the
 *                           main thread, several times a second): the log
 *                           lines and the decision to stop the process
 *   each core               drain_core_pass at the top of every loop pass:
 *                           reads the generation (one atomic load); when it
 *                           moved, stops or resumes its listeners and sweeps
 *                           its sessions; at the deadline cuts what is left;
 *                           publishes its counts (relaxed stores)
 *   each session            its goodbye from sess_run once it is idle
 *                           (session/goodbye.c, proto_goodbye)
 */
#ifndef SLUICE_DRAIN_H
#define SLUICE_DRAIN_H

#include <stdbool.h>
#include <stddef.h>

struct core;

/* Start draining with a deadline deadline_s seconds from now (a drain
 * already running gets the new deadline); why names the cause for the log
 * ("SIGTERM", "control"). Returns the sessions open. Any thread. */
unsigned drain_start(unsigned deadline_s, const char *why);
/* Undrain: the listeners take connections again and no more goodbyes are
 * said (sessions told already still close). Returns -EALREADY when no
 * drain runs, -ESRCH when it is over (the process is stopping), else 0.
 * Any thread. */
int drain_stop(void);
/* Is a drain running? */
bool drain_active(void);
/* Sessions open on all cores, as the cores last published. */
unsigned drain_sessions(void);
/* The main thread, every ~100 ms while draining: progress and end lines in
 * the log. Returns true when the process should stop now: every core has
 * seen the drain and has no busy session left, or the deadline has passed
 * (the cores cut what was left). */
bool drain_tick(void);
/* A second SIGTERM during the drain: the log line; the caller stops. */
void drain_abort(const char *why);
/* A core, at the top of each loop pass (c->now_ms fresh). */
void drain_core_pass(struct core *c);

/* control.drain_deadline of the running configuration (a reload may have
 * changed it). Main or control thread. */
unsigned drain_default_deadline(void);

/* The control socket's commands drain, undrain and health are in drain.c
 * (declared by ctl.h from ctl_cmds.def; docs/control.md): drain takes
 * deadline_s (default control.drain_deadline) and answers sessions (open
 * now); health answers serving (taking new connections) and draining. */

#endif
