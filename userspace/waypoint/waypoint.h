/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The waypoint: an HTTP/1.1 L7 proxy around the engine in zmesh/l7route.h.
 *
 * One thread per downstream connection (blocking sockets with poll()
 * deadlines), so timeouts, retries and fault delays are plain sequential
 * code; docs/waypoint.md says why and what it costs. Config and the lab view
 * form one immutable snapshot, swapped on SIGHUP; a request holds a
 * reference for its whole life.
 */
#ifndef ZMESH_WAYPOINT_H
#define ZMESH_WAYPOINT_H

#include <llhttp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "zmesh/buf.h"
#include "zmesh/http_safe.h"
#include "zmesh/l7route.h"
#include "zmesh/lab.h"

#define WP_MAX_HEADERS 100		/* header fields per message: more is 431 */
#define WP_MAX_HEADER_BYTES (60 * 1024)	/* request line + headers: more is 431 (Envoy: 60 KiB) */
#define WP_RETRY_BUFFER (64 * 1024)	/* request body kept for a retry (Envoy: per_request_buffer_limit_bytes) */
#define WP_STREAM_BUF (64 * 1024)	/* an answer queued between two threads, per stream */
#define WP_H2_STREAM_WINDOW (256 * 1024)	/* HTTP/2 receive window per stream ... */
#define WP_H2_CONN_WINDOW (8 * 1024 * 1024)	/* ... and per connection: what a client may have in flight */
#define WP_MAX_CONNS 4096

struct wp_opts {
	const char *listen;		/* ADDR:PORT */
	const char *config;		/* FILE or DIR (a store dir with `current`, or manifests) */
	const char *lab;		/* lab name for the service view */
	const char *name;		/* the waypoint's name (Gateway targetRefs) */
	const char *access_log;		/* file, "-" = stdout (default), "off" */
	int metrics_port;		/* 15020; 0 = off */
	int ready_port;			/* 15021; 0 = off */
	int header_timeout_ms;		/* slowloris: complete headers within this */
	int idle_timeout_ms;		/* keep-alive idle */
	enum zm_istio_path_normalization path_norm;
	bool peer_identity;		/* derive the source pod from the lab by peer IP */
	int hbone_port;			/* 15008; 0 = off */
	const char *ca_dir;		/* default: the lab's CA */
	const char *identity;		/* "ns/sa"; default from POD_NAMESPACE/POD_SERVICE_ACCOUNT */
	const char *jwks_ca;		/* https jwksUri: trust these roots (PEM); NULL: the system store */
	int jwks_refresh_s;		/* refetch jwksUri documents this often (600) */
	const char *zipkin;		/* Zipkin v2 collector URL (http(s)://host:port/api/v2/spans); NULL: off */
	double trace_sampling;		/* percent of new traces sampled (Istio's default 1.0) */
	/* gateway mode (gateway.c) */
	bool gateway;
	const char *gateway_ns;		/* credentialName Secrets live here; POD_NAMESPACE or istio-system */
	struct zm_labels gateway_labels;	/* this gateway's labels (Gateway.spec.selector) */
};

/* One config generation: the engine plus the lab it was built from. */
struct wp_snap {
	atomic_int ref;
	struct zm_l7 *l7;
	struct zm_lab lab;
	bool have_lab;
	uint64_t version;
};

struct wp_snap *wp_snap_get(void);
void wp_snap_put(struct wp_snap *s);
/* (Re)load config and lab; on failure the current snapshot stays. */
int wp_reload(const struct wp_opts *o);
struct zm_cfg_set;
/* Build and swap in a snapshot from @set (its objects are taken); a
 * failure keeps the current one and says why (a NACK's reason). */
int wp_build(const struct wp_opts *o, struct zm_cfg_set *set, uint64_t version, char *why, size_t whysz);

