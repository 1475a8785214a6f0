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
	pid_t pid, pid2;
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

/* A second server with pod name @pod on the same ports (SO_REUSEPORT shares them). */
static void start_second(struct zm_fixture_srv *self, const char *pod)
{
	char cmd[1024];

	self->pid2 = fork();
	ASSERT_GE(self->pid2, 0);
	if (self->pid2 == 0) {
		snprintf(cmd, sizeof(cmd), "exec %s/echoapp serve --http %d --tcp %d --pod %s "
			 "--namespace ns1 --version v8 --port-file %s/ports2", test_build_dir(),
			 self->http, self->tcp, pod, self->dir);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		char pf[128];

		snprintf(pf, sizeof(pf), "%s/ports2", self->dir);
		if (access(pf, F_OK) == 0)
			return;
		usleep(10000);
	}
	ASSERT_TRUE(!"second server did not start");
}

/* Both servers still alive (a crash would make waitpid report them). */
static bool alive(pid_t pid)
{
	return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

FIXTURE_SETUP(srv) { self->pid = self->pid2 = -1; }
FIXTURE_TEARDOWN(srv)
{
	char cmd[128];

	if (self->pid2 > 0) {
		kill(self->pid2, SIGTERM);
		waitpid(self->pid2, NULL, 0);
	}
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

TEST_F(srv, client_distribution_over_two_servers)
{
	char out[8192];
	int a = 0, b = 0;
	char *p;

	start(self, NULL);
	start_second(self, "p2");
	/* tcp://: a new connection per request, the kernel spreads them over both. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s/echoapp client tcp://127.0.0.1:%d -n 60",
			  test_build_dir(), self->tcp), 0);
	test_log("%s", out);
	EXPECT_STRSTR(out, "requests 60, ok 60, errors 0");
	p = strstr(out, "p1=");
	if (p)
		a = atoi(p + 3);
	p = strstr(out, "p2=");
	if (p)
		b = atoi(p + 3);
	EXPECT_EQ(a + b, 60);
	/* Each side gets ~30; 0 would mean one was not serving (chance 2^-59). */
	EXPECT_GT(a, 5);
	EXPECT_GT(b, 5);
	EXPECT_STRSTR(out, " v7=");
	EXPECT_STRSTR(out, " v8=");
	/* HTTP over 20 connections, JSON output. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s/echoapp client http://localhost:%d/x -n 100 -c 20 -o json",
			  test_build_dir(), self->http), 0);
	test_log("%s", out);
	EXPECT_STRSTR(out, "\"requests\":100");
	EXPECT_STRSTR(out, "\"ok\":100");
	EXPECT_STRSTR(out, "\"p1\":");
	EXPECT_STRSTR(out, "\"p2\":");
	EXPECT_STRSTR(out, "\"v8\":");
	EXPECT_STRSTR(out, "\"200\":100");
}

TEST_F(srv, http2_details_with_nghttp)
{
	char out[16384];

	start(self, NULL);
	/* Several streams on one connection, custom headers, a request body. */
	ASSERT_EQ(test_sh(out, sizeof(out), "printf 'seven77' > %s/body && nghttp -d %s/body "
			  "-H 'x-h2: one' -H 'x-h2: two' http://127.0.0.1:%d/post?a=b",
			  self->dir, self->dir, self->http), 0);
	EXPECT_STRSTR(out, "\"method\":\"POST\"");
	EXPECT_STRSTR(out, "\"path\":\"/post?a=b\"");
	EXPECT_STRSTR(out, "\"proto\":\"HTTP/2\"");
	EXPECT_STRSTR(out, "\"x-h2\":\"one, two\"");
	EXPECT_STRSTR(out, "\"body_bytes\":7");
	EXPECT_STRSTR(out, "\"host\":\"127.0.0.1:");
	/* /status and /delay over HTTP/2; nghttp -s prints the status per stream. */
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code} %%{http_version}' "
			  "--http2-prior-knowledge http://127.0.0.1:%d/status/418", self->http), 0);
	EXPECT_STREQ(out, "418 2");
	/* A delayed stream does not hold the other streams of its connection. */
	ASSERT_EQ(test_sh(out, sizeof(out), "nghttp -n -s http://127.0.0.1:%d/delay/800 "
			  "http://127.0.0.1:%d/quick 2>&1 | grep -E '/(delay|quick)'",
			  self->http, self->http), 0);
	test_log("%s", out);
	{
		char *d = strstr(out, "/delay/800"), *q = strstr(out, "/quick");

		EXPECT_TRUE(d && q && q < d);	/* the -s table lists in completion order */
	}
	/* --http2 upgrade carrying a POST body. */
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sS --http2 -d 'abc' http://127.0.0.1:%d/upb",
			  self->http), 0);
	EXPECT_STRSTR(out, "\"body_bytes\":3");
	EXPECT_STRSTR(out, "\"path\":\"/upb\"");
	EXPECT_TRUE(alive(self->pid));
}

