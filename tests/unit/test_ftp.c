/*
 * Unit tests for the FTP engine (dataplane/proto/ftp.c): the dialogue as
 * transcripts (transcript.h), and the relay's trackers step by step: PBSZ,
 * PROT and PORT stopped for sluice's own answer, the backend's replies to
 * PASV and EPSV handed over whole, read, and rewritten to sluice's data
 * port; bad 227/229 lines refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"
#include "transcript.h"

#define FTP_LINE_MAX 1024

static const char *const vsftpd_caps[] = {
	"EPRT", "EPSV", "MDTM", "PASV", "REST STREAM", "SIZE", "TVFS", NULL
};

static const struct setup required_caps = { CFG_TLS_REQUIRED, true, vsftpd_caps };
static const struct setup starttls_nocaps = { CFG_TLS_STARTTLS, true, NULL };
static const struct setup implicit_caps = { CFG_TLS_IMPLICIT, true, vsftpd_caps };
static const struct setup off_nocaps = { CFG_TLS_OFF, true, NULL };

/* An FTP reply (RFC 959 4.2): lines ending in CR LF, each "NNN " or "NNN-"
 * or, inside a multi-line reply, anything up to "NNN " with its code. */
static bool ftp_well_formed(const struct step *st, const struct proto_out *o)
{
	const char *r = o->reply, *end = o->reply + o->reply_len, *line = r;
	char code[4] = "";

	(void)st;
	if (!o->reply_len || memcmp(end - 2, "\r\n", 2))
		return false;
	while (line < end) {
		const char *crlf = memmem(line, (size_t)(end - line), "\r\n", 2);

		if (!crlf)
			return false;
		if (code[0]) {
			if (!strncmp(line, code, 3) && line[3] == ' ')
				code[0] = 0;
		} else {
			if (crlf - line < 4 || line[0] < '1' || line[0] > '5' ||
			    (line[3] != ' ' && line[3] != '-'))
				return false;
			if (line[3] == '-')
				memcpy(code, line, 3);
		}
		line = crlf + 2;
	}
	return code[0] == 0;
}

static const struct transcript_proto TP = {
	.proto = CFG_PROTO_FTP, .name = "ftp", .line_max = FTP_LINE_MAX,
	.unit = "a whole FTP reply", .well_formed = ftp_well_formed,
	.probe_request = "FEAT\r\n",
	.probe_quit = "QUIT\r\n",
};

static void test_greeting_and_feat(void **state)
{
	static const struct step t[] = {
		GREETING("220 mx.test FTP ready.\r\n"),
		CX("FEAT", "211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n EPSV\r\n MDTM\r\n"
		   " PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n211 End\r\n", 0),
		CX("SYST", "215 UNIX Type: L8\r\n", 0),
		CX("NOOP", "200 NOOP ok.\r\n", 0),
		CX("AUTH TLS", "234 AUTH TLS successful.\r\n", PO_STARTTLS),
		TLS_UP,
		/* Inside TLS: no AUTH TLS any more; PBSZ and PROT stay. */
		CX("FEAT", "211-Features:\r\n PBSZ\r\n PROT\r\n EPSV\r\n MDTM\r\n PASV\r\n"
		   " REST STREAM\r\n SIZE\r\n TVFS\r\n211 End\r\n", 0),
		CX("QUIT", "221 Goodbye.\r\n", PO_CLOSE),
	};
	static const struct step nocaps[] = {
		CX("FEAT", "211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n EPSV\r\n PASV\r\n"
		   " SIZE\r\n MDTM\r\n REST STREAM\r\n UTF8\r\n211 End\r\n", 0),
	};

	RUN(&required_caps, t);
	RUN(&starttls_nocaps, nocaps);
}

/* AUTH TLS, AUTH SSL, AUTH TLS-C start TLS (RFC 4217 4); another mechanism
 * is 504; AUTH again inside TLS is 503. */