/*
 * zmeshd as the config and certificate source (xds.c, docs/waypoint.md):
 * start follows @server with the bootstrap credential in @cred_dir and
 * asks for ns/@ns/sa/@sa's certificate when o->hbone_port is set; fd is
 * one descriptor to poll for reading, process does what is due; ready once
 * the first config is in and the certificate (if wanted) is installed;
 * rebuild makes the snapshot again from the last accepted config.
 */
int wp_xds_start(const struct wp_opts *o, const char *server, const char *cred_dir, const char *ns,
		 const char *sa);
int wp_xds_fd(void);
void wp_xds_process(void);
bool wp_xds_on(void);
bool wp_xds_ready(void);
int wp_xds_rebuild(void);
void wp_xds_stop(void);

/* ---- HTTP/1 messages (http1.c) --------------------------------------------- */

struct wp_span {
	uint32_t noff, nlen, voff, vlen;
};

/* A parsed message; names and values live in hb. */
struct wp_msg {
	llhttp_t p;
	struct zm_buf method, url, status_text, hb, body;
	struct zm_buf tb;		/* chunked trailers' bytes: hb must not move under views of the head */
	struct wp_span hs[WP_MAX_HEADERS];
	size_t nh, hdr_bytes;
	size_t nhead;			/* fields of the head; [nhead, nh) are chunked trailers */
	bool in_value, headers_done, complete;
	bool too_big, body_too_big, bad_header;
	bool head_response;		/* response to HEAD: no body */
	bool prev_lf, prev_cr, hdr_end;	/* line-ending scan state */
	bool interim;			/* a 1xx response ended: scan the next header block */
	bool started;			/* scan: a byte other than CR/LF seen (empty lines may lead) */
	size_t body_limit;
	int status;
	struct zm_http_field f[WP_MAX_HEADERS];	/* views into hb, built by wp_msg_fields */
};

void wp_msg_init(struct wp_msg *m, llhttp_type_t type, size_t body_limit);
void wp_msg_reset(struct wp_msg *m);
void wp_msg_free(struct wp_msg *m);
/*
 * Feed bytes. Returns how many were consumed (>= 0): parsing stops after a
 * complete message (m->complete). -EBADMSG on a parse error (m->too_big,
 * m->body_too_big tell 431 / 413), -ENOMEM.
 */
long wp_msg_feed(struct wp_msg *m, const char *d, size_t n);
/* For a close-delimited response: the peer closed. 0 when that ends it. */
int wp_msg_eof(struct wp_msg *m);
/* Build m->f from the spans of the head (not the trailers); returns the count. */
size_t wp_msg_fields(struct wp_msg *m);
/* A complete message's chunked trailer fields (names lower case, checked
 * like the head's) as views into it, at most @max; returns the count. */
size_t wp_msg_trailers(const struct wp_msg *m, struct zm_http_field *out, size_t max);
/* Joined value of header @name, or NULL; @len set. Uses @buf. */
const char *wp_msg_header(struct wp_msg *m, const char *name, char *buf, size_t bufsz, size_t *len);

const char *wp_reason(int code);
/* True for hop-by-hop fields a proxy never forwards. */
bool wp_hop_by_hop(const char *name, size_t len);

/* ---- the proxy (proxy.c) -------------------------------------------------------- */

struct sockaddr_storage;

/* An owned header list (lower-case names), in order. */
struct hkv {
	char *n, *v;
};

struct hlist {
	struct hkv *v;
	size_t n, cap;
};

void hl_free(struct hlist *h);
void hl_del(struct hlist *h, const char *n);

#define UP_POOL 16

struct up {
	int fd;
	char addr[64];
	int port;
	int64_t uses;			/* requests it has carried */
	int64_t born;			/* connected (monotonic ns) */
	int64_t expires;		/* idleTimeout / maxConnectionDuration: not reused from then; 0 never */
};

/*
 * Close the connections of @pool (UP_POOL entries, under @mu when not
 * NULL) that are past their idleTimeout / maxConnectionDuration; returns
 * the earliest expiry of those left (monotonic ns, 0: none), so a front
 * waiting for its client wakes to close them then.
 */
