/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small blocking HTTP/1.1 client for background work that must never sit
 * on a request path: fetching JWKS documents (jwksUri), posting trace spans
 * to a Zipkin collector. One request per connection (`Connection: close`),
 * the response parsed with llhttp (Content-Length, chunked or
 * close-delimited), everything under one deadline.
 *
 * https:// is TLS 1.2 or newer (OpenSSL), the server chain verified against
 * the system trust store or, when @ca_file is set, against that file only,
 * and the server name checked against the certificate (DNS SAN, or IP SAN
 * for an address literal: SSL_set1_host / X509_VERIFY_PARAM_set1_ip_asc).
 * A failed verification fails the request, with OpenSSL's reason in @e
 * ("https://h/p: TLS: certificate verify failed: unable to get local
 * issuer certificate"). There is no way to turn verification off.
 *
 * Not for the proxies' data path: name resolution is getaddrinfo (its own
 * timeouts, not the deadline), one connection per call.
 */
#ifndef ZMESH_HTTPC_H
#define ZMESH_HTTPC_H

#include <stddef.h>

#include "zmesh/buf.h"
#include "zmesh/log.h"

struct zm_httpc_opts {
	const char *ca_file;		/* https: trust only these roots (PEM); NULL: the system store */
	int timeout_ms;			/* the whole exchange, connect included; 0: 5000 */
	size_t max_body;		/* a longer answer fails with -EFBIG; 0: 1 MiB */
	const char *content_type;	/* sent with a request body; NULL: application/json */
	const char *accept;		/* NULL: none sent */
};

/* A parsed URL: http or https, host (brackets removed), port, path + query. */
struct zm_url {
	int tls;
	char host[256];
	char port[8];
	char path[2048];
};

/* Parse an absolute http(s) URL. 0, or -EINVAL with @e naming what is wrong. */
int zm_url_parse(const char *url, struct zm_url *u, struct zm_error *e);

/*
 * @method @url with @body (NULL/0: none). On 0 the whole answer was read:
 * *@status is its code (any, 1xx excluded) and @resp_body (may be NULL) holds
 * its body. Otherwise a negative errno: -EINVAL (bad URL), -EHOSTUNREACH
 * (cannot resolve), -ECONNREFUSED and other connect errors, -ETIMEDOUT,
 * -EPROTO (TLS failure, verification included, or a malformed answer),
 * -EFBIG (answer over max_body), -ENOMEM; @e says which and why.
 */
int zm_httpc_request(const char *method, const char *url, const void *body, size_t blen,
		     const struct zm_httpc_opts *o, int *status, struct zm_buf *resp_body,
		     struct zm_error *e);

#endif /* ZMESH_HTTPC_H */
