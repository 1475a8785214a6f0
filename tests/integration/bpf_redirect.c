// SPDX-License-Identifier: Apache-2.0
/*
 * BPF capture in the lab, real kernel: enrolled pods' connects land at the
 * node's ztunnel listener (a stand-in made here), the original destination
 * is recovered, others go direct, inbound is steered, enrolment is live.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"
#include "zmesh/bpf_loader.h"
#include "zmesh/lab.h"
#include "zmesh/netns.h"
#include "fp_echo.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

FIXTURE(mesh) {
	struct labkit k;
	char k1[96], k2[96];
	struct zm_lab state;
	struct zm_bpf *b1, *b2;
};

static const char *pod_ip(struct zm_fixture_mesh *self, const char *ns, const char *pod, char *buf)
{
	struct zm_lab_pod *p = zm_lab_pod_find(&self->state, ns, pod);

	return p ? inet_ntop(AF_INET, &p->ip, buf, INET_ADDRSTRLEN) : "0.0.0.0";
}

FIXTURE_SETUP(mesh)
{
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1, .labels = "{app: a}" },
		{ .name = "b", .ns = "mesh", .node = 2, .labels = "{app: b}" },
		{ .name = "d", .ns = "mesh", .node = 1, .labels = "{app: d, istio.io/dataplane-mode: none}" },
		{ .name = "c", .ns = "plain", .node = 1, .labels = "{app: c}" },
	};
	struct zm_error e = { 0 };
	char out[4096];

	REQUIRE_ROOT();
	lab_init(&self->k, "b", "n");
	ASSERT_OK(lab_write(&self->k, LAB_NS_MESH LAB_DOC LAB_NS_PLAIN, pods, 4));
	ASSERT_EQ(lab_start(&self->k, NULL, "--no-mesh", out, sizeof(out)), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s bpf sync --name %s", lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "+mesh_a");
	EXPECT_STRSTR(out, "+mesh_b");
	EXPECT_FALSE(strstr(out, "mesh_d"));
	EXPECT_FALSE(strstr(out, "plain_c"));
	ASSERT_OK(zm_lab_load(self->k.lab, &self->state, &e));
	/* BPF state is keyed by the node's netns name (unique per lab). */
	snprintf(self->k1, sizeof(self->k1), "%s", zm_lab_node_find(&self->state, self->k.n1)->netns);
	snprintf(self->k2, sizeof(self->k2), "%s", zm_lab_node_find(&self->state, self->k.n2)->netns);
	struct zm_bpf_opts o1 = { .node = self->k1 }, o2 = { .node = self->k2 };
	ASSERT_OK(zm_bpf__open(&o1, &self->b1, &e));
	ASSERT_OK(zm_bpf__open(&o2, &self->b2, &e));
}

FIXTURE_TEARDOWN(mesh)
{
	if (!self->k.lab[0])
		return;
	zm_bpf__close(self->b1);
	zm_bpf__close(self->b2);
	zm_lab_free(&self->state);
	lab_stop(&self->k);
}

/* A listener on @addr:@port inside pod @pod's netns (made from this
 * process, which is in no pod's cgroup: as ztunnel does it). */
static int listen_in_pod(struct zm_fixture_mesh *self, const char *ns, const char *pod,
			 const char *addr, int port)
{
	struct zm_lab_pod *p = zm_lab_pod_find(&self->state, ns, pod);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int saved, fd, one = 1;

	if (!p || zm_netns_enter(p->netns, &saved))
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, addr, &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16))) {
		close(fd);
		fd = -1;
	}
	zm_netns_restore(saved);
	return fd;
}

