/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ztunnel: the per-node L4 proxy. This first cut moves captured traffic as
 * plain TCP (no HBONE/mTLS yet: issue 4) so that the BPF capture has its
 * userspace half:
 *   - enrolment: pods added and removed over the ZDS socket (zds.h);
 *   - per enrolled pod, listeners made inside the pod's netns: 15001
 *     (outbound, 127.0.0.1), 15006 (inbound plaintext) and 15008 (HBONE,
 *     refused until HBONE exists), the last two registered for sk_lookup;
 *   - outbound: original destination from BPF, upstream socket made in the
 *     source pod's netns (so the pod's IP is the source), bytes relayed;
 *   - inbound: the destination the client dialled (getsockname), connected
 *     to from inside the pod over lo;
 *   - Prometheus on :15020, readiness on :15021 in the node's netns.
 * Threads (workers.c): the main thread runs the control side (enrolment,
 * config, certificates, zmeshd, admin and metrics endpoints); N workers (one
 * per CPU by default) each run their own event loop (evloop.h: epoll or
 * io_uring) over their own connections and HBONE pool, shared-nothing as Envoy's workers are. Every
 * pod listener exists once per worker (SO_REUSEPORT: the kernel spreads
 * connections, also those that sk_lookup assigns). Connections are pairs of
 * sockets with a bounded buffer per direction, half-close and resets passed
 * through.
 *
 * Shared state (the lab state, the pods table, the config, the pods'
 * credentials) is written only by the main thread and only under the write
 * side of z->lock; a worker holds the read side while it handles one batch
 * of events, never while it waits. So a worker sees one consistent snapshot
 * per batch, and the main thread may touch a worker's connections (a pod
 * leaving, draining) while it holds the write side. Counters are per worker
 * (one writer, summed at scrape) or atomic.
 */
#ifndef ZTUNNEL_H
#define ZTUNNEL_H

#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "zmesh/bpf_loader.h"
#include "zmesh/ca.h"
#include "zmesh/keymat.h"
#include "zmesh/tls.h"
#include "zmesh/config.h"
#include "zmesh/evloop.h"
#include "zmesh/l4policy.h"
#include "zmesh/lab.h"
#include "zmesh/spiffe.h"

#define ZT_MAX_PODS 256
#define ZT_MAX_WORKERS 64

enum zt_kind { ZT_L_OUTBOUND, ZT_L_INBOUND, ZT_L_HBONE, ZT_CONN, ZT_TUN, ZT_HTTP_LISTEN, ZT_HTTP, ZT_XDS,
	       ZT_ZDS_LISTEN, ZT_ZDS };

/* What the event loop hands back: every registered fd has one. */
struct zt_ev {
	enum zt_kind kind;
	int fd;
	void *owner;	/* struct zt_pod (listeners), struct zt_pair (conns) */
	int side;	/* ZT_CONN: 0 downstream, 1 upstream */
};

struct zt_pod {
	bool used;
	char id[160];		/* <ns>_<pod> */
	char uid[128];		/* from ZDS: the key of add/keep/del */
	char ns[64], name[64], workload[64], sa[64];
	int nsfd;		/* the pod's netns, passed over ZDS */
	char netns[256];	/* /proc/self/fd/<nsfd>, for what opens it by path */
	char cgroup[PATH_MAX];
	char host_if[16];	/* node side of the pod's veth (TC), "" when not known */
	struct zm_labels labels;
	struct in_addr ip;
	struct zt_ev l[3];	/* outbound, inbound, hbone: worker 0's (these are in the BPF maps) */
	struct zt_ev lw[ZT_MAX_WORKERS - 1][3];	/* workers 1..N-1: SO_REUSEPORT siblings */
	bool seen;		/* reconcile mark */
	struct zm_spiffe_id id_spiffe;
	/* This pod's workload certificate: rotatable contexts for both HBONE
	 * roles, the SVID record and when to renew it (certs.c). */
	struct zm_tls_creds *client_creds, *server_creds;
	struct zm_svid_cert svid;
	time_t renew_at;
	unsigned cert_gen;
	uint64_t bundle_sum;	/* of the trust bundle in its contexts; 0: none yet */
	bool cert_pending;	/* a CSR is out to zmeshd */
	struct zt *z;
	bool strict;		/* enrolled with STRICT (BPF drops plaintext that bypasses us) */
};

