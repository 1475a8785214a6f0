// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshd as a real process in a network namespace of the test's own
 * (unshare: it goes away with the test's processes), real TLS on
 * 127.0.0.1:15012, proxies through the cfgclient library (ASan-built here),
 * curl as an outside client, and zmeshctl proxy-status.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../harness/test.h"
#include "zmesh/bundle.h"
#include "zmesh/ca.h"
#include "zmesh/cfgclient.h"
#include "zmesh/fsutil.h"
#include "zmesh/lab.h"
#include "zmesh/nodeid.h"
#include "zmesh/svid.h"

#define SERVER "127.0.0.1:15012"
#define MONITOR "127.0.0.1:15014"

FIXTURE(zd) {
	char dir[64], store[96], ca[96], lab[ZM_LAB_NAME_MAX + 1], labdir[PATH_MAX], log[128];
	pid_t pid;
};

struct client {
	struct zm_cfgclient *c;
	uint64_t last_seen;		/* last version delivered to on_config */
	int calls;
	const char *nack_name;		/* refuse versions holding an object of this name */
	/* certificate answer */
	bool cert_done;
	int cert_rc;
	char cert_err[512];
	struct zm_svid_cert cert;
	char *bundle;
};

static bool has_name(json_t *objs, const char *name)
{
	size_t i;
	json_t *o;

	json_array_foreach(objs, i, o)
		if (!strcmp(json_string_value(json_object_get(json_object_get(o, "metadata"), "name")) ?: "", name))
			return true;
	return false;
}

static int on_config(void *arg, uint64_t version, json_t *objs, char *why, size_t whysz)
{
	struct client *cl = arg;

	cl->calls++;
	cl->last_seen = version;
	if (cl->nack_name && has_name(objs, cl->nack_name)) {
		snprintf(why, whysz, "object %s: not supported by this proxy", cl->nack_name);
		return -EINVAL;
	}
	return 0;
}

static void on_cert(void *arg, int rc, struct zm_svid_cert *cert, const char *bundle, const char *error)
{
	struct client *cl = arg;

	cl->cert_done = true;
	cl->cert_rc = rc;
	snprintf(cl->cert_err, sizeof(cl->cert_err), "%s", error ? error : "");
	if (cert) {
		cl->cert = *cert;
		memset(cert, 0, sizeof(*cert));	/* taken */
		cl->bundle = strdup(bundle);
	}
}

static int lo_up(void)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (fd >= 0 && !ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* GET @path from the monitor port; the body into @out. 0 on a 200. */
static int monitor_get(const char *path, char *out, size_t outsz)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(15014) };
	char buf[65536];
	size_t len = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -1;
	char *body;

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		goto out;
	dprintf(fd, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	body = strstr(buf, "\r\n\r\n");
	if (!strncmp(buf, "HTTP/1.1 200", 12) && body) {
		if (out)
			snprintf(out, outsz, "%s", body + 4);
		rc = 0;
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int zd_start(struct zm_fixture_zd *self)
{
	char bin[PATH_MAX];

	snprintf(bin, sizeof(bin), "%s/zmeshd", test_build_dir());
	self->pid = fork();
	if (self->pid < 0)
		return -1;
	if (self->pid == 0) {
		int fd = open(self->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (fd >= 0)
			dup2(fd, 2);
		execl(bin, "zmeshd", "--store", self->store, "--ca-dir", self->ca, "--lab", self->lab,
		      "--listen", SERVER, "--monitor", MONITOR, "--cert-ttl", "1h", "--log-level", "debug",
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (monitor_get("/ready", NULL, 0) == 0)
			return 0;
		usleep(50000);
	}
	return -1;
}

static void zd_stop(struct zm_fixture_zd *self, int sig)
{
	if (self->pid > 0) {
		kill(self->pid, sig);
		waitpid(self->pid, NULL, 0);
		self->pid = 0;
	}
}

/* Write generation @n of the store as store.h lays it out: files, then swap `current`. */
static int store_gen(struct zm_fixture_zd *self, int n, const char *const *docs, size_t ndocs)
{
	char path[PATH_MAX], tmp[PATH_MAX];

	snprintf(path, sizeof(path), "%s/gen-%d", self->store, n);
	if (mkdir(path, 0700))
		return -1;
	for (size_t i = 0; i < ndocs; i += 2) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/gen-%d/%s", self->store, n, docs[i]);
		f = fopen(path, "w");
		if (!f)
			return -1;
		fputs(docs[i + 1], f);
		fclose(f);
	}
	snprintf(tmp, sizeof(tmp), "%s/.current.tmp", self->store);
	snprintf(path, sizeof(path), "gen-%d", n);
	unlink(tmp);
	if (symlink(path, tmp))
		return -1;
	snprintf(path, sizeof(path), "%s/current", self->store);
	return rename(tmp, path);
}

/* An L4 policy: in every ztunnel's view (docs/zmeshd.md, "Views"). */
static const char pol_doc[] =
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: %s, namespace: shop}\n"
	"spec:\n  action: ALLOW\n  rules:\n  - from:\n    - source: {principals: [cluster.local/ns/shop/sa/web]}\n";

static const char *pol(char *buf, size_t sz, const char *name)
{
	snprintf(buf, sz, pol_doc, name);
	return buf;
}

FIXTURE_SETUP(zd)
{
	struct zm_ca *ca = NULL;
	struct zm_error e = { "" };
	struct zm_lab lab;
	struct zm_lab_node nodes[2];
	struct zm_lab_pod pods[2];
	char *key = NULL, *chain = NULL, *bundle = NULL, cred[128];
	const char *names[2] = { "node-a", "node-b" };

	REQUIRE_ROOT();
	ASSERT_OK(unshare(CLONE_NEWNET));
	ASSERT_OK(lo_up());
	snprintf(self->dir, sizeof(self->dir), "/tmp/zm-zmeshd-XXXXXX");
	ASSERT_OK_PTR(mkdtemp(self->dir));
	snprintf(self->store, sizeof(self->store), "%s/store", self->dir);
	snprintf(self->ca, sizeof(self->ca), "%s/ca", self->dir);
	snprintf(self->log, sizeof(self->log), "%s/zmeshd.log", self->dir);
	snprintf(self->lab, sizeof(self->lab), "zd%d", getpid() % 100000);
	snprintf(self->labdir, sizeof(self->labdir), "%s/%s", ZM_LAB_STATE_ROOT, self->lab);

	/* The CA first, so the test can mint node credentials; zmeshd opens the same one. */
	ASSERT_OK(zm_ca_open(self->ca, &ca, &e));
	for (int i = 0; i < 2; i++) {
		snprintf(cred, sizeof(cred), "%s/%s", self->dir, names[i]);
		EXPECT_OK(zm_ca_issue_node(ca, "cluster.local", names[i], 0, &key, &chain, &e));
		bundle = zm_ca_bundle_dup(ca);
		EXPECT_OK(zm_node_cred_write(cred, key, chain, bundle, &e));
		free(key);
		free(chain);
		free(bundle);
	}
	/* A waypoint's and the gateway's own credentials, as `lab up` mints them. */
	{
		static const struct { enum zm_cp_role role; const char *ns, *sa, *dir; } px[] = {
			{ ZM_CP_WAYPOINT, "shop", "waypoint", "wp" },
			{ ZM_CP_GATEWAY, "istio-system", "istio-ingressgateway", "gw" },
		};

		for (size_t i = 0; i < 2; i++) {
			snprintf(cred, sizeof(cred), "%s/%s", self->dir, px[i].dir);
			EXPECT_OK(zm_ca_issue_proxy(ca, "cluster.local", px[i].role, px[i].ns, px[i].sa, 0, &key,
						    &chain, &e));
			bundle = zm_ca_bundle_dup(ca);
			EXPECT_OK(zm_node_cred_write(cred, key, chain, bundle, &e));
			free(key);
			free(chain);
			free(bundle);
		}
	}
	zm_ca_free(ca);

	/* A lab state saying where the pods run: shop/web on node-a, shop/db on node-b. */
	memset(&lab, 0, sizeof(lab));
	memset(nodes, 0, sizeof(nodes));
	memset(pods, 0, sizeof(pods));
	snprintf(lab.name, sizeof(lab.name), "%s", self->lab);
	snprintf(lab.state_dir, sizeof(lab.state_dir), "%s", self->labdir);
	for (int i = 0; i < 2; i++) {
		snprintf(nodes[i].name, sizeof(nodes[i].name), "%s", names[i]);
		nodes[i].index = i;
		snprintf(pods[i].ns, sizeof(pods[i].ns), "shop");
		snprintf(pods[i].name, sizeof(pods[i].name), i ? "db" : "web");
		snprintf(pods[i].sa, sizeof(pods[i].sa), i ? "db" : "web");
		snprintf(pods[i].node, sizeof(pods[i].node), "%s", names[i]);
	}
	lab.nodes = nodes;
	lab.nnodes = 2;
	lab.pods = pods;
	lab.npods = 2;
	ASSERT_OK(zm_mkdir_p(self->labdir, 0700));
	ASSERT_OK(zm_lab_save(&lab, &e));
	{
		struct zm_lab back;

		ASSERT_OK(zm_lab_load(self->lab, &back, &e));
		EXPECT_EQ(back.npods, 2);
		zm_lab_free(&back);
	}
	ASSERT_OK(zd_start(self));
}

FIXTURE_TEARDOWN(zd)
{
	char cmd[PATH_MAX];

	zd_stop(self, SIGTERM);
	/* ZM_ZMESHD_LOG=FILE keeps zmeshd's log of the last test there. */
	if (getenv("ZM_ZMESHD_LOG")) {
		snprintf(cmd, sizeof(cmd), "cp %s '%s'", self->log, getenv("ZM_ZMESHD_LOG"));
		test_sh(NULL, 0, "%s", cmd);
	}
	if (self->labdir[0])
		zm_rm_rf(self->labdir);
	if (self->dir[0])
		zm_rm_rf(self->dir);
}

static void client_free(void *arg)
{
	struct client *cl = arg;

	zm_cfgclient_free(cl->c);
	zm_svid_cert_clear(&cl->cert);
	free(cl->bundle);
	free(cl);
}

/*
 * A proxy with the credential in <dir>/<cred>; freed by a deferred cleanup
 * (so on the heap: defers run after the test body has returned).
 */
static struct client *client_new_kind(struct zm_fixture_zd *self, const char *cred, const char *kind)
{
	char dir[PATH_MAX];
	struct client *cl = calloc(1, sizeof(*cl));
	struct zm_cfgclient_opts o = { .server = SERVER, .cred_dir = dir, .on_config = on_config, .arg = cl,
				       .proxy = kind };
	struct zm_error e;

	if (!cl)
		return NULL;
	snprintf(dir, sizeof(dir), "%s/%s", self->dir, cred);
	if (zm_cfgclient_new(&o, &cl->c, &e)) {
		free(cl);
		return NULL;
	}
	test_defer(client_free, cl);
	return cl;
}

static struct client *client_new(struct zm_fixture_zd *self, const char *cred)
{
	return client_new_kind(self, cred, NULL);
}

/* Run the clients' loops until @cond holds or @ms pass. */
static bool drive(struct client **cls, int n, int ms, bool (*cond)(struct client **, int, void *), void *arg)
{
	for (int t = 0; t < ms; t += 20) {
		struct pollfd p[64];

		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){ .fd = zm_cfgclient_fd(cls[i]->c), .events = POLLIN };
		poll(p, (nfds_t)n, 20);
		for (int i = 0; i < n; i++)
			zm_cfgclient_process(cls[i]->c);
		if (cond && cond(cls, n, arg))
			return true;
	}
	return false;
}

static bool all_at(struct client **cls, int n, void *arg)
{
	uint64_t want = *(uint64_t *)arg;

	for (int i = 0; i < n; i++) {
		bool have;

		if (zm_cfgclient_version(cls[i]->c, &have) != want || !have)
			return false;
	}
	return true;
}

static bool connected(struct client **cls, int n, void *arg)
{
	(void)n; (void)arg;
	return zm_cfgclient_connected(cls[0]->c) && zm_cfgclient_version(cls[0]->c, NULL) == cls[0]->last_seen &&
	       cls[0]->calls > 0;
}

static bool cert_done(struct client **cls, int n, void *arg)
{
	(void)n; (void)arg;
	return cls[0]->cert_done;
}

static bool seen(struct client **cls, int n, void *arg)
{
	(void)n;
	return cls[0]->last_seen == *(uint64_t *)arg;
}

static bool never(struct client **cls, int n, void *arg)
{
	(void)cls; (void)n; (void)arg;
	return false;
}

static bool logged(struct zm_fixture_zd *self, const char *needle)
{
	char out[256];

	for (int i = 0; i < 50; i++) {
		if (test_sh(out, sizeof(out), "grep -cF -- '%s' %s", needle, self->log) == 0)
			return true;
		usleep(20000);
	}
	return false;
}

/* @needle shows up in the file @path within 5 s. */
static bool logged_in(const char *path, const char *needle)
{
	for (int i = 0; i < 250; i++) {
		if (test_sh(NULL, 0, "grep -qF -- '%s' %s", needle, path) == 0)
			return true;
		usleep(20000);
	}
	return false;
}

static void kill_wait(void *arg)
{
	pid_t pid = (pid_t)(intptr_t)arg;

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static void test_defer_kill(pid_t pid)
{
	test_defer(kill_wait, (void *)(intptr_t)pid);
}

static int request_cert(struct client *cl, const char *ns, const char *sa)
{
	struct zm_spiffe_id id;
	struct client *one[1] = { cl };

	zm_spiffe_make(&id, "cluster.local", ns, sa);
	/* Up first: the config stream holds the connection. */
	if (!drive(one, 1, 5000, connected, NULL))
		return -ETIMEDOUT;
	cl->cert_done = false;
	if (zm_cfgclient_request_cert(cl->c, &id, on_cert, cl))
		return -ENOTCONN;
	return drive(one, 1, 5000, cert_done, NULL) ? 0 : -ETIMEDOUT;
}

TEST_F(zd, cert_san_is_spiffe_id_and_chains_to_root)
{
	struct client *a;
	struct zm_bundle *b = NULL;
	X509_STORE *roots = NULL;
	STACK_OF(X509) *chain = NULL;
	struct zm_spiffe_id got;
	struct zm_error e = { "" };
	char bundle_file[PATH_MAX], *ca_bundle = NULL;
	long life;

	a = client_new(self, "node-a");
	ASSERT_OK_PTR(a);
	ASSERT_OK(request_cert(a, "shop", "web"));
	ASSERT_EQ(a->cert_rc, 0);
	/* The SAN is the SPIFFE ID asked for; the chain verifies to the bundle. */
	chain = zm_pem_certs(a->cert.chain_pem, &e);
	ASSERT_OK_PTR(chain);
	b = zm_bundle_new();
	ASSERT_OK(zm_bundle_add_pem(b, a->bundle, &e));
	roots = zm_bundle_store(b);
	ASSERT_OK(zm_svid_verify(sk_X509_value(chain, 0), chain, roots, "cluster.local",
				 X509_PURPOSE_SSL_CLIENT, &got, &e));
	EXPECT_STREQ(got.ns, "shop");
	EXPECT_STREQ(got.sa, "web");
	/* The bundle is the CA's roots, and --cert-ttl 1h holds (notBefore is 60 s back). */
	snprintf(bundle_file, sizeof(bundle_file), "%s/root-cert.pem", self->ca);
	ca_bundle = NULL;
	{
		FILE *f = fopen(bundle_file, "r");
		char buf[8192];
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		buf[n] = 0;
		if (f)
			fclose(f);
		ca_bundle = strdup(buf);
	}
	EXPECT_STRSTR(a->bundle, ca_bundle);
	life = (long)(a->cert.not_after - a->cert.not_before);
	EXPECT_EQ(life, 3600 + 60);
	/* GET /v1/bundle with a real client serves the same roots. */
	{
		char out[8192];

		ASSERT_EQ(test_sh(out, sizeof(out),
				  "curl -sk --http2 --cert %s/node-a/node-cert.pem --key %s/node-a/node-key.pem "
				  "https://" SERVER "/v1/bundle", self->dir, self->dir), 0);
		EXPECT_STRSTR(out, "BEGIN CERTIFICATE");
		EXPECT_STRSTR(ca_bundle, out);
	}
	free(ca_bundle);
	X509_STORE_free(roots);
	zm_bundle_free(b);
	sk_X509_pop_free(chain, X509_free);
}

TEST_F(zd, node_cannot_get_another_nodes_identity)
{
	struct client *a, *b;
	char out[4096];

	a = client_new(self, "node-a");
	ASSERT_OK_PTR(a);
	b = client_new(self, "node-b");
	ASSERT_OK_PTR(b);
	/* shop/db runs on node-b: node-a is refused, and zmeshd says so in its log. */
	ASSERT_OK(request_cert(a, "shop", "db"));
	EXPECT_EQ(a->cert_rc, -EACCES);
	EXPECT_STRSTR(a->cert_err, "no pod with service account shop/db on node node-a");
	EXPECT_TRUE(logged(self, "CSR refused (403): node node-a may not get spiffe://cluster.local/ns/shop/sa/db"));
	/* zmeshd's own identity is never for a CSR. */
	ASSERT_OK(request_cert(a, "zmesh-system", "zmeshd"));
	EXPECT_EQ(a->cert_rc, -EACCES);
	/* A real client: 403 too; garbage instead of a CSR: 400. */
	ASSERT_EQ(test_sh(NULL, 0, "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			  "-keyout %s/w.key -subj / -addext subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/db "
			  "-out %s/db.csr 2>/dev/null", self->dir, self->dir), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sk --http2 --cert %s/node-a/node-cert.pem --key %s/node-a/node-key.pem "
			  "--data-binary @%s/db.csr -o /dev/null -w '%%{http_code}' https://" SERVER "/v1/certs",
			  self->dir, self->dir, self->dir), 0);
	EXPECT_STREQ(out, "403");
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sk --http2 --cert %s/node-a/node-cert.pem --key %s/node-a/node-key.pem "
			  "--data-binary 'not a CSR' -w ' %%{http_code}' https://" SERVER "/v1/certs",
			  self->dir, self->dir), 0);
	EXPECT_STRSTR(out, "not a PEM certificate request\"} 400");
	/* zmeshd keeps serving: node-b gets its own pod's identity. */
	ASSERT_OK(request_cert(b, "shop", "db"));
	EXPECT_EQ(b->cert_rc, 0);
	EXPECT_STREQ(b->cert.id.sa, "db");
	EXPECT_EQ(monitor_get("/ready", NULL, 0), 0);
}

