/*
 * What sluice-loadgen says: the first words of each kind of error, the
 * progress line on stderr while it runs, and at the end either a summary
 * for people or one JSON object for programs (--json; the benchmark rigs
 * read it, bench/run and bench/rig/stress.py). docs/loadgen.md describes
 * both; the JSON keys are a contract with the rigs: add, never rename.
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <arpa/inet.h>

#include "lg.h"

const char *const lg_err_names[LG_E_COUNT] = {
#define X(name, what) #name,
#include "lg_errors.def"
#undef X
};

const char *const lg_workload_names[WL_COUNT] = {
	[WL_HANDSHAKE] = "handshake", [WL_RESUME] = "resume", [WL_SMTP] = "smtp",
	[WL_IMAP] = "imap", [WL_BULK] = "bulk", [WL_IDLE] = "idle", [WL_POP3] = "pop3",
};

static const char *const tls_names[] = {
	[LG_TLS_IMPLICIT] = "implicit", [LG_TLS_STARTTLS] = "starttls", [LG_TLS_NONE] = "none",
};
static const char *const proto_names[] = {
	[LG_P_ANY] = "any", [LG_P_SMTP] = "smtp", [LG_P_IMAP] = "imap", [LG_P_POP3] = "pop3",
};

/* Keep the run's first error and each kind's first, with the words the
 * failure came with. */
void lg_note_error(struct lg *g, int kind, const char *what)
{
	if (!g->first_error[0])
		snprintf(g->first_error, sizeof(g->first_error), "%s: %s",
			 lg_err_names[kind], what);
	if (!g->first_err[kind][0])
		snprintf(g->first_err[kind], sizeof(g->first_err[kind]), "%s", what);
}

/* A latency in microseconds for people: "850 µs", "12.3 ms", "2.05 s".
 * Three significant digits at most, whatever the magnitude. */
char *lg_fmt_us(char *buf, size_t len, uint64_t us)
{
	if (us < 1000)
		snprintf(buf, len, "%llu µs", (unsigned long long)us);
	else if (us < 10000)
		snprintf(buf, len, "%.2f ms", (double)us / 1e3);
	else if (us < 100000)
		snprintf(buf, len, "%.1f ms", (double)us / 1e3);
	else if (us < 1000000)
		snprintf(buf, len, "%.0f ms", (double)us / 1e3);
	else
		snprintf(buf, len, "%.2f s", (double)us / 1e6);
	return buf;
}

/* One line on stderr: time since the start, ops done and their rate over
 * the last interval, errors, p50/p99 of the whole run so far, in flight. */