static void test_auth(void **state)
{
	static const struct step t[] = {
		CXK("AUTH GSSAPI", "504 Security mechanism not understood.\r\n", 0, CTR_bad_syntax),
		CXK("AUTH ", "500 Unknown command.\r\n", 0, CTR_bad_syntax), /* no mechanism */
		CX("auth ssl", "234 AUTH TLS successful.\r\n", PO_STARTTLS),
		TLS_UP,
		CXK("AUTH TLS", "503 Already in TLS.\r\n", 0, CTR_starttls_in_tls),
	};
	static const struct step tlsc[] = {
		CX("AUTH TLS-C", "234 AUTH TLS successful.\r\n", PO_STARTTLS),
	};
	static const struct step off[] = {
		CX("AUTH TLS", "502 AUTH TLS is not available.\r\n", 0),
	};

	RUN(&required_caps, t);
	RUN(&required_caps, tlsc);
	RUN(&off_nocaps, off);
}

/* tls: required: USER and PASS are 530 before TLS (rule 2.6); after it
 * USER goes to the backend, whose 220 is swallowed. */
static void test_login(void **state)
{
	static const struct step t[] = {
		CXK("USER anonymous", "530 Use AUTH TLS first: this server requires TLS.\r\n", 0,
		    CTR_refused_before_tls),
		CX("PASS x", "530 Use AUTH TLS first: this server requires TLS.\r\n", 0),
		CX("PASV", "530 Please login with USER and PASS.\r\n", 0),
		CX("AUTH TLS", "234 AUTH TLS successful.\r\n", PO_STARTTLS),
		TLS_UP,
		C("USER anonymous", NULL, PO_BACKEND),
		B("220-welcome", NULL, 0),
		B("220 (vsFTPd 3.0.5)", NULL, PO_FLUSH_HELD | PO_RELAY),
	};
	static const struct step refused[] = {
		CX("AUTH TLS", "234 AUTH TLS successful.\r\n", PO_STARTTLS),
		TLS_UP,
		C("USER bob", NULL, PO_BACKEND),
		BX("421 Too many users", "421 mx.test Service not available, try again later.\r\n",
		   PO_CLOSE | PO_FAIL),
	};
	static const struct step implicit[] = {
		TLS_UP,
		GREETING("220 mx.test FTP ready.\r\n"),
		C("USER anonymous", NULL, PO_BACKEND),
	};

	RUN(&required_caps, t);
	RUN(&required_caps, refused);
	RUN(&implicit_caps, implicit);
}

/* PBSZ and PROT (RFC 4217 8, 9) in the dialogue; PORT refused. */
static void test_pbsz_prot_port(void **state)
{
	static const struct step t[] = {
		CX("PBSZ 0", "503 PBSZ requires AUTH TLS first.\r\n", 0),
		CX("PORT 127,0,0,1,4,1", "502 Active mode is not supported; use PASV or EPSV.\r\n", 0),
		CX("AUTH TLS", "234 AUTH TLS successful.\r\n", PO_STARTTLS),
		TLS_UP,
		CX("PROT P", "503 PBSZ first.\r\n", 0),
		CX("PBSZ 0", "200 PBSZ=0\r\n", 0),
		CXK("PROT C", "534 Data connections must be protected (PROT P).\r\n", 0,
		    CTR_ftp_prot_c_refused),
		CX("PROT S", "536 Protection level not supported by TLS.\r\n", 0),
		CX("PROT X", "504 Unknown protection level.\r\n", 0),
		CX("PROT P", "200 Protection level set to P.\r\n", 0),
		CXK("EPRT |1|127.0.0.1|1025|", "502 Active mode is not supported; use PASV or EPSV.\r\n",
		    0, CTR_ftp_active_refused),
	};

	RUN(&required_caps, t);
}

static void test_probe(void **state)
{
	static const struct probe_step t[] = {
		{ "220 (vsFTPd 3.0.5)", 1 },
		{ "211-Features:", 0 },
		{ " EPRT", 0 },
		{ " EPSV", 0 },
		{ " REST STREAM", 0 },
		{ "211 End", 2 },
	};
	static const struct probe_step nofeat[] = {
		{ "220-hello", 0 },
		{ "220 ready", 1 },
		{ "500 Unknown command.", 2 },
	};
	static const struct probe_step refused[] = {
		{ "421 Too many", -1 },
	};

	assert_int_equal(PROBE_COUNT(t), 3);
	assert_int_equal(PROBE_COUNT(nofeat), 0);
	assert_int_equal(PROBE_COUNT(refused), 0);
}

