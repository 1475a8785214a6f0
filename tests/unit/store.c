// SPDX-License-Identifier: Apache-2.0
/*
 * The config store on a real directory: versions, no-op and rejected
 * applies, deletes, the layout (links, pruning), readers racing a writer,
 * writers racing each other, and directories that are not stores.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/fsutil.h"
#include "zmesh/store.h"

#define DR "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: payment, namespace: shop}\nspec:\n"
#define VS "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: payment, namespace: shop}\nspec:\n"

static const char dr_v1v2[] = DR "  host: payment\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n";
static const char vs_v2[] = VS "  hosts: [payment]\n  http:\n  - route: [{destination: {host: payment, subset: v2}}]\n";
static const char vs_v3[] = VS "  hosts: [payment]\n  http:\n  - route: [{destination: {host: payment, subset: v3}}]\n";
static const char ap[] =
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	"metadata: {name: allow-orders, namespace: shop}\n"
	"spec:\n  selector: {matchLabels: {app: payment}}\n  action: ALLOW\n"
	"  rules:\n  - from: [{source: {principals: [cluster.local/ns/shop/sa/orders]}}]\n";

FIXTURE(st) {
	char dir[64];
	struct zm_store *st;
};

FIXTURE_SETUP(st)
{
	struct zm_error e = { 0 };

	snprintf(self->dir, sizeof(self->dir), "/tmp/zm-store-%d", getpid());
	zm_rm_rf(self->dir);
	if (!ASSERT_OK(zm_store_open(self->dir, &self->st, &e)))
		test_log("%s", e.msg);
}

FIXTURE_TEARDOWN(st)
{
	zm_store_close(self->st);
	zm_rm_rf(self->dir);
}

static int apply_buf(struct zm_store *st, const char *yaml, uint64_t *v, struct zm_error *e)
{
	struct zm_cfg_set s;
	int rc;

	zm_cfg_set_init(&s);
	rc = zm_cfg_load_buf(&s, "apply.yaml", yaml, strlen(yaml));
	if (!rc)
		rc = zm_store_apply(st, &s, v, e);
	for (size_t i = 0; i < s.nerrs; i++)
		test_log("%s", s.errs[i].text);
	zm_cfg_set_free(&s);
	return rc;
}

static size_t count(const char *dir, uint64_t *v)
{
	struct zm_cfg_set s;
	struct zm_error e = { 0 };
	size_t n;

	zm_cfg_set_init(&s);
	if (zm_store_read(dir, &s, v, &e)) {
		test_log("read: %s", e.msg);
		zm_cfg_set_free(&s);
		return (size_t)-1;
	}
	n = s.nobjs;
	zm_cfg_set_free(&s);
	return n;
}

/* Every generation directory and the `current` target, as one string. */
static void layout(const char *dir, char *out, size_t sz)
{
	test_sh(out, sz, "cd %s && readlink current && ls -1 | grep '^gen-' && "
		"find gen-* -type f | sort | xargs -r sha256sum", dir);
}

TEST_F(st, new_store_is_version_1_and_empty)
{
	char out[4096];
	uint64_t v = 0;

	EXPECT_EQ(zm_store_version(self->dir), 1);
	EXPECT_EQ(count(self->dir, &v), 0);
	EXPECT_EQ(v, 1);
	layout(self->dir, out, sizeof(out));
	EXPECT_STREQ(out, "gen-1\ngen-1\n");
	/* Opening again keeps it. */
	struct zm_store *again;
	struct zm_error e = { 0 };

	ASSERT_OK(zm_store_open(self->dir, &again, &e));
	zm_store_close(again);
	EXPECT_EQ(zm_store_version(self->dir), 1);
	EXPECT_EQ(zm_store_version("/nonexistent/zm"), 0);
}