void lg_progress(struct lg *g, uint64_t now)
{
	double secs = (double)(now - g->t_begin) / 1e9;
	double last = (double)(now - (g->next_progress - 1000000000u)) / 1e9;
	char p50[24], p99[24];

	fprintf(stderr, "sluice-loadgen: %5.0f s  ops %llu  %.1f/s  errors %llu  "
		"p50 %s  p99 %s  in flight %u\n", secs, (unsigned long long)g->done,
		last > 0 ? (double)(g->done - g->prog_done) / last : 0.0,
		(unsigned long long)g->failed,
		lg_fmt_us(p50, sizeof(p50), hist_quantile(&g->lat, 0.50)),
		lg_fmt_us(p99, sizeof(p99), hist_quantile(&g->lat, 0.99)), g->nactive);
	g->prog_done = g->done;
	g->next_progress = now + 1000000000u;
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static const char *version_name(int v)
{
	return v == TLS1_3_VERSION ? "1.3" : v == TLS1_2_VERSION ? "1.2" : "any";
}

/* The one JSON object (the rigs' keys first, as they always were). */
void lg_json(FILE *f, const struct lg *g, double secs, double cpu_s)
{
	unsigned i;
	bool first = true;

	fprintf(f, "{\"workload\": \"%s\", \"tls\": \"%s\", \"sig\": \"%s\", \"implicit\": %s, "
		"\"mode\": \"%s\", \"concurrency\": %u, \"rate\": %.1f, ",
		g->wl_name, version_name(g->tls_version), g->sig ? g->sig : "any",
		g->implicit ? "true" : "false", g->rate > 0 ? "open" : "closed",
		g->concurrency, g->rate);
	fprintf(f, "\"ops\": %llu, \"started\": %llu, \"error_total\": %llu, \"errors\": {",
		(unsigned long long)g->done, (unsigned long long)g->started,
		(unsigned long long)g->failed);
	for (i = 0; i < LG_E_COUNT; i++)
		fprintf(f, "%s\"%s\": %llu", i ? ", " : "", lg_err_names[i],
			(unsigned long long)g->err[i]);
	fprintf(f, "}, \"first_error\": ");
	json_str(f, g->first_error);
	fprintf(f, ", \"first_errors\": {");
	for (i = 0; i < LG_E_COUNT; i++) {
		if (!g->first_err[i][0])
			continue;
		fprintf(f, "%s\"%s\": ", first ? "" : ", ", lg_err_names[i]);
		json_str(f, g->first_err[i]);
		first = false;
	}
	fprintf(f, "}, \"duration_s\": %.6f, \"ops_per_s\": %.2f, ", secs,
		secs > 0 ? (double)g->done / secs : 0.0);
	fprintf(f, "\"latency_us\": {\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, "
		"\"p999\": %llu, \"max\": %llu, \"mean\": %.1f}, ",
		(unsigned long long)hist_quantile(&g->lat, 0.50),
		(unsigned long long)hist_quantile(&g->lat, 0.90),
		(unsigned long long)hist_quantile(&g->lat, 0.99),
		(unsigned long long)hist_quantile(&g->lat, 0.999),
		(unsigned long long)g->lat.max, hist_mean(&g->lat));
	fprintf(f, "\"payload_bytes\": %llu, \"messages_accepted\": %llu, "
		"\"messages_unanswered\": %llu, \"mib_per_s\": %.3f, "
		"\"resumed\": %llu, \"resumed_fraction\": %.4f, \"client_cpu_s\": %.3f, ",
		(unsigned long long)g->payload_bytes, (unsigned long long)g->msgs_accepted,
		(unsigned long long)g->msgs_unanswered,
		secs > 0 ? (double)g->payload_bytes / 1048576.0 / secs : 0.0,
		(unsigned long long)g->resumed,
		g->done ? (double)g->resumed / (double)g->done : 0.0, cpu_s);
	fprintf(f, "\"host\": ");
	json_str(f, g->host ? g->host : "");
	fprintf(f, ", \"port\": %u, \"protocol\": \"%s\", \"tls_mode\": \"%s\", "
		"\"resume\": %s, \"verify\": %s",
		ntohs(g->dst.sin_port), proto_names[g->proto], tls_names[g->tls_mode],
		g->resume ? "true" : "false", g->verify ? "true" : "false");
	if (g->io && g->io->json) {     /* the transport's own members (stdout) */
		fflush(f);
		g->io->json(g);
		fflush(stdout);
	}
	fprintf(f, "}\n");
}

/* The summary for people (docs/loadgen.md, "Reading the output"). */
void lg_summary(FILE *f, const struct lg *g, double secs, double cpu_s)
{
	static const char *const mode_words[] = {
		[LG_TLS_IMPLICIT] = "implicit TLS", [LG_TLS_STARTTLS] = "STARTTLS",
		[LG_TLS_NONE] = "no TLS",
	};
	char a[24], b[24], c[24], d[24], e[24];
	unsigned i;

	fprintf(f, "sluice-loadgen: %s to %s port %u, %s", g->wl_name, g->host ? g->host : "?",
		ntohs(g->dst.sin_port), mode_words[g->tls_mode]);
	if (g->tls_mode != LG_TLS_NONE)
		fprintf(f, " (TLS %s%s%s)", g->tls_version ? version_name(g->tls_version)
						       : "1.2-1.3",
			g->sig ? ", " : "", g->sig ? g->sig : "");
	if (g->rate > 0)
		fprintf(f, ", open loop at %g/s\n", g->rate);
	else
		fprintf(f, ", closed loop, %u in flight\n", g->wl == WL_IDLE
			? (unsigned)g->count : g->concurrency);
	if (g->tls_mode != LG_TLS_NONE)
		fprintf(f, "certificate:  %s\n", g->verify
			? "verified (--verify)"
			: "not verified (give --verify, and --ca FILE for a private CA)");
	fprintf(f, "operations:   %llu succeeded, %llu failed, of %llu started in %.2f s: "
		"%.1f per second\n", (unsigned long long)g->done,
		(unsigned long long)g->failed, (unsigned long long)g->started, secs,
		secs > 0 ? (double)g->done / secs : 0.0);
	if (g->lat.n)
		fprintf(f, "latency:      p50 %s, p90 %s, p99 %s, p99.9 %s, max %s (%s)\n",
			lg_fmt_us(a, sizeof(a), hist_quantile(&g->lat, 0.50)),
			lg_fmt_us(b, sizeof(b), hist_quantile(&g->lat, 0.90)),
			lg_fmt_us(c, sizeof(c), hist_quantile(&g->lat, 0.99)),
			lg_fmt_us(d, sizeof(d), hist_quantile(&g->lat, 0.999)),
			lg_fmt_us(e, sizeof(e), g->lat.max),
			g->rate > 0 ? "from when each op was due" : "from each op's start");
	else
		fprintf(f, "latency:      none (no operation succeeded)\n");
	if (g->resume)
		fprintf(f, "resumed:      %llu of %llu (%.1f %%)\n",
			(unsigned long long)g->resumed, (unsigned long long)g->done,
			g->done ? 100.0 * (double)g->resumed / (double)g->done : 0.0);
	if (g->wl == WL_SMTP || g->wl == WL_BULK) {
		fprintf(f, "messages:     %llu accepted (%.2f MiB sent, %.2f MiB/s)",
			(unsigned long long)g->msgs_accepted,
			(double)g->payload_bytes / 1048576.0,
			secs > 0 ? (double)g->payload_bytes / 1048576.0 / secs : 0.0);
		if (g->msgs_unanswered)         /* the server may have taken them */
			fprintf(f, ", %llu sent whose reply never came",
				(unsigned long long)g->msgs_unanswered);
		fputc('\n', f);
	}
	if (secs >= 0.1)
		fprintf(f, "client CPU:   %.2f s (%.0f %% of one CPU)\n", cpu_s,
			100.0 * cpu_s / secs);
	else
		fprintf(f, "client CPU:   %.2f s\n", cpu_s);
	if (!g->failed) {
		fprintf(f, "errors:       none\n");
		return;
	}
	fprintf(f, "errors:       %llu\n", (unsigned long long)g->failed);
	for (i = 0; i < LG_E_COUNT; i++)
		if (g->err[i])
			fprintf(f, "  %-10s %8llu   first: %s\n", lg_err_names[i],
				(unsigned long long)g->err[i],
				g->first_err[i][0] ? g->first_err[i] : "-");
}

/* The end of the run: the summary or the JSON object on stdout. */
void lg_report(const struct lg *g)
{
	double secs = (double)(g->t_end_start - g->t_begin) / 1e9;
	struct rusage ru;
	double cpu_s;

	getrusage(RUSAGE_SELF, &ru);
	cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	if (g->json)
		lg_json(stdout, g, secs, cpu_s);
	else
		lg_summary(stdout, g, secs, cpu_s);
	fflush(stdout);
}
