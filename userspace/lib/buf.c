// SPDX-License-Identifier: Apache-2.0
/* Growable byte buffer; see include/zmesh/buf.h. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/buf.h"

char *zm_buf_reserve(struct zm_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	/* +1: room for the NUL that zm_buf_cstr() and appends keep. */
	if (n > SIZE_MAX / 2 - b->len - 1)
		return NULL;
	need = b->len + n + 1;
	if (b->off + need <= b->cap)
		return b->base + b->off + b->len;
	/* Slide the data to the front before growing: consumed space is free. */
	if (need <= b->cap) {
		memmove(b->base, b->base + b->off, b->len);
		b->off = 0;
		return b->base + b->len;
	}
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (b->off == 0) {
		p = realloc(b->base, cap);
		if (!p)
			return NULL;
	} else {
		p = malloc(cap);
		if (!p)
			return NULL;
		if (b->len)
			memcpy(p, b->base + b->off, b->len);
		free(b->base);
	}
	b->base = p;
	b->cap = cap;
	b->off = 0;
	return b->base + b->len;
}

void zm_buf_commit(struct zm_buf *b, size_t n)
{
	b->len += n;
	if (b->base && b->off + b->len < b->cap)
		b->base[b->off + b->len] = 0;
}

int zm_buf_append(struct zm_buf *b, const void *d, size_t n)
{
	char *p = zm_buf_reserve(b, n);

	if (!p)
		return -ENOMEM;
	if (n)
		memcpy(p, d, n);
	zm_buf_commit(b, n);
	return 0;
}

int zm_buf_puts(struct zm_buf *b, const char *s)
{
	return zm_buf_append(b, s, strlen(s));
}

int zm_buf_vprintf(struct zm_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	char *p;
	int n;

	va_copy(ap2, ap);
	p = zm_buf_reserve(b, 64);
	if (!p) {
		va_end(ap2);
		return -ENOMEM;
	}
	n = vsnprintf(p, 64 + 1, fmt, ap);
	if (n < 0) {
		va_end(ap2);
		return -EINVAL;
	}
	if (n > 64) {
		p = zm_buf_reserve(b, (size_t)n);
		if (!p) {
			va_end(ap2);
			return -ENOMEM;
		}
		vsnprintf(p, (size_t)n + 1, fmt, ap2);
	}
	va_end(ap2);
	zm_buf_commit(b, (size_t)n);
	return 0;
}

int zm_buf_printf(struct zm_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = zm_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void zm_buf_consume(struct zm_buf *b, size_t n)
{
	if (n >= b->len) {
		b->off = b->len = 0;
		if (b->base)
			b->base[0] = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

void zm_buf_truncate(struct zm_buf *b, size_t n)
{
	if (n < b->len) {
		b->len = n;
		b->base[b->off + n] = 0;
	}
}

void zm_buf_reset(struct zm_buf *b)
{
	zm_buf_consume(b, b->len);
}

void zm_buf_free(struct zm_buf *b)
{
	free(b->base);
	memset(b, 0, sizeof(*b));
}

const char *zm_buf_cstr(struct zm_buf *b)
{
	if (!b->base && !zm_buf_reserve(b, 0))
		return NULL;
	b->base[b->off + b->len] = 0;
	return b->base + b->off;
}
