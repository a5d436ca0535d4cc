/*
 * sluice: start-up, cores, workers.
 *
 *   sluice [-c FILE]          run (without -c: the embedded default)
 *   sluice --check [-c FILE]  validate the configuration and certificates
 *   sluice --ports [-c FILE]  what the native stack needs of the machine
 *
 * Every check that can fail runs before anything starts; a failure prints
 * FILE:LINE: KEY: reason and exits 1. Nothing fails fatally after that.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "conf.h"
#include "conn_limits.h"
#include "core.h"
#include "ctl.h"
#include "drain.h"
#include "explain.h"
#include "fpstat.h"
#include "io/io.h"
#include "log.h"
#include "notify.h"
#include "ports.h"
#include "privs.h"
#include "session/backend.h"
#include "session/probe_loop.h"
#include "session/session.h"
#include "reload.h"
#include "sluice-build.h"
#include "snap.h"
#include "resume.h"
#include "tls.h"
#include "wipe.h"

const char *const counter_names[CTR__COUNT] = {
#define C(n, h) #n,
#include "counters.def"
#undef C
};
const char *const counter_help[CTR__COUNT] = {
#define C(n, h) h,
#include "counters.def"
#undef C
};

#define CFG_CORES_MAX_RT 64

#if HAVE_JEMALLOC
/*
 * jemalloc's own settings (read at its start; MALLOC_CONF still wins): a
 * handshake allocates and frees some 100 KiB, and without a purging thread
 * an idle process keeps those pages dirty for good, so that 1000 idle TLS
 * sessions looked like 50 MiB instead of 3.5. A background thread returns
 * freed pages after a second.
 */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluice [-c FILE] [--check | --ports]\n"
		"       sluice explain [-c FILE] [--listener NAME] [--from ADDR] HEX | fields\n"
		"  -c, --config FILE  configuration (default: the embedded quick-start one)\n"
		"      --check        validate configuration and certificates, then exit\n"
		"      --ports        print the native stack's ports and memory (sluice-setup)\n"
		"  -V, --version      print the version\n");
}

static void report_counters(void)
{
	uint64_t tot[CTR__COUNT] = { 0 };
	char line[16384];
	size_t o = 0;
	unsigned i, k;

	for (i = 0; i < RT.n_cores; i++)
		for (k = 0; k < CTR__COUNT; k++)
			tot[k] += ctr_sum(&RT.cores[i], (int)k);
	for (k = 0; k < CTR__COUNT && o < sizeof(line) - 64; k++)
		if (tot[k])
			o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s=%llu", o ? " " : "",
					      counter_names[k], (unsigned long long)tot[k]);
	o = io_report(line, sizeof(line), o);
	log_msg(LOG_INFO, "counters: %s", o ? line : "none");
}

static void report_line(const char *line)
{
	log_msg(LOG_INFO, "%s", line);
}

/* One line per client fingerprint seen: hellos, handshakes done and
 * failed, and under each policy whether a certificate would serve it. */
static void report_fingerprints(void)
{
	struct fp_table *t[CFG_CORES_MAX_RT];
	const char *names[CFG_POLICY_COUNT];
	unsigned n = RT.n_cores < CFG_CORES_MAX_RT ? RT.n_cores : CFG_CORES_MAX_RT;

	for (unsigned i = 0; i < n; i++)
		t[i] = RT.cores[i].fp;
	for (unsigned p = 0; p < CFG_POLICY_COUNT; p++)
		names[p] = cfg_policy_name((enum cfg_policy)p);
	fp_report(t, n, names, CFG_POLICY_COUNT, report_line);
}

/* What main() sets up and tears down. */
struct app {
	const char *path;          /* -c FILE, or NULL: the embedded default */
	bool check;                /* --check */
	bool ports;                /* --ports */
	struct cfg *c;             /* the start-up configuration (RT.cfg) */
	struct tls_conf tc;        /* it, with its certificates: the first
				      snapshot takes it over */
	struct be_pool *pools;
	sigset_t sigs;             /* taken by the signal loop only */
	bool io_up;                /* io_setup() ran: io_fini() at teardown */
	bool workers_up;           /* tlsw_start() ran: tlsw_fini() at teardown */
	unsigned n_started;        /* core threads started */
};

