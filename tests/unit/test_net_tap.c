/*
 * Interoperability with the Linux kernel's TCP/IP, in real time: the
 * stack drives a TAP device moved into a network namespace this test
 * creates (192.0.2.1 and 2001:db8::1 on the kernel's side, 192.0.2.2 and
 * 2001:db8::2 on ours, RFC 5737 / RFC 3849 documentation addresses), and
 * kernel sockets (/usr/bin/python3 in the namespace) talk to it:
 *   - a kernel client sends 4 MiB to our echo server and checks what comes
 *     back (IPv4, then IPv6: ARP and NDP both ways on the way);
 *   - our client fetches 4 MiB from a kernel server and checks its CRC-32;
 *   - ICMP and ICMPv6 echo from the kernel's raw sockets;
 *   - the echo again with 2% of the frames lost each way.
 * Needs root (netns, TAP); meson suite 'netns', not 'unit'. The namespace
 * and the device are removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "net/net_int.h"

#define PY "/usr/bin/python3"
#define BYTES (4u << 20)

static char ns[32], dev[IFNAMSIZ], out[64];
static int tapfd = -1;
static struct net_stack *st;
static uint32_t loss_ppm;            /* frames dropped each way by the pump */
static uint64_t rng = 0x2545F4914F6CDD1DULL, lost;

