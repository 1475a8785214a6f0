// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/1.1 keep-alive: one request in flight per connection (no pipelining,
 * as browsers and most proxies' upstream pools do). llhttp frames the
 * responses: Content-Length, chunked, or delimited by the close.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static int on_message_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	int status = llhttp_get_status_code(p);

	if (!c->inflight)
		return -1;	/* an answer nobody asked for */
	if (status < 200)
		return 0;	/* 1xx interim answers: the real one follows */
	if (!llhttp_should_keep_alive(p))
		c->close_after = true;
	conn_complete(c, &c->slots[0], status < 400, status);
	return 0;
}

static llhttp_settings_t settings;

void http1_conn_reset(struct conn *c)
{
	llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
	c->parser.data = c;
	c->close_after = false;
}

int http1_on_data(struct conn *c, const uint8_t *p, size_t n)
{
	return llhttp_execute(&c->parser, (const char *)p, n) == HPE_OK ? 0 : -EPROTO;
}

int http1_on_eof(struct conn *c)
{
	return llhttp_finish(&c->parser) == HPE_OK ? 0 : -EPROTO;
}

/* The request bytes, written once and sent as they are for every request. */
int http1_build_request(struct lg_cfg *cfg)
{
	size_t cap = 256 + strlen(cfg->path) + strlen(cfg->authority), off;
	char *r;
	int n;

	for (int i = 0; i < cfg->nheaders; i++)
		cap += strlen(cfg->headers[i]) + 2;
	r = malloc(cap);
	if (!r)
		return -ENOMEM;
	n = snprintf(r, cap, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: zmesh-loadgen\r\n",
		     cfg->path, cfg->authority);
	off = (size_t)n;
	for (int i = 0; i < cfg->nheaders; i++)
		off += (size_t)snprintf(r + off, cap - off, "%s\r\n", cfg->headers[i]);
	off += (size_t)snprintf(r + off, cap - off, "\r\n");
	llhttp_settings_init(&settings);
	settings.on_message_complete = on_message_complete;
	cfg->req = r;
	cfg->reqlen = off;
	return 0;
}
