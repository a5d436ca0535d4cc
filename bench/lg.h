/*
 * sluice-loadgen's shared types: the run (struct lg), one client
 * connection (struct lg_conn) and the workload scripts they follow.
 *
 * Files: loadgen.c (main, the event loop, connections), lg_conn.c (one
 * connection's I/O and reply parsers), lg_script.c (the workload scripts and
 * the message), lg_opts.c (the command line), lg_tlsctx.c (what the client
 * offers and verifies), lg_report.c (progress line, summary, JSON).
 *
 * One thread, one epoll set. Each operation is one connection that walks a
 * script (connect, TLS, send, expect a reply, ...) and is timed from its
 * start (closed loop) or from when it was due (open loop, so a slow server
 * cannot hide its queueing: no coordinated omission).
 */
#ifndef BENCH_LG_H
#define BENCH_LG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

#include "hist.h"

enum lg_err {
#define X(name, what) LG_E_##name,
#include "lg_errors.def"
#undef X
	LG_E_COUNT
};
extern const char *const lg_err_names[LG_E_COUNT];

/* What one step of a script does. */
enum lg_op {
	OP_TLS,         /* run the client handshake (implicit, or after STARTTLS) */
	OP_SEND,        /* send arg */
	OP_SEND_MSG,    /* send the message (--size bytes), dot-terminated */
	OP_SEND_FETCH,  /* RETR 1 / FETCH 1 when there is a message, else LIST / NOOP */
	OP_SMTP,        /* read an SMTP reply; its first digit must be expect */
	OP_IMAP,        /* read IMAP responses up to the one tagged arg; must be OK */
	OP_POP3,        /* read one POP3 reply line: +OK */
	OP_POP3_MULTI,  /* +OK, then a multi-line body up to "." (RFC 1939 §3) */
	OP_GREETING,    /* read one line: 220, * OK or +OK */
	OP_HOLD,        /* idle workload: stop here until the rig says go */
	OP_END,         /* the operation succeeded: close */
};

struct lg_step {
	enum lg_op op;
	const char *arg;        /* OP_SEND text, OP_IMAP tag, OP_HOLD phase name */
	char expect;            /* OP_SMTP: '2' or '3' */
	bool auth;              /* a refusal here is a failed login (LG_E_auth) */
	bool count;             /* the reply to STAT or SELECT: message count kept */
};

/* How TLS starts (--tls). */
enum lg_tls { LG_TLS_IMPLICIT, LG_TLS_STARTTLS, LG_TLS_NONE };
/* The application protocol (--protocol, or the workload's own). */
enum lg_proto { LG_P_ANY, LG_P_SMTP, LG_P_IMAP, LG_P_POP3 };

#define LG_RBUF 8192

struct lg;
struct lg_conn;
struct tcp_conn;
struct natio;

/*
 * The transport under the scripts (lg_io_kernel.c: sockets and epoll;
 * lg_io_native.c: sluice's TCP/IP over a DPDK port). Readiness reaches
 * lg_drive() from the transport: epoll events, or the native stack's
 * callbacks.
 */
struct lg_io {
	const char *name;
	int (*init)(struct lg *g);                       /* 0 or -errno, message on stderr */
	int (*connect)(struct lg *g, struct lg_conn *c); /* start the TCP open: 0 or -errno */
	/* bytes, or -EAGAIN (the transport calls lg_drive when it may go on),
	 * or another -errno; recv: 0 at the peer's FIN */
	ssize_t (*send)(struct lg_conn *c, const void *p, size_t n);
	ssize_t (*recv)(struct lg_conn *c, void *p, size_t n);
	int (*ssl_bind)(struct lg_conn *c, SSL *ssl);   /* 1, or 0 on failure */
	void (*want)(struct lg *g, struct lg_conn *c, uint32_t ev); /* EPOLL* interest */
	void (*close)(struct lg *g, struct lg_conn *c);
	/* Wait up to wait_ms for events (the native loop takes one pass and
	 * returns); true when the rig wrote a line on stdin. <0: error. */
	int (*wait)(struct lg *g, int wait_ms);
	void (*json)(const struct lg *g);               /* extra JSON members, or NULL */
	unsigned start_burst;   /* closed loop: ops started per wait at most (0: all due) */
	void (*fini)(struct lg *g);
};
extern const struct lg_io lg_io_kernel, lg_io_native;