static bool lose(void)
{
	if (!loss_ppm)
		return false;
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	if ((rng * 0x2545F4914F6CDD1DULL) % 1000000u >= loss_ppm)
		return false;
	lost++;
	return true;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void tap_tx(void *ctx, const uint8_t *f, uint32_t len)
{
	(void)ctx;
	if (lose())
		return;
	if (write(tapfd, f, len) < 0 && errno != EAGAIN)
		perror("tap write");
}

/* Move frames between the TAP device and the stack for up to ms
 * milliseconds, or until the child pid has exited. Returns the child's
 * exit status, or -1 if it is still running. */
static int pump(int ms, pid_t pid)
{
	uint64_t end = now_us() + (uint64_t)ms * 1000;
	uint8_t f[2048];
	int status;

	while (now_us() < end) {
		struct pollfd p = { .fd = tapfd, .events = POLLIN };
		ssize_t n;

		if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
		poll(&p, 1, 1);
		while ((n = read(tapfd, f, sizeof(f))) > 0)
			if (!lose())
				net_input(st, f, (uint32_t)n, now_us());
		net_poll(st, now_us());
	}
	return -1;
}

/* Start a python program in the namespace, its output in `out`. */
static pid_t spawn_py(const char *prog, const char *args)
{
	pid_t pid = fork();

	if (pid == 0) {
		char cmd[4096];

		snprintf(cmd, sizeof(cmd), "exec ip netns exec %s " PY " -c '%s' %s >%s 2>&1", ns, prog, args, out);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static bool out_has(const char *word)
{
	char buf[512] = { 0 };
	FILE *f = fopen(out, "r");

	if (!f)
		return false;
	if (fread(buf, 1, sizeof(buf) - 1, f) == 0)
		buf[0] = 0;
	fclose(f);
	return strstr(buf, word) != NULL;
}

static int teardown(void **state);

/* Namespaces of earlier runs that were killed before their teardown: ours
 * are named by PID, so one whose process is gone is stale. */
static void remove_stale_namespaces(void)
{
	DIR *d = opendir("/run/netns");
	struct dirent *e;
	int pid;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (sscanf(e->d_name, "sluice-net-%d", &pid) == 1 && pid > 0 &&
		    kill(pid, 0) < 0 && errno == ESRCH)
			run("ip netns del %s 2>/dev/null", e->d_name);
	closedir(d);
}

static int setup(void **state)
{
	struct net_config cfg;
	struct ifreq ifr;
	int i;

	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "# needs root\n");
		return -1;
	}
	remove_stale_namespaces();
	snprintf(ns, sizeof(ns), "sluice-net-%d", (int)getpid());
	snprintf(dev, sizeof(dev), "sltap%d", (int)getpid() % 100000);
	snprintf(out, sizeof(out), "/tmp/sluice-net-tap-%d.out", (int)getpid());
	tapfd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tapfd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	memcpy(ifr.ifr_name, dev, strlen(dev));
	if (ioctl(tapfd, TUNSETIFF, &ifr) < 0)
		return -1;
	if (run("ip netns add %s", ns))
		return -1;
	/* From here a failure undoes what was made: cmocka runs no group
	 * teardown after a failed group setup. */
	if (run("ip link set %s netns %s", dev, ns) ||
	    run("ip -n %s link set lo up", ns) || run("ip -n %s link set %s up", ns, dev) ||
	    run("ip -n %s addr add 192.0.2.1/24 dev %s", ns, dev) ||
	    run("ip -n %s -6 addr add 2001:db8::1/64 dev %s nodad", ns, dev)) {
		teardown(state);
		return -1;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.mac[0] = 2;
	cfg.mac[5] = 2;
	cfg.has_ip4 = cfg.has_ip6 = true;
	memcpy(cfg.ip4, (uint8_t[4]){ 192, 0, 2, 2 }, 4);
	cfg.ip4_plen = 24;
	memcpy(cfg.ip6, (uint8_t[16]){ 0x20, 0x01, 0x0d, 0xb8, [15] = 2 }, 16);
	cfg.ip6_plen = 64;
	for (i = 0; i < 16; i++)
		cfg.secret[i] = (uint8_t)(now_us() >> (i % 8));
	cfg.tx = tap_tx;
	cfg.tcp.port_lo = 45000;
	cfg.tcp.port_hi = 45999;
	st = net_stack_new(&cfg, now_us());
	if (!st) {
		teardown(state);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	net_stack_free(st);
	if (tapfd >= 0)
		close(tapfd);
	run("ip netns del %s 2>/dev/null", ns);
	unlink(out);
	return 0;
}

/* ---- our echo server, a kernel client ---- */

struct echo {
	uint8_t pend[65536];
	uint32_t n;
	bool eof;
};

static void echo_flush(struct tcp_conn *c, struct echo *e)
{
	for (;;) {
		ssize_t w, r;

		if (e->n) {
			w = tcp_send(c, e->pend, e->n);
			if (w <= 0)
				return;
			memmove(e->pend, e->pend + w, e->n - (uint32_t)w);
			e->n -= (uint32_t)w;
			if (e->n)
				return;
		}
		r = tcp_read(c, e->pend, sizeof(e->pend));
		if (r <= 0)
			break;
		e->n = (uint32_t)r;
	}
	if (tcp_eof(c) && !e->eof && !e->n) {
		e->eof = true;
		tcp_close(c);
	}
}

static void echo_data(struct tcp_conn *c, void *ctx) { echo_flush(c, ctx); }
static void echo_writable(struct tcp_conn *c, void *ctx) { echo_flush(c, ctx); }
static const struct tcp_ops echo_ops = { NULL, echo_data, echo_writable, NULL };
static struct echo echo_state;

static int echo_accept(void *lctx, struct tcp_conn *c)
{
	(void)lctx;
	memset(&echo_state, 0, sizeof(echo_state));
	tcp_set_ops(c, &echo_ops, &echo_state);
	return 0;
}

static const char client_py[] =
	"import socket,sys,os,threading,hashlib\n"
	"a,p,n=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])\n"
	"s=socket.socket(socket.AF_INET6 if \":\" in a else socket.AF_INET)\n"
	"s.settimeout(30)\n"
	"s.connect((a,p))\n"
	"d=os.urandom(n)\n"
	"g=bytearray()\n"
	"def rd():\n"
	"  while True:\n"
	"    b=s.recv(65536)\n"
	"    if not b: break\n"
	"    g.extend(b)\n"
	"t=threading.Thread(target=rd)\n"
	"t.start()\n"
	"s.sendall(d)\n"
	"s.shutdown(socket.SHUT_WR)\n"
	"t.join()\n"
	"ok=len(g)==n and hashlib.sha256(g).digest()==hashlib.sha256(d).digest()\n"
	"print(\"ECHO-OK\" if ok else \"ECHO-BAD %d\" % len(g))\n"
	"sys.exit(0 if ok else 1)\n";

static void echo_through_kernel(const char *addr)
{
	char args[128];
	struct tcp_listener *l;
	uint64_t t0 = now_us();
	pid_t pid;
	int rc;

	assert_int_equal(tcp_listen(st, NULL, 7025, echo_accept, NULL, &l), 0);
	snprintf(args, sizeof(args), "%s 7025 %u", addr, BYTES);
	pid = spawn_py(client_py, args);
	rc = pump(60000, pid);
	printf("# kernel client -> our echo over %s: %u bytes each way in %.2f s, exit %d\n", addr, BYTES,
	       (now_us() - t0) / 1e6, rc);
	if (rc < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	assert_int_equal(rc, 0);
	assert_true(out_has("ECHO-OK"));
	pump(200, 0);
	tcp_unlisten(l);
}

/* Every drop counter that moved, for the record. */
static void print_drops(void)
{
	uint32_t k;

	for (k = 0; k < NET_C__COUNT; k++)
		if (strncmp(net_counter_names[k], "drop_", 5) == 0 && net_counters(st)[k])
			printf("# %s = %llu\n", net_counter_names[k], (unsigned long long)net_counters(st)[k]);
	printf("# segments sent %llu, retransmitted %llu; RTOs %llu, fast retransmits %llu, dupacks in %llu\n",
	       (unsigned long long)net_counters(st)[NET_C_tcp_segs_tx],
	       (unsigned long long)net_counters(st)[NET_C_tcp_retrans_segs],
	       (unsigned long long)net_counters(st)[NET_C_tcp_rto],
	       (unsigned long long)net_counters(st)[NET_C_tcp_fast_retransmit],
	       (unsigned long long)net_counters(st)[NET_C_tcp_dupack_rx]);
}

static void test_kernel_client_v4(void **state)
{
	(void)state;
	echo_through_kernel("192.0.2.2");
	assert_true(net_counters(st)[NET_C_arp_request_rx] + net_counters(st)[NET_C_arp_reply_rx] > 0);
	print_drops();
}

static void test_kernel_client_v6(void **state)
{
	(void)state;
	echo_through_kernel("2001:db8::2");
	assert_true(net_counters(st)[NET_C_ndp_ns_rx] > 0);
	print_drops();
}

/* The same with 2% of the frames lost each way: both TCPs recover (the
 * kernel's with its own SACK, RACK and CUBIC, ours with RFC 6675). */
static void test_kernel_client_lossy(void **state)
{
	uint64_t rtx = net_counters(st)[NET_C_tcp_retrans_segs];

	(void)state;
	loss_ppm = 20000;
	lost = 0;
	echo_through_kernel("192.0.2.2");
	loss_ppm = 0;
	printf("# %llu frames lost by the pump; we retransmitted %llu segments\n", (unsigned long long)lost,
	       (unsigned long long)(net_counters(st)[NET_C_tcp_retrans_segs] - rtx));
	assert_true(lost > 0);
	assert_true(net_counters(st)[NET_C_tcp_retrans_segs] > rtx);
	print_drops();
}

/* ---- our client, a kernel server ---- */

static uint32_t crc_table[256];

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
	if (!crc_table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;

			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			crc_table[i] = c;
		}
	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

struct fetch {
	uint32_t crc;
	uint64_t got;
	bool done, connected;
	int err;
};

static void f_connected(struct tcp_conn *c, void *ctx) { (void)c; ((struct fetch *)ctx)->connected = true; }
static void f_data(struct tcp_conn *c, void *ctx)
{
	struct fetch *f = ctx;
	uint8_t buf[16384];
	ssize_t n;

	while ((n = tcp_read(c, buf, sizeof(buf))) > 0) {
		f->crc = crc32_update(f->crc, buf, (size_t)n);
		f->got += (uint64_t)n;
	}
	if (tcp_eof(c) && !f->done) {
		f->done = true;
		tcp_close(c);
	}
}
static void f_closed(struct tcp_conn *c, void *ctx, int err)
{
	(void)c;
	((struct fetch *)ctx)->err = err;
	((struct fetch *)ctx)->done = true;
}
static const struct tcp_ops fetch_ops = { f_connected, f_data, NULL, f_closed };

static const char server_py[] =
	"import socket,sys,os,zlib\n"
	"a,p,n=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])\n"
	"l=socket.socket(socket.AF_INET6 if \":\" in a else socket.AF_INET)\n"
	"l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
	"l.bind((a,p))\n"
	"l.listen(1)\n"
	"print(\"READY\",flush=True)\n"
	"l.settimeout(30)\n"
	"c,_=l.accept()\n"
	"d=os.urandom(n)\n"
	"c.sendall(d)\n"
	"c.shutdown(socket.SHUT_WR)\n"
	"c.settimeout(30)\n"
	"c.recv(1)\n"
	"print(\"CRC %08x\" % zlib.crc32(d),flush=True)\n";

static void test_our_client_v4(void **state)
{
	struct fetch f = { 0 };
	struct tcp_connect_req req = { .raddr = { .family = NET_AF4, .a = { 192, 0, 2, 1 } }, .rport = 7143,
				       .ops = &fetch_ops, .ctx = &f };
	struct tcp_conn *c;
	char want[32];
	uint64_t t0;
	pid_t pid;
	int rc, i;

	(void)state;
	snprintf(want, sizeof(want), "192.0.2.1 7143 %u", BYTES);
	pid = spawn_py(server_py, want);
	for (i = 0; i < 100 && !out_has("READY"); i++)
		pump(50, 0);
	assert_true(out_has("READY"));
	t0 = now_us();
	assert_int_equal(tcp_connect(st, &req, &c), 0);
	rc = pump(60000, pid);
	printf("# our client <- kernel server: %llu bytes in %.2f s, exit %d\n", (unsigned long long)f.got,
	       (now_us() - t0) / 1e6, rc);
	if (rc < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	assert_int_equal(rc, 0);
	assert_true(f.connected);
	assert_int_equal(f.err, 0);
	assert_int_equal(f.got, BYTES);
	snprintf(want, sizeof(want), "CRC %08x", f.crc);
	assert_true(out_has(want));
	print_drops();
}

/* ICMP and ICMPv6 echo from the kernel's raw sockets: the replies must
 * pass the kernel's own checks. */
static const char ping_py[] =
	"import socket,sys,struct\n"
	"a=sys.argv[1]\n"
	"v6=\":\" in a\n"
	"s=socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,socket.SOCK_RAW,58 if v6 else 1)\n"
	"s.settimeout(5)\n"
	"def cs(b):\n"
	"  b+=bytes(len(b)%2)\n"
	"  x=sum(struct.unpack(\"!%dH\"%(len(b)//2),b))\n"
	"  while x>>16: x=(x&0xffff)+(x>>16)\n"
	"  return (~x)&0xffff\n"
	"body=struct.pack(\"!HH\",0x5151,7)+b\"sluice ping over tap\"\n"
	"m=struct.pack(\"!BBH\",128 if v6 else 8,0,0)+body\n"
	"if not v6: m=m[:2]+struct.pack(\"!H\",cs(m))+m[4:]\n"
	"s.sendto(m,(a,0))\n"
	"while True:\n"
	"  r=s.recv(2048)\n"
	"  if not v6: r=r[(r[0]&15)*4:]\n"
	"  if r[0]==(129 if v6 else 0) and r[4:]==body: break\n"
	"print(\"PONG\")\n";

static void ping(const char *addr)
{
	pid_t pid = spawn_py(ping_py, addr);
	int rc = pump(10000, pid);

	if (rc < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	assert_int_equal(rc, 0);
	assert_true(out_has("PONG"));
}

static void test_kernel_ping(void **state)
{
	(void)state;
	ping("192.0.2.2");
	ping("2001:db8::2");
	assert_true(net_counters(st)[NET_C_icmp_echo_rx] >= 1);
	assert_true(net_counters(st)[NET_C_icmp6_echo_rx] >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernel_ping),
		cmocka_unit_test(test_kernel_client_v4),
		cmocka_unit_test(test_kernel_client_v6),
		cmocka_unit_test(test_our_client_v4),
		cmocka_unit_test(test_kernel_client_lossy),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
