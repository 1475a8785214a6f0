/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zmeshd, the control plane (istiod's Citadel + Pilot): one thread, one
 * epoll loop. Parts:
 *   main.c     options, the loop, timers, zmeshd's own serving certificate;
 *   h2srv.c    :15012, HTTP/2 over mutual TLS 1.3 with node bootstrap
 *              certificates (nodeid.h); requests go to the handlers below;
 *   certs.c    POST /v1/certs (CSR -> SVID for a pod on the caller's node),
 *              GET /v1/bundle;
 *   push.c     the store watcher, generations and deltas, the per-proxy
 *              table, GET /v1/config (the stream) and POST /v1/ack;
 *   view.c     which objects each proxy receives (its view);
 *   monitor.c  :15014 plain HTTP: /debug/syncz, /metrics, /ready.
 * docs/zmeshd.md has the wire formats.
 */
#ifndef ZMESHD_H
#define ZMESHD_H

#include <jansson.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "zmesh/buf.h"
#include "zmesh/ca.h"
#include "zmesh/nodeid.h"
#include "zmesh/sock.h"

#define ZD_MAX_CONNS 1024
#define ZD_MAX_BODY (64 * 1024)		/* request bodies (a CSR, an ACK) */
#define ZD_MAX_STREAM_BACKLOG (16 << 20)	/* unsent config bytes before a proxy is cut off */
#define ZD_HANDSHAKE_MS 10000
#define ZD_MAX_PROXIES_PER_NODE 256	/* names (<proxy>~<node>) kept per node */
#define ZD_LABEL_MAX (ZM_NODE_NAME_MAX + 66)	/* a node name, or <sa>.<ns> */

/* What a proxy receives (push.c, docs/zmeshd.md "Views"): decided by its credential. */
enum zd_view { ZD_VIEW_ZTUNNEL, ZD_VIEW_WAYPOINT, ZD_VIEW_GATEWAY };

enum zd_kind { ZD_LISTENER, ZD_CONN, ZD_MONITOR_LISTENER, ZD_MONITOR_CONN, ZD_INOTIFY, ZD_WATCH };

/* What an epoll event points at: every such struct starts with this. */
struct zd_ev {
	enum zd_kind kind;
};

struct zd_stream {
	int32_t id;
	char method[8];
	char path[128];
	char proxy[64];			/* x-zmesh-proxy */
	size_t hdr_bytes;
	struct zm_buf body;
	bool body_too_big;
	struct zm_buf out;		/* response body not yet taken by nghttp2 */
	bool out_end;			/* end the stream once out is drained */
	bool is_config;
	struct zd_stream *next;
};

struct zd_proxy;

struct zd_conn {
	struct zd_ev ev;
	struct zd *d;
	int fd;
	SSL *ssl;
	nghttp2_session *ng;
	bool h2_up, dead;
	struct zm_cp_peer who;		/* from the verified bootstrap certificate */
	char node[ZD_LABEL_MAX];	/* its label: the node, or <sa>.<ns> of a waypoint/gateway */
	char peer[ZM_SOCK_ADDRSTRLEN];
	char why[256];			/* why the handshake refused the peer */
	struct zm_buf wq;		/* ciphertext waiting for the socket */
	long long deadline;		/* handshake deadline (monotonic ms), 0 after */
	struct zd_stream *streams;
	struct zd_proxy *proxy;		/* set while this connection holds a config stream */
	int32_t config_stream;
	struct zd_conn *next;
};

struct zd_proxy {
	char name[64 + ZD_LABEL_MAX + 2];	/* "<proxy>~<node>" or "<role>~<sa>.<ns>" */
	char node[ZD_LABEL_MAX];
	enum zd_view view;
	char ns[64];			/* a waypoint's or gateway's namespace (Secrets, policies) */
	char sa[254];			/* a waypoint's account: its name (zmeshctl waypoint apply) */
	struct zd_conn *conn;		/* NULL: disconnected */
	json_t *view_sent;		/* key -> object: what this stream was sent, NULL: nothing yet */
	uint64_t uptodate;		/* store version its view was last brought up to */
	uint64_t sent, acked, nacked;
	bool has_sent, has_ack, has_nack;
	char nack_error[512];
	time_t connected_at, last_ack_at;
	struct zd_proxy *next;
};

struct zd_gen {
	uint64_t version;		/* 0: nothing loaded */
	json_t *objs;			/* "Kind/namespace/name" -> the object's JSON */
	json_t *pods_brief;		/* "Pod/ns/name" -> what a proxy of another node sees of it */
};

struct zd_stats {
	unsigned long long csr_issued, csr_denied, csr_invalid;
	unsigned long long handshake_fail, snapshots, deltas, acks, nacks, reloads, reload_errors;
	unsigned long long unchanged;	/* store versions that left a proxy's view as it was */
	unsigned long long ca_reloads;
};

struct zd {
	const char *store_dir, *ca_dir, *lab, *td;
	const char *watch_dir;		/* --watch-dir: manifests applied when they change */
	int wfd;
	struct zd_ev wev;
	long long watch_due;		/* when to read it (ms), 0: nothing pending */
	unsigned cert_ttl;
	int ep, lfd, mfd, ifd;
	struct zm_ca *ca;
	SSL_CTX *ctx;			/* current serving context (own SVID, bundle) */
	time_t own_renew_at;
	char ca_sig[512];		/* the CA files' identity (ino, size, mtime): reload on change */
	struct zd_ev lev, mev, iev;
	struct zd_conn *conns;
	int nconns;
	struct zd_proxy *proxies;
	struct zd_gen cur;
	uint64_t bad_version;		/* the last generation that failed to load */
	struct zd_stats st;
	volatile int stop;
};

long long zd_now_ms(void);

/* watch.c: --watch-dir. start: the inotify fd (0 when no directory), or <0. */
int zd_watch_start(struct zd *d);
void zd_watch_event(struct zd *d);
void zd_watch_poll(struct zd *d);	/* apply what settled */

/* h2srv.c */
int zd_tls_ctx(struct zd *d);		/* (re)build d->ctx with a fresh own SVID */
void zd_accept(struct zd *d);
void zd_conn_io(struct zd_conn *c, uint32_t events);
void zd_conn_close(struct zd_conn *c);
void zd_conn_flush(struct zd_conn *c);
/* Answer a request: status, content type, body (copied); ends the stream. */
int zd_respond(struct zd_conn *c, struct zd_stream *s, int status, const char *ctype,
	       const char *body, size_t len);
/* Start a streaming 200 response whose body is s->out, fed by zd_stream_send. */
#define zd_respond_lit(c, s, status, lit) \
	zd_respond(c, s, status, "application/json", lit, sizeof(lit) - 1)
int zd_respond_stream(struct zd_conn *c, struct zd_stream *s, const char *ctype);
int zd_stream_send(struct zd_conn *c, struct zd_stream *s, const char *data, size_t len);
void zd_sweep(struct zd *d);		/* handshake deadlines */

/* certs.c */
void zd_handle_certs(struct zd_conn *c, struct zd_stream *s);
void zd_handle_bundle(struct zd_conn *c, struct zd_stream *s);
/* Reopen the CA when its files changed (a root rotation step); push the bundle. */
void zd_ca_check(struct zd *d);

/* view.c: what of generation @g proxy @p receives (key -> object, new reference). */
json_t *zd_view(const struct zd_gen *g, const struct zd_proxy *p);
/* A Pod as proxies of other nodes see it: name, uid, labels, node, account,
 * IPs, and containers with ports: their names, port names and numbers only. */
json_t *zd_pod_brief(json_t *pod);

/* push.c */
int zd_store_init(struct zd *d);
void zd_store_event(struct zd *d);	/* inotify readable */
void zd_store_poll(struct zd *d);	/* periodic check of `current` */
void zd_handle_config(struct zd_conn *c, struct zd_stream *s);
/* Send a {"kind":"bundle"} message to every proxy (not ACKed). */
void zd_push_bundle(struct zd *d);
void zd_handle_ack(struct zd_conn *c, struct zd_stream *s);
void zd_stream_closed(struct zd_conn *c, struct zd_stream *s);
json_t *zd_syncz(struct zd *d);
void zd_free_state(struct zd *d);

/* monitor.c */
void zd_monitor_accept(struct zd *d);
void zd_monitor_io(struct zd_ev *ev, uint32_t events);
void zd_monitor_sweep(struct zd *d);	/* close connections idle for 10 s */

#endif
