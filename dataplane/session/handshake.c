/*
 * The session's TLS side (DESIGN.md §2, §4, §5): the first bytes after the
 * STARTTLS OK, the ClientHello read and fingerprinted, the certificate
 * chosen (tls/certsel), the handshake steps posted to a TLS worker and
 * taken back, the TLS facts counted once it is up, and the record I/O
 * afterwards: OpenSSL's SSL_read/SSL_write over the BIO on the session's
 * buffers (tls/record.c), and close_notify both ways (DESIGN.md §2 rule
 * 8). session.c decides when; this file does the TLS.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <openssl/err.h>

#include "clock.h"
#include "log.h"
#include "logsafe.h"
#include "quirk/quirk.h"
#include "hello.h"
#include "session/backend.h"
#include "session/ftp_data.h"
#include "session/session.h"
#include "session/session_int.h"
#include "fpstat.h"
#include "snap.h"

static void sess_fingerprint_done(struct sess *s, bool ok);

static const int certsel_ctr[CERTSEL_R_COUNT] = {
#define R(name, label, kind, group, rfc, sentence, fix, ossl) CTR_certsel_##name,
#include "certsel_rules.def"
#undef R
};

/*
 * A failed handshake, counted under its reason (docs/metrics.md,
 * sluice_tls_handshake_failures_total): the tls/certsel rule that said no
 * certificate could serve the client when there is one (the client's
 * alert or close came after sluice's), else kind (a CTR_hsfail_).
 */
static void sess_count_hs_fail(struct sess *s, int kind)
{
	sctr_inc(s, CTR_handshake_fail);
	sctr_inc(s, s->certsel_rule != CERTSEL_R_OK ? certsel_ctr[s->certsel_rule] : kind);
}

/* The failure kind of a failed handshake step: the client's alert when
 * it sent one (tls/alerts.def), else from OpenSSL's reason. */
static int hs_fail_kind(const struct tls_job *j)
{
	const char *reason = j->reason;

	switch (j->peer_alert) {
#define A(code, name, rfc8460) case code: return CTR_hsfail_alert_##name;
#include "alerts.def"
#undef A
	default:
		break;
	}
	if (j->peer_alert >= 0 || strstr(reason, "alert"))
		return CTR_hsfail_peer_alert;  /* "sslv3 alert ...", "tlsv1 alert ..." */
	if (strstr(reason, "unexpected eof") || strstr(reason, "reset"))
		return CTR_hsfail_client_gone;
	return CTR_hsfail_other;
}

/* The handshake's duration, from the ClientHello's first bytes, into the
 * listener's histogram (hs_buckets.def). */
static void sess_count_hs_time(struct sess *s)
{
	static const uint64_t le[] = {
#define B(us, label) us,
#include "hs_buckets.def"
#undef B
	};
	struct core *c = s->core;
	uint64_t us;
	unsigned b;

	if (!s->t_hello_us)
		return;
	us = clock_mono_us() - s->t_hello_us;
	for (b = 0; b < sizeof(le) / sizeof(le[0]) && us > le[b]; b++)
		;
	c->hs_hist[s->l->slot][b]++;
	c->hs_sum_us[s->l->slot] += us;
}

/*
 * Room in cout that one SSL_write never needs more than on top of its
 * plaintext: TLS 1.3 AEAD 22 bytes, TLS 1.2 GCM 29, CBC with SHA-384 up to
 * 85, TLS 1.0 CBC about 80 with the empty record OpenSSL writes first,
 * plus a KeyUpdate answer it may owe before the data (27, RFC 8446 4.6.3).
 * With that much room SSL_write never runs out of BIO space halfway: a
 * record written in part would tie the next SSL_write to the same bytes.
 * Below the room sess_dialogue() keeps beside a reply.
 */
#define TLS_WRITE_SLACK 256u
/*
 * Room in cout that SSL_read may need: one alert (at most 85 bytes, a CBC
 * record) or one KeyUpdate answer (27). A write leaves at least
 * TLS_WRITE_SLACK less its record's overhead, so relayed data never stops
 * the reading. When the room is short, reading waits for cout to drain:
 * a fatal alert that OpenSSL could not write is never sent.
 */
#define TLS_READ_ROOM 128u

/* OpenSSL's reason for a failed TLS read or write, with the alert it sent,
 * if any, into the session's verdict (the first one stands). */