/* Rare events, counted from any thread (zt_count); opened/closed are per worker. */
struct zt_stats {
	uint64_t refused;
	uint64_t denied_authz, denied_mtls, renewed;
	uint64_t bundle_drained;	/* HBONE connections whose peer the new bundle no longer trusts */
};

#define zt_count(ctr) __atomic_fetch_add(&(ctr), 1, __ATOMIC_RELAXED)
#define zt_read(ctr) __atomic_load_n(&(ctr), __ATOMIC_RELAXED)
/* A counter with one writer (its worker): no locked instruction needed. */
#define zt_bump(ctr, n) __atomic_store_n(&(ctr), __atomic_load_n(&(ctr), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

struct zt_pair;
struct hconn;
struct stream;
struct zm_buf;

/*
 * One worker: a thread with its own event loop, its own connections (relay
 * pairs, HBONE connections and streams) and counters. Its objects are
 * touched by itself, or by the main thread holding z->lock for writing.
 */
struct zt_worker {
	struct zt *z;
	unsigned id;
	struct zm_loop *loop;	/* evloop.h: epoll or io_uring */
	pthread_t thread;
	bool started;
	uint64_t seen_epoch;	/* z->epoch when it last looked (stale listener events) */
	/* Counters (zt_bump by this worker, zt_read by anyone). */
	uint64_t opened, closed;		/* captured connections (relay pairs + HBONE streams) */
	uint64_t hconns[2], hconns_total[2], hstreams[2];	/* HBONE connections open / opened, streams opened; [server] */
	/* relay.c */
	struct zt_pair *graveyard;	/* closed during a batch, freed after it */
	/* tunnel.c */
	struct hconn *conns, *conn_graveyard;
	struct stream *stream_graveyard;
};

struct zt {
	char node[64], lab[16];
	int ep;			/* the main thread's epoll: admin, metrics, readiness, zmeshd */
	unsigned nworkers;	/* running: z->workers[0..nworkers) */
	struct zt_worker *workers;
	pthread_rwlock_t lock;	/* shared state: written by main under wrlock, read by workers per batch */
	unsigned wr_depth;	/* main thread only: zt_write_lock nests */
	uint64_t epoch;		/* bumped (under wrlock) when listeners close */
	int quit;		/* workers stop (atomic) */
	struct zm_bpf *bpf;
	struct zm_lab state;		/* the lab: this node (z->me), the sidecar's own pod */
	struct zm_lab_node *me;
	/* The cluster as routing sees it (services, pods, namespaces): &state
	 * without zmeshd, else &pushed, built from each pushed version only
	 * (empty until the first: a pod it does not name has no identity). */
	struct zm_lab *view;
	struct zm_lab pushed;
	bool pushed_once;		/* with zmeshd: a view arrived (readiness) */
	char node_netns[256];
	struct zt_pod pods[ZT_MAX_PODS];
	struct zt_ev metrics, ready;
	struct zt_stats st;
	bool fastpath;
	struct zm_ca *ca;	/* until zmeshd: the lab's CA, signing for our pods */
	unsigned cert_ttl;		/* seconds; 0: the CA's default (24h) */
	struct zt_ev admin;		/* localhost:15000 */
	struct zm_cfgclient *xds;	/* zmeshd's stream, or NULL (lab CA + store files) */
	struct zt_ev xds_ev;
	char xds_addr[64], xds_kind[140];
	char store_dir[PATH_MAX];	/* config: the lab's store until zmeshd pushes it */
	struct zm_cfg_set cfg;		/* the last good config */
	uint64_t cfg_version;
	unsigned pool_idle_ms;		/* an HBONE client connection without streams closes after */
	char sidecar_ns[64], sidecar_pod[64];	/* --sidecar: one pod, iptables capture */
	/* ZDS (zds.c): the enrolment socket and its one client. */
	struct zt_ev zds_listen, zds_client;
	char zds_path[108];
	bool zds_snapshot;		/* the current client sent snapshot_sent */
	bool enrolled_once;		/* a snapshot arrived (readiness) */
	uint64_t zds_requests, zds_refused;
};

/* workers.c */
/* Start @n workers (each with its event loop; z->nworkers once they run); 0
 * or -errno. Before the first pod enrols. */