TEST_F(zd, client_without_valid_cert_is_cut_off)
{
	struct zm_ca *other = NULL;
	struct zm_error e = { "" };
	char dir[PATH_MAX], cred[PATH_MAX], out[4096], *key = NULL, *chain = NULL, *bundle = NULL;
	struct client *x, *a;
	struct client *one[1];

	/* No certificate at all. */
	EXPECT_NE(test_sh(NULL, 0, "curl -sk --http2 https://" SERVER "/v1/bundle"), 0);
	EXPECT_TRUE(logged(self, "peer did not return a certificate"));
	/* A node credential from another CA: refused at the handshake. */
	snprintf(dir, sizeof(dir), "%s/otherca", self->dir);
	snprintf(cred, sizeof(cred), "%s/evil", self->dir);
	ASSERT_OK(zm_ca_open(dir, &other, &e));
	ASSERT_OK(zm_ca_issue_node(other, "cluster.local", "node-a", 0, &key, &chain, &e));
	bundle = zm_ca_bundle_dup(other);
	ASSERT_OK(zm_node_cred_write(cred, key, chain, bundle, &e));
	free(key);
	free(chain);
	free(bundle);
	zm_ca_free(other);
	EXPECT_NE(test_sh(out, sizeof(out), "curl -sk --http2 --cert %s/node-cert.pem --key %s/node-key.pem "
			  "https://" SERVER "/v1/bundle", cred, cred), 0);
	EXPECT_TRUE(logged(self, "certificate chain: unable to get local issuer certificate"));
	/* A workload certificate of our own CA is not a node identity. */
	{
		a = client_new(self, "node-a");
		ASSERT_OK_PTR(a);
		ASSERT_OK(request_cert(a, "shop", "web"));
		ASSERT_EQ(a->cert_rc, 0);
		snprintf(cred, sizeof(cred), "%s/workload", self->dir);
		ASSERT_OK(zm_node_cred_write(cred, a->cert.key_pem, a->cert.chain_pem, a->bundle, &e));
		EXPECT_NE(test_sh(NULL, 0, "curl -sk --http2 --cert %s/node-cert.pem --key %s/node-key.pem "
				  "https://" SERVER "/v1/bundle", cred, cred), 0);
		EXPECT_TRUE(logged(self, "URI SAN is not a node, waypoint or gateway identity"));
		/* The library client with that credential never gets a stream. */
		x = client_new(self, "workload");
		ASSERT_OK_PTR(x);
		one[0] = x;
		drive(one, 1, 1000, never, NULL);
		EXPECT_FALSE(zm_cfgclient_connected(x->c));
		EXPECT_EQ(x->calls, 0);
	}
	/* zmeshd is still up and serving the good node. */
	EXPECT_EQ(monitor_get("/ready", NULL, 0), 0);
	EXPECT_EQ(test_sh(NULL, 0, "curl -sfk --http2 --cert %s/node-a/node-cert.pem --key %s/node-a/node-key.pem "
			  "https://" SERVER "/v1/bundle", self->dir, self->dir), 0);
}

