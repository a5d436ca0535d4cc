/*
 * The proxy session: one client connection, its TLS, its backend connection
 * and the protocol engine's state. sess_run() is the one function that
 * decides all I/O for a session (in the manner of Postfix tlsproxy's
 * tlsp_strategy); every event ends in a call to it.
 */
#ifndef SLUICE_SESSION_H
#define SLUICE_SESSION_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "config.h"
#include "conn_limits.h"
#include "core.h"
#include "net/tcp_stream.h"
#include "proto/be_starttls.h"
#include "proto/linereader.h"
#include "proto/proto.h"
#include "stream.h"
#include "tls.h"

struct be_pool;
struct fdata;

/* A listener at run time; shared read-only by all cores. */
struct listener {
	const struct cfg_listener *cfg;
	unsigned idx;
	unsigned slot;              /* its counters' slot (lslot.h), by name */
	const struct proto_ops *ops;
	struct be_pool *pool;
	struct tls_certset **sets;  /* its cert sets, the default first; none
				       for tls: off */
	uint16_t *set_ids;          /* their indexes in the workers' tables */
	unsigned n_sets;
	bool tls_available;         /* certificates loaded and usable */
	char certs_desc[160];       /* "generated ecdsa-p256,rsa-2048" for logs */
};

enum sess_state {
	SS_DIALOGUE,   /* sluice answers (plaintext, or TLS before the backend) */
	SS_STARTTLS,   /* STARTTLS reply draining; nothing is read */
	SS_HANDSHAKE,  /* TLS handshake, job with a worker or waiting for bytes */
	SS_BACKEND,    /* backend connecting and being opened */
	SS_RELAY,      /* bytes both ways */
	SS_CLOSING,    /* last bytes to the client, then close */
};

struct sess {
	struct sess *next, *prev;   /* core's session list */
	struct sess *next_dead;
	struct sess *next_again;    /* core's run-again list */
	bool again;                 /* on it */
	struct core *core;
	struct snap *snap;          /* the configuration it was accepted under,
				       held to its end (snap.h) */
	const struct listener *l;   /* in snap */
	union {
		struct stream cli;          /* client connection, either stack */
		struct tcp_stream cli_native; /* room for a native one */
	};
	union {
		struct stream be;           /* backend connection, either stack */
		struct tcp_stream be_native;
	};
	struct buf cin, cout;       /* client wire bytes (ciphertext under TLS) */
	struct buf pin;             /* client plaintext after TLS, before relay */
	struct buf bin, bout;       /* backend wire bytes; its plaintext under
				       TLS to the backend */
	struct buf bcin, bcout;     /* TLS to the backend: its ciphertext */
	struct tls_io btio;         /* what the backend's BIO reads and writes */
	SSL *be_ssl;                /* TLS to the backend (backend_tls.c);
				       freed with the backend connection, or
				       when be_job comes back if it was out */
	struct tls_job be_job;      /* its handshake step, when out (be_job_out) */
	struct bst bst;             /* STARTTLS with the backend, while bst_on */
	struct tls_io tio;          /* what the BIO reads and writes: cin, cout */
	SSL *ssl;                   /* set once a handshake started; the
				       record layer after it (SSL_read/SSL_write
				       over tio); freed with the session */
	struct tls_job job;         /* the handshake job, when out */
	struct linereader lr;       /* client lines */
	struct linereader blr;      /* backend lines while opening it */
	struct proto_sess ps;
	struct timer tm;
	uint64_t id;
	uint64_t t_start, t_active; /* ms */
	uint64_t t_dialogue;        /* ms: sluice's own dialogue began (accept,
				       or the end of a handshake): timeouts.
				       plaintext_deadline counts from here */
	uint64_t bytes_in, bytes_out; /* plaintext relayed each way */
	uint64_t t_hello_us;        /* the ClientHello's first bytes came
				       (clock_mono_us): the handshake's time */
	uint8_t state;              /* enum sess_state */
	bool job_out;               /* the worker owns ssl, cin and cout */
	bool dead;                  /* closed while the job was out */
	bool want_write_first;      /* handshake: flush cout before posting */
	bool c2b;                   /* client -> backend is a raw relay */
	bool b2c;                   /* backend -> client is a raw relay */
	bool tls;                   /* handshake completed */
	bool starttls;              /* TLS came through STARTTLS */
	bool tls_close_sent;        /* our close_notify is in cout (or given up) */
	bool tls_in_done;           /* SSL_read saw close_notify or EOF */
	bool tls_failed;            /* fatal TLS error: its alert (if any) goes
				       out, no close_notify, no more records */
	bool tls_read_blocked;      /* SSL_read wanted to write (an answer to a
				       KeyUpdate): call it again when cout drained */
	bool greet_held;            /* greeting held back (detect_implicit_ms) */
	bool hello_seen;            /* the ClientHello was read (tls/hello) */
	bool hello_ticket;          /* it offered a ticket or a PSK */
	bool resumed;               /* the handshake resumed a session */
	bool be_fin_sent;
	bool be_connected;
	bool be_tls;                /* TLS to the backend is up */
	bool be_tls_cons;           /* with the conservative hello */
	bool be_tls_fell_back;      /* this session retried with it */
	bool be_tls_resumed;        /* the backend resumed the last session */
	bool be_job_out;            /* a worker owns be_ssl, bcin and bcout */
	bool be_job_drop;           /* the backend was given up while be_job was
				       out: its TLS state is freed when it
				       comes back */
	bool be_hs_want_write;      /* its last step found bcout full: post
				       again once bcout drained */
	uint8_t be_hs_steps;        /* handshake steps run on this connection
				       (capped) */
	uint32_t be_hs_left;        /* bcin bytes the last step left */
	bool bst_on;                /* backend lines go to bst_line, not the
				       engine (STARTTLS with the backend) */
	bool bst_replay;            /* give the engine the kept greeting */
	bool be_tls_close_sent;     /* our close_notify to the backend queued */
	bool be_tls_in_done;        /* the backend's TLS ended (close_notify,
				       EOF or an error): nothing more to read */
	bool be_retiring;           /* rule 2.7: the plaintext backend was told
				       QUIT/LOGOUT; what it still sends is
				       swallowed, then it is closed */
	bool counted_lost;
	bool bye;                   /* drain: the goodbye was said */
	uint32_t scan_ok;           /* relay: bytes at the head of the client
				       source the engine's tracker approved */
	uint32_t hs_left;           /* cin bytes the last handshake step left */
	uint8_t be_tries;
	uint8_t starttls_repeats;   /* STARTTLS answered again (quirk) */
	uint8_t policy;             /* enum cfg_policy for this client */
	uint8_t set;                /* cert set chosen (index in l->sets) */
	uint8_t cert;               /* certificate chosen, or TLS_CERT_ANY */
	uint32_t quirks;            /* set of enum quirk_id seen */
	uint32_t hold_ms;           /* greeting held this long for a ClientHello
				       first (quirk_hold_ms); 0: greeted at once */
	int be_idx;                 /* server in use, -1 none */
	const char *result;         /* "ok", "timeout", ... */
	char reason[360];
	char tls_version[16];
	char tls_cipher[64];
	char be_tls_version[16];    /* TLS to the backend, "" none */
	char sni[128];
	char cert_kind[24];
	char ja4[40];               /* the client's JA4 fingerprint */
	char hello_err[96];         /* why the ClientHello breaks the rules */
	char certsel_err[200];      /* why no certificate can serve it */
	uint8_t certsel_rule;       /* enum certsel_rule; OK when one can */
	struct sockaddr_storage peer, local;
	struct lim_ticket lim;      /* its count in the address table */
	struct sess *ph_next, *ph_prev; /* core's ph list (session/admit.c) */
	bool on_ph;
	struct fdata *fdata;        /* FTP: the data connection (ftp_data.c) */
};

