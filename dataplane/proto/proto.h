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
 * The STARTTLS rules of DESIGN.md §2 are written once for all protocols:
 * which command may start TLS, when, and what a command that needs TLS
 * first gets, in proto.c (proto_dispatch, proto_late_starttls), each engine
 * giving only its grammar (->parse), its words (->words) and a class per
 * command (enum proto_class); the I/O side in the session: PO_STARTTLS
 * makes it discard what follows, wait for the reply to drain, run the
 * handshake, and call ->tls_started(). Adding a protocol is one engine file
 * (its state in ps->priv) and one line in proto.def.
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
	PO_OFFERED_TLS = 1u << 7, /* an EHLO / CAPABILITY / CAPA answer listed
				    STARTTLS (STLS): counted (starttls_offered) */
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
	unsigned junk_limit;           /* commands without progress allowed in
					  sluice's own dialogue (limits.
					  junk_commands; the session may lower
					  it, e.g. under stress); 0: no limit */
	const struct proto_trace *trace; /* c2b_inject's facts; else NULL */
	bool ftp_allow_prot_c;         /* listeners[].ftp.allow_prot_c */
};

/* What a trace header says of this hop (c2b_inject; listeners[].
 * trace_header), gathered by the session: the engine only writes it. */
struct proto_trace {
	const char *client;            /* the address literal's inside:
					  "198.51.100.7", "IPv6:2001:db8::7" */
	const char *tls;               /* "" without TLS, else Postfix's words:
					  "using TLSv1.3 with cipher
					  TLS_AES_256_GCM_SHA384 (256/256 bits)
					  key-exchange X25519" */
	long long now;                 /* seconds since the epoch (UTC) */
};

/*
 * What the session may say on the engine's behalf, in the engine's words
 * (struct proto_ops.words): the STARTTLS rules of DESIGN.md §2 and the error
 * limit are enforced once, in proto.c, for all protocols. W(name, tagged):
 * a tagged word gets the command's tag in front where the protocol has
 * tags (IMAP). Each word is a printf format that may take the host name.
 */
enum proto_word {
#define W(name, tagged) PW_##name,
#include "proto_words.def"
#undef W
	PW__COUNT
};

/* How a command is handled, the same way for every protocol. */
enum proto_class {
	PC_LOCAL,     /* answered by sluice itself (EHLO, CAPABILITY, NOOP...) */
	PC_STARTTLS,  /* STARTTLS/STLS: the rules of DESIGN.md §2 */
	PC_TLS_FIRST, /* credentials (AUTH, LOGIN, USER...): need TLS first on
			 tls: required (rule 2.6); the engine decides the rest */
	PC_BACKEND,   /* needs the backend (MAIL, RCPT, DATA...): on tls:
			 required, TLS first as well (rule 2.6) */
};

/* Does a command make progress? (limits.junk_commands, as Postfix's
 * smtpd_junk_command_limit.) Errors and unknown verbs are junk too,
 * counted in proto_error. */
enum proto_junk {
	PJ_PROGRESS,  /* moves the session on (STARTTLS, login, mail, QUIT) */
	PJ_JUNK,      /* NOOP, RSET, HELP: always junk */
	PJ_REPEAT,    /* EHLO, CAPABILITY, CAPA, ID: free PROTO_REPEATS_FREE
			 times in all, junk after */
};
#define PROTO_REPEATS_FREE 4 /* e.g. EHLO, STARTTLS, EHLO, and one spare */

#define PROTO_TAG_MAX 64
/* One command line as the engine's grammar splits it. */
struct proto_line {
	char tag[PROTO_TAG_MAX + 1];  /* IMAP's tag; empty where there are none */
	char verb[16];                /* NUL-terminated, as sent */
	const char *arg;              /* after the verb and its blanks */
	size_t arg_len;               /* trailing blanks not counted */
};

struct proto_sess;
struct proto_env;
struct proto_out;

/* A data connection an engine asks the session for (FTP's passive mode,
 * RFC 959 4.1.2 PASV, RFC 2428 EPSV): from the backend's answer, and what
 * the session opened in its place. */
