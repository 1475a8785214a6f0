// SPDX-License-Identifier: Apache-2.0
/*
 * ztunnel operations in the lab: the admin endpoint, certificate renewal
 * under live traffic, and draining on SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

FIXTURE(ops) {
	struct labkit k;
};

FIXTURE_SETUP(ops)
{
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1, .labels = "{app: a}", .sa = "frontend" },
		{ .name = "b", .ns = "mesh", .node = 2, .labels = "{app: b}", .sa = "default" },
	};

	REQUIRE_ROOT();
	lab_init(&self->k, "o", "on");
	ASSERT_OK(lab_write(&self->k, LAB_NS_MESH LAB_DOC
			    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: frontend, namespace: mesh}\n", pods, 2));
	/* The shortest TTL the CA signs: renewal comes after about 30 s. */
	ASSERT_OK(lab_start_ready(&self->k, "ZMESH_CERT_TTL=60s"));
}

FIXTURE_TEARDOWN(ops)
{
	lab_stop(&self->k);
}

/* A client in pod a that holds one connection to b:9000 for @secs seconds,
 * echoing a line every 200 ms; prints "ok N" when every echo came back. */
static pid_t long_conn(struct zm_fixture_ops *self, const char *outfile, int secs)
{
	char cmd[8192];

	snprintf(cmd, sizeof(cmd), "%s lab exec a -n mesh --name %s -- python3 -c \"import socket,time\n"
		 "s=socket.create_connection(('10.244.1.2',9000),timeout=5)\nprint('connected',flush=True)\nn=0\nend=time.time()+%d\n"
		 "while time.time()<end:\n m=b'ping %%d\\n'%%n\n s.sendall(m)\n r=b''\n"
		 " while len(r)<len(m): r+=s.recv(100)\n assert r==m,(r,m)\n n+=1\n time.sleep(0.2)\n"
		 "print('ok',n)\" >%s 2>&1", lab_ctl(), self->k.lab, secs, outfile);
	pid_t pid = fork();

	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Running (a zombie is not: the harness may be its reaper). */
static bool alive(int pid)
{
	char path[64], st[512];
	FILE *f;
	bool r = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (f && fgets(st, sizeof(st), f)) {
		const char *p = strrchr(st, ')');

		r = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	}
	if (f)
		fclose(f);
	return r;
}

TEST_F(ops, admin_endpoint_on_localhost)
{
	static char out[65536];

	ASSERT_EQ(lab_on_node(self->k.lab, self->k.n1, out, sizeof(out), "curl -sf localhost:15000/config_dump"), 0);
	EXPECT_STRSTR(out, "\"identity\": \"spiffe://cluster.local/ns/mesh/sa/frontend\"");
	EXPECT_STRSTR(out, "\"config_version\"");
	EXPECT_FALSE(strstr(out, "sa/default"));	/* b is on the other node */
	ASSERT_EQ(lab_on_node(self->k.lab, self->k.n1, out, sizeof(out), "curl -sf localhost:15000/certs"), 0);
	EXPECT_STRSTR(out, "\"pod\": \"mesh_a\"");
	EXPECT_STRSTR(out, "\"valid\": true");
	ASSERT_EQ(lab_on_node(self->k.lab, self->k.n1, out, sizeof(out), "curl -sf 'localhost:15000/logging?level=debug'"), 0);
	EXPECT_STREQ(out, "level: debug\n");
	ASSERT_EQ(lab_on_node(self->k.lab, self->k.n1, out, sizeof(out), "curl -sf localhost:15000/logging"), 0);
	EXPECT_STREQ(out, "level: debug\n");
	EXPECT_NE(lab_on_node(self->k.lab, self->k.n1, out, sizeof(out), "curl -sf 'localhost:15000/logging?level=loud'"), 0);
	/* Not on the node's other addresses: admin is local only. */
	EXPECT_NE(lab_on_node(self->k.lab, self->k.n1, out, sizeof(out), "sh -c 'curl -sf -m 2 "
			  "$(ip -4 -o addr show scope global | head -1 | awk \"{print \\$4}\" | cut -d/ -f1):15000/certs'"), 0);
}

TEST_F(ops, certificates_renew_without_dropping_connections)
{
	char out[4096], file[64];
	int status, gen_a = 0, gen_b = 0;
	pid_t pid;

	snprintf(file, sizeof(file), "/tmp/zm-ops-long-%d", getpid());
	pid = long_conn(self, file, 45);
	ASSERT_GT(pid, 0);
	/* Both ends renew: a on node 1 (client cert), b on node 2 (server cert). */
	for (int i = 0; i < 60 && (gen_a < 2 || gen_b < 2); i++) {
		sleep(1);
		if (lab_on_node(self->k.lab, self->k.n1, out, sizeof(out), "sh -c \"curl -sf localhost:15000/certs | "
			    "python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\\\"generation\\\"])'\"") == 0)
			gen_a = atoi(out);
		if (lab_on_node(self->k.lab, self->k.n2, out, sizeof(out), "sh -c \"curl -sf localhost:15000/certs | "
			    "python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\\\"generation\\\"])'\"") == 0)
			gen_b = atoi(out);
	}
	EXPECT_GE(gen_a, 2);
	EXPECT_GE(gen_b, 2);
	/* New connections handshake with the new certificates. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- echoapp client "
			  "http://10.244.1.2:8080/ -n 3", lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "pod: b=3");
	/* The connection made with the first certificates lived through it. */
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(test_sh(out, sizeof(out), "cat %s", file), 0);
	unlink(file);
	EXPECT_STRSTR(out, "ok ");
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_EQ(test_sh(out, sizeof(out), "grep -c 'certificate renewed' /run/zmesh/lab/%s/logs/ztunnel-%s.log",
			  self->k.lab, self->k.n1), 0);
}

TEST_F(ops, sigterm_drains_live_connections)
{
	char out[4096], file[64];
	int status, zpid = lab_ztunnel_pid(self->k.lab, self->k.n1);
	pid_t pid;

	ASSERT_GT(zpid, 0);
	snprintf(file, sizeof(file), "/tmp/zm-ops-drain-%d", getpid());
	pid = long_conn(self, file, 3);
	ASSERT_GT(pid, 0);
	for (int i = 0; i < 100 && test_sh(NULL, 0, "grep -q connected %s", file); i++)
		usleep(100000);
	ASSERT_EQ(kill(zpid, SIGTERM), 0);
	usleep(300000);
	/* Draining: not ready, no new connections (refused, never leaked)... */
	EXPECT_NE(lab_on_node(self->k.lab, self->k.n1, out, sizeof(out), "curl -sf localhost:15021/healthz/ready"), 0);
	EXPECT_NE(test_sh(out, sizeof(out), "%s lab exec a -n mesh --name %s -- echoapp client "
			  "http://10.244.1.2:8080/ -n 1 --timeout 1000", lab_ctl(), self->k.lab), 0);
	/* ...while the live connection finishes, and then ztunnel is gone. */
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(test_sh(out, sizeof(out), "cat %s", file), 0);
	unlink(file);
	EXPECT_STRSTR(out, "ok ");
	for (int i = 0; i < 50 && alive(zpid); i++)
		usleep(100000);
	EXPECT_FALSE(alive(zpid));
	EXPECT_EQ(test_sh(out, sizeof(out), "grep -c 'draining: 1 connections' /run/zmesh/lab/%s/logs/ztunnel-%s.log",
			  self->k.lab, self->k.n1), 0);
}