static bool proxy_status_has(const char *want_a, const char *want_b, char *out, size_t outsz)
{
	for (int i = 0; i < 50; i++) {
		if (test_sh(out, outsz, "%s/zmeshctl proxy-status --addr " MONITOR, test_build_dir()) == 0 &&
		    strstr(out, want_a) && (!want_b || strstr(out, want_b)))
			return true;
		usleep(20000);
	}
	return false;
}

TEST_F(zd, config_change_reaches_every_proxy_and_is_acked)
{
	struct client *a, *b;
	struct client *both[2];
	char d1[512], d2[512], out[4096];
	uint64_t v;

	a = client_new(self, "node-a");
	ASSERT_OK_PTR(a);
	b = client_new(self, "node-b");
	ASSERT_OK_PTR(b);
	both[0] = a;
	both[1] = b;
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1"),
				       "Secret.shop.tls.yaml",
				       "apiVersion: v1\nkind: Secret\nmetadata: {name: tls, namespace: shop}\n"
				       "data: {key: c2VjcmV0}\n" };

		ASSERT_OK(store_gen(self, 1, docs, 4));
	}
	v = 1;
	ASSERT_TRUE(drive(both, 2, 5000, all_at, &v));
	EXPECT_TRUE(has_name(zm_cfgclient_config(a->c), "r1"));
	/* Secrets stay in zmeshd. */
	EXPECT_FALSE(has_name(zm_cfgclient_config(a->c), "tls"));
	/* A change: r2 added (a delta), seen and ACKed by both. */
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1"),
				       "AuthorizationPolicy.shop.r2.yaml", pol(d2, sizeof(d2), "r2") };

		ASSERT_OK(store_gen(self, 2, docs, 4));
	}
	v = 2;
	ASSERT_TRUE(drive(both, 2, 5000, all_at, &v));
	for (int i = 0; i < 2; i++) {
		EXPECT_TRUE(has_name(zm_cfgclient_config(both[i]->c), "r1"));
		EXPECT_TRUE(has_name(zm_cfgclient_config(both[i]->c), "r2"));
	}
	EXPECT_TRUE(proxy_status_has("ztunnel~node-a", "ztunnel~node-b", out, sizeof(out)));
	ASSERT_TRUE(proxy_status_has("2        2        SYNCED", NULL, out, sizeof(out)));
	EXPECT_STRSTR(out, "NAME");
	/* Both lines synced at version 2. */
	{
		char *first = strstr(out, "SYNCED");

		EXPECT_OK_PTR(first);
		if (first)
			EXPECT_STRSTR(first + 6, "SYNCED");
	}
	/* A deletion travels as a delta too. */
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r2.yaml", pol(d2, sizeof(d2), "r2") };

		ASSERT_OK(store_gen(self, 3, docs, 2));
	}
	v = 3;
	ASSERT_TRUE(drive(both, 2, 5000, all_at, &v));
	EXPECT_FALSE(has_name(zm_cfgclient_config(a->c), "r1"));
	EXPECT_TRUE(has_name(zm_cfgclient_config(b->c), "r2"));
	ASSERT_EQ(monitor_get("/metrics", out, sizeof(out)), 0);
	EXPECT_STRSTR(out, "zmeshd_pushes_total{kind=\"delta\"} 4");
	EXPECT_STRSTR(out, "zmeshd_proxies{state=\"synced\"} 2");
}

