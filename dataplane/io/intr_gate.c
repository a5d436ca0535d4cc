/*
 * The interrupt gate (io/intr_gate.h): the EAL's interrupt thread runs its
 * callbacks only while the polling threads are outside their bursts.
 */
/* rte_intr_instance_alloc() and its accessors are experimental in DPDK
 * 22.11; they are the only way to register an interrupt callback there. */
#define ALLOW_EXPERIMENTAL_API
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <rte_interrupts.h>

#include "io/intr_gate.h"

static struct {
	struct rte_intr_handle *ih;
	int fd;                          /* eventfd, readable until the gate stops */
	unsigned n;
	pthread_mutex_t slot[INTR_GATE_SLOTS_MAX];
	atomic_bool up;                  /* pollers take their slot */
	atomic_bool stopping;            /* intr_gate_fini asked the callback to let go */
	atomic_bool released;            /* ... and it did: the slots are free */
	bool held;                       /* the interrupt thread holds every slot */
} G = { .fd = -1 };

/* The interrupt thread, once per pass of its epoll loop: the slots go
 * free for a period, then it takes them all again (each one waits for
 * its thread's burst to end) and runs the pass's other callbacks holding
 * them. */
static void gate_cb(void *arg)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = INTR_GATE_PERIOD_MS * 1000000L };
	uint64_t v;

	(void)arg;
	if (G.held) {
		for (unsigned i = 0; i < G.n; i++)
			pthread_mutex_unlock(&G.slot[i]);
		G.held = false;
	}
	if (!atomic_load(&G.stopping))
		nanosleep(&ts, NULL);
	if (atomic_load(&G.stopping)) {
		/* Not readable any more: the thread stops calling us. */
		(void)!read(G.fd, &v, sizeof(v));
		atomic_store(&G.released, true);
		return;
	}
	for (unsigned i = 0; i < G.n; i++)
		pthread_mutex_lock(&G.slot[i]);
	G.held = true;
}

int intr_gate_init(unsigned n_slots)
{
	uint64_t one = 1;
	int rc;

	if (!n_slots || n_slots > INTR_GATE_SLOTS_MAX)
		return -EINVAL;
	G.n = n_slots;
	for (unsigned i = 0; i < n_slots; i++)
		pthread_mutex_init(&G.slot[i], NULL);
	G.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (G.fd < 0)
		return -errno;
	if (write(G.fd, &one, sizeof(one)) != sizeof(one)) {
		rc = -errno;
		goto fail;
	}
	G.ih = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
	if (!G.ih) {
		rc = -ENOMEM;
		goto fail;
	}
	/* EXT: the EAL calls us without reading the fd, so it stays readable. */
	if (rte_intr_fd_set(G.ih, G.fd) < 0 || rte_intr_type_set(G.ih, RTE_INTR_HANDLE_EXT) < 0) {
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = rte_intr_callback_register(G.ih, gate_cb, NULL)) < 0)
		goto fail;
	atomic_store(&G.up, true);
	return 0;
fail:
	rte_intr_instance_free(G.ih);
	G.ih = NULL;
	close(G.fd);
	G.fd = -1;
	return rc;
}

void intr_gate_enter(unsigned slot)
{
	if (atomic_load_explicit(&G.up, memory_order_relaxed))
		pthread_mutex_lock(&G.slot[slot]);
}

void intr_gate_leave(unsigned slot)
{
	if (atomic_load_explicit(&G.up, memory_order_relaxed))
		pthread_mutex_unlock(&G.slot[slot]);
}

void intr_gate_fini(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 1000000 };

	if (!atomic_load(&G.up))
		return;
	atomic_store(&G.up, false);
	atomic_store(&G.stopping, true);
	/* The callback lets the slots go on its next call (within a period
	 * or two); bounded, in case the interrupt thread is gone. */
	for (unsigned i = 0; i < 20 * INTR_GATE_PERIOD_MS && !atomic_load(&G.released); i++)
		nanosleep(&ts, NULL);
	rte_intr_callback_unregister_sync(G.ih, gate_cb, NULL);
	rte_intr_instance_free(G.ih);
	G.ih = NULL;
	close(G.fd);
	G.fd = -1;
	if (atomic_load(&G.released))
		for (unsigned i = 0; i < G.n; i++)
			pthread_mutex_destroy(&G.slot[i]);
	atomic_store(&G.stopping, false);
	atomic_store(&G.released, false);
}

bool intr_gate_wanted(const char *driver_name)
{
	return driver_name && !strcmp(driver_name, "net_memif");
}
