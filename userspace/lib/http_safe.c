// SPDX-License-Identifier: Apache-2.0
/* Header validation and internal-header stripping; see http_safe.h. */
#include <string.h>
#include <strings.h>

#include "zmesh/http_safe.h"

static bool tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool zm_http_name_valid(const char *name, size_t len)
{
	if (!name || !len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!tchar((unsigned char)name[i]))
			return false;
	return true;
}

bool zm_http2_name_valid(const char *name, size_t len)
{
	if (!zm_http_name_valid(name, len))
		return false;
	for (size_t i = 0; i < len; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			return false;
	return true;
}

bool zm_http_value_valid(const char *value, size_t len)
{
	if (!len)
		return true;
	if (!value)
		return false;
	if (value[0] == ' ' || value[0] == '\t' || value[len - 1] == ' ' || value[len - 1] == '\t')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

bool zm_http_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && (alen == 0 || !strncasecmp(a, b, alen));
}

static bool has_prefix_ci(const char *s, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix);

	return len >= pl && !strncasecmp(s, prefix, pl);
}

bool zm_http_header_is_internal(const char *name, size_t len, unsigned trust)
{
	static const char *const prefixes[] = { "x-envoy-", "x-zmesh-", "x-istio-" };

	if (!name)
		return true;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (has_prefix_ci(name, len, prefixes[i]))
			return true;
	if (!(trust & ZM_PEER_TRUSTED_XFCC) &&
	    zm_http_name_eq(name, len, "x-forwarded-client-cert", 23))
		return true;
	return false;
}

size_t zm_http_strip_internal(struct zm_http_field *fields, size_t n, unsigned trust)
{
	size_t w = 0;

	for (size_t r = 0; r < n; r++) {
		if (zm_http_header_is_internal(fields[r].name, fields[r].name_len, trust))
			continue;
		fields[w++] = fields[r];
	}
	return w;
}
