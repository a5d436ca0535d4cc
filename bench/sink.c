/*
 * sink: a backend for the benchmark rig that is never the bottleneck.
 *
 *   sink --smtp 127.0.0.1:7025 --imap 127.0.0.1:7143 --pop3 127.0.0.1:7110
 *
 * One thread, epoll, no disk. Speaks just enough of each protocol for the
 * rig's workloads and for the proxies in front of it (their capability
 * probes, nginx's LOGIN with literals):
 *   SMTP  greeting, EHLO/HELO, MAIL, RCPT, DATA (accepted, discarded), RSET,
 *         NOOP, QUIT (RFC 5321)
 *   IMAP  greeting with CAPABILITY, CAPABILITY, LOGIN, AUTHENTICATE PLAIN,
 *         SELECT/EXAMINE (one message), FETCH/UID FETCH (the fixed message),
 *         NOOP, ID, ENABLE, LOGOUT (RFC 9051)
 *   POP3  greeting, CAPA, USER, PASS, AUTH, STAT, LIST, UIDL, RETR, NOOP,
 *         QUIT (RFC 1939)
 * A connection may start with a PROXY protocol header, v1 or v2: it is
 * skipped, as is any TLV in it.
 *
 * With --native VDEV --native-addr A/LEN (built with DPDK) it listens on
 * sluice's own TCP/IP over a DPDK port instead (bench/natio.h: net_memif
 * in the rig), the same ports on that address: no kernel on the data path.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef SK_NATIVE
#include "natio.h"
#endif

enum sk_proto { SK_SMTP, SK_IMAP, SK_POP3 };

enum sk_state {
	ST_PROXY,       /* a PROXY header may come first */
	ST_CMD,         /* command lines */
	ST_DATA,        /* SMTP DATA: until CRLF.CRLF */
	ST_LITERAL,     /* IMAP: skipping a literal inside a command */
	ST_CLOSING,     /* close once the output is sent */
};

struct sk_conn {
	int fd;                 /* -1: a native connection */
	struct tcp_conn *tc;    /* native; NULL once gone */
	enum sk_proto proto;
	enum sk_state state;
	unsigned eod;           /* DATA: progress through CRLF . CRLF */
	size_t lit_left;        /* IMAP literal bytes to skip */
	char verb[16];          /* IMAP: the verb of a command split by literals */
	char tag[32];
	char *out;              /* pending output */
	size_t olen, ooff, ocap;
	size_t rlen;
	char rbuf[4096];
};

static char *message;           /* the one message of the mailbox */
static size_t message_len;
static int ep;

static const char imap_caps[] = "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE AUTH=PLAIN";

/* Append n bytes to c's output. */
static int out(struct sk_conn *c, const char *p, size_t n)
{
	if (c->olen + n > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 512;
		char *o;

		while (cap < c->olen + n)
			cap *= 2;
		if (!(o = realloc(c->out, cap)))
			return -ENOMEM;
		c->out = o;
		c->ocap = cap;
	}
	memcpy(c->out + c->olen, p, n);
	c->olen += n;
	return 0;
}

static int outs(struct sk_conn *c, const char *s)
{
	return out(c, s, strlen(s));
}

static void conn_close(struct sk_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
#ifdef SK_NATIVE
	else if (c->tc)
		tcp_close(c->tc);     /* nothing is called for it after this */
#endif
	free(c->out);
	free(c);
}

/* The transport: bytes, -EAGAIN, or another -errno (recv: 0 at EOF). */
static ssize_t sk_send(struct sk_conn *c, const void *p, size_t n)
{
	ssize_t r;

#ifdef SK_NATIVE
	if (c->fd < 0) {
		if (!c->tc)
			return -EPIPE;
		r = tcp_send(c->tc, p, n);
		return r == 0 ? -EAGAIN : r;
	}
#endif
	r = send(c->fd, p, n, MSG_NOSIGNAL);
	return r < 0 ? -errno : r;
}

static ssize_t sk_recv(struct sk_conn *c, void *p, size_t n)
{
	ssize_t r;

#ifdef SK_NATIVE
	if (c->fd < 0) {
		if (!c->tc)
			return -ECONNRESET;
		r = tcp_read(c->tc, p, n);
		return r == 0 && !tcp_eof(c->tc) ? -EAGAIN : r;
	}
#endif
	r = recv(c->fd, p, n, 0);
	return r < 0 ? -errno : r;
}

