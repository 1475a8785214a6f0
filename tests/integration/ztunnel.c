// SPDX-License-Identifier: Apache-2.0
/* ztunnel in the lab: captured traffic crosses both nodes' ztunnels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"
#include "fp_echo.h"

FIXTURE(zt) {
	struct labkit k;
};

FIXTURE_SETUP(zt)
{
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1, .labels = "{app: a}" },
		{ .name = "b", .ns = "mesh", .node = 2, .labels = "{app: b}" },
		{ .name = "b2", .ns = "mesh", .node = 1, .labels = "{app: b}" },
		{ .name = "c", .ns = "plain", .node = 1, .labels = "{app: c}" },
	};

	REQUIRE_ROOT();
	lab_init(&self->k, "z", "zn");
	ASSERT_OK(lab_write(&self->k, LAB_NS_MESH LAB_DOC LAB_NS_PLAIN LAB_DOC
			    "apiVersion: v1\nkind: Service\nmetadata: {name: bsvc, namespace: mesh}\n"
			    "spec:\n  selector: {app: b}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n",
			    pods, 4));
	ASSERT_OK(lab_start_ready(&self->k, NULL));
}

FIXTURE_TEARDOWN(zt)
{
	lab_stop(&self->k);
}

TEST_F(zt, pod_to_pod_and_service_through_both_ztunnels)
{
	static char out[65536];

	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "echoapp client http://10.244.1.2:8080/ -n 5"), 0);
	EXPECT_STRSTR(out, "pod: b=5");
	/* The app still sees where it connected (getpeername). */
	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "python3 -c \"import socket;"
			 "s=socket.create_connection(('10.244.1.2',9000));print(s.getpeername())\""), 0);
	EXPECT_STRSTR(out, "('10.244.1.2', 9000)");
	/* A Service VIP: ztunnel picks the endpoint. */
	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "echoapp client http://bsvc:80/ -n 30 -c 3"), 0);
	EXPECT_STRSTR(out, "requests 30, ok 30, errors 0");

	/* Meshed to meshed: HBONE, so both sides know the verified identities. */
	lab_metrics(self->k.lab, self->k.n1, out, sizeof(out));
	EXPECT_STRSTR(out, "istio_tcp_connections_opened_total{reporter=\"source\",source_workload=\"a\","
		      "source_workload_namespace=\"mesh\",source_principal=\"spiffe://cluster.local/ns/mesh/sa/default\","
		      "destination_workload=\"b\",destination_workload_namespace=\"mesh\","
		      "destination_principal=\"spiffe://cluster.local/ns/mesh/sa/default\","
		      "connection_security_policy=\"mutual_tls\"}");
	lab_metrics(self->k.lab, self->k.n2, out, sizeof(out));
	EXPECT_STRSTR(out, "istio_tcp_connections_opened_total{reporter=\"destination\",source_workload=\"a\","
		      "source_workload_namespace=\"mesh\",source_principal=\"spiffe://cluster.local/ns/mesh/sa/default\"");
	EXPECT_STRSTR(out, "istio_tcp_sent_bytes_total{reporter=\"destination\"");

	/* One JSON access-log line per connection, in each ztunnel's log. */
	ASSERT_EQ(test_sh(out, sizeof(out), "grep '\"type\":\"access\"' /run/zmesh/lab/%s/logs/ztunnel-%s.log | "
			  "grep '\"protocol\":\"HBONE\"' | head -1 | python3 -c \"import json,sys; d=json.load(sys.stdin); "
			  "print(d['reporter'], d['src.identity'], d['dst.identity'], d['dst.addr'], d['result'], "
			  "d['bytes_sent'] > 0)\"", self->k.lab, self->k.n1), 0);
	EXPECT_STREQ(out, "source spiffe://cluster.local/ns/mesh/sa/default spiffe://cluster.local/ns/mesh/sa/default "
		     "10.244.1.2:8080 ok True\n");
	/* Each tunnelled stream carries a W3C traceparent, seen by both ends. */
	ASSERT_EQ(test_sh(out, sizeof(out), "cat /run/zmesh/lab/%s/logs/ztunnel-%s.log /run/zmesh/lab/%s/logs/ztunnel-%s.log | "
			  "grep '\"protocol\":\"HBONE\"' | python3 -c \"import json,sys,re,collections; "
			  "c=collections.Counter(json.loads(l)['traceparent'] for l in sys.stdin); "
			  "print(all(re.fullmatch('00-[0-9a-f]{32}-[0-9a-f]{16}-00',t) for t in c), max(c.values()))\"",
			  self->k.lab, self->k.n1, self->k.lab, self->k.n2), 0);
	EXPECT_STREQ(out, "True 2\n");
}

