/* The link to the dataplane's socket (dp.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clog.h"
#include "dp.h"

#define DP_RETRY_MS 1000
#define DP_OUT_MAX  (64u << 20)  /* a load carries every certificate */

static void attach_answer(struct dp *dp, void *arg, json_t *a, const char *why);

void dp_init(struct dp *dp, const char *path)
{
	memset(dp, 0, sizeof(*dp));
	dp->path = strdup(path);
	dp->j.fd = -1;
}

/* Pop the head and answer it (a == NULL: why). */
static void finish_head(struct dp *dp, json_t *a, const char *why)
{
	struct dp_req *r = dp->head;

	if (!r)
		return;
	dp->head = r->next;
	if (!dp->head)
		dp->tail = NULL;
	dp->sent = false;
	r->cb(dp, r->arg, a, why);
	if (r->secret)
		jline_free_secret(r->req);
	else
		json_decref(r->req);
	free(r);
}

/* The connection is gone: every request still queued fails (a reload must
 * not wait silently for a dataplane that may not come back). */
static void lost(struct dp *dp, const char *why)
{
	bool was = dp->attached;

	jline_close(&dp->j);
	dp->attached = false;
	if (was)
		ctl_log(LOG_WARNING, "lost the dataplane (pid %lld): %s; connecting again every "
		     "second", dp->pid, why);
	while (dp->head)
		finish_head(dp, NULL, "the dataplane is not attached");
}

void dp_fini(struct dp *dp)
{
	dp->attached = false;   /* stopping: nothing to say about the link */
	lost(dp, "stopping");
	free(dp->path);
	dp->path = NULL;
}

static void request(struct dp *dp, json_t *req, unsigned timeout_s, dp_cb *cb, void *arg,
		    bool secret)
{
	struct dp_req *r = calloc(1, sizeof(*r));

	if (!r) {
		if (secret)
			jline_free_secret(req);
		else
			json_decref(req);
		cb(dp, arg, NULL, "out of memory");
		return;
	}
	r->secret = secret;
	r->req = req;
	r->timeout_s = timeout_s;
	r->cb = cb;
	r->arg = arg;
	if (dp->tail)
		dp->tail->next = r;
	else
		dp->head = r;
	dp->tail = r;
}

void dp_request(struct dp *dp, json_t *req, unsigned timeout_s, dp_cb *cb, void *arg)
{
	request(dp, req, timeout_s, cb, arg, false);
}

void dp_request_secret(struct dp *dp, json_t *req, unsigned timeout_s, dp_cb *cb, void *arg)
{
	request(dp, req, timeout_s, cb, arg, true);
}

/* Connect now (UNIX sockets connect at once or not at all). */
static void try_connect(struct dp *dp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(dp->path) >= sizeof(sa.sun_path)) {
		if (!dp->said_absent)
			ctl_log(LOG_ERR, "control.dataplane_socket %s: path too long", dp->path);
		dp->said_absent = true;
		return;
	}
	strcpy(sa.sun_path, dp->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		if (!dp->said_absent)
			ctl_log(LOG_INFO, "cannot connect to the dataplane at %s: %s; trying every "
			     "second", dp->path, strerror(errno));
		dp->said_absent = true;
		close(fd);
		return;
	}
	dp->said_absent = false;
	jline_init(&dp->j, fd);
	/* Who is there: the first request on every connection, ahead of
	 * whatever waited. */
	{
		struct dp_req *r = calloc(1, sizeof(*r));

		if (!r) {
			lost(dp, "out of memory");
			return;
		}
		r->req = json_pack("{s:s}", "cmd", "status");
		r->timeout_s = 10;
		r->cb = attach_answer;
		r->next = dp->head;
		dp->head = r;
		if (!dp->tail)
			dp->tail = r;
		dp->sent = false;
	}
}

static void attach_answer(struct dp *dp, void *arg, json_t *a, const char *why)
{
	if (!a)
		return;         /* lost(): already said */
	if (!json_is_true(json_object_get(a, "ok"))) {
		ctl_log(LOG_WARNING, "the dataplane at %s answered status with an error: %s", dp->path,
		     json_string_value(json_object_get(a, "error")) ?: "?");
		return;
	}
	dp->pid = json_integer_value(json_object_get(a, "pid"));
	dp->generation = json_integer_value(json_object_get(a, "generation"));
	dp->attached = true;
	ctl_log(LOG_INFO, "attached to dataplane pid %lld generation %lld at %s", dp->pid,
	     dp->generation, dp->path);
	if (dp->on_attach)
		dp->on_attach(dp, dp->on_attach_arg);
}

void dp_tick(struct dp *dp, long long now_ms)
{
	if (dp->j.fd < 0) {
		/* Nothing to send to: fail requests at once rather than hold a
		 * sluicectl until the dataplane comes back. */
		while (dp->head)
			finish_head(dp, NULL, "the dataplane is not attached");
		if (now_ms >= dp->next_try_ms) {
			dp->next_try_ms = now_ms + DP_RETRY_MS;
			try_connect(dp);
		}
		if (dp->j.fd < 0)
			return;
	}
	if (dp->head && !dp->sent) {
		if (jline_queue(&dp->j, dp->head->req, DP_OUT_MAX) < 0) {
			finish_head(dp, NULL, "request too large or out of memory");
			return;
		}
		dp->sent = true;
		dp->deadline_ms = now_ms + 1000LL * dp->head->timeout_s;
	}
	if (jline_pending(&dp->j) && jline_flush(&dp->j) < 0) {
		lost(dp, strerror(errno));
		return;
	}
	if (dp->sent && now_ms >= dp->deadline_ms) {
		char why[64];

		snprintf(why, sizeof(why), "no answer in %u s", dp->head->timeout_s);
		/* An answer may still come: only a new connection keeps
		 * answers and requests paired. */
		finish_head(dp, NULL, why);
		lost(dp, why);
		dp->next_try_ms = now_ms;
	}
}

int dp_pollfd(const struct dp *dp, short *events)
{
	if (dp->j.fd < 0)
		return -1;
	*events = POLLIN | (jline_pending(&dp->j) ? POLLOUT : 0);
	return dp->j.fd;
}

long long dp_next_ms(const struct dp *dp, long long now_ms)
{
	long long t = DP_RETRY_MS;

	if (dp->j.fd < 0)
		t = dp->next_try_ms - now_ms;
	else if (dp->sent)
		t = dp->deadline_ms - now_ms;
	else if (dp->head)
		t = 0;
	return t < 0 ? 0 : t;
}

void dp_ready(struct dp *dp, short revents, long long now_ms)
{
	char err[256];
	json_t *a;
	ssize_t r;
	int rc;

	if (revents & POLLOUT && jline_flush(&dp->j) < 0) {
		lost(dp, strerror(errno));
		return;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	r = jline_read(&dp->j);
	while ((rc = jline_next(&dp->j, &a, err, sizeof(err))) != 0) {
		if (rc < 0) {
			lost(dp, err);
			return;
		}
		if (!dp->sent) {
			json_decref(a);
			lost(dp, "an answer to no request");
			return;
		}
		finish_head(dp, a, NULL);
		json_decref(a);
		if (dp->j.fd < 0)
			return;
	}
	if (r < 0)
		lost(dp, r == -EPIPE ? "it closed the connection" : strerror((int)-r));
	else
		dp_tick(dp, now_ms);
}
