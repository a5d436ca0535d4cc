/*
 * FTP engine (RFC 959) with TLS per RFC 4217 (AUTH TLS, PBSZ, PROT) and
 * passive data connections (PASV, RFC 959 4.1.2; EPSV, RFC 2428 3).
 *
 * Before login sluice answers itself: 220, FEAT (RFC 2389) with AUTH TLS,
 * PBSZ and PROT added, AUTH TLS (the STARTTLS rules of proto.c: the reply
 * 234 drains, then the handshake), SYST, NOOP, QUIT. USER (and PASS, ACCT)
 * need TLS first on tls: required (530) and hand the session to the
 * backend, a plain FTP server whose 220 is swallowed. PBSZ and PROT are
 * sluice's to answer wherever they come (the backend speaks plain FTP and
 * never sees them); PORT and EPRT are refused (active mode: the server
 * would connect to an address the client names, through NAT, and to any
 * host it names: the FTP bounce, RFC 2577).
 *
 * In the relay, the tracker counts commands and final replies (RFC 959
 * 4.2: "NNN-" opens a multi-line reply that "NNN " ends; 1yz is
 * preliminary), stops before PBSZ, PROT, PORT and EPRT (answered by
 * sluice once every earlier command has its reply: c2b_local) and hands
 * the reply to PASV or EPSV to the session whole (b2c_line): the session
 * opens a data port of its own and the client gets that in the answer
 * (data_reply).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"

#define FTP_LINE_MAX 1024     /* RFC 959 sets none; paths are long */
#define FTP_MAX_ERRORS 10

extern const struct proto_ops ftp_ops;

/* What a relayed command was, for the reply that comes to it. */
enum ftp_kind {
	K_OTHER,
	K_PASV,       /* a 227 names the backend's data port */
	K_EPSV,       /* a 229 does */
	K_LOGIN,      /* USER, PASS, ACCT: a 230 logs in */
	K_XFER,       /* RETR, STOR, STOU, APPE, LIST, NLST, MLSD: a 2yz says
			 the transfer over the data connection completed */
};

#define FTP_KINDS 32

/* The engine's own state, in ps->priv. */
struct ftp_state {
	bool held;              /* USER sent for the backend */
	bool pbsz;              /* PBSZ 0 accepted (RFC 4217 9: before PROT) */
	bool prot_p;            /* PROT P: data connections are TLS */
	bool authed;            /* a 230 came: logged in (no AUTH after) */
	bool c_long;            /* c2b: inside a line over the limit */
	bool kinds_lost;        /* more in flight than kind[] holds */
	bool b_multi;           /* b2c: inside a multi-line reply */
	bool xfer_426;          /* b2c: inside a multi-line 2yz made 426 */
	char b_code[3];         /* its code */
	uint8_t kind[FTP_KINDS]; /* enum ftp_kind of relayed command n at
				    [(n - 1) % FTP_KINDS] */
	uint8_t kinds_pasv;     /* PASV/EPSV among those not yet answered */
};

_Static_assert(sizeof(struct ftp_state) <= PROTO_PRIV_MAX, "ftp_state fits ps->priv");

static struct ftp_state *ftp_st(struct proto_sess *ps)
{
	return (struct ftp_state *)ps->priv;
}

static const struct ftp_state *ftp_cst(const struct proto_sess *ps)
{
	return (const struct ftp_state *)ps->priv;
}

static void ftp_greeting(const struct proto_env *env, struct proto_sess *ps,
			 struct proto_out *o)
{
	po_reply(o, "220 %s FTP ready.\r\n", env->hostname);
}

static void ftp_error(const struct proto_env *env, struct proto_sess *ps,
		      struct proto_out *o, int ctr, const char *reason)
{
	proto_error(&ftp_ops, env, ps, o, ctr, reason);
}

/*
 * The grammar: a verb of letters, a blank, the argument (RFC 959 5.3.1).
 * "AUTH TLS", "AUTH TLS-C" and "AUTH SSL" are the verb AUTH alone: the
 * mechanism is what sluice's STARTTLS is (RFC 4217 4; SSL as the
 * synonym old clients send), so the shared rules see no argument.
 */
