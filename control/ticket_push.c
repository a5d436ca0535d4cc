/*
 * Session-ticket keys from sluice-control to the dataplane: the key ring
 * of control/tickets.c (made, rotated by the clock, wiped) pushed with the
 * dataplane's `tickets` command whenever it changes and each time the
 * dataplane is attached (it may be a new process with keys of its own),
 * and the verbs tickets show and tickets rotate. With tickets.export the
 * ring also goes to that file whenever it changes (ticket_export.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clog.h"
#include "ctl.h"
#include "control/ticket_export.h"
#include "control/tickets.h"

static long long last_tick;     /* seconds: the ring is looked at once a second */
static bool export_due;         /* the ring changed and the file is not yet written */
static char export_err[512];    /* the last failure, said once */

/* tickets.export, if set: the ring to the file, now or at the next tick. */
static void export(struct ctl *ctl)
{
	const char *path = ctl->cur.tc.c->tickets.export_file;
	char err[sizeof(export_err)];
	int n;

	export_due = false;
	if (!path)
		return;
	if ((n = tk_export(path, (long long)time(NULL), err, sizeof(err))) < 0) {
		export_due = true;
		ctl->tickets_export_errors++;
		if (strcmp(err, export_err))
			ctl_log(LOG_ERR, "tickets.export: %s; tried again each second, and the "
				"boxes keep the keys they have", err);
		snprintf(export_err, sizeof(export_err), "%s", err);
		return;
	}
	if (export_err[0])
		ctl_log(LOG_INFO, "tickets.export: %s written again", path);
	export_err[0] = 0;
	ctl_log(LOG_DEBUG, "tickets.export: %d keys written to %s", n, path);
}

/* The answer to a push: logged when refused (the keys stay here and go
 * again on the next change or attach). */
static void pushed(struct dp *dp, void *arg, json_t *a, const char *why)
{
	struct adm_later *l = arg;

	if (!a || !json_is_true(json_object_get(a, "ok")))
		ctl_log(LOG_WARNING, "ticket keys not taken by the dataplane: %s",
			a ? json_string_value(json_object_get(a, "error")) ?: "?" : why);
	if (l) {
		json_t *out;

		if (a && json_is_true(json_object_get(a, "ok"))) {
			out = tk_ring_show();
			if (out)
				json_object_set_new(out, "ok", json_true());
		} else {
			out = jline_error("the dataplane did not take the new keys: %s",
					  a ? json_string_value(json_object_get(a, "error")) ?: "?"
					    : why);
		}

		adm_answer(l->ctl, l->client, out);
		json_decref(out);
		free(l);
	}
}

/* Send the ring, if it has keys; l (may be NULL) is answered after. */
static bool push(struct ctl *ctl, struct adm_later *l)
{
	json_t *req;

	if (!ctl->dp.attached || !(req = tk_ring_request()))
		return false;
	dp_request_secret(&ctl->dp, req, DP_TIMEOUT_S, pushed, l);
	return true;
}

void ctl_tickets_init(struct ctl *ctl)
{
	if (tk_ring_init(ctl->cur.tc.c) < 0)
		ctl_log(LOG_ERR, "ticket keys: cannot set up the key ring");
	last_tick = 0;
}

void ctl_changed(struct ctl *ctl)
{
	/* Keys already made stay when they are still made here. */
	(void)tk_ring_init(ctl->cur.tc.c);
	push(ctl, NULL);
	export(ctl);
}

void ctl_tickets_tick(struct ctl *ctl)
{
	long long now = (long long)time(NULL);

	if (now == last_tick)
		return;
	last_tick = now;
	if (tk_ring_tick(now)) {
		push(ctl, NULL);
		export(ctl);
	} else if (export_due) {
		export(ctl);
	}
}

void ctl_tickets_attached(struct ctl *ctl)
{
	(void)tk_ring_tick((long long)time(NULL));
	push(ctl, NULL);
}

void ctl_tickets_fini(void)
{
	tk_ring_fini();
}

/* This process's ring and what the dataplane seals with. */
static void show_done(struct dp *dp, void *arg, json_t *a, const char *why)
{
	struct adm_later *l = arg;
	json_t *out = tk_ring_show();

	if (out) {
		json_object_set_new(out, "ok", json_true());
		json_object_set(out, "dataplane", a && json_is_true(json_object_get(a, "ok"))
				    ? a : json_null());
		if (!a || !json_is_true(json_object_get(a, "ok")))
			json_object_set_new(out, "dataplane_error",
					    jline_str(a ? json_string_value(json_object_get(a, "error"))
						      : why));
		adm_answer(l->ctl, l->client, out);
		json_decref(out);
	}
	free(l);
}

json_t *adm_tickets_show(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	struct adm_later *l = adm_later(ctl, c);

	if (!l)
		return jline_error("out of memory");
	dp_request(&ctl->dp, json_pack("{s:s}", "cmd", "tickets_show"), DP_TIMEOUT_S, show_done, l);
	return NULL;
}

json_t *adm_tickets_rotate(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	struct adm_later *l;
	int rc = tk_ring_rotate_now();

	if (rc == -EPERM)
		return jline_error("the ticket keys come from tickets.key_file (or tickets are "
				   "off): rotate the file instead");
	if (rc < 0)
		return jline_error("cannot make a ticket key: %s", strerror(-rc));
	ctl_log(LOG_INFO, "tickets rotate (by %s): a new sealing key", c->who);
	export(ctl);
	if (!(l = adm_later(ctl, c)))
		return jline_error("out of memory");
	if (!push(ctl, l)) {
		free(l);
		return jline_error("a new key is made, but the dataplane is not attached: it gets "
				   "it when it is");
	}
	return NULL;
}