/* ---- the relay ------------------------------------------------------------ */

/* A session inside TLS, logged in through the backend: PBSZ/PROT given. */
struct rl {
	const struct proto_ops *ops;
	struct proto_env env;
	struct proto_sess ps;
};

static void rl_init(struct rl *r, bool prot_p)
{
	struct proto_out o;

	memset(r, 0, sizeof(*r));
	r->ops = proto_get(CFG_PROTO_FTP);
	r->env = (struct proto_env){ "mx.test", CFG_TLS_REQUIRED, true, NULL, 0, NULL, false };
	r->ops->tls_started(&r->ps);
	assert_true(r->ps.in_tls);
	if (prot_p) {
		po_reset(&o);
		r->ops->client_line(&r->env, &r->ps, "PBSZ 0", 6, false, &o);
		po_reset(&o);
		r->ops->client_line(&r->env, &r->ps, "PROT P", 6, false, &o);
		assert_memory_equal(o.reply, "200 ", 4);
	}
}

/* Client bytes through c2b_scan: how many may go now. */
static size_t rl_c2b(struct rl *r, const char *s, char *copy)
{
	size_t n = strlen(s);

	memcpy(copy, s, n);
	return r->ops->c2b_scan(&r->ps, (uint8_t *)copy, n);
}

/* Backend bytes, relayed as the session does: up to b2c_safe, then, where it
 * stops, the whole line to b2c_line. Returns b2c_line's verdict for the
 * line it stopped at (2: it never stopped); *d and *o what it said. */
static int rl_b2c(struct rl *r, const char *s, struct proto_data *d, struct proto_out *o)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t len = strlen(s);
	int verdict = 2;

	while (len) {
		size_t n = r->ops->b2c_safe(&r->ps, p, len);

		if (n == 0) {
			const uint8_t *lf = memchr(p, '\n', len);
			size_t total = lf ? (size_t)(lf - p) + 1 : len, l = total;
			char *line;

			while (l && (p[l - 1] == '\n' || p[l - 1] == '\r'))
				l--;
			line = malloc(l ? l : 1); /* exactly its length: ASan sees overreads */
			memcpy(line, p, l);
			po_reset(o);
			verdict = r->ops->b2c_line(&r->env, &r->ps, line, l, d, o);
			free(line);
			n = total;
		}
		r->ops->b2c_scan(&r->ps, p, n);
		p += n;
		len -= n;
	}
	return verdict;
}

/* PASV and EPSV answers rewritten; the data connection is TLS after
 * PROT P; a 227 that names a host is read whatever its form (RFC 1123
 * 4.1.2.6: no parenthesis promised). */
