/*
 * sluice-loadgen's workload scripts: what one operation says and expects,
 * built once at start from the workload, the protocol and the TLS mode, and
 * the message the SMTP workloads send. lg_conn.c walks a connection through
 * the script; nothing here does I/O.
 *
 * A script is three parts:
 *   start    how TLS begins: implicit (TLS, greeting; RFC 8314), STARTTLS
 *            (greeting, the protocol's STARTTLS, TLS; RFC 3207, RFC 2595
 *            §3 and §4), or none (greeting);
 *   body     the workload's dialogue;
 *   end      OP_END: the operation succeeded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lg.h"

#define MAX_STEPS 40

struct sb {
	struct lg_step *s;
	unsigned n;
};

static void add(struct sb *b, enum lg_op op, const char *arg, char expect)
{
	if (b->n < MAX_STEPS - 1)
		b->s[b->n++] = (struct lg_step){ .op = op, .arg = arg, .expect = expect };
}

/* The last step added (to set its flags). */
static struct lg_step *last(struct sb *b)
{
	return &b->s[b->n - 1];
}

/* A command built from the options, kept in g->cmds to be freed at exit;
 * NULL when out of memory. */
static const char *cmd(struct lg *g, const char *fmt, const char *a, const char *b)
{
	char *s;

	if (g->ncmds >= sizeof(g->cmds) / sizeof(*g->cmds) ||
	    asprintf(&s, fmt, a, b ? b : "") < 0)
		return NULL;
	return g->cmds[g->ncmds++] = s;
}

/* An IMAP quoted string (RFC 9051 §4.3): backslash before " and \. */
static char *imap_quote(const char *s)
{
	char *q = malloc(2 * strlen(s) + 3), *p = q;

	if (!q)
		return NULL;
	*p++ = '"';
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = '"';
	*p = 0;
	return q;
}

/* The server's first words: an SMTP banner may run over several lines. */
static void greeting(struct sb *b, enum lg_proto p)
{
	if (p == LG_P_SMTP)
		add(b, OP_SMTP, NULL, '2');
	else
		add(b, OP_GREETING, NULL, 0);
}

/* The protocol's request to start TLS, up to its positive reply. */
static void starttls(struct lg *g, struct sb *b, enum lg_proto p)
{
	switch (p) {
	case LG_P_SMTP:
		add(b, OP_SEND, cmd(g, "EHLO %s\r\n", g->ehlo_name, NULL), 0);
		add(b, OP_SMTP, NULL, '2');
		add(b, OP_SEND, "STARTTLS\r\n", 0);
		add(b, OP_SMTP, NULL, '2');
		break;
	case LG_P_IMAP:
		add(b, OP_SEND, "a STARTTLS\r\n", 0);
		add(b, OP_IMAP, "a", 0);
		break;
	case LG_P_POP3:          /* RFC 2595 §4 */
		add(b, OP_SEND, "STLS\r\n", 0);
		add(b, OP_POP3, NULL, 0);
		break;
	default:
		break;
	}
}

/* After STARTTLS the client speaks first: one harmless command proves the
 * server is through its side of the handshake. POP3's NOOP is for the
 * TRANSACTION state only; CAPA works in any (RFC 2449 §5). */
static void probe(struct sb *b, enum lg_proto p)
{
	switch (p) {
	case LG_P_SMTP:
		add(b, OP_SEND, "NOOP\r\n", 0);
		add(b, OP_SMTP, NULL, '2');
		break;
	case LG_P_IMAP:
		add(b, OP_SEND, "z NOOP\r\n", 0);
		add(b, OP_IMAP, "z", 0);
		break;
	case LG_P_POP3:
		add(b, OP_SEND, "CAPA\r\n", 0);
		add(b, OP_POP3_MULTI, NULL, 0);
		break;
	default:
		break;
	}
}

/* "AUTH PLAIN <base64 of \0user\0password>" (RFC 4954 §4, RFC 4616 §2:
 * no authorization identity); NULL when out of memory. */