static void sess_tls_failed(struct sess *s, const char *what)
{
	char ebuf[120];

	sess_set_result(s, "error", "TLS %s failed: %s", what,
			ERR_peek_error() ? tls_err_string(ebuf, sizeof(ebuf)) : "no reason given");
	/* A fatal alert may be in cout: it goes out, close_notify does not
	 * (RFC 8446 6.2: the connection ends with the alert). */
	s->tls_failed = true;
}

/*
 * Seal p[0, len) for the client into cout with SSL_write: at most one
 * record per call, and only when cout has room for all of it. Returns the
 * bytes taken (> 0), 0 when cout has no room, or -1 on an error (reason
 * set, s->tls_failed).
 */
int sess_tls_write(struct sess *s, const void *p, size_t len)
{
	int n, e;

	if (s->tls_failed)
		return -1;
	if (len > SSL3_RT_MAX_PLAIN_LENGTH)
		len = SSL3_RT_MAX_PLAIN_LENGTH;
	if (buf_room(&s->cout) < len + TLS_WRITE_SLACK)
		return 0;
	ERR_clear_error();
	n = SSL_write(s->ssl, p, (int)len);
	if (n > 0)
		return n;
	e = SSL_get_error(s->ssl, n);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
		return 0; /* not with the room checked above; harmless */
	sess_tls_failed(s, "write");
	return -1;
}

/*
 * Decrypt client bytes into dst with SSL_read. OpenSSL does the record
 * layer: record sizes (RFC 8446 5.1, RFC 5246 6.2), KeyUpdate and its
 * answer (RFC 8446 4.6.3), alerts; a fatal error leaves its alert in cout
 * and sets s->tls_failed. close_notify (or EOF) sets s->tls_in_done, after
 * the data before it. Returns true if anything moved.
 */
