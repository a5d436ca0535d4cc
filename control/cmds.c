/* The admin requests that the dataplane answers, and status (verbs.def). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "stage.h"
#if HAVE_IMPACT
#include "control/impact.h"
#endif

/* The dataplane's answer, as it is, to the client. */
static void forward_done(struct dp *dp, void *arg, json_t *a, const char *why)
{
	struct adm_later *l = arg;

	if (a) {
		adm_answer(l->ctl, l->client, a);
	} else {
		json_t *e = jline_error("%s", why);

		adm_answer(l->ctl, l->client, e);
		json_decref(e);
	}
	free(l);
}

/* Send req (not stolen) to the dataplane; the answer goes to c. */
static json_t *forward(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	struct adm_later *l = adm_later(ctl, c);

	if (!l)
		return jline_error("out of memory");
	json_incref(req);
	dp_request(&ctl->dp, req, DP_TIMEOUT_S, forward_done, l);
	return NULL;
}

json_t *adm_forward(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	return forward(ctl, c, req);
}

#if HAVE_IMPACT
/* The recorded hellos judged under the running configuration: the
 * fingerprint report (control/impact.h), and it in words. */
static void hellos_done(struct dp *dp, void *arg, json_t *a, const char *why)
{
	struct adm_later *l = arg;
	json_t *out = NULL;

	if (a && json_is_true(json_object_get(a, "ok")))
		out = impact_fingerprints(&l->ctl->cur.tc, a, (long long)time(NULL));
	if (out) {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		if (f) {
			impact_fingerprints_print(f, out);
			fclose(f);
			json_object_set_new(out, "report", jline_str(text));
			free(text);
		}
		json_object_set_new(out, "ok", json_true());
	} else if (a && !json_is_true(json_object_get(a, "ok"))) {
		out = json_incref(a);
	} else {
		out = jline_error("%s", a ? "out of memory" : why);
	}
	adm_answer(l->ctl, l->client, out);
	json_decref(out);
	free(l);
}
#endif

json_t *adm_hellos(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	json_t *since = json_object_get(req, "since_s"), *fw;
	json_int_t s = ctl->cur.tc.c->control.fingerprint_window;
	json_t *a = NULL;

	if (since && !json_is_integer(since))
		return jline_error("since_s: not a number of seconds");
	if (since)
		s = json_integer_value(since);
	if (!(fw = json_pack("{s:s,s:I}", "cmd", "hellos", "since", s)))
		return jline_error("out of memory");
#if HAVE_IMPACT
	{
		struct adm_later *l = adm_later(ctl, c);

		if (!l) {
			json_decref(fw);
			return jline_error("out of memory");
		}
		dp_request(&ctl->dp, fw, DP_TIMEOUT_S, hellos_done, l);
		return NULL;
	}
#else
	a = forward(ctl, c, fw);
	json_decref(fw);
#endif
	return a;
}

/* sluice-control's own part of status. */
static json_t *control_status(struct ctl *ctl)
{
	json_t *last = json_pack("{s:b,s:I,s:o,s:I}", "ok", ctl->last.ok || !ctl->last.any,
				 "time", (json_int_t)ctl->last.time,
				 "error", ctl->last.any && !ctl->last.ok ? jline_str(ctl->last.error)
									 : json_null(),
				 "generation", (json_int_t)ctl->last.generation);

	return json_pack("{s:I,s:o,s:I,s:b,s:s,s:I,s:I,s:o,s:I,s:I,s:o}",
			 "pid", (json_int_t)getpid(),
			 "config", jline_str(ctl->path ? ctl->path : "(embedded default)"),
			 "uptime_s", (json_int_t)(time(NULL) - ctl->started),
			 "attached", ctl->dp.attached,
			 "dataplane_socket", ctl->dp.path,
			 "dataplane_pid", (json_int_t)ctl->dp.pid,
			 "dataplane_generation", (json_int_t)ctl->dp.generation,
			 "last_reload", last ? last : json_null(),
			 "reloads_ok", (json_int_t)ctl->last.n_ok,
			 "reloads_failed", (json_int_t)ctl->last.n_failed,
			 "staged", ctl->stage ? jline_str(stage_what(ctl->stage)) : json_null());
}

static void status_done(struct dp *dp, void *arg, json_t *a, const char *why)
{
	struct adm_later *l = arg;
	json_t *out = a ? json_deep_copy(a) : jline_error("%s", why);

	if (out) {
		json_t *cs = control_status(l->ctl);

		if (cs)
			json_object_set_new(out, "control", cs);
		adm_answer(l->ctl, l->client, out);
		json_decref(out);
	}
	free(l);
}

json_t *adm_status(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	struct adm_later *l = adm_later(ctl, c);

	if (!l)
		return jline_error("out of memory");
	dp_request(&ctl->dp, json_pack("{s:s}", "cmd", "status"), DP_TIMEOUT_S, status_done, l);
	return NULL;
}