static const char *auth_plain(struct lg *g)
{
	size_t ul = strlen(g->user), pl = strlen(g->password), n = ul + pl + 2;
	unsigned char *raw = malloc(n);
	char *b64 = malloc(4 * (n / 3 + 1) + 1);
	const char *c = NULL;

	if (raw && b64) {
		raw[0] = 0;
		memcpy(raw + 1, g->user, ul);
		raw[1 + ul] = 0;
		memcpy(raw + 2 + ul, g->password, pl);
		EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);
		c = cmd(g, "AUTH PLAIN %s\r\n", b64, NULL);
	}
	free(raw);
	free(b64);
	return c;
}

/* RFC 5321 session, no pipelining: what a typical MTA does per message;
 * with --user, what a submission client does (AUTH after EHLO). */
static void smtp_body(struct lg *g, struct sb *b)
{
	add(b, OP_SEND, cmd(g, "EHLO %s\r\n", g->ehlo_name, NULL), 0);
	add(b, OP_SMTP, NULL, '2');
	if (g->smtp_auth) {
		add(b, OP_SEND, auth_plain(g), 0);
		add(b, OP_SMTP, NULL, '2');     /* 235 */
		last(b)->auth = true;
	}
	add(b, OP_SEND, cmd(g, "MAIL FROM:<%s>\r\n", g->mail_from, NULL), 0);
	add(b, OP_SMTP, NULL, '2');
	add(b, OP_SEND, cmd(g, "RCPT TO:<%s>\r\n", g->rcpt_to, NULL), 0);
	add(b, OP_SMTP, NULL, '2');
	add(b, OP_SEND, "DATA\r\n", 0);
	add(b, OP_SMTP, NULL, '3');
	add(b, OP_SEND_MSG, NULL, 0);
	add(b, OP_SMTP, NULL, '2');
	add(b, OP_SEND, "QUIT\r\n", 0);
	add(b, OP_SMTP, NULL, '2');
}

/* RFC 9051: log in, open the inbox, fetch the first message whole (a NOOP
 * when the inbox is empty), log out. */
static int imap_body(struct lg *g, struct sb *b)
{
	char *u = imap_quote(g->user), *p = imap_quote(g->password);
	const char *login = u && p ? cmd(g, "b LOGIN %s %s\r\n", u, p) : NULL;

	free(u);
	free(p);
	if (!login)
		return -ENOMEM;
	add(b, OP_SEND, login, 0);
	add(b, OP_IMAP, "b", 0);
	last(b)->auth = true;
	add(b, OP_SEND, "c SELECT INBOX\r\n", 0);
	add(b, OP_IMAP, "c", 0);
	last(b)->count = true;
	add(b, OP_SEND_FETCH, NULL, 0);
	add(b, OP_IMAP, "d", 0);
	add(b, OP_SEND, "e LOGOUT\r\n", 0);
	add(b, OP_IMAP, "e", 0);
	return 0;
}

/* RFC 1939: USER/PASS, STAT, RETR 1 (LIST when the maildrop is empty),
 * QUIT (which commits: nothing was deleted). */
static void pop3_body(struct lg *g, struct sb *b)
{
	add(b, OP_SEND, cmd(g, "USER %s\r\n", g->user, NULL), 0);
	add(b, OP_POP3, NULL, 0);
	last(b)->auth = true;
	add(b, OP_SEND, cmd(g, "PASS %s\r\n", g->password, NULL), 0);
	add(b, OP_POP3, NULL, 0);
	last(b)->auth = true;
	add(b, OP_SEND, "STAT\r\n", 0);
	add(b, OP_POP3, NULL, 0);
	last(b)->count = true;
	add(b, OP_SEND_FETCH, NULL, 0);
	add(b, OP_POP3_MULTI, NULL, 0);
	add(b, OP_SEND, "QUIT\r\n", 0);
	add(b, OP_POP3, NULL, 0);
}

/* Builds g->script; 0, or -ENOMEM. The options were checked (lg_opts.c):
 * STARTTLS comes with a protocol, idle and handshake with some TLS. */
