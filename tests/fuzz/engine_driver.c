/* The engine driver of the fuzz targets: see engine_driver.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_driver.h"
#include "proto/linereader.h"

/* 0. the probe, over the backend's part [a, b): the caps it learns. */
static struct proto_caps *fz_probe(const struct proto_ops *ops, const uint8_t *data, size_t a,
				   size_t b)
{
	struct proto_caps *probed = calloc(1, sizeof(*probed));
	int st = 0, rc = 1;
	size_t off = a;

	if (!probed)
		abort();
	while (off < b && (rc == 0 || rc == 1)) {
		const uint8_t *lf = memchr(data + off, '\n', b - off);
		size_t ll, l2;
		char *line;

		if (!lf)
			break;
		ll = (size_t)(lf - (data + off));
		l2 = ll && data[off + ll - 1] == '\r' ? ll - 1 : ll;
		line = malloc(l2 ? l2 : 1);
		if (!line)
			abort();
		memcpy(line, data + off, l2); /* exactly the line: ASan sees overreads */
		rc = ops->probe_line(&st, line, l2, probed);
		free(line);
		off += ll + 1;
		if (probed->n > CAPS_MAX)
			abort();
	}
	return probed;
}

/* 1. the dialogue over [5, a), in reads of varying size. */
static void fz_dialogue(const struct fz_engine *e, const struct proto_ops *ops,
			const struct proto_env *env, struct proto_sess *ps, const uint8_t *data,
			size_t a, unsigned seed)
{
	struct linereader lr;
	struct proto_out o;
	size_t off = 5, end = 5, used;

	lr_init(&lr, ops->line_max);
	po_reset(&o);
	ops->greeting(env, ps, &o);
	e->check_out(&o);
	while (end < a) {
		bool stop = false;
		/* the next read arrives: bytes [off, end) are what is held */
		size_t step = 1 + (size_t)((data[end] ^ seed * 37) % 113);

		end = end + step > a ? a : end + step;
		while (off < end) {
			struct lr_line line;
			enum lr_event ev = lr_next(&lr, data + off, end - off, &line, &used);

			if (used > end - off)
				abort();
			if (ev == LR_NEED_MORE) {
				off += used;
				break;
			}
			if (ev == LR_LITERAL) { /* data of a literal, not a line */
				if (!e->literal_max)
					abort();
				off += used;
				continue;
			}
			po_reset(&o);
			if (ev == LR_TOO_LONG) {
				ops->too_long(env, ps, &o);
			} else {
				char *l = malloc(line.len ? line.len : 1);

				if (!l)
					abort();
				memcpy(l, line.p, line.len); /* exactly the line: ASan sees overreads */
				ops->client_line(env, ps, l, line.len, line.has_nul, &o);
				if ((o.flags & PO_STARTTLS) &&
				    (line.has_nul || !e->is_tls_verb(l, line.len) || ps->in_tls))
					abort();
				free(l);
			}
			e->check_out(&o);
			if (o.literal > e->literal_max || (o.literal && ev != LR_LINE) ||
			    (o.literal && (o.flags & (PO_CLOSE | PO_BACKEND | PO_STARTTLS))))
				abort();
			if (!(o.flags & PO_BACKEND))
				off += used;
			if (o.literal)
				lr_literal(&lr, o.literal);
			if (o.flags & (PO_BACKEND | PO_CLOSE)) {
				stop = true;
				break;
			}
			if (o.flags & PO_STARTTLS) {
				/* rule 2.1: the rest of this read is gone */
				off = end;
				ops->tls_started(ps);
				lr_init(&lr, ops->line_max);
				break;
			}
		}
		if (stop)
			break;
	}
}

/* 2. the backend's opening over [a, b), then its timer. */
static void fz_backend_opening(const struct fz_engine *e, const struct proto_ops *ops,
			       const struct proto_env *env, struct proto_sess *ps,
			       const uint8_t *data, size_t a, size_t b)
{
	struct linereader lr;
	struct proto_out o;
	size_t off = a, used;

	lr_init(&lr, BACKEND_LINE_MAX);
	while (off < b) {
		struct lr_line line;
		enum lr_event ev = lr_next(&lr, data + off, b - off, &line, &used);
		char *l;

		if (used > b - off)
			abort();
		if (ev != LR_LINE)
			break;
		l = malloc(line.len ? line.len : 1);
		if (!l)
			abort();
		memcpy(l, line.p, line.len);
		po_reset(&o);
		ops->backend_line(env, ps, l, line.len, &o);
		free(l);
		e->check_out(&o);
		off += used;
		if (o.flags & (PO_RELAY | PO_FAIL))
			break;
	}
	po_reset(&o);
	ops->timeout(env, ps, &o);
	e->check_out(&o);
}