TEST_F(zd, nack_is_recorded_and_shown)
{
	struct client *a;
	struct client *one[1];
	char d1[512], d2[512], out[4096];
	uint64_t v;
	bool have;

	a = client_new(self, "node-a");
	ASSERT_OK_PTR(a);
	one[0] = a;
	a->nack_name = "bad";
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1") };

		ASSERT_OK(store_gen(self, 1, docs, 2));
	}
	v = 1;
	ASSERT_TRUE(drive(one, 1, 5000, all_at, &v));
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1"),
				       "AuthorizationPolicy.shop.bad.yaml", pol(d2, sizeof(d2), "bad") };

		ASSERT_OK(store_gen(self, 2, docs, 4));
	}
	v = 2;
	ASSERT_TRUE(drive(one, 1, 5000, seen, &v));
	/* The proxy keeps version 1; zmeshd shows the NACK with its reason. */
	EXPECT_EQ(zm_cfgclient_version(a->c, &have), 1);
	EXPECT_FALSE(has_name(zm_cfgclient_config(a->c), "bad"));
	ASSERT_TRUE(proxy_status_has("NACK", NULL, out, sizeof(out)));
	EXPECT_STRSTR(out, "object bad: not supported by this proxy");
	EXPECT_TRUE(logged(self, "proxy ztunnel~node-a NACKed version 2: object bad: not supported by this proxy"));
	/* Fixed in version 3: ACKed, in sync again. */
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1") };

		ASSERT_OK(store_gen(self, 3, docs, 2));
	}
	v = 3;
	ASSERT_TRUE(drive(one, 1, 5000, all_at, &v));
	EXPECT_TRUE(proxy_status_has("3        3        SYNCED", NULL, out, sizeof(out)));
}

TEST_F(zd, restart_keeps_config_and_proxy_catches_up)
{
	struct client *a;
	struct client *one[1];
	char d1[512], d2[512], out[4096];
	uint64_t v;
	bool have;

	a = client_new(self, "node-a");
	ASSERT_OK_PTR(a);
	one[0] = a;
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1") };

		ASSERT_OK(store_gen(self, 1, docs, 2));
	}
	v = 1;
	ASSERT_TRUE(drive(one, 1, 5000, all_at, &v));
	EXPECT_EQ(zm_cfgclient_connects(a->c), 1);
	/* zmeshd dies hard: the proxy keeps version 1 while it is gone. */
	zd_stop(self, SIGKILL);
	drive(one, 1, 700, never, NULL);
	EXPECT_FALSE(zm_cfgclient_connected(a->c));
	/* It retries on its own, with a delay that never exceeds the 5 s cap. */
	for (int i = 0; i < 20; i++) {
		int t = zm_cfgclient_timeout_ms(a->c);

		EXPECT_TRUE(t >= 0 && t <= 5000);
		drive(one, 1, 100, never, NULL);
	}
	EXPECT_EQ(zm_cfgclient_version(a->c, &have), 1);
	EXPECT_TRUE(has_name(zm_cfgclient_config(a->c), "r1"));
	/* The config changes while zmeshd is down; zmeshd comes back from its directories. */
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r2.yaml", pol(d2, sizeof(d2), "r2") };

		ASSERT_OK(store_gen(self, 2, docs, 2));
	}
	ASSERT_OK(zd_start(self));
	v = 2;
	ASSERT_TRUE(drive(one, 1, 8000, all_at, &v));
	EXPECT_GE(zm_cfgclient_connects(a->c), 2);
	EXPECT_TRUE(has_name(zm_cfgclient_config(a->c), "r2"));
	EXPECT_FALSE(has_name(zm_cfgclient_config(a->c), "r1"));
	EXPECT_TRUE(proxy_status_has("2        2        SYNCED", NULL, out, sizeof(out)));
	/* Same CA after the restart: a new certificate still chains to the old bundle. */
	ASSERT_OK(request_cert(a, "shop", "web"));
	EXPECT_EQ(a->cert_rc, 0);
}

TEST_F(zd, bad_requests_get_clear_errors)
{
	char out[4096];

	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sk --http2 --cert %s/node-a/node-cert.pem --key %s/node-a/node-key.pem "
			  "-w ' %%{http_code}' https://" SERVER "/v2/nothing", self->dir, self->dir), 0);
	EXPECT_STRSTR(out, "no such endpoint\"}\n 404");
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sk --http2 --cert %s/node-a/node-cert.pem --key %s/node-a/node-key.pem "
			  "-w ' %%{http_code}' -X DELETE https://" SERVER "/v1/certs", self->dir, self->dir), 0);
	EXPECT_STRSTR(out, " 405");
	/* An ACK on a connection that holds no config stream. */
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -sk --http2 --cert %s/node-a/node-cert.pem --key %s/node-a/node-key.pem "
			  "-w ' %%{http_code}' --data-binary '{\"version\":1,\"error\":null}' https://" SERVER "/v1/ack",
			  self->dir, self->dir), 0);
	EXPECT_STRSTR(out, " 409");
	/* Plaintext to :15012: the connection is dropped, zmeshd goes on. */
	{
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(15012) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char buf[256];

		inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
		ASSERT_OK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
		EXPECT_EQ(write(fd, "GET / HTTP/1.1\r\n\r\n", 18), 18);
		/* Closed by zmeshd (perhaps after an alert), well before the handshake deadline. */
		EXPECT_EQ(poll(&pf, 1, 5000), 1);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		close(fd);
	}
	EXPECT_TRUE(logged(self, "TLS handshake from 127.0.0.1"));
	/* A node that completes the handshake, then sends garbage instead of HTTP/2:
	 * the connection is closed (GOAWAY), zmeshd goes on. */
	EXPECT_EQ(test_sh(NULL, 0, "head -c 4096 /dev/urandom | timeout 10 openssl s_client -quiet -alpn h2 "
			  "-connect " SERVER " -cert %s/node-a/node-cert.pem -key %s/node-a/node-key.pem "
			  ">/dev/null 2>&1; true", self->dir, self->dir), 0);
	EXPECT_TRUE(logged(self, "node node-a (127.0.0.1"));
	EXPECT_TRUE(logged(self, "HTTP/2: "));
	/* HTTP/1.1 is not spoken on :15012 (ALPN h2 only). */
	EXPECT_NE(test_sh(NULL, 0, "curl -sk --http1.1 --cert %s/node-a/node-cert.pem --key %s/node-a/node-key.pem "
			  "https://" SERVER "/v1/bundle", self->dir, self->dir), 0);
	EXPECT_EQ(monitor_get("/ready", NULL, 0), 0);
}

