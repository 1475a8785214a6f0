// SPDX-License-Identifier: Apache-2.0
/*
 * The lab's sidecar modes (the benchmarks' comparisons): a proxy per meshed
 * pod behind iptables REDIRECT, mutual TLS between the pods' proxies.
 * `--mode sidecar` runs our ztunnel per pod, `--mode sidecar-haproxy` HAProxy.
 * What travels between nodes is watched on the wire (AF_PACKET in the
 * destination node's netns): TLS to 15008, never the app's plaintext.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

struct lab {
	struct labkit k;
	char sniff[64];
};

/* Counts, on every interface of the netns it runs in, for argv[1] seconds:
 * TCP segments to or from 15008, TLS handshake records, and frames holding
 * the plaintext marker argv[2]. */
static const char sniffer[] =
	"import socket, struct, sys, time\n"
	"s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))\n"
	"s.settimeout(0.1)\n"
	"end = time.time() + float(sys.argv[1]); marker = sys.argv[2].encode()\n"
	"tls = plain = hb = 0\n"
	"print('listening', flush=True)\n"
	"while time.time() < end:\n"
	"    try:\n"
	"        f = s.recv(65535)\n"
	"    except socket.timeout:\n"
	"        continue\n"
	"    if marker in f:\n"
	"        plain += 1\n"
	"    if len(f) < 34 or f[12:14] != b'\\x08\\x00' or f[23] != 6:\n"
	"        continue\n"
	"    ip = f[14:]; tcp = ip[(ip[0] & 15) * 4:]\n"
	"    sport, dport = struct.unpack('!HH', tcp[:4]); pl = tcp[(tcp[12] >> 4) * 4:]\n"
	"    if 15008 in (sport, dport):\n"
	"        hb += 1\n"
	"        if b'\\x16\\x03\\x01' in pl[:64]:\n"
	"            tls += 1\n"
	"print(f'hbone={int(hb > 0)} tls_handshake={int(tls > 0)} plaintext={plain}')\n";

static int lab_up(struct lab *l, const char *mode, const char *prefix)
{
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1, .labels = "{app: a}" },
		{ .name = "b", .ns = "mesh", .node = 2, .labels = "{app: b}" },
		{ .name = "b2", .ns = "mesh", .node = 1, .labels = "{app: b2}" },
		{ .name = "c", .ns = "plain", .node = 1, .labels = "{app: c}" },
	};
	char flags[64];

	lab_init(&l->k, prefix, "sn");
	snprintf(l->sniff, sizeof(l->sniff), "/tmp/zm-sidecar-%s.py", l->k.lab);
	snprintf(flags, sizeof(flags), "--mode %s", mode);
	if (test_write_file(l->sniff, sniffer) || lab_write(&l->k, LAB_NS_MESH LAB_DOC LAB_NS_PLAIN, pods, 4))
		return -1;
	return lab_start(&l->k, NULL, flags, NULL, 0);
}

static void lab_down(struct lab *l)
{
	if (!l->k.lab[0])
		return;
	lab_stop(&l->k);
	unlink(l->sniff);
}

/* A request from meshed pod a to b on the other node, watched from b's node. */
static int watch_request(struct lab *l, char *out, size_t sz)
{
	return test_sh(out, sz,
		       "%s lab exec --node %s --name %s -- python3 %s 3 zm-secret-marker > %s.out & "
		       "for i in $(seq 50); do grep -q listening %s.out 2>/dev/null && break; sleep 0.1; done; "
		       "%s lab exec a -n mesh --name %s -- curl -sf -m 3 http://10.244.1.2:8080/zm-secret-marker "
		       "| grep -q '\"pod\":\"b\"' || echo curl-failed; wait; tail -1 %s.out; rm -f %s.out",
		       lab_ctl(), l->k.n2, l->k.lab, l->sniff, l->sniff, l->sniff, lab_ctl(), l->k.lab, l->sniff, l->sniff);
}

/* What a client without a certificate gets on b's 15008, from the plain pod c. */
static const char plain_to_15008[] =
	"python3 -c \"import socket\n"
	"s = socket.create_connection(('10.244.1.2', 15008), timeout=3)\n"
	"try:\n"
	"    s.sendall(b'GET / HTTP/1.1\\r\\nHost: b\\r\\n\\r\\n'); r = s.recv(100)\n"
	"except (ConnectionResetError, socket.timeout) as e:\n"
	"    r = type(e).__name__.encode()\n"
	"print('answer', 'cut-off' if r in (b'', b'ConnectionResetError') else r)\"";