/* A STARTTLS the plaintext relay's tracker held at p: answered as the
 * session does (once the backend replied to all before it); returns the
 * bytes of its line, *stop when the relay ends there. Only whole lines are
 * held, and the answer lets go of them. */
static size_t fz_late(const struct fz_engine *e, const struct proto_ops *ops,
		      const struct proto_env *env, struct proto_sess *ps, const uint8_t *p,
		      size_t len, bool *stop)
{
	const uint8_t *lf = memchr(p, '\n', len);
	struct proto_out o;
	size_t ll;
	char *l;

	if (!lf || ps->in_tls)
		abort();
	ll = (size_t)(lf - p);
	if (ll && p[ll - 1] == '\r')
		ll--;
	l = malloc(ll ? ll : 1);
	if (!l)
		abort();
	memcpy(l, p, ll); /* exactly the line: ASan sees overreads */
	po_reset(&o);
	if (!proto_late_starttls(ops, env, ps, l, ll, &o)) {
		ps->replies = ps->cmds; /* the backend answered them all */
		po_reset(&o);
		if (!proto_late_starttls(ops, env, ps, l, ll, &o))
			abort();
	}
	if ((o.flags & PO_STARTTLS) && !e->is_tls_verb(l, ll))
		abort();
	free(l);
	/* the plaintext backend ends politely when TLS is to start, and only
	 * then gets bytes from the engine */
	if ((o.flags & PO_STARTTLS) ? o.to_backend_len != strlen(ops->probe_quit) ||
				      memcmp(o.to_backend, ops->probe_quit, o.to_backend_len)
				    : o.to_backend_len != 0)
		abort();
	o.to_backend_len = 0;
	e->check_out(&o);
	if (ps->tls_held)
		abort();
	*stop = o.flags & (PO_STARTTLS | PO_CLOSE);
	return (size_t)(lf - p) + 1;
}

/* 3. the relay tracker over buf[0, n), in pieces; held bytes are offered
 * again. Only verb -> denied, in place; a held STARTTLS is answered. */
static void fz_tracker(const struct fz_engine *e, const struct proto_ops *ops,
		       const struct proto_env *env, struct proto_sess *ps, uint8_t *buf,
		       size_t n, unsigned seed)
{
	size_t start = 0, end = 0, vl = strlen(e->verb);

	while (end < n) {
		size_t step = 1 + ((buf[end] ^ seed) % 97), ok, len;
		uint8_t *before;

		end = end + step > n ? n : end + step;
		len = end - start;
		before = malloc(len ? len : 1);
		if (!before)
			abort();
		memcpy(before, buf + start, len);
		ok = ops->c2b_scan(ps, buf + start, len);
		if (ok > len)
			abort();
		for (size_t i = 0; i < len; i++) {
			bool fine = false;

			if (before[i] == buf[start + i])
				continue;
			for (size_t j = i >= vl - 1 ? i - (vl - 1) : 0; j <= i && !fine; j++)
				fine = j + vl <= len && !memcmp(buf + start + j, e->denied, vl) &&
				       !strncasecmp((const char *)before + j, e->verb, vl);
			if (!fine)
				abort();
		}
		free(before);
		start += ok;
		if (ps->inject_due) {
			/* the trace header (SMTP): written whole, replacing at
			 * most what is left of the segment, and the tracker goes
			 * on */
			static uint8_t out[2048];
			size_t skip = len + 1, w;

			w = ops->c2b_inject(env, ps, buf + start, end - start, out, sizeof(out), &skip);
			if (ps->inject_due || !w || skip > end - start)
				abort();
			start += skip;
		}
		if (ps->local_due) {
			/* a line sluice answers in the relay (FTP: PBSZ, PROT,
			 * PORT): whole, at the head, answered whole */
			const uint8_t *lf = memchr(buf + start, '\n', end - start);
			struct proto_out o;
			char *l;
			size_t ll;

			if (!ops->c2b_local)
				abort();
			if (!lf)
				continue; /* more of it comes with the next piece */
			ll = (size_t)(lf - (buf + start));
			l = malloc(ll ? ll : 1);
			if (!l)
				abort();
			memcpy(l, buf + start, ll);
			po_reset(&o);
			ops->c2b_local(env, ps, l, ll && l[ll - 1] == '\r' ? ll - 1 : ll, &o);
			free(l);
			if (ps->local_due || o.to_backend_len || o.flags)
				abort();
			e->check_out(&o);
			start += ll + 1;
		}
		if (ps->tls_held) {
			bool stop = false;

			start += fz_late(e, ops, env, ps, buf + start, end - start, &stop);
			if (stop)
				return;
		}
	}
}