TEST_F(zt, half_close_and_reset_cross_the_mesh)
{
	char out[4096];

	/* 1 MiB up, FIN, everything echoed back, then FIN back. */
	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "python3 -c \"import socket,threading;"
			 "s=socket.create_connection(('10.244.1.2',9000),timeout=10);d=bytes(range(256))*4096;"
			 "t=threading.Thread(target=lambda:(s.sendall(d),s.shutdown(socket.SHUT_WR)));t.start();"
			 "r=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n r+=c\n"
			 "t.join();print('same' if r==d else 'differ',len(r))\""), 0);
	EXPECT_STRSTR(out, "same 1048576");
	/* Nothing listens on b:9999: the client sees a reset, promptly. */
	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "python3 -c \"import socket;"
			 "s=socket.create_connection(('10.244.1.2',9999),timeout=5)\n"
			 "try:\n s.sendall(b'x');print('recv',s.recv(10))\nexcept Exception as e: print(type(e).__name__)\""), 0);
	EXPECT_STRSTR(out, "ConnectionResetError");
}

TEST_F(zt, plaintext_from_outside_the_mesh_is_captured_inbound)
{
	static char out[65536];

	ASSERT_EQ(lab_in_pod(self->k.lab, "c", "plain", out, sizeof(out), "echoapp client http://10.244.1.2:8080/ -n 3"), 0);
	EXPECT_STRSTR(out, "pod: b=3");
	lab_metrics(self->k.lab, self->k.n2, out, sizeof(out));
	EXPECT_STRSTR(out, "istio_tcp_connections_opened_total{reporter=\"destination\",source_workload=\"c\","
		      "source_workload_namespace=\"plain\"");
	/* Plaintext to the HBONE port is refused (it is mTLS or nothing). */
	EXPECT_NE(test_sh(out, sizeof(out), "%s lab exec c -n plain --name %s -- echoapp client "
			  "tcp://10.244.1.2:15008 -n 1 --timeout 2000", lab_ctl(), self->k.lab), 0);
	/* openssl s_client trusting the mesh CA: the server's certificate checks
	 * out, but a client without a mesh certificate is cut off. */
	test_sh(out, sizeof(out), "%s lab exec c -n plain --name %s -- sh -c '(sleep 1; printf "
		"\"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n\"; sleep 1) | timeout 5 openssl s_client "
		"-connect 10.244.1.2:15008 -alpn h2 -tls1_3 -CAfile /run/zmesh/lab/%s/ca/root-cert.pem 2>&1'",
		lab_ctl(), self->k.lab, self->k.lab);
	EXPECT_STRSTR(out, "Verify return code: 0 (ok)");
	EXPECT_STRSTR(out, "Cipher is TLS_AES_");
	EXPECT_STRSTR(out, "read:errno=104");
}

