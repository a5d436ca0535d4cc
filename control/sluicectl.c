/*
 * sluicectl: the command line of the control plane (docs/operations.md).
 *
 *   sluicectl [-s SOCKET | -c CONFIG] [-j] VERB [ARGS]
 *
 * One request to sluice-control per run. The verbs, their arguments and
 * their help are verbs.def; so is the bash completion (--bash-completion).
 * Exit status: 0 ok, 1 refused or failed (health: not serving or
 * draining), 2 usage, 3 cannot reach sluice-control.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "files.h"
#include "sluice-build.h"
#include "sluicectl.h"

#define DEFAULT_SOCKET "/run/sluice/control.sock"
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

struct verb {
	const char *words, *cmd, *args, *help;
	void (*print)(json_t *a);
};

static const struct verb verbs[] = {
#define V(id, words, cmd, handler, printer, args, help) { words, cmd, args, help, printer },
#include "verbs.def"
#undef V
};
#define N_VERBS (sizeof(verbs) / sizeof(verbs[0]))

/* One argument of a verb, from its args spec (see verbs.def). */
struct arg {
	char name[32];          /* "cert", "per_core" */
	char opt[32];           /* "--cert"; "" for a positional */
	char shopt[4];          /* "-d" of "-d|--delay"; "" for none */
	char type[16];          /* "FILE", "DURATION", "N", other; "" for a flag */
	bool optional;
};

static unsigned parse_spec(const char *spec, struct arg *a, unsigned max)
{
	char buf[256], *tok[16], *save = NULL;
	unsigned n = 0, nt = 0;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *t = strtok_r(buf, " ", &save); t && nt < 16; t = strtok_r(NULL, " ", &save))
		tok[nt++] = t;
	for (unsigned i = 0; i < nt && n < max; i++) {
		char *t = tok[i];
		size_t l;

		memset(&a[n], 0, sizeof(a[n]));
		if ((a[n].optional = t[0] == '['))
			t++;
		l = strlen(t);
		if (l && t[l - 1] == ']')
			t[--l] = 0;
		/* "-d|--delay": a short form too. */
		if (t[0] == '-' && t[1] && t[1] != '-' && t[2] == '|') {
			snprintf(a[n].shopt, sizeof(a[n].shopt), "%.2s", t);
			t += 3;
		}
		if (!strncmp(t, "--", 2)) {
			snprintf(a[n].opt, sizeof(a[n].opt), "%s", t);
			snprintf(a[n].name, sizeof(a[n].name), "%s", t + 2);
			/* Its value's type (an upper-case word), unless a flag. */
			if (i + 1 < nt && isupper((unsigned char)tok[i + 1][0])) {
				char *v = tok[++i];

				l = strlen(v);
				if (l && v[l - 1] == ']')
					v[--l] = 0;
				snprintf(a[n].type, sizeof(a[n].type), "%s", v);
			}
		} else {
			l = strlen(t);
			if (l > 3 && !strcmp(t + l - 3, "...")) {
				t[l - 3] = 0;   /* the rest of the words */
				snprintf(a[n].type, sizeof(a[n].type), "REST");
			} else {
				snprintf(a[n].type, sizeof(a[n].type), "WORD");
			}
			snprintf(a[n].name, sizeof(a[n].name), "%s", t);
			for (char *p = a[n].name; *p; p++)
				*p = (char)tolower((unsigned char)*p);
		}
		for (char *p = a[n].name; *p; p++)
			if (*p == '-')
				*p = '_';
		n++;
	}
	return n;
}

static void usage_verb(FILE *f, const struct verb *v)
{
	fprintf(f, "usage: sluicectl [-s SOCKET | -c CONFIG] [-j] %s%s%s\n  %s\n", v->words,
		v->args[0] ? " " : "", v->args, v->help);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluicectl [-s SOCKET | -c CONFIG] [-j] VERB [ARGS]\n"
		"  -s, --socket SOCKET  sluice-control's admin socket (default " DEFAULT_SOCKET ")\n"
		"  -c, --config CONFIG  take control.socket from sluice's configuration\n"
		"  -j, --json           print the answer as JSON\n"
		"  -h, --help           this; sluicectl VERB --help for one verb\n"
		"  -V, --version\n"
		"verbs:\n");
	for (unsigned i = 0; i < N_VERBS; i++) {
		char w[80];

		snprintf(w, sizeof(w), "%s%s%s", verbs[i].words, verbs[i].args[0] ? " " : "",
			 verbs[i].args);
		if (strlen(w) > 44)     /* its help on a line of its own */
			fprintf(f, "  %s\n  %-44s %s\n", w, "", verbs[i].help);
		else
			fprintf(f, "  %-44s %s\n", w, verbs[i].help);
	}
	fprintf(f, "exit status: 0 ok, 1 refused or failed (health: not serving or draining),\n"
		   "2 usage, 3 cannot reach sluice-control\n");
}