TEST_F(st, versions_grow_and_old_generations_go)
{
	struct zm_error e = { 0 };
	struct stat a, b;
	char p1[256], p2[256], out[4096];
	uint64_t v = 0;

	ASSERT_OK(apply_buf(self->st, dr_v1v2, &v, &e));
	EXPECT_EQ(v, 2);
	ASSERT_OK(apply_buf(self->st, vs_v2, &v, &e));
	EXPECT_EQ(v, 3);
	ASSERT_OK(apply_buf(self->st, ap, &v, &e));
	EXPECT_EQ(v, 4);
	EXPECT_EQ(count(self->dir, &v), 3);
	EXPECT_EQ(v, 4);
	EXPECT_EQ(zm_store_version(self->dir), 4);
	/* The previous generation stays for readers still on it; older ones go. */
	test_sh(out, sizeof(out), "cd %s && ls -1a | tr '\\n' ' '; readlink current", self->dir);
	EXPECT_STREQ(out, ". .. current gen-3 gen-4 lock gen-4\n");
	/* An unchanged object is the same inode in both generations. */
	snprintf(p1, sizeof(p1), "%s/gen-3/DestinationRule.shop.payment.yaml", self->dir);
	snprintf(p2, sizeof(p2), "%s/gen-4/DestinationRule.shop.payment.yaml", self->dir);
	ASSERT_EQ(stat(p1, &a), 0);
	ASSERT_EQ(stat(p2, &b), 0);
	EXPECT_EQ(a.st_ino, b.st_ino);
	EXPECT_EQ(a.st_mode & 0777, 0600);
	/* The file is the object's JSON, readable as one document. */
	test_sh(out, sizeof(out), "cat %s/gen-4/AuthorizationPolicy.shop.allow-orders.yaml", self->dir);
	EXPECT_STRSTR(out, "\"kind\": \"AuthorizationPolicy\"");
	EXPECT_STRSTR(out, "cluster.local/ns/shop/sa/orders");
	/* The store directory is private. */
	ASSERT_EQ(stat(self->dir, &a), 0);
	EXPECT_EQ(a.st_mode & 0777, 0700);
}

TEST_F(st, identical_apply_is_a_noop)
{
	struct zm_error e = { 0 };
	char before[8192], after[8192];
	uint64_t v = 0;

	ASSERT_OK(apply_buf(self->st, dr_v1v2, &v, &e));
	ASSERT_OK(apply_buf(self->st, vs_v2, &v, &e));
	ASSERT_EQ(v, 3);
	layout(self->dir, before, sizeof(before));
	/* Same objects, written differently (flow vs block style, key order). */
	ASSERT_OK(apply_buf(self->st,
			    "kind: DestinationRule\napiVersion: networking.istio.io/v1\n"
			    "metadata:\n  namespace: shop\n  name: payment\nspec:\n  host: payment\n"
			    "  subsets:\n  - name: v1\n    labels:\n      version: v1\n"
			    "  - labels: {version: v2}\n    name: v2\n", &v, &e));
	EXPECT_EQ(v, 3);
	ASSERT_OK(apply_buf(self->st, vs_v2, &v, &e));
	EXPECT_EQ(v, 3);
	layout(self->dir, after, sizeof(after));
	EXPECT_STREQ(before, after);
	/* One changed object among unchanged ones is one new version. */
	ASSERT_OK(apply_buf(self->st, "---\n" "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
			    "metadata: {name: payment, namespace: shop}\nspec:\n  host: payment\n"
			    "  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, "
			    "{name: v3, labels: {version: v3}}]\n---\n" "apiVersion: networking.istio.io/v1\n"
			    "kind: VirtualService\nmetadata: {name: payment, namespace: shop}\nspec:\n"
			    "  hosts: [payment]\n  http:\n  - route: [{destination: {host: payment, subset: v2}}]\n",
			    &v, &e));
	EXPECT_EQ(v, 4);
}

