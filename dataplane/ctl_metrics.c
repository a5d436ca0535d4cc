/*
 * The dataplane's `metrics` command (docs/control.md): its families of
 * docs/metrics.md as Prometheus text exposition, rendered here on the
 * control thread from what the cores write without locks (aligned 64-bit
 * words, read racily as `stats` reads them: a figure is at most a pass
 * old, never torn, and counters only grow). Names, HELP and TYPE come from
 * counters.def, metric_families.def and net/counters.def; nothing is
 * written twice. sluice-control serves the text over HTTP and adds its
 * own families.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "core.h"
#include "ctl.h"
#include "drain.h"
#include "io/io.h"
#include "lslot.h"
#include "net/net.h"
#include "promtext.h"
#include "reload.h"
#include "session/backend.h"
#include "session/session.h"
#include "sluice-build.h"
#include "snap.h"

#define METRICS_MAX (32u << 20) /* the text, at most (LSLOT_MAX bounds it well below) */
#define LABELS_MAX 400          /* listener="...",proto="...",mode="..." escaped */

extern const char *const counter_names[CTR__COUNT];
extern const char *const counter_help[CTR__COUNT];

/* Each counter's family (NULL: its own, sluice_<name>_total) and labels. */
static const char *const ctr_family[CTR__COUNT] = {
#define C(n, h) NULL,
#define M(n, f, l, h) #f,
#include "counters.def"
#undef M
#undef C
};
static const char *const ctr_labels[CTR__COUNT] = {
#define C(n, h) "",
#define M(n, f, l, h) l,
#include "counters.def"
#undef M
#undef C
};

static const struct family {
	const char *name, *type;
	unsigned div;
	bool sparse;
	const char *help;
} families[] = {
#define F(n, t, d, sp, h) { #n, #t, d, sp, h },
#include "metric_families.def"
#undef F
};

static const char *const hs_le[HSB__COUNT] = {
#define B(us, le) le,
#include "hs_buckets.def"
#undef B
	"+Inf",
};

/* What one scrape reads: the counters summed over the cores per slot, and
 * each slot's labels ("" for slot 0: no listener). */
struct scrape {
	struct ptext t;
	uint64_t (*tot)[CTR__COUNT];      /* [LSLOT_MAX] */
	bool used[LSLOT_MAX];
	char labels[LSLOT_MAX][LABELS_MAX];
};

static void slot_labels(struct scrape *sc)
{
	unsigned n = lslot_count();

	for (unsigned i = 1; i < LSLOT_MAX; i++) {
		struct lslot_info li;
		char name[200];
		size_t o;

		if ((i >= n && i != LSLOT_OTHER) || !lslot_get(i, &li))
			continue;
		sc->used[i] = true;
		pt_escape(name, sizeof(name), li.name);
		o = (size_t)snprintf(sc->labels[i], LABELS_MAX, "listener=\"%s\",proto=\"", name);
		o += pt_escape(sc->labels[i] + o, LABELS_MAX - o, li.proto);
		o += (size_t)snprintf(sc->labels[i] + o, LABELS_MAX - o, "\",mode=\"");
		o += pt_escape(sc->labels[i] + o, LABELS_MAX - o, li.mode);
		snprintf(sc->labels[i] + o, LABELS_MAX - o, "\"");
	}
	sc->used[0] = true;
}

static void sum_counters(struct scrape *sc)
{
	for (unsigned c = 0; c < RT.n_cores; c++)
		for (unsigned i = 0; i < LSLOT_MAX; i++)
			for (unsigned k = 0; sc->used[i] && k < CTR__COUNT; k++)
				sc->tot[i][k] += RT.cores[c].ctr.v[i][k];
}