static int accept_within(int lfd, int ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	if (poll(&p, 1, ms) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* Run a shell command in the background; its output goes to @outfile. */
static pid_t bg(const char *outfile, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static pid_t bg(const char *outfile, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	pid = fork();
	if (pid == 0) {
		int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void slurp(const char *path, char *buf, size_t sz)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sz - 1, f) : 0;

	buf[n] = 0;
	if (f)
		fclose(f);
}

TEST_F(mesh, outbound_is_captured_with_its_original_destination)
{
	char bip[INET_ADDRSTRLEN], out[4096], got[64], tmp[64];
	struct sockaddr_in orig;
	int lfd, cfd, st;
	pid_t pid;

	pod_ip(self, "mesh", "b", bip);
	lfd = listen_in_pod(self, "mesh", "a", "127.0.0.1", 15001);
	ASSERT_GE(lfd, 0);
	snprintf(tmp, sizeof(tmp), "/tmp/zm-bpf-out-%d", getpid());
	pid = bg(tmp, "%s lab exec a -n mesh --name %s -- python3 -c \"import socket;"
		 "s=socket.create_connection(('%s',9000),timeout=5);print('peer',s.getpeername()[0],s.getpeername()[1]);"
		 "s.sendall(b'hi');print('reply',s.recv(100).decode())\"", lab_ctl(), self->k.lab, bip);
	cfd = accept_within(lfd, 10000);
	ASSERT_GE(cfd, 0);
	/* ztunnel's view: where did the app want to go? */
	ASSERT_OK(zm_bpf__orig_dst(self->b1, cfd, &orig));
	snprintf(got, sizeof(got), "%s:%d", inet_ntop(AF_INET, &orig.sin_addr, tmp + 32, 32),
		 ntohs(orig.sin_port));
	snprintf(out, sizeof(out), "%s:9000", bip);
	EXPECT_STREQ(got, out);
	ASSERT_EQ(write(cfd, "from-fake-ztunnel", 17), 17);
	waitpid(pid, &st, 0);
	close(cfd);
	slurp(tmp, out, sizeof(out));
	unlink(tmp);
	/* The app's view: getpeername shows where it connected, not 15001. */
	snprintf(got, sizeof(got), "peer %s 9000", bip);
	EXPECT_STRSTR(out, got);
	EXPECT_STRSTR(out, "reply from-fake-ztunnel");
	close(lfd);

	struct zm_counters c;
	ASSERT_OK(zm_bpf__counters(self->b1, &c));
	EXPECT_GE(c.redirected, 1);
	EXPECT_GE(c.orig_dst_saved, 1);
}

TEST_F(mesh, others_go_direct)
{
	char bip[INET_ADDRSTRLEN], out[4096];
	int lfd;

	pod_ip(self, "mesh", "b", bip);
	/* A listener on 15001 in c and d: if they were captured, it would answer
	 * (it never accepts, so the client would time out). */
	lfd = listen_in_pod(self, "plain", "c", "127.0.0.1", 15001);
	ASSERT_GE(lfd, 0);
	close(lfd);
	for (int i = 0; i < 50; i++) {
		if (test_sh(out, sizeof(out), "%s lab exec c -n plain --name %s -- echoapp client "
			    "tcp://%s:9000 -n 2 --timeout 2000", lab_ctl(), self->k.lab, bip) == 0)
			break;
		usleep(100000);
	}
	EXPECT_STRSTR(out, "pod: b=2");
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec d -n mesh --name %s -- echoapp client "
			  "tcp://%s:9000 -n 2 --timeout 2000", lab_ctl(), self->k.lab, bip), 0);
	EXPECT_STRSTR(out, "pod: b=2");
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- %s/echoapp client "
			  "tcp://%s:9000 -n 2 --timeout 2000", lab_ctl(), self->k.n1, self->k.lab,
			  test_build_dir(), bip), 0);
	EXPECT_STRSTR(out, "pod: b=2");
	/* Loopback inside an enrolled pod is not captured either. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- echoapp client "
			  "tcp://127.0.0.1:9000 -n 1 --timeout 2000", lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "pod: a=1");
}

TEST_F(mesh, enrolment_follows_labels_live)
{
	char bip[INET_ADDRSTRLEN], out[4096];

	pod_ip(self, "mesh", "b", bip);
	/* Enrolled and no ztunnel listening: the connect is refused (fail closed). */
	EXPECT_NE(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- echoapp client "
			  "tcp://%s:9000 -n 1 --timeout 2000", lab_ctl(), self->k.lab, bip), 0);
	/* Take the namespace out of the mesh: the same pod, no restart, goes direct. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab label namespace mesh istio.io/dataplane-mode- "
			  "--name %s && %s bpf sync --name %s", lab_ctl(), self->k.lab, lab_ctl(),
			  self->k.lab), 0);
	EXPECT_STRSTR(out, "-mesh_a");
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- echoapp client "
			  "tcp://%s:9000 -n 1 --timeout 2000", lab_ctl(), self->k.lab, bip), 0);
	EXPECT_STRSTR(out, "pod: b=1");
	/* A pod label opts a single pod in. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab label pod a -n mesh istio.io/dataplane-mode=ambient "
			  "--name %s && %s bpf sync --name %s && %s bpf status --name %s --node %s",
			  lab_ctl(), self->k.lab, lab_ctl(), self->k.lab, lab_ctl(), self->k.lab, self->k.n1), 0);
	EXPECT_STRSTR(out, "1 pods enrolled");
	EXPECT_STRSTR(out, "mesh_a");
	EXPECT_NE(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- echoapp client "
			  "tcp://%s:9000 -n 1 --timeout 2000", lab_ctl(), self->k.lab, bip), 0);
}

TEST_F(mesh, inbound_lands_at_ztunnel)
{
	char bip[INET_ADDRSTRLEN], out[4096], want[64], tmp[64];
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct in_addr ip;
	int in_fd, hb_fd, cfd, st;
	pid_t pid;

	pod_ip(self, "mesh", "b", bip);
	inet_pton(AF_INET, bip, &ip);
	in_fd = listen_in_pod(self, "mesh", "b", "0.0.0.0", 15006);
	hb_fd = listen_in_pod(self, "mesh", "b", "0.0.0.0", 15008);
	ASSERT_GE(in_fd, 0);
	ASSERT_GE(hb_fd, 0);
	ASSERT_OK(zm_bpf__set_listener(self->b2, ip, ZM_LISTEN_INBOUND, in_fd));
	ASSERT_OK(zm_bpf__set_listener(self->b2, ip, ZM_LISTEN_HBONE, hb_fd));

	snprintf(tmp, sizeof(tmp), "/tmp/zm-bpf-in-%d", getpid());
	pid = bg(tmp, "%s lab exec c -n plain --name %s -- echoapp client tcp://%s:8080 -n 1 --timeout 3000",
		 lab_ctl(), self->k.lab, bip);
	cfd = accept_within(in_fd, 10000);
	ASSERT_GE(cfd, 0);
	/* The plaintext listener sees what the client dialled. */
	ASSERT_OK(getsockname(cfd, (struct sockaddr *)&sa, &sl));
	snprintf(want, sizeof(want), "%s:%d", inet_ntop(AF_INET, &sa.sin_addr, out, sizeof(out)),
		 ntohs(sa.sin_port));
	snprintf(out, sizeof(out), "%s:8080", bip);
	EXPECT_STREQ(want, out);
	close(cfd);
	waitpid(pid, &st, 0);
	unlink(tmp);

	pid = bg(tmp, "%s lab exec c -n plain --name %s -- echoapp client tcp://%s:15008 -n 1 --timeout 3000",
		 lab_ctl(), self->k.lab, bip);
	cfd = accept_within(hb_fd, 10000);
	EXPECT_GE(cfd, 0);
	if (cfd >= 0)
		close(cfd);
	waitpid(pid, &st, 0);
	unlink(tmp);

	/* ztunnel's own connection to the app, made inside the pod's netns,
	 * arrives over lo and is not captured: it reaches the app. */
	{
		struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(8080), .sin_addr = ip };
		int saved, fd;
		ssize_t n;

		ASSERT_OK(zm_netns_enter(zm_lab_pod_find(&self->state, "mesh", "b")->netns, &saved));
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		zm_netns_restore(saved);
		ASSERT_OK(connect(fd, (struct sockaddr *)&dst, sizeof(dst)));
		ASSERT_EQ(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
		n = read(fd, out, sizeof(out) - 1);
		out[n > 0 ? n : 0] = 0;
		close(fd);
		EXPECT_STRSTR(out, "\"pod\":\"b\"");
	}
	struct zm_counters c;
	ASSERT_OK(zm_bpf__counters(self->b2, &c));
	EXPECT_GE(c.inbound, 2);
	close(in_fd);
	close(hb_fd);
}

