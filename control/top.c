/*
 * sluicectl top: status and stats from sluice-control every -d seconds,
 * each frame rendered by top_render.c from this read and the one before.
 *
 * On a terminal: the alternate screen, the cursor hidden, the frame drawn
 * in place at the window's size (TIOCGWINSZ, again on SIGWINCH), the keys
 * read raw (q or Ctrl-C quits, space reads now). The terminal is given
 * back as it was on every way out: q, Ctrl-C, SIGTERM, SIGHUP, SIGINT, -n.
 * Otherwise (stdout not a terminal, or -b) batch frames as top -b: plain
 * lines, a blank line between frames, no escape sequences.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sluicectl.h"
#include "top_render.h"

#define ASK_TIMEOUT_S 5         /* a read that takes longer shows as an error */
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

static volatile sig_atomic_t quit_sig, resized;
static struct termios saved;
static bool raw_on, screen_on;

static void on_quit(int sig)
{
	quit_sig = sig;
}

static void on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

/* All of p to stdout; a terminal gone is not worth a message. */
static void write_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(STDOUT_FILENO, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* The terminal as it was: cursor, main screen, line discipline. Also
 * atexit, so that no exit path leaves a raw terminal behind. */
static void tty_restore(void)
{
	if (screen_on) {
		static const char s[] = "\033[?25h\033[?1049l";

		write_all(s, sizeof(s) - 1);
		screen_on = false;
	}
	if (raw_on) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		raw_on = false;
	}
}

/* Keys one at a time, unechoed, Ctrl-C as a byte (ISIG off) when stdin
 * is a terminal; the alternate screen, the cursor hidden. Output
 * processing stays on: "\n" is still a new line. */
static void tty_enter(void)
{
	static const char s[] = "\033[?1049h\033[?25l\033[H\033[2J";

	atexit(tty_restore);
	if (isatty(STDIN_FILENO) && !tcgetattr(STDIN_FILENO, &saved)) {
		struct termios t = saved;

		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
		t.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		raw_on = !tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
	}
	write_all(s, sizeof(s) - 1);
	screen_on = true;
}

/* The handlers without SA_RESTART: a wait ends at once. */
static void signals(void)
{
	static const int quit[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa = { .sa_handler = on_quit };

	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof(quit) / sizeof(quit[0]); i++)
		sigaction(quit[i], &sa, NULL);
	sa.sa_handler = on_winch;
	sigaction(SIGWINCH, &sa, NULL);
}

static void winsize(unsigned *w, unsigned *h)
{
	struct winsize ws;

	if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_col && ws.ws_row) {
		*w = ws.ws_col;
		*h = ws.ws_row;
	} else {
		*w = 80;
		*h = 24;
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request's answer, or NULL and why in err. */
static json_t *ask_ok(const char *path, json_t *q, char *err, size_t errlen)
{
	json_t *a = q ? sluicectl_ask(path, q, ASK_TIMEOUT_S, err, errlen) : NULL;

	if (!q)
		snprintf(err, errlen, "out of memory");
	if (a && !json_is_true(json_object_get(a, "ok"))) {
		const char *e = json_string_value(json_object_get(a, "error"));

		snprintf(err, errlen, "%s: %s", json_string_value(json_object_get(q, "cmd")),
			 e ? e : "refused");
		json_decref(a);
		a = NULL;
	}
	json_decref(q);
	return a;
}

/* A read: status and stats (per core and per listener). r->error set
 * (pointing into err) if either failed. */
static void read_once(const char *path, struct top_read *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->status = ask_ok(path, json_pack("{s:s}", "cmd", "status"), err, errlen);
	r->stats = ask_ok(path, json_pack("{s:s,s:b,s:b}", "cmd", "stats", "per_core", 1,
					  "per_listener", 1), err, errlen);
	r->t = now();
	if (!r->status || !r->stats)
		r->error = err;
}

static void read_free(struct top_read *r)
{
	json_decref(r->status);
	json_decref(r->stats);
	memset(r, 0, sizeof(*r));
}

/* The frame in place: from the top left, each line cleared to its end,
 * what is below the last one cleared, no newline after it (no scroll). */
static void draw_screen(const struct top_frame *f)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return;
	fputs("\033[H", m);
	for (unsigned i = 0; i < f->n; i++)
		fprintf(m, "%s\033[K%s", f->line[i], i + 1 < f->n ? "\r\n" : "");
	fputs("\033[J", m);
	if (!fclose(m))
		write_all(buf, len);
	free(buf);
}

