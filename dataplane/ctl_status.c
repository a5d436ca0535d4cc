/*
 * The dataplane's `status` and `stats` commands (docs/control.md). They
 * run on the control thread and read what the cores write without locks:
 * counters are aligned 64-bit words (a read is never torn on the
 * platforms sluice runs on), and a figure a pass old is good enough.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "ctl.h"
#include "drain.h"
#include "io/io.h"
#include "lslot.h"
#include "memstat.h"
#include "reload.h"
#include "session/backend.h"
#include "session/session.h"
#include "sluice-build.h"
#include "snap.h"
#include "resume.h"

extern const char *const counter_names[CTR__COUNT];

static long long started_s;

void ctl_status_started(void)
{
	started_s = (long long)time(NULL);
}

long long ctl_status_start_s(void)
{
	return started_s;
}

static json_t *listeners_json(const struct snap *s)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < s->n_listeners; i++) {
		const struct listener *l = &s->listeners[i];

		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
			"name", l->cfg->name, "address", l->cfg->address, "proto", l->ops->name,
			"tls", cfg_tls_name(l->cfg->tls), "policy", cfg_policy_name(l->cfg->policy),
			"backend", l->cfg->be->name,
			"certs", l->tls_available ? l->certs_desc : "-"));
	}
	return a;
}

static json_t *backends_json(const struct snap *s)
{
	json_t *a = json_array();
	uint64_t now = 0;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	/* Each pool once, in the order the listeners name them. */
	for (unsigned i = 0; a && i < s->n_listeners; i++) {
		struct be_pool *p = s->listeners[i].pool;
		json_t *srv = json_array();
		bool seen = false;

		for (unsigned k = 0; k < i; k++)
			seen |= s->listeners[k].pool == p;
		if (seen || !srv) {
			json_decref(srv);
			continue;
		}
		for (unsigned k = 0; k < p->n; k++) {
			uint64_t d = atomic_load_explicit(&p->srv[k].down_until_ms,
							  memory_order_relaxed);

			json_array_append_new(srv, json_pack("{s:s, s:b}", "address", p->srv[k].name,
							     "up", !(d && d > now)));
		}
		json_array_append_new(a, json_pack("{s:s, s:s, s:o}", "name", p->cfg->name,
						   "proto", cfg_proto_name(p->cfg->protocol),
						   "servers", srv));
	}
	return a;
}

/* Stress mode (session/admit.c): the cores in it, by id. */
static json_t *stress_json(void)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < RT.n_cores; i++)
		if (atomic_load_explicit(&RT.cores[i].pub_stress, memory_order_relaxed))
			json_array_append_new(a, json_integer(i));
	return a;
}

/* What the process holds: the allocator's figures (when it is jemalloc)
 * and the bounded tables that fill with use, so that a growing RSS can be
 * told from a filling cache (bench/stress's soak samples these). */
static json_t *memory_json(void)
{
	struct memstat m;
	size_t sc_n = 0, sc_b = 0;
	json_t *o = json_object();

	if (memstat_read(&m))
		json_object_set_new(o, "allocator", json_pack("{s:I, s:I, s:I, s:I, s:I}",
			"allocated", (json_int_t)m.allocated, "active", (json_int_t)m.active,
			"resident", (json_int_t)m.resident, "mapped", (json_int_t)m.mapped,
			"retained", (json_int_t)m.retained));
	sesscache_stat(&sc_n, &sc_b);
	json_object_set_new(o, "session_cache", json_pack("{s:I, s:I}", "entries", (json_int_t)sc_n,
							  "bytes", (json_int_t)sc_b));
	return o;
}

