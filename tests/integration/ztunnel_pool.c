// SPDX-License-Identifier: Apache-2.0
/*
 * HBONE connection pooling in the lab: captured connections from one pod to
 * another become streams on a few shared mTLS connections; source pods never
 * share one; streams are independent (slow reader, reset, a killed app);
 * idle connections close (ZMESH_POOL_IDLE=3s here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

/* Clients run in the pods; they count the tunnels with ss in their own netns. */
static const char client_py[] =
	"import os, socket, subprocess, sys, threading, time\n"
	"B = '10.244.1.2'\n"
	"def tunnels():\n"
	"    out = subprocess.run(['ss', '-Htn', 'state', 'established', '( dport = :15008 )'],\n"
	"                         capture_output=True, text=True).stdout\n"
	"    return len([l for l in out.splitlines() if l.strip()])\n"
	"def echo(n, port=9000, chunk=65536):\n"
	"    s = socket.create_connection((B, port), timeout=30)\n"
	"    d = os.urandom(n)\n"
	"    t = threading.Thread(target=lambda: (s.sendall(d), s.shutdown(socket.SHUT_WR)))\n"
	"    t.start()\n"
	"    r = bytearray()\n"
	"    while True:\n"
	"        c = s.recv(chunk)\n"
	"        if not c: break\n"
	"        r += c\n"
	"    t.join(); s.close()\n"
	"    return bytes(r) == d\n"
	"cmd = sys.argv[1]\n"
	"if cmd == 'tunnels':\n"
	"    print('tunnels', tunnels())\n"
	"elif cmd == 'seq':\n"
	"    ok = sum(echo(10000) for _ in range(int(sys.argv[2])))\n"
	"    print('ok', ok, 'tunnels', tunnels())\n"
	"elif cmd == 'conc':\n"
	"    res = []\n"
	"    ts = [threading.Thread(target=lambda: res.append(echo(100000))) for _ in range(int(sys.argv[2]))]\n"
	"    [t.start() for t in ts]; [t.join() for t in ts]\n"
	"    print('ok', sum(res), 'tunnels', tunnels())\n"
	"elif cmd == 'connfail':\n"
	"    errs = []\n"
	"    def one():\n"
	"        try:\n"
	"            s = socket.create_connection((B, 9000), timeout=30); s.sendall(b'x' * 1000)\n"
	"            errs.append('answered' if s.recv(10) else 'eof')\n"
	"        except Exception as e: errs.append(type(e).__name__)\n"
	"    ts = [threading.Thread(target=one) for _ in range(int(sys.argv[2]))]\n"
	"    [t.start() for t in ts]; [t.join() for t in ts]\n"
	"    print(' '.join(sorted(set(errs))), len(errs))\n"
	"elif cmd == 'hold':\n"
	"    s = socket.create_connection((B, 9000), timeout=10)\n"
	"    s.sendall(b'x'); assert s.recv(1) == b'x'\n"
	"    print('tunnels', tunnels())\n"
	"    time.sleep(float(sys.argv[2]))\n"
	"    s.sendall(b'y'); assert s.recv(1) == b'y'\n"
	"    print('held', tunnels()); s.close()\n"
	"elif cmd == 'slow':\n"
	"    # A stream whose app does not read: 1 MiB echoed back waits for it.\n"
	"    assert echo(1000)\n"
	"    slow = socket.create_connection((B, 9000), timeout=30)\n"
	"    d = os.urandom(1 << 20)\n"
	"    slow.sendall(d)\n"
	"    time.sleep(0.5)\n"
	"    t0 = time.time(); fast = echo(32 << 20)\n"
	"    print('fast', fast, 'tunnels', tunnels(), 'secs %.1f' % (time.time() - t0))\n"
	"    slow.shutdown(socket.SHUT_WR)\n"
	"    r = bytearray()\n"
	"    while True:\n"
	"        c = slow.recv(65536)\n"
	"        if not c: break\n"
	"        r += c\n"
	"    print('slow', bytes(r) == d)\n"
	"elif cmd == 'reset':\n"
	"    keep = socket.create_connection((B, 9000), timeout=10)\n"
	"    keep.sendall(b'before'); assert keep.recv(6) == b'before'\n"
	"    for i in range(5):\n"
	"        v = socket.create_connection((B, 9000), timeout=10)\n"
	"        v.sendall(os.urandom(300000))\n"
	"        v.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\\x01\\0\\0\\0\\0\\0\\0\\0')\n"
	"        v.close()\n"
	"    time.sleep(0.5)\n"
	"    keep.sendall(b'after!'); r = b''\n"
	"    while len(r) < 6: r += keep.recv(6)\n"
	"    print('sibling', r == b'after!', 'new', echo(200000), 'tunnels', tunnels())\n"
	"elif cmd == 'killapp':\n"
	"    # Stream X to a second app on b (port 7000), Y a bulk echo to 9000;\n"
	"    # the 7000 app is killed mid-transfer.\n"
	"    pid = int(open(sys.argv[2]).read())\n"
	"    x = socket.create_connection((B, 7000), timeout=30)\n"
	"    xres = []\n"
	"    def feed():\n"
	"        try:\n"
	"            while True: x.sendall(b'z' * 65536)\n"
	"        except Exception as e: xres.append(type(e).__name__)\n"
	"    tx = threading.Thread(target=feed); tx.start()\n"
	"    yres = []\n"
	"    ty = threading.Thread(target=lambda: yres.append(echo(48 << 20))); ty.start()\n"
	"    time.sleep(1)\n"
	"    os.kill(pid, 9)\n"
	"    tx.join(20); ty.join(60)\n"
	"    print('x', xres, 'y', yres, 'tunnels', tunnels())\n";