/* name{listener labels,extra} value: slot 0 has no listener labels. */
static void series(struct scrape *sc, const char *name, unsigned slot, const char *extra,
		   uint64_t v, unsigned div)
{
	const char *ll = sc->labels[slot];
	bool both = ll[0] && extra[0];

	if (!ll[0] && !extra[0])
		pt_printf(&sc->t, "%s", name);
	else
		pt_printf(&sc->t, "%s{%s%s%s}", name, ll, both ? "," : "", extra);
	if (div > 1)
		pt_printf(&sc->t, " %.3f\n", (double)v / div);
	else
		pt_printf(&sc->t, " %llu\n", (unsigned long long)v);
}

/* A counter in every listener's slot (all of them, or the non-zero ones
 * when sparse); slot 0 only when it counted something. */
static void counter_series(struct scrape *sc, const char *name, unsigned k, bool sparse,
			   unsigned div)
{
	for (unsigned i = 0; i < LSLOT_MAX; i++) {
		uint64_t v = sc->tot[i][k];

		if (!sc->used[i] || ((sparse || i == 0) && !v))
			continue;
		series(sc, name, i, ctr_labels[k], v, div);
	}
}

static void render_counters(struct scrape *sc)
{
	char name[128];

	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		pt_family(&sc->t, families[f].name, families[f].type, families[f].help);
		for (unsigned k = 0; k < CTR__COUNT; k++) {
			if (!ctr_family[k] || strcmp(ctr_family[k], families[f].name))
				continue;
			/* certsel rules that fail no handshake (OK, WARN, NOTE) */
			if (!strncmp(ctr_labels[k], "reason=\"none\"", 13))
				continue;
			counter_series(sc, families[f].name, k, families[f].sparse, families[f].div);
		}
	}
	for (unsigned k = 0; k < CTR__COUNT; k++) {
		if (ctr_family[k])
			continue;
		snprintf(name, sizeof(name), "sluice_%s_total", counter_names[k]);
		pt_family(&sc->t, name, "counter", counter_help[k]);
		counter_series(sc, name, k, false, 1);
	}
}

/* sluice_sessions: accepted less closed, per listener. */
static void render_sessions(struct scrape *sc)
{
	pt_family(&sc->t, "sluice_sessions", "gauge", "sessions open now");
	for (unsigned i = 1; i < LSLOT_MAX; i++) {
		uint64_t a = sc->tot[i][CTR_conn_accepted], c = sc->tot[i][CTR_conn_closed];

		if (sc->used[i])
			series(sc, "sluice_sessions", i, "", a > c ? a - c : 0, 1);
	}
}

static void render_histogram(struct scrape *sc)
{
	static const char name[] = "sluice_tls_handshake_duration_seconds";

	pt_family(&sc->t, name, "histogram",
		  "TLS handshakes from the first byte of the ClientHello to the handshake's end");
	for (unsigned i = 1; i < LSLOT_MAX; i++) {
		uint64_t b[HSB__COUNT] = { 0 }, sum = 0, cum = 0;

		if (!sc->used[i])
			continue;
		for (unsigned c = 0; c < RT.n_cores; c++) {
			for (unsigned k = 0; k < HSB__COUNT; k++)
				b[k] += RT.cores[c].hs_hist[i][k];
			sum += RT.cores[c].hs_sum_us[i];
		}
		for (unsigned k = 0; k < HSB__COUNT; k++) {
			cum += b[k];
			pt_printf(&sc->t, "%s_bucket{%s,le=\"%s\"} %llu\n", name, sc->labels[i],
				  hs_le[k], (unsigned long long)cum);
		}
		pt_printf(&sc->t, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, sc->labels[i],
			  (double)sum / 1e6, name, sc->labels[i], (unsigned long long)cum);
	}
}

