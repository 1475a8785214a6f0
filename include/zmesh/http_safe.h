/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Header safety for the waypoint: what may be forwarded, what must be
 * stripped from untrusted peers, and how attacker-controlled text reaches a
 * log line.
 *
 * - Names are RFC 9110 tokens (tchar+). Values are field-content: VCHAR,
 *   obs-text (0x80-0xff), SP and HTAB inside; no CR, LF, NUL or other
 *   control byte anywhere (request smuggling / header injection), and no
 *   leading or trailing whitespace (the parser must have trimmed OWS). An
 *   obs-fold (CRLF followed by SP/HTAB) contains CR/LF and is therefore
 *   rejected, as RFC 9112 section 5.2 allows for a proxy.
 * - Internal headers (CVE-2024-45806): a peer is untrusted unless the
 *   caller says otherwise; nothing is trusted by default (Envoy's old
 *   default of trusting RFC 1918 sources was the bug). From an untrusted
 *   peer the waypoint drops every header whose name starts with
 *   "x-envoy-", "x-zmesh-" or "x-istio-" (retry/timeout/trace overrides,
 *   internal markers, Istio's metadata exchange), and
 *   "x-forwarded-client-cert" (a forged client identity) unless the peer is
 *   trusted to set it. Names compare case-insensitively.
 * - Logs (CVE-2024-45808): every attacker-controlled string (path, Host,
 *   SNI, header values, JWT claims) goes through zm_http_log_escape() (which
 *   is zm_log_escape() from log.h: quotes, backslash, control and non-ASCII
 *   bytes become \xHH, length-bounded) before it is written to a text log
 *   line; JSON logs use include/zmesh/json.h's string escaping.
 */
#ifndef ZMESH_HTTP_SAFE_H
#define ZMESH_HTTP_SAFE_H

#include <stdbool.h>
#include <stddef.h>

#include "zmesh/log.h"

/* One header field as the parser hands it over: explicit lengths, no NUL. */
struct zm_http_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* True when @name is a non-empty RFC 9110 token (HTTP/1 field name). */
bool zm_http_name_valid(const char *name, size_t len);
/*
 * HTTP/2 and HTTP/3 field names must additionally be lower case
 * (RFC 9113 8.2.1); pseudo-headers (":path") are the parser's business.
 */
bool zm_http2_name_valid(const char *name, size_t len);
/* True when @value is valid field-content (may be empty); see above. */
bool zm_http_value_valid(const char *value, size_t len);

/* Case-insensitive comparison of header names with explicit lengths. */
bool zm_http_name_eq(const char *a, size_t alen, const char *b, size_t blen);

/* Who sent the request, as far as header trust goes. */
enum zm_http_peer_trust {
	ZM_PEER_UNTRUSTED = 0,		/* default: strip every internal header */
	ZM_PEER_TRUSTED_XFCC = 1,	/* may set x-forwarded-client-cert (e.g. our own gateway) */
};

/* True when @name must not be accepted from a peer with @trust. */
bool zm_http_header_is_internal(const char *name, size_t len, unsigned trust);

/*
 * Remove internal headers from @fields in place (order kept) and return the
 * new count. NULL names are kept out as well.
 */
size_t zm_http_strip_internal(struct zm_http_field *fields, size_t n, unsigned trust);

/* zm_log_escape() under the name the L7 code uses; see log.h. */
static inline char *zm_http_log_escape(char *out, size_t outsz, const char *in, size_t len)
{
	return zm_log_escape(out, outsz, in, len);
}

#endif /* ZMESH_HTTP_SAFE_H */
