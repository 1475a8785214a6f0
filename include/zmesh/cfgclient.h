/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy side of zmeshd (:15012, docs/zmeshd.md): follow the config
 * stream, ACK or NACK each version, keep the last good config, and get
 * workload certificates through CSRs. For ztunnel and waypoint.
 *
 * Non-blocking and single-threaded; it embeds in any event loop:
 * zm_cfgclient_fd() is one file descriptor that stays the same for the
 * client's whole life (an epoll instance holding the current socket and a
 * timerfd), so the caller registers it once for reading and calls
 * zm_cfgclient_process() whenever it is readable (or at any time: process
 * never blocks and does nothing when nothing is due).
 * zm_cfgclient_timeout_ms() tells when the client next wants to run for a
 * caller that would rather poll.
 *
 * Connection: TCP to opts.server, TLS 1.3 (tls.h) with the node's
 * bootstrap credential (nodeid.h files in opts.cred_dir, re-read at every
 * connect so a re-minted credential is picked up), ALPN h2, and the server
 * must be zmeshd's identity spiffe://<td>/ns/zmesh-system/sa/zmeshd. Then
 * GET /v1/config. A failure of any kind (refused, handshake, zmeshd gone,
 * a message that does not parse) closes the connection and retries after
 * an exponential backoff: 100 ms doubling to opts.backoff_max_ms (default
 * 5000), each delay drawn uniformly from its upper half (jitter, so the
 * nodes of a cluster do not come back in step); a received snapshot
 * resets it.
 *
 * Config: each version is delivered to opts.on_config as the whole object
 * set (a JSON array of Kubernetes objects, borrowed for the call), whether
 * it came as a snapshot or a delta. Return 0 to accept it (ACK) or a
 * negative errno with @why filled to refuse it (NACK with the reason); a
 * refused version is not kept: zm_cfgclient_config() keeps returning the
 * last accepted one, which survives disconnects and zmeshd restarts. A
 * version equal to the one accepted last is ACKed again without a call.
 *
 * Trust bundle: snapshots carry zmeshd's current roots and a root rotation
 * step is pushed as a "bundle" message (not ACKed). The client keeps the
 * latest (zm_cfgclient_bundle(), opts.on_bundle) and trusts it instead of
 * the credential directory's root-cert.pem on its next connects, so a proxy
 * follows a rotation without new files. It came over a connection that
 * verified zmeshd against the roots trusted before.
 */
#ifndef ZMESH_CFGCLIENT_H
#define ZMESH_CFGCLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "zmesh/keymat.h"
#include "zmesh/log.h"
#include "zmesh/spiffe.h"

struct zm_cfgclient;

typedef int (*zm_cfgclient_config_cb)(void *arg, uint64_t version, json_t *objects, char *why,
				      size_t whysz);

/*
 * The answer to zm_cfgclient_request_cert(): @rc 0 and @cert (key made
 * here, chain from zmeshd; the callee may take its strings and clear the
 * record) with the trust bundle @bundle_pem; or a negative errno and @error:
 * -EACCES (zmeshd refused: not a pod of this node), -EINVAL (bad request or
 * a certificate that does not check out), -ECONNRESET (the connection went
 * before the answer; ask again).
 */
typedef void (*zm_cfgclient_cert_cb)(void *arg, int rc, struct zm_svid_cert *cert,
				     const char *bundle_pem, const char *error);

struct zm_cfgclient_opts {
	const char *server;		/* "host:port" (numeric host, IPv4 or [IPv6]) */
	const char *cred_dir;		/* node-key.pem, node-cert.pem, root-cert.pem */
	const char *trust_domain;	/* NULL: cluster.local */
	const char *proxy;		/* proxy kind shown by proxy-status; NULL: "ztunnel" */
	int backoff_max_ms;		/* 0: 5000 */
	zm_cfgclient_config_cb on_config;
	/* optional: the trust bundle changed (PEM, borrowed for the call) */
	void (*on_bundle)(void *arg, const char *bundle_pem);
	void *arg;
};

int zm_cfgclient_new(const struct zm_cfgclient_opts *opts, struct zm_cfgclient **out,
		     struct zm_error *e);
void zm_cfgclient_free(struct zm_cfgclient *c);

int zm_cfgclient_fd(struct zm_cfgclient *c);
int zm_cfgclient_timeout_ms(struct zm_cfgclient *c);	/* -1: only on I/O */
/* Do what is due. 0, or a negative errno for a failure of the client itself (ENOMEM). */
int zm_cfgclient_process(struct zm_cfgclient *c);

/* Is the config stream open? */
bool zm_cfgclient_connected(struct zm_cfgclient *c);
/* The last accepted version (0 with *have false before the first). */
uint64_t zm_cfgclient_version(struct zm_cfgclient *c, bool *have);
/* The last accepted objects (a JSON array, borrowed; NULL before the first). */
json_t *zm_cfgclient_config(struct zm_cfgclient *c);
/* The latest trust bundle zmeshd sent (PEM, borrowed), NULL before the first snapshot. */
const char *zm_cfgclient_bundle(struct zm_cfgclient *c);
/* Connections made so far (a reconnect counts). */
unsigned zm_cfgclient_connects(struct zm_cfgclient *c);

/*
 * Ask for a certificate for @id: a P-256 key and CSR are made here (the key
 * never leaves), POST /v1/certs; @cb runs from a later
 * zm_cfgclient_process(). -ENOTCONN when the stream is not up (retry later).
 */
int zm_cfgclient_request_cert(struct zm_cfgclient *c, const struct zm_spiffe_id *id,
			      zm_cfgclient_cert_cb cb, void *arg);

struct zm_cfg_set;
/*
 * A pushed object set (what on_config gets) as typed config: the objects as
 * one multi-document YAML stream (JSON is YAML) read by the same model as
 * files (config.h), so one reader and one set of rules. 0, or a negative
 * errno with @why (the first error, file "zmeshd").
 */
int zm_cfgclient_to_set(json_t *objects, struct zm_cfg_set *set, char *why, size_t whysz);

/*
 * Tests and fuzzing: handle one config-stream line (without its newline) as
 * if zmeshd had sent it, on a client that has not connected (no process()
 * yet): deltas, snapshots, bundles, the on_config call; no ACK is sent.
 * 0, -EINVAL with @why for a line the stream would be dropped for, -EBUSY
 * on a connected client.
 */
int zm_cfgclient_feed(struct zm_cfgclient *c, const char *line, size_t len, char *why, size_t whysz);

#endif
