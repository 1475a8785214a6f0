// SPDX-License-Identifier: Apache-2.0
/*
 * Hostile HBONE peers against a real ztunnel (issue 4, "Bad input"): a
 * client with a valid mesh certificate that floods CONNECTs and resets them
 * before their answer (rapid reset, CVE-2023-44487), one that resets each
 * stream after its answer (a normal SO_LINGER 0 client), a CONNECT to a pod
 * this tunnel does not front, a certificate from another CA, garbage. Each
 * gets a clean refusal, a counter or log line, and ztunnel keeps serving.
 *
 * The attacker runs in this process: it enters the plain pod c's netns
 * (nothing captures it) and speaks HBONE to b's :15008 with the library's
 * own client (real TLS 1.3, real HTTP/2), certificates signed by the lab CA.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"
#include "zmesh/ca.h"
#include "zmesh/hbone.h"
#include "zmesh/keymat.h"
#include "zmesh/netns.h"
#include "zmesh/spiffe.h"
#include "zmesh/tls.h"

#define B_IP "10.244.1.2"	/* the only pod on the second node */
#define A_IP "10.244.0.2"

FIXTURE(ab) {
	struct labkit k;
	char otherca[64];
};

struct peer {
	int fd;
	struct zm_hbone *h;
	SSL_CTX *ctx;
	int status;		/* last response status */
	int got;		/* tunnel bytes received */
	bool closed;
};

static void on_response(void *ud, struct zm_hbone *h, int32_t id, int status)
{
	(void)h; (void)id;
	((struct peer *)ud)->status = status;
}

static void on_data(void *ud, struct zm_hbone *h, int32_t id, const uint8_t *d, size_t n)
{
	(void)h; (void)id; (void)d;
	((struct peer *)ud)->got += (int)n;
}

static const struct zm_hbone_cbs cbs = { .on_response = on_response, .on_data = on_data };

FIXTURE_SETUP(ab)
{
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1 },
		{ .name = "b", .ns = "mesh", .node = 2 },
		{ .name = "c", .ns = "plain", .node = 1 },
	};

	REQUIRE_ROOT();
	lab_init(&self->k, "ab", "an");
	snprintf(self->otherca, sizeof(self->otherca), "/tmp/zm-ab-ca-%d", getpid() % 100000);
	ASSERT_OK(lab_write(&self->k, LAB_NS_MESH LAB_DOC LAB_NS_PLAIN, pods, 3));
	ASSERT_OK(lab_start_ready(&self->k, NULL));
}

FIXTURE_TEARDOWN(ab)
{
	if (!self->k.lab[0])
		return;
	lab_stop(&self->k);
	test_sh(NULL, 0, "rm -rf %s", self->otherca);
}

/* Move ciphertext until @ms pass with nothing to read; -EPIPE once closed. */
static int pump(struct peer *p, int ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		const void *out;
		size_t n;
		char buf[16384];
		ssize_t r;

		while ((n = zm_hbone_output(p->h, &out)) > 0) {
			ssize_t w = send(p->fd, out, n, MSG_NOSIGNAL);

			if (w <= 0)
				return -EPIPE;
			zm_hbone_consumed(p->h, (size_t)w);
		}
		if (poll(&pfd, 1, ms) <= 0)
			return 0;
		r = recv(p->fd, buf, sizeof(buf), 0);
		if (r <= 0 || zm_hbone_input(p->h, buf, (size_t)r)) {
			p->closed = true;
			return -EPIPE;
		}
	}
}

/* From pod c, TLS + HTTP/2 to b's :15008 as @sa of namespace mesh, signed by
 * the CA in @ca_dir. 0 with the handshake done, or a negative errno. */