static int ftp_parse(const char *l, size_t len, struct proto_line *pl)
{
	if (proto_parse_verb(l, len, pl) < 0)
		return -1;
	if (!strcasecmp(pl->verb, "AUTH") && !pl->arg_len)
		return -1; /* AUTH names its mechanism (RFC 2228 4) */
	if (!strcasecmp(pl->verb, "AUTH") &&
	    ((pl->arg_len == 3 && (!strncasecmp(pl->arg, "TLS", 3) ||
				   !strncasecmp(pl->arg, "SSL", 3))) ||
	     (pl->arg_len == 5 && !strncasecmp(pl->arg, "TLS-C", 5))))
		pl->arg_len = 0;
	return 0;
}

/* FEAT (RFC 2389 3.2): the backend's features, without what sluice
 * answers itself, plus AUTH TLS, PBSZ and PROT (RFC 4217 6) while TLS can
 * be used. Without a probed list, what every FTP server of note has. */
static void ftp_feat(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o)
{
	static const char *const fixed[] = { "EPSV", "PASV", "SIZE", "MDTM", "REST STREAM",
					     "UTF8" };
	bool tls = env->tls_available && env->tls_mode != CFG_TLS_OFF;
	size_t budget = PO_REPLY_MAX - 128;

	po_reply(o, "211-Features:\r\n");
	if (tls && !ps->in_tls) {
		po_reply(o, " AUTH TLS\r\n");
		o->flags |= PO_OFFERED_TLS;
	}
	if (tls) {
		po_reply(o, " PBSZ\r\n");
		po_reply(o, " PROT\r\n");
	}
	if (env->caps && env->caps->n) {
		for (unsigned i = 0; i < env->caps->n; i++) {
			const char *c = env->caps->item[i];
			size_t l = strlen(c) + 3;

			if (!strncasecmp(c, "AUTH", 4) || !strncasecmp(c, "PBSZ", 4) ||
			    !strncasecmp(c, "PROT", 4) || !strncasecmp(c, "EPRT", 4) ||
			    l > budget)
				continue;
			budget -= l;
			po_reply(o, " %s\r\n", c);
		}
	} else {
		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
			po_reply(o, " %s\r\n", fixed[i]);
	}
	po_reply(o, "211 End\r\n");
}

/* USER, PASS, ACCT where TLS is up or not required: the backend logs in. */
static void ftp_login(const struct proto_env *env, struct proto_sess *ps,
		      const struct proto_line *pl, struct proto_out *o)
{
	o->flags |= PO_BACKEND;
	ftp_st(ps)->held = true;
}

/* AUTH with a mechanism other than TLS (RFC 4217 4: 504). */
static void ftp_auth_other(const struct proto_env *env, struct proto_sess *ps,
			   const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "504 Security mechanism not understood.\r\n");
	ftp_error(env, ps, o, CTR_bad_syntax, "AUTH with an unknown mechanism");
}

/* PBSZ and PROT (RFC 4217 8, 9): sluice's own, in the dialogue and in the
 * relay. PBSZ before TLS is 503; PBSZ takes 0 (a TLS record has its own
 * size). PROT needs PBSZ first (503); P is TLS, C clear (only with
 * ftp.allow_prot_c: 534 otherwise, the data must be protected); S and E
 * do not exist for TLS (536). */
static void ftp_pbsz_prot(const struct proto_env *env, struct proto_sess *ps,
			  const struct proto_line *pl, struct proto_out *o)
{
	struct ftp_state *st = ftp_st(ps);
	bool pbsz = !strcasecmp(pl->verb, "PBSZ");

	if (!ps->in_tls) {
		po_reply(o, "503 %s requires AUTH TLS first.\r\n", pbsz ? "PBSZ" : "PROT");
		return;
	}
	if (pbsz) {
		if (pl->arg_len == 0) {
			po_reply(o, "501 PBSZ needs an argument.\r\n");
			return;
		}
		st->pbsz = true;
		po_reply(o, "200 PBSZ=0\r\n");
		return;
	}
	if (!st->pbsz) {
		po_reply(o, "503 PBSZ first.\r\n");
		return;
	}
	if (pl->arg_len != 1) {
		po_reply(o, "501 PROT takes C, S, E or P.\r\n");
		return;
	}
	switch (toupper((unsigned char)pl->arg[0])) {
	case 'P':
		st->prot_p = true;
		po_reply(o, "200 Protection level set to P.\r\n");
		break;
	case 'C':
		if (!env->ftp_allow_prot_c) {
			po_reply(o, "534 Data connections must be protected (PROT P).\r\n");
			o->counter = CTR_ftp_prot_c_refused;
			o->reason = "PROT C refused";
			break;
		}
		st->prot_p = false;
		po_reply(o, "200 Protection level set to C.\r\n");
		break;
	case 'S':
	case 'E':
		po_reply(o, "536 Protection level not supported by TLS.\r\n");
		break;
	default:
		po_reply(o, "504 Unknown protection level.\r\n");
		break;
	}
}