/* Options into a. Returns -1 to go on, else the exit status. */
static int parse_args(struct app *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "ports", no_argument, NULL, 'p' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			a->path = optarg;
			break;
		case 'k':
			a->check = true;
			break;
		case 'p':
			a->ports = true;
			break;
		case 'V':
			printf("sluice %s\n", SLUICE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/*
 * Everything that reads the configuration and can fail on it: OpenSSL,
 * the configuration, ticket keys and the session cache, backend pools,
 * listeners and their certificates. Nothing runs yet. 0 or -errno with
 * err filled (or empty: -rc says it).
 */
static int app_setup(struct app *a, char *err, size_t errlen)
{
	int rc;

	/* Never the system openssl.cnf: the policy is set in tls_ctx_new. */
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	if (tls_bio_init() < 0)
		return -ENOMEM;
	rc = a->path ? tls_conf_load_file(a->path, &a->tc, err, errlen)
		     : tls_conf_load(cfg_default_yaml, cfg_default_yaml_len,
				     "(embedded default)", NULL, &a->tc, err, errlen);
	if (rc < 0)
		return rc;
	RT.cfg = a->c = a->tc.c;
	if ((rc = tls_resume_init(a->c, log_msg, err, errlen)) < 0 ||
	    (rc = be_pools_init(a->c, &a->pools, err, errlen)) < 0)
		return rc;
	return 0;
}

/*
 * Start serving: logging, signals blocked (only the signal loop takes
 * them), the cores' state, the network stack (io_setup: listeners bound
 * or ports up), root dropped, the TLS workers, the backend probes, then
 * the core threads. 0 or -errno with err filled; a core that does not
 * start stops the others (the signal loop then ends at once).
 */
static int app_start(struct app *a, char *err, size_t errlen)
{
	const struct cfg *c = a->c;
	struct snap *boot;
	char name[16], cerr[512];
	unsigned i;
	int rc;

	if ((rc = privs_start(c, err, errlen)) < 0)
		return rc;
	log_init(c->log_target);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&a->sigs);
	sigaddset(&a->sigs, SIGINT);
	sigaddset(&a->sigs, SIGTERM);
	sigaddset(&a->sigs, SIGHUP);
	sigaddset(&a->sigs, SIGUSR1);
	sigaddset(&a->sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &a->sigs, NULL); /* threads inherit: only main takes them */

	RT.n_cores = c->cores;
	RT.cores = calloc(c->cores, sizeof(*RT.cores));
	if (!RT.cores)
		return -ENOMEM;
	/* Descriptors for what the limits allow, before anything is opened;
	 * the address table sized for every session the cores may hold. */
	if ((rc = limits_nofile(c, &RT.nofile, err, errlen)) < 0)
		return rc;
	if (limits_init((uint64_t)c->limits.sessions_per_core * c->cores, 0) < 0)
		return -ENOMEM;
	for (i = 0; i < c->cores; i++) {
		RT.cores[i].id = i;
		RT.cores[i].wake_fd = -1;
		if (!(RT.cores[i].fp = fp_table_new()))
			return -ENOMEM;
		if (c->control.fingerprint_window) /* entries older may be reused */
			RT.cores[i].fp->stale_s = c->control.fingerprint_window;
	}
	a->io_up = true;
	if ((rc = io_setup(c, RT.cores, c->cores, &core_io_cb, err, errlen)) < 0 ||
	    (rc = privs_bound(c, err, errlen)) < 0)
		return rc;
	/* The workers' library contexts, then the first snapshot's SSL_CTXs
	 * in them. */
	if ((rc = tlsw_start(c->workers, c->cores, err, errlen)) < 0)
		return rc;
	a->workers_up = true;
	snap_cores(c->cores);
	reload_init(a->pools, c->n_backends);
	if (!(boot = snap_build(&a->tc, a->pools, c->n_backends, err, errlen)))
		return -EINVAL;
	boot->keep_cfg = true;
	/* The sockets io_setup() bound, as the first generation's. */
	if ((rc = io_listeners_for(c, snap_next_gen(), boot->lfd, err, errlen)) == -ENOTSUP) {
		free(boot->lfd);
		boot->lfd = NULL;
	} else if (rc < 0) {
		snap_discard(boot);
		return rc;
	}
	snap_publish(boot);
	ctl_status_started();
	/* The control socket is made as root; sluice-control talks to it. A
	 * second sluice on the same machine (tests, benchmarks) serves without
	 * one rather than not at all. */
	if ((rc = ctl_start(c->control.dataplane_socket, NULL, cerr, sizeof(cerr))) == -EPERM) {
		snprintf(err, errlen, "%s", cerr);   /* a folder others may write: never */
		return rc;
	} else if (rc < 0) {
		log_msg(LOG_WARNING, "no control socket: %s", cerr);
	}
	/* What is open now stays open: the lowest free descriptor is about
	 * their count (stress mode adds the connections' sockets). */
	if ((rc = dup(STDERR_FILENO)) >= 0) {
		RT.fd_base = (unsigned)rc;
		close(rc);
	}
	/* Ports are bound and keys read: root is no longer needed. */
	if ((rc = privs_drop(c, err, errlen)) < 0)
		return rc;

	if (RT.cores[0].io->probes_in_loop) {
		/* The backends sit behind the stack's own ports: core 0 probes
		 * them from its first pass on (session/probe_loop.c). */
		if ((rc = probe_loop_setup(a->pools, c->n_backends, c->hostname)) < 0)
			return rc;
	} else {
		be_probe_all(a->pools, c->n_backends, c->hostname);
		if (be_health_start(a->pools, c->n_backends, c->hostname) < 0)
			log_msg(LOG_WARNING, "cannot start the health-check thread: backends are "
				"probed only at start-up");
	}
	for (i = 0; i < c->n_listeners; i++) {
		const struct listener *l = &boot->listeners[i];

		log_msg(LOG_INFO, "listening %s %s proto=%s tls=%s backend=%s certs=%s",
			l->cfg->name, l->cfg->address, l->ops->name, cfg_tls_name(l->cfg->tls),
			l->cfg->be->name, l->tls_available ? l->certs_desc : "-");
	}
	for (i = 0; i < c->cores; i++) {
		if ((rc = pthread_create(&RT.cores[i].thread, NULL, core_main, &RT.cores[i]))) {
			log_msg(LOG_ERR, "cannot start core %u: %s", i, strerror(rc));
			atomic_store(&RT.stop, true);
			break;
		}
		a->n_started = i + 1;
		/* Named so that per-thread CPU (top -H, /proc/PID/task) tells the
		 * cores from the TLS workers; 15 characters at most. */
		snprintf(name, sizeof(name), "sl-core%u", i % 1000u);
		(void)pthread_setname_np(RT.cores[i].thread, name);
	}
	log_msg(LOG_INFO, "sluice %s started: %u cores, %u TLS workers%s, %s stack",
		SLUICE_VERSION, a->n_started, c->workers,
		c->workers ? "" : " (handshakes inline on the cores)", RT.cores[0].io->name);
	return 0;
}

/* The core that has gone longest without a loop pass, and for how long
 * (ms; 0 when every core passed since now_ms). For the watchdog. */
static uint64_t cores_stalled(unsigned *which)
{
	uint64_t now = clock_mono_ms(), worst = 0;

	*which = 0;
	for (unsigned i = 0; i < RT.n_cores; i++) {
		uint64_t t = atomic_load_explicit(&RT.cores[i].pub_pass_ms, memory_order_relaxed);

		if (t && now > t && now - t > worst) {
			worst = now - t;
			*which = i;
		}
	}
	return worst;
}

/* The main thread from here on: ticket-key upkeep once a second, the
 * drain's progress, and the signals: USR1 reports, USR2 rotates ticket
 * keys, INT/TERM drain (control.drain_deadline; a second one during the
 * drain stops at once). Returns when the process is to stop. */
static void app_signal_loop(struct app *a)
{
	long long last_tick = 0;
	uint64_t stalled_ms;
	unsigned stalled;
	int sig;

	while (!atomic_load(&RT.stop)) {
		/* While draining, look at the cores' counts often: the
		 * process exits soon after the last session closed. */
		struct timespec tick = { 0, 100 * 1000 * 1000 };

		if (!drain_active())
			tick = (struct timespec){ 1, 0 };
		if (time(NULL) != last_tick) {
			last_tick = time(NULL);
			tls_resume_tick(last_tick);
			reload_tick();
			stalled_ms = cores_stalled(&stalled);
			notify_watchdog(stalled, stalled_ms);
		}
		sig = sigtimedwait(&a->sigs, NULL, &tick);
		if (drain_tick()) {
			/* A drain from the control socket (which undrain could
			 * take back) tells systemd only now. */
			notify_stopping("drained: exiting");
			atomic_store(&RT.stop, true);
			break;
		}
		if (sig < 0)
			continue;
		if (sig == SIGUSR1) {
			report_counters();
			report_fingerprints();
		} else if (sig == SIGUSR2) {
			enum tls_ticket_source src;

			tls_resume_show(NULL, 0, 0, &src, NULL);
			if (src == TLS_TICKETS_OFF)
				log_msg(LOG_INFO, "SIGUSR2: session tickets are off");
			else if (tls_resume_rotate_now() == -EPERM)
				log_msg(LOG_INFO, "SIGUSR2: ticket keys come from %s; rotate them "
					"there", src == TLS_TICKETS_FILE ? RT.cfg->tickets.key_file
					: "sluice-control (sluicectl tickets rotate)");
		} else if (sig == SIGHUP) {
			char err[1024];

			(void)reload_from_disk(a->path, err, sizeof(err)); /* logged there */
		} else if (drain_active()) {
			drain_abort(sig == SIGTERM ? "SIGTERM again" : "SIGINT again");
			notify_stopping("stopping now: a second signal during the drain");
			atomic_store(&RT.stop, true);
		} else {
			unsigned deadline = drain_default_deadline();
			char why[96];

			drain_start(deadline, sig == SIGTERM ? "SIGTERM" : "SIGINT");
			/* A signal's drain is not taken back: stopping from now. */
			snprintf(why, sizeof(why), "draining (%s): deadline %u s",
				 sig == SIGTERM ? "SIGTERM" : "SIGINT", deadline);
			notify_stopping(why);
		}
	}
}

/* Stop what app_start() started (the cores, the probe thread, the
 * workers), report the counters one last time, and free what app_setup()
 * made. Safe after a failure at any step. */
static void app_teardown(struct app *a)
{
	unsigned i;

	atomic_store(&RT.stop, true);
	for (i = 0; i < a->n_started; i++)
		pthread_join(RT.cores[i].thread, NULL);
	ctl_stop();
	if (RT.cores) {
		be_health_stop();
		tlsw_stop(sess_job_orphan);
		if (a->n_started)
			report_counters();
	}
	/* The SSL_CTXs before the library contexts they live in. */
	snap_free_all();
	if (a->workers_up)
		tlsw_fini();
	if (a->io_up)
		io_fini();   /* after the last report, which reads the stacks */
	for (i = 0; RT.cores && i < RT.n_cores; i++)
		fp_table_free(RT.cores[i].fp);
	free(RT.cores);
	limits_fini();
	sesscache_fini();
	if (a->c)
		be_pools_free(a->pools, a->c->n_backends);
	if (a->tc.c)
		tls_conf_free(&a->tc);   /* never became a snapshot (--check, a failed start) */
	else
		cfg_free(a->c);
	tls_bio_fini();
}

int main(int argc, char **argv)
{
	struct app a = { 0 };
	char err[1024] = "";
	int rc;

	wipe_json_init(); /* before any JSON: requests may carry keys */
	if (argc > 1 && !strcmp(argv[1], "explain")) {
		OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
		return explain_main(argc - 1, argv + 1);
	}
	if ((rc = parse_args(&a, argc, argv)) >= 0)
		return rc;
	if (a.ports)
		return ports_main(a.path);
	if ((rc = app_setup(&a, err, sizeof(err))) < 0) {
		fprintf(stderr, "sluice: %s\n", err[0] ? err : strerror(-rc));
		return 1;
	}
	if (a.check) {
		printf("%s: ok: %u listeners, %u backends\n", a.c->path, a.c->n_listeners,
		       a.c->n_backends);
		app_teardown(&a);
		return 0;
	}
	if ((rc = app_start(&a, err, sizeof(err))) < 0) {
		fprintf(stderr, "sluice: %s\n", err[0] ? err : strerror(-rc));
		app_teardown(&a);
		return 1;
	}
	if (!atomic_load(&RT.stop)) /* every core started */
		notify_ready(a.c->n_listeners, a.n_started, RT.cores[0].io->name, snap_current()->gen);
	app_signal_loop(&a);
	app_teardown(&a);
	return 0;
}
