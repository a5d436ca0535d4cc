/* The admin socket (admin.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "clog.h"
#include "peer.h"

/* The verbs' requests: cmd -> handler (verbs.def; a cmd shared by several
 * verbs, such as check, is found once). */
static const struct {
	const char *cmd;
	json_t *(*fn)(struct ctl *, struct adm_client *, json_t *);
} handlers[] = {
#define V(id, words, cmd, handler, printer, args, help) { cmd, handler },
#include "verbs.def"
#undef V
};

/* mkdir -p of dir's parents (0755), then dir itself 0750. */
static int make_dir(const char *dir)
{
	char p[PATH_MAX];
	size_t n = strlen(dir);

	if (n >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, dir, n + 1);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int adm_listen(struct ctl *ctl, const struct cfg_control *k, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[PATH_MAX];
	const char *folder;
	struct stat st;
	struct group *g = NULL;
	mode_t old;
	int fd, rc;

	ctl->listen_fd = -1;
	if (strlen(k->socket) >= sizeof(sa.sun_path) || strlen(k->socket) >= sizeof(dir)) {
		snprintf(err, errlen, "control.socket %s: path too long", k->socket);
		return -ENAMETOOLONG;
	}
	if (k->admin_group && !(g = getgrnam(k->admin_group))) {
		snprintf(err, errlen, "control.admin_group: no such group '%s'", k->admin_group);
		return -ENOENT;
	}
	strcpy(sa.sun_path, k->socket);
	strcpy(dir, k->socket);
	folder = dirname(dir);
	if ((rc = make_dir(folder)) < 0) {
		snprintf(err, errlen, "control.socket: cannot make the folder of %s: %s", k->socket,
			 strerror(-rc));
		return rc;
	}
	/* A folder anyone may write lets anyone serve a socket there that
	 * sluicectl would take for sluice-control's. */
	if (stat(folder, &st) == 0 && (st.st_mode & S_IWOTH)) {
		snprintf(err, errlen, "control.socket: %s is writable by every user (mode %04o): "
			 "chmod o-w %s (as packaged: 0750 root:sluice-admin)", folder,
			 (unsigned)(st.st_mode & 07777), folder);
		return -EPERM;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto sys;
	/* A socket file left by a sluice-control that died: replaced. One
	 * that answers belongs to a running one: not stolen. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN) {
		snprintf(err, errlen, "control.socket %s: another sluice-control is serving it",
			 k->socket);
		close(fd);
		return -EADDRINUSE;
	}
	close(fd);
	(void)unlink(k->socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto sys;
	old = umask(0177);      /* never reachable by others, not even for a moment */
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0)
		goto sys_fd;
	if (g && (chown(k->socket, (uid_t)-1, g->gr_gid) < 0 || chmod(k->socket, 0660) < 0))
		goto sys_fd;
	if (listen(fd, 64) < 0)
		goto sys_fd;
	ctl->listen_fd = fd;
	ctl->socket_path = strdup(k->socket);
	for (unsigned i = 0; i < ADM_CLIENTS_MAX; i++)
		ctl->cl[i].j.fd = -1;
	ctl_log(LOG_INFO, "admin socket %s (mode %s)", k->socket,
	     g ? "0660, group admin_group" : "0600, root only");
	return 0;
sys_fd:
	rc = -errno;
	close(fd);
	snprintf(err, errlen, "control.socket %s: %s", k->socket, strerror(-rc));
	return rc;
sys:
	rc = -errno;
	snprintf(err, errlen, "control.socket %s: %s", k->socket, strerror(-rc));
	return rc;
}

static void drop(struct adm_client *c)
{
	jline_close(&c->j);
	c->id = 0;
}

void adm_close(struct ctl *ctl)
{
	for (unsigned i = 0; i < ADM_CLIENTS_MAX; i++)
		if (ctl->cl[i].j.fd >= 0)
			drop(&ctl->cl[i]);
	if (ctl->listen_fd >= 0) {
		close(ctl->listen_fd);
		ctl->listen_fd = -1;
		(void)unlink(ctl->socket_path);
	}
	free(ctl->socket_path);
	ctl->socket_path = NULL;
}

static struct adm_client *find(struct ctl *ctl, unsigned long long id)
{
	for (unsigned i = 0; id && i < ADM_CLIENTS_MAX; i++)
		if (ctl->cl[i].j.fd >= 0 && ctl->cl[i].id == id)
			return &ctl->cl[i];
	return NULL;
}

/* Queue a to c and write what the socket takes now. */
static void send_to(struct ctl *ctl, struct adm_client *c, const json_t *a)
{
	if (jline_queue(&c->j, a, ADM_OUT_MAX) < 0) {
		ctl_log(LOG_WARNING, "admin client %s: answer dropped (too large or reader too slow)",
		     c->who);
		drop(c);
		return;
	}
	c->deadline_ms = ctl->now_ms + ADM_TIMEOUT_MS;
	if (jline_flush(&c->j) < 0)
		drop(c);
	else if (c->closing && !jline_pending(&c->j))
		drop(c);
}

struct adm_later *adm_later(struct ctl *ctl, const struct adm_client *c)
{
	struct adm_later *l = malloc(sizeof(*l));

	if (l) {
		l->ctl = ctl;
		l->client = c ? c->id : 0;
	}
	return l;
}

static void serve_lines(struct ctl *ctl, struct adm_client *c);

void adm_answer(struct ctl *ctl, unsigned long long client, json_t *a)
{
	struct adm_client *c = find(ctl, client);

	if (!c)
		return;         /* gone meanwhile: the change stands, nobody to tell */
	c->waiting = false;
	send_to(ctl, c, a);
	if (c->j.fd >= 0)
		serve_lines(ctl, c);    /* a request that waited behind this one */
}

/* Run one request; answer now unless the handler answers later. */
static void dispatch(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	json_t *a = NULL;
	unsigned i;

	if (!cmd) {
		a = jline_error("no \"cmd\" in the request");
	} else {
		for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
			if (!strcmp(handlers[i].cmd, cmd))
				break;
		if (i == sizeof(handlers) / sizeof(handlers[0])) {
			a = jline_error("unknown cmd \"%s\"", cmd);
		} else {
			c->waiting = true;
			a = handlers[i].fn(ctl, c, req);
			if (!a)
				return; /* later, through adm_answer */
			c->waiting = false;
		}
	}
	send_to(ctl, c, a);
	json_decref(a);
}

/* Every whole line buffered, one request at a time. */
static void serve_lines(struct ctl *ctl, struct adm_client *c)
{
	char err[256];
	json_t *req;
	int rc;

	while (c->j.fd >= 0 && !c->waiting && !c->closing) {
		unsigned long long id = c->id;

		rc = jline_next(&c->j, &req, err, sizeof(err));
		if (rc == 0)
			break;
		if (rc < 0) {
			json_t *a = jline_error("%s", err);

			send_to(ctl, c, a);
			json_decref(a);
			continue;
		}
		dispatch(ctl, c, req);
		json_decref(req);
		if (c->id != id)
			break;  /* dropped */
	}
	if (c->j.fd >= 0 && c->j.eof && !c->waiting && !jline_pending(&c->j))
		drop(c);
}

static void accept_one(struct ctl *ctl, const char *admin_group)
{
	struct adm_client *c = NULL;
	char why[256];
	uid_t uid;
	pid_t pid;
	int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	for (unsigned i = 0; i < ADM_CLIENTS_MAX && !c; i++)
		if (ctl->cl[i].j.fd < 0)
			c = &ctl->cl[i];
	if (!c) {
		static const char busy[] = "{\"ok\":false,\"error\":\"too many admin clients\"}\n";

		(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		ctl_log(LOG_WARNING, "admin socket: a client refused: %d already connected",
		     ADM_CLIENTS_MAX);
		return;
	}
	jline_init(&c->j, fd);
	c->id = ++ctl->next_id;
	c->waiting = c->closing = false;
	c->deadline_ms = ctl->now_ms + ADM_TIMEOUT_MS;
	if (!peer_allowed(fd, admin_group, &uid, &pid, why, sizeof(why))) {
		json_t *a = jline_error("%s", why);

		snprintf(c->who, sizeof(c->who), "uid %d pid %d", (int)uid, (int)pid);
		ctl_log(LOG_WARNING, "admin socket: refused %s: %s", c->who, why);
		c->closing = true;
		send_to(ctl, c, a);
		json_decref(a);
		return;
	}
	snprintf(c->who, sizeof(c->who), "uid %d pid %d", (int)uid, (int)pid);
}

unsigned adm_pollfds(struct ctl *ctl, struct pollfd *pfd, unsigned long long *ids)
{
	unsigned n = 0;

	pfd[n] = (struct pollfd){ .fd = ctl->listen_fd, .events = POLLIN };
	ids[n++] = 0;
	for (unsigned i = 0; i < ADM_CLIENTS_MAX; i++) {
		struct adm_client *c = &ctl->cl[i];
		short ev = 0;

		if (c->j.fd < 0)
			continue;
		/* No reading while a request is out: bounded input, and
		 * requests answered in order. */
		if (!c->waiting && !c->closing && !c->j.eof)
			ev |= POLLIN;
		if (jline_pending(&c->j))
			ev |= POLLOUT;
		pfd[n] = (struct pollfd){ .fd = c->j.fd, .events = ev };
		ids[n++] = c->id;
	}
	return n;
}

void adm_ready(struct ctl *ctl, unsigned long long id, short revents, const char *admin_group)
{
	struct adm_client *c;
	ssize_t r;

	if (!id) {
		if (revents & POLLIN)
			for (int k = 0; k < 16; k++)
				accept_one(ctl, admin_group);
		return;
	}
	if (!(c = find(ctl, id)))
		return;
	if (revents & POLLOUT) {
		int rc = jline_flush(&c->j);

		if (rc < 0 || (rc == 1 && c->closing)) {
			drop(c);
			return;
		}
		c->deadline_ms = ctl->now_ms + ADM_TIMEOUT_MS;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR) && !c->waiting && !c->closing) {
		r = jline_read(&c->j);
		if (r < 0 && r != -EPIPE) {
			drop(c);
			return;
		}
		if (r > 0)
			c->deadline_ms = ctl->now_ms + ADM_TIMEOUT_MS;
		serve_lines(ctl, c);
	} else if (revents & (POLLHUP | POLLERR)) {
		/* Gone (even with a request out: its answer finds no one); poll
		 * would report the hang-up again and again otherwise. */
		drop(c);
	}
}

void adm_tick(struct ctl *ctl)
{
	for (unsigned i = 0; i < ADM_CLIENTS_MAX; i++) {
		struct adm_client *c = &ctl->cl[i];

		/* A request out to the dataplane has its own timeout there. */
		if (c->j.fd >= 0 && !c->waiting && ctl->now_ms >= c->deadline_ms) {
			ctl_log(LOG_INFO, "admin client %s: dropped after %d s without progress",
			     c->who, ADM_TIMEOUT_MS / 1000);
			drop(c);
		}
	}
}

long long adm_next_ms(const struct ctl *ctl)
{
	long long t = ADM_TIMEOUT_MS;

	for (unsigned i = 0; i < ADM_CLIENTS_MAX; i++) {
		const struct adm_client *c = &ctl->cl[i];

		if (c->j.fd >= 0 && !c->waiting && c->deadline_ms - ctl->now_ms < t)
			t = c->deadline_ms - ctl->now_ms;
	}
	return t < 0 ? 0 : t;
}