TEST_F(mesh, strict_pod_without_ztunnel_drops_plaintext)
{
	char bip[INET_ADDRSTRLEN], out[4096], netns[256], nodens[256], id[] = "mesh_b";
	struct zm_lab_pod *b = zm_lab_pod_find(&self->state, "mesh", "b");
	struct zm_counters before, after;
	struct zm_pod_stats st0, st1;
	struct zm_error e = { 0 };

	ASSERT_OK_PTR(b);
	pod_ip(self, "mesh", "b", bip);
	snprintf(netns, sizeof(netns), "/run/netns/%s", b->netns);
	snprintf(nodens, sizeof(nodens), "/run/netns/%s", zm_lab_node_find(&self->state, self->k.n2)->netns);
	struct zm_bpf_pod bp = { .id = id, .cgroup = b->cgroup, .netns = netns, .ip = b->ip, .strict = true,
				 .node_netns = nodens, .host_veth = b->veth };
	ASSERT_OK(zm_bpf__enroll(self->b2, &bp, &e));
	ASSERT_OK(zm_bpf__counters(self->b2, &before));
	ASSERT_OK(zm_bpf__pod_stats(self->b2, b->ip, &st0));
	EXPECT_NE(test_sh(out, sizeof(out), "%s lab exec c -n plain --name %s -- echoapp client "
			  "tcp://%s:9000 -n 1 --timeout 1500", lab_ctl(), self->k.lab, bip), 0);
	ASSERT_OK(zm_bpf__counters(self->b2, &after));
	ASSERT_OK(zm_bpf__pod_stats(self->b2, b->ip, &st1));
	EXPECT_GT(after.inbound_drop, before.inbound_drop);
	/* TC on the veth dropped the SYN before it reached the pod. */
	EXPECT_GT(st1.strict_drops, st0.strict_drops);
	EXPECT_GT(st1.to_pod_pkts, st0.to_pod_pkts);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s bpf status --name %s --node %s", lab_ctl(), self->k.lab, self->k.n2), 0);
	EXPECT_STRSTR(out, "mesh_b");
	/* PERMISSIVE again (no STRICT, no listener): plaintext passes to the app. */
	bp.strict = false;
	ASSERT_OK(zm_bpf__enroll(self->b2, &bp, &e));
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec c -n plain --name %s -- echoapp client "
			  "tcp://%s:9000 -n 1 --timeout 3000", lab_ctl(), self->k.lab, bip), 0);
	EXPECT_STRSTR(out, "pod: b=1");
}

