/*
 * The session's own internals, shared by session.c (the lifecycle, the
 * dialogue, sess_run and the timer), backend_open.c (SS_BACKEND), relay.c
 * (SS_RELAY and the late STARTTLS) and handshake.c (the TLS side). Not for
 * use outside dataplane/session/.
 */
#ifndef SLUICE_SESSION_INT_H
#define SLUICE_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quirk/quirk.h"
#include "session/session.h"

#define CLOSE_LINGER_MS 5000u   /* an alert or last reply drains, then close */

/* session.c */
/* A client quirk was seen: counted, named in the log line, and the
 * listener's action for it decides. True when the session must close (its
 * result is set); the caller closes as its state needs. */
bool sess_quirk(struct sess *s, enum quirk_id q);
/* What the protocol engine knows of the session's listener. */
struct proto_env sess_env(const struct sess *s);
/* The session's one timer, ms from now. */
void sess_arm(struct sess *s, uint64_t ms);
/* SS_DIALOGUE's timer: the plaintext (idle) timeout from the last command,
 * or the dialogue's deadline from s->t_dialogue, whichever comes first. */
void sess_arm_dialogue(struct sess *s);
/* The first verdict stands: later ones are consequences of it. */
void sess_set_result(struct sess *s, const char *result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Bytes for the client, through TLS when it is up: 0 or -errno. */
int sess_to_client(struct sess *s, const void *p, size_t len);
/* Carry out what the protocol engine answered. */
void sess_apply(struct sess *s, const struct proto_out *o);
/* The engine-call pattern: the session's env, a fresh answer *o, the
 * engine's entry X(env, ps, args..., o), then *o carried out. */
#define sess_engine(s, o, X, ...) do {                                       \
		struct proto_env env_ = sess_env(s);                          \
		po_reset(o);                                                  \
		(s)->l->ops->X(&env_, &(s)->ps, ##__VA_ARGS__, (o));          \
		sess_apply((s), (o));                                         \
	} while (0)
/* Rule 2.1: the client bytes in cin that followed a STARTTLS line (all of
 * them: the client sent them before it could know TLS would start) are
 * discarded and counted. Returns true when the listener closes on that
 * (quirks.pipelined_starttls: close): the caller closes, result set. */
bool sess_discard_after_starttls(struct sess *s);
/* Stop relaying; the client gets what is queued for it, then the close
 * (result and reason set first when reason is not NULL). */
void sess_closing(struct sess *s, const char *result, const char *reason);
/* Close the backend stream and free its buffers. */
void sess_close_backend(struct sess *s);
/* Has the client finished sending? (Bytes may still wait in our buffers.) */
bool sess_client_eof(const struct sess *s);
/* Has the client finished sending (all its bytes taken)? */
bool sess_client_done(const struct sess *s);
/* A stream's wake callback (arg: the session): run it in the loop's
 * run-again step. */
void sess_stream_wake(struct stream *st, void *arg);
/* Run s again in the core's next run-again step. */
void sess_again(struct sess *s);
/* Send what cout and bout hold, as far as the streams take it. Returns
 * true if anything moved. */
bool sess_flush(struct sess *s);
/* Decide and do the session's I/O: the only place that does. */
void sess_run(struct sess *s);
/* Close the sockets now; free the rest later. */
void sess_finish(struct sess *s);
/* Free what a finished session still holds (TLS state, buffers, the
 * engine's state) and the session. */
void sess_free(struct sess *s);

/* admit.c */
/* A new connection from peer on l: the address table's verdict (*t its
 * hold), the core's limit, stress mode and its eviction. 0, or
 * -ECONNREFUSED: refused, said, counted and logged; st is the caller's. */
int sess_admit(struct core *c, const struct listener *l, struct stream *st,
	       const struct sockaddr_storage *peer, struct lim_ticket *t);
/* Enter or leave stress mode with what the core holds now. */
void sess_stress_check(struct core *c);
/* timeouts.plaintext and .handshake in ms, shorter under stress. */
uint64_t sess_plaintext_ms(const struct sess *s);
uint64_t sess_handshake_ms(const struct sess *s);
/* The ph list: sessions before TLS and backend, longest idle first. */
void sess_ph_join(struct sess *s);
void sess_ph_touch(struct sess *s);
void sess_ph_leave(struct sess *s);

/* backend_open.c */
/* The engine needs the backend (PO_BACKEND): retire a plaintext one left
 * by a late STARTTLS, then SS_BACKEND and the first server to connect. */
void sess_backend_start(struct sess *s);
/* Connect the next backend server, or tell the client none is there. */
void sess_backend_next(struct sess *s);
/* A connect to backend server idx failed with err (-errno), the stream is
 * closed. A remote error is counted and marks the server down; a local one
 * (be_err_local) is counted apart, leaves the server as it is, and the
 * client gets the engine's temporary error at once. Returns true when the
 * session goes on to the next server (a remote error). */
bool sess_backend_lost(struct sess *s, int idx, int err);
/* The backend failed while being opened: the engine's temporary error to
 * the client, then the close. */
void sess_backend_failed(struct sess *s, const char *why);
/* SS_BACKEND: connect, then let the engine open the backend. Returns true
 * if the session moved. */
bool sess_backend(struct sess *s);

/* Connect backend server idx (a new attempt, or the same server again):
 * 0, or what io_connect returned. */
int sess_backend_connect(struct sess *s, int idx);

/* backend_tls.c: TLS to the backend, under bin/bout */
/* Does this session's backend pool speak TLS? */
bool sess_be_tls_wanted(const struct sess *s);
/* The backend connection is up, its PROXY header in bout: that header to
 * the wire in plaintext, then the client SSL object (the conservative
 * hello if the server is remembered as needing it). False when the
 * session is closing (out of memory). */
bool sess_be_tls_begin(struct sess *s);
/* The handshake: 1 done; 0 under way (a step posted to a worker now or
 * before, or waiting for I/O: sess_be_job_done takes the step back); -1
 * failed (then the session either reconnects for the conservative hello
 * or is closing). */
int sess_be_tls_handshake(struct sess *s);
/* After the handshake: bcin -> bin (SSL_read), bout -> bcout
 * (SSL_write). True if anything moved. */
bool sess_be_tls_pump(struct sess *s);
/* The backend connection is up (PROXY header queued): implicit TLS
 * begins, or STARTTLS's opening. False when the session is closing. */
bool sess_be_tls_up(struct sess *s);
/* SS_BACKEND with bst_on: one backend line of the STARTTLS opening (l in
 * bin, rest: the bytes behind it there, which the caller consumes). False
 * when the session is closing (refused) or TLS begins (stop reading). */
bool sess_be_starttls_line(struct sess *s, const char *l, size_t len, uint32_t rest);
/* Put the greeting kept by the STARTTLS opening in (empty) bin: the engine
 * opens the backend from it. */
void sess_be_replay_greeting(struct sess *s);
/* Nothing more from the backend waits to reach bin's reader. */
bool sess_be_drained(const struct sess *s);
/* The client is done: queue the close_notify to the backend, once. True
 * when it waits in bcout (send the FIN after it). */
bool sess_be_tls_close(struct sess *s);
/* Free the backend's TLS state and its ciphertext buffers; while a
 * worker holds them (be_job_out), mark them to be freed when its step
 * comes back, and cancel the step. */
void sess_be_tls_free(struct sess *s);

/* goodbye.c */
/* Drain: the protocol's goodbye if this is a safe point (and, relaying,
 * the backend's polite end). True if it was said: the session closes. */
bool sess_goodbye(struct sess *s);

/* relay.c */
/* Rule 2.7: the plaintext backend a late STARTTLS retired is closed once
 * its QUIT went out and it closed, or now (a new backend is needed). */
void sess_retire_step(struct sess *s, bool now);
/* Client -> backend: plaintext through the engine's tracker into bout.
 * Returns true if anything moved. */
bool sess_pump_c2b(struct sess *s);
/* Relay: the engine's bytes where its tracker stopped for them
 * (ps.inject_due: the trace header, session/trace.c) into bout, replacing
 * what the engine says of src's head. false while bout has no room. */
bool sess_inject(struct sess *s, struct buf *src);
/* SS_RELAY: both directions, then the half-closes. Returns true if the
 * session moved. */
bool sess_relay(struct sess *s);

/* handshake.c */
/* Seal p[0, len) for the client into cout: bytes taken (> 0), 0 when cout
 * has no room, -1 on an error (reason set). */
int sess_tls_write(struct sess *s, const void *p, size_t len);
/* Decrypt client bytes into dst (close_notify: s->tls_in_done; a fatal
 * error: s->tls_failed). Returns true if anything moved. */
bool sess_tls_pull(struct sess *s, struct buf *dst);
/* Queue our close_notify in cout; true once nothing more is owed (sent,
 * or not to be sent), false to try again when cout drained. */
bool sess_tls_close(struct sess *s);
/* Before SSL_free: mark a cleanly ended session shut down, so that
 * OpenSSL keeps it for resumption. */
void sess_tls_release(struct sess *s);
/* SS_STARTTLS/SS_HANDSHAKE: post the next handshake step when its input
 * is there. Returns true if the session moved. */
bool sess_handshake(struct sess *s);
/* The client closed while its first handshake step waits for a worker:
 * the worker skips it (tls_job.cancelled). */
void sess_cancel_job(struct sess *s);

#endif