static int dial(struct zm_fixture_ab *self, const char *ca_dir, const char *sa, struct peer *p)
{
	struct sockaddr_in sa_in = { .sin_family = AF_INET, .sin_port = htons(15008) };
	struct zm_spiffe_id id;
	struct zm_error e = { 0 };
	struct zm_ca *ca = NULL;
	char ns[64], uri[128], *key = NULL, *csr = NULL, *chain = NULL;
	int saved = -1, rc;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	snprintf(uri, sizeof(uri), "spiffe://cluster.local/ns/mesh/sa/%s", sa);
	rc = zm_ca_open(ca_dir, &ca, &e);
	if (!rc)
		rc = zm_spiffe_parse(uri, strlen(uri), &id);
	if (!rc)
		rc = zm_key_csr(&id, &key, &csr, &e);
	if (!rc)
		rc = zm_ca_sign(ca, csr, &id, 3600, &chain, &e);
	if (rc)
		goto out;
	/* Trust the lab's roots whoever signed us: the server must verify. */
	{
		struct zm_ca *lab = NULL;
		char labca[128];

		snprintf(labca, sizeof(labca), "/run/zmesh/lab/%s/ca", self->k.lab);
		rc = zm_ca_open(labca, &lab, &e);
		if (rc)
			goto out;
		p->ctx = zm_tls_ctx_new(false, key, chain, zm_ca_bundle(lab), "cluster.local", &e);
		zm_ca_free(lab);
	}
	if (!p->ctx) {
		rc = -EINVAL;
		goto out;
	}
	snprintf(ns, sizeof(ns), "zm-%s-plain-c", self->k.lab);
	rc = zm_netns_enter(ns, &saved);
	if (rc)
		goto out;
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, B_IP, &sa_in.sin_addr);
	rc = p->fd < 0 || connect(p->fd, (struct sockaddr *)&sa_in, sizeof(sa_in)) ? -errno : 0;
	zm_netns_restore(saved);
	if (rc)
		goto out;
	rc = zm_hbone_new(p->ctx, false, &cbs, p, &p->h);
	for (int i = 0; !rc && i < 50 && !zm_hbone_ready(p->h); i++)
		rc = pump(p, 100);
	if (!rc && !zm_hbone_ready(p->h))
		rc = -ETIMEDOUT;
out:
	if (rc && e.msg[0])
		test_log("dial: %s", e.msg);
	free(key);
	free(csr);
	free(chain);
	zm_ca_free(ca);
	return rc;
}

static void hangup(struct peer *p)
{
	zm_hbone_free(p->h);
	SSL_CTX_free(p->ctx);
	if (p->fd >= 0)
		close(p->fd);
}

static long long metric(struct zm_fixture_ab *self, const char *node, const char *series)
{
	static char out[65536];

	lab_metrics(self->k.lab, node, out, sizeof(out));
	return lab_metric(out, series);
}

/* A meshed client still reaches b through both ztunnels. */
static void served(struct zm_fixture_ab *self)
{
	static char out[4096];

	EXPECT_EQ(lab_in_pod(self->k.lab, "a", "mesh", out, sizeof(out), "curl -s -m 5 http://" B_IP ":8080/"), 0);
	EXPECT_STRSTR(out, "\"pod\"");
}

static char labca_dir[128];

static const char *labca(struct zm_fixture_ab *self)
{
	snprintf(labca_dir, sizeof(labca_dir), "/run/zmesh/lab/%s/ca", self->k.lab);
	return labca_dir;
}

static const struct zm_hbone_hdr no_hdrs[1];

TEST_F(ab, rapid_reset_gets_goaway_and_everyone_else_is_served)
{
	struct peer p;
	int32_t id;
	int sent = 0;

	ASSERT_OK(dial(self, labca(self), "attacker", &p));
	/* Ten CONNECTs with their resets in one flight: each reaches ztunnel
	 * while its upstream connect is still pending. */
	while (sent < 2000 && !p.closed) {
		for (int i = 0; i < 10; i++) {
			if (zm_hbone_open(p.h, B_IP ":9000", no_hdrs, 0, &id))
				break;
			zm_hbone_reset(p.h, id);
			sent++;
		}
		pump(&p, 5);
	}
	for (int i = 0; i < 20 && !p.closed; i++)
		pump(&p, 100);
	test_log("connection closed after %d premature resets", sent);
	EXPECT_TRUE(p.closed);
	EXPECT_LT(sent, 2000);
	hangup(&p);
	EXPECT_EQ(metric(self, self->k.n2, "zmesh_ztunnel_hbone_goaway_total{reason=\"rapid_reset\"} "), 1);
	EXPECT_EQ(test_sh(NULL, 0, "grep -q 'rapid reset' /run/zmesh/lab/%s/logs/ztunnel-%s.log", self->k.lab,
			  self->k.n2), 0);
	served(self);
}

