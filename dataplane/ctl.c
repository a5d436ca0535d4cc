/*
 * The dataplane's control socket (ctl.h). One thread, poll() over the
 * listening socket and at most CTL_CLIENTS clients, every socket
 * non-blocking: a client that sends half a line or stops reading holds
 * only its own buffers, and is dropped after CTL_IDLE_MS without progress.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "log.h"
#include "wipe.h"

#define CTL_CLIENTS   8
#define CTL_LINE_MAX  (16u << 20)  /* a load carries certificates: 16 MiB */
#define CTL_IDLE_MS   5000

struct ctl_client {
	int fd;
	char *in;            /* bytes read, up to a newline */
	size_t in_len, in_cap;
	char *out;           /* answers not yet sent */
	size_t out_len, out_off;
	uint64_t last_ms;    /* last progress */
	uid_t uid;
	bool eof;            /* the client closed its side: answer, then close */
};

static struct {
	int lfd;
	char path[108];
	pthread_t thread;
	bool running;
	_Atomic bool stop;
	void (*tick)(void);
	struct ctl_client cl[CTL_CLIENTS];
} CTL = { .lfd = -1 };

static const struct {
	const char *name;
	ctl_handler *fn;
} ctl_cmds[] = {
#define CMD(name, fn, help) { #name, fn },
#include "ctl_cmds.def"
#undef CMD
};

long long ctl_int(const json_t *req, const char *key, long long def)
{
	json_t *v = json_object_get(req, key);

	return json_is_integer(v) ? json_integer_value(v) : json_is_real(v) ? (long long)json_real_value(v) : def;
}

int ctl_bool(const json_t *req, const char *key, int def)
{
	json_t *v = json_object_get(req, key);

	return json_is_boolean(v) ? json_is_true(v) : def;
}

const char *ctl_str(const json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

static void client_drop(struct ctl_client *c, const char *why)
{
	if (why)
		log_msg(LOG_INFO, "control: client uid %u dropped: %s", (unsigned)c->uid, why);
	close(c->fd);
	wipe_free(c->in);    /* a tickets request carried keys */
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Queue one answer line; false when out of memory. */
static bool client_queue(struct ctl_client *c, json_t *ans)
{
	char *s = json_dumps(ans, JSON_COMPACT);
	size_t n = s ? strlen(s) : 0;
	char *o;

	if (!s)
		return false;
	if (c->out_off == c->out_len)
		c->out_len = c->out_off = 0;
	o = realloc(c->out, c->out_len + n + 1);
	if (!o) {
		free(s);
		return false;
	}
	c->out = o;
	memcpy(c->out + c->out_len, s, n);
	c->out[c->out_len + n] = '\n';
	c->out_len += n + 1;
	free(s);
	return true;
}

/* One request line: run its command, queue the answer. */
static bool client_request(struct ctl_client *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(line, len, 0, &jerr);
	json_t *ans = json_object();
	char err[2048] = "";
	const char *cmd = NULL;
	int rc = -EINVAL;
	bool ok;

	if (!ans) {
		json_decref(req);
		return false;
	}
	if (!req || !json_is_object(req))
		snprintf(err, sizeof(err), "not a JSON object: %s", req ? "" : jerr.text);
	else if (!(cmd = ctl_str(req, "cmd")))
		snprintf(err, sizeof(err), "no \"cmd\"");
	else {
		size_t i;

		for (i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
			if (!strcmp(ctl_cmds[i].name, cmd))
				break;
		if (i == sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))
			snprintf(err, sizeof(err), "unknown command '%.64s'", cmd);
		else if ((rc = ctl_cmds[i].fn(req, ans, err, sizeof(err))) < 0 && !err[0])
			snprintf(err, sizeof(err), "%s", strerror(-rc));
	}
	if (rc < 0) {
		json_object_clear(ans);
		json_object_set_new(ans, "ok", json_false());
		json_object_set_new(ans, "error", json_string(err));
	} else {
		json_object_set_new(ans, "ok", json_true());
	}
	ok = client_queue(c, ans);
	json_decref(ans);
	json_decref(req);
	return ok;
}

static void client_read(struct ctl_client *c, uint64_t now)
{
	for (;;) {
		ssize_t r;
		char *nl;

		if (c->in_cap - c->in_len < 65536) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 65536;
			char *p;

			if (cap > CTL_LINE_MAX + 65536) {
				client_drop(c, "request line too long");
				return;
			}
			p = c->in;
			if (wipe_grow(&p, c->in_len, cap) < 0) {
				client_drop(c, "out of memory");
				return;
			}
			c->in = p;
			c->in_cap = cap;
		}
		r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			break;
		if (r < 0) {
			client_drop(c, NULL);
			return;
		}
		if (r == 0) {
			c->eof = true;
			break;
		}
		c->in_len += (size_t)r;
		c->last_ms = now;
		while ((nl = memchr(c->in, '\n', c->in_len))) {
			size_t n = (size_t)(nl - c->in);

			if (!client_request(c, c->in, n)) {
				client_drop(c, "out of memory");
				return;
			}
			memmove(c->in, nl + 1, c->in_len - n - 1);
			c->in_len -= n + 1;
			/* The line handled (maybe a tickets push): no copy left. */
			explicit_bzero(c->in + c->in_len, n + 1);
		}
		if (c->in_len > CTL_LINE_MAX) {
			client_drop(c, "request line too long");
			return;
		}
	}
}

static void client_write(struct ctl_client *c, uint64_t now)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0) {
			client_drop(c, NULL);
			return;
		}
		c->out_off += (size_t)w;
		c->last_ms = now;
	}
}

