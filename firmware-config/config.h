/*
 * sluice configuration: the in-memory form of the YAML file.
 *
 * The libcyaml schema in config.c is the single source of truth for the file
 * format; this header is what the rest of sluice reads after loading. Loading
 * resolves every cross-reference (listener -> backend), parses every address,
 * applies defaults, and records the line of every item, so that any later
 * error (a certificate that does not load, a port already in use) can still
 * name the file, the line and the key.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The protocols, from the protocol table (dataplane/proto/proto.def). */
enum cfg_proto {
#define P(e, name, ops) CFG_PROTO_##e,
#include "proto/proto.def"
#undef P
};

enum cfg_tls {
	CFG_TLS_OFF,      /* plaintext only, STARTTLS not offered */
	CFG_TLS_STARTTLS, /* STARTTLS offered, plaintext allowed (RFC 7435) */
	CFG_TLS_REQUIRED, /* STARTTLS offered, mail/auth refused before it */
	CFG_TLS_IMPLICIT, /* TLS from the first byte (465, 993, 995) */
};

enum cfg_proxy {
	CFG_PROXY_NONE,
	CFG_PROXY_V1,
	CFG_PROXY_V2,
};

/* Cipher policies (tls/policy.def holds what each one is). */
enum cfg_policy {
	CFG_POLICY_MODERN,       /* TLS 1.3 only */
	CFG_POLICY_INTERMEDIATE, /* TLS 1.2+, ECDHE and AEAD (the default) */
	CFG_POLICY_LEGACY,       /* TLS 1.0+, CBC and RSA key exchange too */
};
#define CFG_POLICY_COUNT 3

enum cfg_log_target {
	CFG_LOG_STDERR,
	CFG_LOG_SYSLOG,
};

/* Timeouts in seconds; 0 in a listener means "inherit the global value". */
struct cfg_timeouts {
	unsigned plaintext; /* idle before TLS / in the plaintext dialogue */
	unsigned handshake; /* whole TLS handshake */
	unsigned idle;      /* relay idle, both directions silent */
	unsigned plaintext_deadline; /* the whole of sluice's own dialogue
				(from accept, before TLS and inside TLS
				until the backend is needed), whatever
				the client sends; default 120 */
};

/* The quirks of the quirk table (dataplane/quirk/quirk.def, a list with no
 * dataplane types in it), numbered in its order: the dataplane's enum
 * quirk_id has the same values. */
enum cfg_quirk {
#define Q(n, w, act, why, h) CFG_QUIRK_##n,
#include "quirk/quirk.def"
#undef Q
	CFG_QUIRK__COUNT
};

enum cfg_quirk_action {
	CFG_QUIRK_ALLOW,  /* work around it, counted (`allow`) */
	CFG_QUIRK_CLOSE,  /* close the connection (`close`) */
	CFG_QUIRK_FIXED,  /* no switch: counted, the rule in the code applies */
};

/* Per-listener actions of the quirks (DESIGN.md §3), `quirks:` in the file:
 * one key per quirk of the table whose action is not FIXED, defaults from
 * the table. */
struct cfg_quirks {
	enum cfg_quirk_action action[CFG_QUIRK__COUNT]; /* by enum cfg_quirk */
};

struct cfg_cert {
	char *cert;    /* PEM: leaf first, then the chain */
	char *key;     /* PEM private key */
	unsigned line; /* line of this entry in the file */
};

/* A cert set: certificates for some host names, one per key type. */
struct cfg_cert_set {
	char *name;
	char **names;             /* SNI names, exact or "*.example.net";
				     none: the names the certificates carry */
	unsigned n_names;
	char **prefer;            /* key types, cheapest first: "ecdsa-p256",
				     "ed25519", "ecdsa-p384", "rsa" */
	unsigned n_prefer;
	struct cfg_cert *certs;
	unsigned n_certs;
	unsigned line;
};

/* An IPv4 or IPv6 network, "192.0.2.0/24". */
struct cfg_net {
	int family;               /* AF_INET, AF_INET6 */
	unsigned prefix;
	unsigned char addr[16];   /* network order; host bits zero */
};

