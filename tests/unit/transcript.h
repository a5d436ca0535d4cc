/*
 * The transcript runner shared by the engine tests (test_smtp, test_imap,
 * test_pop3).
 *
 * A scenario is a table of steps: what the client (or, while the backend
 * is being opened, the backend) sends, or an event (greeting, line too
 * long, handshake done, timeout, no backend), and what the engine must
 * answer: the start of its reply (or all of it), the exact PO_ flags, and
 * where it matters the literal, the counter and the bytes for the backend.
 * The engines do no I/O, so the transcript is the whole test. Every line is
 * handed over in a buffer of exactly its length with no NUL after it, as
 * the session does: valgrind and ASan see any read past the end.
 */
#ifndef SLUICE_TEST_TRANSCRIPT_H
#define SLUICE_TEST_TRANSCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

enum step_kind {
	S_CLIENT,     /* .client is a client line (CRLF stripped) */
	S_BACKEND,    /* .backend is a backend line while it is being opened */
	S_GREETING,   /* the banner */
	S_TOO_LONG,   /* a client line over line_max */
	S_TLS,        /* the handshake finished: ->tls_started() */
	S_TIMEOUT,    /* the session's timer fired */
	S_UNAVAILABLE,/* no backend could be reached */
};

struct step {
	const char *client;              /* client line, CRLF stripped */
	const char *expect_reply_prefix; /* NULL: sluice must say nothing */
	unsigned expect_flags;           /* exactly these PO_ flags */
	/* Optional. */
	enum step_kind kind;
	const char *backend;             /* S_BACKEND: the backend's line */
	const char *expect_to_backend;   /* exact bytes for the backend; NULL: none */
	bool exact;                      /* the reply is exactly expect_reply_prefix */
	size_t len;                      /* client line length, when it holds a NUL */
	uint64_t literal;                /* out.literal must be exactly this */
	bool check_ctr;                  /* out.counter must be .ctr */
	int ctr;
	const char *contains;            /* the reply must contain this too */
};

/* A client line; its reply starts with R. */
#define C(line, r, fl)        { .client = (line), .expect_reply_prefix = (r), .expect_flags = (fl) }
/* A client line; its reply is exactly R. */
#define CX(line, r, fl)       { .client = (line), .expect_reply_prefix = (r), .expect_flags = (fl), .exact = true }
/* ... and the counter it bumps. */
#define CXK(line, r, fl, k)   { .client = (line), .expect_reply_prefix = (r), .expect_flags = (fl), .exact = true, .check_ctr = true, .ctr = (k) }
#define CK(line, r, fl, k)    { .client = (line), .expect_reply_prefix = (r), .expect_flags = (fl), .check_ctr = true, .ctr = (k) }
/* A client line announcing a literal of LIT bytes the session must skip. */
#define CL(line, r, fl, lit)  { .client = (line), .expect_reply_prefix = (r), .expect_flags = (fl), .exact = true, .literal = (lit) }
/* A client line given as a string literal that holds a NUL. */
#define CNUL(lit, r, fl)      { .client = (lit), .len = sizeof(lit) - 1, .expect_reply_prefix = (r), .expect_flags = (fl) }
/* A backend line while it is opened; its reply starts with R. */
#define B(line, r, fl)        { .kind = S_BACKEND, .backend = (line), .expect_reply_prefix = (r), .expect_flags = (fl) }
/* ... with the exact bytes it makes sluice send the backend. */
#define BT(line, r, fl, tob)  { .kind = S_BACKEND, .backend = (line), .expect_reply_prefix = (r), .expect_flags = (fl), .expect_to_backend = (tob) }
/* A backend line whose reply to the client is exactly R. */
#define BX(line, r, fl)       { .kind = S_BACKEND, .backend = (line), .expect_reply_prefix = (r), .expect_flags = (fl), .exact = true }
#define BXK(line, r, fl, k)   { .kind = S_BACKEND, .backend = (line), .expect_reply_prefix = (r), .expect_flags = (fl), .exact = true, .check_ctr = true, .ctr = (k) }
#define GREETING(r)           { .kind = S_GREETING, .expect_reply_prefix = (r), .exact = true }
#define TOO_LONG(r, fl)       { .kind = S_TOO_LONG, .expect_reply_prefix = (r), .expect_flags = (fl) }
#define TLS_UP                { .kind = S_TLS }
#define TIMEOUT(r, fl)        { .kind = S_TIMEOUT, .expect_reply_prefix = (r), .expect_flags = (fl), .exact = true }
#define TIMEOUT_STARTS(r, fl) { .kind = S_TIMEOUT, .expect_reply_prefix = (r), .expect_flags = (fl) }
#define UNAVAILABLE(r, fl)    { .kind = S_UNAVAILABLE, .expect_reply_prefix = (r), .expect_flags = (fl), .exact = true }