static int count_certs(const char *pem)
{
	int n = 0;

	for (const char *p = pem; p && (p = strstr(p, "BEGIN CERTIFICATE")); p++)
		n++;
	return n;
}

static bool bundle_has(struct client **cls, int n, void *arg)
{
	(void)n;
	return count_certs(zm_cfgclient_bundle(cls[0]->c)) == *(int *)arg;
}

/* Does @chain_pem verify as an X509-SVID against the roots of @bundle_pem? */
static int verify_with(const char *bundle_pem, const char *chain_pem)
{
	struct zm_error e = { "" };
	struct zm_bundle *b = zm_bundle_new();
	STACK_OF(X509) *chain = zm_pem_certs(chain_pem, &e);
	X509_STORE *roots = NULL;
	struct zm_spiffe_id id;
	int rc = -EINVAL;

	if (b && chain && !zm_bundle_add_pem(b, bundle_pem, &e) && (roots = zm_bundle_store(b)))
		rc = zm_svid_verify(sk_X509_value(chain, 0), chain, roots, "cluster.local",
				    X509_PURPOSE_SSL_CLIENT, &id, &e);
	X509_STORE_free(roots);
	sk_X509_pop_free(chain, X509_free);
	zm_bundle_free(b);
	return rc;
}

static bool metric_is(const char *line)
{
	char out[8192];

	for (int i = 0; i < 100; i++) {
		if (monitor_get("/metrics", out, sizeof(out)) == 0 && strstr(out, line))
			return true;
		usleep(50000);
	}
	return false;
}

TEST_F(zd, root_rotation_keeps_old_and_new_roots_trusted)
{
	struct client *a;
	struct client *one[1];
	struct zm_error e = { "" };
	char *old_chain = NULL, *new_chain = NULL;
	int want;

	a = client_new(self, "node-a");
	ASSERT_OK_PTR(a);
	one[0] = a;
	ASSERT_OK(request_cert(a, "shop", "web"));
	ASSERT_EQ(a->cert_rc, 0);
	old_chain = strdup(a->cert.chain_pem);
	EXPECT_EQ(count_certs(zm_cfgclient_bundle(a->c)), 1);
	/* Step 1 (zmeshctl ca prepare): a new root is prepared: proxies trust both before it signs anything. */
	ASSERT_EQ(test_sh(NULL, 0, "%s/zmeshctl ca prepare --ca-dir %s", test_build_dir(), self->ca), 0);
	want = 2;
	ASSERT_TRUE(drive(one, 1, 5000, bundle_has, &want));
	/* Step 2: the new root signs; the old one stays trusted. */
	ASSERT_EQ(test_sh(NULL, 0, "%s/zmeshctl ca activate --ca-dir %s", test_build_dir(), self->ca), 0);
	ASSERT_TRUE(metric_is("zmeshd_ca_reloads_total 2"));
	zm_svid_cert_clear(&a->cert);
	ASSERT_OK(request_cert(a, "shop", "web"));
	ASSERT_EQ(a->cert_rc, 0);
	new_chain = strdup(a->cert.chain_pem);
	EXPECT_OK(verify_with(zm_cfgclient_bundle(a->c), old_chain));
	EXPECT_OK(verify_with(zm_cfgclient_bundle(a->c), new_chain));
	{
		STACK_OF(X509) *o = zm_pem_certs(old_chain, &e), *n = zm_pem_certs(new_chain, &e);

		ASSERT_TRUE(o && n);
		/* Different signers: the new leaf is the new root's. */
		EXPECT_NE(X509_NAME_cmp(X509_get_issuer_name(sk_X509_value(o, 0)),
					X509_get_issuer_name(sk_X509_value(n, 0))), 0);
		sk_X509_pop_free(o, X509_free);
		sk_X509_pop_free(n, X509_free);
	}
	/* A zmeshd restart in the overlap: it now serves with the new root, the proxy
	 * (node credential from the old root, bundle learnt from the stream) reconnects. */
	zd_stop(self, SIGTERM);
	ASSERT_OK(zd_start(self));
	ASSERT_TRUE(drive(one, 1, 8000, connected, NULL));
	EXPECT_GE(zm_cfgclient_connects(a->c), 2);
	/* Step 3: retired: the old root leaves the bundle, its certificates stop verifying. */
	ASSERT_EQ(test_sh(NULL, 0, "%s/zmeshctl ca retire --ca-dir %s", test_build_dir(), self->ca), 0);
	want = 1;
	ASSERT_TRUE(drive(one, 1, 5000, bundle_has, &want));
	EXPECT_NE(verify_with(zm_cfgclient_bundle(a->c), old_chain), 0);
	EXPECT_OK(verify_with(zm_cfgclient_bundle(a->c), new_chain));
	free(old_chain);
	free(new_chain);
}

TEST_F(zd, broken_generation_is_not_pushed)
{
	struct client *a;
	struct client *one[1];
	char d1[512], d2[512];
	uint64_t v;
	bool have;

	a = client_new(self, "node-a");
	ASSERT_OK_PTR(a);
	one[0] = a;
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1") };

		ASSERT_OK(store_gen(self, 1, docs, 2));
	}
	v = 1;
	ASSERT_TRUE(drive(one, 1, 5000, all_at, &v));
	/* A generation that does not load (a writer bypassing validation): logged, not pushed. */
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", "kind: AuthorizationPolicy\nspec: [\n" };

		ASSERT_OK(store_gen(self, 2, docs, 2));
	}
	EXPECT_TRUE(metric_is("zmeshd_store_reloads_total{result=\"error\"} 1\n"));
	EXPECT_TRUE(logged(self, "store version 2 not loaded: keeping version 1"));
	drive(one, 1, 300, never, NULL);
	EXPECT_EQ(zm_cfgclient_version(a->c, &have), 1);
	EXPECT_EQ(a->calls, 1);
	EXPECT_TRUE(metric_is("zmeshd_config_version 1\n"));
	EXPECT_TRUE(metric_is("zmeshd_store_reloads_total{result=\"error\"} 1\n"));	/* not retried */
	/* The next good generation goes out as usual. */
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r2.yaml", pol(d2, sizeof(d2), "r2") };

		ASSERT_OK(store_gen(self, 3, docs, 2));
	}
	v = 3;
	ASSERT_TRUE(drive(one, 1, 5000, all_at, &v));
	EXPECT_TRUE(has_name(zm_cfgclient_config(a->c), "r2"));
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 50 nodes on one zmeshd: a change reaches all of them and is ACKed (time logged, not asserted). */
TEST_F(zd, change_reaches_fifty_proxies)
{
	enum { N = 50 };
	struct client *cls[N];
	struct zm_ca *ca = NULL;
	struct zm_error e = { "" };
	char d1[512], out[65536], node[32], cred[160];
	long long t0, t1;
	uint64_t v;

	ASSERT_OK(zm_ca_open(self->ca, &ca, &e));
	for (int i = 0; i < N; i++) {
		char *key = NULL, *chain = NULL;

		snprintf(node, sizeof(node), "n%d", i);
		snprintf(cred, sizeof(cred), "%s/%s", self->dir, node);
		ASSERT_OK(zm_ca_issue_node(ca, "cluster.local", node, 0, &key, &chain, &e));
		ASSERT_OK(zm_node_cred_write(cred, key, chain, zm_ca_bundle(ca), &e));
		free(key);
		free(chain);
		cls[i] = client_new(self, node);
		ASSERT_OK_PTR(cls[i]);
	}
	zm_ca_free(ca);
	v = 0;
	ASSERT_TRUE(drive(cls, N, 10000, all_at, &v));
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1") };

		t0 = mono_ms();
		ASSERT_OK(store_gen(self, 1, docs, 2));
	}
	v = 1;
	ASSERT_TRUE(drive(cls, N, 10000, all_at, &v));
	t1 = mono_ms();
	/* zmeshd has all 50 ACKs: synced. */
	for (int i = 0; i < 100; i++) {
		if (monitor_get("/metrics", out, sizeof(out)) == 0 && strstr(out, "zmeshd_proxies{state=\"synced\"} 50"))
			break;
		usleep(20000);
	}
	EXPECT_STRSTR(out, "zmeshd_proxies{state=\"synced\"} 50");
	test_log("store change -> 50 proxies applied it: %lld ms (includes the 20 ms poll step of the test loop)",
		 t1 - t0);
	if (test_sh(out, sizeof(out), "grep VmRSS /proc/%d/status | tr -s ' \t\n' ' '", (int)self->pid) == 0)
		test_log("zmeshd with 50 proxies: %s", out);
}