static void common_checks(struct lab *l)
{
	static char out[65536];

	/* Meshed pods reach each other across nodes and on the same node. */
	ASSERT_EQ(lab_in_pod(l->k.lab, "a", "mesh", out, sizeof(out), "echoapp client http://10.244.1.2:8080/ -n 5"), 0);
	EXPECT_STRSTR(out, "pod: b=5");
	ASSERT_EQ(lab_in_pod(l->k.lab, "a", "mesh", out, sizeof(out), "echoapp client http://10.244.0.3:8080/ -n 5"), 0);
	EXPECT_STRSTR(out, "pod: b2=5");
	ASSERT_EQ(lab_in_pod(l->k.lab, "a", "mesh", out, sizeof(out), "echoapp client tcp://10.244.1.2:9000 -n 3"), 0);
	EXPECT_STRSTR(out, "pod: b=3");
	/* The app still sees where it connected (getpeername after REDIRECT). */
	ASSERT_EQ(lab_in_pod(l->k.lab, "a", "mesh", out, sizeof(out), "python3 -c \"import socket;"
			 "s=socket.create_connection(('10.244.1.2',9000));print(s.getpeername())\""), 0);
	EXPECT_STRSTR(out, "('10.244.1.2', 9000)");
	/* On the wire: a TLS handshake to 15008 and never the request itself. */
	ASSERT_EQ(watch_request(l, out, sizeof(out)), 0);
	/* (ztunnel sidecars pool their HBONE connections: the request may ride
	 * one whose handshake was earlier; HAProxy makes one per request.) */
	EXPECT_STRSTR(out, "hbone=1 ");
	EXPECT_STRSTR(out, " plaintext=0\n");
	/* A pod without a sidecar still reaches a meshed app (inbound 15006). */
	ASSERT_EQ(lab_in_pod(l->k.lab, "c", "plain", out, sizeof(out), "echoapp client http://10.244.1.2:8080/ -n 3"), 0);
	EXPECT_STRSTR(out, "pod: b=3");
	/* ... but not its mTLS port in plaintext. */
	ASSERT_EQ(lab_in_pod(l->k.lab, "c", "plain", out, sizeof(out), plain_to_15008), 0);
	EXPECT_STRSTR(out, "answer cut-off");
	/* No BPF capture in sidecar modes. */
	EXPECT_NE(test_sh(NULL, 0, "ls /sys/fs/bpf/zmesh/zm-%s-%s", l->k.lab, l->k.n1), 0);
}

FIXTURE(sc) {
	struct lab l;
};

FIXTURE_SETUP(sc)
{
	REQUIRE_ROOT();
	ASSERT_EQ(lab_up(&self->l, "sidecar", "sc"), 0);
}

FIXTURE_TEARDOWN(sc)
{
	lab_down(&self->l);
}

TEST_F(sc, ztunnel_sidecars_carry_mtls_between_pods)
{
	static char out[65536];
	struct lab *l = &self->l;

	common_checks(l);
	/* HBONE between the sidecars: both know the verified identities. */
	ASSERT_EQ(lab_in_pod(l->k.lab, "b", "mesh", out, sizeof(out), "curl -s 127.0.0.1:15020/metrics"), 0);
	EXPECT_STRSTR(out, "istio_tcp_connections_opened_total{reporter=\"destination\",source_workload=\"a\","
		      "source_workload_namespace=\"mesh\",source_principal=\"spiffe://cluster.local/ns/mesh/sa/default\","
		      "destination_workload=\"b\",destination_workload_namespace=\"mesh\","
		      "destination_principal=\"spiffe://cluster.local/ns/mesh/sa/default\","
		      "connection_security_policy=\"mutual_tls\"}");
	/* c has no sidecar: its connections arrive as plaintext on 15006. */
	EXPECT_STRSTR(out, "reporter=\"destination\",source_workload=\"c\"");
	EXPECT_STRSTR(out, "connection_security_policy=\"none\"");
	/* One proxy per meshed pod, in its own cgroup; none for c. */
	EXPECT_EQ(test_sh(out, sizeof(out), "ls $(awk '$3==\"cgroup2\"{print $2; exit}' /proc/mounts)/zmesh/%s/sidecars/*/ -d | xargs -n1 basename | tr '\\n' ' '", l->k.lab), 0);
	EXPECT_STREQ(out, "mesh_a mesh_b mesh_b2 ");
}