/* PORT, EPRT: active mode is not offered (see the top of the file). */
static void ftp_active(const struct proto_env *env, struct proto_sess *ps,
		       const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "502 Active mode is not supported; use PASV or EPSV.\r\n");
	o->counter = CTR_ftp_active_refused;
	o->reason = "active mode refused";
}

/* PASV, EPSV and the rest before login (RFC 959 5.4: 530). */
static void ftp_not_logged_in(const struct proto_env *env, struct proto_sess *ps,
			      const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "530 Please login with USER and PASS.\r\n");
}

static void ftp_syst(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "215 UNIX Type: L8\r\n");
}

static void ftp_noop(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "200 NOOP ok.\r\n");
}

static void ftp_quit(const struct proto_env *env, struct proto_sess *ps,
		     const struct proto_line *pl, struct proto_out *o)
{
	po_reply(o, "221 Goodbye.\r\n");
	o->flags |= PO_CLOSE;
	o->reason = "client quit";
}

/* Before login (RFC 959 5.4, RFC 4217 4, RFC 2389 3). */
static const struct proto_cmd ftp_cmds[] = {
	{ "USER", PC_TLS_FIRST, true,  ftp_login, PJ_PROGRESS },
	{ "PASS", PC_TLS_FIRST, true,  ftp_login, PJ_PROGRESS },
	{ "ACCT", PC_TLS_FIRST, true,  ftp_login, PJ_PROGRESS },
	{ "AUTH", PC_STARTTLS,  false, NULL, PJ_PROGRESS },
	{ "PBSZ", PC_LOCAL,     true,  ftp_pbsz_prot, PJ_REPEAT },
	{ "PROT", PC_LOCAL,     true,  ftp_pbsz_prot, PJ_REPEAT },
	{ "FEAT", PC_LOCAL,     false, ftp_feat, PJ_REPEAT },
	{ "SYST", PC_LOCAL,     false, ftp_syst, PJ_REPEAT },
	{ "NOOP", PC_LOCAL,     false, ftp_noop, PJ_JUNK },
	{ "PORT", PC_LOCAL,     true,  ftp_active, PJ_JUNK },
	{ "EPRT", PC_LOCAL,     true,  ftp_active, PJ_JUNK },
	{ "QUIT", PC_LOCAL,     false, ftp_quit, PJ_PROGRESS },
};

/* One client line: the grammar, then the command table; the rest needs a
 * login first (530). */
static void ftp_client_line(const struct proto_env *env, struct proto_sess *ps,
			    const char *line, size_t len, bool has_nul, struct proto_out *o)
{
	const struct proto_cmd *cmd;
	struct proto_line pl;

	if (has_nul) {
		po_reply(o, "500 Bad command syntax.\r\n");
		ftp_error(env, ps, o, CTR_bad_syntax, "NUL in command");
		return;
	}
	if (ftp_parse(line, len, &pl) < 0) {
		po_reply(o, "500 Unknown command.\r\n");
		ftp_error(env, ps, o, CTR_bad_syntax, len ? "bad command" : "empty line");
		return;
	}
	if (!strcasecmp(pl.verb, "AUTH") && pl.arg_len) {
		/* A mechanism other than TLS (the grammar took TLS's away). */
		if (!proto_junk(&ftp_ops, env, ps, o))
			ftp_auth_other(env, ps, &pl, o);
		return;
	}
	if (!(cmd = proto_find(&ftp_ops, &pl))) {
		ftp_not_logged_in(env, ps, &pl, o);
		ftp_error(env, ps, o, CTR_unknown_command, "command before login");
		return;
	}
	proto_run(&ftp_ops, env, ps, &pl, cmd, o);
}