int64_t wp_up_sweep(struct up *pool, pthread_mutex_t *mu);

/* A downstream connection (either front end) and its upstream pool. */
struct conn {
	int fd;
	char peer[64];
	int family;
	uint8_t addr[16];
	bool mtls;			/* arrived over HBONE */
	char principal[640];		/* HBONE: the TLS peer's verified SPIFFE ID */
	bool tcp;			/* HBONE stream to a TCP service port: relay, no HTTP */
	char tcp_vip[64];
	int tcp_port;
	struct wp_msg req;
	struct zm_buf in;
	struct up pool[UP_POOL];
	int gw_port;			/* gateway mode: the Gateway server port it came in on */
	bool gw_tls;			/* ... and TLS was terminated */
	char gw_sni[256];
	struct up *shared_pool;		/* HTTP/2 stream workers: the connection's pool ... */
	pthread_mutex_t *pool_mu;	/* ... under this lock */
	uint64_t nreq;
};

/*
 * Bodies stream: a front end hands wp_serve() its request body as a
 * wp_src and takes the answer through a wp_sink, so neither is ever held
 * whole. Back-pressure: the source is read only as the upstream takes
 * bytes, the sink blocks (with a deadline) while the client does not read.
 */
struct wp_src {
	/* Non-blocking: >0 bytes, 0 end of body, -EAGAIN (poll @fd for POLLIN), <0 the client failed. */
	long (*read)(struct wp_src *s, char *buf, size_t n);
	/* The request's trailers, once read() said 0 (NULL or empty: none);
	 * names lower case, checked by the front. NULL: the front has none. */
	const struct hlist *(*trailers)(struct wp_src *s);
	int fd;
	int64_t len;			/* the client's content-length; -1 unknown */
};

struct wp_resp;
struct hlist;

struct wp_sink {
	/* The answer's head: rs->status, rs->h (no framing fields); @len the body length or -1. */
	int (*head)(struct wp_sink *k, const struct wp_resp *rs, int64_t len);
	/* All of @d, blocking while the client is slow, until @deadline (CLOCK_MONOTONIC ns). */
	int (*data)(struct wp_sink *k, const char *d, size_t n, int64_t deadline);
	/* The end, with trailers (may be NULL or empty; dropped where the protocol has none). */
	int (*end)(struct wp_sink *k, const struct hlist *trailers);
	/* Cut the answer short (the upstream failed after the head went out): reset / close. */
	void (*abort)(struct wp_sink *k);
};

/* A request as a front end hands it over. */
struct wp_req {
	const char *method;		/* NUL-terminated */
	const char *target;		/* request-target / :path */
	size_t target_len;
	const char *authority;		/* HTTP/2 :authority; NULL: the Host field */
	struct zm_http_field *f;	/* fields (no pseudo-headers); stripped in place */
	size_t nf;
	struct wp_src *src;		/* the body; NULL: none */
	struct wp_sink *sink;		/* where a forwarded answer streams; NULL: buffer it in rs */
	bool framed_body;		/* the client sent Content-Length/chunked/DATA */
	const char *proto;		/* "HTTP/1.1", "HTTP/2", "TCP" */
	uint64_t bytes_in;		/* TCP: bytes from the client (no body buffer) */
};

enum try_result { TRY_OK, TRY_CONNECT_FAIL, TRY_RESET, TRY_TIMEOUT, TRY_BAD, TRY_TOO_BIG, TRY_REFUSED };

/* The answer; framing (content-length, connection) is the front end's. */
struct wp_resp {
	int status;
	const char *status_text;	/* may be NULL */
	struct zm_buf status_buf;
	struct hlist h;
	struct hlist trailers;		/* HTTP/2 upstream (gRPC); dropped on HTTP/1 */
	struct zm_buf body;
	bool head;			/* HEAD: send no body */
	bool keep_length;		/* h already has content-length (HEAD) */
	bool close;			/* close the connection after this */
	bool streamed;			/* the answer went out through the sink: nothing left to write */
};