TEST_F(mesh, spoofed_source_ip_does_not_change_identity)
{
	char bip[INET_ADDRSTRLEN], dip[INET_ADDRSTRLEN], out[4096], tmp[64];
	struct sockaddr_in peer;
	socklen_t pl = sizeof(peer);
	uint64_t lcookie = 0, acookie = 0, acookie_expected = 0;
	socklen_t cl = sizeof(uint64_t);
	int lfd, cfd, st, saved, probe;
	pid_t pid;

	pod_ip(self, "mesh", "b", bip);
	pod_ip(self, "mesh", "d", dip);
	lfd = listen_in_pod(self, "mesh", "a", "127.0.0.1", 15001);
	ASSERT_GE(lfd, 0);
	/* Pod a (root in its pod) takes pod d's IP and connects from it. */
	snprintf(tmp, sizeof(tmp), "/tmp/zm-bpf-sp-%d", getpid());
	pid = bg(tmp, "%s lab exec a -n mesh --name %s -- sh -c \"ip addr add %s/32 dev eth0 && "
		 "python3 -c \\\"import socket;s=socket.socket();s.bind(('%s',0));s.settimeout(5);"
		 "s.connect(('%s',9000));s.recv(10)\\\"\"", lab_ctl(), self->k.lab, dip, dip, bip);
	cfd = accept_within(lfd, 10000);
	ASSERT_GE(cfd, 0);
	/* It arrived at a's listener, in a's netns: ztunnel knows it is a,
	 * whatever address the packets carried. */
	ASSERT_OK(getsockopt(cfd, SOL_SOCKET, SO_NETNS_COOKIE, &acookie, &cl));
	ASSERT_OK(getsockopt(lfd, SOL_SOCKET, SO_NETNS_COOKIE, &lcookie, &cl));
	EXPECT_EQ(acookie, lcookie);
	ASSERT_OK(zm_netns_enter(zm_lab_pod_find(&self->state, "mesh", "a")->netns, &saved));
	probe = socket(AF_INET, SOCK_STREAM, 0);
	getsockopt(probe, SOL_SOCKET, SO_NETNS_COOKIE, &acookie_expected, &cl);
	close(probe);
	zm_netns_restore(saved);
	EXPECT_EQ(acookie, acookie_expected);
	/* The peer address is the spoofed one; the identity is not taken from it. */
	ASSERT_OK(getpeername(cfd, (struct sockaddr *)&peer, &pl));
	EXPECT_STREQ(inet_ntop(AF_INET, &peer.sin_addr, out, sizeof(out)), dip);
	close(cfd);
	waitpid(pid, &st, 0);
	unlink(tmp);
	close(lfd);
}