/* The backend's bytes again, now in the relay, as sluice relays them:
 * up to b2c_safe, and where it stops the whole line to b2c_line (FTP: the
 * answer to PASV/EPSV, a transfer's reply while its data connection is
 * checked or after it was refused), whose replacement must be a whole
 * reply. */
static void fz_b2c(const struct fz_engine *e, const struct proto_ops *ops,
		   const struct proto_env *env, struct proto_sess *ps, const uint8_t *p,
		   size_t len)
{
	while (len) {
		size_t n = ops->b2c_safe ? ops->b2c_safe(ps, p, len) : len;

		if (n > len)
			abort();
		if (n == 0) {
			const uint8_t *lf = memchr(p, '\n', len);
			struct proto_data d;
			struct proto_out o;
			size_t l;
			char *line;
			int r;

			n = lf ? (size_t)(lf - p) + 1 : len;
			l = n;
			while (l && (p[l - 1] == '\n' || p[l - 1] == '\r'))
				l--;
			line = malloc(l ? l : 1);
			if (!line)
				abort();
			memcpy(line, p, l);
			po_reset(&o);
			r = ops->b2c_line(env, ps, line, l, &d, &o);
			free(line);
			if (r < -1 || r > 2 || (r == -1) != (o.reply_len != 0) ||
			    (r == 2 && (o.reply_len || !ps->data_pending)))
				abort();
			if (r == 2) {
				/* the line waits for its data connection's checks,
				 * which end now: relayed, or refused (one bit of the
				 * input); then the same line again */
				ps->data_pending = false;
				ps->data_refused = l & 1;
				n = 0;
				continue;
			}
			if (r == 1) {
				d.host[0] = 192, d.host[1] = 0, d.host[2] = 2, d.host[3] = 1;
				d.port = 44100;
				po_reset(&o);
				ops->data_reply(env, ps, &d, &o);
				if (!o.reply_len || !d.be_port)
					abort();
				/* the client's data connection, accepted: the
				 * transfer's reply waits (one bit of the input) */
				ps->data_pending = d.be_port & 1;
				ps->data_refused = false;
			}
			if (o.reply_len)
				e->check_out(&o);
		}
		if (ops->b2c_scan)
			ops->b2c_scan(ps, p, n);
		p += n;
		len -= n;
	}
}

int fz_run(const struct fz_engine *e, const uint8_t *data, size_t size)
{
	const struct proto_ops *ops = proto_get(e->proto);
	struct proto_caps fixed = { .n = e->n_fixed };
	struct proto_caps *probed = NULL;
	static const struct proto_trace trace = { "192.0.2.1", "using TLSv1.3 with cipher "
		"TLS_AES_128_GCM_SHA256 (128/128 bits)\r\n\t key-exchange X25519", 0 };
	struct proto_env env = { "fuzz.test", CFG_TLS_STARTTLS, true, &fixed, 0, &trace, false };
	struct proto_sess ps = { 0 };
	size_t a, b;
	unsigned seed;
	uint8_t *buf;

	if (size < 5 || e->n_fixed > CAPS_MAX)
		return 0;
	for (size_t i = 0; i < e->n_fixed; i++)
		fixed.item[i] = (char *)e->fixed_caps[i];
	env.tls_mode = (enum cfg_tls)(data[0] & 3);
	env.tls_available = data[0] & 4;
	ps.trace = data[0] & 8; /* listeners[].trace_header */
	seed = data[0] >> 4;
	a = 5 + ((size_t)data[1] << 8 | data[2]);
	if (a > size)
		a = size;
	b = a + ((size_t)data[3] << 8 | data[4]);
	if (b > size)
		b = size;
	if (data[0] & 8) {
		probed = fz_probe(ops, data, a, b);
		env.caps = probed;
	}
	fz_dialogue(e, ops, &env, &ps, data, a, seed);
	fz_backend_opening(e, ops, &env, &ps, data, a, b);
	buf = malloc(size - b + 1);
	if (!buf)
		abort();
	memcpy(buf, data + b, size - b);
	fz_tracker(e, ops, &env, &ps, buf, size - b, seed);
	free(buf);
	fz_b2c(e, ops, &env, &ps, data + a, b - a);
	if (ops->fini)
		ops->fini(&ps);
	caps_free(probed);
	return 0;
}