static void test_relay_passive_rewrite(void **state)
{
	struct rl r;
	struct proto_data d;
	struct proto_out o;
	char buf[256];

	rl_init(&r, true);
	assert_int_equal(rl_c2b(&r, "PASV\r\n", buf), 6);
	/* Another reply before it (none due): passes as it is. */
	assert_int_equal(rl_b2c(&r, "227 Entering Passive Mode (127,0,0,1,173,12).\r\n", &d, &o), 1);
	assert_false(d.epsv);
	assert_true(d.tls);
	assert_memory_equal(d.be_host, "\x7f\x00\x00\x01", 4);
	assert_int_equal(d.be_port, 173 * 256 + 12);
	assert_int_equal(r.ps.replies, 1);

	/* sluice's own port in its place. */
	d.host[0] = 192; d.host[1] = 0; d.host[2] = 2; d.host[3] = 10;
	d.port = 44100;
	po_reset(&o);
	r.ops->data_reply(&r.env, &r.ps, &d, &o);
	o.reply[o.reply_len] = 0;
	assert_string_equal(o.reply, "227 Entering Passive Mode (192,0,2,10,172,68).\r\n");

	assert_int_equal(rl_c2b(&r, "EPSV\r\n", buf), 6);
	assert_int_equal(rl_b2c(&r, "229 Entering Extended Passive Mode (|||44250|)\r\n", &d, &o), 1);
	assert_true(d.epsv);
	assert_int_equal(d.be_port, 44250);
	d.port = 44101;
	po_reset(&o);
	r.ops->data_reply(&r.env, &r.ps, &d, &o);
	o.reply[o.reply_len] = 0;
	assert_string_equal(o.reply, "229 Entering Extended Passive Mode (|||44101|)\r\n");

	/* No parenthesis, split across reads, other replies in front. */
	assert_int_equal(rl_c2b(&r, "TYPE I\r\nPASV\r\n", buf), 14);
	assert_int_equal(rl_b2c(&r, "200 Switching to Binary mode.\r\n", &d, &o), 2);
	assert_int_equal(rl_b2c(&r, "227 =10,0,0,5,4,1\r\n", &d, &o), 1);
	assert_memory_equal(d.be_host, "\x0a\x00\x00\x05", 4);
	assert_int_equal(d.be_port, 1025);
	assert_int_equal(r.ps.replies, r.ps.cmds);

	/* An error to PASV passes as it is, nothing opened. */
	assert_int_equal(rl_c2b(&r, "PASV\r\n", buf), 6);
	assert_int_equal(rl_b2c(&r, "425 Security: Bad IP connecting.\r\n", &d, &o), 0);
	assert_int_equal(o.reply_len, 0);

	/* Without PROT P the data connection is in the clear. */
	rl_init(&r, false);
	rl_c2b(&r, "PASV\r\n", buf);
	assert_int_equal(rl_b2c(&r, "227 Entering Passive Mode (127,0,0,1,4,1).\r\n", &d, &o), 1);
	assert_false(d.tls);
}

/* Malformed 227 and 229 lines are refused with 425, never passed on. */
static void test_relay_passive_bad_lines(void **state)
{
	static const char *const bad227[] = {
		"227 Entering Passive Mode (127,0,0,1,173).\r\n",
		"227 Entering Passive Mode (127,0,0,256,1,1).\r\n",
		"227 Entering Passive Mode (127,0,0,1,0,0).\r\n",
		"227 Entering Passive Mode.\r\n",
		"227 (1,2,3,4,5,6666)\r\n",
	};
	static const char *const bad229[] = {
		"229 Entering Extended Passive Mode (|||0|)\r\n",
		"229 Entering Extended Passive Mode (|||70000|)\r\n",
		"229 Entering Extended Passive Mode (||44|)\r\n",
		"229 Entering Extended Passive Mode (|||44!)\r\n",
		"229 Entering Extended Passive Mode |||44|\r\n",
		"229 (1112)\r\n",
	};
	struct rl r;
	struct proto_data d;
	struct proto_out o;
	char buf[64];

	for (size_t i = 0; i < sizeof(bad227) / sizeof(bad227[0]); i++) {
		rl_init(&r, true);
		rl_c2b(&r, "PASV\r\n", buf);
		assert_int_equal(rl_b2c(&r, bad227[i], &d, &o), -1);
		o.reply[o.reply_len] = 0;
		assert_string_equal(o.reply, "425 Cannot open data connection.\r\n");
		assert_int_equal(o.counter, CTR_ftp_data_bad_reply);
		assert_int_equal(r.ps.replies, 1); /* counted as the reply it replaced */
	}
	for (size_t i = 0; i < sizeof(bad229) / sizeof(bad229[0]); i++) {
		rl_init(&r, true);
		rl_c2b(&r, "EPSV\r\n", buf);
		assert_int_equal(rl_b2c(&r, bad229[i], &d, &o), -1);
		assert_int_equal(o.counter, CTR_ftp_data_bad_reply);
	}
	/* A 227 to a command that is not PASV is not ours to read. */
	rl_init(&r, true);
	rl_c2b(&r, "NOOP\r\n", buf);
	assert_int_equal(rl_b2c(&r, "227 Entering Passive Mode (1,2,3,4,5,6).\r\n", &d, &o), 2);
}

/* A line through b2c_safe and, if it stops there, b2c_line (CR LF off):
 * b2c_line's verdict, or 3 when the line passed as it is. */