TEST_F(zt, restart_keeps_capture_and_recovers)
{
	char out[4096];
	int zpid;

	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "echoapp client http://10.244.1.2:8080/ -n 2"), 0);
	/* kill -9: the capture stays pinned, so a's traffic is refused, not leaked. */
	zpid = lab_ztunnel_pid(self->k.lab, self->k.n1);
	ASSERT_GT(zpid, 0);
	ASSERT_EQ(test_sh(NULL, 0, "kill -9 %d", zpid), 0);
	usleep(200000);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- echoapp client "
			  "http://10.244.1.2:8080/ -n 1 --timeout 2000", lab_ctl(), self->k.lab), 1);
	EXPECT_STRSTR(out, "errors 1");
	/* A new ztunnel on the node takes over the pinned capture. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- sh -c '%s/ztunnel --node %s "
			  "--lab %s >/run/zmesh/lab/%s/logs/ztunnel-restart.log 2>&1 &'", lab_ctl(), self->k.n1,
			  self->k.lab, test_build_dir(), self->k.n1, self->k.lab, self->k.lab), 0);
	ASSERT_OK(lab_wait_ready(self->k.lab, self->k.n1));
	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "echoapp client http://10.244.1.2:8080/ -n 2"), 0);
	EXPECT_STRSTR(out, "pod: b=2");
}

/* Stop a background capture or server started with `... & echo $!`. */
static void kill_pid_file(void *arg)
{
	test_sh(NULL, 0, "[ -s %s ] && kill -INT $(cat %s) 2>/dev/null; sleep 0.5; rm -f %s", (char *)arg,
		(char *)arg, (char *)arg);
}

TEST_F(zt, the_wire_carries_only_tls13)
{
	static char out[65536];
	static char pcap[64], pidf[64];

	snprintf(pcap, sizeof(pcap), "/tmp/zm-zt-%d.pcap", getpid());
	snprintf(pidf, sizeof(pidf), "/tmp/zm-zt-%d.pid", getpid());
	test_defer(kill_pid_file, pidf);
	/* Everything between the pods, as node 2 sees it on the wire. */
	ASSERT_EQ(test_sh(NULL, 0, "%s lab exec --node %s --name %s -- sh -c 'tcpdump -i any -U -n -s 0 -w %s "
			  "host 10.244.0.2 and host 10.244.1.2 >%s.log 2>&1 & echo $! > %s'",
			  lab_ctl(), self->k.n2, self->k.lab, pcap, pcap, pidf), 0);
	/* Capturing only once it says so. */
	for (int i = 0; i < 100 && test_sh(NULL, 0, "grep -q 'listening on' %s.log", pcap); i++)
		usleep(100000);
	ASSERT_EQ(test_sh(out, sizeof(out), "cat %s.log", pcap), 0);
	ASSERT_STRSTR(out, "listening on");
	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "python3 -c \"import socket;"
			 "s=socket.create_connection(('10.244.1.2',9000),timeout=5);"
			 "s.sendall(b'zmesh-secret-marker\\n');r=b''\n"
			 "while not r.endswith(b'\\n'): r+=s.recv(100)\n"
			 "print(r)\""), 0);
	EXPECT_STRSTR(out, "zmesh-secret-marker");
	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "curl -s http://10.244.1.2:8080/zmesh-secret-path"), 0);
	/* Give a loaded machine time to get the packets to the file. */
	for (int i = 0; i < 50 && test_sh(NULL, 0, "tcpdump -r %s -n 2>/dev/null | grep -q '\\.15008'", pcap); i++)
		usleep(100000);
	kill_pid_file(pidf);
	/* Packets were seen, all of them on 15008, none carries the payload in clear. */
	ASSERT_EQ(test_sh(out, sizeof(out), "tshark -r %s -d tcp.port==15008,tls -T fields -e tcp.dstport 2>/dev/null | "
			  "sort -u | tr '\\n' ' '", pcap), 0);
	EXPECT_STRSTR(out, "15008");
	EXPECT_FALSE(strstr(out, "9000"));
	EXPECT_FALSE(strstr(out, "8080"));
	EXPECT_NE(test_sh(NULL, 0, "grep -a -c zmesh-secret %s", pcap), 0);
	/* Every handshake is TLS 1.3 (the ServerHello's supported_versions). */
	ASSERT_EQ(test_sh(out, sizeof(out), "tshark -r %s -d tcp.port==15008,tls -Y 'tls.handshake.type == 2' "
			  "-T fields -e tls.handshake.extensions.supported_version 2>/dev/null | sort | uniq -c",
			  pcap), 0);
	EXPECT_STRSTR(out, " 0x0304\n");
	EXPECT_FALSE(strstr(out, "0x0303"));
	ASSERT_EQ(test_sh(out, sizeof(out), "tshark -r %s -d tcp.port==15008,tls -Y 'tls.record.opaque_type == 23 || tls.record.content_type == 23' "
			  "2>/dev/null | wc -l", pcap), 0);
	EXPECT_GT(atoi(out), 0);	/* application data went through, encrypted */
	test_sh(NULL, 0, "rm -f %s %s.log", pcap, pcap);
}

