/* reload: the whole file again, validated, then loaded (ctl.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clog.h"
#include "ctl.h"
#include "notify.h"
#include "stage.h"

struct reload_ctx {
	struct ctl *ctl;
	unsigned long long client;
	struct bundle b;          /* the new configuration, proved */
};

void ctl_record(struct ctl *ctl, bool ok, const char *error, long long generation)
{
	ctl->last.any = true;
	ctl->last.ok = ok;
	ctl->last.time = (long long)time(NULL);
	snprintf(ctl->last.error, sizeof(ctl->last.error), "%s", ok ? "" : error);
	if (ok) {
		ctl->last.n_ok++;
		ctl->last.generation = generation;
	} else {
		ctl->last.n_failed++;
	}
}

/* The control: block is read once, at start: say so when it changed. */
static void control_moved(const struct cfg *was, const struct cfg *now)
{
	const struct cfg_control *a = &was->control, *b = &now->control;

	if (strcmp(a->socket, b->socket) || strcmp(a->dataplane_socket, b->dataplane_socket) ||
	    (!a->admin_group != !b->admin_group) ||
	    (a->admin_group && strcmp(a->admin_group, b->admin_group)) ||
	    strcmp(a->metrics, b->metrics))
		ctl_log(LOG_WARNING, "reload: the control: sockets, admin_group or metrics changed; "
		     "restart sluice-control to apply them");
}

static void reload_done(struct dp *dp, void *arg, json_t *a, const char *why)
{
	struct reload_ctx *r = arg;
	struct ctl *ctl = r->ctl;
	json_t *out;

	ctl->op = CTL_OP_NONE;
	if (a && json_is_true(json_object_get(a, "ok"))) {
		long long g = json_integer_value(json_object_get(a, "generation"));

		control_moved(ctl->cur.tc.c, r->b.tc.c);
		bundle_free(&ctl->cur);
		ctl->cur = r->b;
		ctl->dp.generation = g;
		ctl_record(ctl, true, NULL, g);
		ctl_changed(ctl);
		ctl_log(LOG_INFO, "reload: %s loaded, generation %lld", ctl->path ? ctl->path
		     : "(embedded default)", g);
		ctl_notify_reloaded(true, g, NULL);
		out = json_pack("{s:b,s:I}", "ok", 1, "generation", (json_int_t)g);
		if (ctl->stage) {
			/* Made against the configuration that just left. */
			ctl_log(LOG_INFO, "reload: the staged change (%s) is dropped",
			     stage_what(ctl->stage));
			if (out)
				json_object_set_new(out, "dropped_staged",
						    jline_str(stage_what(ctl->stage)));
			stage_free(ctl->stage);
			ctl->stage = NULL;
		}
	} else {
		const char *e = a ? json_string_value(json_object_get(a, "error")) : NULL;
		char msg[1200];

		snprintf(msg, sizeof(msg), "%s%s", a ? "the dataplane refused the load: "
			 : "nothing changed: ", e ? e : why ? why : "no reason given");
		ctl_record(ctl, false, msg, 0);
		ctl_log(LOG_ERR, "reload failed: %s", msg);
		ctl_notify_reloaded(false, 0, msg);
		out = jline_error("%s", msg);
		bundle_free(&r->b);
	}
	if (out) {
		adm_answer(ctl, r->client, out);
		json_decref(out);
	}
	free(r);
}

json_t *ctl_reload(struct ctl *ctl, unsigned long long client)
{
	struct reload_ctx *r;
	char err[1024];
	json_t *req;

	if (ctl->op != CTL_OP_NONE) {
		ctl_log(LOG_WARNING, "reload refused: a reload or commit is already in progress");
		return jline_error("a reload or commit is already in progress");
	}
	if (!(r = calloc(1, sizeof(*r))))
		return jline_error("out of memory");
	r->ctl = ctl;
	r->client = client;
	ctl_notify_reloading();
	if (bundle_read(&r->b, ctl->path, err, sizeof(err)) < 0) {
		ctl_record(ctl, false, err, 0);
		ctl_log(LOG_ERR, "reload refused, nothing changed: %s", err);
		ctl_notify_reloaded(false, 0, err);
		free(r);
		return jline_error("%s", err);
	}
	if (!(req = bundle_load_request(&r->b, false, err, sizeof(err)))) {
		ctl_record(ctl, false, err, 0);
		ctl_log(LOG_ERR, "reload refused, nothing changed: %s", err);
		ctl_notify_reloaded(false, 0, err);
		bundle_free(&r->b);
		free(r);
		return jline_error("%s", err);
	}
	ctl->op = CTL_OP_RELOAD;
	dp_request_secret(&ctl->dp, req, DP_LOAD_TIMEOUT_S, reload_done, r);
	return NULL;
}

json_t *adm_reload(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	return ctl_reload(ctl, c->id);
}