/* The second app in b: reads and drops everything. */
static const char sink_py[] =
	"import socket, threading\n"
	"l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
	"l.bind(('0.0.0.0', 7000)); l.listen(16)\n"
	"def drain(c):\n"
	"    while c.recv(65536): pass\n"
	"while True:\n"
	"    c, _ = l.accept(); threading.Thread(target=drain, args=(c,), daemon=True).start()\n";

FIXTURE(pool) {
	struct labkit k;
	char py[64], sink[64];
};

static void pool_up(struct zm_fixture_pool *self, const char *env)
{
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1, .labels = "{app: a}", .sa = "alpha" },
		{ .name = "a2", .ns = "mesh", .node = 1, .labels = "{app: a2}", .sa = "beta" },
		{ .name = "b", .ns = "mesh", .node = 2, .labels = "{app: b}", .sa = "default" },
	};

	REQUIRE_ROOT();
	lab_init(&self->k, "p", "pn");
	snprintf(self->py, sizeof(self->py), "/tmp/zm-pool-%s.py", self->k.lab);
	snprintf(self->sink, sizeof(self->sink), "/tmp/zm-pool-%s-sink.py", self->k.lab);
	ASSERT_OK(test_write_file(self->py, client_py));
	ASSERT_OK(test_write_file(self->sink, sink_py));
	ASSERT_OK(lab_write(&self->k, LAB_NS_MESH LAB_DOC
			    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: alpha, namespace: mesh}\n---\n"
			    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: beta, namespace: mesh}\n", pods, 3));
	ASSERT_OK(lab_start_ready(&self->k, env));
}

/*
 * One worker: these tests count the tunnels of one pool exactly, and each
 * worker has a pool of its own (with N workers a pod may hold up to N
 * tunnels to one destination: ztunnel_workers checks that).
 */
FIXTURE_SETUP(pool)
{
	pool_up(self, "ZMESH_WORKERS=1 ZMESH_POOL_IDLE=3s");
}

static void pool_down(struct zm_fixture_pool *self)
{
	if (!self->k.lab[0])
		return;
	lab_stop(&self->k);
	unlink(self->py);
	unlink(self->sink);
}

FIXTURE_TEARDOWN(pool)
{
	pool_down(self);
}

/* The same lab with the shortest certificates (renewed after about 30 s). */
FIXTURE(renew) {
	struct zm_fixture_pool p;
};

