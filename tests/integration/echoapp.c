// SPDX-License-Identifier: Apache-2.0
/* echoapp driven by real clients (curl, nghttp, its own client) on loopback. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "../harness/test.h"

FIXTURE(srv) {
	pid_t pid;
	int http, tcp;
	char dir[64];
};

/* Start build/echoapp on free ports (it writes them to a port file). */
static void start(struct zm_fixture_srv *self, const char *extra)
{
	char cmd[1024], pf[128], out[256];

	snprintf(self->dir, sizeof(self->dir), "/tmp/zm-echo-%d", getpid());
	mkdir(self->dir, 0700);
	snprintf(pf, sizeof(pf), "%s/ports", self->dir);
	self->pid = fork();
	ASSERT_GE(self->pid, 0);
	if (self->pid == 0) {
		snprintf(cmd, sizeof(cmd), "exec %s/echoapp serve --http 0 --tcp 0 --pod p1 "
			 "--namespace ns1 --version v7 --port-file %s %s", test_build_dir(), pf,
			 extra ? extra : "");
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(pf, "r");

		if (f) {
			int n = fscanf(f, "http=%d tcp=%d", &self->http, &self->tcp);

			fclose(f);
			if (n == 2)
				break;
		}
		usleep(10000);
	}
	ASSERT_GT(self->http, 0);
	(void)out;
}

FIXTURE_SETUP(srv) { self->pid = -1; }
FIXTURE_TEARDOWN(srv)
{
	char cmd[128];

	if (self->pid > 0) {
		kill(self->pid, SIGTERM);
		waitpid(self->pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", self->dir);
	if (self->dir[0])
		(void)!system(cmd);
}

TEST_F(srv, http1_reports_who_answered)
{
	char out[8192];

	start(self, NULL);
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sS -H 'X-Test: a' -H 'X-Test: b' "
			  "http://127.0.0.1:%d/some/path?q=1", self->http), 0);
	EXPECT_STRSTR(out, "\"pod\":\"p1\"");
	EXPECT_STRSTR(out, "\"namespace\":\"ns1\"");
	EXPECT_STRSTR(out, "\"version\":\"v7\"");
	EXPECT_STRSTR(out, "\"method\":\"GET\"");
	EXPECT_STRSTR(out, "\"path\":\"/some/path?q=1\"");
	EXPECT_STRSTR(out, "\"proto\":\"HTTP/1.1\"");
	EXPECT_STRSTR(out, "\"x-test\":\"a, b\"");
	EXPECT_STRSTR(out, "\"peer\":\"127.0.0.1:");
	char want[64];
	snprintf(want, sizeof(want), "\"local\":\"127.0.0.1:%d\"", self->http);
	EXPECT_STRSTR(out, want);
}

TEST_F(srv, status_and_body)
{
	char out[8192];

	start(self, NULL);
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code}' "
			  "http://127.0.0.1:%d/status/503", self->http), 0);
	EXPECT_STREQ(out, "503");
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -s -d 'twelve bytes' http://127.0.0.1:%d/p",
			  self->http), 0);
	EXPECT_STRSTR(out, "\"body_bytes\":12");
	EXPECT_STRSTR(out, "\"method\":\"POST\"");
	ASSERT_EQ(test_sh(out, sizeof(out), "printf 'abcdefghij' | curl -s -H 'Transfer-Encoding: chunked' "
			  "--data-binary @- http://127.0.0.1:%d/c", self->http), 0);
	EXPECT_STRSTR(out, "\"body_bytes\":10");
}

TEST_F(srv, delay_does_not_block_others)
{
	char out[8192];

	start(self, NULL);
	/* The fast request is sent while the slow one waits; it must finish first. */
	ASSERT_EQ(test_sh(out, sizeof(out),
			  "(curl -s -o /dev/null http://127.0.0.1:%d/delay/1500; echo slow) & "
			  "sleep 0.2; curl -s -o /dev/null http://127.0.0.1:%d/fast; echo fast; wait",
			  self->http, self->http), 0);
	EXPECT_STREQ(out, "fast\nslow\n");
}

TEST_F(srv, http2_prior_knowledge_and_upgrade)
{
	char out[8192];

	start(self, NULL);
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sS --http2-prior-knowledge http://127.0.0.1:%d/h2",
			  self->http), 0);
	EXPECT_STRSTR(out, "\"proto\":\"HTTP/2\"");
	EXPECT_STRSTR(out, "\"path\":\"/h2\"");
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sS --http2 http://127.0.0.1:%d/up", self->http), 0);
	EXPECT_STRSTR(out, "\"proto\":\"HTTP/2\"");
	EXPECT_STRSTR(out, "\"path\":\"/up\"");
	ASSERT_EQ(test_sh(out, sizeof(out), "nghttp -n -s http://127.0.0.1:%d/a http://127.0.0.1:%d/b",
			  self->http, self->http), 0);
	EXPECT_STRSTR(out, "/b");
}