static void ftp_too_long(const struct proto_env *env, struct proto_sess *ps,
			 struct proto_out *o)
{
	po_reply(o, "500 Command line too long.\r\n");
	ftp_error(env, ps, o, CTR_line_too_long, "line too long");
}

static void ftp_tls_started(struct proto_sess *ps)
{
	proto_sess_tls(ps);
}

static void ftp_unavailable(const struct proto_env *env, struct proto_sess *ps,
			    struct proto_out *o)
{
	po_reply(o, "421 %s Service not available, try again later.\r\n", env->hostname);
	o->flags |= PO_CLOSE;
}

/* The backend's greeting: 220 (a "220-" line first is skipped, RFC 959
 * 4.2); anything else is a refusal. */
static void ftp_backend_line(const struct proto_env *env, struct proto_sess *ps,
			     const char *l, size_t len, struct proto_out *o)
{
	if (len >= 4 && !strncmp(l, "220-", 4))
		return;
	if (len >= 3 && !strncmp(l, "220", 3) && (len == 3 || l[3] == ' ')) {
		o->flags |= PO_FLUSH_HELD | PO_RELAY;
		return;
	}
	if (len >= 4 && isdigit((unsigned char)l[0]) && l[3] == '-')
		return; /* a multi-line refusal: its last line decides */
	if (len >= 3 && isdigit((unsigned char)l[0]))
		proto_backend_refused(&ftp_ops, env, ps, o, "backend greeting refused");
}

static void ftp_timeout(const struct proto_env *env, struct proto_sess *ps,
			struct proto_out *o)
{
	po_reply(o, "421 Timeout.\r\n");
	o->flags |= PO_CLOSE;
}

/* The backend went away in the relay: 421 between replies (RFC 959 4.2:
 * the service closes the control connection). */
static void ftp_lost(const struct proto_env *env, struct proto_sess *ps,
		     const char *last, size_t len, struct proto_out *o)
{
	if (ftp_cst(ps)->b_multi)
		return;
	if ((len >= 3 && !strncmp(last, "221", 3)) || (len >= 3 && !strncmp(last, "421", 3)))
		return; /* it said goodbye (QUIT) or closed with its own 421 */
	po_reply(o, "421 %s Service not available, closing control connection.\r\n",
		 env->hostname);
}

/* "AUTH TLS" again right after the 234 (a client that repeats it). */
static bool ftp_starttls_again(const struct proto_env *env, struct proto_sess *ps,
			       const char *l, size_t len, struct proto_out *o)
{
	struct proto_line pl;

	if (ftp_parse(l, len, &pl) < 0 || strcasecmp(pl.verb, "AUTH") || pl.arg_len)
		return false;
	po_reply(o, "234 AUTH TLS successful.\r\n");
	return true;
}

/* Probe: 220, then FEAT: "211-", one feature a line (a blank first), "211 ". */
static int ftp_probe_line(int *state, const char *l, size_t len, struct proto_caps *caps)
{
	switch (*state) {
	case 0:
		if (len >= 4 && !strncmp(l, "220-", 4))
			return 0;
		if (len < 3 || strncmp(l, "220", 3))
			return -1;
		*state = 1;
		return 1;
	case 1:
		if (len >= 4 && !strncmp(l, "211-", 4)) {
			*state = 2;
			return 0;
		}
		return 2; /* no FEAT: nothing learned */
	default:
		if (len >= 4 && !strncmp(l, "211 ", 4))
			return 2;
		if (len > 1 && l[0] == ' ' && caps->n < CAPS_MAX &&
		    (caps->item[caps->n] = strndup(l + 1, len - 1)))
			caps->n++;
		return 0;
	}
}

/* ---- the relay trackers ----------------------------------------------- */

/* Is the command line l[0, e) verb v (alone or with an argument)? */
static bool ftp_verb_is(const uint8_t *l, size_t e, const char *v)
{
	size_t n = strlen(v);

	return e >= n && !strncasecmp((const char *)l, v, n) &&
	       (e == n || l[n] == ' ' || l[n] == '\r');
}

