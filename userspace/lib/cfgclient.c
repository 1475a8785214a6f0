// SPDX-License-Identifier: Apache-2.0
/* The proxy side of zmeshd's :15012 (cfgclient.h): TLS over memory BIOs, nghttp2 client. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <nghttp2/nghttp2.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/buf.h"
#include "zmesh/cfgclient.h"
#include "zmesh/config.h"
#include "zmesh/nodeid.h"
#include "zmesh/tls.h"

#define BACKOFF_BASE_MS 100
#define CONNECT_TIMEOUT_MS 5000
#define MAX_LINE (64 << 20)
#define MAX_BODY (1 << 20)

enum cstate { C_WAIT, C_CONNECTING, C_HANDSHAKE, C_UP };
enum skind { S_CONFIG, S_ACK, S_CERT };

struct cstream {
	int32_t id;
	enum skind kind;
	int status;
	struct zm_buf body;		/* response body; for the config stream, the partial line */
	struct zm_buf req;		/* request body still to send */
	zm_cfgclient_cert_cb cb;
	void *arg;
	char *key_pem;
	struct zm_spiffe_id want;
	struct cstream *next;
};

struct zm_cfgclient {
	struct zm_cfgclient_opts o;
	char *server, *cred_dir;
	char td[ZM_TD_MAX + 1], proxy[64];
	struct sockaddr_storage addr;
	socklen_t alen;
	int ep, tfd, fd;
	enum cstate st;
	SSL *ssl;
	nghttp2_session *ng;
	struct zm_buf wq;
	long long deadline;		/* C_WAIT: when to connect; else connect/handshake deadline */
	int attempt;
	bool want_out, tearing_down, failed;
	char fail_why[ZM_ERROR_MAX];
	struct cstream *streams;
	json_t *state;			/* what zmeshd sent: key -> object */
	bool have_state;
	uint64_t state_version;
	json_t *good;			/* last accepted: array of objects */
	bool have_good;
	uint64_t good_version;
	unsigned connects;
	char *bundle;			/* latest trust bundle from zmeshd */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void arm(struct zm_cfgclient *c)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };

	if (c->st != C_UP) {
		long long at = c->deadline < 1 ? 1 : c->deadline;

		its.it_value.tv_sec = at / 1000;
		its.it_value.tv_nsec = (at % 1000) * 1000000;
	}
	timerfd_settime(c->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void set_events(struct zm_cfgclient *c, bool out)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.fd = c->fd };

	if (c->fd >= 0 && out != c->want_out && !epoll_ctl(c->ep, EPOLL_CTL_MOD, c->fd, &ev))
		c->want_out = out;
}

static void stream_free(struct cstream *s)
{
	zm_buf_free(&s->body);
	zm_buf_free(&s->req);
	if (s->key_pem) {
		memset(s->key_pem, 0, strlen(s->key_pem));
		free(s->key_pem);
	}
	free(s);
}

static void sunlink(struct zm_cfgclient *c, struct cstream *s)
{
	for (struct cstream **p = &c->streams; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			return;
		}
}

static void fail(struct zm_cfgclient *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct zm_cfgclient *c, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return;
	c->failed = true;
	va_start(ap, fmt);
	vsnprintf(c->fail_why, sizeof(c->fail_why), fmt, ap);
	va_end(ap);
}