TEST_F(srv, http1_pipelining_keeps_order_across_delay)
{
	char out[8192];
	char *a, *b, *c;

	start(self, NULL);
	ASSERT_EQ(test_sh(out, sizeof(out), "timeout 10 python3 -c \"import socket,time;"
			  "s=socket.create_connection(('127.0.0.1',%d));"
			  "s.sendall(b'GET /delay/300 HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"
			  "GET /second HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"
			  "GET /third HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n');"
			  "d=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
			  "print(d.decode())\"", self->http), 0);
	a = strstr(out, "\"path\":\"/delay/300\"");
	b = strstr(out, "\"path\":\"/second\"");
	c = strstr(out, "\"path\":\"/third\"");
	EXPECT_TRUE(a && b && c && a < b && b < c);
	EXPECT_STRSTR(out, "Connection: close");
}

TEST_F(srv, tcp_partial_whoami_then_half_close)
{
	char out[8192];

	start(self, NULL);
	/* "WHO" could still become WHOAMI: it is held, and must come back on FIN. */
	ASSERT_EQ(test_sh(out, sizeof(out), "timeout 10 python3 -c \"import socket;"
			  "s=socket.create_connection(('127.0.0.1',%d));"
			  "s.sendall(b'WHO');s.shutdown(socket.SHUT_WR);"
			  "d=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
			  "print(repr(d))\"", self->tcp), 0);
	EXPECT_STREQ(out, "b'WHO'\n");
	/* WHOAMI split over two writes still counts; bytes after it are echoed. */
	ASSERT_EQ(test_sh(out, sizeof(out), "timeout 10 python3 -c \"import socket,time,json;"
			  "s=socket.create_connection(('127.0.0.1',%d));"
			  "s.sendall(b'WHO');time.sleep(0.1);s.sendall(b'AMI\\nxyz');s.shutdown(socket.SHUT_WR);"
			  "d=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
			  "l,r=d.split(b'\\n',1);j=json.loads(l);print(j['pod'],j['local'].endswith(':%d'),r)\"",
			  self->tcp, self->tcp), 0);
	EXPECT_STREQ(out, "p1 True b'xyz'\n");
	/* Not WHOAMI: plain echo from the first byte. */
	ASSERT_EQ(test_sh(out, sizeof(out), "timeout 10 python3 -c \"import socket;"
			  "s=socket.create_connection(('127.0.0.1',%d));"
			  "s.sendall(b'WHOAMX\\nrest');s.shutdown(socket.SHUT_WR);"
			  "d=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
			  "print(repr(d))\"", self->tcp), 0);
	EXPECT_STREQ(out, "b'WHOAMX\\nrest'\n");
}

TEST_F(srv, limits_431_413_and_header_count)
{
	char out[8192];

	start(self, NULL);
	/* Too many header lines. */
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code}' "
			  "$(for i in $(seq 1 200); do printf -- \"-H x-h$i:v \"; done) "
			  "http://127.0.0.1:%d/", self->http), 0);
	EXPECT_STREQ(out, "431");
	/* A body over the cap: 413 before the whole body is read. */
	ASSERT_EQ(test_sh(out, sizeof(out), "head -c 9000000 /dev/zero > %s/big && "
			  "curl -s -o /dev/null -w '%%{http_code}' --data-binary @%s/big "
			  "http://127.0.0.1:%d/", self->dir, self->dir, self->http), 0);
	EXPECT_STREQ(out, "413");
	/* Just under the cap is fine, and counted. */
	ASSERT_EQ(test_sh(out, sizeof(out), "head -c 8000000 /dev/zero > %s/ok && "
			  "curl -s --data-binary @%s/ok http://127.0.0.1:%d/", self->dir, self->dir,
			  self->http), 0);
	EXPECT_STRSTR(out, "\"body_bytes\":8000000");
	/* HTTP/2: a huge header is 431 on its stream. */
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code}' --http2-prior-knowledge "
			  "-H \"X-Big: $(head -c 20000 /dev/zero | tr '\\0' a)\" http://127.0.0.1:%d/",
			  self->http), 0);
	EXPECT_STRSTR(out, "431");
	EXPECT_TRUE(alive(self->pid));
}

