/*
 * sluice-control's session-ticket keys: made, rotated on a schedule, held
 * only in memory, pushed to the dataplane (its command `tickets`), wiped
 * when retired. One ring per process.
 *
 * Windows are fixed by the clock alone: with R = tickets.rotate, L =
 * tickets.lifetime and N = control.ticket_keys, the key of window
 * a = floor(t / R) * R seals from a (not_before) until the next window's
 * key takes over at a + R, and opens tickets until
 * not_after = min(a + R + L, a + N * R): L after it stopped sealing, and
 * no longer than while it is one of the last N. The next window's key is
 * made and pushed one window ahead (not_before in the future): the
 * dataplane switches to it by its clock at a + R, whether or not
 * sluice-control is there then, and boxes whose clocks agree switch
 * together.
 *
 * The daemon's use:
 *
 *     tk_ring_init(cfg);                        at start and after a reload
 *     every second, and when the dataplane (re)connects:
 *         if (tk_ring_tick(time(NULL)) || reconnected)
 *             if ((req = tk_ring_request()))    NULL: nothing to push
 *                 send req (one line), tk_request_free(req), wipe the line
 *     sluicectl tickets rotate: tk_ring_rotate_now(), then push as above
 *     sluicectl tickets show: tk_ring_show() (this process's view), and the
 *         dataplane's own answer to `tickets_show` (what it seals with)
 *     at exit: tk_ring_fini()
 *
 * With tickets.key_file set, or tickets off, the ring holds nothing: the
 * dataplane reads the key file itself (tk_ring_request() is NULL,
 * tk_ring_rotate_now() is -EPERM).
 */
#ifndef SLUICE_CONTROL_TICKETS_H
#define SLUICE_CONTROL_TICKETS_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "config.h"

#define TK_RING_MAX 16   /* the dataplane's TLS_TICKET_KEYS_MAX */

/* Take c's tickets.rotate, tickets.lifetime, control.ticket_keys and mode
 * (keys made here, a key file, off); the keys' page is locked in RAM (best
 * effort: never swapped, out of core dumps). Keys already made are kept
 * when the mode stays "made here" (a reload), else wiped. 0. */
int tk_ring_init(const struct cfg *c);
/* Make the keys the windows at now call for (this window's and the next),
 * drop (and wipe) those past not_after or beyond the last N. true when the
 * ring changed: push it. */
bool tk_ring_tick(long long now);
/* A new key that seals from now (the operator's `tickets rotate`), and a
 * new next-window key; the old ones keep opening tickets within their
 * windows (and the last N). 0; -EPERM with a key file or tickets off;
 * -EIO without randomness. */
int tk_ring_rotate_now(void);
int tk_ring_rotate_at(long long now);
/* The dataplane request {"cmd": "tickets", "keys": [{"name", "hmac",
 * "aes" (hex), "not_before", "not_after"}]}, newest first; NULL when there
 * is nothing to push. It holds key material: free it with
 * tk_request_free(), which wipes the strings. */
json_t *tk_ring_request(void);
void tk_request_free(json_t *req);
/* {"source": "sluice-control" | "key_file" | "off", "rotate", "lifetime",
 * "keep", "next_rotation", "keys": [{"name" (hex), "age_s", "not_before",
 * "not_after", "sealing"}]}: never key material. A new reference. */
json_t *tk_ring_show(void);
json_t *tk_ring_show_at(long long now);
/* Write the ring to f (unbuffered: no copy of a key stays in stdio's
 * buffers) in the windowed key-file format of tls/ticket_file.c, one
 * "NOT_BEFORE NOT_AFTER KEY" line per key, newest first; what the other
 * boxes of a fleet read as tickets.key_file (tickets.export). The number
 * of keys, or -EIO. */
int tk_ring_write(FILE *f);
/* Wipe every key. */
void tk_ring_fini(void);

#endif