struct proto_data {
	bool epsv;              /* 229 (EPSV), else 227 (PASV) */
	bool tls;               /* PROT P: the client's data connection is TLS */
	uint8_t be_host[4];     /* the host a 227 named; zero for a 229 */
	uint16_t be_port;       /* the backend's data port */
	uint8_t host[4];        /* the session's: its data address */
	uint16_t port;          /* and the port it listens on */
};

/* One command of an engine's table: its class decides the shared rules
 * (proto_dispatch); fn does the engine's part, if any is left. */
struct proto_cmd {
	const char *verb;
	enum proto_class cls;
	bool args;                    /* may take arguments (else only alone) */
	void (*fn)(const struct proto_env *, struct proto_sess *,
		   const struct proto_line *, struct proto_out *);
	uint8_t junk;                 /* enum proto_junk; 0: progress */
};

#define PROTO_PRIV_MAX 384 /* room for an engine's own state; each engine
			      checks at compile time that its state fits */

/*
 * Per-connection engine state. The part here is what the session reads
 * (and the trackers' counts, which every protocol keeps); the rest is the
 * engine's own (priv), zeroed with the struct, laid out by the engine file.
 */
struct proto_sess {
	bool in_tls;            /* TLS is up on the client side */
	bool tls_held;          /* plaintext relay: the c2b tracker stopped at a
				   STARTTLS line; the session decides (rule 2.7) */
	uint16_t errors;        /* protocol errors so far */
	uint16_t denied;        /* STARTTLS commands kept from the backend in TLS */
	uint16_t junk;          /* commands without progress so far (they
				   survive STARTTLS, as errors do) */
	uint8_t repeats;        /* PJ_REPEAT commands so far */
	bool untracked;         /* relay: a tracker met a line it cannot parse
				   strictly (an untagged IMAP literal, a tag
				   too long, "BDAT 10x"): it no longer knows
				   where commands start, so a STARTTLS is
				   refused and the session closed, and
				   sluice's own words stay out of the stream */
	uint8_t b_cur_len;      /* bytes of b_cur: >0 means inside a backend line */
	char b_cur[4];          /* how the backend line in progress began */
	char last_reply[4];     /* how the last complete backend line began */
	bool trace;             /* relay: add a trace header to each message
				   (listeners[].trace_header; c2b_inject) */
	bool inject_due;        /* relay: the c2b tracker stopped where the
				   engine's c2b_inject adds bytes of its own */
	bool local_due;         /* relay: the c2b tracker stopped at a command
				   sluice answers itself there (FTP: PBSZ,
				   PROT, PORT); proto_ops.c2b_local once
				   every earlier command has its reply */
	bool data_pending;      /* relay: a data connection was accepted and is
				   not relaying yet (its TLS checks): the
				   transfer's completion reply waits (FTP) */
	bool data_refused;      /* relay: that data connection ended before it
				   relayed a byte: a 2xx completion of the
				   transfer would be false (FTP: made 426) */
	bool idle_wait;         /* relay: the one command in flight waits on
				   the client, not the backend (IMAP IDLE once
				   its "+" came): the server may still speak */
	uint32_t cmds;          /* client commands relayed that get a reply */
	uint32_t replies;       /* final backend replies relayed */
	_Alignas(16) unsigned char priv[PROTO_PRIV_MAX]; /* the engine's state */
};