TEST_F(srv, garbage_never_crashes)
{
	char out[8192];

	start(self, "--threads 2");
	/* Random bytes, random bytes after an HTTP/2 preface, truncated frames,
	 * a bad Upgrade, odd methods and bytes in headers. */
	ASSERT_EQ(test_sh(out, sizeof(out), "timeout 60 python3 -c \"\n"
			  "import socket,random\n"
			  "random.seed(7)\n"
			  "pre=b'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n'\n"
			  "cases=[b'GET / HTTP/1.1\\r\\nHost: a\\r\\nUpgrade: h2c\\r\\nConnection: Upgrade, HTTP2-Settings\\r\\nHTTP2-Settings: !!!\\r\\n\\r\\n',"
			  "b'GET / HTTP/1.1\\r\\nHost: \\xff\\xfe\\x80\\r\\nX: \\xc3\\x28\\r\\n\\r\\n',"
			  "b'GET /\\x00 HTTP/1.1\\r\\n\\r\\n', b'POST / HTTP/1.1\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\nzz\\r\\n',"
			  "pre+b'\\x00\\x00\\x04\\x04\\x00\\x00\\x00\\x00\\x00', pre[:10], b'PRI', b'\\r\\n'*5000]\n"
			  "for i in range(300):\n"
			  " n=random.randint(1,3000)\n"
			  " cases.append((pre if i%%3==0 else b'')+bytes(random.getrandbits(8) for _ in range(n)))\n"
			  "codes=set()\n"
			  "for c in cases:\n"
			  " s=socket.create_connection(('127.0.0.1',%d));s.settimeout(5)\n"
			  " try:\n"
			  "  s.sendall(c);s.shutdown(socket.SHUT_WR)\n"
			  "  d=b''\n"
			  "  while True:\n"
			  "   x=s.recv(65536)\n"
			  "   if not x: break\n"
			  "   d+=x\n"
			  "  if d.startswith(b'HTTP/1.1 '): codes.add(d[9:12])\n"
			  " except (ConnectionResetError, BrokenPipeError): pass\n"
			  " s.close()\n"
			  "print(sorted(codes))\n"
			  "\"", self->http), 0);
	test_log("codes seen: %s", out);
	EXPECT_STRSTR(out, "400");
	EXPECT_TRUE(alive(self->pid));
	/* Invalid UTF-8 in a header still gives parseable JSON. */
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -s -H \"$(printf 'X-Bin: \\377\\376')\" http://127.0.0.1:%d/ | "
			  "python3 -c 'import json,sys; print(ascii(json.load(sys.stdin)[\"headers\"][\"x-bin\"]))'",
			  self->http), 0);
	EXPECT_STREQ(out, "'\\xff\\xfe'\n");
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -s --http2-prior-knowledge http://127.0.0.1:%d/still",
			  self->http), 0);
	EXPECT_STRSTR(out, "\"path\":\"/still\"");
}

TEST_F(srv, sigterm_exits_cleanly)
{
	int st = -1;

	start(self, "--threads 3");
	/* An idle keep-alive connection must not hold the exit up. */
	ASSERT_EQ(test_sh(NULL, 0, "curl -s http://127.0.0.1:%d/ >/dev/null", self->http), 0);
	ASSERT_OK(kill(self->pid, SIGTERM));
	for (int i = 0; i < 300 && waitpid(self->pid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	self->pid = -1;
	ASSERT_TRUE(WIFEXITED(st));
	EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST_F(srv, head_has_no_body)
{
	char out[8192];

	start(self, NULL);
	/* HEAD then GET on one connection: exactly one JSON body comes back. */
	ASSERT_EQ(test_sh(out, sizeof(out), "timeout 10 python3 -c \"import socket;"
			  "s=socket.create_connection(('127.0.0.1',%d));"
			  "s.sendall(b'HEAD /h HTTP/1.1\\r\\nHost: a\\r\\n\\r\\nGET /g HTTP/1.1\\r\\nHost: a\\r\\n"
			  "Connection: close\\r\\n\\r\\n');"
			  "d=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
			  "print(d.count(b'HTTP/1.1 200'), d.count(b'\\\"pod\\\"'), b'/g' in d, b'/h' in d)\"",
			  self->http), 0);
	EXPECT_STREQ(out, "2 1 True False\n");
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sS -I --http2-prior-knowledge http://127.0.0.1:%d/h2head",
			  self->http), 0);
	EXPECT_STRSTR(out, "HTTP/2 200");
	EXPECT_STRSTR(out, "content-length: ");
}

TEST_F(srv, closing_connection_has_a_deadline)
{
	char out[8192];

	start(self, NULL);
	/*
	 * After the 400 and its FIN the client keeps its side open. The server
	 * holds the connection (draining) for ~5 s, then closes it: from then on
	 * what the client sends is answered with a reset.
	 */
	ASSERT_EQ(test_sh(out, sizeof(out), "timeout 30 python3 -c \"import socket,time;"
			  "s=socket.create_connection(('127.0.0.1',%d));s.settimeout(15);"
			  "s.sendall(b'BAD REQUEST LINE\\r\\n\\r\\n');d=b''\n"
			  "while True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
			  "def gone():\n try:\n  s.sendall(b'x');time.sleep(0.2);s.sendall(b'x');return False\n"
			  " except OSError: return True\n"
			  "time.sleep(1);early=gone();time.sleep(6);late=gone();"
			  "print(d.split(b' ')[1].decode(), early, late)\"", self->http), 0);
	EXPECT_STREQ(out, "400 False True\n");
}

TEST_F(srv, ipv6_loopback_when_available)
{
	char out[8192];

	if (test_sh(NULL, 0, "ip -6 addr show dev lo | grep -q '::1/128'") != 0)
		SKIP("no ::1 on lo");
	start(self, NULL);
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sS -g http://[::1]:%d/v6", self->http), 0);
	EXPECT_STRSTR(out, "\"peer\":\"[::1]:");
	char want[64];

	snprintf(want, sizeof(want), "\"local\":\"[::1]:%d\"", self->http);
	EXPECT_STRSTR(out, want);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s/echoapp client tcp://[::1]:%d -n 2", test_build_dir(),
			  self->tcp), 0);
	EXPECT_STRSTR(out, "pod: p1=2");
}
