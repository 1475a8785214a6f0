// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/1.x messages with llhttp, strict: no lenient flags, so conflicting
 * Content-Length / Transfer-Encoding, bad chunk framing and bare LF are
 * parse errors (400). Field names and values are checked again with
 * http_safe.h (obs-fold, CR, LF, NUL, control bytes -> 400). Header bytes
 * and counts are capped (431), bodies too (413).
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "waypoint.h"

static llhttp_settings_t req_settings, resp_settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static struct wp_msg *M(llhttp_t *p)
{
	return p->data;
}

static int count(struct wp_msg *m, size_t n)
{
	m->hdr_bytes += n;
	if (m->hdr_bytes > WP_MAX_HEADER_BYTES) {
		m->too_big = true;
		return -1;
	}
	return 0;
}

static int on_begin(llhttp_t *p)
{
	(void)p;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	struct wp_msg *m = M(p);

	return count(m, n) || zm_buf_append(&m->url, at, n) ? -1 : 0;
}

static int on_method(llhttp_t *p, const char *at, size_t n)
{
	struct wp_msg *m = M(p);

	return count(m, n) || zm_buf_len(&m->method) + n > 32 || zm_buf_append(&m->method, at, n) ? -1 : 0;
}

static int on_status(llhttp_t *p, const char *at, size_t n)
{
	struct wp_msg *m = M(p);

	return count(m, n) || zm_buf_append(&m->status_text, at, n) ? -1 : 0;
}

/* Where field bytes go: the head's into hb, trailers' (after the head) into tb. */
static struct zm_buf *fb(struct wp_msg *m)
{
	return m->headers_done ? &m->tb : &m->hb;
}

static int on_field(llhttp_t *p, const char *at, size_t n)
{
	struct wp_msg *m = M(p);
	char *dst;

	if (count(m, n))
		return -1;
	if (m->in_value || m->nh == 0) {
		if (m->nh == WP_MAX_HEADERS) {
			m->too_big = true;
			return -1;
		}
		m->hs[m->nh++] = (struct wp_span){ .noff = (uint32_t)zm_buf_len(fb(m)) };
		m->in_value = false;
	}
	dst = zm_buf_reserve(fb(m), n);
	if (!dst)
		return -1;
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(at[i] >= 'A' && at[i] <= 'Z' ? at[i] + 32 : at[i]);
	zm_buf_commit(fb(m), n);
	m->hs[m->nh - 1].nlen += (uint32_t)n;
	return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t n)
{
	struct wp_msg *m = M(p);
	struct wp_span *h;

	if (count(m, n) || !m->nh)
		return -1;
	h = &m->hs[m->nh - 1];
	if (!m->in_value) {
		h->voff = (uint32_t)zm_buf_len(fb(m));
		m->in_value = true;
	}
	h->vlen += (uint32_t)n;
	return zm_buf_append(fb(m), at, n) ? -1 : 0;
}

/* A field-name/value the parser let through but we will not forward:
 * fields [from, to) with their bytes in @b (the head's hb, trailers' tb). */
static int fields_check(struct wp_msg *m, const struct zm_buf *buf, size_t from, size_t to)
{
	const char *b = zm_buf_data(buf);

	for (size_t i = from; i < to; i++) {
		if (!zm_http_name_valid(b + m->hs[i].noff, m->hs[i].nlen) ||
		    !zm_http_value_valid(b + m->hs[i].voff, m->hs[i].vlen)) {
			m->bad_header = true;
			return -1;
		}
	}
	return 0;
}

/*
 * Content-Length next to Transfer-Encoding (llhttp lets an empty
 * Transfer-Encoding through with a Content-Length), or twice: the message
 * has two lengths and a peer may pick the other one (RFC 9112 6.3). Refused,
 * as Envoy does, not repaired.
 */