bool sess_tls_pull(struct sess *s, struct buf *dst)
{
	bool did = false;

	while (buf_room(dst) && !s->cli.failed && !s->tls_failed && !s->tls_in_done) {
		uint8_t *p;
		uint32_t room;
		int n, e;

		/* Nothing to decrypt: do not call SSL_read, which would set up
		 * its 16 KiB record buffer and keep it through an idle wait. */
		if (buf_len(&s->cin) == 0 && !s->tio.in_eof && !s->tls_read_blocked &&
		    !SSL_has_pending(s->ssl))
			break;
		/* What SSL_read may have to write (an alert, a KeyUpdate
		 * answer) must fit: cout drains first. */
		if (buf_room(&s->cout) < TLS_READ_ROOM)
			break;
		if (buf_space(dst, &p, &room) < 0)
			break;
		ERR_clear_error();
		n = SSL_read(s->ssl, p, (int)room);
		s->tls_read_blocked = false;
		if (n > 0) {
			dst->tail += (uint32_t)n;
			did = true;
			continue;
		}
		buf_consume(dst, 0); /* frees dst's storage if it stayed empty */
		e = SSL_get_error(s->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_WANT_WRITE) {
			s->tls_read_blocked = true; /* again once cout drained */
			break;
		}
		if (e == SSL_ERROR_ZERO_RETURN) {
			/* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
			s->tls_in_done = true;
			did = true;
			break;
		}
		sess_tls_failed(s, "read");
		did = true;
		break;
	}
	return did;
}

/*
 * Send close_notify (RFC 8446 6.1, RFC 5246 7.2.1): into cout, or, when
 * cout has no room for it, once it drained (called again). Not after a
 * fatal error, whose alert ended the connection. Returns true once nothing
 * more is owed.
 */
bool sess_tls_close(struct sess *s)
{
	int rc;

	if (!s->tls || s->tls_close_sent || s->tls_failed || s->cli.failed)
		return true;
	if (buf_room(&s->cout) < TLS_READ_ROOM) /* an alert's room */
		return false;
	ERR_clear_error();
	rc = SSL_shutdown(s->ssl);
	if (rc < 0 && SSL_get_error(s->ssl, rc) == SSL_ERROR_WANT_WRITE)
		return false;
	/* 0: sent, the client's is still due; 1: both; < 0: broken, and
	 * nothing more will go. */
	ERR_clear_error();
	s->tls_close_sent = true;
	return true;
}

/*
 * Before SSL_free: a TLS session that ended without a fatal error is
 * marked shut down, so that OpenSSL keeps it for resumption (it drops
 * the session of an SSL object freed otherwise, ssl_clear_bad_session).
 * A client that vanished without close_notify still resumes: RFC 5246
 * 7.2.1 allows it since TLS 1.1. A fatal alert, sent or received, had
 * OpenSSL remove the session already.
 */
void sess_tls_release(struct sess *s)
{
	if (!s->ssl || !s->tls || s->tls_failed || SSL_in_init(s->ssl))
		return;
	if (!(SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN)) {
		SSL_set_quiet_shutdown(s->ssl, 1); /* flags only, no I/O */
		(void)SSL_shutdown(s->ssl);
		ERR_clear_error();
	}
}

/* The counter of a cipher suite, by its code point; -1 if sluice does not
 * know it. */
static int cipher_ctr(uint16_t id)
{
	switch (id) {
#define SUITE(sid, ossl, iana, kx, auth, aead, minv, maxv, bits) case sid: return CTR_cipher_##sid;
#include "policy.def"
#undef SUITE
	default:
		return -1;
	}
}

/* What the handshake agreed on, into the counters: the key that signed
 * is the chosen certificate's (tc, its type read at load) or, from the
 * set's combined SSL_CTX, OpenSSL's pick (k). */
static void sess_count_tls(struct sess *s, const struct tls_cert *tc, const EVP_PKEY *k)
{
	int nid = SSL_get_negotiated_group(s->ssl);
	const SSL_CIPHER *ciph = SSL_get_current_cipher(s->ssl);

	switch (SSL_version(s->ssl)) {
	case TLS1_VERSION:   sctr_inc(s, CTR_tls_v1_0); break;
	case TLS1_1_VERSION: sctr_inc(s, CTR_tls_v1_1); break;
	case TLS1_2_VERSION: sctr_inc(s, CTR_tls_v1_2); break;
	case TLS1_3_VERSION: sctr_inc(s, CTR_tls_v1_3); break;
	}
	sctr_inc(s, nid == NID_X25519 ? CTR_group_x25519 : nid == NID_X9_62_prime256v1 ?
		CTR_group_p256 : nid == NID_secp384r1 ? CTR_group_p384 : CTR_group_other);
	if (ciph)
		sctr_inc(s, cipher_ctr((uint16_t)SSL_CIPHER_get_protocol_id(ciph)));
	if (SSL_version(s->ssl) == TLS1_3_VERSION || SSL_get_extms_support(s->ssl) == 1)
		sctr_inc(s, CTR_tls_ems);
	s->resumed = SSL_session_reused(s->ssl) == 1;
	if (s->resumed) {
		sctr_inc(s, CTR_handshake_resumed);
		/* TLS 1.3 resumes only with a PSK (a ticket); below, from the
		 * ticket the client sent, else from the session-ID cache. */
		sctr_inc(s, SSL_version(s->ssl) == TLS1_3_VERSION || s->hello_ticket ?
			 CTR_resumed_ticket : CTR_resumed_cache);
		snprintf(s->cert_kind, sizeof(s->cert_kind), "-"); /* none was sent */
		return;
	}
	if (tc) {
		snprintf(s->cert_kind, sizeof(s->cert_kind), "%s", tc->kind);
		switch (tc->type) {
		case TLS_KEY_RSA:        sctr_inc(s, CTR_cert_rsa); break;
		case TLS_KEY_ED25519:    sctr_inc(s, CTR_cert_ed25519); break;
		case TLS_KEY_ECDSA_P384: sctr_inc(s, CTR_cert_ecdsa_p384); break;
		case TLS_KEY_ECDSA_P256: sctr_inc(s, CTR_cert_ecdsa_p256); break;
		default: break;
		}
		return;
	}
	if (!k)
		return;
	tls_key_kind(k, s->cert_kind, sizeof(s->cert_kind));
	if (EVP_PKEY_is_a(k, "RSA"))
		sctr_inc(s, CTR_cert_rsa);
	else if (EVP_PKEY_is_a(k, "ED25519"))
		sctr_inc(s, CTR_cert_ed25519);
	else if (!strcmp(s->cert_kind, "ecdsa-p384"))
		sctr_inc(s, CTR_cert_ecdsa_p384);
	else if (!strcmp(s->cert_kind, "ecdsa-p256"))
		sctr_inc(s, CTR_cert_ecdsa_p256);
}

/* Did OpenSSL fail for a reason of its own negotiation (what certsel
 * models), rather than the client's alert or a broken connection? */
static bool tls_negotiation_failed(const char *reason)
{
	static const char *const words[] = {
		"no shared cipher", "no suitable signature algorithm",
		"no shared signature algorithms", "unsupported protocol",
		"no suitable key share", "inappropriate fallback",
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(reason, words[i]))
			return true;
	return false;
}

/* tls/certsel and OpenSSL disagreed: a bug in the model, counted and
 * logged with what it takes to reproduce it (the fingerprint). */
static void sess_certsel_disagree(struct sess *s, const char *what)
{
	char why[4 * sizeof(s->certsel_err)];

	sctr_inc(s, CTR_certsel_disagree);
	log_msg(LOG_WARNING, "certsel: %s: conn=%llx listener=%s ja4=%s cert=%d policy=%s "
		"certsel=\"%s\"", what, (unsigned long long)s->id, s->l->cfg->name,
		s->ja4[0] ? s->ja4 : "-", s->cert == TLS_CERT_ANY ? -1 : s->cert,
		cfg_policy_name((enum cfg_policy)s->policy),
		s->certsel_err[0] ? logsafe_quoted(s->certsel_err, why, sizeof(why)) : "ok");
}

/* The handshake is done: record what was agreed, forget the plaintext. */
static void sess_tls_up(struct sess *s)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
	const char *sni = SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
	const struct tls_certset *set = s->l->sets[s->set];
	/* The certificate certsel chose: what it is was read at load, not
	 * asked of OpenSSL's key again per handshake (provider queries). */
	const struct tls_cert *tc = s->cert < set->n ? &set->cert[s->cert] : NULL;
	EVP_PKEY *k = tc ? NULL : SSL_get_privatekey(s->ssl);
	struct proto_out o;

	s->tls = true;
	sctr_inc(s, CTR_handshake_ok);
	if (s->starttls)
		sctr_inc(s, CTR_starttls_ok);
	sess_count_hs_time(s);
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(s->ssl));
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", c ? SSL_CIPHER_get_name(c) : "-");
	snprintf(s->sni, sizeof(s->sni), "%s", sni ? sni : "");
	sess_count_tls(s, tc, k);
	sess_fingerprint_done(s, true);
	if (!fdata_control_tls(s)) { /* FTP: ftp.require_ems */
		sess_closing(s, NULL, NULL);
		return;
	}
	s->l->ops->tls_started(&s->ps);
	lr_init(&s->lr, s->l->ops->line_max);
	s->state = SS_DIALOGUE;
	s->t_active = s->t_dialogue = s->core->now_ms; /* a new dialogue, in TLS */
	sess_arm_dialogue(s);
	if (!s->starttls)
		sess_engine(s, &o, greeting);
}

#define REPEAT_LINE_MAX 128 /* "tag STARTTLS" fits many times over */

/*
 * The first bytes after sluice's STARTTLS OK. A TLS record (0x16, or the
 * high bit of an SSLv2-format hello) goes on to the handshake. The STARTTLS
 * command again, exactly and alone (Outlook for iOS/Android), is answered
 * with the same OK, twice at most. Anything else closes the connection: no
 * other plaintext is ever read there. Returns true when the handshake may
 * start; false while waiting, or when the session went elsewhere.
 */
static bool sess_after_starttls(struct sess *s)
{
	const uint8_t *p = buf_head(&s->cin);
	struct linereader lr;
	struct lr_line line;
	struct proto_env env;
	struct proto_out o;
	size_t used;
	enum lr_event ev;

	if (p[0] == 0x16 || (p[0] & 0x80))
		return true;
	lr_init(&lr, REPEAT_LINE_MAX);
	ev = lr_next(&lr, p, buf_len(&s->cin), &line, &used);
	if (ev == LR_NEED_MORE && !s->cli.eof && buf_len(&s->cin) < REPEAT_LINE_MAX)
		return false; /* a repeat may still be on its way */
	env = sess_env(s);
	po_reset(&o);
	if (ev == LR_LINE && line.crlf && s->starttls_repeats < 2 && s->l->ops->starttls_again &&
	    s->l->ops->starttls_again(&env, &s->ps, line.p, line.len, &o)) {
		if (sess_quirk(s, QUIRK_second_starttls)) {
			sess_finish(s);
			return false;
		}
		s->starttls_repeats++;
		buf_consume(&s->cin, (uint32_t)used);
		if (sess_discard_after_starttls(s)) { /* rule 2.1 again */
			sess_finish(s);
			return false;
		}
		if (sess_to_client(s, o.reply, o.reply_len) < 0) {
			sess_finish(s);
			return false;
		}
		s->state = SS_STARTTLS; /* the OK drains, then the handshake */
		return false;
	}
	sess_quirk(s, QUIRK_not_tls_after_starttls);
	sess_set_result(s, "client-error", "plaintext after the STARTTLS OK%s",
			s->starttls_repeats >= 2 ? " (STARTTLS repeated too often)" : "");
	sess_finish(s);
	return false;
}

/*
 * The cert set the client's SNI names (the listener's first when it names
 * none of them), and the certificate of it.
 */
static void sess_choose_cert(struct sess *s, const struct hello *h)
{
	const struct listener *l = s->l;
	const struct tls_certset *set;
	struct certsel_verdict v;

	s->set = (uint8_t)tls_certset_for_sni(l->sets, l->n_sets, h);
	set = l->sets[s->set];
	s->cert = TLS_CERT_ANY;
	s->certsel_rule = CERTSEL_R_OK;
	if (certsel_choose(h, set->sel, set->n, tls_policy((enum cfg_policy)s->policy),
			   (int64_t)time(NULL), &v) == 0) {
		s->cert = (uint8_t)v.chosen;
		return;
	}
	/* Nothing works: OpenSSL gets the set's combined SSL_CTX and fails
	 * with its alert; the log says which rule, in words. */
	s->certsel_rule = (uint8_t)v.rule; /* counted if the handshake fails */
	certsel_reason(h, set->sel, set->n, tls_policy((enum cfg_policy)s->policy), &v, -1,
		       s->certsel_err, sizeof(s->certsel_err));
}

/*
 * The client's fingerprint in the core's table, by listener: counted, its
 * last address and time; the first time it is seen there, the bytes of its
 * ClientHello (for sluice-control's "who would break", control/impact.c)
 * and whether it would get a certificate under each policy (with the cert
 * set its SNI picks).
 */
static void sess_fingerprint(struct sess *s, const struct hello *h)
{
	bool created;
	long long now = clock_real_s();
	struct fp_entry *e = fp_find(s->core->fp, s->ja4, s->l->cfg->name, now, &created);
	const struct tls_certset *set = s->l->sets[s->set];
	char addr[64];

	if (!e)
		return;
	e->hello++;
	e->last_seen = now;
	fp_note_client(e, fmt_addr(&s->peer, addr, sizeof(addr)));
	if (created) {
		size_t len = h->consumed <= buf_len(&s->cin) ? h->consumed : buf_len(&s->cin);

		fp_set_hello(s->core->fp, e, buf_head(&s->cin), len);
		for (unsigned p = 0; p < CFG_POLICY_COUNT && p < FP_POLICIES; p++) {
			struct certsel_verdict v;

			e->verdict[p] = certsel_choose(h, set->sel, set->n,
						       tls_policy((enum cfg_policy)p),
						       (int64_t)now, &v) == 0
					? "ok" : certsel_rule_label(v.rule);
		}
	}
	fp_publish(e);
}

/* The fingerprint's handshake ended: done (version agreed) or failed. */
static void sess_fingerprint_done(struct sess *s, bool ok)
{
	bool created;
	struct fp_entry *e = s->ja4[0] ? fp_find(s->core->fp, s->ja4, s->l->cfg->name,
						 clock_real_s(), &created) : NULL;

	if (!e)
		return;
	if (ok) {
		e->ok++;
		snprintf(e->version, sizeof(e->version), "%s", s->tls_version);
	} else {
		e->fail++;
	}
	fp_publish(e);
}

/* The ClientHello offers to resume (a PSK, a ticket, or below TLS 1.3 a
 * session ID): not a full handshake, no signature. A TLS 1.3 client's
 * session ID is the middlebox-compatibility one, not an offer. */
static bool sess_hello_resumes(const struct hello *h)
{
	return h->psk_identities || h->ticket_len ||
	       (h->version < 0x0304 && h->session_id_len);
}

/*
 * Read the ClientHello on the core before the first handshake step
 * (DESIGN.md §3): its fingerprint goes to the log line, what it shows goes
 * to the quirk counters, and a broken one is explained in words. OpenSSL
 * still decides the handshake, unless the listener closes on a quirk the
 * hello shows (quirks.sslv2_hello, quirks.no_ems). Returns 0 while more of
 * it is due, 1 when it was read, -1 when the session was closed for it.
 */
static int sess_read_hello(struct sess *s)
{
	struct hello h;
	enum hello_reason why;
	enum hello_result r = hello_parse(buf_head(&s->cin), buf_len(&s->cin), &h, &why);

	if (!s->t_hello_us)
		s->t_hello_us = clock_mono_us(); /* the handshake's duration from here */
	if (r == HELLO_MORE && buf_room(&s->cin) && !s->cli.eof)
		return 0; /* the worker gets the whole hello in one step */
	s->hello_seen = true;
	if (r == HELLO_MORE && !buf_room(&s->cin)) {
		/* A hello larger than the input buffer (no client sends one:
		 * even post-quantum key shares take a few KiB). Handing the
		 * first part to OpenSSL would skip the quirk checks and the
		 * certificate choice above: refused, as a hello that breaks
		 * the rules. */
		sctr_inc(s, CTR_hello_too_big);
		sess_set_result(s, "tls-refused", "ClientHello larger than %u bytes", BUF_CAP);
		goto refuse;
	}
	if (r == HELLO_OK && !sess_hello_resumes(&h) &&
	    !limits_handshake(&s->l->cfg->limits, &s->lim, s->core->now_ms)) {
		/* limits.per_address.handshakes: refused before any work
		 * (no signature), with a handshake_failure alert in the
		 * clear, as a server that cannot serve this hello would. */
		static const uint8_t alert[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 };
		char addr[64];

		sctr_inc(s, CTR_handshake_refused_rate);
		sess_set_result(s, "refused", "limits.per_address.handshakes: %u full handshakes a "
				"minute", s->l->cfg->limits.handshakes);
		log_msg(LOG_NOTICE, "event=refused listener=%s client=%s limit=per_address.handshakes "
			"value=%u reply=tls-alert", s->l->cfg->name,
			fmt_addr(&s->peer, addr, sizeof(addr)), s->l->cfg->limits.handshakes);
		if (sess_to_client(s, alert, sizeof(alert)) == 0)
			(void)sess_flush(s);
		sess_finish(s);
		return -1;
	}
	if (r == HELLO_OK) {
		s->hello_ticket = h.ticket_len || h.psk_identities;
		snprintf(s->ja4, sizeof(s->ja4), "%s", h.ja4);
		sess_choose_cert(s, &h);
		sess_fingerprint(s, &h);
		if (h.flags & HELLO_F_FALLBACK_SCSV)
			sess_quirk(s, QUIRK_fallback_scsv);
		if ((h.flags & HELLO_F_SSLV2) && sess_quirk(s, QUIRK_sslv2_hello))
			goto refuse;
		if (!(h.flags & HELLO_F_EMS) && h.version < 0x0304 && sess_quirk(s, QUIRK_no_ems))
			goto refuse;
	} else if (r == HELLO_BAD) {
		char why_text[96];

		sess_quirk(s, QUIRK_bad_hello);
		hello_explain(&h, why_text, sizeof(why_text));
		snprintf(s->hello_err, sizeof(s->hello_err), "%s", why_text);
	}
	return 1;

refuse:
	/* No alert: the record layer has not started, and a client this old
	 * would not read one that names the reason. The log line does
	 * (sess_quirk set the result). */
	sess_count_hs_fail(s, CTR_hsfail_bad_hello);
	sess_finish(s);
	return -1;
}

/* SS_HANDSHAKE: post the next step when its input is there. */
bool sess_handshake(struct sess *s)
{
	if (s->job_out)
		return false;
	if (!s->ssl && s->starttls && buf_len(&s->cin) && !sess_after_starttls(s))
		return s->state == SS_STARTTLS;
	if (!s->ssl && !s->hello_seen && buf_len(&s->cin) && sess_read_hello(s) <= 0)
		return false;
	if (buf_len(&s->cout))
		return false; /* flush first: the client needs our flight */
	if (s->ssl && !s->want_write_first && buf_len(&s->cin) <= s->hs_left) {
		if (s->cli.eof) {
			sess_count_hs_fail(s, CTR_hsfail_client_gone);
			sess_set_result(s, "tls-failed", "client closed during the handshake");
			sess_finish(s);
		}
		return false;
	}
	if (!s->ssl && buf_len(&s->cin) == 0) {
		if (s->cli.eof) {
			sess_set_result(s, "ok", "client closed before the handshake");
			sess_finish(s);
		}
		return false;
	}
	if (!s->ssl && (s->cli.eof || s->cli.failed)) {
		/* A ClientHello and the close behind it: the handshake can
		 * never finish (the client's Finished cannot come), so the
		 * first step, with its signature, is not run. */
		sctr_inc(s, CTR_handshake_jobs_skipped);
		sess_count_hs_fail(s, CTR_hsfail_client_gone);
		sess_set_result(s, "tls-failed", "client closed right after its ClientHello");
		sess_finish(s);
		return false;
	}
	s->want_write_first = false;
	s->tio.in_eof = s->cli.eof;
	s->job.owner = s;
	s->job.kind = TLSJ_SERVER;
	s->job.ssl = s->ssl;
	s->job.io = &s->tio;
	s->job.sid = s->l->cfg->name;
	s->job.ctxs = s->snap->ctxs;
	s->job.set = s->l->set_ids[s->set];
	s->job.cert = s->cert;
	s->job.policy = s->policy;
	s->job.reason[0] = 0;
	s->job.peer_alert = -1;
	if (!tlsw_post(s->core->id, &s->job)) {
		sctr_inc(s, CTR_worker_queue_full);
		sess_set_result(s, "overload", "all TLS workers are busy");
		sess_finish(s);
		return false;
	}
	sctr_inc(s, CTR_handshake_jobs);
	s->core->jobs_posted++;
	s->job_out = true;
	return true;
}

void sess_job_done(struct tls_job *j)
{
	struct sess *s = j->owner;

	if (fdata_job(j))
		return; /* an FTP data connection's */

	s->job_out = false;
	s->ssl = j->ssl;
	if (j->skipped)
		sctr_inc(s, CTR_handshake_jobs_skipped);
	if (s->dead) {
		sess_finish(s); /* now that the worker let go */
		return;
	}
	switch (j->status) {
	case TLSJ_DONE:
		if (s->certsel_rule != CERTSEL_R_OK)
			sess_certsel_disagree(s, "OpenSSL completed a handshake certsel said fails");
		sess_tls_up(s);
		break;
	case TLSJ_WANT_READ:
		/* Post again only once more bytes came in. */
		s->hs_left = buf_len(&s->cin);
		sess_ph_touch(s);
		break;
	case TLSJ_WANT_WRITE:
		s->want_write_first = true;
		break;
	default:
		sess_count_hs_fail(s, hs_fail_kind(j));
		sess_fingerprint_done(s, false);
		if (s->cert != TLS_CERT_ANY && tls_negotiation_failed(j->reason))
			sess_certsel_disagree(s, "OpenSSL failed a handshake certsel chose a "
					      "certificate for");
		if (s->hello_err[0])
			sess_set_result(s, "tls-failed", "handshake: %s; ClientHello: %s", j->reason,
					s->hello_err);
		else if (s->certsel_err[0])
			sess_set_result(s, "tls-failed", "handshake: %s; %s", j->reason,
					s->certsel_err);
		else
			sess_set_result(s, "tls-failed", "handshake: %s", j->reason);
		/* An alert may be in cout: let it go out, then close. */
		s->state = SS_CLOSING;
		sess_arm(s, CLOSE_LINGER_MS);
		break;
	}
	sess_run(s);
}

void sess_cancel_job(struct sess *s)
{
	/* Only the first step signs; later ones are cheap and may carry
	 * the client's Finished, sent with its close. */
	if (s->job_out && !s->ssl)
		atomic_store_explicit(&s->job.cancelled, true, memory_order_release);
}

void sess_job_orphan(struct tls_job *j)
{
	struct sess *s = j->owner;

	if (fdata_job(j))
		return; /* its session freed it already: the job's return does */

	if (j->kind == TLSJ_CLIENT) {
		s->be_job_out = false;
		sess_be_tls_free(s); /* be_ssl, bcin, bcout: ours again */
	} else {
		s->job_out = false;
		s->ssl = j->ssl; /* the worker's to give back, and it did */
	}
	if (s->job_out || s->be_job_out)
		return; /* its other job is still on a ring: freed with that */
	sess_free(s);
}
