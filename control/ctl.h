/*
 * sluice-control's state: one process, one thread, one poll() loop
 * (control_main.c). The admin socket's clients (admin.c), the link to the
 * dataplane (dp.c), the last good configuration (bundle.h) and the staged
 * change (stage.c) all live here.
 */
#ifndef SLUICE_CTL_CTL_H
#define SLUICE_CTL_CTL_H

#include <stdbool.h>

#include <jansson.h>

#include "bundle.h"
#include "dp.h"
#include "jline.h"

#define ADM_CLIENTS_MAX  64
#define ADM_TIMEOUT_MS   5000        /* a client that makes no progress */
#define ADM_OUT_MAX      (32u << 20) /* queued answer bytes per client */
#define DP_TIMEOUT_S     10          /* an answer from the dataplane */
#define DP_LOAD_TIMEOUT_S 120        /* a load builds every SSL_CTX */

struct adm_client {
	unsigned long long id;    /* never reused: callbacks find clients by it */
	struct jline j;
	long long deadline_ms;    /* no progress by then: dropped */
	bool waiting;             /* a request's answer is still to come */
	bool closing;             /* flush the answer, then close */
	char who[48];             /* "uid 0 pid 1234" */
};

/* A change of the configuration in flight (reload or commit): one at a time. */
enum ctl_op { CTL_OP_NONE, CTL_OP_RELOAD, CTL_OP_COMMIT };

struct ctl {
	const char *path;         /* -c FILE; NULL: the embedded default */
	struct bundle cur;        /* the last good configuration: what runs */
	struct dp dp;
	int listen_fd;
	char *socket_path;
	struct adm_client cl[ADM_CLIENTS_MAX]; /* j.fd -1: free */
	unsigned long long next_id;
	enum ctl_op op;           /* a load is out */
	struct {
		bool ok, any;
		long long time;   /* seconds since the epoch */
		char error[1280];
		unsigned long n_ok, n_failed;
		long long generation;
	} last;                   /* the last reload or commit */
	struct stage *stage;      /* NULL: nothing staged */
	long long started;        /* seconds since the epoch */
	unsigned long tickets_export_errors; /* tickets.export writes that failed */
	long long now_ms;
};

/* Who answers a request later: the client by id (it may have gone). */
struct adm_later {
	struct ctl *ctl;
	unsigned long long client;
};

/* Send answer a (not stolen) to client id, if still there. */
void adm_answer(struct ctl *ctl, unsigned long long client, json_t *a);
/* A struct adm_later for client c (NULL: out of memory). */
struct adm_later *adm_later(struct ctl *ctl, const struct adm_client *c);

/* The handlers of verbs.def: an answer (new reference) now, or NULL when
 * it will come through adm_answer. */
#define V(id, words, cmd, handler, printer, args, help) \
	json_t *handler(struct ctl *ctl, struct adm_client *c, json_t *req);
#include "verbs.def"
#undef V

/* Record the end of a reload or commit (rc 0: ok) for status. */
void ctl_record(struct ctl *ctl, bool ok, const char *error, long long generation);
/* The running configuration changed (a reload or a commit went through). */
void ctl_changed(struct ctl *ctl);
/* Session-ticket keys (ticket_push.c): at start, every loop pass, and each
 * time the dataplane is attached. */
void ctl_tickets_init(struct ctl *ctl);
void ctl_tickets_tick(struct ctl *ctl);
void ctl_tickets_attached(struct ctl *ctl);
void ctl_tickets_fini(void);
/* Reload from the file (SIGHUP, `reload`): client 0 for none. */
json_t *ctl_reload(struct ctl *ctl, unsigned long long client);

#endif
