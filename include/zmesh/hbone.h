/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE: HTTP/2 CONNECT tunnels over mutual TLS 1.3 (Istio ambient's wire),
 * without I/O: the caller moves ciphertext (zm_hbone_input / zm_hbone_output),
 * so the same code serves an epoll or io_uring loop and tests in memory.
 *
 * Client: zm_hbone_open() sends CONNECT with :authority = the original
 * ip:port and the given headers (baggage, forwarded, traceparent); on_response
 * brings the status. Server: on_connect decides (return 200 to accept, 0 to
 * decide later with zm_hbone_respond(), or an error status); no tunnel byte
 * reaches on_data before the stream is answered 200 (early data is held,
 * bounded, then delivered, or dropped with the stream). Non-CONNECT requests
 * get 405. ALPN must be h2. Limits: 100 concurrent streams, 16 KiB of
 * headers, bounded per-stream buffers, and rapid reset: a client that resets
 * streams before they are answered (burst 100, then 33/s) gets GOAWAY
 * ENHANCE_YOUR_CALM; resets after the answer are a client's normal close.
 */
#ifndef ZMESH_HBONE_H
#define ZMESH_HBONE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZM_HBONE_MAX_STREAMS 100
#define ZM_HBONE_STREAM_BUF (256 * 1024)	/* per stream and direction */

struct zm_hbone;

struct zm_hbone_hdr {
	const char *name, *value;
};

struct zm_hbone_cbs {
	int (*on_connect)(void *ud, struct zm_hbone *h, int32_t stream, const char *authority,
			  const struct zm_hbone_hdr *hdrs, size_t nhdrs);
	void (*on_response)(void *ud, struct zm_hbone *h, int32_t stream, int status);
	void (*on_data)(void *ud, struct zm_hbone *h, int32_t stream, const uint8_t *d, size_t n);
	void (*on_end)(void *ud, struct zm_hbone *h, int32_t stream);
	void (*on_close)(void *ud, struct zm_hbone *h, int32_t stream, uint32_t error_code);
};

int zm_hbone_new(SSL_CTX *ctx, bool server, const struct zm_hbone_cbs *cbs, void *ud,
		 struct zm_hbone **out);
/*
 * ZM_HBONE_MANUAL_WINDOW: HTTP/2 flow control follows the consumer. Bytes
 * handed to on_data count against the stream's and the connection's
 * receive windows until the caller says they left (zm_hbone_consume(),
 * e.g. once written to the app's socket), so a slow reader holds back its
 * own stream's sender instead of growing a buffer. A stream that closes
 * gives its unconsumed bytes back to the connection window. Without the
 * flag the library acknowledges data as it arrives.
 */
#define ZM_HBONE_MANUAL_WINDOW 0x1u
int zm_hbone_new_ex(SSL_CTX *ctx, bool server, unsigned flags, const struct zm_hbone_cbs *cbs, void *ud,
		    struct zm_hbone **out);
/* @n bytes of @stream's data were consumed (ZM_HBONE_MANUAL_WINDOW; else a no-op). */
int zm_hbone_consume(struct zm_hbone *h, int32_t stream, size_t n);
void zm_hbone_free(struct zm_hbone *h);
/* Ciphertext from the peer. -EPROTO when the connection is beyond repair
 * (TLS failure, not HTTP/2, flood): close it. */
int zm_hbone_input(struct zm_hbone *h, const void *data, size_t n);
/* Ciphertext to send: *data and its length (0: nothing); then consumed(). */
size_t zm_hbone_output(struct zm_hbone *h, const void **data);
void zm_hbone_consumed(struct zm_hbone *h, size_t n);
bool zm_hbone_ready(struct zm_hbone *h);	/* handshake done, HTTP/2 up */
/* True once the peer was sent GOAWAY for resetting too many unanswered streams. */
bool zm_hbone_flooded(const struct zm_hbone *h);
SSL *zm_hbone_ssl(struct zm_hbone *h);
/* Streams that may still be opened on this connection (pooling). */
int zm_hbone_capacity(struct zm_hbone *h);

int zm_hbone_open(struct zm_hbone *h, const char *authority, const struct zm_hbone_hdr *hdrs,
		  size_t nhdrs, int32_t *stream);
int zm_hbone_respond(struct zm_hbone *h, int32_t stream, int status);
/* Queue tunnel bytes; -ENOBUFS when the stream's buffer is full (back off). */
int zm_hbone_send(struct zm_hbone *h, int32_t stream, const void *d, size_t n);
int zm_hbone_end(struct zm_hbone *h, int32_t stream);	/* half-close */
int zm_hbone_reset(struct zm_hbone *h, int32_t stream);

#endif