TEST_F(mesh, fast_path_moves_data_in_the_kernel)
{
	char bip[INET_ADDRSTRLEN], out[4096];
	struct zm_lab_node *n1 = zm_lab_node_find(&self->state, self->k.n1);
	struct zm_lab_pod *a = zm_lab_pod_find(&self->state, "mesh", "a");
	struct zm_counters c0, c1, c2;
	char script[1024];

	pod_ip(self, "mesh", "b", bip);
	snprintf(script, sizeof(script), "import socket;s=socket.create_connection(('%s',9000),timeout=5);"
		 "d=b'x'*100000;s.sendall(b'WHOAMI\\n'+d);s.shutdown(1);r=b''\n"
		 "while True:\n c=s.recv(65536)\n if not c: break\n r+=c\n"
		 "print('ok' if r.endswith(d) and b'ztunnel' in r else 'bad', len(r))", bip);
	/* A stand-in ztunnel in the node's cgroup, listening in a's netns. */
	ASSERT_EQ(test_sh(out, sizeof(out), "sh -c 'echo $$ > %s/cgroup.procs; exec ip netns exec %s "
			  "%s/echoapp serve --tcp 15001 --pod ztunnel' >/dev/null 2>&1 & sleep 0.3",
			  n1->cgroup, a->netns, test_build_dir()), 0);
	ASSERT_OK(zm_bpf__set_fastpath(self->b1, false));
	ASSERT_OK(zm_bpf__counters(self->b1, &c0));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- python3 -c \"%s\"",
			  lab_ctl(), self->k.lab, script), 0);
	EXPECT_STRSTR(out, "ok");
	ASSERT_OK(zm_bpf__counters(self->b1, &c1));
	EXPECT_EQ(c1.fastpath_bytes, c0.fastpath_bytes);
	ASSERT_OK(zm_bpf__set_fastpath(self->b1, true));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- python3 -c \"%s\"",
			  lab_ctl(), self->k.lab, script), 0);
	EXPECT_STRSTR(out, "ok");
	ASSERT_OK(zm_bpf__counters(self->b1, &c2));
	test_log("fast path bytes: off %llu, on %llu", (unsigned long long)(c1.fastpath_bytes - c0.fastpath_bytes),
		 (unsigned long long)(c2.fastpath_bytes - c1.fastpath_bytes));
	EXPECT_GE(c2.fastpath_bytes - c1.fastpath_bytes, 200000);
}