static void ftp_sent(struct proto_sess *ps, struct ftp_state *st, const uint8_t *l, size_t e)
{
	enum ftp_kind k = K_OTHER;

	if (ftp_verb_is(l, e, "PASV"))
		k = K_PASV;
	else if (ftp_verb_is(l, e, "EPSV"))
		k = K_EPSV;
	else if (ftp_verb_is(l, e, "USER") || ftp_verb_is(l, e, "PASS") ||
		 ftp_verb_is(l, e, "ACCT"))
		k = K_LOGIN;
	else if (ftp_verb_is(l, e, "RETR") || ftp_verb_is(l, e, "STOR") ||
		 ftp_verb_is(l, e, "STOU") || ftp_verb_is(l, e, "APPE") ||
		 ftp_verb_is(l, e, "LIST") || ftp_verb_is(l, e, "NLST") ||
		 ftp_verb_is(l, e, "MLSD"))
		k = K_XFER;
	ps->cmds++;
	if (ps->cmds - ps->replies > FTP_KINDS)
		st->kinds_lost = true;
	if (k == K_PASV || k == K_EPSV)
		st->kinds_pasv++;
	st->kind[(ps->cmds - 1) % FTP_KINDS] = (uint8_t)k;
}

/*
 * Client -> backend: a line at a time. AUTH in plaintext is held (rule
 * 2.7, the session decides); inside TLS it becomes "XUTH", which the
 * backend refuses. PBSZ, PROT, PORT and EPRT stop the scan (local_due):
 * sluice answers them. "ABOR" and the Telnet IP/Synch before it (RFC 959
 * 4.1.3) pass like any line.
 */
static size_t ftp_c2b_scan(struct proto_sess *ps, uint8_t *p, size_t len)
{
	struct ftp_state *st = ftp_st(ps);
	size_t i = 0;

	if (ps->tls_held || ps->local_due)
		return 0;
	while (i < len) {
		const uint8_t *lf = memchr(p + i, '\n', len - i);
		uint8_t *l = p + i;
		size_t ll = lf ? (size_t)(lf - l) : len - i, e;

		if (!lf) {
			if (ll < FTP_LINE_MAX && !st->c_long)
				return i;
			if (!st->c_long)
				ftp_sent(ps, st, l, 0);
			st->c_long = true;
			return len;
		}
		e = ll && l[ll - 1] == '\r' ? ll - 1 : ll;
		if (!st->c_long) {
			if (ftp_verb_is(l, e, "AUTH")) {
				if (!ps->in_tls) {
					ps->tls_held = true;
					return i;
				}
				memcpy(l, "XUTH", 4);
				ps->denied++;
			} else if (ftp_verb_is(l, e, "PBSZ") || ftp_verb_is(l, e, "PROT") ||
				   ftp_verb_is(l, e, "PORT") || ftp_verb_is(l, e, "EPRT")) {
				ps->local_due = true;
				return i;
			}
			ftp_sent(ps, st, l, e);
		}
		st->c_long = false;
		i += ll + 1;
	}
	return i;
}

/* A line sluice answers in the relay (local_due): PBSZ, PROT, PORT, EPRT. */
static void ftp_c2b_local(const struct proto_env *env, struct proto_sess *ps, const char *l,
			  size_t len, struct proto_out *o)
{
	struct proto_line pl;

	ps->local_due = false;
	if (ftp_parse(l, len, &pl) < 0) {
		po_reply(o, "500 Unknown command.\r\n");
		return;
	}
	if (!strcasecmp(pl.verb, "PORT") || !strcasecmp(pl.verb, "EPRT"))
		ftp_active(env, ps, &pl, o);
	else
		ftp_pbsz_prot(env, ps, &pl, o);
}

/* The kind of the command the next final reply answers. */
static enum ftp_kind ftp_next_kind(const struct proto_sess *ps)
{
	const struct ftp_state *st = ftp_cst(ps);

	if (ps->replies >= ps->cmds || st->kinds_lost)
		return K_OTHER;
	return (enum ftp_kind)st->kind[ps->replies % FTP_KINDS];
}