int ctl_status(json_t *req, json_t *ans, char *err, size_t errlen)
{
	const struct snap *s = snap_current();
	struct reload_status rs = reload_status();
	unsigned sessions = 0;

	(void)req;
	for (unsigned i = 0; i < RT.n_cores; i++)
		sessions += RT.cores[i].n_sess;
	json_object_set_new(ans, "version", json_string(SLUICE_VERSION));
	json_object_set_new(ans, "pid", json_integer(getpid()));
	json_object_set_new(ans, "uptime_s", json_integer((long long)time(NULL) - started_s));
	json_object_set_new(ans, "generation", json_integer((json_int_t)s->gen));
	json_object_set_new(ans, "config", json_string(s->tc.c->path));
	json_object_set_new(ans, "loaded_s", json_integer(s->loaded_s));
	json_object_set_new(ans, "last_reload", rs.time_s ?
		json_pack("{s:b, s:I, s:s, s:s, s:I, s:I}", "ok", rs.ok, "time", (json_int_t)rs.time_s,
			  "source", rs.source, "error", rs.error, "reloads_ok", (json_int_t)rs.n_ok,
			  "reloads_failed", (json_int_t)rs.n_failed) : json_null());
	json_object_set_new(ans, "stack", json_string(RT.cores[0].io->name));
	json_object_set_new(ans, "cores", json_integer(RT.n_cores));
	json_object_set_new(ans, "workers", json_integer(RT.cfg->workers));
	json_object_set_new(ans, "sessions", json_integer(sessions));
	json_object_set_new(ans, "draining", json_boolean(drain_active()));
	json_object_set_new(ans, "stress", stress_json());
	json_object_set_new(ans, "nofile", json_integer(RT.nofile));
	json_object_set_new(ans, "memory", memory_json());
	json_object_set_new(ans, "listeners", listeners_json(s));
	json_object_set_new(ans, "backends", backends_json(s));
	return 0;
}

/* per_listener: each listener slot's counters, summed over the cores (the
 * slots given since the start: a listener a reload removed keeps its
 * figures; "(other)" when names ran out). Counters at 0 are left out. */
static json_t *per_listener_json(void)
{
	json_t *a = json_array();
	unsigned n = lslot_count();

	for (unsigned i = 1; a && i < LSLOT_MAX; i++) {
		struct lslot_info li;
		json_t *o;

		if (i >= n && i != LSLOT_OTHER)
			continue;
		if (!lslot_get(i, &li) || !(o = json_object()))
			continue;
		for (unsigned k = 0; k < CTR__COUNT; k++) {
			uint64_t v = 0;

			for (unsigned c = 0; c < RT.n_cores; c++)
				v += RT.cores[c].ctr.v[i][k];
			if (v)
				json_object_set_new(o, counter_names[k], json_integer((json_int_t)v));
		}
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:o}", "name", li.name,
						   "proto", li.proto, "mode", li.mode, "counters", o));
	}
	return a;
}

int ctl_stats(json_t *req, json_t *ans, char *err, size_t errlen)
{
	bool per_core = ctl_bool(req, "per_core", 0);
	json_t *cores = json_array(), *sum = json_object();

	for (unsigned i = 0; i < RT.n_cores; i++) {
		json_t *o = per_core ? json_object() : NULL;

		for (unsigned k = 0; k < CTR__COUNT; k++) {
			uint64_t v = ctr_sum(&RT.cores[i], (int)k);
			json_t *t = json_object_get(sum, counter_names[k]);

			json_object_set_new(sum, counter_names[k],
					    json_integer((json_int_t)(v + (t ? (uint64_t)json_integer_value(t) : 0))));
			if (o)
				json_object_set_new(o, counter_names[k], json_integer((json_int_t)v));
		}
		if (o) {
			/* not counters of events, but beside them for sluicectl top */
			json_object_set_new(o, "core_busy_ns",
					    json_integer((json_int_t)*(volatile uint64_t *)&RT.cores[i].busy_ns));
			json_object_set_new(o, "worker_queue_depth",
					    json_integer((json_int_t)core_queue_depth(&RT.cores[i])));
			json_array_append_new(cores, o);
		}
	}
	json_object_set_new(ans, "counters", sum);
	json_object_set_new(ans, "stress", stress_json());
	if (ctl_bool(req, "per_listener", 0))
		json_object_set_new(ans, "listeners", per_listener_json());
	if (per_core)
		json_object_set_new(ans, "cores", cores);
	else
		json_decref(cores);
	json_object_set_new(ans, "generation", json_integer((json_int_t)snap_current()->gen));
	return 0;
}
