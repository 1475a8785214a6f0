// SPDX-License-Identifier: Apache-2.0
/*
 * Pilot's job: watch the store directory (store.h layout, read directly),
 * keep the current generation as a map of objects, and push to each proxy
 * its view (view.c): a snapshot when its config stream opens, then a delta
 * against what that stream was sent whenever a new generation changes the
 * view (and nothing when it does not); record what each proxy ACKed or
 * NACKed.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zmesh/config.h"
#include "zmesh/fsutil.h"
#include "zmesh/log.h"
#include "zmeshd.h"

static void gen_clear(struct zd_gen *g)
{
	json_decref(g->objs);
	json_decref(g->pods_brief);
	g->objs = NULL;
	g->pods_brief = NULL;
	g->version = 0;
}

/* The version `current` points at, 0 when there is none. */
static uint64_t current_version(const char *dir)
{
	char path[PATH_MAX], target[64], *end;
	ssize_t n;
	unsigned long long v;

	snprintf(path, sizeof(path), "%s/current", dir);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 4)
		return 0;
	target[n] = 0;
	if (strncmp(target, "gen-", 4))
		return 0;
	errno = 0;
	v = strtoull(target + 4, &end, 10);
	return errno || *end || end == target + 4 ? 0 : v;
}

static int load_gen(const char *dir, uint64_t version, struct zd_gen *g)
{
	char path[PATH_MAX];
	struct zm_cfg_set set;
	int rc;

	snprintf(path, sizeof(path), "%s/gen-%llu", dir, (unsigned long long)version);
	zm_cfg_set_init(&set);
	rc = zm_cfg_load_path(&set, path);
	if (rc) {
		for (size_t i = 0; i < set.nerrs && i < 10; i++)
			zm_log_error("store generation %llu: %s", (unsigned long long)version, set.errs[i].text);
		if (!set.nerrs)
			zm_log_error("store generation %llu: %s: %s", (unsigned long long)version, path,
				     strerror(-rc));
		goto out;
	}
	g->objs = json_object();
	g->pods_brief = json_object();
	if (!g->objs || !g->pods_brief) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < set.nobjs; i++) {
		const struct zm_cfg_obj *o = set.objs[i];
		char key[256];

		snprintf(key, sizeof(key), "%s/%s/%s", zm_kind_name(o->kind),
			 zm_kind_cluster_scoped(o->kind) || !o->meta.ns.v ? "" : o->meta.ns.v,
			 o->meta.name.v ? o->meta.name.v : "");
		json_t *j = zm_cfg_obj_to_json(o);

		/* Materialise the namespace, so proxies key objects as we do. */
		if (j && !zm_kind_cluster_scoped(o->kind) && o->meta.ns.v &&
		    !json_object_get(json_object_get(j, "metadata"), "namespace"))
			json_object_set_new(json_object_get(j, "metadata"), "namespace", json_string(o->meta.ns.v));
		if (!j || json_object_set_new(g->objs, key, j)) {
			rc = -ENOMEM;
			goto out;
		}
		if (o->kind == ZM_K_POD && json_object_set_new(g->pods_brief, key, zd_pod_brief(j))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	g->version = version;
out:
	if (rc)
		gen_clear(g);
	zm_cfg_set_free(&set);
	return rc;
}

/*
 * The line for @p bringing it from what it was sent to @view: a snapshot
 * when it was sent nothing on this stream, else a delta; NULL with *same
 * when the view did not change.
 */
static char *message(struct zd *d, struct zd_proxy *p, json_t *view, bool *delta, bool *same)
{
	json_t *m, *objs = json_array(), *del = json_array();
	const char *key;
	json_t *o;
	char *txt = NULL;

	*delta = p->view_sent != NULL;
	*same = false;
	json_object_foreach(view, key, o) {
		json_t *old = *delta ? json_object_get(p->view_sent, key) : NULL;

		if (!old || !json_equal(old, o))
			json_array_append(objs, o);
	}
	if (*delta) {
		json_object_foreach(p->view_sent, key, o)
			if (!json_object_get(view, key))
				json_array_append_new(del, json_string(key));
	}
	if (*delta && !json_array_size(objs) && !json_array_size(del)) {
		*same = true;
		json_decref(objs);
		json_decref(del);
		return NULL;
	}
	m = json_pack("{sIsssoso}", "version", (json_int_t)d->cur.version, "kind",
		      *delta ? "delta" : "snapshot", "objects", objs, "deleted", del);
	/* A snapshot carries the trust bundle; changes of it come as "bundle" messages. */
	if (m && !*delta)
		json_object_set_new(m, "bundle", json_string(zm_ca_bundle(d->ca)));
	if (m)
		txt = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	return txt;
}

static void push(struct zd *d, struct zd_proxy *p)
{
	struct zd_conn *c = p->conn;
	struct zd_stream *s;
	bool delta, same;
	json_t *view;
	char *txt;

	if (!c || c->dead)
		return;
	for (s = c->streams; s && s->id != c->config_stream; s = s->next)
		;
	if (!s)
		return;
	view = zd_view(&d->cur, p);
	txt = view ? message(d, p, view, &delta, &same) : NULL;
	if (view && same) {
		/* Nothing it sees changed: no message, and it stays in sync. */
		p->uptodate = d->cur.version;
		d->st.unchanged++;
		zm_log_debug("proxy %s: version %llu leaves its view as it was", p->name,
			     (unsigned long long)d->cur.version);
		json_decref(view);
		return;
	}
	if (!txt || zd_stream_send(c, s, txt, strlen(txt)) || zd_stream_send(c, s, "\n", 1)) {
		zm_log_warn("proxy %s: cannot queue version %llu (%s): disconnecting it", p->name,
			    (unsigned long long)d->cur.version, txt ? "backlog full" : "out of memory");
		c->dead = true;
		json_decref(view);
	} else {
		json_decref(p->view_sent);
		p->view_sent = view;
		p->sent = d->cur.version;
		p->uptodate = d->cur.version;
		p->has_sent = true;
		if (delta)
			d->st.deltas++;
		else
			d->st.snapshots++;
		zm_log_debug("proxy %s: sent %s version %llu (%zu objects in its view)", p->name,
			     delta ? "delta" : "snapshot", (unsigned long long)d->cur.version, json_object_size(view));
	}
	free(txt);
}

static void reload(struct zd *d)
{
	uint64_t v = current_version(d->store_dir);
	struct zd_gen g = { 0, NULL, NULL };
	struct zd_proxy *p;

	/* A generation never changes once published: one that failed is not retried. */
	if (!v || v == d->cur.version || v == d->bad_version)
		return;
	if (load_gen(d->store_dir, v, &g)) {
		d->bad_version = v;
		d->st.reload_errors++;
		zm_log_error("store version %llu not loaded: keeping version %llu", (unsigned long long)v,
			     (unsigned long long)d->cur.version);
		return;
	}
	d->st.reloads++;
	zm_log_info("config version %llu (%zu objects)", (unsigned long long)v, json_object_size(g.objs));
	gen_clear(&d->cur);
	d->cur = g;
	for (p = d->proxies; p; p = p->next)
		push(d, p);
	/* Flush afterwards: a dead connection is freed by its flush. */
	for (struct zd_conn *c = d->conns, *next; c; c = next) {
		next = c->next;
		if (c->proxy)
			zd_conn_flush(c);
	}
}

void zd_push_bundle(struct zd *d)
{
	json_t *m = json_pack("{sIssss}", "version", (json_int_t)d->cur.version, "kind", "bundle", "bundle",
			      zm_ca_bundle(d->ca));
	char *txt = m ? json_dumps(m, JSON_COMPACT) : NULL;

	json_decref(m);
	if (!txt)
		return;
	for (struct zd_proxy *p = d->proxies; p; p = p->next) {
		struct zd_conn *c = p->conn;
		struct zd_stream *s;

		if (!c || c->dead)
			continue;
		for (s = c->streams; s && s->id != c->config_stream; s = s->next)
			;
		if (s && (zd_stream_send(c, s, txt, strlen(txt)) || zd_stream_send(c, s, "\n", 1)))
			c->dead = true;
	}
	free(txt);
	for (struct zd_conn *c = d->conns, *next; c; c = next) {
		next = c->next;
		if (c->proxy || c->dead)
			zd_conn_flush(c);
	}
}

int zd_store_init(struct zd *d)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int rc = zm_mkdir_p(d->store_dir, 0700);

	if (rc) {
		zm_log_error("store %s: %s", d->store_dir, strerror(-rc));
		return rc;
	}
	d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->ifd < 0 || inotify_add_watch(d->ifd, d->store_dir, IN_MOVED_TO | IN_CREATE) < 0) {
		rc = -errno;
		zm_log_error("store %s: inotify: %s", d->store_dir, strerror(errno));
		return rc;
	}
	d->iev.kind = ZD_INOTIFY;
	ev.data.ptr = &d->iev;
	if (epoll_ctl(d->ep, EPOLL_CTL_ADD, d->ifd, &ev))
		return -errno;
	reload(d);
	return 0;
}

