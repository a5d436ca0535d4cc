/*
 * sluice-control's link to the dataplane's socket (control.dataplane_socket,
 * docs/control.md): one connection, made again every second while the
 * dataplane is absent. Requests queue and go one at a time (the dataplane
 * answers in order); each has a callback that gets the answer, or NULL when
 * the link was lost or the answer did not come in time.
 */
#ifndef SLUICE_CTL_DP_H
#define SLUICE_CTL_DP_H

#include <stdbool.h>

#include <jansson.h>

#include "jline.h"

struct dp;
/* The answer (borrowed: incref to keep), or NULL: no answer (why says). */
typedef void dp_cb(struct dp *dp, void *arg, json_t *answer, const char *why);

struct dp_req {
	struct dp_req *next;
	json_t *req;
	unsigned timeout_s;
	dp_cb *cb;
	void *arg;
	bool secret;              /* holds keys: wiped when freed */
};

struct dp {
	char *path;               /* the dataplane's socket */
	struct jline j;           /* fd -1: not connected */
	bool attached;            /* connected and its status answered */
	long long pid, generation; /* from the status at attach */
	long long next_try_ms;    /* when to connect again */
	bool said_absent;         /* "cannot connect" logged once per absence */
	struct dp_req *head, *tail; /* head is on the wire when sent */
	bool sent;                /* head has been queued to the socket */
	long long deadline_ms;    /* for head's answer */
	void (*on_attach)(struct dp *dp, void *arg); /* after each attach */
	void *on_attach_arg;
};

void dp_init(struct dp *dp, const char *path);
void dp_fini(struct dp *dp);
/* Queue req (stolen). The callback always runs, later, exactly once. */
void dp_request(struct dp *dp, json_t *req, unsigned timeout_s, dp_cb *cb, void *arg);
/* The same for a request that carries key material (load, tickets): its
 * strings are wiped when it is freed. */
void dp_request_secret(struct dp *dp, json_t *req, unsigned timeout_s, dp_cb *cb, void *arg);
/* Connect when due, send, time out: call every loop pass. */
void dp_tick(struct dp *dp, long long now_ms);
/* The fd to poll and its events, or -1. */
int dp_pollfd(const struct dp *dp, short *events);
void dp_ready(struct dp *dp, short revents, long long now_ms);
/* Ms until dp_tick has something to do (for poll's timeout). */
long long dp_next_ms(const struct dp *dp, long long now_ms);

#endif