TEST_F(st, rejected_apply_changes_nothing)
{
	struct zm_error e = { 0 };
	struct zm_cfg_set s;
	const char *bad = VS "  hosts: [payment]\n  htpp: []\n";
	char before[8192], after[8192];
	uint64_t v = 0;

	ASSERT_OK(apply_buf(self->st, dr_v1v2, &v, &e));
	ASSERT_OK(apply_buf(self->st, vs_v2, &v, &e));
	layout(self->dir, before, sizeof(before));

	/* Subset v3 is defined by no rule: the DestinationRule comes from the store. */
	zm_cfg_set_init(&s);
	ASSERT_OK(zm_cfg_load_buf(&s, "apply.yaml", vs_v3, strlen(vs_v3)));
	ASSERT_OK(zm_cfg_load_buf(&s, "ap.yaml", ap, strlen(ap)));
	v = 0;
	EXPECT_EQ(zm_store_apply(self->st, &s, &v, &e), -EINVAL);
	EXPECT_EQ(v, 3);
	ASSERT_EQ(s.nerrs, 1);
	EXPECT_STREQ(s.errs[0].text, "apply.yaml:7:51: spec.http[0].route[0].destination.subset: "
		     "subset \"v3\" is not defined by DestinationRule shop/payment for host "
		     "payment.shop.svc.cluster.local");
	zm_cfg_set_free(&s);

	/* A document that failed to read: the good one next to it is not applied either. */
	zm_cfg_set_init(&s);
	zm_cfg_load_buf(&s, "bad.yaml", bad, strlen(bad));
	zm_cfg_load_buf(&s, "ap.yaml", ap, strlen(ap));
	EXPECT_EQ(s.nobjs, 1);
	EXPECT_EQ(zm_store_apply(self->st, &s, &v, &e), -EINVAL);
	EXPECT_GE(s.nerrs, 1);
	zm_cfg_set_free(&s);

	/* Duplicates within one apply. */
	char two[2048];

	snprintf(two, sizeof(two), "%s---\n%s", ap, ap);
	EXPECT_EQ(apply_buf(self->st, two, &v, &e), -EINVAL);

	layout(self->dir, after, sizeof(after));
	EXPECT_STREQ(before, after);
	EXPECT_EQ(zm_store_version(self->dir), 3);
	EXPECT_EQ(count(self->dir, NULL), 2);
}

static int delete_buf(struct zm_store *st, const char *yaml, uint64_t *v, struct zm_cfg_set *s,
		      struct zm_error *e)
{
	zm_cfg_set_init(s);
	if (zm_cfg_load_buf(s, "del.yaml", yaml, strlen(yaml)))
		return -EINVAL;
	return zm_store_delete(st, s, v, e);
}

TEST_F(st, delete)
{
	struct zm_error e = { 0 };
	struct zm_cfg_set s, cur;
	char before[8192], after[8192], both[2048];
	uint64_t v = 0;

	snprintf(both, sizeof(both), "%s---\n%s", dr_v1v2, ap);
	ASSERT_OK(apply_buf(self->st, both, &v, &e));
	ASSERT_EQ(v, 2);
	layout(self->dir, before, sizeof(before));

	/* Unknown objects are errors, and one unknown object stops the whole delete. */
	snprintf(both, sizeof(both), "%s---\n%s", ap, vs_v2);
	EXPECT_EQ(delete_buf(self->st, both, &v, &s, &e), -ENOENT);
	EXPECT_EQ(v, 2);
	ASSERT_EQ(s.nerrs, 1);
	EXPECT_STREQ(s.errs[0].text, "del.yaml:12:18: metadata.name: VirtualService shop/payment not found");
	zm_cfg_set_free(&s);
	layout(self->dir, after, sizeof(after));
	EXPECT_STREQ(before, after);

	/* The spec of what is deleted does not matter, only kind/namespace/name. */
	ASSERT_OK(delete_buf(self->st, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			     "metadata: {name: allow-orders, namespace: shop}\n", &v, &s, &e));
	zm_cfg_set_free(&s);
	EXPECT_EQ(v, 3);
	zm_cfg_set_init(&cur);
	ASSERT_OK(zm_store_read(self->dir, &cur, &v, &e));
	EXPECT_EQ(v, 3);
	EXPECT_EQ(cur.nobjs, 1);
	EXPECT_TRUE(zm_cfg_find(&cur, ZM_K_DESTINATIONRULE, "shop", "payment") != NULL);
	EXPECT_TRUE(zm_cfg_find(&cur, ZM_K_AUTHORIZATIONPOLICY, "shop", "allow-orders") == NULL);
	zm_cfg_set_free(&cur);

	/* Deleting it again: gone, an error. */
	EXPECT_EQ(delete_buf(self->st, ap, &v, &s, &e), -ENOENT);
	zm_cfg_set_free(&s);
	EXPECT_EQ(zm_store_version(self->dir), 3);
}

