/*
 * The session's side of a drain (dataplane/drain.c decides when): the
 * protocol's goodbye at a safe point, and the cut at the deadline.
 *
 * Where the goodbye may come is the engine's call (proto_goodbye: no reply
 * in flight, SMTP outside a mail transaction); what the session adds is
 * what only it can see: no client bytes waiting half-read (a command line
 * begun, a TLS record not yet decrypted), no command on its way to the
 * backend, no handshake or backend opening under way. A session that is
 * busy now is asked again each time it runs (sess_run), so it gets its
 * goodbye as soon as it becomes idle: the 250 of a message's end of data
 * goes out first, then the 421, in one pass.
 *
 * In the relay the backend is ended politely, as for a late STARTTLS
 * (rule 2.7, relay.c): its QUIT/LOGOUT queued, what it answers swallowed,
 * the connection closed once it closed (sess_retire_step).
 */
#include <stdbool.h>

#include "session/session.h"
#include "session/session_int.h"

/* Is anything of the client's half-read: a line begun, a record not yet
 * decrypted, bytes approved but not yet with the backend? */
static bool sess_client_pending(const struct sess *s)
{
	return buf_len(&s->cin) || buf_len(&s->pin) || s->scan_ok || buf_len(&s->bout) ||
	       buf_len(&s->bin) || s->lr.discarding || s->lr.literal;
}

/* Say the goodbye if this is a safe point. Returns true if it was said
 * (the session is closing from now on). */
bool sess_goodbye(struct sess *s)
{
	struct proto_env env;
	struct proto_out o;
	bool relay;

	if (s->bye || s->cli.kind == SK_DEAD || s->job_out || s->cli.failed ||
	    sess_client_pending(s))
		return false;
	if (s->state == SS_DIALOGUE && !s->greet_held)
		relay = false;
	else if (s->state == SS_RELAY && s->c2b && s->b2c && !s->be_retiring &&
		 stream_is_open(&s->be) && !s->be.eof && !s->be.failed && !s->be_fin_sent)
		relay = true;
	else
		return false; /* handshake, backend opening, closing: not yet */
	env = sess_env(s);
	po_reset(&o);
	if (!proto_goodbye(s->l->ops, &env, &s->ps, relay, &o))
		return false;
	s->bye = true;
	sess_set_result(s, "drain", "goodbye said: sluice draining");
	if (relay) {
		s->c2b = s->b2c = false; /* nothing more moves either way */
		if (o.to_backend_len)
			s->be_retiring = true; /* its answer swallowed, then closed */
	}
	s->t_active = s->core->now_ms;
	sess_apply(s, &o);
	return true;
}

/* Has the session said all it will (closing, its last bytes and FIN
 * sent)? What is left is the client's FIN, which a drain need not await. */
static bool sess_settled(const struct sess *s)
{
	return s->state == SS_CLOSING && !buf_len(&s->cout) && (s->cli.shut_wr || s->cli.failed);
}

unsigned sess_drain_sweep(struct core *c)
{
	unsigned busy = 0;

	for (struct sess *s = c->sessions; s; s = s->next) {
		if (sess_goodbye(s))
			sess_again(s); /* the goodbye goes out in this pass */
		else if (!sess_settled(s))
			busy++;
	}
	return busy;
}

unsigned sess_drain_cut(struct core *c)
{
	struct sess *s;
	unsigned cut = 0;

	while ((s = c->sessions)) {
		if (!s->bye && !sess_settled(s)) {
			sctr_inc(s, CTR_drain_cut);
			sess_set_result(s, "drain-cut", "still busy at the drain's deadline");
			cut++;
		}
		/* TLS ends with our close_notify where the record layer is
		 * ours (not while a worker holds it), then what fits goes. */
		if (!s->job_out && s->tls && !s->tls_failed) {
			(void)sess_tls_close(s);
			sess_flush(s);
		}
		sess_finish(s);
	}
	return cut;
}
