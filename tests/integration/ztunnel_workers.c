// SPDX-License-Identifier: Apache-2.0
/*
 * ztunnel's workers in the lab: with --workers 2 (ZMESH_WORKERS) the
 * kernel spreads captured connections over both workers' SO_REUSEPORT
 * listeners, on both BPF paths (the connect4 redirect to 127.0.0.1:15001 and
 * sk_lookup's bpf_sk_assign to 15006), and one worker or two move the same
 * bytes with the same half-close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

static void wlab_down(void *arg)
{
	lab_stop(arg);
	free(arg);
}

/* Two nodes; a (meshed) and c (not) on node 1, b (meshed) on node 2; each
 * ztunnel with @workers workers. NULL when the lab did not come up. */
static struct labkit *wlab_up(int workers)
{
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1, .labels = "{app: a}" },
		{ .name = "b", .ns = "mesh", .node = 2, .labels = "{app: b}" },
		{ .name = "c", .ns = "plain", .node = 1, .labels = "{app: c}" },
	};
	struct labkit *l = calloc(1, sizeof(*l));
	char env[32];

	if (!l)
		return NULL;
	lab_init(l, "w", "wn");
	test_defer(wlab_down, l);
	snprintf(env, sizeof(env), "ZMESH_WORKERS=%d", workers);
	if (lab_write(l, LAB_NS_MESH LAB_DOC LAB_NS_PLAIN, pods, 3) || lab_start_ready(l, env))
		return NULL;
	return l;
}

/* Each worker's connections_opened from @node's /config_dump, as "N,N,..". */
static void per_worker(struct labkit *l, const char *node, char *out, size_t sz)
{
	lab_on_node(l->lab, node, out, sz, "sh -c \"curl -sf localhost:15000/config_dump | python3 -c 'import json,sys;"
		"print(\\\",\\\".join(str(w[\\\"connections_opened\\\"]) for w in json.load(sys.stdin)[\\\"workers\\\"]))'\"");
}

/* 1 MiB up, FIN, all of it echoed back, then FIN back; "same 1048576". */
static const char half_close[] =
	"python3 -c \"import socket,threading;"
	"s=socket.create_connection(('%s',9000),timeout=10);d=bytes(range(256))*4096;"
	"t=threading.Thread(target=lambda:(s.sendall(d),s.shutdown(socket.SHUT_WR)));t.start();"
	"r=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n r+=c\n"
	"t.join();print('same' if r==d else 'differ',len(r))\"";

/* @n connections one after the other, each a few bytes echoed: "ok N". */
static const char many[] =
	"python3 -c \"import socket\nok=0\nfor i in range(%d):\n"
	" s=socket.create_connection(('%s',9000),timeout=5);s.sendall(b'hi');ok+=s.recv(2)==b'hi';s.close()\n"
	"print('ok',ok)\"";

static void transfer_with_half_close(int workers)
{
	struct labkit *l = wlab_up(workers);
	char cmd[1024], out[4096], b_ip[32], c_ip[32];

	ASSERT_OK_PTR(l);
	ASSERT_EQ(lab_pod_ip(l->lab, "b", b_ip, sizeof(b_ip)), 0);
	ASSERT_EQ(lab_pod_ip(l->lab, "c", c_ip, sizeof(c_ip)), 0);
	ASSERT_EQ(lab_on_node(l->lab, l->n1, out, sizeof(out), "sh -c \"curl -sf localhost:15000/config_dump | "
			  "python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\\\"workers\\\"]))'\""), 0);
	EXPECT_EQ(atoi(out), workers);
	/* Pod to pod across nodes over HBONE, the same with a few at once. */
	snprintf(cmd, sizeof(cmd), half_close, b_ip);
	ASSERT_EQ(lab_in_pod(l->lab, "a", "mesh", out, sizeof(out), cmd), 0);
	EXPECT_STRSTR(out, "same 1048576");
	/* Plaintext from outside the mesh, captured inbound (sk_lookup -> 15006). */
	ASSERT_EQ(lab_in_pod(l->lab, "c", "plain", out, sizeof(out), cmd), 0);
	EXPECT_STRSTR(out, "same 1048576");
	/* Meshed to not meshed: the passthrough relay (15001 -> plain TCP). */
	snprintf(cmd, sizeof(cmd), half_close, c_ip);
	ASSERT_EQ(lab_in_pod(l->lab, "a", "mesh", out, sizeof(out), cmd), 0);
	EXPECT_STRSTR(out, "same 1048576");
}

