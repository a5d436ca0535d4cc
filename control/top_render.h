/*
 * sluicectl top's rendering (top_render.c): two reads of sluice-control
 * (its status and stats answers) to the lines of one frame, rates from
 * their differences. Pure: no I/O, no clock; top.c does the terminal.
 */
#ifndef SLUICE_CTL_TOP_RENDER_H
#define SLUICE_CTL_TOP_RENDER_H

#include <jansson.h>

/* One read: both answers (borrowed) and when it was taken. */
struct top_read {
	json_t *status;         /* status answer ({"ok": true, ...}), NULL if it failed */
	json_t *stats;          /* stats answer with per_core and per_listener, or NULL */
	double t;               /* seconds on a monotonic clock at the answer */
	const char *error;      /* why the read failed (shown), or NULL */
};

/* A frame: lines without newlines, none wider than asked. */
struct top_frame {
	char **line;
	unsigned n;
};

/*
 * The frame of cur, its rates from prev (NULL, or a read of another
 * dataplane process: averages since the dataplane started), at most width
 * columns (0: no limit) and height lines (0: no limit; the last line then
 * says how many did not fit). 0 or -ENOMEM (f is then empty).
 */
int top_render(const struct top_read *prev, const struct top_read *cur, unsigned width,
	       unsigned height, struct top_frame *f);
void top_frame_free(struct top_frame *f);

#endif