static int ambiguous_length(struct wp_msg *m)
{
	const char *b = zm_buf_data(&m->hb);
	size_t ncl = 0, nte = 0;

	for (size_t i = 0; i < m->nh; i++) {
		ncl += zm_http_name_eq(b + m->hs[i].noff, m->hs[i].nlen, "content-length", 14);
		nte += zm_http_name_eq(b + m->hs[i].noff, m->hs[i].nlen, "transfer-encoding", 17);
	}
	if (ncl > 1 || (ncl && nte)) {
		m->bad_header = true;
		return -1;
	}
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct wp_msg *m = M(p);

	m->headers_done = true;
	m->nhead = m->nh;
	if (fields_check(m, &m->hb, 0, m->nh) || ambiguous_length(m))
		return -1;
	/* Responses to HEAD (and 1xx, 204, 304, which llhttp knows) have no body. */
	return m->head_response ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
	struct wp_msg *m = M(p);

	if (zm_buf_len(&m->body) + n > m->body_limit) {
		m->body_too_big = true;
		return -1;
	}
	return zm_buf_append(&m->body, at, n) ? -1 : 0;
}

static int on_complete(llhttp_t *p)
{
	struct wp_msg *m = M(p);

	/* 1xx interim responses: wait for the final one. */
	if (p->type == HTTP_RESPONSE && p->status_code >= 100 && p->status_code < 200) {
		zm_buf_reset(&m->status_text);
		zm_buf_reset(&m->hb);
		zm_buf_reset(&m->tb);
		m->nh = 0;
		m->hdr_bytes = 0;
		m->in_value = false;
		m->headers_done = false;
		m->interim = true;
		return HPE_PAUSED;	/* wp_msg_feed scans the final response's header block */
	}
	/* chunked trailers: held to the rules of the head's fields */
	if (fields_check(m, &m->tb, m->nhead, m->nh))
		return -1;
	m->complete = true;
	m->status = p->status_code;
	return HPE_PAUSED;
}

static void settings_init(void)
{
	llhttp_settings_t *s[2] = { &req_settings, &resp_settings };

	for (int i = 0; i < 2; i++) {
		llhttp_settings_init(s[i]);
		s[i]->on_message_begin = on_begin;
		s[i]->on_url = on_url;
		s[i]->on_method = on_method;
		s[i]->on_status = on_status;
		s[i]->on_header_field = on_field;
		s[i]->on_header_value = on_value;
		s[i]->on_headers_complete = on_headers_complete;
		s[i]->on_body = on_body;
		s[i]->on_message_complete = on_complete;
	}
}

void wp_msg_init(struct wp_msg *m, llhttp_type_t type, size_t body_limit)
{
	pthread_once(&settings_once, settings_init);
	memset(m, 0, sizeof(*m));
	llhttp_init(&m->p, type, type == HTTP_REQUEST ? &req_settings : &resp_settings);
	m->p.data = m;
	m->body_limit = body_limit;
}

void wp_msg_reset(struct wp_msg *m)
{
	zm_buf_reset(&m->method);
	zm_buf_reset(&m->url);
	zm_buf_reset(&m->status_text);
	zm_buf_reset(&m->hb);
	zm_buf_reset(&m->tb);
	zm_buf_reset(&m->body);
	m->nh = m->nhead = 0;
	m->hdr_bytes = 0;
	m->in_value = m->headers_done = m->complete = false;
	m->too_big = m->body_too_big = m->bad_header = false;
	m->prev_lf = m->prev_cr = m->hdr_end = m->interim = m->started = false;
	m->status = 0;
	if (llhttp_get_errno(&m->p) == HPE_PAUSED)
		llhttp_resume(&m->p);
}

void wp_msg_free(struct wp_msg *m)
{
	zm_buf_free(&m->method);
	zm_buf_free(&m->url);
	zm_buf_free(&m->status_text);
	zm_buf_free(&m->hb);
	zm_buf_free(&m->tb);
	zm_buf_free(&m->body);
}

/*
 * llhttp (built without strict mode) accepts obs-fold (a header line
 * starting with SP/HTAB, handed over unfolded), a bare LF as a line end,
 * and a CR followed by any byte as the blank line that ends the headers
 * ("\r\n\rX": X is eaten, what follows is the next message). A proxy may
 * refuse all three (RFC 9112 2.2, 5.2) and we do: a peer behind us may
 * split lines differently. Only the header block is scanned: up to the
 * CRLF CRLF that ends it (the body may hold anything). prev_lf stays set
 * over the CR of a blank line, so LF after (LF, CR) is its end; empty lines
 * before the start line (RFC 9112 2.2 lets them lead) end nothing.
 */