/* Epoll interest (native connections: the stack's callbacks say). */
static void sk_want(struct sk_conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	if (c->fd >= 0)
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Send what is pending; 0 when all is sent, 1 when the socket is full,
 * -1 when the connection is gone. Keeps EPOLLOUT interest accordingly. */
static int flush(struct sk_conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = sk_send(c, c->out + c->ooff, c->olen - c->ooff);

		if (n < 0) {
			if (n != -EAGAIN)
				return -1;
			sk_want(c, EPOLLIN | EPOLLOUT);
			return 1;
		}
		c->ooff += (size_t)n;
	}
	if (c->olen) {
		c->olen = c->ooff = 0;
		sk_want(c, EPOLLIN);
	}
	return 0;
}

/* Case-insensitive "line starts with word w". */
static bool is(const char *line, const char *w)
{
	size_t n = strlen(w);

	return !strncasecmp(line, w, n) && (line[n] == ' ' || line[n] == 0);
}

static void smtp_command(struct sk_conn *c, const char *l)
{
	if (is(l, "EHLO"))
		outs(c, "250-sink.bench\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n"
		     "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
	else if (is(l, "HELO"))
		outs(c, "250 sink.bench\r\n");
	else if (is(l, "MAIL") || is(l, "RCPT") || is(l, "RSET") || is(l, "NOOP"))
		outs(c, "250 2.0.0 Ok\r\n");
	else if (is(l, "DATA")) {
		outs(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
		c->state = ST_DATA;
		c->eod = 2;     /* the DATA line's CRLF: ".\r\n" at once ends it */
	} else if (is(l, "AUTH"))
		outs(c, "235 2.7.0 Authentication successful\r\n");
	else if (is(l, "QUIT")) {
		outs(c, "221 2.0.0 Bye\r\n");
		c->state = ST_CLOSING;
	} else if (is(l, "STARTTLS"))
		outs(c, "454 4.7.0 TLS not available\r\n");
	else
		outs(c, "502 5.5.2 Error: command not recognized\r\n");
}

static void imap_reply(struct sk_conn *c, const char *text)
{
	outs(c, c->tag);
	outs(c, " ");
	outs(c, text);
}

/* One whole IMAP command (its literals already skipped): verb in c->verb. */
static void imap_command(struct sk_conn *c)
{
	const char *v = c->verb;
	char buf[160];

	if (!strcasecmp(v, "CAPABILITY")) {
		snprintf(buf, sizeof(buf), "* CAPABILITY %s\r\n", imap_caps);
		outs(c, buf);
		imap_reply(c, "OK Capability completed\r\n");
	} else if (!strcasecmp(v, "LOGIN") || !strcasecmp(v, "AUTHENTICATE")) {
		snprintf(buf, sizeof(buf), "OK [CAPABILITY %s] Logged in\r\n", imap_caps);
		imap_reply(c, buf);
	} else if (!strcasecmp(v, "SELECT") || !strcasecmp(v, "EXAMINE")) {
		outs(c, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
		     "* 1 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1] UIDs valid\r\n"
		     "* OK [UIDNEXT 2] Predicted next UID\r\n");
		imap_reply(c, "OK [READ-WRITE] Select completed\r\n");
	} else if (!strcasecmp(v, "FETCH") || !strcasecmp(v, "UID")) {
		snprintf(buf, sizeof(buf), "* 1 FETCH (UID 1 BODY[] {%zu}\r\n", message_len);
		outs(c, buf);
		out(c, message, message_len);
		outs(c, ")\r\n");
		imap_reply(c, "OK Fetch completed\r\n");
	} else if (!strcasecmp(v, "ID")) {
		outs(c, "* ID NIL\r\n");
		imap_reply(c, "OK ID completed\r\n");
	} else if (!strcasecmp(v, "LOGOUT")) {
		outs(c, "* BYE Logging out\r\n");
		imap_reply(c, "OK Logout completed\r\n");
		c->state = ST_CLOSING;
	} else if (!strcasecmp(v, "NOOP") || !strcasecmp(v, "ENABLE") ||
		   !strcasecmp(v, "CLOSE") || !strcasecmp(v, "UNSELECT")) {
		imap_reply(c, "OK done\r\n");
	} else {
		imap_reply(c, "BAD Unknown command\r\n");
	}
}

/* One IMAP line: the start of a command or its continuation after a
 * literal. A line ending in {n} announces n bytes (RFC 9051 §4.3); a
 * synchronizing literal gets its "+" continuation request. */
static void imap_line(struct sk_conn *c, char *l, size_t len)
{
	size_t lit = 0;
	bool sync = true;

	if (c->state != ST_LITERAL || !c->verb[0]) {
		char *sp = strchr(l, ' ');
		size_t n;

		c->verb[0] = 0;
		if (!sp) {
			snprintf(c->tag, sizeof(c->tag), "%s", l[0] ? l : "*");
			imap_reply(c, "BAD Missing command\r\n");
			return;
		}
		snprintf(c->tag, sizeof(c->tag), "%.*s", (int)(sp - l), l);
		n = strcspn(sp + 1, " {");
		snprintf(c->verb, sizeof(c->verb), "%.*s", (int)n, sp + 1);
	}
	c->state = ST_CMD;
	if (len && l[len - 1] == '}') {
		char *o = strrchr(l, '{');

		if (o) {
			lit = strtoul(o + 1, NULL, 10);
			sync = l[len - 2] != '+';
		}
	}
	if (lit) {
		c->lit_left = lit;
		c->state = ST_LITERAL;
		if (sync)
			outs(c, "+ OK\r\n");
		return;
	}
	imap_command(c);
	c->verb[0] = 0;
}

static void pop3_command(struct sk_conn *c, const char *l)
{
	char buf[96];

	if (is(l, "CAPA"))
		outs(c, "+OK\r\nUSER\r\nTOP\r\nUIDL\r\nSASL PLAIN\r\n.\r\n");
	else if (is(l, "STAT")) {
		snprintf(buf, sizeof(buf), "+OK 1 %zu\r\n", message_len);
		outs(c, buf);
	} else if (is(l, "LIST")) {
		snprintf(buf, sizeof(buf), "+OK 1 messages\r\n1 %zu\r\n.\r\n", message_len);
		outs(c, buf);
	} else if (is(l, "UIDL"))
		outs(c, "+OK\r\n1 sink-1\r\n.\r\n");
	else if (is(l, "RETR") || is(l, "TOP")) {
		snprintf(buf, sizeof(buf), "+OK %zu octets\r\n", message_len);
		outs(c, buf);
		out(c, message, message_len);
		outs(c, ".\r\n");
	} else if (is(l, "QUIT")) {
		outs(c, "+OK Bye\r\n");
		c->state = ST_CLOSING;
	} else if (is(l, "USER") || is(l, "PASS") || is(l, "AUTH") || is(l, "NOOP") ||
		   is(l, "DELE") || is(l, "RSET"))
		outs(c, "+OK\r\n");
	else
		outs(c, "-ERR Unknown command\r\n");
}

/* Skip a PROXY header at the start of the stream, if there is one.
 * Returns bytes to skip (0: none), or -1: need more bytes. */
static ssize_t proxy_header(const struct sk_conn *c)
{
	static const char v2sig[12] = "\r\n\r\n\0\r\nQUIT\n";
	size_t n = c->rlen;

	if (n && !memcmp(c->rbuf, v2sig, n < 12 ? n : 12)) {
		if (n < 16)
			return -1;
		return 16 + (((unsigned char)c->rbuf[14] << 8) | (unsigned char)c->rbuf[15]);
	}
	if (n && !memcmp(c->rbuf, "PROXY ", n < 6 ? n : 6)) {
		const char *nl = memchr(c->rbuf, '\n', n);

		return nl ? nl - c->rbuf + 1 : -1;
	}
	return 0;
}

/* DATA: scan for the end-of-data line; returns bytes used. */
static size_t data_scan(struct sk_conn *c, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (c->eod == 0) {              /* fast path: to the next CR */
			const char *cr = memchr(p + i, '\r', n - i);

			if (!cr)
				return n;
			i = (size_t)(cr - p);
		}
		switch (c->eod) {               /* matching "\r\n.\r\n" */
		case 0: c->eod = 1; break;      /* at '\r' */
		case 1: c->eod = p[i] == '\n' ? 2 : p[i] == '\r' ? 1 : 0; break;
		case 2: c->eod = p[i] == '.' ? 3 : p[i] == '\r' ? 1 : 0; break;
		case 3: c->eod = p[i] == '\r' ? 4 : 0; break;
		case 4:
			if (p[i] == '\n') {
				outs(c, "250 2.0.0 Ok: queued as SINK\r\n");
				c->state = ST_CMD;
				c->eod = 0;
				return i + 1;
			}
			c->eod = p[i] == '\r' ? 1 : 0;
			break;
		}
		i++;
	}
	return n;
}

/* Handle what is in rbuf; returns the bytes consumed. */
static size_t process(struct sk_conn *c)
{
	size_t used = 0;

	while (used < c->rlen && c->state != ST_CLOSING) {
		char *p = c->rbuf + used, *nl;
		size_t n = c->rlen - used, len;

		if (c->state == ST_PROXY) {     /* only at the start: used == 0 */
			ssize_t skip = proxy_header(c);

			if (skip < 0)
				break;
			used += (size_t)skip;
			c->state = ST_CMD;
			continue;
		}
		if (c->state == ST_DATA) {
			used += data_scan(c, p, n);
			continue;
		}
		if (c->state == ST_LITERAL && c->lit_left) {
			size_t k = n < c->lit_left ? n : c->lit_left;

			used += k;
			c->lit_left -= k;
			continue;
		}
		if (!(nl = memchr(p, '\n', n)))
			break;
		len = (size_t)(nl - p);
		used += len + 1;
		if (len && p[len - 1] == '\r')
			len--;
		p[len] = 0;
		switch (c->proto) {
		case SK_SMTP: smtp_command(c, p); break;
		case SK_IMAP: imap_line(c, p, len); break;
		case SK_POP3: pop3_command(c, p); break;
		}
	}
	return used;
}

/* Readable (or writable) connection. */
static void conn_event(struct sk_conn *c, uint32_t ev)
{
	int f;

	if (ev & EPOLLIN) {
		for (;;) {
			ssize_t n = sk_recv(c, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
			size_t used;

			if (n == 0 || (n < 0 && n != -EAGAIN)) {
				conn_close(c);
				return;
			}
			if (n < 0)
				break;
			c->rlen += (size_t)n;
			used = process(c);
			memmove(c->rbuf, c->rbuf + used, c->rlen - used);
			c->rlen -= used;
			if (c->rlen == sizeof(c->rbuf)) {       /* a line too long */
				outs(c, c->proto == SK_SMTP ? "500 5.5.0 Line too long\r\n"
				     : c->proto == SK_IMAP ? "* BYE Line too long\r\n"
				     : "-ERR Line too long\r\n");
				c->state = ST_CLOSING;
			}
			if (c->state == ST_CLOSING || c->olen > (1u << 20))
				break;
		}
	}
	f = flush(c);
	if (f < 0 || (f == 0 && c->state == ST_CLOSING))
		conn_close(c);
}

static const char *const greeting[] = {
	[SK_SMTP] = "220 sink.bench ESMTP sink\r\n",
	[SK_IMAP] = ("* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE "
		     "AUTH=PLAIN] sink ready\r\n"),  /* one string (clang asks) */
	[SK_POP3] = "+OK sink ready\r\n",
};

static void accept_all(int lfd, enum sk_proto proto)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct epoll_event e = { .events = EPOLLIN };
		struct sk_conn *c;

		if (fd < 0)
			return;
		if (!(c = calloc(1, sizeof(*c)))) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->proto = proto;
		c->state = ST_PROXY;
		e.data.ptr = c;
		/* the greeting goes out at once: a PROXY header, if any, is read
		 * whenever it comes */
		outs(c, greeting[proto]);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0 || flush(c) < 0)
			conn_close(c);
	}
}