/* The bash completion, from the same list. */
static void bash_completion(void)
{
	char firsts[1024] = "", seen[64][32];
	unsigned n_seen = 0;

	printf("# bash completion for sluicectl, generated from control/verbs.def\n"
	       "# (sluicectl --bash-completion): do not edit.\n"
	       "_sluicectl()\n{\n"
	       "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	       "    local i w=\"\"\n"
	       "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
	       "        case ${COMP_WORDS[i]} in\n"
	       "            -s|--socket|-c|--config) ((i++)) ;;\n"
	       "            -*) ;;\n"
	       "            *) w=\"${w:+$w }${COMP_WORDS[i]}\" ;;\n"
	       "        esac\n"
	       "    done\n"
	       "    case $prev in\n"
	       "        -s|--socket|-c|--config");
	for (unsigned i = 0; i < N_VERBS; i++) {
		struct arg a[8];
		unsigned n = parse_spec(verbs[i].args, a, 8);

		for (unsigned k = 0; k < n; k++)
			if (!strcmp(a[k].type, "FILE"))
				printf("|%s", a[k].opt);
	}
	printf(") COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
	       "    esac\n"
	       "    case $w in\n");
	/* The first words: the verbs and the groups (certs, policy, tickets). */
	for (unsigned i = 0; i < N_VERBS; i++) {
		char first[32];
		unsigned k;

		snprintf(first, sizeof(first), "%.*s", (int)strcspn(verbs[i].words, " "),
			 verbs[i].words);
		for (k = 0; k < n_seen && strcmp(seen[k], first); k++)
			;
		if (k < n_seen)
			continue;
		snprintf(seen[n_seen++], sizeof(seen[0]), "%s", first);
		snprintf(firsts + strlen(firsts), sizeof(firsts) - strlen(firsts), " %s", first);
		if (strchr(verbs[i].words, ' ')) {
			printf("        %s) COMPREPLY=($(compgen -W \"", first);
			for (unsigned j = 0; j < N_VERBS; j++)
				if (!strncmp(verbs[j].words, first, strlen(first)) &&
				    verbs[j].words[strlen(first)] == ' ')
					printf("%s ", verbs[j].words + strlen(first) + 1);
			printf("\" -- \"$cur\")) ;;\n");
		}
	}
	for (unsigned i = 0; i < N_VERBS; i++) {
		struct arg a[8];
		unsigned n = parse_spec(verbs[i].args, a, 8);

		printf("        \"%s\"|\"%s \"*) COMPREPLY=($(compgen -W \"", verbs[i].words,
		       verbs[i].words);
		for (unsigned k = 0; k < n; k++)
			if (a[k].opt[0])
				printf("%s%s%s ", a[k].shopt, a[k].shopt[0] ? " " : "", a[k].opt);
		if (!strcmp(verbs[i].cmd, "stage_policy"))
			printf("modern intermediate legacy ");
		printf("--help\" -- \"$cur\")) ;;\n");
	}
	printf("        \"\") COMPREPLY=($(compgen -W \"-s -c -j --help --version%s\" -- \"$cur\"))"
	       " ;;\n"
	       "    esac\n"
	       "}\n"
	       "complete -F _sluicectl sluicectl\n", firsts);
}

/* "60", "60s", "5m", "2h", "1d" -> seconds; <0 if not a duration. */
static long long duration(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (end == s || v < 0)
		return -1;
	if (!*end || !strcmp(end, "s"))
		return v;
	if (!strcmp(end, "m"))
		return v * 60;
	if (!strcmp(end, "h"))
		return v * 3600;
	if (!strcmp(end, "d"))
		return v * 86400;
	return -1;
}