TEST_F(st, core_kinds_and_dotted_names)
{
	struct zm_error e = { 0 };
	struct zm_cfg_set s;
	uint64_t v = 0;

	ASSERT_OK(apply_buf(self->st,
			    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n"
			    "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
			    "metadata: {name: api.example.com, namespace: shop}\n"
			    "spec:\n  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: TLS}]\n"
			    "  resolution: DNS\n  location: MESH_EXTERNAL\n", &v, &e));
	EXPECT_EQ(v, 2);
	zm_cfg_set_init(&s);
	ASSERT_OK(zm_store_read(self->dir, &s, &v, &e));
	EXPECT_EQ(s.nobjs, 2);
	EXPECT_TRUE(zm_cfg_find(&s, ZM_K_NAMESPACE, NULL, "shop") != NULL);
	EXPECT_TRUE(zm_cfg_find(&s, ZM_K_SERVICEENTRY, "shop", "api.example.com") != NULL);
	zm_cfg_set_free(&s);
	char p[256];

	snprintf(p, sizeof(p), "%s/gen-2/Namespace._.shop.yaml", self->dir);
	EXPECT_EQ(access(p, F_OK), 0);
}

/* Each apply rewrites all three objects with the same label value: a reader
 * must see three objects carrying one value, never two values. */
static void writer_loop(const char *dir, int rounds)
{
	struct zm_store *st;
	struct zm_error e = { 0 };
	char yaml[2048];
	uint64_t v;

	if (zm_store_open(dir, &st, &e))
		_exit(2);
	for (int i = 0; i < rounds; i++) {
		struct zm_cfg_set s;
		int n = 0;

		for (int k = 0; k < 3; k++)
			n += snprintf(yaml + n, sizeof(yaml) - (size_t)n,
				      "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
				      "metadata: {name: p%d, namespace: shop, labels: {round: \"%d\"}}\n"
				      "spec: {action: DENY, rules: [{to: [{operation: {ports: [\"%d\"]}}]}]}\n",
				      k, i, 1000 + i);
		zm_cfg_set_init(&s);
		if (zm_cfg_load_buf(&s, "w.yaml", yaml, (size_t)n) || zm_store_apply(st, &s, &v, &e))
			_exit(3);
		zm_cfg_set_free(&s);
	}
	zm_store_close(st);
	_exit(0);
}

TEST_F(st, reader_never_sees_a_mix)
{
	pid_t pid;
	int status, reads = 0, bad = 0;
	uint64_t last = 0;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		writer_loop(self->dir, 300);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		struct zm_cfg_set s;
		struct zm_error e = { 0 };
		const char *round = NULL;
		uint64_t v = 0;

		zm_cfg_set_init(&s);
		if (!EXPECT_OK(zm_store_read(self->dir, &s, &v, &e))) {
			test_log("read: %s", e.msg);
			bad++;
			zm_cfg_set_free(&s);
			break;
		}
		reads++;
		EXPECT_GE(v, last);
		last = v;
		if (v > 1 && s.nobjs != 3) {
			bad++;
			test_log("version %" PRIu64 ": %zu objects", v, s.nobjs);
		}
		for (size_t i = 0; i < s.nobjs; i++) {
			const char *r = zm_cmap_get(&s.objs[i]->meta.labels, "round");

			if (!round)
				round = r;
			if (!r || strcmp(r, round)) {
				bad++;
				test_log("version %" PRIu64 ": rounds %s and %s", v, round, r ? r : "-");
			}
		}
		zm_cfg_set_free(&s);
	}
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(WEXITSTATUS(status), 0);
	EXPECT_EQ(bad, 0);
	EXPECT_GT(reads, 0);
	EXPECT_EQ(zm_store_version(self->dir), 301);
	test_log("%d consistent reads during 300 applies", reads);
}