/* Close everything of the current connection and schedule the next one. */
static void teardown(struct zm_cfgclient *c)
{
	int max = c->o.backoff_max_ms, delay;
	unsigned r = 0;

	c->tearing_down = true;
	if (c->ng)
		nghttp2_session_del(c->ng);
	c->ng = NULL;
	c->tearing_down = false;
	if (c->ssl)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0) {
		epoll_ctl(c->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->want_out = false;
	zm_buf_reset(&c->wq);
	delay = BACKOFF_BASE_MS << (c->attempt < 16 ? c->attempt : 16);
	if (delay > max || delay <= 0)
		delay = max;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	delay = delay / 2 + (int)(r % (unsigned)(delay / 2 + 1));
	if (c->attempt < 16)
		c->attempt++;
	c->st = C_WAIT;
	c->deadline = now_ms() + delay;
	zm_log_info("zmeshd %s: %s; reconnecting in %d ms", c->server, c->fail_why, delay);
	c->failed = false;
	/* Answer pending certificate requests last: their callbacks may ask again (-ENOTCONN). */
	while (c->streams) {
		struct cstream *s = c->streams;

		c->streams = s->next;
		if (s->kind == S_CERT && s->cb)
			s->cb(s->arg, -ECONNRESET, NULL, NULL, "connection to zmeshd lost");
		stream_free(s);
	}
}

static ssize_t read_req(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			nghttp2_data_source *src, void *ud)
{
	struct cstream *s = src->ptr;
	size_t n = zm_buf_len(&s->req);

	(void)ng; (void)id; (void)ud;
	if (n > len)
		n = len;
	memcpy(buf, zm_buf_data(&s->req), n);
	zm_buf_consume(&s->req, n);
	if (!zm_buf_len(&s->req))
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int submit(struct zm_cfgclient *c, enum skind kind, const char *method, const char *path,
		  const char *body, struct cstream **out)
{
	struct cstream *s = calloc(1, sizeof(*s));
	nghttp2_nv nv[6];
	size_t n = 0;
	nghttp2_data_provider prd;
	int32_t id;

#define NV(k, v) nv[n++] = (nghttp2_nv){ (uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE }
	if (!s)
		return -ENOMEM;
	s->kind = kind;
	NV(":method", method);
	NV(":scheme", "https");
	NV(":authority", "zmeshd");
	NV(":path", path);
	if (kind == S_CONFIG)
		NV("x-zmesh-proxy", c->proxy);
	if (body) {
		NV("content-type", kind == S_CERT ? "application/pkcs10" : "application/json");
		if (zm_buf_puts(&s->req, body)) {
			free(s);
			return -ENOMEM;
		}
		prd.source.ptr = s;
		prd.read_callback = read_req;
	}
#undef NV
	id = nghttp2_submit_request(c->ng, NULL, nv, n, body ? &prd : NULL, s);
	if (id < 0) {
		stream_free(s);
		return -EIO;
	}
	s->id = id;
	s->next = c->streams;
	c->streams = s;
	if (out)
		*out = s;
	return 0;
}

static int ack(struct zm_cfgclient *c, uint64_t version, const char *why)
{
	json_t *j = json_pack("{sIso}", "version", (json_int_t)version, "error", why ? json_string(why) : json_null());
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	/* No session: a line fed by zm_cfgclient_feed() (tests, fuzzing); nothing to answer. */
	int rc = !c->ng ? 0 : txt ? submit(c, S_ACK, "POST", "/v1/ack", txt, NULL) : -ENOMEM;

	free(txt);
	json_decref(j);
	return rc;
}

static int obj_key(json_t *o, char *buf, size_t sz)
{
	json_t *md = json_object_get(o, "metadata");
	const char *kind = json_string_value(json_object_get(o, "kind"));
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	int n;

	if (!kind || !name)
		return -EINVAL;
	n = snprintf(buf, sz, "%s/%s/%s", kind, ns ? ns : "", name);
	return n < 0 || (size_t)n >= sz ? -EINVAL : 0;
}

/* One line of the config stream. */
static int on_message(struct zm_cfgclient *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *m = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr), *objs, *del, *v, *arr = NULL;
	const char *kind;
	json_int_t ver;
	char key[1024], why[ZM_ERROR_MAX];
	size_t i;
	int rc = -EINVAL;
	bool snapshot;

	{
		const char *b = json_string_value(json_object_get(m, "bundle"));

		if (b && (!c->bundle || strcmp(b, c->bundle))) {
			char *nb = strdup(b);

			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			free(c->bundle);
			c->bundle = nb;
			if (c->o.on_bundle)
				c->o.on_bundle(c->o.arg, c->bundle);
		}
		if (b && !strcmp(json_string_value(json_object_get(m, "kind")) ?: "", "bundle")) {
			rc = 0;
			goto out;
		}
	}
	objs = json_object_get(m, "objects");
	del = json_object_get(m, "deleted");
	kind = json_string_value(json_object_get(m, "kind"));
	ver = json_integer_value(json_object_get(m, "version"));
	if (!m || !json_is_integer(json_object_get(m, "version")) || ver < 0 || !kind ||
	    (strcmp(kind, "snapshot") && strcmp(kind, "delta")) || !json_is_array(objs) ||
	    (del && !json_is_array(del))) {
		fail(c, "config stream: malformed message%s%s", m ? "" : ": ", m ? "" : jerr.text);
		goto out;
	}
	snapshot = !strcmp(kind, "snapshot");
	if (!snapshot && !c->have_state) {
		fail(c, "config stream: delta before any snapshot");
		goto out;
	}
	json_array_foreach(objs, i, v)
		if (obj_key(v, key, sizeof(key))) {
			fail(c, "config stream: version %lld: object %zu has no kind or name", (long long)ver, i);
			goto out;
		}
	json_array_foreach(del, i, v)
		if (!json_is_string(v)) {
			fail(c, "config stream: version %lld: deleted[%zu] is not a string", (long long)ver, i);
			goto out;
		}
	if (snapshot) {
		json_object_clear(c->state);
		c->attempt = 0;
	}
	json_array_foreach(objs, i, v) {
		obj_key(v, key, sizeof(key));
		json_object_set(c->state, key, v);
	}
	json_array_foreach(del, i, v)
		json_object_del(c->state, json_string_value(v));
	c->have_state = true;
	c->state_version = (uint64_t)ver;
	if (c->have_good && c->good_version == (uint64_t)ver) {
		rc = ack(c, (uint64_t)ver, NULL);
		goto out;
	}
	arr = json_array();
	if (!arr) {
		rc = -ENOMEM;
		goto out;
	}
	{
		const char *k;

		json_object_foreach(c->state, k, v)
			json_array_append(arr, v);
	}
	why[0] = 0;
	rc = c->o.on_config ? c->o.on_config(c->o.arg, (uint64_t)ver, arr, why, sizeof(why)) : 0;
	if (rc == 0) {
		json_decref(c->good);
		c->good = arr;
		arr = NULL;
		c->good_version = (uint64_t)ver;
		c->have_good = true;
		rc = ack(c, (uint64_t)ver, NULL);
	} else {
		zm_log_warn("config version %lld refused: %s", (long long)ver, why[0] ? why : "rejected");
		rc = ack(c, (uint64_t)ver, why[0] ? why : "rejected");
	}
out:
	json_decref(arr);
	json_decref(m);
	return rc;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct cstream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);

	(void)flags; (void)ud;
	if (s && nl == 7 && !memcmp(name, ":status", 7) && vl == 3)
		s->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
	return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *d, size_t n, void *ud)
{
	struct zm_cfgclient *c = ud;
	struct cstream *s = nghttp2_session_get_stream_user_data(ng, id);
	char *nl;

	(void)flags;
	if (!s)
		return 0;
	if (s->kind != S_CONFIG) {
		if (zm_buf_len(&s->body) + n > MAX_BODY || zm_buf_append(&s->body, d, n))
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		return 0;
	}
	if (s->status != 200) {
		if (zm_buf_len(&s->body) + n <= MAX_BODY)
			zm_buf_append(&s->body, d, n);
		return 0;
	}
	if (zm_buf_len(&s->body) + n > MAX_LINE || zm_buf_append(&s->body, d, n)) {
		fail(c, "config stream: message larger than %d bytes", MAX_LINE);
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	while (!c->failed && (nl = memchr(zm_buf_data(&s->body), '\n', zm_buf_len(&s->body)))) {
		size_t len = (size_t)(nl - zm_buf_data(&s->body));
		int rc = on_message(c, zm_buf_data(&s->body), len);

		zm_buf_consume(&s->body, len + 1);
		if (rc && !c->failed)
			fail(c, "config stream: %s", strerror(-rc));
	}
	return c->failed ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static void cert_done(struct zm_cfgclient *c, struct cstream *s, uint32_t err)
{
	json_t *j = json_loadb(zm_buf_data(&s->body) ? zm_buf_data(&s->body) : "", zm_buf_len(&s->body), 0, NULL);
	const char *chain = json_string_value(json_object_get(j, "chain"));
	const char *bundle = json_string_value(json_object_get(j, "bundle"));
	const char *msg = json_string_value(json_object_get(j, "error"));
	struct zm_svid_cert cert = { 0 };
	struct zm_error e = { "" };

	(void)c;
	if (err || !s->status)
		s->cb(s->arg, -ECONNRESET, NULL, NULL, "stream reset before the answer");
	else if (s->status != 200)
		s->cb(s->arg, s->status == 403 ? -EACCES : -EINVAL, NULL, NULL, msg ? msg : "refused");
	else if (!chain || !bundle)
		s->cb(s->arg, -EINVAL, NULL, NULL, "answer without chain or bundle");
	else if (zm_svid_cert_load(&cert, s->key_pem, chain, &e))
		s->cb(s->arg, -EINVAL, NULL, NULL, e.msg);
	else if (!zm_spiffe_eq(&cert.id, &s->want))
		s->cb(s->arg, -EINVAL, NULL, NULL, "certificate is for another identity");
	else
		s->cb(s->arg, 0, &cert, bundle, NULL);
	zm_svid_cert_clear(&cert);
	json_decref(j);
}

static int on_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
	struct zm_cfgclient *c = ud;
	struct cstream *s = nghttp2_session_get_stream_user_data(ng, id);

	if (!s || c->tearing_down)
		return 0;
	sunlink(c, s);
	switch (s->kind) {
	case S_CONFIG:
		fail(c, "config stream closed by zmeshd (status %d%s%.*s)", s->status,
		     zm_buf_len(&s->body) ? ": " : "", (int)(zm_buf_len(&s->body) > 300 ? 300 : zm_buf_len(&s->body)),
		     zm_buf_len(&s->body) ? zm_buf_data(&s->body) : "");
		break;
	case S_ACK:
		if (s->status != 200)
			zm_log_warn("zmeshd refused an ACK (status %d)", s->status);
		break;
	case S_CERT:
		if (s->cb)
			cert_done(c, s, err);
		break;
	}
	stream_free(s);
	return 0;
}

static void flush(struct zm_cfgclient *c)
{
	char buf[16384];
	size_t n;

	if (c->ng && !c->failed) {
		for (;;) {
			const uint8_t *d;
			ssize_t len = nghttp2_session_mem_send(c->ng, &d);

			if (len < 0) {
				fail(c, "HTTP/2: %s", nghttp2_strerror((int)len));
				break;
			}
			if (len == 0)
				break;
			if (SSL_write(c->ssl, d, (int)len) <= 0) {
				fail(c, "TLS write failed");
				break;
			}
		}
	}
	while (c->ssl && (n = zm_tls_net_read(c->ssl, buf, sizeof(buf))) > 0)
		if (zm_buf_append(&c->wq, buf, n))
			fail(c, "out of memory");
	while (zm_buf_len(&c->wq) && c->fd >= 0) {
		ssize_t w = send(c->fd, zm_buf_data(&c->wq), zm_buf_len(&c->wq), MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			fail(c, "send: %s", w < 0 ? strerror(errno) : "closed");
			break;
		}
		zm_buf_consume(&c->wq, (size_t)w);
	}
	set_events(c, zm_buf_len(&c->wq) > 0);
}

static void up(struct zm_cfgclient *c)
{
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 } };

	if (nghttp2_session_callbacks_new(&cb)) {
		fail(c, "out of memory");
		return;
	}
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	if (nghttp2_session_client_new(&c->ng, cb, c)) {
		c->ng = NULL;
		fail(c, "out of memory");
	}
	nghttp2_session_callbacks_del(cb);
	if (!c->ng)
		return;
	nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 1);
	nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, 4 << 20);
	c->st = C_UP;
	c->connects++;
	if (submit(c, S_CONFIG, "GET", "/v1/config", NULL, NULL))
		fail(c, "out of memory");
	zm_log_info("connected to zmeshd %s", c->server);
}