/* Backend -> client: what may go before the reply to PASV/EPSV, or before
 * a transfer's final reply while its data connection is not relaying (or
 * ended before it did), which the session hands to b2c_line whole. A 1yz
 * passes: clients start the data connection's TLS after the 150. */
static size_t ftp_b2c_safe(const struct proto_sess *ps, const uint8_t *p, size_t len)
{
	const struct ftp_state *st = ftp_cst(ps);
	const uint8_t *lf;
	enum ftp_kind k;
	/* at a line's start: a 2yz waits for its data connection; any final
	 * reply after one that ended unrelayed is looked at */
	bool xfer = len && ((ps->data_pending && p[0] == '2') ||
			    (ps->data_refused && p[0] != '1'));

	if (st->xfer_426) {
		/* each line of the reply made 426 is looked at whole, so its
		 * end is found; past the head of an overlong one (its rest
		 * as bytes), up to that line's end only */
		if (ps->b_cur_len == 0)
			return 0;
		lf = memchr(p, '\n', len);
		return lf ? (size_t)(lf - p) + 1 : len;
	}

	if (!st->kinds_pasv && !xfer)
		return len;
	k = ftp_next_kind(ps);
	if (ps->b_cur_len == 0 && !st->b_multi &&
	    (k == K_PASV || k == K_EPSV || (xfer && k == K_XFER)))
		return 0;
	lf = memchr(p, '\n', len);
	return lf ? (size_t)(lf - p) + 1 : len;
}

/* "h1,h2,h3,h4,p1,p2" somewhere in a 227 (RFC 959 4.1.2; RFC 1123 4.1.2.6:
 * find the first digit, the parenthesis is not promised). 0, or -1. */
static int ftp_parse_227(const char *l, size_t len, struct proto_data *d)
{
	unsigned v[6];
	size_t i = 4;

	while (i < len && !isdigit((unsigned char)l[i]))
		i++;
	for (unsigned k = 0; k < 6; k++) {
		unsigned n = 0, digits = 0;

		while (i < len && isdigit((unsigned char)l[i]) && digits < 4) {
			n = n * 10 + (unsigned)(l[i++] - '0');
			digits++;
		}
		if (!digits || n > 255)
			return -1;
		v[k] = n;
		if (k < 5) {
			if (i >= len || l[i] != ',')
				return -1;
			i++;
		}
	}
	for (unsigned k = 0; k < 4; k++)
		d->be_host[k] = (uint8_t)v[k];
	d->be_port = (uint16_t)(v[4] << 8 | v[5]);
	return d->be_port ? 0 : -1;
}

/* "(|||port|)" in a 229 (RFC 2428 3: any delimiter, the same four times). */
static int ftp_parse_229(const char *l, size_t len, struct proto_data *d)
{
	const char *o = memchr(l, '(', len);
	size_t i;
	unsigned long port = 0;
	char dl;

	if (!o)
		return -1;
	i = (size_t)(o - l) + 1;
	if (i + 3 >= len)
		return -1;
	dl = l[i];
	if (dl < 33 || dl > 126 || isdigit((unsigned char)dl) || l[i + 1] != dl ||
	    l[i + 2] != dl)
		return -1;
	i += 3;
	while (i < len && isdigit((unsigned char)l[i]) && port <= 65535)
		port = port * 10 + (unsigned long)(l[i++] - '0');
	if (i + 1 >= len || l[i] != dl || l[i + 1] != ')' || port == 0 || port > 65535)
		return -1;
	memset(d->be_host, 0, sizeof(d->be_host));
	d->be_port = (uint16_t)port;
	return 0;
}

/* The reply to PASV/EPSV, whole: a 227/229 the backend gave asks for a
 * data connection; one sluice cannot read is refused (425) rather than
 * passed on with the backend's own address in it. */