/* What a listener and its backend pool look like to the engine. */
struct setup {
	enum cfg_tls mode;
	bool tls_available;
	const char *const *caps;  /* NULL-terminated backend capabilities, or NULL */
};

/* The engine under test. */
struct transcript_proto {
	enum cfg_proto proto;
	const char *name;         /* ops->name must be this */
	size_t line_max;          /* ops->line_max must be this */
	const char *unit;         /* what a whole reply is called, for messages */
	/* True if the reply of step st is whole replies of the protocol. */
	bool (*well_formed)(const struct step *st, const struct proto_out *o);
	const char *probe_request;  /* ops->probe_request must be this (NULL: not checked) */
	const char *probe_quit;     /* ops->probe_quit must be this (NULL: not checked) */
};

/* One backend line of a capability probe and what ->probe_line returns. */
struct probe_step {
	const char *line;
	int rc;
};

/* limits.junk_commands as the session gives it (env.junk_limit) to the
 * next transcript_run; 0: no limit (the default). */
extern unsigned transcript_junk_limit;

/* Run steps[0..n) against a fresh session of tp's engine set up as su, then
 * ->fini() it; fails the cmocka test at the first step that differs, with
 * the step, its input, and what came instead. Frees all it made. */
void transcript_run(const struct transcript_proto *tp, const struct setup *su,
		    const struct step *steps, size_t n);

/* The capabilities a probe of steps t[0..n) learns (the caller frees
 * them); fails the test at the first line whose return differs. */
struct proto_caps *transcript_probe(const struct transcript_proto *tp,
				    const struct probe_step *t, size_t n);

/* A backend lost after each of lasts[0..n) (its last line) gets the client
 * no words and the backend no bytes: the client may be inside a literal or
 * a multi-line answer. */
void transcript_lost_is_silent(const struct transcript_proto *tp, const char *const *lasts,
			       size_t n);

/*
 * The plaintext relay (rule 2.7 of DESIGN.md): what the backend sends (fed
 * to ->b2c_scan first), what the client sends (to ->c2b_scan, behind what
 * it held), what may go to the backend now; and where the tracker holds a
 * STARTTLS line, whether proto_late_starttls answers it now and how.
 */
struct relay_step {
	const char *backend;       /* backend bytes relayed to the client first */
	const char *client;        /* new client bytes */
	const char *pass;          /* exactly what goes to the backend now */
	bool held;                 /* the tracker holds a STARTTLS line after it */
	const char *answer;        /* held: answered now, exactly this; NULL: not yet */
	unsigned flags;            /* ... with exactly these PO_ flags */
	const char *to_backend;    /* ... and these bytes for the backend (NULL: none) */
};

/* Nothing held: what goes to the backend. */
#define R(be, cl, pass)              { (be), (cl), (pass), false, NULL, 0, NULL }
/* A STARTTLS held behind what goes, not answered yet. */
#define RH(be, cl, pass)             { (be), (cl), (pass), true, NULL, 0, NULL }
/* A STARTTLS held and answered now: exactly ans, flags fl, bytes tob for
 * the backend (NULL: none). */
