/*
 * Reload: a new configuration, validated whole, becomes a snapshot (snap.h)
 * or changes nothing. From the files on disk (SIGHUP to the dataplane,
 * when it may still read them) or from the bytes sluice-control sends
 * (`load`, docs/control.md), which the dataplane validates again with the
 * same code: sluice-control's "ok" is never taken on trust.
 *
 * What a snapshot cannot carry needs a restart and is refused as such, by
 * name: the stack and its ports, the cores and workers, the listeners'
 * addresses (bound at start-up), the backends' servers (their pools and
 * probes run from start-up).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "io/io.h"
#include "ctl.h"
#include "log.h"
#include "notify.h"
#include "reload.h"
#include "session/backend.h"
#include "session/session.h"
#include "snap.h"
#include "tls.h"

static struct {
	pthread_mutex_t lock;        /* one reload at a time: SIGHUP and ctl */
	struct be_pool *pools;
	unsigned n_pools;
	struct reload_status st;
} R = { .lock = PTHREAD_MUTEX_INITIALIZER };

void reload_init(struct be_pool *pools, unsigned n_pools)
{
	R.pools = pools;
	R.n_pools = n_pools;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

#define RESTART(line_, key_, ...)                                                    \
	do {                                                                         \
		int o_ = (line_) ? snprintf(err, errlen, "%s:%u: %s: ", nu->path,    \
					     (unsigned)(line_), key_)                 \
				 : snprintf(err, errlen, "%s: %s: ", nu->path, key_); \
		if (o_ > 0 && (size_t)o_ < errlen)                                   \
			snprintf(err + o_, errlen - o_, __VA_ARGS__);                \
		return -EINVAL;                                                      \
	} while (0)

/* On a stack whose listeners are fixed at start-up (the native one): the
 * same listeners, names and addresses, in the same order. */
static int fixed_listeners(const struct cfg *old, const struct cfg *nu, char *err, size_t errlen)
{
	char key[96];

	if (old->n_listeners != nu->n_listeners)
		RESTART(0, "listeners", "%u -> %u listeners: adding or removing a listener needs "
			"a restart (its port is bound at start-up)", old->n_listeners,
			nu->n_listeners);
	for (unsigned i = 0; i < nu->n_listeners; i++) {
		const struct cfg_listener *a = &old->listeners[i], *b = &nu->listeners[i];

		snprintf(key, sizeof(key), "listeners[%u]", i);
		if (strcmp(a->name, b->name))
			RESTART(b->line, key, "'%s' where '%s' runs: renaming, adding or reordering "
				"listeners needs a restart", b->name, a->name);
		if (strcmp(a->address, b->address))
			RESTART(b->line, key, "address %s -> %s: bound at start-up; restart to apply",
				a->address, b->address);
	}
	return 0;
}

/* Same TLS to the backend in both files? */
static bool be_tls_same(const struct cfg_backend_tls *a, const struct cfg_backend_tls *b)
{
	return a->tls == b->tls && a->mode == b->mode && a->min_version == b->min_version &&
	       a->fallback_memory == b->fallback_memory &&
	       str_eq(a->server_name, b->server_name) && str_eq(a->ca_file, b->ca_file) &&
	       str_eq(a->pin_sha256, b->pin_sha256) && str_eq(a->client_cert, b->client_cert) &&
	       str_eq(a->client_key, b->client_key);
}

/* What differs from the running start-up configuration in a way only a
 * restart can apply; 0, or -EINVAL with "FILE:LINE: KEY: reason". */
static int needs_restart(const struct cfg *old, const struct cfg *nu, char *err, size_t errlen)
{
	char key[96];

	if (old->cores != nu->cores)
		RESTART(0, "cores", "%u -> %u: the cores start with the process; restart to apply",
			old->cores, nu->cores);
	if (old->workers != nu->workers)
		RESTART(0, "workers", "%u -> %u: the TLS workers start with the process; restart "
			"to apply", old->workers, nu->workers);
	if (!old->native != !nu->native)
		RESTART(0, "native", "the network stack is chosen at start-up; restart to apply");
	if (!str_eq(old->user, nu->user))
		RESTART(0, "user", "privileges are dropped at start-up; restart to apply");
	if (old->session_cache != nu->session_cache)
		RESTART(0, "session_cache", "sized at start-up; restart to apply");
	/* Ticket keys: the key file's contents are re-read when they change
	 * (tls_resume_tick); where keys come from and their windows are set at
	 * start-up. */
	if (old->tickets.enabled != nu->tickets.enabled ||
	    !str_eq(old->tickets.key_file, nu->tickets.key_file) ||
	    old->tickets.rotate != nu->tickets.rotate ||
	    old->tickets.lifetime != nu->tickets.lifetime ||
	    old->control.ticket_keys != nu->control.ticket_keys)
		RESTART(nu->tickets.key_file_line, "tickets", "changed: ticket keys are set up at "
			"start-up; restart to apply (a key file's new contents are read without)");
	if (!str_eq(old->control.dataplane_socket, nu->control.dataplane_socket))
		RESTART(0, "control.dataplane_socket", "bound at start-up; restart to apply");
	for (unsigned i = 0; i < nu->n_backends; i++) {
		const struct cfg_backend *b = &nu->backends[i], *a = NULL;
		bool same;

		for (unsigned j = 0; j < old->n_backends; j++)
			if (!strcmp(old->backends[j].name, b->name))
				a = &old->backends[j];
		snprintf(key, sizeof(key), "backends[%u]", i);
		if (!a)
			RESTART(b->line, key, "'%s' is new: backends start with the process; "
				"restart to apply", b->name);
		same = a->protocol == b->protocol && a->proxy == b->proxy &&
		       a->n_servers == b->n_servers && a->connect_timeout == b->connect_timeout &&
		       a->health_interval == b->health_interval &&
		       be_tls_same(&a->tls, &b->tls);
		for (unsigned k = 0; same && k < b->n_servers; k++)
			same = !strcmp(a->servers[k], b->servers[k]);
		if (!same)
			RESTART(b->line, key, "'%s' changed: backend servers and their probes start "
				"with the process; restart to apply", b->name);
	}
	return 0;
}
#undef RESTART

static void record(bool ok, const char *source, const char *error)
{
	R.st.ok = ok;
	R.st.time_s = (long long)time(NULL);
	snprintf(R.st.source, sizeof(R.st.source), "%s", source);
	snprintf(R.st.error, sizeof(R.st.error), "%s", ok ? "" : error);
	if (ok)
		R.st.n_ok++;
	else
		R.st.n_failed++;
}

/* Listeners added and removed, by name and address, in the log. */
static void log_changes(const struct snap *old, const struct snap *nu)
{
	for (unsigned k = 0; k < 2; k++) {
		const struct snap *a = k ? nu : old, *b = k ? old : nu;

		for (unsigned i = 0; i < a->n_listeners; i++) {
			const struct cfg_listener *l = a->listeners[i].cfg;
			bool kept = false;

			for (unsigned j = 0; j < b->n_listeners && !kept; j++)
				kept = !strcmp(b->listeners[j].cfg->address, l->address);
			if (!kept)
				log_msg(LOG_NOTICE, "reload: listener %s %s %s", l->name, l->address,
					k ? "added" : "removed: its sessions finish, new connections "
					"are refused");
		}
	}
}

/* Under R.lock: tc (taken over) becomes the running snapshot, or nothing
 * changes. */
static int apply(struct tls_conf *tc, const char *source, char *err, size_t errlen)
{
	struct snap *s;
	int rc;

	if ((rc = needs_restart(RT.cfg, tc->c, err, errlen)) < 0) {
		tls_conf_free(tc);
		return rc;
	}
	if (!(s = snap_build(tc, R.pools, R.n_pools, err, errlen))) {
		tls_conf_free(tc);
		return -EINVAL;
	}
	/* Last, as it binds new addresses: nothing can fail after it. */
	rc = io_listeners_for(s->tc.c, snap_next_gen(), s->lfd, err, errlen);
	if (rc == -ENOTSUP) {
		free(s->lfd);
		s->lfd = NULL;
		rc = fixed_listeners(RT.cfg, s->tc.c, err, errlen);
	}
	if (rc < 0) {
		snap_discard(s);
		return rc;
	}
	log_changes(snap_current(), s);
	snap_publish(s);
	for (unsigned i = 0; i < s->n_listeners; i++) {
		const struct listener *l = &s->listeners[i];

		log_msg(LOG_INFO, "reload: generation %llu: %s proto=%s tls=%s policy=%s certs=%s",
			(unsigned long long)s->gen, l->cfg->name, l->ops->name,
			cfg_tls_name(l->cfg->tls), cfg_policy_name(l->cfg->policy),
			l->tls_available ? l->certs_desc : "-");
	}
	return 0;
}

static int finish(int rc, const char *source, char *err)
{
	struct snap *s = snap_current();

	record(rc == 0, source, err);
	notify_reloaded(rc == 0, s->gen, err);
	if (rc == 0)
		log_msg(LOG_NOTICE, "reload from %s: generation %llu is serving", source,
			(unsigned long long)s->gen);
	else
		log_msg(LOG_ERR, "reload from %s refused, generation %llu keeps serving: %s",
			source, (unsigned long long)s->gen, err);
	return rc;
}

int reload_from_disk(const char *path, char *err, size_t errlen)
{
	struct tls_conf tc;
	int rc;

	pthread_mutex_lock(&R.lock);
	notify_reloading("SIGHUP");
	err[0] = 0;
	if (!path) {
		snprintf(err, errlen, "running the embedded default configuration: there is no "
			 "file to re-read (start with -c FILE)");
		rc = -ENOENT;
	} else if ((rc = tls_conf_load_file(path, &tc, err, errlen)) == 0) {
		rc = apply(&tc, path, err, errlen);
	} else if (rc == -EACCES && geteuid() != 0) {
		size_t o = strlen(err);

		snprintf(err + o, errlen - o, " (sluice runs as uid %u after start-up: `sluicectl "
			 "reload` has sluice-control read the files)", (unsigned)geteuid());
	}
	rc = finish(rc, "SIGHUP", err);
	pthread_mutex_unlock(&R.lock);
	return rc;
}

/* The `files` object of a load request into b. */
static int files_from_json(json_t *files, struct cfg_files *b, char *err, size_t errlen)
{
	const char *path;
	json_t *f;

	if (!files)
		return 0;
	if (!json_is_object(files)) {
		snprintf(err, errlen, "load: \"files\" is not an object");
		return -EINVAL;
	}
	json_object_foreach(files, path, f) {
		json_t *d = json_object_get(f, "data");
		struct cfg_file *e;
		int rc;

		if (!json_is_string(d)) {
			snprintf(err, errlen, "load: files[\"%s\"].data is not a string", path);
			return -EINVAL;
		}
		if ((rc = cfg_files_put(b, path, json_string_value(d), json_string_length(d),
					(unsigned)ctl_int(f, "mode", 0600))) < 0)
			return rc;
		e = (struct cfg_file *)cfg_files_find(b, path);
		e->uid = (unsigned)ctl_int(f, "uid", 0);
		e->gid = (unsigned)ctl_int(f, "gid", 0);
	}
	return 0;
}

int ctl_load(json_t *req, json_t *ans, char *err, size_t errlen)
{
	const char *path = ctl_str(req, "path");
	json_t *yaml = json_object_get(req, "yaml");
	struct cfg_files b = { 0 };
	struct tls_conf tc;
	int rc;

	if (!path || !json_is_string(yaml)) {
		snprintf(err, errlen, "load: needs \"path\" and \"yaml\"");
		return -EINVAL;
	}
	pthread_mutex_lock(&R.lock);
	notify_reloading("sluice-control");
	err[0] = 0;
	if ((rc = files_from_json(json_object_get(req, "files"), &b, err, errlen)) == 0 &&
	    (rc = tls_conf_load(json_string_value(yaml), json_string_length(yaml), path, &b, &tc,
				err, errlen)) == 0)
		rc = apply(&tc, "sluice-control", err, errlen);
	cfg_files_clear(&b);
	rc = finish(rc, "sluice-control", err);
	if (rc == 0)
		json_object_set_new(ans, "generation", json_integer((json_int_t)snap_current()->gen));
	pthread_mutex_unlock(&R.lock);
	return rc;
}

unsigned reload_tick(void)
{
	unsigned left;

	pthread_mutex_lock(&R.lock);
	left = snap_reclaim();
	io_listeners_gc(snap_min_seen());
	pthread_mutex_unlock(&R.lock);
	return left;
}

struct reload_status reload_status(void)
{
	struct reload_status st;

	pthread_mutex_lock(&R.lock);
	st = R.st;
	pthread_mutex_unlock(&R.lock);
	return st;
}