static void kill_pid(void *arg)
{
	pid_t pid = (pid_t)(intptr_t)arg;

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* A stand-in ztunnel in the node's cgroup, listening on 15001 in a's netns:
 * echoapp (non-blocking, as ztunnel). Killed when the test ends. */
static int standin_echo(struct zm_fixture_mesh *self)
{
	struct zm_lab_node *n1 = zm_lab_node_find(&self->state, self->k.n1);
	struct zm_lab_pod *a = zm_lab_pod_find(&self->state, "mesh", "a");
	char cmd[8192];
	pid_t pid;

	snprintf(cmd, sizeof(cmd), "echo $$ > %s/cgroup.procs && exec ip netns exec %s %s/echoapp serve "
		 "--tcp 15001 --pod ztunnel", n1->cgroup, a->netns, test_build_dir());
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	test_defer(kill_pid, (void *)(intptr_t)pid);
	for (int i = 0; i < 50; i++) {
		if (test_sh(NULL, 0, "ip netns exec %s ss -Htln 'sport = :15001' | grep -q 15001", a->netns) == 0)
			return 0;
		usleep(100000);
	}
	return -1;
}

TEST_F(mesh, fast_path_bulk_half_close_and_concurrency)
{
	static char out[16384];
	char bip[INET_ADDRSTRLEN];
	const char *script;
	struct zm_counters c0, c1, c2;

	pod_ip(self, "mesh", "b", bip);
	ASSERT_OK_PTR(script = write_fp_script());
	ASSERT_OK(standin_echo(self));
	ASSERT_OK(zm_bpf__set_fastpath(self->b1, true));
	ASSERT_OK(zm_bpf__counters(self->b1, &c0));
	/* Non-blocking apps ride the fast path: every size, with and without a
	 * half-close, many at once. The echo makes both directions carry it all. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- python3 %s %s 9000 "
			  "1048576:nb:half:1 8388608:nb:half:1 67108864:nb:half:1 8388608:nb:full:1 "
			  "4194304:nb:half:16 262144:nb:full:32",
			  lab_ctl(), self->k.lab, script, bip), 0);
	test_log("%s", out);
	EXPECT_STRSTR(out, "67108864:nb:half:1 ok");
	EXPECT_STRSTR(out, "4194304:nb:half:16 ok");
	EXPECT_FALSE(strstr(out, "FAIL"));
	ASSERT_OK(zm_bpf__counters(self->b1, &c1));
	test_log("fast path: %llu msgs, %llu bytes; over TCP: %llu (queue full), %llu (TCP pending)",
		 (unsigned long long)(c1.fastpath_msgs - c0.fastpath_msgs),
		 (unsigned long long)(c1.fastpath_bytes - c0.fastpath_bytes),
		 (unsigned long long)(c1.fastpath_full - c0.fastpath_full),
		 (unsigned long long)(c1.fastpath_fallback - c0.fastpath_fallback));
	/* The data did skip TCP (how much depends on who keeps up: the rest
	 * took TCP for back-pressure, in order). */
	EXPECT_GE(c1.fastpath_bytes - c0.fastpath_bytes, 16 * 262144);
	EXPECT_EQ(c1.fastpath_blocking, c0.fastpath_blocking);
	/* Blocking apps with a concurrent reader and a half-close (the case that
	 * got EAGAIN from a blocking recv()) are kept off the fast path and work. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- python3 %s %s 9000 "
			  "8388608:blk:half:1 1048576:blk:half:8 1048576:blk:full:4",
			  lab_ctl(), self->k.lab, script, bip), 0);
	test_log("%s", out);
	EXPECT_FALSE(strstr(out, "FAIL"));
	ASSERT_OK(zm_bpf__counters(self->b1, &c2));
	EXPECT_EQ(c2.fastpath_blocking - c1.fastpath_blocking, 13);
	EXPECT_EQ(c2.fastpath_msgs, c1.fastpath_msgs);
}

/* The other end of the reset and FIN tests: a non-blocking socket (as
 * ztunnel's) accepted in a child that sits in the node's cgroup. */
static int wait_fd(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };

	return poll(&p, 1, 10000) == 1 ? 0 : -1;
}

enum standin_mode { SI_PEER_RESET, SI_APP_RESET, SI_FIN };

static int standin_body(int lfd, enum standin_mode mode, size_t n)
{
	static uint32_t buf[16384];
	size_t got = 0, sent = 0, off = 0, len = 0;
	int fd;

	if (wait_fd(lfd, POLLIN))
		return 10;
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	if (fd < 0)
		return 11;
	if (mode == SI_FIN) {
		/* n bytes of a counter, FIN right behind them, then wait for the
		 * app's FIN: the app must see every byte before EOF. */
		while (sent < n || off < len) {
			ssize_t w;

			if (off == len) {
				len = sizeof(buf) < n - sent ? sizeof(buf) : n - sent;
				for (size_t i = 0; i < len / 4; i++)
					buf[i] = (uint32_t)(sent / 4 + i);
				sent += len;
				off = 0;
			}
			w = send(fd, (char *)buf + off, len - off, MSG_NOSIGNAL);
			if (w < 0 && errno == EAGAIN) {
				if (wait_fd(fd, POLLOUT))
					return 12;
				continue;
			}
			if (w <= 0)
				return 13;
			off += (size_t)w;
		}
		shutdown(fd, SHUT_WR);
	}
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r > 0) {
			got += (size_t)r;
			if (mode == SI_PEER_RESET && got >= n) {
				struct linger lg = { 1, 0 };

				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				close(fd);
				return 0;
			}
			continue;
		}
		if (r < 0 && errno == EAGAIN) {
			if (wait_fd(fd, POLLIN))
				return 14;
			continue;
		}
		if (mode == SI_APP_RESET)
			return r < 0 && errno == ECONNRESET && got == n ? 0 : 15;
		return r == 0 && mode == SI_FIN ? 0 : 16;
	}
}

