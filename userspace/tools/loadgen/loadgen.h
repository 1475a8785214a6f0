/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadgen: the benchmark load generator (issue 7). See docs/loadgen.md.
 *
 * Threads ("workers") each own an epoll loop, a share of the connections and
 * of the request rate, and a latency histogram; main merges them at the end.
 * A connection has nslots request slots (1, or --streams for HTTP/2); a slot
 * remembers when its request was meant to go out (intended) and when it did
 * (sent). Latency is completion minus intended: in the open-loop model the
 * intended times follow the fixed schedule whatever the server does, so
 * queueing behind a slow answer counts (no coordinated omission).
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>

#include <llhttp.h>
#include <nghttp2/nghttp2.h>

#include "zmesh/histogram.h"

enum lg_proto { P_TCP_RR, P_HTTP1, P_HTTP2, P_TCP_CONNECT, P_BULK };
enum lg_bulk { BULK_ECHO, BULK_SEND };

#define LG_MAX_WATCH 16
#define LG_MAX_HEADERS 16

struct lg_cfg {
	enum lg_proto proto;
	enum lg_bulk bulk;
	const char *target;		/* as given */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	const char *authority;		/* Host / :authority */
	const char *path;
	const char *headers[LG_MAX_HEADERS];	/* "Name: value" */
	int nheaders;
	long size;			/* tcp-rr/tcp-connect request size; bulk write size */
	int conns, threads, streams;
	double rate;			/* 0: closed loop */
	double duration_s, warmup_s, timeout_s;
	bool linger0, json, quiet;
	pid_t watch_pids[LG_MAX_WATCH];
	int nwatch_pids;
	const char *watch_cgroups[LG_MAX_WATCH];
	int nwatch_cgroups;

	/* derived, shared read-only by the workers */
	char *req;			/* tcp-rr payload or the HTTP/1.1 request */
	size_t reqlen;
	nghttp2_nv *nva;
	size_t nnva;
	int64_t t0, t_meas, t_end;	/* CLOCK_MONOTONIC ns: start, end of warmup, end */
	int64_t timeout_ns;
};

enum conn_state { C_CLOSED, C_CONNECTING, C_OPEN };

struct slot {
	int64_t intended, sent;
	int32_t stream_id;
	int status;
	bool busy;
};

struct worker;

struct conn {
	struct worker *w;
	int fd;
	enum conn_state state;
	uint32_t events;		/* what epoll watches now */
	uint32_t gen;			/* bumped per socket; checked against epoll data */
	int free_idx;			/* position in w->freel, -1 when not there */
	bool dirty;			/* HTTP/2: has submitted frames to flush */
	int64_t since;			/* when the connect started */
	int nslots, inflight;
	struct slot *slots;
	const uint8_t *pend;		/* output not yet written */
	size_t pendlen;
	size_t rcvd;			/* tcp-rr/connect: echo bytes of this request */
	bool close_after;		/* HTTP/1 server said Connection: close */
	bool had_ok;			/* something worked since the last connect error */
	int64_t reconnect_at;
	llhttp_t parser;
	nghttp2_session *h2;
	uint64_t bulk_tx;		/* bulk: bytes handed to the kernel */
	uint64_t bulk_mark;		/* bulk send: delivered bytes at t_meas */
};

struct lg_stats {
	uint64_t requests, warmup_requests, errors, non_2xx, timeouts;
	uint64_t connects, connect_errors, unsent;
	uint64_t bytes;			/* bulk: bytes received (echo) or delivered (send) in the window */
	uint64_t lag_sum, lag_max, lag_n;	/* open loop: actual send - intended send, ns */
};

struct worker {
	int id;
	const struct lg_cfg *cfg;
	pthread_t th;
	int ep;
	struct conn *conns;
	int nconns;
	struct conn **freel;		/* connections with a free slot */
	int nfree;
	struct conn **dirtyl;		/* HTTP/2 connections to flush after dispatch */
	int ndirty;
	struct slot *slots;		/* nconns * nslots, carved up among the connections */
	bool meas_started;
	double interval_ns;		/* open loop: time between this worker's requests */
	double phase_ns;		/* open loop: offset of this worker's schedule (threads interleave) */
	int64_t pause_until;		/* tcp-connect: back off after a connect() that failed at once */
	uint64_t k;			/* open loop: requests issued (index into the schedule) */
	bool draining;
	int64_t inflight;
	uint8_t *rbuf;
	size_t rbufsz;
	struct lg_stats st;
	struct zm_hist *hist;
	int rc;
};

int64_t lg_now(void);

/* worker.c */
int worker_init(struct worker *w, const struct lg_cfg *cfg, int id, int nconns, double rate);
void worker_free(struct worker *w);
void *worker_run(void *arg);
/* A response for @s on @c: ok or not (counted), HTTP status for the stats (0: n/a). */
void conn_complete(struct conn *c, struct slot *s, bool ok, int status);
/* Tear the connection down, fail what is in flight, schedule a reconnect. */
void conn_fail(struct conn *c, bool timeout);
/* Queue bytes for the socket; write what fits now. */
int conn_write(struct conn *c, const uint8_t *p, size_t n);

/* http1.c */
void http1_conn_reset(struct conn *c);
int http1_on_data(struct conn *c, const uint8_t *p, size_t n);
int http1_on_eof(struct conn *c);
int http1_build_request(struct lg_cfg *cfg);

/* http2.c */
int http2_build_nva(struct lg_cfg *cfg);
int http2_open(struct conn *c);
void http2_close(struct conn *c);
int http2_submit(struct conn *c, struct slot *s);
int http2_on_data(struct conn *c, const uint8_t *p, size_t n);
int http2_flush(struct conn *c);

#endif /* LOADGEN_H */
