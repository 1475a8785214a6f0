/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer with a read side and a write side, for socket I/O
 * and for building messages (h2o's buffer idea).
 *
 * The readable bytes are data[0..len) where data = base + off. Writers call
 * zm_buf_reserve() to get room at the tail, write there, then
 * zm_buf_commit() what they wrote; readers consume from the front with
 * zm_buf_consume(). When everything is consumed the buffer rewinds, so a
 * connection's buffer reaches a steady size and stops allocating.
 * zm_buf_reset() empties it but keeps the memory (reuse per request);
 * zm_buf_free() releases it.
 *
 * The buffer does not bound itself: callers that take bytes from a peer
 * check zm_buf_len() against their own limit before appending.
 * Appending keeps one spare byte and a NUL after the data, so a buffer that
 * holds text can be used as a C string through zm_buf_cstr().
 *
 * A zero-initialised struct zm_buf is a valid empty buffer.
 */
#ifndef ZMESH_BUF_H
#define ZMESH_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct zm_buf {
	char *base;	/* allocation, NULL while empty and never grown */
	size_t off;	/* start of unread data in base */
	size_t len;	/* bytes of unread data */
	size_t cap;	/* size of base */
};

/* The unread bytes and their count. */
static inline char *zm_buf_data(const struct zm_buf *b) { return b->base ? b->base + b->off : NULL; }
static inline size_t zm_buf_len(const struct zm_buf *b) { return b->len; }

/*
 * Make room for at least @n more bytes after the data and return where they
 * go (NULL on allocation failure; the buffer is unchanged then). The room
 * stays valid until the next call that grows, consumes or frees.
 */
char *zm_buf_reserve(struct zm_buf *b, size_t n);
/* Account @n bytes written into the room zm_buf_reserve() returned. */
void zm_buf_commit(struct zm_buf *b, size_t n);

/* Append bytes, a string, or printf output. 0 or -ENOMEM. */
int zm_buf_append(struct zm_buf *b, const void *d, size_t n);
int zm_buf_puts(struct zm_buf *b, const char *s);
int zm_buf_printf(struct zm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int zm_buf_vprintf(struct zm_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Drop @n bytes (at most len) from the front. */
void zm_buf_consume(struct zm_buf *b, size_t n);
/* Drop bytes from the end so @n remain (no-op when len <= n). */
void zm_buf_truncate(struct zm_buf *b, size_t n);
/* Empty, keeping the allocation. */
void zm_buf_reset(struct zm_buf *b);
/* Release the memory; the buffer is empty and reusable afterwards. */
void zm_buf_free(struct zm_buf *b);
/*
 * The data as a NUL-terminated string ("" for an empty buffer). Embedded
 * NULs are the caller's business. NULL only when the terminator could not
 * be allocated.
 */
const char *zm_buf_cstr(struct zm_buf *b);

#endif /* ZMESH_BUF_H */