TEST_F(ab, resets_after_the_answer_keep_the_tunnel)
{
	struct peer p;
	int32_t id;
	int ok = 0;

	ASSERT_OK(dial(self, labca(self), "client", &p));
	for (int i = 0; i < 300 && !p.closed; i++) {
		p.status = 0;
		p.got = 0;
		ASSERT_OK(zm_hbone_open(p.h, B_IP ":9000", no_hdrs, 0, &id));
		ASSERT_OK(zm_hbone_send(p.h, id, "WHOAMI\n", 7));
		for (int t = 0; t < 50 && !p.closed && (p.status != 200 || !p.got); t++)
			pump(&p, 100);
		if (p.status == 200 && p.got)
			ok++;
		zm_hbone_reset(p.h, id);	/* the client's RST after its answer */
		pump(&p, 0);
	}
	EXPECT_EQ(ok, 300);
	EXPECT_FALSE(p.closed);
	hangup(&p);
	EXPECT_EQ(metric(self, self->k.n2, "zmesh_ztunnel_hbone_goaway_total{reason=\"rapid_reset\"} "), 0);
}

TEST_F(ab, connect_to_a_pod_elsewhere_is_refused)
{
	struct peer p;
	int32_t id;

	ASSERT_OK(dial(self, labca(self), "client", &p));
	/* b's tunnel fronts b only: a CONNECT to a's address is not relayed. */
	ASSERT_OK(zm_hbone_open(p.h, A_IP ":9000", no_hdrs, 0, &id));
	for (int t = 0; t < 50 && !p.closed && !p.status; t++)
		pump(&p, 100);
	test_log("refused with %d", p.status);
	EXPECT_GE(p.status, 400);
	EXPECT_FALSE(p.closed);
	/* The same tunnel still serves a good CONNECT. */
	p.status = 0;
	ASSERT_OK(zm_hbone_open(p.h, B_IP ":9000", no_hdrs, 0, &id));
	for (int t = 0; t < 50 && !p.closed && !p.status; t++)
		pump(&p, 100);
	EXPECT_EQ(p.status, 200);
	hangup(&p);
	EXPECT_GE(metric(self, self->k.n2, "zmesh_ztunnel_refused_total "), 1);
}

TEST_F(ab, foreign_ca_and_garbage_are_refused)
{
	struct sockaddr_in sa_in = { .sin_family = AF_INET, .sin_port = htons(15008) };
	static const char junk[] = "GET / HTTP/1.1\r\nHost: b\r\n\r\n";
	char ns[64], buf[256];
	struct peer p;
	int fd, saved;
	ssize_t r;

	/* A well-formed identity from a CA the mesh does not trust. */
	EXPECT_NE(dial(self, self->otherca, "client", &p), 0);
	hangup(&p);
	/* Plain HTTP where TLS is expected: closed, nothing answered in HTTP. */
	snprintf(ns, sizeof(ns), "zm-%s-plain-c", self->k.lab);
	ASSERT_OK(zm_netns_enter(ns, &saved));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, B_IP, &sa_in.sin_addr);
	r = connect(fd, (struct sockaddr *)&sa_in, sizeof(sa_in));
	zm_netns_restore(saved);
	ASSERT_EQ(r, 0);
	{
		struct timeval tv = { 5, 0 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	ASSERT_EQ(send(fd, junk, sizeof(junk) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(junk) - 1);
	r = recv(fd, buf, sizeof(buf) - 1, 0);
	EXPECT_TRUE(r <= 0 || strncmp(buf, "HTTP/", 5) != 0);	/* EOF, a reset or a TLS alert */
	close(fd);
	served(self);
}
