/*
 * Selective acknowledgment (RFC 2018) on both sides.
 *
 * Receiver: the ranges held beyond RCV.NXT, most recent first, which are
 * the SACK blocks of our ACKs (RFC 2018 §4).
 *
 * Sender: the scoreboard of SACKed ranges above SND.UNA and the
 * conservative loss recovery of RFC 6675: IsLost(), SetPipe(), NextSeg().
 * IsLost() is monotone in the sequence number (an octet with DupThresh
 * SACKed segments above it has them above every lower octet too), so it
 * reduces to one boundary: every unSACKed octet below lost_end() is lost.
 */
#include "net/net_int.h"

#define DUPTHRESH 3

/* ---- receiver ---- */

/* Note that [start, end) is now held out of order; merge with any range it
 * touches and put the result first. The caller checked there is room
 * (nooo < TCP_OOO_MAX) or that the range merges. */
void tcp_ooo_add(struct tcp_conn *c, uint32_t start, uint32_t end)
{
	struct seq_range r = { start, end };
	unsigned i = 0, n = 0;
	struct seq_range keep[TCP_OOO_MAX];

	for (i = 0; i < c->nooo; i++) {
		struct seq_range *o = &c->ooo[i];

		if (seq_leq(o->start, r.end) && seq_leq(r.start, o->end)) {
			r.start = seq_min(r.start, o->start);
			r.end = seq_max(r.end, o->end);
		} else {
			keep[n++] = *o;
		}
	}
	if (n >= TCP_OOO_MAX)
		n = TCP_OOO_MAX - 1;
	c->ooo[0] = r;
	memcpy(&c->ooo[1], keep, n * sizeof(keep[0]));
	c->nooo = (uint8_t)(n + 1);
}

/* After RCV.NXT moved: absorb the ranges it reaches, drop those below.
 * Returns the new RCV.NXT. */
uint32_t tcp_ooo_take(struct tcp_conn *c)
{
	bool again = true;

	while (again) {
		unsigned i, n = 0;

		again = false;
		for (i = 0; i < c->nooo; i++) {
			struct seq_range o = c->ooo[i];

			if (seq_leq(o.start, c->rcv_nxt)) {
				if (seq_gt(o.end, c->rcv_nxt)) {
					c->rcv_nxt = o.end;
					again = true;
				}
				continue;
			}
			c->ooo[n++] = o;
		}
		c->nooo = (uint8_t)n;
	}
	return c->rcv_nxt;
}

/* ---- sender ---- */

/* Forget every SACKed range. */
void tcp_sb_clear(struct tcp_conn *c)
{
	c->nsack = 0;
}

/* Insert one SACKed range into the sorted scoreboard. */
static void sb_insert(struct tcp_conn *c, uint32_t l, uint32_t r)
{
	struct seq_range out[TCP_SACK_MAX + 1];
	unsigned i, n = 0;
	bool placed = false;

	for (i = 0; i < c->nsack; i++) {
		struct seq_range b = c->sack[i];

		if (seq_lt(b.end, l)) {
			out[n++] = b;
		} else if (seq_lt(r, b.start)) {
			if (!placed) {
				out[n++] = (struct seq_range){ l, r };
				placed = true;
			}
			out[n++] = b;
		} else { /* overlaps or touches: merge */
			l = seq_min(l, b.start);
			r = seq_max(r, b.end);
		}
	}
	if (!placed)
		out[n++] = (struct seq_range){ l, r };
	if (n > TCP_SACK_MAX) /* keep the lowest ranges: they decide what is lost */
		n = TCP_SACK_MAX;
	memcpy(c->sack, out, n * sizeof(out[0]));
	c->nsack = (uint8_t)n;
}

/* Drop what SND.UNA now covers; returns the bytes still SACKed. */
static uint32_t sb_prune(struct tcp_conn *c)
{
	uint32_t bytes = 0;
	unsigned i, n = 0;

	for (i = 0; i < c->nsack; i++) {
		struct seq_range b = c->sack[i];

		if (seq_leq(b.end, c->snd_una))
			continue;
		if (seq_lt(b.start, c->snd_una))
			b.start = c->snd_una;
		c->sack[n++] = b;
		bytes += b.end - b.start;
	}
	c->nsack = (uint8_t)n;
	return bytes;
}

/* Take the SACK blocks of an ACK (RFC 2018 §3), after SND.UNA moved:
 * blocks at or below SND.UNA (D-SACK, RFC 2883) or beyond SND.MAX are
 * ignored; ranges now acknowledged cumulatively are dropped. Returns true
 * if the ACK SACKed bytes not SACKed before (RFC 6675 §2: what makes an
 * ACK a duplicate under SACK). */
