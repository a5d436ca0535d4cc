/*
 * libFuzzer target: tls/rl opening records, as a session feeds them.
 *
 * Input: byte 0 picks the protocol and suite (TLS 1.3 AES-128-GCM,
 * AES-256-GCM, ChaCha20-Poly1305; TLS 1.2 the same three), byte 1 the
 * seed of the read sizes and, in bit 7, "tamper"; then items
 * [content type][length, 2 bytes][content], each sealed by a client-side
 * record layer with the same keys (so the reader gets past the MAC and
 * into what the records hold: alerts, KeyUpdates, other handshake
 * messages, empty and oversized records), followed by whatever bytes are
 * left, raw. With tamper set, one byte of the sealed stream is flipped.
 * The server-side layer opens it all in reads of varying size.
 * Invariants, besides the sanitizers': never more plaintext than the room
 * given; a stream of untampered application-data records comes out
 * exactly as it went in.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "rl.h"

static const struct { int v; uint16_t suite; } suites[] = {
	{ 0x0304, 0x1301 }, { 0x0304, 0x1302 }, { 0x0304, 0x1303 },
	{ 0x0303, 0xc02f }, { 0x0303, 0xc030 }, { 0x0303, 0xcca8 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t sent[1 << 16], got[1 << 16], stream[1 << 17];
	uint8_t csec[48], ssec[48], block[2 * 32 + 2 * 12];
	struct tls_rl *w, *r;
	struct buf wire = { 0 }, in = { 0 }, back = { 0 };
	size_t at = 2, slen = 0, sent_len = 0, got_len = 0, fed = 0;
	bool all_data = true, tamper;
	uint32_t seed;
	unsigned pick;

	if (size < 2)
		return 0;
	pick = data[0] % (sizeof(suites) / sizeof(suites[0]));
	seed = data[1] & 0x7f;
	tamper = data[1] & 0x80;
	for (unsigned i = 0; i < sizeof(csec); i++) {
		csec[i] = (uint8_t)i;
		ssec[i] = (uint8_t)(i * 3);
	}
	for (unsigned i = 0; i < sizeof(block); i++)
		block[i] = (uint8_t)(i * 7);
	w = tls_rl_from_keys(suites[pick].v, suites[pick].suite, csec, ssec, 32, block, false);
	r = tls_rl_from_keys(suites[pick].v, suites[pick].suite, csec, ssec, 32, block, true);
	if (!w || !r)
		abort();

	/* Seal the items. */
	while (at + 3 <= size) {
		uint8_t type = data[at];
		size_t len = (size_t)data[at + 1] << 8 | data[at + 2];

		if (len > size - at - 3)
			break;
		if (tls_rl_seal(w, type, data + at + 3, len, &wire) != 0)
			break;
		if (type == 23 && sent_len + len <= sizeof(sent)) {
			memcpy(sent + sent_len, data + at + 3, len);
			sent_len += len;
		} else {
			all_data = false;
		}
		if (slen + buf_len(&wire) > sizeof(stream))
			break;
		memcpy(stream + slen, buf_head(&wire), buf_len(&wire));
		slen += buf_len(&wire);
		buf_consume(&wire, buf_len(&wire));
		at += 3 + len;
	}
	if (at < size && slen + (size - at) <= sizeof(stream)) {
		memcpy(stream + slen, data + at, size - at);
		slen += size - at;
		all_data = false;
	}
	if (tamper && slen) {
		stream[seed * 2654435761u % slen] ^= 0x20;
		all_data = false;
	}

	/* Open it in reads of varying size. */
	for (;;) {
		uint8_t *dst;
		uint32_t room;
		char err[96];
		int n;

		if (fed < slen && buf_space(&in, &dst, &room) == 0 && room) {
			size_t step;

			seed = seed * 1103515245u + 12345u;
			step = 1 + (seed >> 16) % 4000;
			if (step > room)
				step = room;
			if (step > slen - fed)
				step = slen - fed;
			memcpy(dst, stream + fed, step);
			in.tail += (uint32_t)step;
			fed += step;
		}
		room = (uint32_t)(sizeof(got) - got_len);
		n = tls_rl_read(r, &in, got + got_len, room > 20000 ? 20000 : room, &back, err,
				sizeof(err));
		if (n > 20000 || (n > 0 && (size_t)n > room))
			abort();
		if (n > 0) {
			got_len += (size_t)n;
			continue;
		}
		if (n < 0 || (fed == slen && n == TLS_RL_WANT))
			break;
	}
	if (all_data && (got_len != sent_len || memcmp(got, sent, sent_len)))
		abort();
	tls_rl_free(w);
	tls_rl_free(r);
	buf_free(&wire);
	buf_free(&in);
	buf_free(&back);
	return 0;
}