static void start_connect(struct zm_cfgclient *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP };
	struct zm_spiffe_id zid;
	struct zm_error e = { "" };
	char *key = NULL, *chain = NULL, *bundle = NULL;
	SSL_CTX *ctx = NULL;

	c->deadline = now_ms() + CONNECT_TIMEOUT_MS;
	c->st = C_CONNECTING;
	if (zm_node_cred_read(c->cred_dir, &key, &chain, &bundle, &e) ||
	    !(ctx = zm_tls_ctx_new(false, key, chain, c->bundle ? c->bundle : bundle, c->td, &e))) {
		fail(c, "bootstrap credential: %s", e.msg);
		goto out;
	}
	c->ssl = SSL_new(ctx);
	if (!c->ssl || zm_tls_use_membio(c->ssl) || zm_spiffe_make(&zid, c->td, ZM_ZMESHD_NS, ZM_ZMESHD_SA) ||
	    zm_tls_expect_peer(c->ssl, &zid)) {
		fail(c, "TLS setup failed");
		goto out;
	}
	SSL_set_connect_state(c->ssl);
	c->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&c->addr, c->alen) && errno != EINPROGRESS)) {
		fail(c, "connect: %s", strerror(errno));
		goto out;
	}
	ev.data.fd = c->fd;
	c->want_out = true;
	if (epoll_ctl(c->ep, EPOLL_CTL_ADD, c->fd, &ev))
		fail(c, "epoll: %s", strerror(errno));