bool tcp_sb_update(struct tcp_conn *c, const struct tcp_seg *s)
{
	uint32_t before = sb_prune(c);
	unsigned i;

	for (i = 0; i < s->o.nsack; i++) {
		uint32_t l = s->o.sack[i].start, r = s->o.sack[i].end;

		if (!seq_lt(l, r) || seq_leq(r, c->snd_una) || seq_gt(r, c->snd_max))
			continue;
		if (seq_lt(l, c->snd_una))
			l = c->snd_una;
		sb_insert(c, l, r);
	}
	return sb_prune(c) > before;
}

/* RFC 6675 §4 IsLost() as a boundary: the start of the highest SACKed
 * range at which DupThresh ranges, or more than (DupThresh - 1) * SMSS
 * SACKed bytes, lie at or above it. Counting ranges for "discontiguous
 * SACKed sequences" under-counts when a range holds several segments; the
 * byte rule covers that case. SND.UNA if nothing is lost. */
static uint32_t lost_end(const struct tcp_conn *c)
{
	uint32_t bytes = 0, mss = tcp_eff_mss(c);
	int i, blocks = 0;

	for (i = c->nsack - 1; i >= 0; i--) {
		bytes += c->sack[i].end - c->sack[i].start;
		blocks++;
		if (blocks >= DUPTHRESH || bytes > (DUPTHRESH - 1) * mss)
			return c->sack[i].start;
	}
	return c->snd_una;
}

/* RFC 6675 IsLost(SND.UNA): the first hole is lost. */
bool tcp_sb_lost_una(const struct tcp_conn *c)
{
	return c->nsack && seq_lt(c->snd_una, lost_end(c)) && seq_lt(c->snd_una, c->sack[0].start);
}

/* SACKed bytes within [a, b). */
static uint32_t sacked_in(const struct tcp_conn *c, uint32_t a, uint32_t b)
{
	uint32_t n = 0;
	unsigned i;

	for (i = 0; i < c->nsack; i++) {
		uint32_t l = seq_max(a, c->sack[i].start), r = seq_min(b, c->sack[i].end);

		if (seq_lt(l, r))
			n += r - l;
	}
	return n;
}

/* RFC 6675 §4 SetPipe(): unSACKed octets not lost count once, and
 * retransmitted ones (below HighRxt) once more. */
uint32_t tcp_sb_pipe(const struct tcp_conn *c)
{
	uint32_t le = lost_end(c), pipe = 0, hr = seq_max(c->high_rxt, c->snd_una);

	if (seq_lt(le, c->snd_max))
		pipe += (c->snd_max - le) - sacked_in(c, le, c->snd_max);
	if (seq_lt(c->snd_una, hr))
		pipe += (hr - c->snd_una) - sacked_in(c, c->snd_una, hr);
	return pipe;
}

/* The first unSACKed octet at or after from, and the end of its hole
 * (the next SACKed range, or limit). Returns false if none below limit. */
static bool next_hole(const struct tcp_conn *c, uint32_t from, uint32_t limit, uint32_t *s, uint32_t *e)
{
	unsigned i;

	for (i = 0; i < c->nsack && seq_lt(from, limit); i++) {
		if (seq_leq(c->sack[i].end, from))
			continue;
		if (seq_lt(from, c->sack[i].start)) {
			*s = from;
			*e = seq_min(c->sack[i].start, limit);
			return true;
		}
		from = c->sack[i].end;
	}
	if (seq_lt(from, limit)) {
		*s = from;
		*e = limit;
		return true;
	}
	return false;
}

/* RFC 6675 §4 NextSeg(): rule 1, a lost unSACKed octet above HighRxt;
 * rule 2, new data the receive window allows (seq = SND.MAX); rule 3, an
 * unSACKed octet above HighRxt with SACKed data above it. Rule 4 (rescue
 * retransmission) is not done. Returns false if nothing is to be sent. */
bool tcp_sb_next_seg(struct tcp_conn *c, uint32_t *seq, uint32_t *len)
{
	uint32_t mss = tcp_eff_mss(c), from = seq_max(c->high_rxt, c->snd_una), s, e;
	uint32_t le = lost_end(c), avail, wnd_room;

	if (next_hole(c, from, le, &s, &e)) {
		*seq = s;
		*len = e - s < mss ? e - s : mss;
		return true;
	}
	avail = seq_lt(c->snd_max, c->snd_qend) ? c->snd_qend - c->snd_max : 0;
	wnd_room = seq_lt(c->snd_max, c->snd_una + c->snd_wnd) ? c->snd_una + c->snd_wnd - c->snd_max : 0;
	if (avail && wnd_room) {
		*seq = c->snd_max;
		*len = avail < wnd_room ? avail : wnd_room;
		if (*len > mss)
			*len = mss;
		return true;
	}
	if (c->nsack && next_hole(c, from, c->sack[c->nsack - 1].start, &s, &e)) {
		*seq = s;
		*len = e - s < mss ? e - s : mss;
		return true;
	}
	return false;
}