TEST(one_worker_moves_pod_to_pod_bytes_with_half_close)
{
	transfer_with_half_close(1);
}

TEST(two_workers_move_pod_to_pod_bytes_with_half_close)
{
	transfer_with_half_close(2);
}

TEST(two_workers_share_the_connections_on_both_bpf_paths)
{
	struct labkit *l = wlab_up(2);
	char cmd[1024], out[4096], b_ip[32];
	int w0, w1, h0, h1;

	ASSERT_OK_PTR(l);
	ASSERT_EQ(lab_pod_ip(l->lab, "b", b_ip, sizeof(b_ip)), 0);
	/* Outbound: a's connects are redirected to 127.0.0.1:15001, a reuseport
	 * group of two; 40 connections from distinct ports land on both (all on
	 * one worker: 2^-39 by chance). */
	snprintf(cmd, sizeof(cmd), many, 40, b_ip);
	ASSERT_EQ(lab_in_pod(l->lab, "a", "mesh", out, sizeof(out), cmd), 0);
	EXPECT_STRSTR(out, "ok 40");
	per_worker(l, l->n1, out, sizeof(out));
	ASSERT_EQ(sscanf(out, "%d,%d", &w0, &w1), 2);
	test_log("node 1 (outbound, 15001) per worker: %d,%d", w0, w1);
	EXPECT_GT(w0, 0);
	EXPECT_GT(w1, 0);
	EXPECT_EQ(w0 + w1, 40);
	/* Each worker pools on its own: a's tunnels to b are one or two. */
	ASSERT_EQ(lab_in_pod(l->lab, "a", "mesh", out, sizeof(out), "sh -c \"ss -Htn state established '( dport = :15008 )' | wc -l\""), 0);
	test_log("a's tunnels to b: %d", atoi(out));
	EXPECT_GE(atoi(out), 1);
	EXPECT_LE(atoi(out), 2);
	/* Inbound plaintext: sk_lookup assigns worker 0's 15006 socket; the
	 * kernel's reuseport selection still spreads over the group. (The 40
	 * HBONE streams before sit on the one or two pooled connections.) */
	per_worker(l, l->n2, out, sizeof(out));
	ASSERT_EQ(sscanf(out, "%d,%d", &h0, &h1), 2);
	test_log("node 2 after the HBONE streams, per worker: %d,%d", h0, h1);
	EXPECT_EQ(h0 + h1, 40);
	ASSERT_EQ(lab_in_pod(l->lab, "c", "plain", out, sizeof(out), cmd), 0);
	EXPECT_STRSTR(out, "ok 40");
	per_worker(l, l->n2, out, sizeof(out));
	ASSERT_EQ(sscanf(out, "%d,%d", &w0, &w1), 2);
	test_log("node 2 after 40 plaintext connections on 15006, per worker: %d,%d", w0, w1);
	EXPECT_GT(w0 - h0, 0);
	EXPECT_GT(w1 - h1, 0);
	EXPECT_EQ(w0 + w1, 80);
	/* The same per worker on /metrics. */
	ASSERT_EQ(lab_on_node(l->lab, l->n2, out, sizeof(out), "curl -sf localhost:15020/metrics | grep ^zmesh_ztunnel_worker"), 0);
	EXPECT_STRSTR(out, "zmesh_ztunnel_workers 2\n");
	EXPECT_STRSTR(out, "zmesh_ztunnel_worker_connections_opened_total{worker=\"1\"} ");
}