struct proto_ops {
	const char *name;
	uint32_t line_max;      /* command line limit, CRLF included */
	uint16_t max_errors;    /* protocol errors before sluice closes */
	bool tagged;            /* replies carry the command's tag (IMAP) */
	/* What sluice says for the shared rules (enum proto_word). */
	const char *const *words;
	/* The grammar: split a command line; -1 if it is not one. */
	int (*parse)(const char *line, size_t len, struct proto_line *pl);
	/* The command table (proto_find, proto_run). */
	const struct proto_cmd *cmds;
	size_t n_cmds;
	/* Rule 2.7: may the protocol start TLS now, given what the relay
	 * trackers saw (SMTP: outside a mail transaction; IMAP and POP3:
	 * before authentication)? */
	bool (*starttls_allowed)(const struct proto_sess *);
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
	 * waits for more. Counts the commands that get a reply (ps->cmds).
	 * A STARTTLS command stops it: inside TLS it is rewritten to an
	 * unknown verb (the backend answers its error); in plaintext the
	 * scan stops before the line and sets ps->tls_held: the session
	 * decides (proto_late_starttls). NULL: everything passes. */
	size_t (*c2b_scan)(struct proto_sess *, uint8_t *p, size_t len);
	/* Relay: the tracker stopped with ps->inject_due at the head of the
	 * client bytes p[0, len) (everything before it went to the backend).
	 * Writes what goes to the backend there into out (room bytes; 0 when
	 * it does not fit: nothing changed) and sets *skip to the client
	 * bytes it replaces (SMTP: the trace header before a message; a BDAT
	 * line rewritten to count it). Clears inject_due when it wrote. NULL
	 * for engines that never set inject_due. */
	size_t (*c2b_inject)(const struct proto_env *, struct proto_sess *, const uint8_t *p,
			     size_t len, uint8_t *out, size_t room, size_t *skip);
	/* Relay: the tracker stopped with ps->local_due before the client
	 * line l (CR LF stripped), every earlier command answered: sluice's
	 * own answer in o (FTP: PBSZ, PROT, PORT refused). NULL for engines
	 * that never set local_due. */
	void (*c2b_local)(const struct proto_env *, struct proto_sess *, const char *l,
			  size_t len, struct proto_out *o);
	/* Relay: how many of the backend bytes p[0, len) may go to the
	 * client before a line the engine must see whole (b2c_line); 0 when
	 * one starts at p. Changes nothing. NULL: all of them. */
	size_t (*b2c_safe)(const struct proto_sess *, const uint8_t *p, size_t len);
	/* Relay: that whole backend line l (CR LF stripped). 0: it goes as
	 * it is; 1: a data connection as *d says is wanted, the session
	 * opens it and asks data_reply for the line in its place; -1: o
	 * holds the line that replaces it (a refusal); 2: not yet, the
	 * line waits in the buffer until ps->data_pending is cleared. The
	 * session then passes the original line to b2c_scan, as if it had
	 * been relayed. */
	int (*b2c_line)(const struct proto_env *, struct proto_sess *, const char *l,
			size_t len, struct proto_data *d, struct proto_out *o);
	/* The answer naming the session's data port d->host, d->port. */
	void (*data_reply)(const struct proto_env *, struct proto_sess *,
			   const struct proto_data *d, struct proto_out *o);
	/* Relay: look at backend bytes on their way to the client (count
	 * final replies in ps->replies, remember how the last line began,
	 * follow the state that starttls_allowed reads). May be NULL. */
	void (*b2c_scan)(struct proto_sess *, const uint8_t *p, size_t len);
	/* Drain: is this a safe point for the protocol's goodbye (relay:
	 * relaying to the backend, else sluice's own dialogue)? The shared
	 * conditions (every command answered, no backend line half-relayed)
	 * are proto_goodbye's; this adds the protocol's (SMTP: outside a mail
	 * transaction). When true, *be_bye is the polite end for the backend
	 * in the relay, or NULL: only close it. */
	bool (*goodbye)(const struct proto_sess *, bool relay, const char **be_bye);
	/* Relay: is the backend inside a response (a multi-line answer, a
	 * literal, a message) that any line of sluice's would corrupt? (A
	 * half-relayed line, ps->b_cur_len, is proto_timeout's.) NULL: never. */
	bool (*mid_response)(const struct proto_sess *);
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

/* Rule 2.2: forget the relay's counts and the engine's state (the engine
 * frees what it points to first); the session is in TLS from here. */
void proto_sess_tls(struct proto_sess *ps);
/* The grammar of POP3 (RFC 1939 3) and FTP (RFC 959 5.3.1): a verb of
 * letters, blanks, the argument (trailing blanks not counted) into *pl.
 * 0, or -1 for a line that does not begin so. */
int proto_parse_verb(const char *l, size_t len, struct proto_line *pl);
/* The word w of the engine into o, with tag in front where it is tagged. */
void proto_say(const struct proto_ops *ops, const struct proto_env *env,
	       struct proto_out *o, enum proto_word w, const char *tag);
/* A protocol error: counted (ctr, reason); at the engine's limit, the
 * too-many-errors word and a close. */
void proto_error(const struct proto_ops *ops, const struct proto_env *env,
		 struct proto_sess *ps, struct proto_out *o, int ctr, const char *reason);
/* A command that made no progress (limits.junk_commands): counted in
 * ps->junk; past env->junk_limit, the protocol's refusal (PW_TOO_MANY_JUNK)
 * appended to o and a close. Returns true when it refused. */
bool proto_junk(const struct proto_ops *ops, const struct proto_env *env,
		struct proto_sess *ps, struct proto_out *o);
/* The session's timer: the engine's timeout words and a close, in the relay
 * only where they cannot land inside a response of the backend's (a
 * half-relayed line, ->mid_response, or a tracker that lost the stream):
 * there only the close (as ->lost). */
void proto_timeout(const struct proto_ops *ops, const struct proto_env *env,
		   struct proto_sess *ps, bool relay, struct proto_out *o);
/* A limit refuses the client: the protocol's temporary refusal (w, one
 * of the limit words), counter ctr and reason for the log, and PO_CLOSE. */
void proto_refuse(const struct proto_ops *ops, const struct proto_env *env,
		  struct proto_out *o, enum proto_word w, int ctr, const char *reason);
/*
 * The shared part of every command (DESIGN.md §2): a STARTTLS decided, a
 * command that needs TLS first refused. Returns true if it answered the
 * command (o filled in); false when the engine's own handler goes on.
 */
bool proto_dispatch(const struct proto_ops *ops, const struct proto_env *env,
		    struct proto_sess *ps, const struct proto_line *pl,
		    enum proto_class cls, struct proto_out *o);
/* The entry of the engine's table for pl (verb in any case; a command
 * that takes no arguments only alone), or NULL: unknown. */
const struct proto_cmd *proto_find(const struct proto_ops *ops, const struct proto_line *pl);
/* Run command c of pl: the shared rules of its class, else its handler. */
void proto_run(const struct proto_ops *ops, const struct proto_env *env,
	       struct proto_sess *ps, const struct proto_line *pl,
	       const struct proto_cmd *c, struct proto_out *o);
/* The backend refused to be opened (reason, for the log line): the
 * client gets the engine's temporary error (ops->unavailable) and the
 * close, the session PO_FAIL, counted as backend_refused. */
void proto_backend_refused(const struct proto_ops *ops, const struct proto_env *env,
			   struct proto_sess *ps, struct proto_out *o, const char *reason);
/*
 * Rule 2.7: the plaintext relay's tracker held the STARTTLS line l. Once
 * every earlier command has its reply (else false: call again later), the
 * line is answered as in the dialogue, or with the protocol's error where
 * its state forbids STARTTLS; when TLS is to start, the polite end of the
 * plaintext backend connection (ops->probe_quit) is in o->to_backend.
 * Returns true when o holds the answer.
 */
bool proto_late_starttls(const struct proto_ops *ops, const struct proto_env *env,
			 struct proto_sess *ps, const char *l, size_t len,
			 struct proto_out *o);

/*
 * Drain: may sluice say goodbye now (relay: the session relays to its
 * backend)? Only where no reply is in flight: in the relay every command
 * relayed has its final reply (but one that waits on the client:
 * ps->idle_wait), no backend line is half-relayed and no STARTTLS is held,
 * and the engine agrees (->goodbye). Returns true with
 * the protocol's goodbye (PW_SHUTTING_DOWN) and PO_CLOSE in o, and in the
 * relay the backend's polite end (QUIT/LOGOUT) in o->to_backend, as
 * proto_late_starttls does (nothing there: close it at once). False: not
 * now, ask again once the session moved.
 */
bool proto_goodbye(const struct proto_ops *ops, const struct proto_env *env,
		   struct proto_sess *ps, bool relay, struct proto_out *o);

#endif
