// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/2 over cleartext with prior knowledge (h2c, RFC 9113 3.3): the client
 * preface at once, no Upgrade. nghttp2 runs on memory buffers; each request
 * is a stream whose user data is its slot, so an answer finds its intended
 * time without a lookup. Requests past the server's MAX_CONCURRENT_STREAMS
 * wait inside nghttp2 (their latency counts from their intended time).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static nghttp2_session_callbacks *cbs;

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct slot *sl;

	if (f->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7))
		return 0;
	sl = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (sl && valuelen == 3) {
		int st = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');

		/* Interim 1xx answers are followed by the final one. */
		if (st >= 200 && st <= 599)
			sl->status = st;
	}
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	struct conn *c = ud;
	struct slot *sl = nghttp2_session_get_stream_user_data(s, id);

	if (!sl || !sl->busy || sl->stream_id != id)
		return 0;
	conn_complete(c, sl, err == NGHTTP2_NO_ERROR && sl->status >= 200 && sl->status < 400,
		      sl->status);
	return 0;
}

int http2_build_nva(struct lg_cfg *cfg)
{
	static const char *ua = "zmesh-loadgen";
	size_t n = 5 + (size_t)cfg->nheaders;
	nghttp2_nv *nv = calloc(n, sizeof(*nv));
	size_t i = 0;

	if (!nv)
		return -ENOMEM;
#define NV(k, v) do { \
		nv[i].name = (uint8_t *)(k); nv[i].namelen = strlen(k); \
		nv[i].value = (uint8_t *)(v); nv[i].valuelen = strlen(v); \
		nv[i].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE; \
		i++; } while (0)
	NV(":method", "GET");
	NV(":scheme", "http");
	NV(":authority", cfg->authority);
	NV(":path", cfg->path);
	NV("user-agent", ua);
	for (int h = 0; h < cfg->nheaders; h++) {
		/* "Name: value" was checked in main; names go lower-case on the wire. */
		char *copy = strdup(cfg->headers[h]), *colon;

		if (!copy)
			return -ENOMEM;
		colon = strchr(copy, ':');
		*colon = '\0';
		for (char *q = copy; *q; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		colon++;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		NV(copy, colon);
	}
#undef NV
	cfg->nva = nv;
	cfg->nnva = i;
	if (nghttp2_session_callbacks_new(&cbs))
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	return 0;
}

int http2_open(struct conn *c)
{
	const nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 },
	};

	if (nghttp2_session_client_new(&c->h2, cbs, c))
		return -ENOMEM;
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20))
		return -EPROTO;
	return 0;
}

void http2_close(struct conn *c)
{
	nghttp2_session_del(c->h2);
	c->h2 = NULL;
}

int http2_submit(struct conn *c, struct slot *s)
{
	const struct lg_cfg *cfg = c->w->cfg;
	int32_t id = nghttp2_submit_request(c->h2, NULL, cfg->nva, cfg->nnva, NULL, s);

	if (id < 0)
		return -EPROTO;
	s->stream_id = id;
	return 0;
}

int http2_on_data(struct conn *c, const uint8_t *p, size_t n)
{
	return nghttp2_session_mem_recv(c->h2, p, n) < 0 ? -EPROTO : 0;
}

/* Hand nghttp2's queued frames to the socket until it is empty or the socket is full. */
int http2_flush(struct conn *c)
{
	while (!c->pendlen) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);
		int rc;

		if (n < 0)
			return -EPROTO;
		if (n == 0)
			break;
		rc = conn_write(c, data, (size_t)n);
		if (rc < 0)
			return rc;
	}
	return 0;
}