/* Listening socket on "ip:port"; -1 with a message on failure. */
static int listen_on(const char *spec)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char ip[64];
	const char *colon = strrchr(spec, ':');
	int fd, one = 1;

	if (!colon || (size_t)(colon - spec) >= sizeof(ip))
		goto bad;
	snprintf(ip, sizeof(ip), "%.*s", (int)(colon - spec), spec);
	a.sin_port = htons((uint16_t)atoi(colon + 1));
	if (!inet_aton(ip, &a.sin_addr) || !a.sin_port)
		goto bad;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "sink: %s: %s\n", spec, strerror(errno));
		return -1;
	}
	return fd;
bad:
	fprintf(stderr, "sink: bad address '%s' (expected IP:PORT)\n", spec);
	return -1;
}

/* The fixed message: headers, then 76-column lines up to size bytes. */
static int make_message(size_t size)
{
	static const char head[] =
		"From: <sink@bench.test>\r\nTo: <bob@bench.test>\r\n"
		"Subject: the sink's message\r\nMessage-ID: <1@sink.bench>\r\n\r\n";
	size_t n = sizeof(head) - 1, i = 0;

	if (size < n + 2)
		size = n + 2;
	if (!(message = malloc(size)))
		return -1;
	memcpy(message, head, n);
	while (n < size) {
		if (n + 2 >= size || (++i % 78) == 0) {
			message[n++] = '\r';
			message[n++] = '\n';
			continue;
		}
		message[n++] = (char)('A' + i % 26);
	}
	message_len = n;
	return 0;
}