/* The child: joins the node's cgroup, listens, says so on @ready, serves. */
static pid_t standin_start(struct zm_fixture_mesh *self, enum standin_mode mode, size_t n)
{
	struct zm_lab_node *n1 = zm_lab_node_find(&self->state, self->k.n1);
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		char path[PATH_MAX + 16];
		FILE *f;
		int lfd;

		close(p[0]);
		snprintf(path, sizeof(path), "%s/cgroup.procs", n1->cgroup);
		f = fopen(path, "w");
		if (!f)
			_exit(2);
		fprintf(f, "%d\n", getpid());
		fclose(f);
		lfd = listen_in_pod(self, "mesh", "a", "127.0.0.1", 15001);
		if (lfd < 0 || write(p[1], "r", 1) != 1)
			_exit(3);
		_exit(standin_body(lfd, mode, n));
	}
	close(p[1]);
	if (pid > 0 && read(p[0], &c, 1) != 1) {
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	close(p[0]);
	return pid;
}

static int standin_wait(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

TEST_F(mesh, fast_path_keeps_fin_after_data_and_passes_resets)
{
	char bip[INET_ADDRSTRLEN], out[4096];
	const char *script;
	struct zm_counters c0, c1;
	pid_t pid;

	pod_ip(self, "mesh", "b", bip);
	ASSERT_OK_PTR(script = write_fp_script());
	ASSERT_OK(zm_bpf__set_fastpath(self->b1, true));
	ASSERT_OK(zm_bpf__counters(self->b1, &c0));

	/* ztunnel -> app: 8 MiB then FIN at once; the app reads all, then EOF. */
	pid = standin_start(self, SI_FIN, 8 << 20);
	ASSERT_GT(pid, 0);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- python3 %s %s 9000 fin %d",
			  lab_ctl(), self->k.lab, script, bip, 8 << 20), 0);
	EXPECT_STRSTR(out, "fin after 8388608 same");
	EXPECT_EQ(standin_wait(pid), 0);

	/* ztunnel resets: the app's recv() fails with a reset, not EAGAIN or a hang. */
	pid = standin_start(self, SI_PEER_RESET, 1 << 20);
	ASSERT_GT(pid, 0);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- python3 %s %s 9000 peer_reset",
			  lab_ctl(), self->k.lab, script, bip), 0);
	EXPECT_STRSTR(out, "ConnectionResetError");
	EXPECT_EQ(standin_wait(pid), 0);

	/* The app resets after 1 MiB: ztunnel reads all of it, then the reset. */
	pid = standin_start(self, SI_APP_RESET, 1 << 20);
	ASSERT_GT(pid, 0);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- python3 %s %s 9000 app_reset",
			  lab_ctl(), self->k.lab, script, bip), 0);
	EXPECT_STRSTR(out, "reset sent");
	EXPECT_EQ(standin_wait(pid), 0);

	ASSERT_OK(zm_bpf__counters(self->b1, &c1));
	test_log("fast path bytes %llu", (unsigned long long)(c1.fastpath_bytes - c0.fastpath_bytes));
	EXPECT_GE(c1.fastpath_bytes - c0.fastpath_bytes, 262144);
}