static void render_cores(struct scrape *sc)
{
	struct ptext *t = &sc->t;
	unsigned n = RT.n_cores;

	pt_family(t, "sluice_core_busy_seconds_total", "counter",
		  "time the core spent doing work (not polling an idle queue)");
	for (unsigned c = 0; c < n; c++)
		pt_printf(t, "sluice_core_busy_seconds_total{core=\"%u\"} %.6f\n", c,
			  (double)RT.cores[c].busy_ns / 1e9);
	pt_family(t, "sluice_core_sessions", "gauge", "sessions the core holds");
	for (unsigned c = 0; c < n; c++)
		pt_printf(t, "sluice_core_sessions{core=\"%u\"} %u\n", c,
			  *(volatile unsigned *)&RT.cores[c].n_sess);
	pt_family(t, "sluice_core_stress", "gauge", "1 while the core is in stress mode");
	for (unsigned c = 0; c < n; c++)
		pt_printf(t, "sluice_core_stress{core=\"%u\"} %d\n", c,
			  atomic_load_explicit(&RT.cores[c].pub_stress, memory_order_relaxed) ? 1 : 0);
	pt_family(t, "sluice_worker_queue_depth", "gauge",
		  "handshake jobs the core has posted to the TLS workers and not yet had back");
	for (unsigned c = 0; c < n; c++) {
		pt_printf(t, "sluice_worker_queue_depth{core=\"%u\"} %llu\n", c,
			  (unsigned long long)core_queue_depth(&RT.cores[c]));
	}
}

/* Each backend pool once (in the order the listeners name them). */
static void render_backends(struct scrape *sc)
{
	const struct snap *s = snap_current();
	uint64_t now = clock_mono_ms();
	struct ptext *t = &sc->t;

	for (int pass = 0; pass < 2; pass++) {
		const char *name = pass ? "sluice_backend_probe_age_seconds" : "sluice_backend_up";

		pt_family(t, name, "gauge", pass ? "seconds since the server was last probed" :
			  "1 if the last probe or connection found the server up");
		for (unsigned i = 0; i < s->n_listeners; i++) {
			struct be_pool *p = s->listeners[i].pool;
			bool seen = false;

			for (unsigned k = 0; k < i; k++)
				seen |= s->listeners[k].pool == p;
			for (unsigned k = 0; !seen && k < p->n; k++) {
				uint64_t d = atomic_load_explicit(&p->srv[k].down_until_ms,
								  memory_order_relaxed);
				uint64_t pr = atomic_load_explicit(&p->srv[k].probed_ms,
								   memory_order_relaxed);

				if (pass && !pr)
					continue; /* never probed: no age */
				pt_printf(t, "%s{backend=\"", name);
				pt_label_value(t, p->cfg->name);
				pt_printf(t, "\",server=\"");
				pt_label_value(t, p->srv[k].name);
				if (pass)
					pt_printf(t, "\"} %.3f\n", now > pr ? (double)(now - pr) / 1e3 : 0.0);
				else
					pt_printf(t, "\"} %d\n", d && d > now ? 0 : 1);
			}
		}
	}
}

static void render_process(struct scrape *sc)
{
	struct reload_status rs = reload_status();
	struct ptext *t = &sc->t;
	long long started = ctl_status_start_s();

	pt_family(t, "sluice_build_info", "gauge", "1, with the version as a label");
	pt_printf(t, "sluice_build_info{version=\"");
	pt_label_value(t, SLUICE_VERSION);
	pt_printf(t, "\"} 1\n");
	pt_family(t, "sluice_start_time_seconds", "gauge", "the dataplane's start, Unix time");
	pt_printf(t, "sluice_start_time_seconds %lld\n", started);
	pt_family(t, "sluice_config_generation", "gauge", "the running configuration's generation");
	pt_printf(t, "sluice_config_generation %llu\n",
		  (unsigned long long)snap_current()->gen);
	pt_family(t, "sluice_config_last_reload_successful", "gauge",
		  "1 if the last reload succeeded (1 before any)");
	pt_printf(t, "sluice_config_last_reload_successful %d\n", !rs.time_s || rs.ok ? 1 : 0);
	pt_family(t, "sluice_config_last_reload_timestamp_seconds", "gauge",
		  "the last reload's time (the start before any), Unix time");
	pt_printf(t, "sluice_config_last_reload_timestamp_seconds %lld\n",
		  rs.time_s ? rs.time_s : started);
	pt_family(t, "sluice_config_reloads_total", "counter", "reloads, by result");
	pt_printf(t, "sluice_config_reloads_total{result=\"ok\"} %llu\n"
		  "sluice_config_reloads_total{result=\"failed\"} %llu\n",
		  (unsigned long long)rs.n_ok, (unsigned long long)rs.n_failed);
	pt_family(t, "sluice_draining", "gauge", "1 while a drain is on");
	pt_printf(t, "sluice_draining %d\n", drain_active() ? 1 : 0);
}