TEST_F(zt, prometheus_scrapes_the_istio_series)
{
	static char out[65536], cfg[64], dir[64], pidf[64];
	FILE *f;
	bool found = false;

	snprintf(cfg, sizeof(cfg), "/tmp/zm-zt-prom-%d.yml", getpid());
	snprintf(dir, sizeof(dir), "/tmp/zm-zt-prom-%d", getpid());
	snprintf(pidf, sizeof(pidf), "/tmp/zm-zt-prom-%d.pid", getpid());
	f = fopen(cfg, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: ztunnel\n"
		"  static_configs:\n  - targets: ['127.0.0.1:15020']\n");
	fclose(f);
	test_defer(kill_pid_file, pidf);
	ASSERT_EQ(test_sh(NULL, 0, "%s lab exec --node %s --name %s -- sh -c 'prometheus --config.file=%s "
			  "--storage.tsdb.path=%s --web.listen-address=127.0.0.1:9090 >%s.log 2>&1 & echo $! > %s'",
			  lab_ctl(), self->k.n2, self->k.lab, cfg, dir, dir, pidf), 0);
	ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "echoapp client http://10.244.1.2:8080/ -n 3"), 0);
	for (int i = 0; i < 60 && !found; i++) {
		sleep(1);
		test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -s "
			"'http://127.0.0.1:9090/api/v1/query?query=istio_tcp_connections_opened_total"
			"%%7Breporter%%3D%%22destination%%22%%7D'", lab_ctl(), self->k.n2, self->k.lab);
		found = strstr(out, "\"source_workload\":\"a\"") != NULL;
	}
	EXPECT_TRUE(found);
	EXPECT_STRSTR(out, "\"connection_security_policy\":\"mutual_tls\"");
	EXPECT_STRSTR(out, "\"source_principal\":\"spiffe://cluster.local/ns/mesh/sa/default\"");
	kill_pid_file(pidf);
	test_sh(NULL, 0, "rm -rf %s %s %s.log", dir, cfg, dir);
}

/* A number from a JSON document given by a shell command (python picks it). */
static long long json_num(const char *cmd, const char *expr)
{
	char out[256];

	if (test_sh(out, sizeof(out), "%s | python3 -c \"import json,sys; d=json.load(sys.stdin); print(%s)\"",
		    cmd, expr))
		return -1;
	return atoll(out);
}

static long long fp_counter(struct zm_fixture_zt *self, const char *name)
{
	char cmd[4400], expr[128];

	snprintf(cmd, sizeof(cmd), "%s bpf status --node %s --name %s -o json", lab_ctl(), self->k.n1, self->k.lab);
	snprintf(expr, sizeof(expr), "d[0]['counters']['%s']", name);
	return json_num(cmd, expr);
}