/* Set a's value val in req; 0 or an exit status (the reason printed). */
static int put_value(json_t *req, const struct arg *a, const char *val)
{
	if (!strcmp(a->type, "FILE")) {
		char *data = NULL, *abs = realpath(val, NULL);
		size_t len;
		int rc = cfg_file_read(NULL, val, &data, &len);
		json_t *d;

		if (rc < 0) {
			fprintf(stderr, "sluicectl: %s %s: %s\n", a->opt, val, strerror(-rc));
			free(abs);
			return EXIT_FAIL;
		}
		d = json_stringn(data, len);
		if (len)
			explicit_bzero(data, len);   /* may be a private key */
		free(data);
		if (!d) {
			fprintf(stderr, "sluicectl: %s %s: not a text (PEM) file\n", a->opt, val);
			free(abs);
			return EXIT_FAIL;
		}
		json_object_set_new(req, a->name, json_pack("{s:s,s:o}", "path", abs ? abs : val,
							     "data", d));
		free(abs);
	} else if (!strcmp(a->type, "DURATION")) {
		long long s = duration(val);
		char key[40];

		if (s < 0) {
			fprintf(stderr, "sluicectl: %s %s: not a duration (60, 60s, 5m, 2h)\n", a->opt,
				val);
			return EXIT_USAGE;
		}
		snprintf(key, sizeof(key), "%s_s", a->name);
		json_object_set_new(req, key, json_integer(s));
	} else if (!strcmp(a->type, "N")) {
		char *end;
		long long v = strtoll(val, &end, 10);

		if (*end || end == val) {
			fprintf(stderr, "sluicectl: %s %s: not a number\n", a->opt, val);
			return EXIT_USAGE;
		}
		json_object_set_new(req, a->name, json_integer(v));
	} else {
		json_object_set_new(req, a->name, json_string(val));
	}
	return 0;
}

/* All of standard input (a pipe, a terminal), at most 1 MiB. */
static int read_stdin(char **out)
{
	size_t len = 0, cap = 1u << 20;
	char *p = malloc(cap + 1);

	if (!p)
		return -ENOMEM;
	for (;;) {
		ssize_t r = read(STDIN_FILENO, p + len, cap - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(p);
			return -errno;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == cap) {
			free(p);
			return -EFBIG;
		}
	}
	p[len] = 0;
	*out = p;
	return 0;
}

/* A WORD... argument: word appended to what it holds ("-": all of
 * standard input). 0 or an exit status. */
static int put_rest(json_t *req, const struct arg *a, const char *word)
{
	const char *had = json_string_value(json_object_get(req, a->name));
	char *data = NULL, *joined;
	int rc;

	if (!strcmp(word, "-")) {
		if ((rc = read_stdin(&data)) < 0) {
			fprintf(stderr, "sluicectl: standard input: %s\n", strerror(-rc));
			return EXIT_FAIL;
		}
		word = data;
	}
	if (asprintf(&joined, "%s%s%s", had ? had : "", had ? " " : "", word) < 0) {
		free(data);
		return EXIT_FAIL;
	}
	json_object_set_new(req, a->name, json_string(joined));
	free(joined);
	free(data);
	return 0;
}

