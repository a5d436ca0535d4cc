/*
 * The one place that chooses the network stack: the native one when the
 * configuration has native ports (and this sluice was built with DPDK),
 * else kernel sockets.
 */
#include <errno.h>
#include <stdio.h>

#include "config.h"
#include "io/io.h"
#include "sluice-build.h"
#if HAVE_DPDK
#include "io/native.h"
#endif

struct io_cb io_up;

static const struct io_ops *io_chosen;

int io_setup(const struct cfg *cfg, struct core *cores, unsigned n_cores,
	     const struct io_cb *cb, char *err, size_t errlen)
{
	const struct io_ops *ops;
	unsigned i;
	int rc;

	io_up = *cb;
	if (cfg->native) {
#if HAVE_DPDK
		ops = &nat_io_ops;
		io_chosen = ops;
		rc = nat_init(cfg, cores, n_cores, err, errlen);
#else
		snprintf(err, errlen, "%s:%u: native: this sluice was built without DPDK "
			 "(libdpdk-dev, then meson setup -Ddpdk=enabled)", cfg->path,
			 cfg->native->line);
		return -ENOTSUP;
#endif
	} else {
		ops = &kern_io_ops;
		io_chosen = ops;
		rc = kern_init(cfg, cores, n_cores, err, errlen);
	}
	if (rc < 0)
		return rc;
	for (i = 0; i < n_cores; i++)
		cores[i].io = ops;
	return 0;
}

void io_fini(void)
{
#if HAVE_DPDK
	if (io_chosen == &nat_io_ops)
		nat_fini();
#endif
	if (io_chosen == &kern_io_ops)
		kern_fini();
	io_chosen = NULL;
}

size_t io_report(char *line, size_t len, size_t o)
{
#if HAVE_DPDK
	if (io_chosen == &nat_io_ops)
		return nat_report(line, len, o);
#endif
	return o;
}

bool io_net_counters(uint64_t *v, unsigned n)
{
#if HAVE_DPDK
	if (io_chosen == &nat_io_ops)
		return nat_net_counters(v, n);
#endif
	(void)v;
	(void)n;
	return false;
}

void io_port_xstats(io_xstat_fn *fn, void *arg)
{
#if HAVE_DPDK
	if (io_chosen == &nat_io_ops)
		nat_port_xstats(fn, arg);
#endif
	(void)fn;
	(void)arg;
}

int io_listeners_for(const struct cfg *cfg, uint64_t gen, int *lfd, char *err, size_t errlen)
{
	if (io_chosen != &kern_io_ops)
		return -ENOTSUP;
	return kern_listeners_for(cfg, gen, lfd, err, errlen);
}

void io_listeners_gc(uint64_t seen)
{
	if (io_chosen == &kern_io_ops)
		kern_listeners_gc(seen);
}