TEST_F(zt, fast_path_through_ztunnel_bulk_half_close_and_reset)
{
	static char out[16384];
	char cip[64];
	const char *script;
	long long bytes0, blocking0;

	ASSERT_OK_PTR(script = write_fp_script());
	/* c is outside the mesh, on a's node: ztunnel relays it as plain TCP. */
	ASSERT_EQ(lab_pod_ip(self->k.lab, "c", cip, sizeof(cip)), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s bpf fastpath on --node %s --name %s", lab_ctl(), self->k.n1,
			  self->k.lab), 0);
	bytes0 = fp_counter(self, "fastpath_bytes");
	blocking0 = fp_counter(self, "fastpath_blocking");
	ASSERT_GE(bytes0, 0);
	/* app -> 15001 -> ztunnel -> c and back, every size, half-close or not,
	 * eight at once; then blocking apps (kept off the fast path). */
	EXPECT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "true"), 0);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- python3 %s %s 9000 "
			  "1048576:nb:half:1 8388608:nb:half:1 67108864:nb:half:1 8388608:nb:full:1 "
			  "4194304:nb:half:8 8388608:blk:half:1 1048576:blk:half:4",
			  lab_ctl(), self->k.lab, script, cip), 0);
	test_log("%s", out);
	EXPECT_STRSTR(out, "67108864:nb:half:1 ok");
	EXPECT_STRSTR(out, "8388608:blk:half:1 ok");
	EXPECT_FALSE(strstr(out, "FAIL"));
	test_log("fast path bytes %lld", fp_counter(self, "fastpath_bytes") - bytes0);
	EXPECT_GE(fp_counter(self, "fastpath_bytes") - bytes0, 1 << 20);
	EXPECT_EQ(fp_counter(self, "fastpath_blocking") - blocking0, 5);
	/* Nothing listens on c:9999: the app sees ztunnel's reset (on the same
	 * node it can come before the non-blocking connect is checked). */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- python3 -c \"import socket\n"
			  "try:\n s=socket.create_connection(('%s',9999),timeout=5)\n"
			  " s.sendall(b'x');print('recv',s.recv(10))\nexcept Exception as e: print(type(e).__name__)\"",
			  lab_ctl(), self->k.lab, cip), 0);
	EXPECT_STRSTR(out, "ConnectionResetError");
}

/* HTTP/2 flow control end to end: an app that does not read for a while
 * holds back its peer (no buffer grows, nothing is reset), bulk echoes of
 * any size come back intact, across nodes and on one node. */
TEST_F(zt, hbone_flow_control_holds_back_a_sender_for_a_slow_reader)
{
	static char out[4096], script[128];
	static const char py[] =
		"import socket, threading, sys, os, time\n"
		"size = int(sys.argv[2]); slow = len(sys.argv) > 3\n"
		"s = socket.create_connection((sys.argv[1], 9000), timeout=30)\n"
		"d = os.urandom(size)\n"
		"t = threading.Thread(target=lambda: (s.sendall(d), s.shutdown(socket.SHUT_WR))); t.start()\n"
		"if slow: time.sleep(3)\n"
		"r = bytearray()\n"
		"while True:\n"
		"    c = s.recv(1 << 16)\n"
		"    if not c: break\n"
		"    r += c\n"
		"t.join()\n"
		"print('same' if bytes(r) == d else 'differ', len(r))\n";
	FILE *f;

	snprintf(script, sizeof(script), "/tmp/zm-zt-fc-%d.py", getpid());
	f = fopen(script, "w");
	ASSERT_OK_PTR(f);
	fputs(py, f);
	fclose(f);
	static const struct { const char *args, *want; } runs[] = {
		{ "10.244.1.2 16777216 slow", "same 16777216" },	/* across nodes */
		{ "10.244.0.3 16777216 slow", "same 16777216" },	/* on one node */
		{ "10.244.1.2 67108864", "same 67108864" },
	};
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "python3 %s %s", script, runs[i].args);
		ASSERT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), cmd), 0);
		EXPECT_STRSTR(out, runs[i].want);
	}
	unlink(script);
	EXPECT_NE(test_sh(NULL, 0, "grep -q 'does not read' /run/zmesh/lab/%s/logs/ztunnel-*.log", self->k.lab), 0);
}