/* The request of verb v from its arguments; NULL and *rc on error. */
static json_t *build_request(const struct verb *v, int argc, char **argv, int *rc)
{
	struct arg a[8];
	unsigned n = parse_spec(v->args, a, 8), pos = 0;
	bool given[8] = { false };
	json_t *req = json_pack("{s:s}", "cmd", v->cmd);

	*rc = 0;
	for (int i = 0; i < argc; i++) {
		unsigned k;

		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage_verb(stdout, v);
			*rc = -1;
			goto fail;
		}
		if (argv[i][0] == '-' && argv[i][1]) {
			for (k = 0; k < n && strcmp(a[k].opt, argv[i]) &&
				    (!a[k].shopt[0] || strcmp(a[k].shopt, argv[i])); k++)
				;
			if (k == n) {
				fprintf(stderr, "sluicectl %s: unknown option %s\n", v->words, argv[i]);
				goto usage;
			}
			if (!a[k].type[0]) {
				json_object_set_new(req, a[k].name, json_true());
			} else {
				if (i + 1 == argc) {
					fprintf(stderr, "sluicectl %s: %s needs a %s\n", v->words, argv[i],
						a[k].type);
					goto usage;
				}
				if ((*rc = put_value(req, &a[k], argv[++i])))
					goto fail;
			}
			given[k] = true;
			continue;
		}
		/* The next positional. */
		for (k = pos; k < n && a[k].opt[0]; k++)
			;
		if (k == n) {
			fprintf(stderr, "sluicectl %s: unexpected argument %s\n", v->words, argv[i]);
			goto usage;
		}
		if (!strcmp(a[k].type, "REST")) {
			if ((*rc = put_rest(req, &a[k], argv[i])))
				goto fail;
			given[k] = true;
			continue;       /* the words after it join it */
		}
		json_object_set_new(req, a[k].name, json_string(argv[i]));
		given[k] = true;
		pos = k + 1;
	}
	for (unsigned k = 0; k < n; k++)
		if (!a[k].optional && !given[k]) {
			fprintf(stderr, "sluicectl %s: missing %s\n", v->words,
				a[k].opt[0] ? a[k].opt : a[k].name);
			goto usage;
		}
	return req;
usage:
	usage_verb(stderr, v);
	*rc = EXIT_USAGE;
fail:
	json_decref(req);
	return NULL;
}

/* Send req, read the one answer line; NULL (the reason in err) when
 * sluice-control cannot be reached or does not answer. */
