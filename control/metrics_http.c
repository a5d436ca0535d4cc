/* sluice-control's Prometheus endpoint (metrics_http.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "clog.h"
#include "ctl.h"
#include "metrics_http.h"
#include "metrics_own.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define LISTEN_BACKLOG 64

/* One GET /metrics: suspended by the handler's first call until the
 * dataplane answers (or MH_DP_WAIT_MS passed), then answered by the call
 * that follows the resume. */
struct scrape {
	struct scrape *next, **pprev; /* in S.waiting while suspended */
	struct MHD_Connection *conn;
	long long deadline_ms;
	bool done;                /* answer now */
	json_t *dp;               /* the dataplane's answer (a reference) or NULL */
};

static struct {
	struct MHD_Daemon *d;
	struct ctl *ctl;
	int fd;                   /* libmicrohttpd's epoll set */
	struct scrape *waiting;
	/* The one `metrics` request out at the dataplane (0: none): scrapes
	 * that come while it is out wait for the same answer, so that any
	 * number of scrapers puts one request at a time on the link. */
	unsigned long long ask, asks;
} S = { .fd = -1 };

static void unlink_scrape(struct scrape *s)
{
	if (!s->pprev)
		return;
	*s->pprev = s->next;
	if (s->next)
		s->next->pprev = s->pprev;
	s->next = NULL;
	s->pprev = NULL;
}

/* Answer s from the handler's next call: with a (the dataplane's answer)
 * when it holds text, else with sluice-control's own families alone. */
static void resume(struct scrape *s, json_t *a)
{
	unlink_scrape(s);
	if (a && json_is_true(json_object_get(a, "ok")) &&
	    json_is_string(json_object_get(a, "text")))
		s->dp = json_incref(a);
	s->done = true;
	MHD_resume_connection(s->conn);
}

static void dp_answer(struct dp *dp, void *arg, json_t *a, const char *why)
{
	(void)dp;
	(void)why;
	/* An answer to a request of before mh_stop, or after a restart of
	 * the server: nobody waits for it. */
	if (!S.d || S.ask != (unsigned long long)(uintptr_t)arg)
		return;
	S.ask = 0;
	while (S.waiting)
		resume(S.waiting, a);
}

static enum MHD_Result simple(struct MHD_Connection *conn, unsigned status, const char *body)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* The dataplane's text, then sluice-control's own families. */
static enum MHD_Result answer(struct MHD_Connection *conn, struct scrape *s)
{
	const char *t = s->dp ? json_string_value(json_object_get(s->dp, "text")) : NULL;
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *buf = NULL;
	size_t len = 0, tl;
	FILE *f;

	if (!(f = open_memstream(&buf, &len)))
		return MHD_NO;
	if (t && (tl = strlen(t))) {
		fwrite(t, 1, tl, f);
		if (t[tl - 1] != '\n')
			fputc('\n', f);
	}
	metrics_own_write(f, S.ctl, t != NULL);
	if (fclose(f)) {
		free(buf);
		return MHD_NO;
	}
	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct scrape *s = *con_cls;
	unsigned long long n;

	(void)cls;
	(void)version;
	(void)upload;
	*upload_size = 0;       /* a body is never read: dropped */
	if (s)
		return s->done ? answer(conn, s) : MHD_YES;
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return simple(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (strcmp(url, "/metrics"))
		return simple(conn, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
	if (!(s = calloc(1, sizeof(*s))))
		return MHD_NO;
	*con_cls = s;
	s->conn = conn;
	if (!S.ctl->dp.attached) {
		s->done = true;
		return answer(conn, s);
	}
	s->deadline_ms = S.ctl->now_ms + MH_DP_WAIT_MS;
	s->next = S.waiting;
	if (S.waiting)
		S.waiting->pprev = &s->next;
	s->pprev = &S.waiting;
	S.waiting = s;
	/* Suspended first: the callback may run at once (out of memory). */
	MHD_suspend_connection(conn);
	if (!S.ask) {
		json_t *req = json_pack("{s:s}", "cmd", "metrics");

		S.ask = n = ++S.asks;
		if (req)
			dp_request(&S.ctl->dp, req, DP_TIMEOUT_S, dp_answer, (void *)(uintptr_t)n);
		else
			dp_answer(&S.ctl->dp, (void *)(uintptr_t)n, NULL, "out of memory");
	}
	return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct scrape *s = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!s)
		return;
	unlink_scrape(s);
	json_decref(s->dp);
	free(s);
	*con_cls = NULL;
}

/* The listening socket, made here so that a failure says why. */
static int listen_on(const struct cfg_control *k, char *err, size_t errlen)
{
	int fd, one = 1, rc;

	fd = socket(k->metrics_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* A restart right after a stop finds the port in TIME_WAIT. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (k->metrics_addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&k->metrics_addr, k->metrics_len) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	return fd;
fail:
	rc = -errno;
	snprintf(err, errlen, "control.metrics %s: %s", k->metrics, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

int mh_start(struct ctl *ctl, const struct cfg_control *k, char *err, size_t errlen)
{
	const union MHD_DaemonInfo *di;
	int fd;

	S.ctl = ctl;
	if (!k->metrics_on)
		return 0;
	if ((fd = listen_on(k, err, errlen)) < 0)
		return fd;
	/* No thread of its own: epoll, run from the loop. */
	S.d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
			       handler, NULL,
			       MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
			       MHD_OPTION_CONNECTION_LIMIT, (unsigned)MH_CONNECTIONS_MAX,
			       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)MH_IDLE_TIMEOUT_S,
			       MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MH_MEMORY_MAX,
			       MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
			       MHD_OPTION_END);
	if (!S.d) {
		close(fd);
		snprintf(err, errlen, "control.metrics %s: libmicrohttpd would not start",
			 k->metrics);
		return -EIO;
	}
	if (!(di = MHD_get_daemon_info(S.d, MHD_DAEMON_INFO_EPOLL_FD)) || di->epoll_fd < 0) {
		mh_stop();
		snprintf(err, errlen, "control.metrics %s: libmicrohttpd has no epoll set",
			 k->metrics);
		return -EIO;
	}
	S.fd = di->epoll_fd;
	ctl_log(LOG_INFO, "metrics: serving http://%s/metrics", k->metrics);
	return 0;
}

void mh_stop(void)
{
	if (!S.d)
		return;
	S.ask = 0;
	while (S.waiting)
		resume(S.waiting, NULL);
	MHD_run(S.d);           /* the resumed leave the suspended list */
	MHD_stop_daemon(S.d);   /* closes the listening socket too */
	S.d = NULL;
	S.fd = -1;
}

int mh_pollfd(void)
{
	return S.fd;
}

long long mh_next_ms(long long now_ms)
{
	MHD_UNSIGNED_LONG_LONG to;
	long long t = 1000;

	if (!S.d)
		return t;
	if (MHD_get_timeout(S.d, &to) == MHD_YES && (long long)to < t)
		t = (long long)to;
	for (const struct scrape *s = S.waiting; s; s = s->next)
		if (s->deadline_ms - now_ms < t)
			t = s->deadline_ms - now_ms;
	return t < 0 ? 0 : t;
}

void mh_run(long long now_ms)
{
	struct scrape *s, *next;

	if (!S.d)
		return;
	for (s = S.waiting; s; s = next) {
		next = s->next;
		if (now_ms >= s->deadline_ms)
			resume(s, NULL);
	}
	MHD_run(S.d);
}