/* A session's counters: its listener's slot on its core. */
static inline void sctr_inc(struct sess *s, int id) { lctr_inc(s->core, s->l->slot, id); }
static inline void sctr_add(struct sess *s, int id, uint64_t n)
{
	lctr_add(s->core, s->l->slot, id, n);
}

/* A new client connection on core c for listener l, from either stack
 * (io_cb.accept, from inside the stack): the session copies st (made by
 * the stack, not open) into its own stream, opens it there and runs in
 * the loop's run-again step. 0, or -errno: st is still the caller's. */
int sess_accept(struct core *c, const struct listener *l, struct stream *st);
/* A handshake job came back: a client's (TLSJ_SERVER). */
void sess_job_done(struct tls_job *j);
/* A handshake job came back: sluice's to the backend (TLSJ_CLIENT,
 * backend_tls.c). */
void sess_be_job_done(struct tls_job *j);
/* At shutdown, after the cores stopped: a job (either kind) that never
 * came back; its session (closed already) is freed once it has none
 * out. */
void sess_job_orphan(struct tls_job *j);
/* Descriptors ran out: the stack accepted st from its reserve for
 * listener l; the protocol's temporary refusal is said (session/admit.c). */
void sess_refuse_nofile(struct core *c, const struct listener *l, struct stream *st);
/* Timer callback. */
void sess_timer(struct timer *t);
/* Run the sessions that stopped with work left in the last round. */
void sess_run_again(struct core *c);
/* Free what the core closed during this loop. */
void sess_reap(struct core *c);
/* Close everything (shutdown). */
void sess_close_all(struct core *c);

/* Drain (session/goodbye.c; c->draining set by dataplane/drain.c). Every
 * session of c that is at a safe point gets its protocol's goodbye (the
 * others get theirs from sess_run once they are); returns how many are
 * still busy (not closing with everything sent). */
unsigned sess_drain_sweep(struct core *c);
/* The drain's deadline: every session of c closed now (TLS: close_notify
 * first, where it fits); returns how many were cut while still busy. */
unsigned sess_drain_cut(struct core *c);

#endif