static int rl_line(struct rl *r, const char *l, struct proto_out *o)
{
	size_t n = strlen(l);
	struct proto_data d;
	char *copy;
	int v;

	if (r->ops->b2c_safe(&r->ps, (const uint8_t *)l, n) == n) {
		r->ops->b2c_scan(&r->ps, (const uint8_t *)l, n);
		return 3;
	}
	copy = malloc(n - 2);
	memcpy(copy, l, n - 2);
	po_reset(o);
	v = r->ops->b2c_line(&r->env, &r->ps, copy, n - 2, &d, o);
	free(copy);
	if (v != 2)
		r->ops->b2c_scan(&r->ps, (const uint8_t *)l, n); /* relayed or replaced */
	return v;
}

/* A transfer's final 2yz waits while its data connection is checked
 * (data_pending) and goes once it relays; after a data connection that
 * ended before it relayed (data_refused) a 2yz becomes 426, the server's
 * own error passes; a 1yz and errors never wait, nor a 2yz to another
 * command. */
static void test_relay_transfer_reply(void **state)
{
	static const char l150[] = "150 Opening BINARY mode data connection.\r\n";
	static const char l226[] = "226 Transfer complete.\r\n";
	struct rl r;
	struct proto_out o;
	char buf[64];

	rl_init(&r, true);
	rl_c2b(&r, "RETR f\r\n", buf);
	r.ps.data_pending = true;
	assert_int_equal(rl_line(&r, l150, &o), 3);      /* TLS begins after it */
	assert_int_equal(rl_line(&r, l226, &o), 2);      /* waits, not relayed */
	assert_int_equal(r.ps.replies, 0);
	r.ps.data_pending = false;                       /* relaying now */
	assert_int_equal(rl_line(&r, l226, &o), 3);
	assert_int_equal(r.ps.replies, 1);

	rl_c2b(&r, "STOR g\r\n", buf);
	r.ps.data_refused = true;
	assert_int_equal(rl_line(&r, l150, &o), 3);
	assert_int_equal(rl_line(&r, l226, &o), -1);
	o.reply[o.reply_len] = 0;
	assert_string_equal(o.reply, "426 Connection closed; transfer aborted.\r\n");
	assert_int_equal(o.counter, CTR_ftp_xfer_aborted);
	assert_false(r.ps.data_refused);
	assert_int_equal(r.ps.replies, 2);

	rl_c2b(&r, "RETR h\r\n", buf);
	r.ps.data_refused = true;
	assert_int_equal(rl_line(&r, "426 Failure writing network stream.\r\n", &o), 0);
	assert_int_equal(o.reply_len, 0);
	assert_false(r.ps.data_refused);

	/* a multi-line 2yz (Pure-FTPd's): 426 from its first line to its
	 * end; its text between passes; the reply is counted once */
	rl_c2b(&r, "RETR m\r\n", buf);
	r.ps.data_refused = true;
	assert_int_equal(rl_line(&r, "226-File successfully transferred\r\n", &o), -1);
	o.reply[o.reply_len] = 0;
	assert_string_equal(o.reply, "426-Connection closed; transfer aborted.\r\n");
	assert_int_equal(o.counter, CTR_ftp_xfer_aborted);
	assert_int_equal(rl_line(&r, "226-0.002 seconds (measured here)\r\n", &o), 0);
	assert_int_equal(o.reply_len, 0);
	assert_int_equal(rl_line(&r, "    some text\r\n", &o), 0);
	assert_int_equal(rl_line(&r, "226 1.00 Mbytes per second\r\n", &o), -1);
	o.reply[o.reply_len] = 0;
	assert_string_equal(o.reply, "426 Connection closed; transfer aborted.\r\n");
	assert_int_equal(r.ps.replies, r.ps.cmds);
	rl_c2b(&r, "NOOP\r\n", buf);
	assert_int_equal(rl_line(&r, "200 NOOP ok.\r\n", &o), 3);  /* as it is again */
	assert_int_equal(r.ps.replies, r.ps.cmds);

	rl_c2b(&r, "RETR i\r\n", buf);
	r.ps.data_pending = true;
	assert_int_equal(rl_line(&r, "550 Failed to open file.\r\n", &o), 3);
	rl_c2b(&r, "NOOP\r\n", buf);
	assert_int_equal(rl_line(&r, "200 NOOP ok.\r\n", &o), 3);
	assert_int_equal(r.ps.replies, r.ps.cmds);
}

