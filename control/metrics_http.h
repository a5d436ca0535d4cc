/*
 * sluice-control's Prometheus endpoint (docs/metrics.md): GET /metrics on
 * control.metrics, served by libmicrohttpd inside sluice-control's one
 * poll() loop (no thread of its own). A scrape is suspended while the
 * dataplane is asked for its families (`metrics` on the dataplane socket)
 * and resumed from that answer's callback, or after MH_DP_WAIT_MS with
 * sluice-control's own families and sluice_dataplane_up 0.
 *
 * The loop's use:
 *
 *     mh_start(ctl, &k, err)            at start (k->metrics_on false: nothing)
 *     every pass: fd = mh_pollfd() (POLLIN), t = min(t, mh_next_ms(now))
 *     after poll: mh_run(now)           (cheap: MHD_run never blocks)
 *     at exit: mh_stop()
 */
#ifndef SLUICE_CTL_METRICS_HTTP_H
#define SLUICE_CTL_METRICS_HTTP_H

#include <stddef.h>

#include "config.h"

#define MH_CONNECTIONS_MAX 32    /* connections at once; more are closed at accept */
#define MH_IDLE_TIMEOUT_S  5     /* a connection silent this long is closed */
#define MH_MEMORY_MAX      (32u << 10) /* per connection: a request larger is refused */
#define MH_DP_WAIT_MS      3000  /* the dataplane's answer to a scrape */

struct ctl;

/* Bind k->metrics_addr and start serving. 0 (also when metrics is off),
 * or -errno with the reason in err. */
int mh_start(struct ctl *ctl, const struct cfg_control *k, char *err, size_t errlen);
/* Answer every scrape still waiting, close every connection. */
void mh_stop(void);
/* The fd to poll for POLLIN (libmicrohttpd's epoll set), or -1. */
int mh_pollfd(void);
/* Ms until mh_run has something to do without a poll event. */
long long mh_next_ms(long long now_ms);
/* Time out scrapes that waited too long, and let libmicrohttpd run. */
void mh_run(long long now_ms);

#endif