static int ftp_b2c_line(const struct proto_env *env, struct proto_sess *ps, const char *l,
			size_t len, struct proto_data *d, struct proto_out *o)
{
	enum ftp_kind k = ftp_next_kind(ps);
	int rc;

	memset(d, 0, sizeof(*d));
	if (ftp_cst(ps)->xfer_426) {
		struct ftp_state *st = ftp_st(ps);

		/* the rest of a multi-line 2yz made 426: its text passes, its
		 * end line (the code and a space, RFC 959 4.2) is the 426's */
		if (len < 3 || memcmp(l, st->b_code, 3) || (len > 3 && l[3] != ' '))
			return 0;
		st->xfer_426 = false;
		po_reply(o, "426 Connection closed; transfer aborted.\r\n");
		return -1;
	}
	if (k == K_XFER) {
		/* The transfer's final reply: it waits while its data
		 * connection is checked; a 2yz for one that ended before it
		 * relayed a byte would tell the client a transfer completed
		 * that never reached it (a download it did not get, an
		 * upload the server stored empty): 426 instead (RFC 959
		 * 4.2: connection closed, transfer aborted). */
		if (ps->data_pending)
			return l[0] == '2' ? 2 : 0; /* an error goes at once */
		if (!ps->data_refused)
			return 0;
		ps->data_refused = false;
		if (len < 4 || l[0] != '2' || (l[3] != ' ' && l[3] != '-'))
			return 0; /* the server's own error, as it is */
		if (l[3] == '-') {
			/* a multi-line 2yz (Pure-FTPd's 226): 426 from its
			 * first line to its last */
			ftp_st(ps)->xfer_426 = true;
			po_reply(o, "426-Connection closed; transfer aborted.\r\n");
		} else {
			po_reply(o, "426 Connection closed; transfer aborted.\r\n");
		}
		o->counter = CTR_ftp_xfer_aborted;
		o->reason = "the data connection was refused";
		return -1;
	}
	if (len < 4 || l[3] != ' ')
		return 0; /* an error reply, a multi-line one: as it is */
	if (k == K_PASV && !strncmp(l, "227", 3)) {
		rc = ftp_parse_227(l, len, d);
	} else if (k == K_EPSV && !strncmp(l, "229", 3)) {
		rc = ftp_parse_229(l, len, d);
		d->epsv = true;
	} else {
		return 0;
	}
	d->tls = ftp_cst(ps)->prot_p && ps->in_tls;
	if (rc < 0) {
		po_reply(o, "425 Cannot open data connection.\r\n");
		o->counter = CTR_ftp_data_bad_reply;
		o->reason = "backend's passive reply unreadable";
		return -1;
	}
	return 1;
}

static void ftp_data_reply(const struct proto_env *env, struct proto_sess *ps,
			   const struct proto_data *d, struct proto_out *o)
{
	if (d->epsv)
		po_reply(o, "229 Entering Extended Passive Mode (|||%u|)\r\n", d->port);
	else
		po_reply(o, "227 Entering Passive Mode (%u,%u,%u,%u,%u,%u).\r\n", d->host[0],
			 d->host[1], d->host[2], d->host[3], d->port >> 8, d->port & 0xff);
}

/* A backend line ended: a final reply counted (RFC 959 4.2). */
static void ftp_b2c_line_end(struct proto_sess *ps, struct ftp_state *st)
{
	const char *h = ps->b_cur;
	bool code = ps->b_cur_len >= 3 && isdigit((unsigned char)h[0]) &&
		    isdigit((unsigned char)h[1]) && isdigit((unsigned char)h[2]);
	enum ftp_kind k;

	memcpy(ps->last_reply, ps->b_cur, ps->b_cur_len);
	if (st->b_multi) {
		if (code && !memcmp(h, st->b_code, 3) && (ps->b_cur_len == 3 || h[3] == ' ' ||
							    h[3] == '\r'))
			st->b_multi = false;
		else
			return;
	} else if (code && ps->b_cur_len >= 4 && h[3] == '-') {
		st->b_multi = true;
		memcpy(st->b_code, h, 3);
		return;
	}
	if (!code || h[0] == '1')
		return; /* preliminary (150), or nothing we know */
	ps->replies++;
	if (ps->replies > ps->cmds) {
		ps->replies = ps->cmds; /* unsolicited (a 421 of the server's own) */
		return;
	}
	k = (enum ftp_kind)st->kind[(ps->replies - 1) % FTP_KINDS];
	if ((k == K_PASV || k == K_EPSV) && st->kinds_pasv)
		st->kinds_pasv--;
	if (k == K_LOGIN && h[0] == '2' && h[1] == '3')
		st->authed = true;
}