static void adder(const char *dir, int who, int n)
{
	struct zm_store *st;
	struct zm_error e = { 0 };
	char yaml[512];
	uint64_t v;

	if (zm_store_open(dir, &st, &e))
		_exit(2);
	for (int i = 0; i < n; i++) {
		struct zm_cfg_set s;
		int len = snprintf(yaml, sizeof(yaml),
				   "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
				   "metadata: {name: w%d-%d, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n",
				   who, i);

		zm_cfg_set_init(&s);
		if (zm_cfg_load_buf(&s, "a.yaml", yaml, (size_t)len) || zm_store_apply(st, &s, &v, &e))
			_exit(3);
		zm_cfg_set_free(&s);
	}
	zm_store_close(st);
	_exit(0);
}

TEST_F(st, concurrent_writers_serialize)
{
	pid_t pids[3];
	int status;

	for (int w = 0; w < 3; w++) {
		pids[w] = fork();
		ASSERT_GE(pids[w], 0);
		if (pids[w] == 0)
			adder(self->dir, w, 60);
	}
	for (int w = 0; w < 3; w++) {
		ASSERT_EQ(waitpid(pids[w], &status, 0), pids[w]);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* Every apply added one object: none lost, one version each. */
	uint64_t v = 0;

	EXPECT_EQ(count(self->dir, &v), 180);
	EXPECT_EQ(v, 181);
}

static void rm_dir(void *dir)
{
	zm_rm_rf(dir);
}

TEST(garbage_directories_are_refused)
{
	char dir[64], path[128], out[1024];
	struct zm_store *st = NULL;
	struct zm_error e = { 0 };
	struct zm_cfg_set s;
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/zm-store-g%d", getpid());
	zm_rm_rf(dir);
	ASSERT_OK(zm_mkdir_p(dir, 0700));
	test_defer(rm_dir, dir);

	/* Someone's files: not a store, and left alone. */
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fputs("mine\n", f);
	fclose(f);
	EXPECT_EQ(zm_store_open(dir, &st, &e), -EEXIST);
	EXPECT_TRUE(st == NULL);
	EXPECT_STRSTR(e.msg, "not a zmesh config store: unexpected entry \"notes.txt\"");
	test_sh(out, sizeof(out), "ls %s | tr '\\n' ' '", dir);
	EXPECT_STREQ(out, "notes.txt ");	/* not even a lock file made */
	zm_cfg_set_init(&s);
	EXPECT_EQ(zm_store_read(dir, &s, NULL, &e), -ENOENT);
	EXPECT_STRSTR(e.msg, "no config store here");
	unlink(path);

	/* A `current` that points elsewhere. */
	snprintf(path, sizeof(path), "%s/current", dir);
	ASSERT_EQ(symlink("/etc", path), 0);
	EXPECT_EQ(zm_store_open(dir, &st, &e), -EBADMSG);
	EXPECT_STRSTR(e.msg, "current: not a link to gen-<N>");
	EXPECT_EQ(zm_store_read(dir, &s, NULL, &e), -EBADMSG);
	EXPECT_EQ(zm_store_version(dir), 0);
	unlink(path);

	/* A generation with a foreign file, and one with a file that lies about its object. */
	ASSERT_OK(zm_store_open(dir, &st, &e));
	zm_store_close(st);
	snprintf(path, sizeof(path), "%s/gen-1/README", dir);
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fclose(f);
	EXPECT_EQ(zm_store_read(dir, &s, NULL, &e), -EBADMSG);
	EXPECT_STRSTR(e.msg, "gen-1/README: not a config store object file");
	unlink(path);
	snprintf(path, sizeof(path), "%s/gen-1/VirtualService.shop.a.yaml", dir);
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fputs(ap, f);
	fclose(f);
	EXPECT_EQ(zm_store_read(dir, &s, NULL, &e), -EBADMSG);
	EXPECT_STRSTR(e.msg, "does not hold exactly the object its name says");
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fputs("spec: [\n", f);
	fclose(f);
	EXPECT_EQ(zm_store_read(dir, &s, NULL, &e), -EBADMSG);
	EXPECT_STRSTR(e.msg, "gen-1/VirtualService.shop.a.yaml:");
	EXPECT_EQ(s.nobjs, 0);
	zm_cfg_set_free(&s);

	/* An open that died after making gen-1, before linking it, is redone;
	 * generations without a link that are not that are refused. */
	zm_rm_rf(dir);
	ASSERT_OK(zm_mkdir_p(dir, 0700));
	snprintf(path, sizeof(path), "%s/gen-1", dir);
	ASSERT_EQ(mkdir(path, 0700), 0);
	ASSERT_OK(zm_store_open(dir, &st, &e));
	zm_store_close(st);
	EXPECT_EQ(zm_store_version(dir), 1);
	snprintf(path, sizeof(path), "%s/current", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/gen-7", dir);
	ASSERT_EQ(mkdir(path, 0700), 0);
	EXPECT_EQ(zm_store_open(dir, &st, &e), -EBADMSG);
	EXPECT_STRSTR(e.msg, "no current link");

	/* A missing directory is made; a file in its place is an error. */
	snprintf(path, sizeof(path), "%s/afile", dir);
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fclose(f);
	EXPECT_LT(zm_store_open(path, &st, &e), 0);
	EXPECT_STRSTR(e.msg, "afile");
}

TEST_F(st, leftovers_of_a_dead_writer_are_cleared)
{
	struct zm_error e = { 0 };
	struct zm_store *again;
	char path[128], out[1024];
	uint64_t v;

	snprintf(path, sizeof(path), "%s/.tmp-gen-2", self->dir);
	ASSERT_EQ(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/gen-2", self->dir);
	ASSERT_EQ(mkdir(path, 0700), 0);	/* renamed, but `current` never moved */
	ASSERT_OK(zm_store_open(self->dir, &again, &e));
	ASSERT_OK(apply_buf(again, ap, &v, &e));
	EXPECT_EQ(v, 2);
	zm_store_close(again);
	EXPECT_EQ(count(self->dir, NULL), 1);
	test_sh(out, sizeof(out), "ls -a %s | tr '\\n' ' '", self->dir);
	EXPECT_STREQ(out, ". .. current gen-1 gen-2 lock ");
}

/* The watch contract of store.h: one IN_MOVED_TO "current" per new version,
 * none for a no-op or a rejected apply. */
TEST_F(st, watchers_see_current_move)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct zm_error e = { 0 };
	int fd, moves = 0;
	uint64_t v;
	ssize_t n;

	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ASSERT_GE(fd, 0);
	ASSERT_GE(inotify_add_watch(fd, self->dir, IN_MOVED_TO), 0);
	ASSERT_OK(apply_buf(self->st, dr_v1v2, &v, &e));
	ASSERT_OK(apply_buf(self->st, vs_v2, &v, &e));
	ASSERT_OK(apply_buf(self->st, vs_v2, &v, &e));		/* no-op */
	EXPECT_EQ(apply_buf(self->st, vs_v3, &v, &e), -EINVAL);	/* rejected */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->len && !strcmp(ev->name, "current"))
				moves++;
			p += sizeof(*ev) + ev->len;
		}
	}
	close(fd);
	EXPECT_EQ(moves, 2);
}
