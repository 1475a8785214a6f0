// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the waypoint's HTTP/1 message parser (userspace/waypoint/
 * http1.c), requests and upstream responses. Besides "no crash, no leak" it
 * checks what request smuggling needs broken, and aborts when it breaks:
 *
 * - The outcome does not depend on how the bytes arrive: the input parsed
 *   in one read and split into reads of 1..64 bytes gives the same method,
 *   target, status, header fields, body, consumed length and verdict. (A
 *   parser whose line-ending or framing state is lost between reads reads
 *   one stream two ways: the front end and the backend disagree.)
 * - A message it accepts has only valid field names and values, in its
 *   head and its chunked trailers
 *   (http_safe.h: no CR, LF, NUL, obs-fold), never both Content-Length and
 *   Transfer-Encoding, at most one Content-Length, and no bare LF or
 *   obs-fold anywhere in its header block.
 *
 * Input: byte 0 picks request or response (and HEAD for a response) and
 * the read size of the split parse; the rest is the wire bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../../userspace/waypoint/waypoint.h"
#include "zmesh/buf.h"
#include "zmesh/http_safe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BODY_LIMIT 1024

static void put(struct zm_buf *out, const char *d, size_t n)
{
	if (n)
		zm_buf_append(out, d, n);
}

/* The status line at @d (@n bytes) is a 1xx one. */
static bool interim(const char *d, size_t n)
{
	int code = 0;
	size_t i = 9;

	if (n < 13 || memcmp(d, "HTTP/1.", 7))
		return false;
	for (; i < n && i < 13 && d[i] >= '0' && d[i] <= '9'; i++)
		code = code * 10 + (d[i] - '0');
	return code >= 100 && code < 200;
}

/* Parse the first message of @d, @step bytes per read (0: all at once), and
 * describe the outcome in @out. */
static void fuzz_http1_parse(const char *d, size_t n, size_t step, uint8_t sel, struct zm_buf *out)
{
	struct wp_msg m;
	size_t off = 0;
	long r = 0;

	wp_msg_init(&m, (sel & 1) ? HTTP_RESPONSE : HTTP_REQUEST, FUZZ_BODY_LIMIT);
	m.head_response = (sel & 3) == 3;
	while (off < n && !m.complete) {
		size_t k = step && n - off > step ? step : n - off;

		r = wp_msg_feed(&m, d + off, k);
		if (r < 0)
			break;
		off += (size_t)r;
		if (!m.complete && (size_t)r != k)
			abort();	/* a short read without a complete message */
	}
	if (r >= 0 && !m.complete && (sel & 1))
		r = wp_msg_eof(&m) ? -1 : 0;
	if (r < 0) {
		/* Refused either way. Which answer (431, 413, 400) may depend
		 * on which of two faults a read reached first: not compared. */
		zm_buf_printf(out, "error\n");
		goto out;
	}
	zm_buf_printf(out, "ok complete=%d consumed=%zu status=%d\n", m.complete, m.complete ? off : 0,
		      m.status);
	put(out, zm_buf_data(&m.method), zm_buf_len(&m.method));
	put(out, " ", 1);
	put(out, zm_buf_data(&m.url), zm_buf_len(&m.url));
	put(out, "\n", 1);
	if (m.complete) {
		size_t nf = wp_msg_fields(&m), ncl = 0, nte = 0;

		for (size_t i = 0; i < nf; i++) {
			const struct zm_http_field *f = &m.f[i];

			if (!zm_http_name_valid(f->name, f->name_len) ||
			    !zm_http_value_valid(f->value, f->value_len))
				abort();	/* an invalid field got through */
			if (zm_http_name_eq(f->name, f->name_len, "content-length", 14))
				ncl++;
			if (zm_http_name_eq(f->name, f->name_len, "transfer-encoding", 17))
				nte++;
			put(out, f->name, f->name_len);
			put(out, ": ", 2);
			put(out, f->value, f->value_len);
			put(out, "\n", 1);
		}
		if (ncl > 1 || (ncl && nte))
			abort();	/* ambiguous framing accepted */
		nf = wp_msg_trailers(&m, m.f, WP_MAX_HEADERS);
		for (size_t i = 0; i < nf; i++) {
			const struct zm_http_field *f = &m.f[i];

			if (!zm_http_name_valid(f->name, f->name_len) ||
			    !zm_http_value_valid(f->value, f->value_len))
				abort();	/* an invalid trailer field got through */
			put(out, "trailer ", 8);
			put(out, f->name, f->name_len);
			put(out, ": ", 2);
			put(out, f->value, f->value_len);
			put(out, "\n", 1);
		}
	}
	for (size_t pos = 0; m.complete;) {
		while (pos + 1 < off && d[pos] == '\r' && d[pos + 1] == '\n')
			pos += 2;	/* empty lines may lead */
		/* Each accepted header block (1xx ones, then the final one) ends
		 * with CRLF CRLF and has no bare CR or LF and no obs-fold. */
		const char *end = memmem(d + pos, off - pos, "\r\n\r\n", 4);
		size_t e;

		if (!end)
			abort();
		e = (size_t)(end - d) + 2;
		for (size_t i = pos; i < e; i++)
			if ((d[i] == '\n' && (i == pos || d[i - 1] != '\r')) ||
			    (d[i] == '\r' && d[i + 1] != '\n') ||
			    (i > pos && d[i - 1] == '\n' && (d[i] == ' ' || d[i] == '\t')))
				abort();
		if (!(sel & 1) || !interim(d + pos, e - pos))
			break;
		pos = e + 2;	/* an interim response: its final one follows */
	}
	put(out, zm_buf_data(&m.body), zm_buf_len(&m.body));
out:
	wp_msg_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zm_buf whole = { 0 }, split = { 0 };
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	fuzz_http1_parse((const char *)data + 1, size - 1, 0, sel, &whole);
	fuzz_http1_parse((const char *)data + 1, size - 1, (size_t)(sel >> 2) + 1, sel, &split);
	if (zm_buf_len(&whole) != zm_buf_len(&split) ||
	    (zm_buf_len(&whole) && memcmp(zm_buf_data(&whole), zm_buf_data(&split), zm_buf_len(&whole)))) {
		fprintf(stderr, "one read:\n%.*s\nsplit reads of %u:\n%.*s\n", (int)zm_buf_len(&whole),
			zm_buf_data(&whole), (sel >> 2) + 1, (int)zm_buf_len(&split), zm_buf_data(&split));
		abort();	/* the parse depends on how the bytes arrived */
	}
	zm_buf_free(&whole);
	zm_buf_free(&split);
	return 0;
}