static void xstat(void *arg, unsigned port, const char *name, uint64_t v)
{
	struct scrape *sc = arg;

	if (!sc->used[0])
		return;
	pt_printf(&sc->t, "sluice_dpdk_port_xstat_total{port=\"%u\",name=\"", port);
	pt_label_value(&sc->t, name);
	pt_printf(&sc->t, "\"} %llu\n", (unsigned long long)v);
}

/*
 * sluice_net_<counter>_total, but a word of the counter's name that reads
 * as a unit abbreviation (promtool's lint: "us", "ns") spelt out:
 * drop_eth_not_for_us -> drop_eth_not_for_self, ndp_ns_rx -> ndp_solicit_rx.
 */
static void net_metric_name(char *out, size_t n, const char *counter)
{
	static const char *const words[][2] = { { "us", "self" }, { "ns", "solicit" } };
	size_t o = (size_t)snprintf(out, n, "sluice_net");
	const char *p = counter;

	while (*p && o < n) {
		size_t len = strcspn(p, "_");
		const char *w = NULL;

		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (len == strlen(words[i][0]) && !strncmp(p, words[i][0], len))
				w = words[i][1];
		o += w ? (size_t)snprintf(out + o, n - o, "_%s", w) :
			 (size_t)snprintf(out + o, n - o, "_%.*s", (int)len, p);
		p += len + (p[len] == '_');
	}
	if (o < n)
		snprintf(out + o, n - o, "_total");
}

/* The native stack's counters and its ports' DPDK xstats, when it runs. */
static void render_net(struct scrape *sc)
{
	uint64_t v[NET_C__COUNT] = { 0 };
	char name[128];

	if (!io_net_counters(v, NET_C__COUNT))
		return;
	for (unsigned k = 0; k < NET_C__COUNT; k++) {
		net_metric_name(name, sizeof(name), net_counter_names[k]);
		pt_family(&sc->t, name, "counter", net_counter_help[k]);
		pt_printf(&sc->t, "%s %llu\n", name, (unsigned long long)v[k]);
	}
	pt_family(&sc->t, "sluice_dpdk_port_xstat_total", "counter",
		  "DPDK's extended statistics of each native port");
	io_port_xstats(xstat, sc);
}

int ctl_metrics(json_t *req, json_t *ans, char *err, size_t errlen)
{
	struct scrape *sc = calloc(1, sizeof(*sc));
	json_t *text;

	(void)req;
	if (!sc || !(sc->tot = calloc(LSLOT_MAX, sizeof(*sc->tot)))) {
		free(sc);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pt_init(&sc->t, METRICS_MAX);
	slot_labels(sc);
	sum_counters(sc);
	render_counters(sc);
	render_sessions(sc);
	render_histogram(sc);
	render_cores(sc);
	render_backends(sc);
	render_process(sc);
	render_net(sc);
	text = sc->t.failed ? NULL : json_stringn(sc->t.p ? sc->t.p : "", sc->t.len);
	if (!text)
		snprintf(err, errlen, "%s", sc->t.failed ? "out of memory or over the size limit" :
			 "not UTF-8 (a listener's or a server's name)");
	else
		json_object_set_new(ans, "text", text);
	pt_free(&sc->t);
	free(sc->tot);
	free(sc);
	return text ? 0 : -1;
}