/* PBSZ, PROT, PORT, EPRT stop the tracker (local_due): sluice answers them;
 * AUTH inside TLS becomes XUTH; a multi-line reply is counted once. */
static void test_relay_local_commands(void **state)
{
	struct rl r;
	struct proto_out o;
	struct proto_data d;
	char buf[128];

	rl_init(&r, false);
	assert_int_equal(rl_c2b(&r, "NOOP\r\nPBSZ 0\r\nPROT P\r\n", buf), 6);
	assert_true(r.ps.local_due);
	assert_int_equal(rl_c2b(&r, "PBSZ 0\r\n", buf), 0); /* held until answered */
	po_reset(&o);
	r.ops->c2b_local(&r.env, &r.ps, "PBSZ 0", 6, &o);
	assert_false(r.ps.local_due);
	assert_memory_equal(o.reply, "200 PBSZ=0\r\n", o.reply_len);
	assert_int_equal(rl_c2b(&r, "PROT P\r\n", buf), 0);
	po_reset(&o);
	r.ops->c2b_local(&r.env, &r.ps, "PROT P", 6, &o);
	assert_memory_equal(o.reply, "200 ", 4);
	assert_int_equal(rl_c2b(&r, "PORT 1,2,3,4,5,6\r\n", buf), 0);
	po_reset(&o);
	r.ops->c2b_local(&r.env, &r.ps, "PORT 1,2,3,4,5,6", 16, &o);
	assert_memory_equal(o.reply, "502 ", 4);
	assert_int_equal(o.counter, CTR_ftp_active_refused);

	assert_int_equal(rl_c2b(&r, "AUTH TLS\r\n", buf), 10);
	assert_memory_equal(buf, "XUTH TLS\r\n", 10);
	assert_int_equal(r.ps.denied, 1);

	/* The replies: NOOP's, a multi-line one, then XUTH's. */
	assert_int_equal(r.ps.cmds, 2);
	rl_b2c(&r, "200 ok\r\n", &d, &o);
	rl_b2c(&r, "530-first\r\n230 not the end\r\n530 end\r\n", &d, &o);
	assert_int_equal(r.ps.replies, 2);
	/* A preliminary 150 is no reply. */
	rl_c2b(&r, "RETR x\r\n", buf);
	rl_b2c(&r, "150 Opening BINARY mode data connection.\r\n", &d, &o);
	assert_int_equal(r.ps.replies, 2);
	rl_b2c(&r, "226 Transfer complete.\r\n", &d, &o);
	assert_int_equal(r.ps.replies, 3);
}

/* The plaintext relay (tls: starttls, logged in without TLS): AUTH TLS is
 * held (rule 2.7) and refused after login. */
static void test_late_auth(void **state)
{
	static const struct relay_step before_login[] = {
		RA("", "AUTH TLS\r\n", "", "234 AUTH TLS successful.\r\n", PO_STARTTLS, "QUIT\r\n"),
	};
	static const struct relay_step after_login[] = {
		R("", "USER a\r\nPASS b\r\n", "USER a\r\nPASS b\r\n"),
		RA("331 ok\r\n230 Login successful.\r\n", "AUTH TLS\r\n", "",
		   "503 AUTH is not valid after login.\r\n", 0, NULL),
	};

	RELAY(&starttls_nocaps, before_login);
	RELAY(&starttls_nocaps, after_login);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_and_feat),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_pbsz_prot_port),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_relay_passive_rewrite),
		cmocka_unit_test(test_relay_passive_bad_lines),
		cmocka_unit_test(test_relay_transfer_reply),
		cmocka_unit_test(test_relay_local_commands),
		cmocka_unit_test(test_late_auth),
	};

	return cmocka_run_group_tests_name("ftp", tests, NULL, NULL);
}
