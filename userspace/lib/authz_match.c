// SPDX-License-Identifier: Apache-2.0
/* Istio AuthorizationPolicy value matchers; see authz_match.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "zmesh/authz_match.h"

/* memcmp, or ASCII case-insensitive: strncasecmp would stop at a NUL byte. */
static bool bytes_eq(const char *a, const char *b, size_t n, bool icase)
{
	if (!icase)
		return !memcmp(a, b, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (y >= 'A' && y <= 'Z')
			y += 32;
		if (x != y)
			return false;
	}
	return true;
}

bool zm_authz_match(const char *pat, size_t plen, const char *val, size_t vlen,
		    unsigned flags)
{
	bool icase = flags & ZM_MATCH_ICASE;

	if (!pat || !val)
		return false;
	if (plen == 1 && pat[0] == '*')
		return vlen > 0;
	if (plen > 0 && pat[0] == '*')
		return vlen >= plen - 1 &&
		       bytes_eq(pat + 1, val + vlen - (plen - 1), plen - 1, icase);
	if (plen > 0 && pat[plen - 1] == '*')
		return vlen >= plen - 1 && bytes_eq(pat, val, plen - 1, icase);
	return vlen == plen && bytes_eq(pat, val, plen, icase);
}

bool zm_authz_pattern_valid(const char *pat, size_t plen)
{
	size_t stars = 0;

	if (!pat || !plen)
		return false;
	if (plen == 1)
		return true;
	for (size_t i = 0; i < plen; i++)
		if (pat[i] == '*') {
			if (i != 0 && i != plen - 1)
				return false;
			stars++;
		}
	return stars <= 1;
}

bool zm_authz_match_host(const char *pat, size_t plen, const char *host, size_t hlen)
{
	return zm_authz_match(pat, plen, host, hlen, ZM_MATCH_ICASE);
}

bool zm_authz_match_method(const char *pat, size_t plen, const char *method, size_t mlen)
{
	return zm_authz_match(pat, plen, method, mlen, 0);
}

bool zm_http_method_valid(const char *method, size_t len)
{
	if (!method || !len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = method[i];

		if (!((c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

int zm_http_header_join(const struct zm_http_field *fields, size_t n,
			const char *name, size_t nlen, char *out, size_t outsz,
			size_t *outlen)
{
	size_t o = 0;
	bool found = false;

	if (!outsz)
		return -ENOSPC;
	out[0] = 0;
	*outlen = 0;
	for (size_t i = 0; i < n; i++) {
		const struct zm_http_field *f = &fields[i];

		if (!f->name || !zm_http_name_eq(f->name, f->name_len, name, nlen))
			continue;
		if (found) {
			if (o + 2 >= outsz)
				return -ENOSPC;
			out[o++] = ',';
			out[o++] = ' ';
		}
		if (f->value_len && (!f->value || o + f->value_len >= outsz))
			return -ENOSPC;
		if (f->value_len)
			memcpy(out + o, f->value, f->value_len);
		o += f->value_len;
		found = true;
	}
	if (!found)
		return -ENOENT;
	out[o] = 0;
	*outlen = o;
	return 0;
}

int zm_authz_match_header(const char *pat, size_t plen, const struct zm_http_field *fields,
			  size_t n, const char *name, size_t nlen)
{
	char *buf = malloc(ZM_AUTHZ_HEADER_MAX + 1);
	size_t len;
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = zm_http_header_join(fields, n, name, nlen, buf, ZM_AUTHZ_HEADER_MAX + 1, &len);
	if (rc == -ENOENT)
		rc = 0;
	else if (rc == 0)
		rc = zm_authz_match(pat, plen, buf, len, 0) ? 1 : 0;
	free(buf);
	return rc;
}

int zm_cidr_parse(const char *s, size_t len, struct zm_cidr *out)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	const char *slash;
	size_t alen;
	unsigned long prefix = 0;
	bool has_prefix;
	unsigned max;

	if (!s || !out || !len || len >= sizeof(tmp) || memchr(s, 0, len))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	slash = memchr(s, '/', len);
	has_prefix = slash != NULL;
	alen = has_prefix ? (size_t)(slash - s) : len;
	memcpy(tmp, s, alen);
	tmp[alen] = 0;
	if (inet_pton(AF_INET, tmp, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	if (has_prefix) {
		size_t plen = len - alen - 1;

		if (plen < 1 || plen > 3)
			return -EINVAL;
		for (size_t i = 0; i < plen; i++) {
			char c = slash[1 + i];

			if (c < '0' || c > '9')
				return -EINVAL;
			prefix = prefix * 10 + (unsigned long)(c - '0');
		}
		if (prefix > max || (plen > 1 && slash[1] == '0'))
			return -EINVAL;
	} else {
		prefix = max;
	}
	out->prefix = (unsigned)prefix;
	for (unsigned bit = out->prefix; bit < max; bit++)
		out->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rem = bits % 8;

	if (memcmp(a, b, bytes))
		return false;
	if (rem) {
		uint8_t mask = (uint8_t)(0xff << (8 - rem));

		return (a[bytes] & mask) == (b[bytes] & mask);
	}
	return true;
}

bool zm_cidr_match(const struct zm_cidr *c, int family, const void *addr)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const uint8_t *a = addr;

	if (!c || !addr)
		return false;
	if (family == AF_INET6 && c->family == AF_INET && !memcmp(a, mapped, 12)) {
		a += 12;
		family = AF_INET;
	}
	if (family != c->family || (family != AF_INET && family != AF_INET6))
		return false;
	return prefix_eq(c->addr, a, c->prefix);
}
