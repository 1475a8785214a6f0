/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server_name of a TLS ClientHello read off the wire without
 * terminating TLS (an ingress gateway's PASSTHROUGH servers). Pure: bytes
 * in, name out; never trusts a length field.
 */
#ifndef ZMESH_TLS_SNI_H
#define ZMESH_TLS_SNI_H

#include <stddef.h>
#include <stdint.h>

/*
 * @b/@n: the first bytes of a connection. Returns 0 with the host name in
 * @out (NUL-terminated; no control characters, spaces or '/'), -EAGAIN when
 * the first record is not complete yet (read more, up to 16 KiB + 5),
 * -ENOENT for a ClientHello without server_name, -EPROTO when it is not a
 * TLS handshake record holding a whole ClientHello, or the name is bad or
 * does not fit @sz.
 */
int zm_tls_hello_sni(const uint8_t *b, size_t n, char *out, size_t sz);

#endif