out:
	if (key) {
		memset(key, 0, strlen(key));
		free(key);
	}
	free(chain);
	free(bundle);
	SSL_CTX_free(ctx);	/* the SSL keeps its reference */
}

static void io(struct zm_cfgclient *c, uint32_t ev)
{
	char buf[16384];
	bool eof = false;
	int r;

	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		/* At most 256 KiB per pass: epoll is level-triggered, the rest waits its turn,
		 * and a flooding peer cannot grow the TLS input buffer without bound. */
		for (size_t got = 0; got < (256u << 10);) {
			ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {
				eof = true;
				break;
			}
			got += (size_t)n;
			if (zm_tls_net_write(c->ssl, buf, (size_t)n)) {
				fail(c, "out of memory");
				return;
			}
		}
	}
	if (c->st == C_HANDSHAKE) {
		struct zm_error e = { "" };

		r = zm_tls_handshake(c->ssl, &e);
		if (r < 0) {
			fail(c, "%s", e.msg);
			return;
		}
		if (r == 1)
			up(c);
	}
	if (c->st == C_UP && !c->failed) {
		while ((r = SSL_read(c->ssl, buf, sizeof(buf))) > 0)
			if (nghttp2_session_mem_recv(c->ng, (const uint8_t *)buf, (size_t)r) < 0) {
				fail(c, "HTTP/2 protocol error");
				break;
			}
		if (!c->failed && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ)
			fail(c, "TLS: connection closed or refused by zmeshd");
	}
	if (!c->failed)
		flush(c);
	if (eof)
		fail(c, "connection closed by zmeshd");
}