FIXTURE_SETUP(renew)
{
	pool_up(&self->p, "ZMESH_WORKERS=1 ZMESH_CERT_TTL=60s");
}

FIXTURE_TEARDOWN(renew)
{
	pool_down(&self->p);
}

/* The client script in @pod (retrying while the apps start). */
static int in_pod(struct zm_fixture_pool *self, const char *pod, char *out, size_t sz, const char *args)
{
	int rc = -1;

	for (int i = 0; i < 30 && rc; i++) {
		rc = test_sh(out, sz, "%s lab exec %s -n mesh --name %s -- timeout 100 python3 %s %s", lab_ctl(),
			     pod, self->k.lab, self->py, args);
		if (rc)
			usleep(200000);
	}
	return rc;
}

static int count_after(const char *out, const char *word)
{
	const char *p = strstr(out, word);

	return p ? atoi(p + strlen(word)) : -1;
}

TEST_F(pool, many_connections_share_few_tunnels)
{
	static char out[65536];
	long long streams;

	/* Echo once so the apps are up (in_pod retries), then 50 in a row. */
	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "seq 1"), 0);
	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "seq 50"), 0);
	EXPECT_STRSTR(out, "ok 50 ");
	EXPECT_GE(count_after(out, "tunnels "), 1);
	EXPECT_LE(count_after(out, "tunnels "), 2);
	/* 50 at once, 100 kB each way, checked byte for byte: on a's warm tunnel,
	 * and from a2, which has none yet (they wait for one handshake). */
	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "conc 50"), 0);
	EXPECT_STRSTR(out, "ok 50 ");
	EXPECT_GE(count_after(out, "tunnels "), 1);
	EXPECT_LE(count_after(out, "tunnels "), 2);
	ASSERT_EQ(in_pod(self, "a2", out, sizeof(out), "conc 50"), 0);
	EXPECT_STRSTR(out, "ok 50 ");
	EXPECT_GE(count_after(out, "tunnels "), 1);
	EXPECT_LE(count_after(out, "tunnels "), 2);
	lab_metrics(self->k.lab, self->k.n1, out, sizeof(out));
	streams = lab_metric(out, "zmesh_ztunnel_hbone_streams_total{role=\"client\"} ");
	EXPECT_GE(streams, 151);
	EXPECT_LE(lab_metric(out, "zmesh_ztunnel_hbone_connections{role=\"client\"} "), 4);
	EXPECT_GE(lab_metric(out, "zmesh_ztunnel_hbone_connections{role=\"client\"} "), 1);	/* a's may be idle-closed by now */
	/* Istio's series still count every connection (a stream each). */
	EXPECT_EQ(lab_metric(out, "istio_tcp_connections_opened_total{reporter=\"source\",source_workload=\"a\","
			 "source_workload_namespace=\"mesh\",source_principal=\"spiffe://cluster.local/ns/mesh/sa/alpha\","
			 "destination_workload=\"b\",destination_workload_namespace=\"mesh\","
			 "destination_principal=\"spiffe://cluster.local/ns/mesh/sa/default\","
			 "connection_security_policy=\"mutual_tls\"} "), 101);
	EXPECT_EQ(lab_metric(out, "istio_tcp_connections_opened_total{reporter=\"source\",source_workload=\"a2\","
			 "source_workload_namespace=\"mesh\",source_principal=\"spiffe://cluster.local/ns/mesh/sa/beta\","
			 "destination_workload=\"b\",destination_workload_namespace=\"mesh\","
			 "destination_principal=\"spiffe://cluster.local/ns/mesh/sa/default\","
			 "connection_security_policy=\"mutual_tls\"} "), 50);
	lab_metrics(self->k.lab, self->k.n2, out, sizeof(out));
	EXPECT_GE(lab_metric(out, "zmesh_ztunnel_hbone_streams_total{role=\"server\"} "), 151);
	EXPECT_LE(lab_metric(out, "zmesh_ztunnel_hbone_connections{role=\"server\"} "), 4);
	/* One access-log line per stream on the destination, all ok. */
	ASSERT_EQ(test_sh(out, sizeof(out), "grep '\"type\":\"access\"' /run/zmesh/lab/%s/logs/ztunnel-%s.log | "
			  "grep '\"protocol\":\"HBONE\"' | grep -c '\"result\":\"ok\"'", self->k.lab, self->k.n2), 0);
	EXPECT_GE(atoi(out), 151);
}

