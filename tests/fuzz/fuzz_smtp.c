/*
 * libFuzzer target: the SMTP engine as a session drives it. The input is a
 * byte stream cut into three parts by the first two bytes: what the client
 * sends before the backend is needed (through the line reader), what the
 * backend sends while it is opened, and what the client sends in the relay
 * (through the tracker, fed in pieces of varying size). Invariants checked,
 * besides the sanitizers': replies stay inside their buffers and end in
 * CRLF, the line reader never consumes more than it was given, and the
 * tracker never approves more than it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/linereader.h"
#include "proto/proto.h"

static void check_out(const struct proto_out *o)
{
	if (o->reply_len > sizeof(o->reply) || o->to_backend_len > sizeof(o->to_backend))
		abort();
	if (o->reply_len && (o->reply_len < 2 || memcmp(o->reply + o->reply_len - 2, "\r\n", 2)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	static char *items[] = { "PIPELINING", "SIZE 1000", "AUTH PLAIN", "STARTTLS", "8BITMIME" };
	struct proto_caps caps = { .n = 5 };
	struct proto_env env = { "fuzz.test", CFG_TLS_STARTTLS, true, &caps, 0, NULL, false };
	struct proto_sess ps = { 0 };
	struct proto_out o;
	struct linereader lr;
	size_t a, b, off, used;
	uint8_t *relay;

	if (size < 3)
		return 0;
	memcpy(caps.item, items, sizeof(items));
	env.tls_mode = (enum cfg_tls)(data[0] % 4);
	a = 3 + (size_t)data[1] * (size - 3) / 255;
	b = a + (size_t)data[2] * (size - a) / 255;

	/* 1. the dialogue */
	lr_init(&lr, ops->line_max);
	off = 3;
	while (off < a) {
		struct lr_line line;
		enum lr_event ev = lr_next(&lr, data + off, a - off, &line, &used);

		if (used > a - off)
			abort();
		po_reset(&o);
		if (ev == LR_NEED_MORE)
			break;
		if (ev == LR_TOO_LONG)
			ops->too_long(&env, &ps, &o);
		else
			ops->client_line(&env, &ps, line.p, line.len, line.has_nul, &o);
		check_out(&o);
		off += used;
		if (o.flags & PO_STARTTLS)
			ops->tls_started(&ps);
		if (o.flags & (PO_BACKEND | PO_CLOSE))
			break;
	}

	/* 2. the backend's opening */
	lr_init(&lr, 4096);
	off = a;
	while (off < b) {
		struct lr_line line;
		enum lr_event ev = lr_next(&lr, data + off, b - off, &line, &used);

		if (ev != LR_LINE)
			break;
		po_reset(&o);
		ops->backend_line(&env, &ps, line.p, line.len, &o);
		check_out(&o);
		off += used;
		if (o.flags & (PO_RELAY | PO_FAIL))
			break;
	}

	/* 3. the relay tracker, in pieces; held bytes are offered again */
	relay = malloc(size - b + 1);
	if (!relay)
		return 0;
	memcpy(relay, data + b, size - b);
	memcpy(ps.last_reply, size & 1 ? "354" : "250", 3);
	{
		size_t start = 0, end = 0, n = size - b;

		while (end < n) {
			size_t step = 1 + (relay[end] % 97), ok;

			end = end + step > n ? n : end + step;
			ok = ops->c2b_scan(&ps, relay + start, end - start);
			if (ok > end - start)
				abort();
			start += ok;
			if (ps.tls_held) {
				/* the plaintext relay held a whole STARTTLS line:
				 * answered as the session does, once all before
				 * it was answered */
				const uint8_t *lf = memchr(relay + start, '\n', end - start);
				size_t ll;

				if (!lf || ps.in_tls)
					abort();
				ll = (size_t)(lf - (relay + start));
				po_reset(&o);
				ps.replies = ps.cmds;
				if (!proto_late_starttls(ops, &env, &ps, (const char *)relay + start,
							 ll && relay[start + ll - 1] == '\r' ? ll - 1 : ll,
							 &o) || ps.tls_held)
					abort();
				check_out(&o);
				start += ll + 1;
				if (o.flags & (PO_STARTTLS | PO_CLOSE))
					break;
			}
		}
	}
	free(relay);
	if (ops->fini)
		ops->fini(&ps);
	return 0;
}
