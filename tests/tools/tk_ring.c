/*
 * sluice-control's ticket-key ring (control/tickets.c) on a command line,
 * for the integration tests: what the daemon does, driven from stdin.
 *
 *   tk_ring CONFIG     then, one per line: tick [T] | rotate [T] | request | show
 *
 * Each command prints one JSON line: tick {"changed"}, rotate {"rc"},
 * request the dataplane request (with key material: a test tool), show
 * the ring without it. T: seconds since the epoch, default now.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "tickets.h"

static void say(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	printf("%s\n", s ? s : "null");
	fflush(stdout);
	free(s);
}

int main(int argc, char **argv)
{
	struct cfg *c;
	char err[1024], line[256];

	if (argc != 2) {
		fprintf(stderr, "usage: tk_ring CONFIG\n");
		return 2;
	}
	if (cfg_load_file(argv[1], &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "tk_ring: %s\n", err);
		return 1;
	}
	tk_ring_init(c);
	while (fgets(line, sizeof(line), stdin)) {
		char cmd[32] = "";
		long long t = (long long)time(NULL);
		json_t *o;

		if (sscanf(line, "%31s %lld", cmd, &t) < 1)
			continue;
		if (!strcmp(cmd, "tick")) {
			o = json_pack("{s:b}", "changed", tk_ring_tick(t));
			say(o);
			json_decref(o);
		} else if (!strcmp(cmd, "rotate")) {
			o = json_pack("{s:i}", "rc", tk_ring_rotate_at(t));
			say(o);
			json_decref(o);
		} else if (!strcmp(cmd, "request")) {
			o = tk_ring_request();
			say(o);
			if (o)
				tk_request_free(o);
		} else if (!strcmp(cmd, "show")) {
			o = tk_ring_show_at(t);
			say(o);
			json_decref(o);
		} else {
			fprintf(stderr, "tk_ring: unknown command '%s'\n", cmd);
		}
	}
	tk_ring_fini();
	cfg_free(c);
	return 0;
}