struct csr_count {
	int ok, failed;
};

static void count_cert(void *arg, int rc, struct zm_svid_cert *cert, const char *bundle, const char *error)
{
	struct csr_count *n = arg;

	(void)bundle; (void)error;
	if (rc == 0 && cert && !strcmp(cert->id.sa, "web"))
		n->ok++;
	else
		n->failed++;
}

static bool csrs_done(struct client **cls, int n, void *arg)
{
	struct csr_count *c = arg;

	(void)cls; (void)n;
	return c->ok + c->failed >= 200;
}

/* 200 CSRs at once on one connection (more than the 100 concurrent streams zmeshd allows). */
TEST_F(zd, many_csrs_on_one_connection)
{
	struct client *a;
	struct client *one[1];
	struct zm_spiffe_id id;
	struct csr_count *n = calloc(1, sizeof(*n));
	long long t0, t1;

	ASSERT_OK_PTR(n);
	test_defer(free, n);
	a = client_new(self, "node-a");
	ASSERT_OK_PTR(a);
	one[0] = a;
	ASSERT_TRUE(drive(one, 1, 5000, connected, NULL));
	zm_spiffe_make(&id, "cluster.local", "shop", "web");
	t0 = mono_ms();
	for (int i = 0; i < 200; i++)
		ASSERT_OK(zm_cfgclient_request_cert(a->c, &id, count_cert, n));
	ASSERT_TRUE(drive(one, 1, 30000, csrs_done, n));
	t1 = mono_ms();
	EXPECT_EQ(n->ok, 200);
	EXPECT_EQ(n->failed, 0);
	test_log("200 CSRs (keys made here, signed by zmeshd, checked here): %lld ms", t1 - t0);
}

struct labctx {
	char name[16], file[64], ctl[PATH_MAX];
};

/* ---- views ------------------------------------------------------------------------------- */

static const char views_v1[] =
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n"
	"---\napiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n"
	"---\napiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n"
	"---\napiVersion: v1\nkind: Node\nmetadata: {name: node-b}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\n"
	"spec: {nodeName: node-a, serviceAccountName: web, containers: [{name: c, command: [sleep, '1']}]}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: shop, labels: {app: db%s}}\n"
	"spec: {nodeName: node-b, serviceAccountName: db, containers: [{name: c, command: [sleep, '%s']}]}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
	"spec: {selector: {app: web}, ports: [{port: 80}]}\n"
	"---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs, namespace: shop}\n"
	"spec:\n  hosts: [web]\n  http:\n  - route:\n    - destination: {host: web, subset: %s}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr, namespace: shop}\n"
	"spec: {host: web, subsets: [{name: v1, labels: {app: web}}, {name: v2, labels: {app: web}}]}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-system}\n"
	"spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}\n"
	"---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: pa, namespace: shop}\n"
	"spec: {mtls: {mode: STRICT}}\n"
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: l4, namespace: shop}\n"
	"spec: {action: ALLOW, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]}]}\n"
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: l7, namespace: shop}\n"
	"spec: {targetRefs: [{kind: Service, group: '', name: web}], action: ALLOW,"
	" rules: [{to: [{operation: {methods: [GET]}}]}]}\n"
	"---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra, namespace: shop}\n"
	"spec: {jwtRules: [{issuer: 'https://issuer.example', jwksUri: 'https://issuer.example/jwks'}]}\n"
	"---\napiVersion: v1\nkind: Secret\nmetadata: {name: cred, namespace: istio-system}\ndata: {key: c2VjcmV0}\n"
	"---\napiVersion: v1\nkind: Secret\nmetadata: {name: tls, namespace: shop}\ndata: {key: c2VjcmV0}\n";

/* Generation @n of the views config: db's extra labels, db's command, the VirtualService's subset. */
static int views_gen(struct zm_fixture_zd *self, int n, const char *db_labels, const char *db_cmd, const char *subset)
{
	char doc[8192];
	const char *docs[] = { "all.yaml", doc };

	snprintf(doc, sizeof(doc), views_v1, db_labels, db_cmd, subset);
	return store_gen(self, n, docs, 2);
}

/* The sorted keys of a delivered object set, comma-separated. */
static void keys_of(json_t *objs, char *out, size_t sz)
{
	const char *keys[64];
	size_t n = 0, i, off = 0;
	json_t *o;
	char buf[64][160];

	json_array_foreach(objs, i, o) {
		json_t *m = json_object_get(o, "metadata");

		if (n >= 64)
			break;
		snprintf(buf[n], sizeof(buf[n]), "%s/%s/%s", json_string_value(json_object_get(o, "kind")) ?: "",
			 json_string_value(json_object_get(m, "namespace")) ?: "",
			 json_string_value(json_object_get(m, "name")) ?: "");
		keys[n] = buf[n];
		n++;
	}
	for (size_t a = 0; a < n; a++)
		for (size_t b = a + 1; b < n; b++)
			if (strcmp(keys[a], keys[b]) > 0) {
				const char *t = keys[a];

				keys[a] = keys[b];
				keys[b] = t;
			}
	out[0] = 0;
	for (i = 0; i < n && off < sz; i++)
		off += (size_t)snprintf(out + off, sz - off, "%s%s", i ? "," : "", keys[i]);
}

static json_t *find_obj(json_t *objs, const char *kind, const char *name)
{
	size_t i;
	json_t *o;

	json_array_foreach(objs, i, o)
		if (!strcmp(json_string_value(json_object_get(o, "kind")) ?: "", kind) &&
		    !strcmp(json_string_value(json_object_get(json_object_get(o, "metadata"), "name")) ?: "", name))
			return o;
	return NULL;
}

/* proxy-status has a line starting with @name that holds @want. */
static bool status_line_has(const char *name, const char *want, char *out, size_t outsz)
{
	for (int i = 0; i < 100; i++) {
		if (test_sh(out, outsz, "%s/zmeshctl proxy-status --addr " MONITOR " | grep '^%s '", test_build_dir(),
			    name) == 0 && strstr(out, want))
			return true;
		usleep(20000);
	}
	return false;
}

