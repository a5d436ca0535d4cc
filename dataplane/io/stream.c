/* The one stream call that depends on the core's stack (io/stream.h). */
#include "core.h"
#include "io/stream.h"
#include "sluice-build.h"
#if HAVE_DPDK
#include "io/native.h"
#endif

int stream_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
		   socklen_t len)
{
#if HAVE_DPDK
	if (c->nat)
		return nat_stream_connect(c, s, addr, len);
#endif
	return kern_stream_connect(c, s, addr, len);
}