static void ctl_accept(uint64_t now)
{
	for (;;) {
		int fd = accept4(CTL.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ucred cr;
		socklen_t crl = sizeof(cr);
		unsigned i;

		if (fd < 0)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 ||
		    (cr.uid != 0 && cr.uid != geteuid())) {
			log_msg(LOG_WARNING, "control: refused a client with uid %d: only root",
				crl == sizeof(cr) ? (int)cr.uid : -1);
			close(fd);
			continue;
		}
		for (i = 0; i < CTL_CLIENTS && CTL.cl[i].fd >= 0; i++)
			;
		if (i == CTL_CLIENTS) {
			static const char busy[] = "{\"ok\":false,\"error\":\"too many control clients\"}\n";

			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		CTL.cl[i].fd = fd;
		CTL.cl[i].uid = cr.uid;
		CTL.cl[i].last_ms = now;
	}
}

static void *ctl_main(void *arg)
{
	uint64_t last_tick = 0;

	(void)arg;
	while (!atomic_load(&CTL.stop)) {
		struct pollfd p[CTL_CLIENTS + 1];
		struct ctl_client *who[CTL_CLIENTS + 1];
		unsigned n = 0;
		uint64_t now;

		p[n] = (struct pollfd){ .fd = CTL.lfd, .events = POLLIN };
		who[n++] = NULL;
		for (unsigned i = 0; i < CTL_CLIENTS; i++) {
			struct ctl_client *c = &CTL.cl[i];

			if (c->fd < 0)
				continue;
			p[n] = (struct pollfd){ .fd = c->fd, .events = (c->eof ? 0 : POLLIN) |
				(c->out_off < c->out_len ? POLLOUT : 0) };
			who[n++] = c;
		}
		(void)poll(p, n, 200);
		now = clock_mono_ms();
		if (p[0].revents & POLLIN)
			ctl_accept(now);
		for (unsigned i = 1; i < n; i++) {
			struct ctl_client *c = who[i];

			if (c->fd >= 0 && !c->eof && (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				client_read(c, now);
			if (c->fd >= 0 && c->out_off < c->out_len)
				client_write(c, now);
			if (c->fd >= 0 && c->eof && c->out_off == c->out_len)
				client_drop(c, NULL);
			if (c->fd >= 0 && (c->in_len || c->out_off < c->out_len) &&
			    now - c->last_ms > CTL_IDLE_MS)
				client_drop(c, "no progress for 5 s");
		}
		if (now - last_tick >= 1000) {
			last_tick = now;
			if (CTL.tick)
				CTL.tick();
		}
	}
	return NULL;
}

/* Make the socket's folder (0750) if missing; a stale socket at path (no
 * process listens) is removed, a live one is an error. */
static int ctl_prepare(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(CTL.path)];
	char *slash;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) && slash != dir) {
		struct stat st;

		*slash = 0;
		if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "control.dataplane_socket: cannot make %s: %s", dir,
				 strerror(errno));
			return -errno;
		}
		/* Anyone who may write the folder may put a socket of their own
		 * where sluice-control looks for sluice's, and be sent the
		 * certificates' keys with the next reload. */
		if (stat(dir, &st) == 0 && (st.st_mode & S_IWOTH)) {
			snprintf(err, errlen, "control.dataplane_socket: %s is writable by every "
				 "user (mode %04o): another user could serve a socket of their own "
				 "there; chmod o-w %s (as packaged: 0750 root:sluice-admin)", dir,
				 (unsigned)(st.st_mode & 07777), dir);
			return -EPERM;
		}
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		close(fd);
		snprintf(err, errlen, "control.dataplane_socket: %s: another sluice is serving it",
			 path);
		return -EADDRINUSE;
	}
	if (fd >= 0)
		close(fd);
	(void)unlink(path);
	return 0;
}

int ctl_start(const char *path, void (*tick)(void), char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	mode_t old;
	int rc;

	for (unsigned i = 0; i < CTL_CLIENTS; i++)
		CTL.cl[i].fd = -1;
	if (strlen(path) >= sizeof(a.sun_path)) {
		snprintf(err, errlen, "control.dataplane_socket: %s: longer than %zu bytes", path,
			 sizeof(a.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if ((rc = ctl_prepare(path, err, errlen)) < 0)
		return rc;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	snprintf(CTL.path, sizeof(CTL.path), "%s", path);
	CTL.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	old = umask(0177);
	rc = CTL.lfd < 0 || bind(CTL.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	     listen(CTL.lfd, 16) < 0 ? -errno : 0;
	umask(old);
	if (rc < 0) {
		snprintf(err, errlen, "control.dataplane_socket: %s: %s", path, strerror(-rc));
		if (CTL.lfd >= 0)
			close(CTL.lfd);
		CTL.lfd = -1;
		return rc;
	}
	CTL.tick = tick;
	atomic_store(&CTL.stop, false);
	if ((rc = pthread_create(&CTL.thread, NULL, ctl_main, NULL))) {
		snprintf(err, errlen, "cannot start the control thread: %s", strerror(rc));
		close(CTL.lfd);
		CTL.lfd = -1;
		return -rc;
	}
	(void)pthread_setname_np(CTL.thread, "sl-ctl");
	CTL.running = true;
	return 0;
}

void ctl_stop(void)
{
	if (!CTL.running)
		return;
	atomic_store(&CTL.stop, true);
	pthread_join(CTL.thread, NULL);
	for (unsigned i = 0; i < CTL_CLIENTS; i++)
		if (CTL.cl[i].fd >= 0)
			client_drop(&CTL.cl[i], NULL);
	close(CTL.lfd);
	CTL.lfd = -1;
	(void)unlink(CTL.path);
	CTL.running = false;
}