TEST_F(sc, a_direct_connection_to_the_proxy_ports_is_refused_not_looped)
{
	static char out[65536];
	struct lab *l = &self->l;

	/* Straight to 15001 (never redirected): conntrack reports 15001 itself
	 * as the destination; relaying it would connect to ourselves forever. */
	/* Closed by the proxy: a FIN, or a reset when our byte arrived first. */
	ASSERT_EQ(lab_in_pod(l->k.lab, "a", "mesh", out, sizeof(out), "python3 -c \"import socket\n"
			 "s = socket.create_connection(('127.0.0.1', 15001), timeout=3)\n"
			 "try:\n s.sendall(b'x'); r = s.recv(10)\nexcept ConnectionResetError: r = b''\n"
			 "print('answer', r)\""), 0);
	EXPECT_STRSTR(out, "answer b''");
	ASSERT_EQ(lab_in_pod(l->k.lab, "a", "mesh", out, sizeof(out), "curl -s 127.0.0.1:15020/metrics"), 0);
	EXPECT_FALSE(strstr(out, "reporter=\"source\",source_workload=\"a\",source_workload_namespace=\"mesh\","
			   "source_principal=\"unknown\""));
}

TEST_F(sc, without_its_sidecar_a_pod_is_cut_off_not_bypassed)
{
	static char out[65536];
	struct lab *l = &self->l;

	/* The capture stays when the proxy dies: connects are refused, never
	 * sent around it in plaintext (fail closed), both ways. */
	ASSERT_EQ(test_sh(NULL, 0, "echo 1 > $(awk '$3==\"cgroup2\"{print $2; exit}' /proc/mounts)/zmesh/%s/sidecars/mesh_a/cgroup.kill",
			  l->k.lab), 0);
	ASSERT_EQ(test_sh(NULL, 0, "echo 1 > $(awk '$3==\"cgroup2\"{print $2; exit}' /proc/mounts)/zmesh/%s/sidecars/mesh_b/cgroup.kill",
			  l->k.lab), 0);
	usleep(200000);
	EXPECT_NE(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- curl -sf -m 3 http://10.244.1.2:8080/",
			  lab_ctl(), l->k.lab), 0);
	EXPECT_NE(test_sh(out, sizeof(out), "%s lab exec c -n plain --name %s -- curl -sf -m 3 http://10.244.1.2:8080/",
			  lab_ctl(), l->k.lab), 0);
	/* b2 still has its sidecar: the same client reaches it from c. */
	EXPECT_EQ(lab_in_pod(l->k.lab, "c", "plain", out, sizeof(out), "curl -sf -m 3 http://10.244.0.3:8080/"), 0);
}

FIXTURE(hp) {
	struct lab l;
	char tls_probe[8192];
};

static const char tls_probe[] =
	"python3 -c \"import socket, ssl\n"
	"def go(cert):\n"
	"    s = socket.create_connection(('10.244.1.2', 15008), timeout=3)\n"
	"    s.sendall(bytes.fromhex('0d0a0d0a000d0a515549540a20000000'))\n"
	"    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE\n"
	"    c.minimum_version = ssl.TLSVersion.TLSv1_3\n"
	"    if cert: c.load_cert_chain(cert)\n"
	"    try:\n"
	"        t = c.wrap_socket(s); t.sendall(b'x'); t.recv(10); return 'ok'\n"
	"    except ssl.SSLError as e: return e.reason\n"
	"    except OSError as e: return type(e).__name__\n"
	"print('without=%%s with=%%s' %% (go(None), go('/run/zmesh/lab/%s/sidecars/mesh_a/cert.pem')))\"";

FIXTURE_SETUP(hp)
{
	REQUIRE_ROOT();
	if (access("/usr/sbin/haproxy", X_OK))
		SKIP("no haproxy (make deps installs it)");
	ASSERT_EQ(lab_up(&self->l, "sidecar-haproxy", "hp"), 0);
	snprintf(self->tls_probe, sizeof(self->tls_probe), tls_probe, self->l.k.lab);
}

FIXTURE_TEARDOWN(hp)
{
	lab_down(&self->l);
}

TEST_F(hp, haproxy_sidecars_carry_mtls_between_pods)
{
	static char out[65536];
	struct lab *l = &self->l;

	common_checks(l);
	/* TLS 1.3 with a client certificate is required on 15008 (after the
	 * PROXY v2 header the peer sidecar sends): without one the server
	 * alerts; with a pod's certificate from the mesh CA it does not. */
	ASSERT_EQ(lab_in_pod(l->k.lab, "c", "plain", out, sizeof(out), self->tls_probe), 0);
	EXPECT_STRSTR(out, "without=TLSV13_ALERT_CERTIFICATE_REQUIRED ");
	EXPECT_FALSE(strstr(out, "with=TLSV13_ALERT_CERTIFICATE_REQUIRED"));
	/* HAProxy runs in the proxy group, so its own connects are not captured. */
	EXPECT_EQ(test_sh(out, sizeof(out), "for p in $(cat $(awk '$3==\"cgroup2\"{print $2; exit}' /proc/mounts)/zmesh/%s/sidecars/mesh_b/cgroup.procs); do "
			  "awk '/^Gid/{print $3}' /proc/$p/status; done | sort -u", l->k.lab), 0);
	EXPECT_STREQ(out, "1337\n");
}