#define ZT_VIEW "AuthorizationPolicy/shop/l4,Namespace//istio-system,Namespace//shop,Node//node-a," \
		"PeerAuthentication/shop/pa,Pod/shop/db,Pod/shop/web,Service/shop/web"
#define WP_VIEW "AuthorizationPolicy/shop/l4,AuthorizationPolicy/shop/l7,DestinationRule/shop/dr," \
		"Gateway/istio-system/gw,Namespace//istio-system,Namespace//shop,Pod/shop/db,Pod/shop/web," \
		"RequestAuthentication/shop/ra,Service/shop/web,VirtualService/shop/vs"
/* The gateway (in istio-system): routes, its namespace's Secrets, and only
 * the policies of its own and the root namespace (none here). */
#define GW_VIEW "DestinationRule/shop/dr,Gateway/istio-system/gw,Namespace//istio-system,Namespace//shop," \
		"Pod/shop/db,Pod/shop/web,Secret/istio-system/cred,Service/shop/web,VirtualService/shop/vs"

/*
 * Each proxy gets exactly what it uses: a ztunnel its node's pods in full,
 * other pods in brief, services, its Node, L4 policy; a waypoint the routes
 * and the L7 policy of the namespaces it serves; the gateway the routes,
 * its namespace's Secrets and its own namespace's policies; nobody else any.
 */
TEST_F(zd, each_proxy_gets_exactly_its_view)
{
	struct client *a, *w, *g, *all[3];
	char keys[4096];
	json_t *web, *db;
	uint64_t v = 1;

	a = client_new(self, "node-a");
	w = client_new(self, "wp");
	g = client_new(self, "gw");
	ASSERT_OK_PTR(a);
	ASSERT_OK_PTR(w);
	ASSERT_OK_PTR(g);
	all[0] = a;
	all[1] = w;
	all[2] = g;
	ASSERT_OK(views_gen(self, 1, "", "1", "v1"));
	ASSERT_TRUE(drive(all, 3, 5000, all_at, &v));
	keys_of(zm_cfgclient_config(a->c), keys, sizeof(keys));
	EXPECT_STREQ(keys, ZT_VIEW);
	keys_of(zm_cfgclient_config(w->c), keys, sizeof(keys));
	EXPECT_STREQ(keys, WP_VIEW);
	keys_of(zm_cfgclient_config(g->c), keys, sizeof(keys));
	EXPECT_STREQ(keys, GW_VIEW);
	/* Its own node's pod in full; another node's: who it is and where, not how it runs. */
	web = find_obj(zm_cfgclient_config(a->c), "Pod", "web");
	db = find_obj(zm_cfgclient_config(a->c), "Pod", "db");
	ASSERT_OK_PTR(web);
	ASSERT_OK_PTR(db);
	EXPECT_OK_PTR(json_object_get(json_object_get(web, "spec"), "containers"));
	EXPECT_FALSE(json_object_get(json_object_get(db, "spec"), "containers"));
	EXPECT_STREQ(json_string_value(json_object_get(json_object_get(db, "spec"), "nodeName")) ?: "", "node-b");
	EXPECT_STREQ(json_string_value(json_object_get(json_object_get(db, "spec"), "serviceAccountName")) ?: "", "db");
	EXPECT_STREQ(json_string_value(json_object_get(json_object_get(json_object_get(db, "metadata"), "labels"), "app")) ?: "",
		     "db");
	/* Waypoints see every pod in brief. */
	web = find_obj(zm_cfgclient_config(w->c), "Pod", "web");
	ASSERT_OK_PTR(web);
	EXPECT_FALSE(json_object_get(json_object_get(web, "spec"), "containers"));
}

/*
 * A change outside a proxy's view sends it nothing and it stays SYNCED at
 * its version; a change inside reaches it as a delta and is ACKed.
 */
TEST_F(zd, change_outside_a_view_is_not_pushed)
{
	struct client *a, *b, *w, *all[3];
	char out[8192], want[64];
	uint64_t v = 1;
	int calls_a, calls_w;
	bool have;

	a = client_new(self, "node-a");
	b = client_new(self, "node-b");
	w = client_new(self, "wp");
	ASSERT_OK_PTR(a);
	ASSERT_OK_PTR(b);
	ASSERT_OK_PTR(w);
	all[0] = a;
	all[1] = b;
	all[2] = w;
	ASSERT_OK(views_gen(self, 1, "", "1", "v1"));
	ASSERT_TRUE(drive(all, 3, 5000, all_at, &v));
	calls_a = a->calls;
	calls_w = w->calls;
	/* db's command changes: only db's own node sees that. */
	ASSERT_OK(views_gen(self, 2, "", "2", "v1"));
	v = 2;
	ASSERT_TRUE(drive(all + 1, 1, 5000, all_at, &v));
	drive(all, 3, 500, never, NULL);
	EXPECT_EQ(zm_cfgclient_version(a->c, &have), 1);
	EXPECT_EQ(zm_cfgclient_version(w->c, &have), 1);
	EXPECT_EQ(a->calls, calls_a);
	EXPECT_EQ(w->calls, calls_w);
	EXPECT_TRUE(status_line_has("ztunnel~node-a", "1        1        SYNCED", out, sizeof(out)));
	EXPECT_TRUE(status_line_has("ztunnel~node-b", "2        2        SYNCED", out, sizeof(out)));
	EXPECT_TRUE(status_line_has("waypoint~waypoint.shop", "waypoint  1        1        SYNCED", out, sizeof(out)));
	/* db's labels change: every proxy routes by them. */
	ASSERT_OK(views_gen(self, 3, ", version: v2", "2", "v1"));
	v = 3;
	ASSERT_TRUE(drive(all, 3, 5000, all_at, &v));
	EXPECT_EQ(a->calls, calls_a + 1);
	EXPECT_TRUE(status_line_has("ztunnel~node-a", "3        3        SYNCED", out, sizeof(out)));
	/* A route changes: the waypoint's business only. */
	ASSERT_OK(views_gen(self, 4, ", version: v2", "2", "v2"));
	v = 4;
	ASSERT_TRUE(drive(all + 2, 1, 5000, all_at, &v));
	drive(all, 3, 300, never, NULL);
	EXPECT_EQ(zm_cfgclient_version(a->c, &have), 3);
	EXPECT_EQ(zm_cfgclient_version(b->c, &have), 3);
	EXPECT_TRUE(status_line_has("waypoint~waypoint.shop", "4        4        SYNCED", out, sizeof(out)));
	EXPECT_TRUE(status_line_has("ztunnel~node-b", "3        3        SYNCED", out, sizeof(out)));
	snprintf(want, sizeof(want), "zmeshd_unchanged_views_total 4");
	ASSERT_EQ(monitor_get("/metrics", out, sizeof(out)), 0);
	EXPECT_STRSTR(out, want);
}

/*
 * A waypoint's credential gets exactly its own service account's
 * certificate; it cannot pose as a node's proxy; and a node's credential
 * cannot pose as a waypoint or gateway (whose view holds Secrets).
 */