int lg_script_init(struct lg *g)
{
	struct sb b = { calloc(MAX_STEPS, sizeof(*b.s)), 0 };
	unsigned i;
	int rc = 0;

	if (!b.s)
		return -ENOMEM;
	/* the server holds a connection before TLS; with --rate the
	 * connections go on to TLS as they open (a bounded handshake rate) */
	if (g->wl == WL_IDLE && !(g->rate > 0))
		add(&b, OP_HOLD, "plain", 0);
	switch (g->tls_mode) {
	case LG_TLS_IMPLICIT:
		add(&b, OP_TLS, NULL, 0);
		greeting(&b, g->proto);
		break;
	case LG_TLS_STARTTLS:
		greeting(&b, g->proto);
		starttls(g, &b, g->proto);
		add(&b, OP_TLS, NULL, 0);
		break;
	case LG_TLS_NONE:
		greeting(&b, g->proto);
		break;
	}
	switch (g->wl) {
	case WL_HANDSHAKE:
	case WL_RESUME:
		if (g->tls_mode == LG_TLS_STARTTLS)
			probe(&b, g->proto);
		break;
	case WL_IDLE:
		if (g->tls_mode == LG_TLS_STARTTLS)
			probe(&b, g->proto);
		add(&b, OP_HOLD, "tls", 0);     /* an idle TLS connection */
		break;
	case WL_SMTP:
	case WL_BULK:
		smtp_body(g, &b);
		break;
	case WL_IMAP:
		rc = imap_body(g, &b);
		break;
	case WL_POP3:
		pop3_body(g, &b);
		break;
	default:
		rc = -EINVAL;
	}
	add(&b, OP_END, NULL, 0);
	/* a command that could not be built */
	for (i = 0; i < b.n; i++)
		if (b.s[i].op == OP_SEND && !b.s[i].arg)
			rc = -ENOMEM;
	if (rc < 0) {
		free(b.s);
		return rc;
	}
	g->script = b.s;
	if (g->wl == WL_IDLE && g->probe_n) {
		/* --probe: the same session without its stops, timed */
		unsigned j = 0;

		if (!(g->probe_script = calloc(b.n, sizeof(*b.s))))
			return -ENOMEM;
		for (i = 0; i < b.n; i++)
			if (b.s[i].op != OP_HOLD)
				g->probe_script[j++] = b.s[i];
	}
	return 0;
}

/* The bytes a send step sends (*len set): the message, the fetch that
 * fits what STAT or SELECT counted, or the step's own text. */
const char *lg_step_text(const struct lg *g, const struct lg_conn *c, size_t *len)
{
	const char *t;

	switch (c->step->op) {
	case OP_SEND_MSG:
		*len = g->msg_len;
		return g->msg;
	case OP_SEND_FETCH:
		if (g->proto == LG_P_IMAP)
			t = c->msgs ? "d FETCH 1 BODY[]\r\n" : "d NOOP\r\n";
		else
			t = c->msgs ? "RETR 1\r\n" : "LIST\r\n";
		break;
	default:
		t = c->step->arg;
	}
	*len = strlen(t);
	return t;
}

/* The message: headers and 76-column lines up to --size bytes, then the
 * end-of-data line. No line starts with '.', so no dot-stuffing. One
 * Message-ID per run (the run's start and PID): a server that keeps
 * duplicates apart by Message-ID would see one message. */
int lg_make_message(struct lg *g)
{
	char head[1024];
	size_t hn, size, n, i = 0;
	char *m;

	hn = (size_t)snprintf(head, sizeof(head),
			      "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
			      "Message-ID: <%llx.%d@sluice-loadgen>\r\n\r\n",
			      g->mail_from, g->rcpt_to, g->subject,
			      (unsigned long long)time(NULL), (int)getpid());
	if (hn >= sizeof(head))
		return -EINVAL;
	size = g->msg_size < hn + 1 ? hn + 1 : g->msg_size;
	if (!(m = malloc(size + 8)))
		return -ENOMEM;
	memcpy(m, head, hn);
	n = hn;
	while (n + 2 < size) {
		m[n++] = (char)('a' + i % 26);
		if (++i % 76 == 0 || n + 2 >= size) {
			m[n++] = '\r';
			m[n++] = '\n';
		}
	}
	memcpy(m + n, ".\r\n", 3);
	g->msg = m;
	g->msg_len = n + 3;
	return 0;
}