static bool bad_framing(struct wp_msg *m, const char *d, size_t n)
{
	for (size_t i = 0; i < n && !m->hdr_end; i++) {
		char ch = d[i];

		if (m->prev_cr && ch != '\n')
			return true;	/* bare CR */
		if (ch == '\n' && !m->prev_cr)
			return true;	/* bare LF */
		if (m->prev_lf && !m->prev_cr && (ch == ' ' || ch == '\t'))
			return true;	/* obs-fold */
		if (ch == '\n' && m->prev_lf && m->started)
			m->hdr_end = true;	/* the blank line: the headers are over */
		if (ch != '\r' && ch != '\n')
			m->started = true;
		m->prev_lf = ch == '\n' || (ch == '\r' && m->prev_lf);
		m->prev_cr = ch == '\r';
	}
	return false;
}

long wp_msg_feed(struct wp_msg *m, const char *d, size_t n)
{
	llhttp_errno_t err;
	size_t done = 0;

again:
	if (!m->headers_done && bad_framing(m, d + done, n - done)) {
		m->bad_header = true;
		return -EBADMSG;
	}
	err = llhttp_execute(&m->p, d + done, n - done);

	if (err == HPE_OK)
		return (long)n;
	if (err == HPE_PAUSED && m->interim) {
		/* After a 1xx: the final response's header block gets the same scan. */
		done = (size_t)(llhttp_get_error_pos(&m->p) - d);
		m->interim = m->prev_lf = m->prev_cr = m->hdr_end = m->started = false;
		llhttp_resume(&m->p);
		goto again;
	}
	if (err == HPE_PAUSED)
		return (long)(llhttp_get_error_pos(&m->p) - d);
	if (err == HPE_PAUSED_UPGRADE) {
		/* Upgrade / CONNECT are not proxied: treat as the end of input. */
		m->complete = true;
		m->status = m->p.status_code;
		return (long)(llhttp_get_error_pos(&m->p) - d);
	}
	return -EBADMSG;
}

int wp_msg_eof(struct wp_msg *m)
{
	if (llhttp_finish(&m->p) == HPE_OK && m->headers_done) {
		m->complete = true;
		m->status = m->p.status_code;
		return 0;
	}
	return m->complete ? 0 : -EBADMSG;
}

size_t wp_msg_fields(struct wp_msg *m)
{
	const char *b = zm_buf_data(&m->hb);

	size_t n = m->headers_done ? m->nhead : m->nh;

	for (size_t i = 0; i < n; i++)
		m->f[i] = (struct zm_http_field){ b + m->hs[i].noff, m->hs[i].nlen,
						  b + m->hs[i].voff, m->hs[i].vlen };
	return n;
}

size_t wp_msg_trailers(const struct wp_msg *m, struct zm_http_field *out, size_t max)
{
	const char *b = zm_buf_data(&m->tb);
	size_t n = 0;

	for (size_t i = m->nhead; m->complete && i < m->nh && n < max; i++)
		out[n++] = (struct zm_http_field){ b + m->hs[i].noff, m->hs[i].nlen,
						   b + m->hs[i].voff, m->hs[i].vlen };
	return n;
}

const char *wp_msg_header(struct wp_msg *m, const char *name, char *buf, size_t bufsz, size_t *len)
{
	const char *b = zm_buf_data(&m->hb);
	size_t nl = strlen(name), o = 0, n = m->headers_done ? m->nhead : m->nh;
	bool found = false;

	for (size_t i = 0; i < n; i++) {
		if (m->hs[i].nlen != nl || memcmp(b + m->hs[i].noff, name, nl))
			continue;
		if (found && o + 2 < bufsz) {
			memcpy(buf + o, ", ", 2);
			o += 2;
		}
		found = true;
		for (uint32_t k = 0; k < m->hs[i].vlen && o + 1 < bufsz; k++)
			buf[o++] = b[m->hs[i].voff + k];
	}
	if (!found)
		return NULL;
	buf[o] = '\0';
	*len = o;
	return buf;
}

const char *wp_reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 418: return "I'm a teapot";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

bool wp_hop_by_hop(const char *name, size_t len)
{
	static const char *const hop[] = {
		"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding",
		"upgrade", "content-length", "trailer", "expect", "http2-settings", NULL,
	};

	for (int i = 0; hop[i]; i++)
		if (strlen(hop[i]) == len && !strncasecmp(hop[i], name, len))
			return true;
	return false;
}