/*
 * The request body as upstream tries read it: the first WP_RETRY_BUFFER
 * bytes are kept so a retry can send them again (Envoy retries only a
 * request whose body it buffered); past that, no retry.
 */
struct wp_body {
	struct wp_src *src;		/* NULL: no body */
	struct zm_buf replay;
	bool replay_ok;			/* everything read so far is in replay */
	bool eof;
	size_t pos;			/* this try's position in replay */
	uint64_t total;			/* bytes read from the client */
};

/* As wp_src.read; the replay first, then the client. */
long wp_body_read(struct wp_body *b, char *buf, size_t n);
/* The fd to poll when wp_body_read said -EAGAIN. */
int wp_body_fd(const struct wp_body *b);
/* Start over for another try; false when the body is past the replay buffer. */
bool wp_body_rewind(struct wp_body *b);
/*
 * The request trailers to forward once the body ended (NULL: none): the
 * client's, without hop-by-hop, framing and internal (x-envoy-*, ...)
 * fields, which a proxy must not take from a trailer.
 */
const struct hlist *wp_body_trailers(struct wp_body *b);
/* May trailer field @n (lower case) be forwarded? */
bool wp_trailer_forwardable(const char *n);

enum wp_verdict { WP_COMMIT, WP_RETRY };

/*
 * One upstream exchange as the HTTP/1 and HTTP/2 upstream code see it. At
 * the answer's head they ask verdict(); WP_COMMIT: commit() sends the head
 * to the client and the body streams to the sink, WP_RETRY: the answer is
 * dropped (x->status tells the caller). hold_grpc: a retry may still
 * follow from a grpc-status in trailers, so an answer that arrives whole
 * at once (up to WP_RETRY_BUFFER) is held for verdict() with its trailers;
 * one that does not is committed as soon as the upstream pauses, so
 * streams are never delayed.
 */
struct wp_xfer {
	struct wp_body *body;
	struct wp_sink *sink;
	bool head;			/* HEAD: no answer body */
	bool hold_grpc;
	int64_t deadline;		/* the route timeout: the whole answer; 0 none */
	int64_t try_deadline;		/* per try: until the head is committed; 0 none */
	int64_t max_uses;		/* requests per upstream HTTP/1 connection; 0 no limit */
	const struct zm_tcp_keepalive *ka;	/* DestinationRule tcp.tcpKeepalive; NULL none */
	int64_t pool_idle_ns;		/* http.idleTimeout of a pooled HTTP/1 connection; 0 none */
	int64_t max_age_ns;		/* tcp.maxConnectionDuration; 0 none */
	enum wp_verdict (*verdict)(struct wp_xfer *x, int status, int grpc_status);
	int (*commit)(struct wp_xfer *x, int status, const char *text, size_t tlen,
		      const struct hlist *h, int64_t len);
	void *ctx;
	bool committed;			/* the head went to the client: no retry */
	bool aborted;			/* ... and the answer was cut short */
	bool down_fail;			/* the client went away or sent a bad body */
	int status;
	uint64_t resp_bytes;
};

/*
 * One request over HTTP/2 (h2c prior knowledge) on connected socket @fd:
 * the body from x->body, the answer through x (verdict, commit, sink),
 * both ways at once (gRPC streaming). An enum try_result.
 */
int wp_h2_upstream(int fd, const char *method, const char *path, const char *authority,
		   const struct hlist *h, struct wp_xfer *x);
/* grpc-status in @h, -1 when none. */
int wp_grpc_status(const struct hlist *h);
int hl_add(struct hlist *h, const char *n, size_t nl, const char *v, size_t vl);

/* jwksUri fetching (jwks.c): @changed runs (on the fetch thread) when a document arrives or changes. */
void wp_jwks_init(void (*changed)(void));
void wp_jwks_want(const char *uri);
char *wp_jwks_get(const char *uri, void *arg);