int zt_workers_start(struct zt *z, unsigned n, enum zm_loop_kind kind);
/* Stop and join them, cutting their connections; after the pods closed. */
void zt_workers_stop(struct zt *z);
/* The default worker count: the online CPUs (at most ZT_MAX_WORKERS). */
unsigned zt_workers_default(void);
/* The write side of z->lock, main thread only; nests. */
void zt_write_lock(struct zt *z);
void zt_write_unlock(struct zt *z);
/* @p's listeners, one per worker (under the write lock); 0 or -errno. */
int zt_pod_listen(struct zt *z, struct zt_pod *p);
/* Close all of @p's listeners (idempotent). */
void zt_pod_unlisten(struct zt *z, struct zt_pod *p);
/* Connections open now, over all workers (drain). */
uint64_t zt_conns_open(struct zt *z);
/* Per-worker counters for /metrics and /config_dump. */
void zt_workers_metrics(struct zt *z, struct zm_buf *b);
void zt_workers_sum(struct zt *z, uint64_t *opened, uint64_t *closed);

/* pods.c */
/* Re-read the lab state: the cluster (services, other pods), not enrolment. */
int zt_cluster_reload(struct zt *z);
struct zm_zds_workload;
/*
 * Enrol a pod (ZDS add): takes @nsfd (closed on failure). A known uid with
 * the same pod, IP and netns takes the new labels; anything that does not
 * check out is refused with the field in @e.
 */
int zt_pod_add(struct zt *z, const struct zm_zds_workload *w, int nsfd, struct zm_error *e);
int zt_pod_del(struct zt *z, const char *uid, struct zm_error *e);
int zt_pod_keep(struct zt *z, const char *uid, struct zm_error *e);
/* A ZDS client connected: what it neither adds nor keeps before
 * snapshot_sent leaves the mesh then, BPF pins of earlier runs too. */
void zt_pods_snapshot_begin(struct zt *z);
void zt_pods_snapshot_end(struct zt *z);
/* A non-blocking TCP socket made inside @p's netns (it leaves from the pod). */
int zt_pod_socket(const struct zt_pod *p);
void zt_pods_close(struct zt *z);
const struct zm_lab_pod *zt_pod_by_ip(struct zt *z, struct in_addr ip);
/* Is @p in the mesh (so it talks HBONE)? */
bool zt_pod_meshed(struct zt *z, const struct zm_lab_pod *p);
void zt_pod_identity(const struct zm_lab_pod *p, struct zm_spiffe_id *id);

/* Close every pod's listeners (drain); the capture stays pinned. */
void zt_pods_stop_listening(struct zt *z);
/* Re-enrol pods whose STRICT state changed with the config. */
void zt_pods_restrict(struct zt *z);

struct zm_buf;

/* admin.c: localhost:15000, one request per connection. */
void zt_admin_serve(struct zt *z, int fd, const char *req);

/* xds.c: zmeshd (cfgclient.h). 1 started, 0 no control plane here, <0 error. */
int zt_xds_start(struct zt *z, const char *server);
void zt_xds_process(struct zt *z);
void zt_xds_stop(struct zt *z);
/* Ask zmeshd for @p's certificate; installed when the answer comes. */
int zt_xds_request_cert(struct zt *z, struct zt_pod *p);

/* certs.c */
/* Swap in @p's new key/chain (and bundle): new handshakes use them. */
int zt_cert_install(struct zt *z, struct zt_pod *p, const char *key, const char *chain, const char *bundle);
/* A new key + certificate for @p, swapped in for new connections. */
int zt_cert_issue(struct zt *z, struct zt_pod *p);
void zt_cert_drop(struct zt_pod *p);
/* zmeshd pushed trust bundle @bundle: every pod's contexts take it, then
 * pooled connections are re-checked against it (zt_tunnel_recheck). */
int zt_certs_bundle(struct zt *z, const char *bundle);
/* Renew what is due. */
void zt_certs_tick(struct zt *z);
/* The current context of @p's role (a reference: SSL_CTX_free it), or NULL. */
SSL_CTX *zt_pod_ctx(struct zt_pod *p, bool server);
void zt_certs_json(struct zt *z, struct zm_buf *b);
/* Every enrolled pod has its certificate (readiness). */
bool zt_certs_ready(struct zt *z);

/* policy.c */
void zt_policy_init(struct zt *z);
void zt_policy_free(struct zt *z);
/* Load the store's version when it moved: 1 loaded, 0 unchanged, <0 kept the old one. */
int zt_policy_reload(struct zt *z);
bool zt_pod_strict(struct zt *z, const struct zt_pod *p);
/*
 * May a connection from @src (verified @principal in Istio's form, NULL for
 * plaintext) reach pod @p on @port? Logs and counts a refusal.
 */
bool zt_policy_check(struct zt *z, const struct zt_pod *p, const char *principal, struct in_addr src,
		     uint16_t port, const char *conn_desc);
