// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <string.h>

#include "zmesh/tls_sni.h"

static size_t be16(const uint8_t *p)
{
	return (size_t)((p[0] << 8) | p[1]);
}

int zm_tls_hello_sni(const uint8_t *b, size_t n, char *out, size_t sz)
{
	size_t end, p, hl;

	if (n >= 1 && b[0] != 0x16)
		return -EPROTO;			/* not a handshake record */
	if (n >= 2 && b[1] != 3)
		return -EPROTO;
	if (n < 5)
		return -EAGAIN;
	end = 5 + be16(b + 3);
	if (be16(b + 3) == 0 || be16(b + 3) > 16384)
		return -EPROTO;
	if (n < end)
		return -EAGAIN;
	p = 5;
	/* handshake header: type 1 (ClientHello), length 3, all in this record */
	if (p + 4 > end || b[p] != 1 || b[p + 1] != 0)
		return -EPROTO;
	hl = be16(b + p + 2);
	if (p + 4 + hl > end)
		return -EPROTO;			/* split over records: not handled */
	end = p + 4 + hl;
	p += 4 + 2 + 32;			/* version, random */
	if (p + 1 > end)
		return -EPROTO;
	p += 1 + b[p];				/* session id */
	if (p + 2 > end)
		return -EPROTO;
	p += 2 + be16(b + p);			/* cipher suites */
	if (p + 1 > end)
		return -EPROTO;
	p += 1 + b[p];				/* compression methods */
	if (p > end)
		return -EPROTO;
	if (p + 2 > end)
		return p == end ? -ENOENT : -EPROTO;	/* no extensions at all */
	if (p + 2 + be16(b + p) > end)
		return -EPROTO;
	end = p + 2 + be16(b + p);
	p += 2;
	while (p + 4 <= end) {
		size_t type = be16(b + p), len = be16(b + p + 2), q = p + 4, nl;

		if (q + len > end)
			return -EPROTO;
		if (type == 0) {
			/* server_name_list length 2, name_type 0 (host_name), length 2, name */
			if (len < 5 || be16(b + q) != len - 2 || b[q + 2] != 0)
				return -EPROTO;
			nl = be16(b + q + 3);
			if (nl == 0 || nl + 5 > len || nl >= sz)
				return -EPROTO;
			for (size_t i = 0; i < nl; i++)
				if (b[q + 5 + i] <= ' ' || b[q + 5 + i] >= 0x7f || b[q + 5 + i] == '/')
					return -EPROTO;
			memcpy(out, b + q + 5, nl);
			out[nl] = '\0';
			return 0;
		}
		p = q + len;
	}
	return p == end ? -ENOENT : -EPROTO;
}
