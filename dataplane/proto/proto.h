/*
 * Protocol engines: the plaintext opening of SMTP, IMAP and POP3, answered by
 * sluice itself, and the opening of the backend connection.
 *
 * An engine does no I/O. The session feeds it one line at a time (from the
 * client before the backend is connected, or from the backend while it is
 * being opened) and the engine answers with a struct proto_out: bytes for
 * the client, bytes for the backend, and flags that tell the session what to
 * do next. That makes engines testable by transcripts (tests/unit).
 *
 * The STARTTLS rules of DESIGN.md §2 are kept by the session, not here: the
 * engine only says PO_STARTTLS; the session discards what follows, waits for
 * the reply to drain, runs the handshake, and calls ->tls_started().
 */
#ifndef SLUICE_PROTO_H
#define SLUICE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "counters.h"

#define BACKEND_LINE_MAX 1024 /* longest backend line while it is opened */
#define PO_REPLY_MAX 2560     /* holds two backend lines and more */
#define PO_BACKEND_MAX 600

/* What the session must do after an engine call. */
enum {
	PO_CLOSE      = 1u << 0, /* close once the reply has been sent */
	PO_STARTTLS   = 1u << 1, /* discard further input; TLS once the reply drained */
	PO_BACKEND    = 1u << 2, /* client line: connect the backend; this line and all
				    after it are held, unconsumed, for the backend */
	PO_FLUSH_HELD = 1u << 3, /* backend line: send the held client bytes to it, then
				    relay client -> backend raw */
	PO_RELAY      = 1u << 4, /* backend line: relay backend -> client raw from now */
	PO_FAIL       = 1u << 5, /* backend line: backend refused; reply goes to the
				    client, then close */
	PO_ERROR      = 1u << 6, /* with PO_CLOSE: the client broke the protocol */
};

struct proto_out {
	unsigned flags;
	uint64_t literal;                 /* client line: skip this many bytes of
					     literal that follow it */
	int counter;                      /* a CTR_ to bump, or -1 */
	const char *reason;               /* a word or phrase for the log, or NULL */
	size_t reply_len;
	size_t to_backend_len;
	char reply[PO_REPLY_MAX];         /* sluice's own answer to the client */
	char to_backend[PO_BACKEND_MAX];  /* engine-made bytes for the backend */
};

/* Capabilities learned from a backend; immutable once published. */
#define CAPS_MAX 32
struct proto_caps {
	unsigned n;
	char *item[CAPS_MAX];   /* SMTP: EHLO keywords with parameters */
};

/* What the session tells the engine; read-only for the engine. */
struct proto_env {
	const char *hostname;
	enum cfg_tls tls_mode;
	bool tls_available;            /* a usable certificate is loaded */
	const struct proto_caps *caps; /* NULL while the backend is unknown */
};

/* Per-connection engine state, shared by all protocols. */
struct proto_sess {
	uint8_t phase;          /* engine-specific */
	uint8_t bphase;         /* engine-specific: backend opening */
	bool in_tls;            /* TLS is up on the client side */
	bool greeted;           /* client said HELO/EHLO (SMTP) */
	bool ehlo;              /* ... and it was EHLO */
	uint16_t errors;        /* protocol errors so far */
	char *replay;           /* line to replay to the backend, malloc'd */
	char *acc;              /* reply being accumulated from the backend */
	size_t acc_len;
	/* relay trackers, see ->c2b_scan and ->b2c_scan */
	uint8_t rmode;          /* engine-specific: command, data, chunk */
	uint8_t rstate;         /* engine-specific: position in a line */
	uint8_t b_cur_len;      /* bytes of b_cur: >0 means inside a backend line */
	uint16_t denied;        /* commands the tracker kept from the backend */
	char b_cur[4];          /* how the backend line in progress began */
	char last_reply[4];     /* how the last complete backend line began */
	uint32_t cmds;          /* client commands relayed */
	uint32_t replies;       /* final backend replies relayed */
	uint32_t data_at;       /* cmds count at the last DATA */
	uint64_t chunk_left;    /* bytes of a BDAT chunk still to pass */
};

struct proto_ops {
	const char *name;
	uint32_t line_max;      /* command line limit, CRLF included */
	/* Greeting to send first (plaintext, or right after implicit TLS). */
	void (*greeting)(const struct proto_env *, struct proto_sess *, struct proto_out *);
	/* One client line, CR LF stripped. */
	void (*client_line)(const struct proto_env *, struct proto_sess *,
			    const char *line, size_t len, bool has_nul, struct proto_out *);
	/* A client line over line_max. */
	void (*too_long)(const struct proto_env *, struct proto_sess *, struct proto_out *);
	/* Rule 2: forget everything learned before TLS. */
	void (*tls_started)(struct proto_sess *);
	/* One backend line while the backend is being opened. */
	void (*backend_line)(const struct proto_env *, struct proto_sess *,
			     const char *line, size_t len, struct proto_out *);
	/* Replies sluice gives on its own. */
	void (*timeout)(const struct proto_env *, struct proto_sess *, struct proto_out *);
	void (*unavailable)(const struct proto_env *, struct proto_sess *, struct proto_out *);
	/* Backend vanished in the relay; last_line holds the start of the last
	 * complete line it sent. Writes a reply only where one is safe. */
	void (*lost)(const struct proto_env *, struct proto_sess *,
		     const char *last_line, size_t len, struct proto_out *);
	/* Capability probe: the request after the greeting (a format taking the
	 * host name), and the parser of the backend's lines. probe_line starts
	 * with *state 0 and returns 1 when the request is due, 2 when the
	 * capabilities are complete, 0 for more, -1 when the backend refuses. */
	const char *probe_request;
	const char *probe_quit;
	int (*probe_line)(int *state, const char *line, size_t len,
			  struct proto_caps *caps);
	/* The client sent this complete line right after sluice's STARTTLS OK,
	 * where a ClientHello was due. If it is the protocol's STARTTLS
	 * command again, exactly (Outlook for iOS/Android does this), fill in
	 * the same OK and return true. */
	bool (*starttls_again)(const struct proto_env *, struct proto_sess *,
			       const char *line, size_t len, struct proto_out *);
	/* Relay: look at client bytes p[0, len) on their way to the backend.
	 * May rewrite them in place (same length). Returns how many bytes,
	 * from the start, may go now; the rest (an unfinished command line)
	 * waits for more. NULL: everything passes. */
	size_t (*c2b_scan)(struct proto_sess *, uint8_t *p, size_t len);
	/* Relay: look at backend bytes on their way to the client (count
	 * replies, remember how the last line began). May be NULL. */
	void (*b2c_scan)(struct proto_sess *, const uint8_t *p, size_t len);
	void (*fini)(struct proto_sess *);
};

/* The protocol table: one line per protocol in proto.def. */
const struct proto_ops *proto_get(enum cfg_proto p);

/* Helpers for engines. */
void po_reset(struct proto_out *o);
void po_reply(struct proto_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void po_backend(struct proto_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void caps_free(struct proto_caps *c);

#endif