/* A listening TCP socket on "ADDR:PORT" (IPv4). */
int wp_listen(const char *spec);
/* The HBONE front on @port with a certificate for ns/@ns/sa/@sa from the CA in @ca_dir. */
int wp_hbone_start(int port, const char *ca_dir, const char *ns, const char *sa);
/* The same in two steps, for a certificate from zmeshd: (re)place the
 * server and client contexts (renewal: new connections take the new one),
 * and start accepting on @port (after the first set_cert). */
int wp_hbone_set_cert(const char *key_pem, const char *chain_pem, const char *bundle_pem, const char *ns,
		      const char *sa);
int wp_hbone_listen(int port, const char *ns, const char *sa);
/* This proxy's mesh credential (the last wp_hbone_set_cert): malloc'd PEM
 * copies of the key, the chain (leaf first) and the trust bundle, and the
 * SPIFFE ID. -ENOENT when there is none (no --hbone-port). */
int wp_mesh_cred(char **key, char **chain, char **bundle, char *id, size_t idsz);

/*
 * HBONE to meshed endpoints (hbup.c). init: the client context (the
 * waypoint's own certificate) and its ns/name for baggage. meta: this
 * thread's next CONNECTs carry forwarded: for=@forwarded_for and
 * @traceparent (either may be NULL). connect: a socket whose bytes travel
 * in a CONNECT stream to @ip:@port over a pooled mTLS connection to
 * @ip:15008, or -ENOENT when @ip is not a meshed pod (or no client context:
 * plaintext then), -ECONNREFUSED (handshake failed, wrong identity, CONNECT
 * answered 403/503 or reset), -ETIMEDOUT. @deadline: CLOCK_MONOTONIC ns.
 */
struct ssl_ctx_st;
void wp_hbup_init(struct ssl_ctx_st *ctx, const char *ns, const char *name);
void wp_hbup_meta(const char *forwarded_for, const char *traceparent);
int wp_hbup_connect(const char *ip, int port, int64_t deadline);

/* Serve an HTTP/2 connection (h2c prior knowledge; c->in holds what was read). */
void wp_h2_serve(struct conn *c);
/* The same after `101 Switching Protocols` to an HTTP/1.1 request with
 * `Upgrade: h2c` (@req, no body): it is served as stream 1; @settings is its
 * HTTP2-Settings, base64url-decoded. */
void wp_h2_serve_upgrade(struct conn *c, struct wp_msg *req, const uint8_t *settings, size_t slen);

void wp_resp_init(struct wp_resp *rs);
void wp_resp_free(struct wp_resp *rs);
/* Decide, forward (or answer locally), log and count one request. */
void wp_serve(struct conn *c, struct wp_req *rq, struct wp_resp *rs, int64_t t0_ns, int64_t t0_wall);

extern const struct wp_opts *wp_options;
/* A downstream connection for accepted socket @fd; NULL on ENOMEM. */
struct conn *wp_conn_new(int fd, const struct sockaddr_storage *ss);
void *wp_conn_thread(void *arg);	/* arg: a struct conn * */
/* True when Service port @port of the Service at @vip is not HTTP (by its name, as Istio). */
bool wp_port_is_tcp(const char *vip, int port);
extern atomic_int wp_nconns;

/* ---- gateway mode (gateway.c) ----------------------------------------------------- */

struct gw_set;
struct zm_cfg_set;

/* The Gateways of @set this gateway serves (selector vs wp_options->gateway_labels),
 * their usable servers and TLS contexts. Bad servers are logged and left out. */
int wp_gw_build(const struct zm_cfg_set *set, struct gw_set **out);
const char *const *wp_gw_keys(const struct gw_set *g, size_t *n);
/* The servers' hosts for the engine's namespace scoping (zm_l7_opts.gw_hosts). */
const struct zm_l7_gw_host *wp_gw_hosts(const struct gw_set *g, size_t *n);
/* Make @g current (takes it) and open listeners for new ports. */
void wp_gw_publish(struct gw_set *g);
void wp_gw_put(struct gw_set *g);
/* A request on a gateway connection: 0 to go on, 404 (no server for this
 * Host on the port), 301 (httpsRedirect; @location filled), -ENOMEM. */