json_t *sluicectl_ask(const char *path, json_t *req, int timeout_s, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *line = json_dumps(req, JSON_COMPACT), *buf = NULL;
	size_t len = 0, cap = 0, off = 0, n;
	/* Its NUL becomes the newline: the wipe covers what dumps made. */
	size_t line_size = line ? strlen(line) + 1 : 0;
	long long deadline = time(NULL) + timeout_s;
	json_error_t je;
	json_t *a = NULL;
	int fd = -1;

	snprintf(err, errlen, "out of memory");
	if (!line || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: path too long", path);
		goto out;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "cannot reach sluice-control at %s: %s", path,
			strerror(errno));
		goto out;
	}
	n = strlen(line);
	line[n++] = '\n';       /* json_dumps' NUL: room for the newline */
	while (off < n) {
		ssize_t w = send(fd, line + off, n - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			break;  /* it answered and closed (a refused peer): read why */
		if (w < 0) {
			snprintf(err, errlen, "sluice-control at %s: %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char *nl = len ? memchr(buf, '\n', len) : NULL;
		ssize_t r;
		int left = (int)(deadline - time(NULL)), pr;

		if (nl) {
			a = json_loadb(buf, (size_t)(nl - buf), 0, &je);
			if (!a)
				snprintf(err, errlen, "sluice-control's answer is not JSON: %s",
					je.text);
			goto out;
		}
		pr = left > 0 ? poll(&p, 1, left * 1000) : 0;
		if (pr < 0 && errno == EINTR)
			continue;       /* a signal (top's SIGWINCH): the deadline stands */
		if (pr <= 0) {
			snprintf(err, errlen, "no answer from sluice-control in %d s", timeout_s);
			goto out;
		}
		if (cap - len < 65536) {
			char *q = realloc(buf, cap + 65536 * 2);

			if (!q)
				goto out;
			buf = q;
			cap += 65536 * 2;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "sluice-control closed the connection without an "
				"answer%s%s", r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
			goto out;
		}
		len += (size_t)r;
	}
out:
	if (line)
		explicit_bzero(line, line_size);
	free(line);
	free(buf);
	if (fd >= 0)
		close(fd);
	return a;
}

/* control.socket of the configuration at path. */
static char *socket_of(const char *path)
{
	struct cfg *c = NULL;
	char err[1024], *s;

	if (cfg_load_file(path, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluicectl: %s\n", err);
		return NULL;
	}
	s = strdup(c->control.socket);
	cfg_free(c);
	return s;
}

int main(int argc, char **argv)
{
	const char *sock = NULL, *config = NULL;
	const struct verb *v = NULL;
	bool json = false;
	char *from_cfg = NULL, err[512];
	json_t *req, *a;
	int i, rc, used = 0;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *o = argv[i];

		if ((!strcmp(o, "-s") || !strcmp(o, "--socket")) && i + 1 < argc) {
			sock = argv[++i];
		} else if ((!strcmp(o, "-c") || !strcmp(o, "--config")) && i + 1 < argc) {
			config = argv[++i];
		} else if (!strcmp(o, "-j") || !strcmp(o, "--json")) {
			json = true;
		} else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(o, "-V") || !strcmp(o, "--version")) {
			printf("sluicectl %s\n", SLUICE_VERSION);
			return 0;
		} else if (!strcmp(o, "--bash-completion")) {
			bash_completion();
			return 0;
		} else {
			fprintf(stderr, "sluicectl: unknown option %s\n", o);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i == argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* The longest verb that the words match: "certs stage" before "certs". */
	for (unsigned k = 0; k < N_VERBS; k++) {
		const char *w = verbs[k].words, *sp = strchr(w, ' ');
		int n = sp ? 2 : 1;

		if (i + n > argc)
			continue;
		if (sp ? (strlen(argv[i]) == (size_t)(sp - w) && !strncmp(argv[i], w, (size_t)(sp - w)) &&
			  !strcmp(argv[i + 1], sp + 1))
		       : !strcmp(argv[i], w)) {
			if (n > used) {
				v = &verbs[k];
				used = n;
			}
		}
	}
	if (!v) {
		/* A group alone ("certs", "certs --help"): its verbs. */
		bool group = false;

		for (unsigned k = 0; k < N_VERBS; k++)
			if (!strncmp(verbs[k].words, argv[i], strlen(argv[i])) &&
			    verbs[k].words[strlen(argv[i])] == ' ') {
				if (!group)
					fprintf(stderr, "sluicectl %s: one of\n", argv[i]);
				group = true;
				usage_verb(stderr, &verbs[k]);
			}
		if (!group) {
			fprintf(stderr, "sluicectl: unknown verb %s (sluicectl --help lists them)\n",
				argv[i]);
			return EXIT_USAGE;
		}
		return i + 1 < argc && !strcmp(argv[i + 1], "--help") ? 0 : EXIT_USAGE;
	}
	if (!(req = build_request(v, argc - i - used, argv + i + used, &rc)))
		return rc < 0 ? 0 : rc;
	if (!sock && config) {
		if (!(from_cfg = socket_of(config))) {
			json_decref(req);
			return EXIT_USAGE;
		}
		sock = from_cfg;
	}
	if (v->print == out_top) {
		/* top asks again and again, with a terminal of its own (top.c). */
		if (json) {
			fprintf(stderr, "sluicectl top: no JSON output (sluicectl -j stats, status)\n");
			rc = EXIT_USAGE;
		} else {
			rc = top_run(sock ? sock : DEFAULT_SOCKET, req);
		}
		json_decref(req);
		free(from_cfg);
		return rc;
	}
	a = sluicectl_ask(sock ? sock : DEFAULT_SOCKET, req,
			  !strcmp(v->cmd, "reload") || !strcmp(v->cmd, "commit") ? 150 : 30,
			  err, sizeof(err));
	json_decref(req);
	free(from_cfg);
	if (!a) {
		fprintf(stderr, "sluicectl: %s\n", err);
		return EXIT_UNREACHABLE;
	}
	if (json) {
		json_dumpf(a, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("\n");
	}
	if (!json_is_true(json_object_get(a, "ok"))) {
		const char *e = json_string_value(json_object_get(a, "error"));

		fprintf(stderr, "sluicectl %s: %s\n", v->words, e ? e : "failed (no reason given)");
		if (!json && !strcmp(v->cmd, "commit") && json_object_get(a, "report"))
			out_check(a);
		json_decref(a);
		return EXIT_FAIL;
	}
	if (!json)
		v->print(a);
	rc = 0;
	if (!strcmp(v->cmd, "health") && (!json_is_true(json_object_get(a, "serving")) ||
					  json_is_true(json_object_get(a, "draining"))))
		rc = EXIT_FAIL;
	/* As sluice explain: 1 when the client would get no certificate. */
	if (!strcmp(v->cmd, "explain") && !json_is_true(json_object_get(a, "succeeds")))
		rc = EXIT_FAIL;
	json_decref(a);
	return rc;
}