#ifdef SK_NATIVE
/* ---- the native transport (--native) ------------------------------------ */

static void nat_data(struct tcp_conn *tc, void *ctx)
{
	conn_event(ctx, EPOLLIN);
}

/* Room to send: flush, and read what an earlier pass left unread (the
 * stack calls data() only for new bytes; epoll would fire again). */
static void nat_writable(struct tcp_conn *tc, void *ctx)
{
	conn_event(ctx, EPOLLIN | EPOLLOUT);
}

/* The handle is gone (reset, or both sides done): free what is ours. */
static void nat_closed(struct tcp_conn *tc, void *ctx, int err)
{
	struct sk_conn *c = ctx;

	c->tc = NULL;
	conn_close(c);
}

static const struct tcp_ops nat_ops = {
	.data = nat_data, .writable = nat_writable, .closed = nat_closed,
};

/* A connection established on a native listener (lctx: the protocol). */
static int nat_accept(void *lctx, struct tcp_conn *tc)
{
	struct sk_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;          /* a RST */
	c->fd = -1;
	c->tc = tc;
	c->proto = (enum sk_proto)(uintptr_t)lctx;
	c->state = ST_PROXY;
	tcp_set_ops(tc, &nat_ops, c);
	tcp_set_nodelay(tc, true);
	outs(c, greeting[c->proto]);
	if (flush(c) < 0) {
		c->tc = NULL;
		free(c->out);
		free(c);
		return -EPIPE;
	}
	return 0;
}