TEST_F(srv, tcp_echo_whoami_and_half_close)
{
	char out[8192];

	start(self, NULL);
	/* bash's /dev/tcp has no half-close; python's socket does. */
	ASSERT_EQ(test_sh(out, sizeof(out), "python3 -c \"import socket;"
			  "s=socket.create_connection(('127.0.0.1',%d));"
			  "s.sendall(b'WHOAMI\\nhello');s.shutdown(socket.SHUT_WR);"
			  "d=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
			  "print(d.decode())\"", self->tcp), 0);
	EXPECT_STRSTR(out, "{\"pod\":\"p1\",\"namespace\":\"ns1\",\"version\":\"v7\"");
	EXPECT_STRSTR(out, "}\nhello");
	ASSERT_EQ(test_sh(out, sizeof(out), "head -c 3000000 /dev/urandom > %s/in && "
			  "python3 -c \"import socket,sys;"
			  "s=socket.create_connection(('127.0.0.1',%d));"
			  "d=open('%s/in','rb').read();import threading;"
			  "t=threading.Thread(target=lambda:(s.sendall(d),s.shutdown(socket.SHUT_WR)));t.start();"
			  "r=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n r+=c\n"
			  "t.join();print('same' if r==d else 'differ %%d %%d'%%(len(r),len(d)))\"",
			  self->dir, self->tcp, self->dir), 0);
	EXPECT_STREQ(out, "same\n");
}

TEST_F(srv, fail_rate_is_roughly_honoured)
{
	char out[8192];
	int n500 = 0, n200 = 0;
	char *p;

	start(self, "--fail-rate 0.3");
	test_sh(out, sizeof(out), "%s/echoapp client http://127.0.0.1:%d/ -n 1000 -c 4 -o json",
		test_build_dir(), self->http);
	p = strstr(out, "\"500\":");
	if (p)
		n500 = atoi(p + 6);
	p = strstr(out, "\"200\":");
	if (p)
		n200 = atoi(p + 6);
	test_log("200: %d, 500: %d", n200, n500);
	EXPECT_EQ(n200 + n500, 1000);
	/* 30%% of 1000: sd ~14.5; 200..400 is far outside chance. */
	EXPECT_GT(n500, 200);
	EXPECT_LT(n500, 400);
}

TEST_F(srv, client_counts_answers)
{
	char out[8192];

	start(self, NULL);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s/echoapp client http://127.0.0.1:%d/ -n 30 -c 3",
			  test_build_dir(), self->http), 0);
	EXPECT_STRSTR(out, "requests 30, ok 30, errors 0");
	EXPECT_STRSTR(out, "pod: p1=30");
	EXPECT_STRSTR(out, "code: 200=30");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s/echoapp client http://127.0.0.1:%d/ -n 10 --http2",
			  test_build_dir(), self->http), 0);
	EXPECT_STRSTR(out, "requests 10, ok 10, errors 0");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s/echoapp client tcp://127.0.0.1:%d -n 5",
			  test_build_dir(), self->tcp), 0);
	EXPECT_STRSTR(out, "pod: p1=5");
	/* Nothing listens there: errors, and a non-zero exit. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s/echoapp client http://127.0.0.1:1/ -n 2",
			  test_build_dir()), 1);
	EXPECT_STRSTR(out, "errors 2");
}

TEST_F(srv, bad_requests_get_errors_and_server_survives)
{
	char out[8192];

	start(self, NULL);
	ASSERT_EQ(test_sh(out, sizeof(out), "printf 'GARBAGE\\r\\n\\r\\n' | timeout 5 python3 -c \"import socket,sys;"
			  "s=socket.create_connection(('127.0.0.1',%d));s.sendall(sys.stdin.buffer.read());"
			  "print(s.recv(100).decode().splitlines()[0])\"", self->http), 0);
	EXPECT_STRSTR(out, "HTTP/1.1 400");
	ASSERT_EQ(test_sh(out, sizeof(out), "timeout 5 python3 -c \"import socket;"
			  "s=socket.create_connection(('127.0.0.1',%d));"
			  "s.sendall(b'POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\n"
			  "Transfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n');"
			  "print(s.recv(100).decode().splitlines()[0])\"", self->http), 0);
	EXPECT_STRSTR(out, "HTTP/1.1 400");
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code}' -H \"X-Big: $(head -c 20000 /dev/zero | tr '\\0' a)\" "
			  "http://127.0.0.1:%d/", self->http), 0);
	EXPECT_STREQ(out, "431");
	ASSERT_EQ(test_sh(out, sizeof(out), "head -c 100000 /dev/urandom | timeout 5 python3 -c \"import socket,sys;"
			  "s=socket.create_connection(('127.0.0.1',%d));s.sendall(sys.stdin.buffer.read())\" ; "
			  "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/after", self->http, self->http), 0);
	EXPECT_STRSTR(out, "200");
}