TEST_F(mesh, pins_survive_the_loader_and_go_with_destroy)
{
	char bip[INET_ADDRSTRLEN], path[256], out[4096];
	struct zm_error e = { 0 };
	int lfd, cfd;
	pid_t pid;

	pod_ip(self, "mesh", "b", bip);
	/* Every loader of this node closes: nothing of the process is left. */
	zm_bpf__close(self->b1);
	self->b1 = NULL;
	lfd = listen_in_pod(self, "mesh", "a", "127.0.0.1", 15001);
	ASSERT_GE(lfd, 0);
	snprintf(path, sizeof(path), "/tmp/zm-bpf-pin-%d", getpid());
	pid = bg(path, "%s lab exec a -n mesh --name %s -- echoapp client tcp://%s:9000 -n 1 --timeout 2000",
		 lab_ctl(), self->k.lab, bip);
	cfd = accept_within(lfd, 10000);
	EXPECT_GE(cfd, 0);	/* still captured */
	if (cfd >= 0)
		close(cfd);
	waitpid(pid, NULL, 0);
	unlink(path);
	close(lfd);
	ASSERT_OK(zm_bpf__destroy(NULL, self->k1, &e));
	snprintf(path, sizeof(path), "%s/%s", ZM_BPF_PIN_ROOT, self->k1);
	EXPECT_NE(access(path, F_OK), 0);
	/* Nothing attached any more: a's connects go direct. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- echoapp client "
			  "tcp://%s:9000 -n 1 --timeout 2000", lab_ctl(), self->k.lab, bip), 0);
	EXPECT_STRSTR(out, "pod: b=1");
	EXPECT_EQ(test_sh(out, sizeof(out), "bpftool cgroup show %s | grep -c zm_", 
			  zm_lab_pod_find(&self->state, "mesh", "a")->cgroup), 1);
	EXPECT_STREQ(out, "0\n");
}