TEST_F(zd, waypoint_credential_is_its_service_account_only)
{
	struct client *w, *g, *n, *one[1];
	char out[4096];

	w = client_new(self, "wp");
	ASSERT_OK_PTR(w);
	ASSERT_OK(request_cert(w, "shop", "waypoint"));
	EXPECT_EQ(w->cert_rc, 0);
	EXPECT_STREQ(w->cert.id.sa, "waypoint");
	ASSERT_OK(request_cert(w, "shop", "web"));
	EXPECT_EQ(w->cert_rc, -EACCES);
	EXPECT_STRSTR(w->cert_err, "its credential is for ns/shop/sa/waypoint only");
	EXPECT_TRUE(logged(self, "CSR refused (403): waypoint waypoint.shop may not get spiffe://cluster.local/ns/shop/sa/web"));
	/* The gateway the same, for its own account. */
	g = client_new(self, "gw");
	ASSERT_OK_PTR(g);
	ASSERT_OK(request_cert(g, "istio-system", "istio-ingressgateway"));
	EXPECT_EQ(g->cert_rc, 0);
	ASSERT_OK(request_cert(g, "shop", "waypoint"));
	EXPECT_EQ(g->cert_rc, -EACCES);
	/* Whatever it calls itself, a waypoint credential is a waypoint. */
	EXPECT_TRUE(status_line_has("waypoint~waypoint.shop", "waypoint", out, sizeof(out)));
	EXPECT_TRUE(status_line_has("gateway~istio-ingressgateway.istio-system", "gateway", out, sizeof(out)));
	/* A node claiming to be a gateway gets no stream. */
	n = client_new_kind(self, "node-a", "gateway");
	ASSERT_OK_PTR(n);
	one[0] = n;
	drive(one, 1, 1500, never, NULL);
	EXPECT_FALSE(zm_cfgclient_connected(n->c));
	EXPECT_EQ(n->calls, 0);
	EXPECT_TRUE(logged(self, "node node-a (127.0.0.1"));
	EXPECT_TRUE(logged(self, "asked to be a gateway: refused"));
	/* On HBONE the credential is no workload: svid.h refuses it. */
	{
		char path[PATH_MAX], *chain = NULL;
		struct zm_error e = { "" };
		struct zm_spiffe_id id;
		BIO *bio;
		X509 *x;

		snprintf(path, sizeof(path), "%s/wp", self->dir);
		ASSERT_OK(zm_node_cred_read(path, NULL, &chain, NULL, &e));
		bio = BIO_new_mem_buf(chain, -1);
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		BIO_free(bio);
		free(chain);
		ASSERT_OK_PTR(x);
		EXPECT_NE(zm_spiffe_from_x509(x, &id, NULL, 0), 0);
		X509_free(x);
	}
}

/*
 * The waypoint binary as zmeshd's client: its view arrives and is ACKed, a
 * version it cannot build (a VirtualService naming a Gateway that does not
 * exist: only the waypoint checks references) is NACKed with the reason
 * while it keeps serving, the next good one is ACKed; its HBONE
 * certificate comes by CSR.
 */
TEST_F(zd, waypoint_binary_acks_nacks_and_gets_its_certificate)
{
	char bin[PATH_MAX], cred[PATH_MAX], wlog[PATH_MAX], out[8192], d1[1024];
	static const char bad_vs[] =
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r2, namespace: shop}\n"
		"spec:\n  hosts: [web]\n  gateways: [nowhere]\n  http:\n  - route:\n    - destination: {host: web}\n";
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/waypoint", test_build_dir());
	snprintf(cred, sizeof(cred), "%s/wp", self->dir);
	snprintf(wlog, sizeof(wlog), "%s/waypoint.log", self->dir);
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1") };

		ASSERT_OK(store_gen(self, 1, docs, 2));
	}
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int fd = open(wlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, "waypoint", "--listen", "127.0.0.1:18080", "--hbone-port", "18008", "--metrics-port", "0",
		      "--ready-port", "0", "--identity", "shop/waypoint", "--zmeshd", SERVER, "--cred-dir", cred,
		      (char *)NULL);
		_exit(127);
	}
	test_defer_kill(pid);
	EXPECT_TRUE(status_line_has("waypoint~waypoint.shop", "1        1        SYNCED", out, sizeof(out)));
	EXPECT_TRUE(logged_in(wlog, "got certificate for spiffe://cluster.local/ns/shop/sa/waypoint from zmeshd"));
	EXPECT_TRUE(logged_in(wlog, "hbone on :18008"));
	/* Serving: an unknown host is answered (404), not refused. */
	for (int i = 0; i < 50 && test_sh(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code}' "
					  "http://127.0.0.1:18080/") != 0; i++)
		usleep(100000);
	EXPECT_STREQ(out, "404");
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1"),
				       "VirtualService.shop.r2.yaml", bad_vs };

		ASSERT_OK(store_gen(self, 2, docs, 4));
	}
	EXPECT_TRUE(status_line_has("waypoint~waypoint.shop", "NACK", out, sizeof(out)));
	EXPECT_STRSTR(out, "gateway shop/nowhere not found");
	EXPECT_TRUE(logged_in(wlog, "config version 2 from zmeshd refused"));
	ASSERT_EQ(test_sh(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:18080/"), 0);
	EXPECT_STREQ(out, "404");
	{
		const char *docs[] = { "AuthorizationPolicy.shop.r1.yaml", pol(d1, sizeof(d1), "r1") };

		ASSERT_OK(store_gen(self, 3, docs, 2));
	}
	EXPECT_TRUE(status_line_has("waypoint~waypoint.shop", "3        3        SYNCED", out, sizeof(out)));
}

static void lab_cleanup(void *arg)
{
	struct labctx *l = arg;

	test_sh(NULL, 0, "%s lab down --name %s", l->ctl, l->name);
	unlink(l->file);
	free(l);
}

TEST(lab_up_runs_zmeshd_with_node_credentials)
{
	struct labctx *l = calloc(1, sizeof(*l));
	char out[4096], nodes[256], curl[PATH_MAX * 3];
	FILE *f;

	REQUIRE_ROOT();
	ASSERT_OK_PTR(l);
	snprintf(l->name, sizeof(l->name), "zd%d", getpid() % 100000);
	snprintf(l->file, sizeof(l->file), "/tmp/zm-zd-%s.yaml", l->name);
	snprintf(l->ctl, sizeof(l->ctl), "%s/zmeshctl", test_build_dir());
	test_defer(lab_cleanup, l);
	f = fopen(l->file, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
		"apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\n"
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop}\n---\n"
		"apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\n"
		"spec:\n  nodeName: n1\n  serviceAccountName: web\n  containers:\n  - name: c\n    command: [sleep, \"300\"]\n");
	fclose(f);
	ASSERT_EQ(test_sh(NULL, 0, "%s lab up -f %s --name %s", l->ctl, l->file, l->name), 0);
	snprintf(nodes, sizeof(nodes), "%s/%s/nodes", ZM_LAB_STATE_ROOT, l->name);
	ASSERT_EQ(test_sh(NULL, 0, "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			  "-keyout %s/../w.key -subj / -addext subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/web "
			  "-out %s/../web.csr 2>/dev/null", nodes, nodes), 0);
	/* From each node's netns, with that node's credential: n1 runs the pod, n2 does not. */
	for (int i = 1; i <= 2; i++) {
		snprintf(curl, sizeof(curl), "%s lab exec --node n%d --name %s -- curl -sk --http2 --retry 20 "
			 "--retry-connrefused --retry-delay 0 --cert %s/n%d/node-cert.pem --key %s/n%d/node-key.pem "
			 "--data-binary @%s/../web.csr -o /dev/null -w '%%{http_code}' https://" ZM_LAB_ZMESHD_ADDR
			 ":15012/v1/certs", l->ctl, i, l->name, nodes, i, nodes, i, nodes);
		ASSERT_EQ(test_sh(out, sizeof(out), "%s", curl), 0);
		EXPECT_STREQ(out, i == 1 ? "200" : "403");
	}
	ASSERT_EQ(test_sh(out, sizeof(out), "%s proxy-status --name %s", l->ctl, l->name), 0);
	EXPECT_STRSTR(out, "NAME");
	/* lab down takes zmeshd with it. */
	ASSERT_EQ(test_sh(NULL, 0, "%s lab down --name %s", l->ctl, l->name), 0);
	EXPECT_NE(test_sh(NULL, 0, "pgrep -f '[z]meshd --store %s/%s/store'", ZM_LAB_STATE_ROOT, l->name), 0);
}