/* Clients from these networks get this policy instead of the listener's. */
struct cfg_policy_rule {
	char **networks;          /* as written */
	unsigned n_networks;
	enum cfg_policy policy;
	unsigned line;
	struct cfg_net *nets;     /* resolved by the loader, n_networks */
};

/* Session tickets (RFC 5077, RFC 8446 4.6.1). */
struct cfg_tickets {
	bool enabled;             /* default true */
	char *key_file;           /* keys shared by a fleet: HAProxy's
				     tls-ticket-keys (base64 lines) or nginx's
				     80-byte binary keys (tls/ticket_file.c);
				     re-read when it changes; refused if group
				     or others may use it. NULL: keys made by
				     sluice-control, or the dataplane */
	unsigned rotate;          /* seconds between new keys (no key_file);
				     default 3600 */
	unsigned lifetime;        /* seconds a ticket is honoured; default 7200 */
	char *export_file;        /* sluice-control writes the keys it makes
				     there, with their windows, for the other
				     boxes' tickets.key_file; NULL: not */
	unsigned key_file_line;   /* of tickets.key_file, for messages */
};

/* The control plane (docs/control.md): sluice-control's admin socket,
 * the dataplane's socket that sluice-control talks to, who may ask, and
 * the limits of drain and certificate changes. */
struct cfg_control {
	char *socket;             /* sluicectl -> sluice-control; default
				     /run/sluice/control.sock (0600, in a 0750
				     folder made if missing) */
	char *dataplane_socket;   /* sluice-control -> sluice; default
				     /run/sluice/dataplane.sock (0600) */
	char *admin_group;        /* besides root, members of this group may use
				     the admin socket; NULL: root only */
	unsigned drain_deadline;  /* seconds a drain (and SIGTERM) lets busy
				     sessions finish; default 60 */
	unsigned drain_grace;     /* seconds a drain keeps accepting while
				     health already says draining (a fleet's
				     route withdrawal); default 0 */
	unsigned cert_margin_days; /* a change that brings a certificate whose
				     notAfter is closer is refused unless forced;
				     default 14 */
	unsigned fingerprint_window; /* seconds of recorded ClientHellos that
				     "who would break" looks at; default 86400 */
	unsigned ticket_keys;     /* keys kept to open tickets: the sealing one
				     and the N-1 before it; default 3 */
	char *metrics;            /* sluice-control's Prometheus address
				     (docs/metrics.md): "HOST:PORT" or "off";
				     default 127.0.0.1:9925 */
	bool metrics_on;          /* metrics is not "off" */
	struct sockaddr_storage metrics_addr; /* parsed, when metrics_on */
	socklen_t metrics_len;
};

/* Per-client-address limits (DESIGN.md §5). IPv4 clients count per
 * address, IPv6 clients per limits.ipv6_prefix. 0: no limit. */
struct cfg_addr_limits {
	unsigned sessions;        /* concurrent sessions; default 50 (Postfix's
				     smtpd_client_connection_count_limit) */
	unsigned rate;            /* new connections per minute; default 600 */
	unsigned handshakes;      /* full TLS handshakes (not resumed) per
				     minute; default 300 */
};

/* Limits that hold on the open Internet (docs/configuration.md "limits"). */
struct cfg_limits {
	unsigned sessions_per_core; /* open sessions per core; default 20000 */
	struct cfg_addr_limits per_address; /* listeners[].limits may override */
	unsigned ipv6_prefix;     /* IPv6 clients are counted per this prefix;
				     default 64 */
	char **exempt;            /* networks with no per-address limits (the
				     operator's own), as written */
	unsigned n_exempt;
	unsigned junk_commands;   /* commands that make no progress (NOOP, RSET,
				     HELP, unknown verbs, errors) in sluice's own
				     dialogue before TLS or the backend; then the
				     protocol's refusal; default 100 (Postfix's
				     smtpd_junk_command_limit); 0: none */
	unsigned stress_percent;  /* stress mode when a core's sessions or the
				     process's descriptors pass this share of
				     their limit; default 80 */
	unsigned stress_plaintext; /* timeouts.plaintext under stress, s; default 10 */
	unsigned stress_handshake; /* timeouts.handshake under stress, s; default 5 */
	unsigned nofile;          /* RLIMIT_NOFILE to set at start; 0: what the
				     limits need (sessions_per_core x cores x 2
				     plus a reserve) */
	unsigned line;
	/* resolved by the loader */
	struct cfg_net *exempt_nets; /* n_exempt */
};

