/*
 * `sluice explain`: why a client's handshake works or fails, in words.
 *
 * Input: a ClientHello as hex (Wireshark's hex dump or hex stream, a
 * record, a bare handshake message or a whole frame; from the arguments or
 * standard input) or as fields (--versions --ciphers --groups --sigalgs
 * --sni ...), and the configuration (-c FILE, else the embedded default)
 * with a listener (--listener NAME, else the first with TLS) and the
 * client's address (--from ADDR: the policy a policy_by_network rule gives
 * it). Output: for every certificate of the cert set the client's SNI picks,
 * under the client's policy, whether the handshake succeeds and with what,
 * or the rule that fails, its RFC and the fix; then the verdict.
 *
 * The same tls/certsel code chooses the certificate of every real
 * handshake, so what explain says is what sluice does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certsel.h"
#include "config.h"
#include "explain.h"
#include "explain_input.h"
#include "hello.h"
#include "policy.h"
#include "resume.h"
#include "tls.h"

static void explain_usage(FILE *f)
{
	fprintf(f,
		"usage: sluice explain [-c FILE] [--listener NAME] [--from ADDR] [HEX... | -]\n"
		"       sluice explain [-c FILE] [--listener NAME] [--from ADDR] --ciphers LIST\n"
		"                      [--versions LIST] [--groups LIST] [--key-shares LIST]\n"
		"                      [--sigalgs LIST] [--sigalgs-cert LIST] [--sni NAME]\n"
		"                      [--options LIST]\n"
		"  HEX      a ClientHello as Wireshark shows it (hex dump or hex stream), a TLS\n"
		"           record, a handshake message or a whole frame; '-' or nothing: stdin\n"
		"  LIST     comma-separated names (IANA or OpenSSL) or numbers (0x1301)\n"
		"  --from   the client's address: picks a policy_by_network rule's policy\n"
		"exit status: 0 a certificate works, 1 none does, 2 bad input\n");
}

/* Read all of stdin (at most cap - 1 bytes) into a NUL-terminated buffer. */
static char *read_stdin(size_t cap)
{
	char *buf = malloc(cap);
	size_t n = 0, r;

	if (!buf)
		return NULL;
	while (n < cap - 1 && (r = fread(buf + n, 1, cap - 1 - n, stdin)) > 0)
		n += r;
	buf[n] = 0;
	return buf;
}

/* Join argv[0, n) with spaces. */
static char *join_args(char **argv, int n)
{
	size_t len = 1;
	char *s;

	for (int i = 0; i < n; i++)
		len += strlen(argv[i]) + 1;
	if (!(s = calloc(1, len)))
		return NULL;
	for (int i = 0; i < n; i++) {
		strcat(s, argv[i]);
		strcat(s, " ");
	}
	return s;
}