static void ftp_b2c_scan(struct proto_sess *ps, const uint8_t *p, size_t len)
{
	struct ftp_state *st = ftp_st(ps);
	const uint8_t *end = p + len;

	while (p < end) {
		const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));

		for (; p < (lf ? lf : end); p++)
			if (ps->b_cur_len < sizeof(ps->b_cur)) /* the head is all it keeps */
				ps->b_cur[ps->b_cur_len++] = (char)*p;
		if (!lf)
			return;
		if (ps->b_cur_len == 0) {
			ps->b_cur[0] = '\r';
			ps->b_cur_len = 1; /* an empty line still ends */
		}
		ftp_b2c_line_end(ps, st);
		ps->b_cur_len = 0;
		p = lf + 1;
	}
}

/* Rule 2.7: AUTH TLS before login only (RFC 4217 4). */
static bool ftp_starttls_allowed(const struct proto_sess *ps)
{
	const struct ftp_state *st = ftp_cst(ps);

	return !st->authed && !st->kinds_lost;
}

/* Drain: 421 where no reply is in flight (RFC 959 4.2); the backend gets
 * QUIT. */
static bool ftp_goodbye(const struct proto_sess *ps, bool relay, const char **be_bye)
{
	const struct ftp_state *st = ftp_cst(ps);

	if (!relay)
		return !st->held;
	if (st->b_multi || st->c_long || st->kinds_lost)
		return false;
	*be_bye = "QUIT\r\n";
	return true;
}

static bool ftp_mid_response(const struct proto_sess *ps)
{
	return ftp_cst(ps)->b_multi;
}

static const char *const ftp_words[PW__COUNT] = {
	[PW_STARTTLS_OK]      = "234 AUTH TLS successful.",
	[PW_STARTTLS_IN_TLS]  = "503 Already in TLS.",
	[PW_STARTTLS_OFF]     = "502 AUTH TLS is not available.",
	[PW_STARTTLS_NO_CERT] = "431 TLS is not available.",
	[PW_STARTTLS_SYNTAX]  = "504 Security mechanism not understood.",
	[PW_STARTTLS_NOT_NOW] = "503 AUTH is not valid after login.",
	[PW_STARTTLS_UNTRACKED] = "503 AUTH after a command that could not be followed.",
	[PW_TLS_FIRST]        = "530 Use AUTH TLS first: this server requires TLS.",
	[PW_TOO_MANY_ERRORS]  = "421 Too many bad commands.",
	[PW_SHUTTING_DOWN]    = "421 %s Server shutting down.",
	[PW_TOO_MANY_SESSIONS] = "421 %s Too many sessions, try again later.",
	[PW_TOO_MANY_FROM_ADDR] = "421 Too many connections from your address.",
	[PW_RATE_LIMITED]      = "421 Too many connections from your address, try again later.",
	[PW_TOO_MANY_JUNK]     = "421 Too many commands without progress.",
	[PW_DEADLINE]          = "421 Timeout.",
};

const struct proto_ops ftp_ops = {
	.name = "ftp",
	.line_max = FTP_LINE_MAX,
	.max_errors = FTP_MAX_ERRORS,
	.words = ftp_words,
	.parse = ftp_parse,
	.cmds = ftp_cmds,
	.n_cmds = sizeof(ftp_cmds) / sizeof(ftp_cmds[0]),
	.starttls_allowed = ftp_starttls_allowed,
	.greeting = ftp_greeting,
	.client_line = ftp_client_line,
	.too_long = ftp_too_long,
	.tls_started = ftp_tls_started,
	.backend_line = ftp_backend_line,
	.timeout = ftp_timeout,
	.unavailable = ftp_unavailable,
	.lost = ftp_lost,
	.probe_request = "FEAT\r\n",
	.probe_quit = "QUIT\r\n",
	.probe_line = ftp_probe_line,
	.starttls_again = ftp_starttls_again,
	.c2b_scan = ftp_c2b_scan,
	.c2b_local = ftp_c2b_local,
	.b2c_safe = ftp_b2c_safe,
	.b2c_line = ftp_b2c_line,
	.data_reply = ftp_data_reply,
	.b2c_scan = ftp_b2c_scan,
	.goodbye = ftp_goodbye,
	.mid_response = ftp_mid_response,
};