/* TLS from sluice to a backend (docs/configuration.md "backend TLS"). */
enum cfg_be_tls {
	CFG_BE_TLS_OFF,      /* plaintext (the default) */
	CFG_BE_TLS_ON,       /* STARTTLS when the backend offers it, else
				plaintext; once TLS is tried, a failure is a
				refusal, never plaintext */
	CFG_BE_TLS_REQUIRED, /* TLS, verified, or the client gets the
				protocol's temporary error */
};

enum cfg_be_tls_mode {
	CFG_BE_TLS_STARTTLS, /* the protocol's STARTTLS/STLS (the default) */
	CFG_BE_TLS_IMPLICIT, /* TLS from the first byte (465, 993, 995) */
};

/* TLS protocol versions, in order (OpenSSL's TLS1_x_VERSION by tls/). */
enum cfg_tls_version {
	CFG_TLS_V1_0,
	CFG_TLS_V1_1,
	CFG_TLS_V1_2,
	CFG_TLS_V1_3,
};

#define CFG_PIN_LEN 32            /* SHA-256 */
#define CFG_FALLBACK_MEMORY_DEFAULT 3600

struct cfg_backend_tls {
	enum cfg_be_tls tls;
	enum cfg_be_tls_mode mode;   /* `tls_mode` */
	char *server_name;        /* SNI and the name checked against the
				     certificate (RFC 6125); required with
				     ca_file */
	char *ca_file;            /* PEM trust anchors for the backend's chain */
	char *pin_sha256;         /* base64 SHA-256 of the DER
				     SubjectPublicKeyInfo (RFC 7469 2.4);
				     the pin alone decides (as DANE-EE 3 1 1,
				     RFC 7671 5.1): no chain, no name check */
	char *client_cert;        /* PEM, sent when the backend asks */
	char *client_key;
	enum cfg_tls_version min_version; /* default TLSv1.2 */
	unsigned fallback_memory; /* seconds a server that needed the
				     conservative hello gets it straight away;
				     default 3600; 0: not remembered */
	/* resolved by the loader */
	unsigned char pin[CFG_PIN_LEN];
	bool has_pin;
};

struct cfg_backend {
	char *name;
	enum cfg_proto protocol;
	enum cfg_proxy proxy;
	char **servers;           /* as written: "host:port", "[v6]:port" */
	unsigned n_servers;
	unsigned connect_timeout; /* seconds, default 5 */
	unsigned health_interval; /* seconds between probes, default 10 */
	struct cfg_backend_tls tls; /* flat keys of the backend's mapping */
	unsigned line;
	/* resolved by the loader, n_servers entries */
	struct sockaddr_storage *addrs;
	socklen_t *addrlens;
};

#define CFG_DETECT_IMPLICIT_MS     200  /* default on tls: required */
#define CFG_DETECT_IMPLICIT_MAX_MS 5000

/* A listener's ftp: mapping (protocol ftp, RFC 4217; docs/ftp.md). */
struct cfg_ftp {
	char *data_ports;         /* "44100-44199": the passive data ports */
	char *data_address;       /* the address sluice's data listeners bind
				     and its 227 answers name: of the
				     listener's family (IPv6: EPSV only);
				     default: the listener's own address */
	bool require_resumption;  /* a data connection's TLS session must
				     resume the control connection's;
				     default true */
	bool require_ems;         /* refuse TLS <= 1.2 without the extended
				     master secret (RFC 7627); default false */
	bool allow_prot_c;        /* PROT C (clear data) accepted; default
				     false: 534 */
	unsigned data_timeout;    /* s a data listener waits for its
				     connection; default 30 */
	/* resolved by the loader */
	unsigned port_lo, port_hi;
	struct sockaddr_storage data_addr;
};