TEST_F(pool, source_pods_never_share_a_tunnel)
{
	static char out[65536];

	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "seq 5"), 0);
	EXPECT_STRSTR(out, "ok 5 tunnels 1");
	ASSERT_EQ(in_pod(self, "a2", out, sizeof(out), "seq 5"), 0);
	EXPECT_STRSTR(out, "ok 5 tunnels 1");
	/* Each pod's tunnel presented its own certificate. */
	lab_metrics(self->k.lab, self->k.n2, out, sizeof(out));
	EXPECT_STRSTR(out, "istio_tcp_connections_opened_total{reporter=\"destination\",source_workload=\"a\","
		      "source_workload_namespace=\"mesh\",source_principal=\"spiffe://cluster.local/ns/mesh/sa/alpha\"");
	EXPECT_STRSTR(out, "istio_tcp_connections_opened_total{reporter=\"destination\",source_workload=\"a2\","
		      "source_workload_namespace=\"mesh\",source_principal=\"spiffe://cluster.local/ns/mesh/sa/beta\"");
	/* Counted, not the gauge: a's tunnel may be idle-closed (3 s) by now. */
	EXPECT_EQ(lab_metric(out, "zmesh_ztunnel_hbone_connections_total{role=\"server\"} "), 2);
	lab_metrics(self->k.lab, self->k.n1, out, sizeof(out));
	EXPECT_EQ(lab_metric(out, "zmesh_ztunnel_hbone_connections_total{role=\"client\"} "), 2);
}

TEST_F(pool, a_slow_reader_does_not_stall_its_siblings)
{
	static char out[65536];

	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "slow"), 0);
	EXPECT_STRSTR(out, "fast True tunnels 1 ");
	EXPECT_STRSTR(out, "slow True");
}

TEST_F(pool, a_stream_reset_spares_its_siblings)
{
	static char out[65536];

	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "reset"), 0);
	EXPECT_STRSTR(out, "sibling True new True tunnels 1");
}

static void kill_pid_file(void *arg)
{
	test_sh(NULL, 0, "[ -s %s ] && kill -9 $(cat %s) 2>/dev/null; rm -f %s", (char *)arg, (char *)arg,
		(char *)arg);
}

TEST_F(pool, a_killed_app_resets_only_its_streams)
{
	static char out[65536], pidf[64];

	snprintf(pidf, sizeof(pidf), "/tmp/zm-pool-%d.pid", getpid());
	test_defer(kill_pid_file, pidf);
	ASSERT_EQ(test_sh(NULL, 0, "%s lab exec b -n mesh --name %s -- sh -c 'python3 %s >/dev/null 2>&1 & "
			  "echo $! > %s'", lab_ctl(), self->k.lab, self->sink, pidf), 0);
	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "seq 1"), 0);
	for (int i = 0; i < 50 && test_sh(NULL, 0, "%s lab exec b -n mesh --name %s -- ss -Htln '( sport = :7000 )' "
					  "| grep -q 7000", lab_ctl(), self->k.lab); i++)
		usleep(100000);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- timeout 100 python3 %s killapp %s",
			  lab_ctl(), self->k.lab, self->py, pidf), 0);
	/* The killed app's stream was reset; the bulk echo beside it finished intact. */
	EXPECT_TRUE(strstr(out, "x ['ConnectionResetError']") || strstr(out, "x ['BrokenPipeError']"));
	EXPECT_STRSTR(out, " y [True] tunnels 1");
}

