/*
 * Listener slots: where a listener's counters live in each core's tables
 * (core.h struct counters). A slot is given to a listener's name when a
 * snapshot is built (snap.c), and stays that name's for as long as the
 * process runs, across reloads: a listener removed and added back counts
 * on where it left off, and a series never changes hands. Slots are never
 * reused; once they run out, new names share LSLOT_OTHER (logged once).
 * Slot 0 takes what belongs to no listener (the stack's own, stress mode).
 */
#ifndef SLUICE_LSLOT_H
#define SLUICE_LSLOT_H

#include <stdbool.h>

#define LSLOT_MAX   64
#define LSLOT_NONE  0
#define LSLOT_OTHER (LSLOT_MAX - 1)

struct lslot_info {
	char name[64];      /* the listener's name; "" for slot 0 */
	char proto[8];      /* smtp, imap, pop3 */
	char mode[12];      /* starttls, implicit, plain */
};

/* The slot of the listener called name (given one if new); its proto and
 * mode are updated to these. The control thread or main only. */
unsigned lslot_for(const char *name, const char *proto, const char *mode);
/* Slots given so far, slot 0 and LSLOT_OTHER (when used) included: the
 * slots to read are [0, lslot_count()) and LSLOT_OTHER if lslot_other(). */
unsigned lslot_count(void);
bool lslot_other_used(void);
/* What slot i is; false if it was never given. Any thread. */
bool lslot_get(unsigned i, struct lslot_info *out);

#endif