#define RA(be, cl, pass, ans, fl, tob) { (be), (cl), (pass), true, (ans), (fl), (tob) }

/* Run steps[0..n) against a fresh plaintext relay of tp's engine set up as
 * su; an answered STARTTLS line is taken from the client's bytes, and after
 * PO_STARTTLS the rest is discarded (rule 2.1). Fails at the first step
 * that differs. */
void transcript_relay(const struct transcript_proto *tp, const struct setup *su,
		      const struct relay_step *steps, size_t n);
#define RELAY(su, steps) transcript_relay(&TP, (su), (steps), sizeof(steps) / sizeof((steps)[0]))

/* transcript_probe, and how many capabilities it learned (it frees them):
 * for probes that fail, whose last step's return says so. */
unsigned transcript_probe_count(const struct transcript_proto *tp,
				const struct probe_step *t, size_t n);
#define PROBE_COUNT(t) transcript_probe_count(&TP, (t), sizeof(t) / sizeof((t)[0]))

/*
 * A backend with as many long capabilities as the probe keeps (CAPS_MAX,
 * each "X-VENDOR-EXTENSION-NN" and tail, up to 95 bytes): a fresh session
 * of tp's engine (tls: starttls, a certificate) gets the greeting when
 * greeting is not NULL, then the client line cmd; their answers in
 * *greeting and *reply. The caller checks they are still whole.
 */
void transcript_many_caps(const struct transcript_proto *tp, const char *tail,
			  const char *cmd, struct proto_out *greeting, struct proto_out *reply);

/*
 * The relay tracker: segments of client bytes on their way to the backend
 * (to ->c2b_scan, behind what it held, as the session offers them), each
 * after what the backend sent before them (to ->b2c_scan).
 */
struct seg {
	const char *backend;     /* what the backend sends first, relayed (NULL: nothing) */
	const char *in;          /* new client bytes */
	const char *out;         /* what may go to the backend now */
};

/* Run t[0..n) against a fresh session of tp's engine inside TLS (the
 * plaintext relay holds STARTTLS instead: transcript_relay); fails at the
 * first segment whose bytes for the backend differ, named by name. */
void transcript_track(const struct transcript_proto *tp, const char *name,
		      const struct seg *t, size_t n);
#define TRACK(t) transcript_track(&TP, #t, (t), sizeof(t) / sizeof((t)[0]))

/* The relay's idle timeout (proto_timeout) after what the backend sent: the
 * session must speak (its words start with the protocol's `say`) or only
 * close. */
struct idle_step {
	const char *backend;     /* backend bytes relayed to the client first */
	bool speaks;             /* the timeout says something before the close */
};

/* Run t[0..n) against a fresh session of tp's engine: inside TLS if tls,
 * after the client command cmd went to the backend (NULL: none); each step
 * feeds the backend's bytes, then times the session out. Fails at the first
 * step that differs. */
void transcript_idle_timeout(const struct transcript_proto *tp, bool tls, const char *cmd,
			     const char *say, const struct idle_step *t, size_t n);
#define IDLE_TIMEOUT(tls, cmd, say, t) \
	transcript_idle_timeout(&TP, (tls), (cmd), (say), (t), sizeof(t) / sizeof((t)[0]))

/* The backend capabilities list of a NULL-terminated list (NULL: none). */
struct proto_caps *caps_make(const char *const *list);
/* "CLOSE|STARTTLS" for PO_ flags f, in buf. */
const char *flag_names(unsigned f, char *buf, size_t cap);
/* A malloc'd copy of s[0..len) without a NUL after it. */
char *dup_exact(const char *s, size_t len);

/* Each test file defines `static const struct transcript_proto TP`. */
#define RUN(su, steps) transcript_run(&TP, (su), (steps), sizeof(steps) / sizeof((steps)[0]))

#endif
