/*
 * sluice-control: the control-plane process (docs/control.md).
 *
 *   sluice-control [-c FILE]
 *
 * One thread and one poll() loop over non-blocking sockets: the admin
 * socket's clients, the dataplane's socket, the metrics endpoint
 * (libmicrohttpd's epoll set) and a signalfd (SIGHUP: reload,
 * SIGTERM/SIGINT: stop). It holds no session, so it may be stopped or
 * killed at any time; started again, it attaches to the running dataplane.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "admin.h"
#include "clog.h"
#include "ctl.h"
#include "harden.h"
#include "metrics_http.h"
#include "notify.h"
#include "sluice-build.h"
#include "stage.h"
#include "wipe.h"

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluice-control [-c FILE]\n"
		"  -c, --config FILE  sluice's configuration (default: the embedded quick-start one)\n"
		"  -V, --version\n"
		"  -h, --help\n"
		"Serves control.socket for sluicectl and talks to the dataplane at\n"
		"control.dataplane_socket. SIGHUP reloads, SIGTERM stops. See docs/operations.md.\n");
}

/* Each time the dataplane is attached (again). */
static void on_attach(struct dp *dp, void *arg)
{
	(void)dp;
	ctl_tickets_attached(arg);
}

static int signals(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGHUP);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGINT);
	if (sigprocmask(SIG_BLOCK, &s, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &s, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* A signal: 1 to stop. */
static int on_signal(struct ctl *ctl, int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			json_t *a;

			ctl_log(LOG_INFO, "SIGHUP: reloading");
			if ((a = ctl_reload(ctl, 0)))
				json_decref(a);   /* refused at once: already logged */
		} else {
			ctl_log(LOG_INFO, "%s: stopping (the dataplane and its sessions are not "
			     "affected)", strsignal((int)si.ssi_signo));
			ctl_notify_stopping("stopping; the dataplane and its sessions go on");
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct ctl ctl;
	struct pollfd pfd[ADM_CLIENTS_MAX + 4];
	unsigned long long ids[ADM_CLIENTS_MAX + 4];
	char err[1024], *admin_group = NULL;
	int opt, sfd, mfd, rc = 0;
	char *abs = NULL;

	wipe_json_init(); /* before any JSON: pushes and loads carry keys */
	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			/* Absolute: the dataplane and the log name it, whatever
			 * the working folder. */
			if (!(abs = realpath(optarg, NULL))) {
				fprintf(stderr, "sluice-control: %s: %s\n", optarg, strerror(errno));
				return 1;
			}
			ctl.path = abs;
			break;
		case 'V':
			printf("sluice-control %s\n", SLUICE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	OPENSSL_init_ssl(0, NULL);
	if (bundle_read(&ctl.cur, ctl.path, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-control: %s\n", err);
		return 1;
	}
	ctl_log_init(ctl.cur.tc.c->log_target);
	/* Root by design (it reads every key file), but never more: nothing
	 * gained through execve, and no core dump or ptrace of its keys. */
	if (harden_no_new_privs() < 0 || harden_no_dump() < 0) {
		ctl_log(LOG_ERR, "prctl: %s", strerror(errno));
		return 1;
	}
	ctl.started = (long long)time(NULL);
	ctl.now_ms = mono_ms();
	if ((sfd = signals()) < 0) {
		ctl_log(LOG_ERR, "signalfd: %s", strerror(errno));
		return 1;
	}
	if (ctl.cur.tc.c->control.admin_group)
		admin_group = strdup(ctl.cur.tc.c->control.admin_group);
	if (adm_listen(&ctl, &ctl.cur.tc.c->control, err, sizeof(err)) < 0) {
		ctl_log(LOG_ERR, "%s", err);
		return 1;
	}
	dp_init(&ctl.dp, ctl.cur.tc.c->control.dataplane_socket);
	if (mh_start(&ctl, &ctl.cur.tc.c->control, err, sizeof(err)) < 0) {
		ctl_log(LOG_ERR, "%s", err);
		adm_close(&ctl);
		dp_fini(&ctl.dp);
		return 1;
	}
	ctl_tickets_init(&ctl);
	ctl.dp.on_attach = on_attach;
	ctl.dp.on_attach_arg = &ctl;
	ctl_log(LOG_INFO, "started: version %s, configuration %s, dataplane socket %s",
	     SLUICE_VERSION, ctl.path ? ctl.path : "(embedded default)", ctl.dp.path);
	ctl_notify_ready(ctl.socket_path);
	for (;;) {
		long long t;
		unsigned n, k;
		int dfd;
		short dev = 0;

		ctl.now_ms = mono_ms();
		ctl_tickets_tick(&ctl);
		dp_tick(&ctl.dp, ctl.now_ms);
		adm_tick(&ctl);
		ctl_notify_attached(ctl.dp.attached, ctl.dp.path);
		ctl_notify_watchdog();
		pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		ids[0] = 0;
		n = 1;
		dfd = dp_pollfd(&ctl.dp, &dev);
		pfd[n] = (struct pollfd){ .fd = dfd, .events = dev };
		ids[n++] = 0;
		mfd = mh_pollfd();
		pfd[n] = (struct pollfd){ .fd = mfd, .events = POLLIN };
		ids[n++] = 0;
		k = n;
		n += adm_pollfds(&ctl, pfd + n, ids + n);
		t = dp_next_ms(&ctl.dp, ctl.now_ms);
		if (adm_next_ms(&ctl) < t)
			t = adm_next_ms(&ctl);
		if (mh_next_ms(ctl.now_ms) < t)
			t = mh_next_ms(ctl.now_ms);
		if (poll(pfd, n, (int)(t > 1000 ? 1000 : t) + 1) < 0) {
			if (errno == EINTR)
				continue;
			ctl_log(LOG_ERR, "poll: %s", strerror(errno));
			rc = 1;
			break;
		}
		ctl.now_ms = mono_ms();
		if (pfd[0].revents && on_signal(&ctl, sfd))
			break;
		if (dfd >= 0 && pfd[1].revents)
			dp_ready(&ctl.dp, pfd[1].revents, ctl.now_ms);
		for (unsigned i = k; i < n; i++)
			if (pfd[i].revents)
				adm_ready(&ctl, ids[i], pfd[i].revents, admin_group);
		/* Every pass, not only when its set is readable: a scrape
		 * resumed by the dataplane's answer above, or one whose wait
		 * ended, is answered now (MHD_run never blocks). */
		mh_run(mono_ms());
	}
	mh_stop();
	adm_close(&ctl);
	dp_fini(&ctl.dp);
	ctl_tickets_fini();
	stage_free(ctl.stage);
	bundle_free(&ctl.cur);
	free(admin_group);
	free(abs);
	close(sfd);
	return rc;
}