int explain_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listener", required_argument, NULL, 'l' },
		{ "from", required_argument, NULL, 'f' },
		{ "versions", required_argument, NULL, 'V' },
		{ "ciphers", required_argument, NULL, 'C' },
		{ "groups", required_argument, NULL, 'G' },
		{ "key-shares", required_argument, NULL, 'K' },
		{ "sigalgs", required_argument, NULL, 'S' },
		{ "sigalgs-cert", required_argument, NULL, 'T' },
		{ "sni", required_argument, NULL, 'N' },
		{ "options", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct explain_fields f = { 0 };
	const char *path = NULL, *lname = NULL, *from = NULL;
	bool fields = false;
	char err[1024] = "", note[512] = "";
	struct cfg *c = NULL;
	const struct cfg_listener *l = NULL;
	struct tls_certset *sets = NULL, **setp = NULL;
	unsigned n_sets = 0, si = 0;
	struct sockaddr_storage ss;
	enum cfg_policy pol;
	struct hello h;
	struct certsel_verdict v;
	char *text = NULL, *out = NULL;
	int opt, rc = 2;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'l': lname = optarg; break;
		case 'f': from = optarg; break;
		case 'V': f.versions = optarg; fields = true; break;
		case 'C': f.ciphers = optarg; fields = true; break;
		case 'G': f.groups = optarg; fields = true; break;
		case 'K': f.key_shares = optarg; fields = true; break;
		case 'S': f.sigalgs = optarg; fields = true; break;
		case 'T': f.sigalgs_cert = optarg; fields = true; break;
		case 'N': f.sni = optarg; fields = true; break;
		case 'O': f.options = optarg; fields = true; break;
		case 'h': explain_usage(stdout); return 0;
		default: explain_usage(stderr); return 2;
		}
	}

	/* The ClientHello first: a bad one needs no configuration. */
	if (fields) {
		if (optind < argc) {
			fprintf(stderr, "sluice explain: give the hello as hex or as fields, not both\n");
			return 2;
		}
		if (!f.ciphers) {
			fprintf(stderr, "sluice explain: --ciphers is required with fields\n");
			return 2;
		}
		if (explain_fields(&f, &h, err, sizeof(err)) < 0) {
			fprintf(stderr, "sluice explain: %s\n", err);
			return 2;
		}
	} else {
		text = optind < argc && strcmp(argv[optind], "-") ? join_args(argv + optind, argc - optind)
								    : read_stdin(8 * EXPLAIN_BYTES_MAX);
		if (!text) {
			fprintf(stderr, "sluice explain: out of memory\n");
			return 2;
		}
		if (explain_hex(text, &h, err, sizeof(err)) < 0) {
			fprintf(stderr, "sluice explain: %s\n", err);
			goto out;
		}
		snprintf(note, sizeof(note), "%s", err);
	}

	rc = path ? cfg_load_file(path, &c, err, sizeof(err))
		  : cfg_load_string(cfg_default_yaml, cfg_default_yaml_len, "(embedded default)",
				    &c, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "sluice explain: %s\n", err);
		rc = 2;
		goto out;
	}
	for (unsigned i = 0; i < c->n_listeners && !l; i++)
		if (lname ? !strcmp(c->listeners[i].name, lname) : c->listeners[i].tls != CFG_TLS_OFF)
			l = &c->listeners[i];
	if (!l || l->tls == CFG_TLS_OFF) {
		fprintf(stderr, "sluice explain: %s: %s\n", c->path,
			lname ? "no listener of that name with TLS" : "no listener with TLS");
		rc = 2;
		goto out;
	}
	memset(&ss, 0, sizeof(ss));
	if (from) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, from, &s4->sin_addr) == 1) {
			ss.ss_family = AF_INET;
		} else if (inet_pton(AF_INET6, from, &s6->sin6_addr) == 1) {
			ss.ss_family = AF_INET6;
		} else {
			fprintf(stderr, "sluice explain: --from: '%s' is not an IP address\n", from);
			rc = 2;
			goto out;
		}
	}
	pol = cfg_policy_for(l, (const struct sockaddr *)&ss);

	/* The listener's cert sets, loaded and checked as at start-up. */
	if (tls_resume_init(c, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice explain: %s\n", err);
		rc = 2;
		goto out;
	}
	n_sets = l->n_cert_sets ? l->n_cert_sets : 1;
	sets = calloc(n_sets, sizeof(*sets));
	setp = calloc(n_sets, sizeof(*setp));
	if (!sets || !setp) {
		n_sets = 0;
		rc = 2;
		goto out;
	}
	for (unsigned i = 0; i < n_sets; i++) {
		setp[i] = &sets[i];
		rc = l->n_cert_sets ? tls_certset_load(c, l->sets[i], &sets[i], err, sizeof(err))
				    : tls_certset_load_listener(c, l, &sets[i], err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "sluice explain: %s\n", err);
			n_sets = i;
			rc = 2;
			goto out;
		}
	}
	si = tls_certset_for_sni(setp, n_sets, &h);

	certsel_choose(&h, sets[si].sel, sets[si].n, tls_policy(pol), (int64_t)time(NULL), &v);
	if (!(out = malloc(65536))) {
		rc = 2;
		goto out;
	}
	certsel_explain(&h, sets[si].sel, sets[si].n, tls_policy(pol), &v, out, 65536);
	printf("listener %s (%s), policy %s%s%s, cert set %s\n", l->name, c->path,
	       cfg_policy_name(pol), from ? " for " : "", from ? from : "", sets[si].name);
	if (note[0])
		printf("note: %s\n", note);
	fputs(out, stdout);
	rc = v.chosen >= 0 ? 0 : 1;
out:
	for (unsigned i = 0; i < n_sets; i++)
		tls_certset_free(&sets[i]);
	free(sets);
	free(setp);
	free(out);
	free(text);
	cfg_free(c);
	return rc;
}
