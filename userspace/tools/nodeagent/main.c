// SPDX-License-Identifier: Apache-2.0
/*
 * nodeagent: the lab's stand-in for Istio's CNI node agent. One per node
 * (zmeshctl lab up starts it): it watches the lab state (the lab's "API
 * server") and keeps the node's ztunnel told over ZDS (zds.h) which pods are
 * enrolled: on every (re)connection all of them and snapshot_sent, then
 * add/del as labels change and pods come. ztunnel going away (kill -9, a
 * restart by hand) shows as the connection closing; the agent reconnects
 * every 200 ms and replays the snapshot, so a new ztunnel gets its pods
 * without anybody restarting anything.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/buf.h"
#include "zmesh/lab.h"
#include "zmesh/log.h"
#include "zmesh/netns.h"
#include "zmesh/zds.h"

#define MAX_SENT 1024
#define CALL_TIMEOUT_MS 10000

struct sent {
	char uid[128];
	uint64_t hash;		/* of the add record: a change (labels) is sent again */
};

struct agent {
	char node[64], lab[16], path[108];
	int fd;
	bool replay;		/* connected, snapshot not yet sent */
	struct sent sent[MAX_SENT];
	size_t nsent;
	bool retry;		/* some add did not go through: try again in a while */
	char last_err[ZM_ERROR_MAX];
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

static struct sent *sent_find(struct agent *a, const char *uid)
{
	for (size_t i = 0; i < a->nsent; i++)
		if (!strcmp(a->sent[i].uid, uid))
			return &a->sent[i];
	return NULL;
}

static void disconnect(struct agent *a, const char *why)
{
	if (a->fd < 0)
		return;
	zm_log_info("ztunnel connection lost (%s): reconnecting", why);
	close(a->fd);
	a->fd = -1;
	a->nsent = 0;
}

/* 0 sent or refused (logged), <0 the connection failed. */
static int call(struct agent *a, const struct zm_zds_msg *m, int nsfd, const char *what)
{
	struct zm_error e = { 0 };
	int rc = zm_zds_call(a->fd, m, nsfd, CALL_TIMEOUT_MS, &e);

	if (rc == -EREMOTEIO) {
		/* Say it once, not on every retry. */
		if (strcmp(a->last_err, e.msg))
			zm_log_warn("%s refused by ztunnel: %s", what, e.msg);
		snprintf(a->last_err, sizeof(a->last_err), "%s", e.msg);
		return 1;
	}
	if (rc) {
		disconnect(a, e.msg);
		return rc;
	}
	zm_log_info("%s", what);
	return 0;
}

/* Bring ztunnel in line with @lab: adds, dels, and the snapshot marker
 * after a (re)connect. */
static int sync_pods(struct agent *a, struct zm_lab *lab)
{
	bool want[MAX_SENT] = { false };
	char what[512];
	int rc;

	a->retry = false;
	for (size_t i = 0; i < lab->npods; i++) {
		const struct zm_lab_pod *p = &lab->pods[i];
		struct zm_zds_msg m = { .type = ZM_ZDS_ADD };
		struct zm_buf b = { 0 };
		struct sent *s;
		uint64_t h;
		int nsfd;

		if (strcmp(p->node, a->node) || !zm_lab_pod_enrolled(lab, p))
			continue;
		if (zm_lab_zds_workload(lab, p, &m.w))
			return -ENOMEM;
		h = zm_zds_encode(&m, &b) ? 0 : fnv(zm_buf_data(&b), zm_buf_len(&b));
		zm_buf_free(&b);
		s = sent_find(a, m.w.uid);
		if (s) {
			want[s - a->sent] = true;
			if (s->hash == h) {
				zm_zds_msg_free(&m);
				continue;
			}
		}
		/* A pod still being built (`lab up`, zm_lab_grow) has no netns yet. */
		nsfd = zm_netns_open(p->netns);
		if (nsfd < 0) {
			a->retry = true;
			zm_zds_msg_free(&m);
			continue;
		}
		snprintf(what, sizeof(what), "add %s/%s (%s)", p->ns, p->name, m.w.uid);
		rc = call(a, &m, nsfd, what);
		close(nsfd);
		zm_zds_msg_free(&m);
		if (rc < 0)
			return rc;
		if (rc > 0) {
			a->retry = true;
			continue;
		}
		if (!s && a->nsent < MAX_SENT) {
			s = &a->sent[a->nsent++];
			snprintf(s->uid, sizeof(s->uid), "%s", m.w.uid);
			want[s - a->sent] = true;
		}
		if (s)
			s->hash = h;
	}
	/* What ztunnel has and should not have any more. */
	for (size_t i = a->nsent; i-- > 0;) {
		struct zm_zds_msg m = { .type = ZM_ZDS_DEL };

		if (want[i])
			continue;
		snprintf(m.uid, sizeof(m.uid), "%s", a->sent[i].uid);
		snprintf(what, sizeof(what), "del %s", m.uid);
		rc = call(a, &m, -1, what);
		if (rc < 0)
			return rc;
		a->sent[i] = a->sent[--a->nsent];
	}
	if (a->replay) {
		struct zm_zds_msg m = { .type = ZM_ZDS_SNAPSHOT_SENT };

		rc = call(a, &m, -1, "snapshot sent");
		if (rc < 0)
			return rc;
		a->replay = false;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct sigaction sa = { .sa_handler = on_signal };
	struct timespec last = { 0 }, next_retry = { 0 };
	const char *lab = getenv("ZMESH_LAB") ? getenv("ZMESH_LAB") : ZM_LAB_DEFAULT;
	char state[PATH_MAX];
	struct zm_lab l;
	struct zm_error e = { 0 };

	zm_log_init("nodeagent");
	if (!a)
		return 1;
	a->fd = -1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--node"))
			snprintf(a->node, sizeof(a->node), "%s", argv[i + 1]);
		else if (!strcmp(argv[i], "--lab"))
			lab = argv[i + 1];
		else if (!strcmp(argv[i], "--log-level") && zm_log_level_parse(argv[i + 1]) >= 0)
			zm_log_set_level((enum zm_log_level)zm_log_level_parse(argv[i + 1]));
		else
			argc = -1;
	}
	if (!a->node[0] || argc < 0 || (argc > 0 && argc % 2 == 0)) {
		fputs("usage: nodeagent --node NODE [--lab LAB] [--log-level LEVEL]\n"
		      "Enrols the node's pods into its ztunnel over ZDS, from the lab state.\n", stderr);
		free(a);
		return 2;
	}
	snprintf(a->lab, sizeof(a->lab), "%s", lab);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (zm_lab_load(a->lab, &l, &e)) {
		zm_log_error("%s", e.msg);
		free(a);
		return 1;
	}
	{
		struct zm_lab_node *n = zm_lab_node_find(&l, a->node);

		if (!n || zm_zds_path(n->netns, a->path, sizeof(a->path))) {
			zm_log_error("no node %s in lab %s (or its socket path is too long)", a->node, a->lab);
			zm_lab_free(&l);
			free(a);
			return 1;
		}
	}
	zm_lab_free(&l);
	snprintf(state, sizeof(state), "%s/%s/state.json", ZM_LAB_STATE_ROOT, a->lab);
	zm_log_info("node %s of lab %s: enrolling over %s", a->node, a->lab, a->path);
	while (!stop) {
		struct pollfd pfd = { .fd = a->fd, .events = POLLIN };
		struct timespec now;
		struct stat st;
		bool changed;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (a->fd < 0) {
			a->fd = zm_zds_connect(a->path);
			if (a->fd >= 0) {
				zm_log_info("connected to ztunnel: sending the snapshot");
				a->replay = true;
				a->nsent = 0;
				a->last_err[0] = 0;
			}
		}
		if (stat(state, &st) < 0) {
			zm_log_info("lab %s is gone: exiting", a->lab);
			break;
		}
		changed = st.st_mtim.tv_sec != last.tv_sec || st.st_mtim.tv_nsec != last.tv_nsec;
		if (a->fd >= 0 && (changed || a->replay || (a->retry && now.tv_sec >= next_retry.tv_sec))) {
			if (zm_lab_load(a->lab, &l, &e) == 0) {
				last = st.st_mtim;
				sync_pods(a, &l);
				zm_lab_free(&l);
			} else {
				zm_log_warn("lab state: %s", e.msg);
			}
			next_retry.tv_sec = now.tv_sec + 1;
		}
		/* Readable between our calls means ztunnel closed (we only
		 * read acks inside calls). */
		if (poll(&pfd, a->fd >= 0 ? 1 : 0, 200) > 0 && a->fd >= 0)
			disconnect(a, "closed by ztunnel");
	}
	if (a->fd >= 0)
		close(a->fd);
	free(a);
	return 0;
}