struct lg_conn {
	int fd;                         /* kernel transport */
	struct tcp_conn *tc;            /* native transport; NULL once gone */
	SSL *ssl;                       /* NULL before the handshake starts */
	bool tls;                       /* handshake done: I/O goes through ssl */
	bool connecting;                /* non-blocking connect() in progress */
	bool held;                      /* parked at an OP_HOLD step */
	bool probe;                     /* idle --probe: a new session timed while the rest are held */
	const struct lg_step *step;     /* current step */
	uint64_t t0;                    /* op start (or due time), ns */
	uint64_t deadline;              /* ns; 0 while held */
	uint32_t events;                /* epoll interest now registered */
	unsigned active_ix;             /* index in lg.active[] */
	const char *wp;                 /* pending output; NULL: step not begun */
	size_t wleft;
	size_t rlen;                    /* bytes in rbuf */
	uint64_t lit_left;              /* IMAP literal bytes still to skip */
	bool in_body;                   /* OP_POP3_MULTI: past the +OK line */
	unsigned msgs;                  /* messages STAT or SELECT counted */
	struct lg_conn *next_free;
	char *rbuf;                     /* LG_RBUF bytes; NULL once released (--idle-release) */
};

enum lg_workload { WL_HANDSHAKE, WL_RESUME, WL_SMTP, WL_IMAP, WL_BULK, WL_IDLE, WL_POP3,
		   WL_COUNT };
extern const char *const lg_workload_names[WL_COUNT];

struct lg {
	/* options */
	enum lg_workload wl;
	const char *wl_name;
	struct sockaddr_in dst;
	const char *host;               /* --host as given (for the output) */
	struct sockaddr_in *src;        /* source addresses, round robin; NULL: any */
	unsigned nsrc, src_next;
	enum lg_tls tls_mode;           /* --tls starttls|implicit|none */
	enum lg_proto proto;
	int tls_version;                /* TLS1_2_VERSION, TLS1_3_VERSION; 0: 1.2 to 1.3 */
	const char *sig;                /* "ecdsa" or "rsa"; NULL: OpenSSL's list */
	bool pin;                       /* --pin: X25519 and AES-128-GCM only */
	bool implicit;                  /* tls_mode == LG_TLS_IMPLICIT (the JSON says so) */
	bool resume;                    /* offer the newest session held */
	bool verify;                    /* verify the server's certificate */
	const char *ca_file;            /* --ca: trust anchors; NULL: the system's */
	const char *servername;         /* SNI and the name verified; NULL: none */
	bool json;                      /* --json: one JSON object, not the summary */
	bool progress;                  /* a progress line a second on stderr */
	unsigned concurrency;           /* closed loop */
	double rate;                    /* open loop: ops per second; 0: closed */
	unsigned max_inflight;          /* open loop cap */
	double duration;                /* seconds; 0: until --count */
	uint64_t count;                 /* ops; 0: until --duration */
	double timeout;                 /* per op, seconds */
	size_t msg_size;
	const char *user, *password;    /* imap LOGIN, pop3 USER/PASS, smtp AUTH */
	bool smtp_auth;                 /* --user given: smtp AUTH PLAIN after EHLO */
	const char *mail_from, *rcpt_to, *ehlo_name, *subject;
	char *cmds[8];                  /* commands built from the options (freed at exit) */
	unsigned ncmds;