void zt_policy_metrics(struct zt *z, struct zm_buf *b);

/* relay.c (zt_accept, zt_conn_event, zt_reap: on worker @w) */
void zt_accept(struct zt_worker *w, struct zt_ev *l);
void zt_conn_event(struct zt_worker *w, struct zt_ev *ev, uint32_t events);
void zt_metrics_write(struct zt *z, int fd);
void zt_reap(struct zt_worker *w);
struct zt_series;
/* Per connection, for the access log. */
struct zt_conn_info {
	struct timespec start;
	char src[72], dst[72];
	uint64_t sent, received;	/* from the client's side */
	char trace[56];			/* the CONNECT's W3C traceparent, "" when none */
};
/* One JSON line per connection on stdout (the ztunnel log). */
void zt_access_log(const struct zt_series *s, const struct zt_conn_info *ci, const char *protocol,
		   const char *result);
struct zt_series *zt_series_get(const char *reporter, const char *sw, const char *sn,
				const char *dw, const char *dn, bool mtls, const char *sp, const char *dp);
void zt_series_count(struct zt_series *s, int opened, int closed, uint64_t sent, uint64_t received);

/*
 * tunnel.c: HBONE, pooled. Outbound: a captured connection to @dst, as a
 * stream on a connection from @p to @dpod's 15008 and identity (pooled, or
 * a new one): the destination pod itself, or the waypoint in front of the
 * Service @dst (then :authority is the service address and the waypoint
 * picks the endpoint).
 */
void zt_tunnel_out(struct zt_worker *w, struct zt_pod *p, int fd, const struct sockaddr_in *dst,
		   const struct zm_lab_pod *dpod);
/* Inbound: a connection accepted on a pod's 15008. */
void zt_tunnel_in(struct zt_worker *w, struct zt_pod *p, int fd);
void zt_tunnel_event(struct zt_worker *w, struct zt_ev *ev, uint32_t events);
void zt_tunnel_reap(struct zt_worker *w);
/* Close connections idle for longer than z->pool_idle_ms (every loop turn). */
void zt_tunnel_tick(struct zt_worker *w);
/* @p leaves: its connections (on every worker) take no new stream (live
 * ones finish). Under the write lock. */
void zt_tunnel_pod_gone(struct zt *z, struct zt_pod *p);
/* The trust bundle of @p (NULL: every pod) changed: connections whose peer
 * no longer verifies against it take no new stream (drain); new streams
 * then re-handshake against the new bundle (SECURITY.md, istio/istio#59714).
 * Under the write lock. */
void zt_tunnel_recheck(struct zt *z, const struct zt_pod *p);
/* Stopping: no connection takes a new stream (servers answer 503), idle ones
 * close. Under the write lock. */
void zt_tunnel_drain(struct zt *z);
/* Close all of @w's HBONE connections (the worker stopped). */
void zt_tunnel_close_all(struct zt_worker *w);
/* zmesh_ztunnel_hbone_connections / _streams_total for /metrics. */
void zt_tunnel_metrics(struct zt *z, struct zm_buf *b);

/* zds.c: the enrolment socket (zds.h). */
int zt_zds_start(struct zt *z);
void zt_zds_event(struct zt *z, struct zt_ev *ev, uint32_t events);
void zt_zds_stop(struct zt *z);
void zt_zds_metrics(struct zt *z, struct zm_buf *b);

/* sidecar.c: `ztunnel --sidecar NS/POD`, run in that pod's netns with
 * iptables REDIRECT capture (the benchmarks' sidecar mode); no BPF. */
#define ZT_SIDECAR_GID ZM_LAB_PROXY_GID	/* the pod's REDIRECT rules skip this group */
int zt_sidecar_init(struct zt *z, const char *ns_pod);
/* True for every pod in node mode, only our pod in sidecar mode. */
bool zt_sidecar_wants(const struct zt *z, const struct zm_lab_pod *lp);
/* Enrol the sidecar's own pod (no ZDS: a sidecar serves the pod it runs in). */
int zt_sidecar_enrol(struct zt *z);
/* The original destination of a connection accepted on 15001 (BPF map, or
 * SO_ORIGINAL_DST in sidecar mode) and on 15006 (getsockname, or
 * SO_ORIGINAL_DST). */
int zt_orig_dst(struct zt *z, int fd, struct sockaddr_in *dst);
int zt_inbound_dst(struct zt *z, int fd, struct sockaddr_in *dst);

#endif