static void draw_batch(const struct top_frame *f, bool first)
{
	if (!first)
		putchar('\n');
	for (unsigned i = 0; i < f->n; i++)
		printf("%s\n", f->line[i]);
	fflush(stdout);
}

/* Wait until t (keys and resizes meanwhile); false to quit. A resize
 * redraws through redraw(). */
static bool wait_until(double t, bool *keys, void (*redraw)(void *), void *arg)
{
	while (!quit_sig) {
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		double left = t - now();
		int pr;

		if (resized) {
			resized = 0;
			redraw(arg);
		}
		if (left <= 0)
			return true;
		pr = poll(&p, *keys ? 1 : 0, (int)(left * 1000) + 1);
		if (pr < 0 && errno != EINTR)
			return true;
		if (pr > 0 && (p.revents & POLLIN)) {
			char c[64];
			ssize_t r = read(STDIN_FILENO, c, sizeof(c));

			if (r <= 0) {
				*keys = false;  /* no keyboard any more: signals still quit */
				continue;
			}
			for (ssize_t i = 0; i < r; i++) {
				if (c[i] == 'q' || c[i] == 'Q' || c[i] == 3)
					return false;
				if (c[i] == ' ')
					return true;
			}
		} else if (pr > 0) {
			*keys = false;  /* POLLHUP, POLLERR */
		}
	}
	return false;
}

/* What a resize redraws: the last two reads. */
struct shown {
	const struct top_read *prev, *cur;
	int err;
};

static void redraw(void *arg)
{
	struct shown *s = arg;
	struct top_frame f;
	unsigned w, h;

	winsize(&w, &h);
	if ((s->err = top_render(s->prev, s->cur, w, h, &f)))
		return;
	draw_screen(&f);
	top_frame_free(&f);
}

int top_run(const char *path, json_t *req)
{
	const char *d = json_string_value(json_object_get(req, "delay"));
	json_t *iters = json_object_get(req, "iterations");
	long long n = iters ? json_integer_value(iters) : 0, frames = 0;
	bool interactive = !json_is_true(json_object_get(req, "batch")) && isatty(STDOUT_FILENO);
	bool keys, have_prev = false;
	struct top_read rd[2] = { 0 };
	char err[2][512];
	unsigned cur = 0;
	double delay = 1;
	int rc = 0;

	if (d) {
		char *end;

		delay = strtod(d, &end);
		if (end == d || *end || !(delay >= 0.1 && delay <= 86400)) {
			fprintf(stderr, "sluicectl top: -d %s: seconds from 0.1 to 86400\n", d);
			return EXIT_USAGE;
		}
	}
	if (iters && n < 1) {
		fprintf(stderr, "sluicectl top: -n %lld: at least 1\n", n);
		return EXIT_USAGE;
	}
	if (interactive) {
		signals();
		tty_enter();
	}
	keys = raw_on;
	for (;;) {
		struct top_read *c = &rd[cur], *p = have_prev ? &rd[cur ^ 1] : NULL;
		struct shown s = { p, c, 0 };

		read_once(path, c, err[cur], sizeof(err[cur]));
		if (!interactive && !c->status && !c->stats) {
			fprintf(stderr, "sluicectl: %s\n", c->error);
			rc = EXIT_UNREACHABLE;
			break;
		}
		if (interactive) {
			redraw(&s);
		} else {
			struct top_frame f;

			if (!(s.err = top_render(p, c, 0, 0, &f))) {
				draw_batch(&f, !frames);
				top_frame_free(&f);
			}
		}
		if (s.err) {
			rc = EXIT_FAIL;
			break;
		}
		if (++frames == n)
			break;
		if (!wait_until(c->t + delay, &keys, redraw, &s))
			break;
		if (s.err) {
			rc = EXIT_FAIL;
			break;
		}
		cur ^= 1;
		read_free(&rd[cur]);
		have_prev = true;
	}
	read_free(&rd[0]);
	read_free(&rd[1]);
	tty_restore();
	if (rc == EXIT_FAIL)
		fprintf(stderr, "sluicectl top: out of memory\n");
	/* q and Ctrl-C are the way out; a signal from elsewhere says so. */
	if (!rc && quit_sig && quit_sig != SIGINT)
		rc = 128 + quit_sig;
	return rc;
}

/* top's printer in verbs.def: sluicectl.c runs top_run() for top rather
 * than print one answer, but one stats answer alone still makes a frame
 * (counts since the start, no status). */
void out_top(json_t *a)
{
	struct top_read r = { .stats = a };
	struct top_frame f;

	if (top_render(NULL, &r, 0, 0, &f))
		return;
	draw_batch(&f, true);
	top_frame_free(&f);
}