int zm_cfgclient_process(struct zm_cfgclient *c)
{
	struct epoll_event evs[4];
	uint32_t sockev = 0;
	uint64_t ticks;
	int n;

	while (read(c->tfd, &ticks, sizeof(ticks)) > 0)
		;
	n = epoll_wait(c->ep, evs, 4, 0);
	for (int i = 0; i < n; i++)
		if (evs[i].data.fd == c->fd && c->fd >= 0)
			sockev |= evs[i].events;
	if (c->st == C_WAIT && now_ms() >= c->deadline)
		start_connect(c);
	if (c->st == C_CONNECTING && !c->failed && (sockev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			fail(c, "connect: %s", strerror(err));
		} else {
			c->st = C_HANDSHAKE;
			SSL_do_handshake(c->ssl);	/* the ClientHello */
		}
	}
	if ((c->st == C_HANDSHAKE || c->st == C_UP) && !c->failed)
		io(c, sockev);
	if (!c->failed && c->st != C_WAIT && c->st != C_UP && now_ms() >= c->deadline)
		fail(c, "connect or TLS handshake timed out");
	if (c->failed)
		teardown(c);
	arm(c);
	return 0;
}

static int parse_addr(struct zm_cfgclient *c, const char *spec)
{
	char host[256], port[16];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *ai;
	size_t hl;

	if (!colon || !colon[1] || strlen(colon + 1) >= sizeof(port) || (hl = (size_t)(colon - spec)) >= sizeof(host) || !hl)
		return -EINVAL;
	memcpy(host, spec, hl);
	host[hl] = 0;
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (getaddrinfo(host, port, &hints, &ai))
		return -EINVAL;
	memcpy(&c->addr, ai->ai_addr, ai->ai_addrlen);
	c->alen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int zm_cfgclient_new(const struct zm_cfgclient_opts *o, struct zm_cfgclient **out, struct zm_error *e)
{
	struct zm_cfgclient *c = calloc(1, sizeof(*c));
	struct epoll_event ev = { .events = EPOLLIN };
	const char *td = o->trust_domain ? o->trust_domain : "cluster.local";
	const char *proxy = o->proxy ? o->proxy : "ztunnel";

	*out = NULL;
	if (!c)
		return zm_error_set(e, ENOMEM, "out of memory");
	c->o = *o;
	c->fd = c->ep = c->tfd = -1;
	if (!c->o.backoff_max_ms)
		c->o.backoff_max_ms = 5000;
	if (!o->server || !o->cred_dir || parse_addr(c, o->server)) {
		zm_cfgclient_free(c);
		return zm_error_set(e, EINVAL, "zmeshd address %s: want a numeric host:port", o->server ? o->server : "(none)");
	}
	if (!zm_spiffe_td_valid(td, strlen(td)) || strlen(proxy) >= sizeof(c->proxy) || !proxy[0]) {
		zm_cfgclient_free(c);
		return zm_error_set(e, EINVAL, "invalid trust domain or proxy kind");
	}
	snprintf(c->td, sizeof(c->td), "%s", td);
	snprintf(c->proxy, sizeof(c->proxy), "%s", proxy);
	c->server = strdup(o->server);
	c->cred_dir = strdup(o->cred_dir);
	c->state = json_object();
	c->ep = epoll_create1(EPOLL_CLOEXEC);
	c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	ev.data.fd = c->tfd;
	if (!c->server || !c->cred_dir || !c->state || c->ep < 0 || c->tfd < 0 ||
	    epoll_ctl(c->ep, EPOLL_CTL_ADD, c->tfd, &ev)) {
		zm_cfgclient_free(c);
		return zm_error_set(e, ENOMEM, "cfgclient: cannot allocate");
	}
	c->st = C_WAIT;
	c->deadline = 0;	/* connect on the first process() */
	arm(c);
	*out = c;
	return 0;
}

void zm_cfgclient_free(struct zm_cfgclient *c)
{
	if (!c)
		return;
	c->tearing_down = true;
	if (c->ng)
		nghttp2_session_del(c->ng);
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	while (c->streams) {
		struct cstream *s = c->streams;

		c->streams = s->next;
		stream_free(s);
	}
	if (c->ep >= 0)
		close(c->ep);
	if (c->tfd >= 0)
		close(c->tfd);
	zm_buf_free(&c->wq);
	json_decref(c->state);
	json_decref(c->good);
	free(c->server);
	free(c->cred_dir);
	free(c->bundle);
	free(c);
}

int zm_cfgclient_fd(struct zm_cfgclient *c)
{
	return c->ep;
}

int zm_cfgclient_timeout_ms(struct zm_cfgclient *c)
{
	long long left;

	if (c->st == C_UP)
		return -1;
	left = c->deadline - now_ms();
	return left < 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

bool zm_cfgclient_connected(struct zm_cfgclient *c)
{
	return c->st == C_UP;
}

uint64_t zm_cfgclient_version(struct zm_cfgclient *c, bool *have)
{
	if (have)
		*have = c->have_good;
	return c->have_good ? c->good_version : 0;
}

json_t *zm_cfgclient_config(struct zm_cfgclient *c)
{
	return c->good;
}

int zm_cfgclient_feed(struct zm_cfgclient *c, const char *line, size_t len, char *why, size_t whysz)
{
	int rc;

	if (c->ng || c->failed)
		return -EBUSY;
	rc = on_message(c, line, len);
	if (c->failed) {
		if (why)
			snprintf(why, whysz, "%s", c->fail_why);
		c->failed = false;
		return -EINVAL;
	}
	return rc;
}

const char *zm_cfgclient_bundle(struct zm_cfgclient *c)
{
	return c->bundle;
}

unsigned zm_cfgclient_connects(struct zm_cfgclient *c)
{
	return c->connects;
}

int zm_cfgclient_request_cert(struct zm_cfgclient *c, const struct zm_spiffe_id *id,
			      zm_cfgclient_cert_cb cb, void *arg)
{
	struct zm_error e = { "" };
	struct cstream *s = NULL;
	char *key = NULL, *csr = NULL;
	int rc;

	if (c->st != C_UP || c->failed)
		return -ENOTCONN;
	if ((rc = zm_key_csr(id, &key, &csr, &e)))
		return rc;
	rc = submit(c, S_CERT, "POST", "/v1/certs", csr, &s);
	free(csr);
	if (rc) {
		memset(key, 0, strlen(key));
		free(key);
		return rc;
	}
	s->key_pem = key;
	s->want = *id;
	s->cb = cb;
	s->arg = arg;
	flush(c);
	return 0;
}

int zm_cfgclient_to_set(json_t *objects, struct zm_cfg_set *set, char *why, size_t whysz)
{
	struct zm_buf b = { 0 };
	size_t i;
	json_t *o;
	int rc = 0;

	json_array_foreach(objects, i, o) {
		char *s = json_dumps(o, JSON_COMPACT);

		if (!s) {
			rc = -ENOMEM;
			break;
		}
		zm_buf_printf(&b, "---\n%s\n", s);
		free(s);
	}
	if (!rc && zm_buf_len(&b))
		rc = zm_cfg_load_buf(set, "zmeshd", zm_buf_data(&b), zm_buf_len(&b));
	if (rc == -EINVAL && set->nerrs)
		snprintf(why, whysz, "%s", set->errs[0].text);
	else if (rc)
		snprintf(why, whysz, "%s", strerror(-rc));
	zm_buf_free(&b);
	return rc;
}