	/* native transport (--native): lg_io_native.c */
	const char *nat_dev;            /* DPDK vdev; NULL: kernel sockets */
	const char *nat_addr;               /* "A/len": the first client address */
	unsigned nat_addrs;             /* consecutive client addresses from it */
	int nat_cpu;                    /* the EAL lcore's CPU; -1: the first allowed */
	unsigned nat_queues;            /* the port's queue pairs (0: 1) */
	struct natio *nat;
	unsigned nat_next;              /* round robin over the addresses */

	/* state */
	const struct lg_io *io;
	SSL_CTX *ctx;
	SSL_SESSION *session;           /* resume: the latest resumable session */
	struct lg_step *script;         /* built by lg_script_init, ends with OP_END */
	char *msg;                      /* the message, dot-terminated */
	size_t msg_len;
	int ep;
	uint64_t t_begin, t_end_start, next_due;
	uint64_t started, done, failed;
	uint64_t resumed;
	uint64_t payload_bytes;         /* message bytes accepted by the server */
	uint64_t msgs_accepted;         /* 2xx replies to a message's final dot */
	uint64_t msgs_unanswered;       /* final dot sent, no reply read */
	uint64_t err[LG_E_COUNT];
	char first_error[256];          /* the run's first, with its kind */
	char first_err[LG_E_COUNT][200];        /* each kind's first */
	uint64_t next_progress, prog_done;      /* progress line: when, ops then */
	struct lg_conn **active;
	unsigned nactive, cap_active;
	struct lg_conn *free_list;
	unsigned held, hold_phase;      /* idle workload */
	bool waiting_go;
	bool idle_release;              /* --idle-release: a parked TLS connection keeps only TCP */
	uint64_t released;              /* connections whose SSL and buffer were freed */
	unsigned probe_n;               /* --probe K: new sessions timed while the rest are held */
	unsigned probe_started, probe_done, probe_failed;
	bool probing;
	struct lg_step *probe_script;   /* the handshake workload's script for the protocol */
	struct hist probe_lat;          /* microseconds */
	struct hist lat;                /* microseconds */
};

uint64_t lg_now(void);
/* lg_script.c: build g->script for the workload, protocol and TLS mode
 * (0, or -ENOMEM); the message for smtp and bulk (0 or -ENOMEM); the bytes
 * a send step sends. */
int lg_script_init(struct lg *g);
int lg_make_message(struct lg *g);
const char *lg_step_text(const struct lg *g, const struct lg_conn *c, size_t *len);
/* lg_opts.c: the command line into g; 0, or -EINVAL with a message naming
 * the bad option on stderr. */
int lg_parse_args(struct lg *g, int argc, char **argv);
/* lg_tlsctx.c: the client context for the options (NULL: see the error
 * queue); a new SSL's name, session and host check. */
SSL_CTX *lg_client_ctx(const struct lg *g);
int lg_tls_prepare(struct lg *g, SSL *ssl);
/* lg_report.c: note an error's words (the run's first, each kind's first);
 * the progress line; the final JSON object or summary. */
void lg_note_error(struct lg *g, int kind, const char *what);
void lg_progress(struct lg *g, uint64_t now);
void lg_report(const struct lg *g);
/* The parts of lg_report (exported for the unit test): a latency for
 * people, the JSON object and the summary for a run of secs seconds that
 * took cpu_s of the client's CPU. */
char *lg_fmt_us(char *buf, size_t len, uint64_t us);
void lg_json(FILE *f, const struct lg *g, double secs, double cpu_s);
void lg_summary(FILE *f, const struct lg *g, double secs, double cpu_s);
/* Advance c as far as it goes without blocking; finishes or fails the op. */
void lg_drive(struct lg *g, struct lg_conn *c);
/* Called by lg_drive when an op ends (err < 0: success). */
void lg_op_end(struct lg *g, struct lg_conn *c, int err, const char *why);
void lg_set_events(struct lg *g, struct lg_conn *c, uint32_t ev);
void lg_hold(struct lg *g, struct lg_conn *c);
/* --idle-release: free what a parked TLS connection needs only to read
 * more (its SSL and read buffer); the TCP connection stays. */
void lg_release(struct lg *g, struct lg_conn *c);

#endif