void zd_store_event(struct zd *d)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(d->ifd, buf, sizeof(buf)) > 0)
		;
	reload(d);
}

void zd_store_poll(struct zd *d)
{
	reload(d);
}

static bool proxy_kind_valid(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

static void detach(struct zd_proxy *p)
{
	struct zd_conn *c = p->conn;

	if (!c)
		return;
	for (struct zd_stream *s = c->streams; s; s = s->next)
		if (s->id == c->config_stream)
			s->is_config = false;
	nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, c->config_stream, NGHTTP2_CANCEL);
	c->proxy = NULL;
	c->config_stream = 0;
	p->conn = NULL;
}

void zd_handle_config(struct zd_conn *c, struct zd_stream *s)
{
	struct zd *d = c->d;
	const char *kind = s->proxy[0] ? s->proxy : "ztunnel";
	char name[sizeof(((struct zd_proxy *)0)->name)];
	enum zd_view view = ZD_VIEW_ZTUNNEL;
	struct zd_proxy *p;

	if (!proxy_kind_valid(kind)) {
		zd_respond_lit(c, s, 400, "{\"error\":\"x-zmesh-proxy: want 1-63 of [a-z0-9.-]\"}\n");
		return;
	}
	/* A waypoint or gateway is what its credential says, whatever it asks;
	 * a node's proxies may not take those names (they would look like one). */
	if (c->who.role != ZM_CP_NODE) {
		kind = zm_cp_role_name(c->who.role);
		view = c->who.role == ZM_CP_GATEWAY ? ZD_VIEW_GATEWAY : ZD_VIEW_WAYPOINT;
	} else if (!strcmp(kind, "waypoint") || !strcmp(kind, "gateway")) {
		zm_log_warn("node %s (%s): asked to be a %s: refused (that takes a %s credential)", c->node,
			    c->peer, kind, kind);
		zd_respond_lit(c, s, 403, "{\"error\":\"a node credential cannot serve as a waypoint or gateway\"}\n");
		return;
	}
	if (c->proxy) {
		zd_respond_lit(c, s, 409, "{\"error\":\"this connection already has a config stream\"}\n");
		return;
	}
	snprintf(name, sizeof(name), "%s~%s", kind, c->node);
	for (p = d->proxies; p && strcmp(p->name, name); p = p->next)
		;
	if (!p) {
		int per_node = 0;

		for (struct zd_proxy *q = d->proxies; q; q = q->next)
			per_node += !strcmp(q->node, c->node);
		/* Names come from the client: bound what one node can make us keep. */
		if (per_node >= ZD_MAX_PROXIES_PER_NODE) {
			zm_log_warn("node %s: more than %d proxy names: refusing %s", c->node,
				    ZD_MAX_PROXIES_PER_NODE, name);
			zd_respond_lit(c, s, 429, "{\"error\":\"too many proxies for this node\"}\n");
			return;
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			zd_respond_lit(c, s, 500, "{\"error\":\"out of memory\"}\n");
			return;
		}
		snprintf(p->name, sizeof(p->name), "%s", name);
		snprintf(p->node, sizeof(p->node), "%s", c->node);
		p->view = view;
		snprintf(p->ns, sizeof(p->ns), "%s", c->who.ns);
		snprintf(p->sa, sizeof(p->sa), "%s", c->who.sa);
		p->next = d->proxies;
		d->proxies = p;
	} else if (p->conn) {
		/* The newest stream wins: the old one is from a proxy that restarted. */
		struct zd_conn *old = p->conn;

		zm_log_info("proxy %s: replacing its older config stream", name);
		detach(p);
		zd_conn_flush(old);	/* sends the reset; old != c, as c had no stream */
	}
	if (zd_respond_stream(c, s, "application/x-ndjson")) {
		nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	s->is_config = true;
	c->proxy = p;
	c->config_stream = s->id;
	p->conn = c;
	p->has_sent = false;
	json_decref(p->view_sent);	/* a new stream starts from a snapshot */
	p->view_sent = NULL;
	p->connected_at = time(NULL);
	zm_log_info("proxy %s connected (%s %s, %s)", name, zm_cp_role_name(c->who.role), c->node, c->peer);
	push(d, p);
}

void zd_stream_closed(struct zd_conn *c, struct zd_stream *s)
{
	struct zd_proxy *p = c->proxy;

	if (!p || c->config_stream != s->id)
		return;
	zm_log_info("proxy %s disconnected", p->name);
	json_decref(p->view_sent);
	p->view_sent = NULL;
	p->conn = NULL;
	c->proxy = NULL;
	c->config_stream = 0;
}

void zd_handle_ack(struct zd_conn *c, struct zd_stream *s)
{
	struct zd *d = c->d;
	struct zd_proxy *p = c->proxy;
	json_error_t jerr;
	json_t *j = json_loadb(zm_buf_data(&s->body) ? zm_buf_data(&s->body) : "", zm_buf_len(&s->body),
			       JSON_REJECT_DUPLICATES, &jerr);
	json_t *ver = json_object_get(j, "version"), *err = json_object_get(j, "error");
	char esc[sizeof(p->nack_error)];
	json_int_t v;

	if (!p) {
		zd_respond_lit(c, s, 409, "{\"error\":\"no config stream on this connection\"}\n");
		goto out;
	}
	if (!json_is_object(j) || !json_is_integer(ver) || (err && !json_is_null(err) && !json_is_string(err)) ||
	    json_object_size(j) > 2) {
		zd_respond_lit(c, s, 400, "{\"error\":\"want {\\\"version\\\":N,\\\"error\\\":null|\\\"why\\\"}\"}\n");
		goto out;
	}
	v = json_integer_value(ver);
	if (v < 0 || !p->has_sent || (uint64_t)v > p->sent) {
		zd_respond_lit(c, s, 400, "{\"error\":\"version was never sent\"}\n");
		goto out;
	}
	if (json_is_string(err)) {
		zm_log_escape(esc, sizeof(esc), json_string_value(err), json_string_length(err));
		p->nacked = (uint64_t)v;
		p->has_nack = true;
		snprintf(p->nack_error, sizeof(p->nack_error), "%s", esc);
		d->st.nacks++;
		zm_log_warn("proxy %s NACKed version %lld: %s", p->name, (long long)v, esc);
	} else {
		if (!p->has_ack || (uint64_t)v > p->acked)
			p->acked = (uint64_t)v;
		p->has_ack = true;
		p->last_ack_at = time(NULL);
		d->st.acks++;
		zm_log_debug("proxy %s ACKed version %lld", p->name, (long long)v);
	}
	zd_respond_lit(c, s, 200, "{}\n");
out:
	json_decref(j);
}

static const char *status_of(struct zd *d, const struct zd_proxy *p)
{
	if (!p->conn)
		return "DISCONNECTED";
	if (!p->has_sent)
		return "NOT SENT";
	if (p->has_nack && p->nacked == p->sent && (!p->has_ack || p->acked < p->nacked))
		return "NACK";
	/* In sync: it ACKed what it was sent, and the current version left its view so. */
	if (p->has_ack && p->acked == p->sent && p->uptodate == d->cur.version)
		return "SYNCED";
	return "STALE";
}

json_t *zd_syncz(struct zd *d)
{
	json_t *arr = json_array(), *root;

	for (struct zd_proxy *p = d->proxies; p; p = p->next) {
		static const char *const types[] = { [ZD_VIEW_ZTUNNEL] = "ztunnel", [ZD_VIEW_WAYPOINT] = "waypoint",
						     [ZD_VIEW_GATEWAY] = "gateway" };
		json_t *o = json_pack("{sssssssbsssIsI}", "name", p->name, "type", types[p->view], "node",
				      p->node, "connected", p->conn != NULL, "status", status_of(d, p),
				      "connected_at", (json_int_t)p->connected_at, "objects",
				      (json_int_t)json_object_size(p->view_sent));

		if (!o)
			continue;
		json_object_set_new(o, "sent", p->has_sent ? json_integer((json_int_t)p->sent) : json_null());
		json_object_set_new(o, "acked", p->has_ack ? json_integer((json_int_t)p->acked) : json_null());
		json_object_set_new(o, "nacked", p->has_nack ? json_integer((json_int_t)p->nacked) : json_null());
		json_object_set_new(o, "error", p->has_nack ? json_string(p->nack_error) : json_null());
		json_array_append_new(arr, o);
	}
	root = json_pack("{sIso}", "version", (json_int_t)d->cur.version, "proxies", arr);
	return root;
}

void zd_free_state(struct zd *d)
{
	while (d->proxies) {
		struct zd_proxy *p = d->proxies;

		d->proxies = p->next;
		json_decref(p->view_sent);
		free(p);
	}
	gen_clear(&d->cur);
	if (d->ifd >= 0)
		close(d->ifd);
}