static volatile sig_atomic_t nat_stop;

static void nat_on_term(int sig)
{
	nat_stop = 1;
}

/* Listen natively on the ports of specs ("IP:PORT"; the IP is ignored:
 * the port's address is natio's) and serve until killed. */
static int run_native(const char *dev, const char *addr, int cpu, unsigned queues,
		      char **specs, const enum sk_proto *protos, unsigned n)
{
	struct natio_config nc = { .device = dev, .prog = "sink", .cpu = cpu, .n_addrs = 1,
				   .queues = queues };
	char ip[32], err[256];
	const char *slash = strchr(addr, '/');
	struct in_addr a;
	struct natio *nio;
	unsigned i;

	snprintf(ip, sizeof(ip), "%.*s", slash ? (int)(slash - addr) : (int)strlen(addr), addr);
	if (!inet_aton(ip, &a)) {
		fprintf(stderr, "sink: --native-addr wants A.B.C.D/LEN\n");
		return 2;
	}
	memcpy(nc.ip4, &a, 4);
	nc.plen = (uint8_t)(slash ? atoi(slash + 1) : 24);
	nc.tcp.sndbuf = nc.tcp.rcvbuf = 64u << 10;
	nc.tcp.max_conns = 1u << 20;
	nc.tcp.syn_backlog = 4096;
	if (!(nio = natio_open(&nc, err, sizeof(err)))) {
		fprintf(stderr, "sink: native: %s\n", err);
		return 1;
	}
	for (i = 0; i < n; i++) {
		const char *colon = strrchr(specs[i], ':');
		long port = colon ? strtol(colon + 1, NULL, 10) : 0;
		struct tcp_listener *l;

		if (port < 1 || port > 65535 ||
		    tcp_listen(natio_stack(nio, 0), NULL, (uint16_t)port, nat_accept,
			       (void *)(uintptr_t)protos[i], &l) < 0) {
			fprintf(stderr, "sink: native: cannot listen on %s\n", specs[i]);
			natio_close(nio);
			return 1;
		}
	}
	/* SIGTERM ends the loop: the EAL's runtime files go with natio_close */
	signal(SIGTERM, nat_on_term);
	signal(SIGINT, nat_on_term);
	fprintf(stderr, "sink: native on %s, %s\n", dev, addr);
	while (!nat_stop)
		natio_idle(nio, natio_poll(nio));
	natio_close(nio);
	return 0;
}
#endif

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "smtp", 1, 0, 's' }, { "imap", 1, 0, 'i' }, { "pop3", 1, 0, 'p' },
		{ "message-size", 1, 0, 'm' }, { "native", 1, 0, 'N' },
		{ "native-addr", 1, 0, 'A' }, { "native-cpu", 1, 0, 'C' },
		{ "native-queues", 1, 0, 'Q' }, { 0, 0, 0, 0 },
	};
	struct { int fd; enum sk_proto proto; } lsn[16];
	enum sk_proto protos[16];
	char *specs[16];
	const char *native = NULL, *native_addr = NULL;
	int native_cpu = -1;
	unsigned nl = 0, i, native_queues = 1;
	size_t msize = 4096;
	struct rlimit rl;
	int o;

	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		enum sk_proto proto = o == 's' ? SK_SMTP : o == 'i' ? SK_IMAP : SK_POP3;

		if (o == 'm') {
			msize = strtoul(optarg, NULL, 10);
			continue;
		}
		if (o == 'N' || o == 'A' || o == 'C' || o == 'Q') {
			if (o == 'Q')
				native_queues = (unsigned)strtoul(optarg, NULL, 10);
			else if (o == 'N')
				native = optarg;
			else if (o == 'A')
				native_addr = optarg;
			else
				native_cpu = atoi(optarg);
			continue;
		}
		if (o == '?' || nl == 16) {
			fprintf(stderr, "usage: sink [--smtp IP:PORT] [--imap IP:PORT] "
				"[--pop3 IP:PORT] [--message-size B] (each may repeat)\n"
				"            [--native VDEV --native-addr A/LEN [--native-cpu N] "
				"[--native-queues N]]\n");
			return 2;
		}
		specs[nl] = optarg;
		protos[nl++] = proto;
	}
	if (!nl || make_message(msize) < 0) {
		fprintf(stderr, "sink: nothing to listen on\n");
		return 2;
	}
	if (native) {
#ifdef SK_NATIVE
		if (!native_addr) {
			fprintf(stderr, "sink: --native needs --native-addr\n");
			return 2;
		}
		return run_native(native, native_addr, native_cpu, native_queues, specs, protos,
				  nl);
#else
		fprintf(stderr, "sink: built without DPDK: no --native\n");
		return 2;
#endif
	}
	for (i = 0; i < nl; i++) {
		if ((lsn[i].fd = listen_on(specs[i])) < 0)
			return 1;
		lsn[i].proto = protos[i];
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (i = 0; i < nl; i++) {
		/* listeners are tagged by small integers, connections by pointers */
		struct epoll_event e = { .events = EPOLLIN, .data.u64 = i + 1 };

		epoll_ctl(ep, EPOLL_CTL_ADD, lsn[i].fd, &e);
	}
	for (;;) {
		struct epoll_event ev[256];
		int n = epoll_wait(ep, ev, 256, -1), k;

		for (k = 0; k < n; k++) {
			if (ev[k].data.u64 <= nl)
				accept_all(lsn[ev[k].data.u64 - 1].fd, lsn[ev[k].data.u64 - 1].proto);
			else
				conn_event(ev[k].data.ptr, ev[k].events);
		}
	}
}