int wp_gw_check(const struct conn *c, const char *authority, const char *target, size_t tlen,
		struct zm_buf *location);

/* ---- tracing (trace.c) -----------------------------------------------------------------
 *
 * With --zipkin, every request gets a SERVER span and each upstream try a
 * CLIENT span (its child), exported as Zipkin v2 JSON by a background thread.
 * The incoming context is B3 (`b3`, then `x-b3-*`), else W3C `traceparent`;
 * none (or an invalid one) starts a new trace. The sampling decision of the
 * caller is kept; without one, --trace-sampling percent of traces are
 * sampled. Unsampled requests still get fresh ids propagated (flags 00,
 * x-b3-sampled: 0) so the backends see one trace. Without --zipkin all of
 * this is off and trace headers pass untouched.
 *
 * Use from wp_serve(): begin at the start, inject into the upstream headers
 * (before they are serialized), try_begin/try_end around each upstream try
 * (try_begin gives a retry its own span id, patched into @out and @h), end
 * once the answer is known. Spans are rendered on the request's thread and
 * queued (bounded: a full queue drops and counts); nothing blocks on export.
 */
struct wp_trace {
	bool on, sampled, b3_single;
	char trace_id[33];		/* 16 or 32 lower-case hex, as received */
	char parent_id[17];		/* the caller's span, "" at a trace's root */
	char span_id[17];		/* our SERVER span */
	char client_id[17];		/* the CLIENT span of the current try */
	int ntries;
	int64_t start_us, try_start_us;	/* wall clock, microseconds */
};

struct wp_trace_done {
	const char *method, *authority, *path;
	size_t path_len;
	const char *proto, *peer, *request_id, *user_agent, *flags;
	int code;
	const struct zm_l7_decision *d;
	uint64_t req_bytes, resp_bytes;
	bool tls;			/* the client came over TLS (gateway) */
};

/* From the options; starts the export thread. -EINVAL for a bad --zipkin URL. */
int wp_trace_init(const struct wp_opts *o);
/* Send what is queued (bounded by a couple of seconds) and stop the thread. */
void wp_trace_shutdown(void);
void wp_trace_begin(struct wp_trace *t, const struct zm_http_field *f, size_t nf, int64_t start_us);
void wp_trace_inject(struct wp_trace *t, struct hlist *h);
void wp_trace_try_begin(struct wp_trace *t, struct zm_buf *out, struct hlist *h);
/* @status: the upstream's answer, 0 when the try failed before one. */
void wp_trace_try_end(struct wp_trace *t, const struct zm_l7_decision *d, const char *addr, int port,
		      int status);
void wp_trace_end(struct wp_trace *t, const struct wp_trace_done *r);
/* The exporter's counters in Prometheus text. */
void wp_trace_metrics(struct zm_buf *b);

/* ---- metrics and access log (metrics.c) ------------------------------------------ */

struct wp_labels {
	const char *src_workload, *src_ns, *src_principal, *src_app, *src_version;
	const char *dst_workload, *dst_ns, *dst_app, *dst_version;
	const char *dst_service, *dst_service_name, *dst_service_ns;
	int code;
	const char *flags;
	bool mtls;
	const char *proto;
};

void wp_metrics_record(const struct wp_labels *l, double dur_ms, uint64_t req_bytes,
		       uint64_t resp_bytes);
/* The Prometheus text exposition into @b. */
int wp_metrics_render(struct zm_buf *b);
/* Serve /metrics (and /healthz/ready) on @fd (a listener), forever. */
void *wp_admin_thread(void *arg);
int wp_access_log_open(const char *where);
void wp_access_log(struct zm_buf *line);

#endif /* ZMESH_WAYPOINT_H */
