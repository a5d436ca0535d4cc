/* Listener slots (lslot.h). Written when snapshots are built (main at
 * start, the control thread or SIGHUP's handler later), read by the
 * control thread's reports: one mutex, never taken by a core. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "log.h"
#include "lslot.h"

static struct {
	pthread_mutex_t lock;
	struct lslot_info s[LSLOT_MAX];
	unsigned n;              /* slots given: [1, n) named */
	bool other, other_logged;
} L = { .lock = PTHREAD_MUTEX_INITIALIZER, .n = 1 };

unsigned lslot_for(const char *name, const char *proto, const char *mode)
{
	unsigned i;

	pthread_mutex_lock(&L.lock);
	for (i = 1; i < L.n; i++)
		if (!strcmp(L.s[i].name, name))
			break;
	if (i == L.n) {
		if (L.n < LSLOT_OTHER) {
			snprintf(L.s[i].name, sizeof(L.s[i].name), "%s", name);
			L.n++;
		} else {
			i = LSLOT_OTHER;
			snprintf(L.s[i].name, sizeof(L.s[i].name), "%s", "(other)");
			L.other = true;
			if (!L.other_logged)
				log_msg(LOG_WARNING, "metrics: more than %u listener names since the "
					"start: listener %s and later new ones count as (other)",
					LSLOT_OTHER - 1, name);
			L.other_logged = true;
		}
	}
	if (i != LSLOT_OTHER) {
		snprintf(L.s[i].proto, sizeof(L.s[i].proto), "%s", proto);
		snprintf(L.s[i].mode, sizeof(L.s[i].mode), "%s", mode);
	}
	pthread_mutex_unlock(&L.lock);
	return i;
}

unsigned lslot_count(void)
{
	unsigned n;

	pthread_mutex_lock(&L.lock);
	n = L.n;
	pthread_mutex_unlock(&L.lock);
	return n;
}

bool lslot_other_used(void)
{
	bool b;

	pthread_mutex_lock(&L.lock);
	b = L.other;
	pthread_mutex_unlock(&L.lock);
	return b;
}

bool lslot_get(unsigned i, struct lslot_info *out)
{
	bool ok;

	if (i >= LSLOT_MAX)
		return false;
	pthread_mutex_lock(&L.lock);
	ok = i == 0 || i < L.n || (i == LSLOT_OTHER && L.other);
	if (ok)
		*out = L.s[i];
	pthread_mutex_unlock(&L.lock);
	return ok;
}