TEST_F(pool, a_wrong_peer_identity_fails_every_waiting_stream)
{
	static char out[65536];

	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "seq 1"), 0);
	/* Node 1 now expects b to be sa/impostor (the store's Pod, as zmeshd
	 * pushes it, says so); b keeps its sa/default certificate. */
	ASSERT_EQ(test_sh(NULL, 0, "f=/tmp/zm-pool-b-%d.json; %s get pod b -n mesh -o json --name %s | python3 -c "
			  "\"import json,sys; d=json.load(sys.stdin); d['spec']['serviceAccountName']='impostor';"
			  "print(json.dumps(d))\" > $f && %s apply -f $f --name %s; rc=$?; rm -f $f; exit $rc",
			  getpid(), lab_ctl(), self->k.lab, lab_ctl(), self->k.lab), 0);
	sleep(1);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- timeout 60 python3 %s connfail 5",
			  lab_ctl(), self->k.lab, self->py), 0);
	EXPECT_STREQ(out, "ConnectionResetError 5\n");
	EXPECT_EQ(test_sh(NULL, 0, "grep -q 'sa/impostor' /run/zmesh/lab/%s/logs/ztunnel-%s.log", self->k.lab,
			  self->k.n1), 0);
}

TEST_F(pool, idle_tunnels_close)
{
	static char out[65536];
	bool gone = false;

	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "hold 4.5"), 0);
	/* Held with a stream on it for longer than the idle time: the same tunnel. */
	EXPECT_STRSTR(out, "tunnels 1\nheld 1\n");
	/* Then idle: closed after 3 s (checked for up to 10 s). */
	for (int i = 0; i < 50 && !gone; i++) {
		usleep(200000);
		ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "tunnels"), 0);
		gone = strstr(out, "tunnels 0") != NULL;
	}
	EXPECT_TRUE(gone);
	lab_metrics(self->k.lab, self->k.n1, out, sizeof(out));
	EXPECT_EQ(lab_metric(out, "zmesh_ztunnel_hbone_connections{role=\"client\"} "), 0);
	/* A new connection makes a new tunnel. */
	ASSERT_EQ(in_pod(self, "a", out, sizeof(out), "seq 2"), 0);
	EXPECT_STRSTR(out, "ok 2 tunnels 1");
}

static void wait_child(void *arg)
{
	pid_t pid = *(pid_t *)arg;

	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

TEST_F(renew, a_renewed_certificate_drains_older_tunnels)
{
	static char out[65536], held[64];
	static pid_t pid;
	struct zm_fixture_pool *p = &self->p;
	int gen = 0;

	ASSERT_EQ(in_pod(p, "a", out, sizeof(out), "seq 1"), 0);
	/* A stream held open across the renewal, on the first tunnel. */
	snprintf(held, sizeof(held), "/tmp/zm-pool-held-%d", getpid());
	pid = fork();
	if (pid == 0) {
		char cmd[8192];

		snprintf(cmd, sizeof(cmd), "%s lab exec a -n mesh --name %s -- python3 %s hold 36 >%s 2>&1",
			 lab_ctl(), p->k.lab, p->py, held);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	ASSERT_GT(pid, 0);
	test_defer(wait_child, &pid);
	for (int i = 0; i < 60 && gen < 2; i++) {
		sleep(1);
		if (test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- sh -c \"curl -sf localhost:15000/certs | "
			    "python3 -c 'import json,sys; print([c[\\\"generation\\\"] for c in json.load(sys.stdin) "
			    "if c[\\\"pod\\\"]==\\\"mesh_a\\\"][0])'\"", lab_ctl(), p->k.n1, p->k.lab) == 0)
			gen = atoi(out);
	}
	ASSERT_GE(gen, 2);
	/* New streams go onto a new tunnel made with the new certificate... */
	ASSERT_EQ(in_pod(p, "a", out, sizeof(out), "seq 3"), 0);
	EXPECT_STRSTR(out, "ok 3 tunnels 2");
	/* ...while the held stream finishes on the old one, which then closes. */
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	pid = 0;
	ASSERT_EQ(test_sh(out, sizeof(out), "cat %s", held), 0);
	unlink(held);
	EXPECT_STRSTR(out, "tunnels 1\nheld 2\n");
	usleep(500000);
	ASSERT_EQ(in_pod(p, "a", out, sizeof(out), "tunnels"), 0);
	EXPECT_STRSTR(out, "tunnels 1");
}
