/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ztunnel: the per-node L4 proxy. This first cut moves captured traffic as
 * plain TCP (no HBONE/mTLS yet: issue 4) so that the BPF capture has its
 * userspace half:
 *   - enrolment: the node's pods from the lab state, reconciled every second;
 *   - per enrolled pod, listeners made inside the pod's netns: 15001
 *     (outbound, 127.0.0.1), 15006 (inbound plaintext) and 15008 (HBONE,
 *     refused until HBONE exists), the last two registered for sk_lookup;
 *   - outbound: original destination from BPF, upstream socket made in the
 *     source pod's netns (so the pod's IP is the source), bytes relayed;
 *   - inbound: the destination the client dialled (getsockname), connected
 *     to from inside the pod over lo;
 *   - Prometheus on :15020, readiness on :15021 in the node's netns.
 * One epoll thread; connections are pairs of sockets with a bounded buffer
 * per direction, half-close and resets passed through.
 */
#ifndef ZTUNNEL_H
#define ZTUNNEL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "zmesh/bpf_loader.h"
#include "zmesh/lab.h"

#define ZT_MAX_PODS 256

enum zt_kind { ZT_L_OUTBOUND, ZT_L_INBOUND, ZT_L_HBONE, ZT_CONN, ZT_HTTP_LISTEN, ZT_HTTP };

/* What epoll hands back: every registered fd has one. */
struct zt_ev {
	enum zt_kind kind;
	int fd;
	void *owner;	/* struct zt_pod (listeners), struct zt_pair (conns) */
	int side;	/* ZT_CONN: 0 downstream, 1 upstream */
};

struct zt_pod {
	bool used;
	char id[160];		/* <ns>_<pod> */
	char ns[64], name[64], workload[64], sa[64];
	char netns[256];
	struct in_addr ip;
	struct zt_ev l[3];	/* outbound, inbound, hbone */
	bool seen;		/* reconcile mark */
};

struct zt_stats {
	uint64_t opened, closed, refused;
};

struct zt {
	char node[64], lab[16];
	int ep;
	struct zm_bpf *bpf;
	struct zm_lab state;
	struct zm_lab_node *me;
	char node_netns[256];
	struct zt_pod pods[ZT_MAX_PODS];
	struct zt_ev metrics, ready;
	struct zt_stats st;
	bool fastpath;
};

/* pods.c */
int zt_reconcile(struct zt *z);
void zt_pods_close(struct zt *z);
const struct zm_lab_pod *zt_pod_by_ip(struct zt *z, struct in_addr ip);

/* relay.c */
void zt_accept(struct zt *z, struct zt_ev *l);
void zt_conn_event(struct zt *z, struct zt_ev *ev, uint32_t events);
void zt_metrics_write(struct zt *z, int fd);
void zt_reap(void);

#endif