struct cfg_listener {
	char *name;
	char *address;            /* as written: "127.0.0.1:2525", "[::1]:25" */
	enum cfg_proto protocol;
	enum cfg_tls tls;
	char *backend;            /* name of a backend */
	char *hostname;           /* banner / EHLO name; default: global hostname */
	struct cfg_cert *certs;   /* a cert set of this listener's own; with
				     neither certs nor cert_sets a self-signed
				     pair is generated */
	unsigned n_certs;
	char **cert_sets;         /* names of cert sets; the first is the
				     default when SNI matches none */
	unsigned n_cert_sets;
	enum cfg_policy policy;   /* default intermediate */
	struct cfg_policy_rule *policy_by_network;
	unsigned n_policy_rules;
	struct cfg_timeouts timeouts; /* after loading: no zero left */
	struct cfg_addr_limits limits; /* after loading: the global
				     limits.per_address where not given */
	struct cfg_quirks quirks;
	unsigned detect_implicit_ms;  /* STARTTLS listener: hold the greeting
					 about two round trips, at most this long;
					 a ClientHello meanwhile switches the
					 connection to implicit TLS (iOS Mail on
					 587). 0: greet at once. Default
					 CFG_DETECT_IMPLICIT_MS on tls: required,
					 0 on starttls */
	bool trace_header;        /* SMTP: a Received: line of sluice's own
				     hop (with the TLS facts) at the start of
				     each message relayed; default false */
	struct cfg_ftp ftp;       /* protocol ftp: the data connections */
	unsigned line;
	/* resolved by the loader */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct cfg_backend *be;   /* points into cfg->backends */
	struct cfg_cert_set **sets; /* n_cert_sets, into cfg->cert_sets */
};

/* One DPDK port of the native stack (DESIGN.md §6). */
struct cfg_native_port {
	char *device;             /* "net_tap0,iface=sl0" (a vdev, with its
				     arguments) or "0000:03:00.0" (PCI) */
	char *mac;                /* "02:00:5e:00:53:01"; NULL: the device's */
	char *ipv4;               /* "192.0.2.10/24" */
	char *ipv4_gateway;       /* "192.0.2.1"; NULL: on-link only */
	char *ipv6;               /* "2001:db8::10/64" */
	char *ipv6_gateway;       /* usually link-local "fe80::1" */
	unsigned mtu;             /* IP MTU, default 1500 */
	unsigned line;
	/* resolved by the loader */
	char name[64];            /* the DPDK port name: device before the first comma */
	bool pci;                 /* device is a PCI address (EAL -a), else --vdev */
	bool has_mac, has_ip4, has_gw4, has_ip6, has_gw6;
	unsigned char mac_addr[6];
	unsigned char ip4[4], gw4[4];
	unsigned char ip6[16], gw6[16];
	unsigned ip4_prefix, ip6_prefix;
};

/* The DPDK environment (EAL) the native stack runs in. */
struct cfg_native_eal {
	bool hugepages;           /* default true; false: --no-huge (anonymous memory) */
	unsigned memory_mb;       /* -m; 0: EAL's default (with hugepages: what is free) */
	bool no_pci;              /* --no-pci; default: true unless a port is PCI */
	char **args;              /* more EAL arguments, passed as written */
	unsigned n_args;
};

enum cfg_native_cc {
	CFG_CC_NEWRENO,
	CFG_CC_CUBIC,
};

/* A static neighbour: ARP and NDP never change it. */
struct cfg_native_neigh {
	char *address;            /* "192.0.2.1" or "fe80::1" */
	char *mac;                /* "02:00:5e:00:53:01" */
	unsigned line;
	/* resolved by the loader */
	bool v6;
	unsigned char addr[16];
	unsigned char mac_addr[6];
};

/* Present: sluice runs its own TCP/IP on DPDK ports instead of the kernel's. */
struct cfg_native {
	struct cfg_native_eal eal;
	struct cfg_native_port *ports;
	unsigned n_ports;
	unsigned *cpus;           /* pin core i to cpus[i]; none: not pinned */
	unsigned n_cpus;
	unsigned idle_polls;      /* empty polls in a row before a pause (default 64) */
	unsigned idle_pause_us;   /* the pause; 0: busy-poll (default 100) */
	unsigned mbufs;           /* per port; default 4096 + 2048 per core */
	enum cfg_native_cc cc;    /* default cubic */
	unsigned max_conns;       /* TCP connections per core and port, TIME_WAIT not counted (65536) */
	unsigned syn_backlog;     /* half-open connections per listener before SYN cookies (128) */
	struct cfg_native_neigh *neighbours; /* static ARP/NDP entries */
	unsigned n_neighbours;
	unsigned line;
};

struct cfg_files;

struct cfg {
	char *path;               /* file name used in messages */
	char *hostname;           /* default: gethostname() */
	char *user;               /* after binding, run as this user; NULL: stay */
	bool run_as_root;         /* without user:, root may run the dataplane
				     only when this says so; default false */
	unsigned cores;           /* dataplane threads, default 1 */
	unsigned workers;         /* TLS handshake threads, default 1; 0: each
				     core runs its own handshakes (inline) */
	enum cfg_log_target log_target; /* default stderr */
	struct cfg_timeouts timeouts;   /* defaults 300 / 60 / 600 */
	struct cfg_listener *listeners;
	unsigned n_listeners;
	struct cfg_backend *backends;
	unsigned n_backends;
	struct cfg_cert_set *cert_sets;
	unsigned n_cert_sets;
	struct cfg_tickets tickets;
	unsigned session_cache;   /* session-ID cache entries shared by all
				     cores; 0: none. Default 20480 */
	struct cfg_native *native; /* NULL: the kernel stack */
	struct cfg_control control;
	struct cfg_limits limits;
	/* Not in the file: where the certificates and keys it names are read
	 * from (files.h); NULL: the disk. Set by whoever loads them. */
	const struct cfg_files *files;
};

/*
 * Load and validate a configuration file. On success *out owns everything and
 * 0 is returned. On failure a message of the form
 *   "FILE:LINE: KEY: reason"
 * (KEY as a path, e.g. "listeners[1].tls") is written to err and a negative
 * errno is returned; nothing is left allocated.
 */
int cfg_load_file(const char *path, struct cfg **out, char *err, size_t errlen);

/* The same for a document held in memory; name is used in messages. */
int cfg_load_string(const char *yaml, size_t len, const char *name,
		    struct cfg **out, char *err, size_t errlen);

void cfg_free(struct cfg *c);

/* The embedded default configuration (examples/quickstart.yaml, see meson.build). */
extern const char cfg_default_yaml[];
extern const size_t cfg_default_yaml_len;

/* Names of the enum values as written in the file. */
const char *cfg_proto_name(enum cfg_proto p);
const char *cfg_tls_name(enum cfg_tls t);
const char *cfg_policy_name(enum cfg_policy p);
const char *cfg_be_tls_name(enum cfg_be_tls t);
const char *cfg_tls_version_name(enum cfg_tls_version v);
/* The key of quirk q under `quirks:` ("bare_lf"), and its action's name
 * ("allow", "close", or "fixed" for a quirk with no switch). */
const char *cfg_quirk_key(enum cfg_quirk q);
const char *cfg_quirk_action_name(enum cfg_quirk_action a);

/* Is the client at sa exempt from the per-address limits? */
bool cfg_limits_exempt(const struct cfg_limits *lim, const struct sockaddr *sa);

/* The policy for a client at sa (the listener's, or a rule's). */
enum cfg_policy cfg_policy_for(const struct cfg_listener *l, const struct sockaddr *sa);

/* Parse "192.0.2.0/24", "2001:db8::/32" or a bare address; 0 or -EINVAL. */
int cfg_parse_net(const char *s, struct cfg_net *n);
bool cfg_net_contains(const struct cfg_net *n, const struct sockaddr *sa);
const char *cfg_proxy_name(enum cfg_proxy p);
const char *cfg_cc_name(enum cfg_native_cc cc);

/*
 * Parse "a.b.c.d:port", "[v6]:port" or "host:port" (host resolved with
 * getaddrinfo, numeric preferred) into ss. Returns 0 or a negative errno.
 */
int cfg_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
