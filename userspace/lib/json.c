// SPDX-License-Identifier: Apache-2.0
/* JSON writer; see include/zmesh/json.h. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "zmesh/json.h"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	/* Overlongs, surrogates and values past U+10FFFF are invalid. */
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return n;
}

static int escape(struct zm_buf *b, const char *s, size_t len, int quote)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	/* Worst case: every byte becomes \u00XX (6 bytes), plus quotes. */
	char *o = len <= (SIZE_MAX - 2) / 6 ? zm_buf_reserve(b, len * 6 + 2) : NULL;
	char *start = o;

	if (!o)
		return -ENOMEM;
	if (quote)
		*o++ = '"';
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t n;

		if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
			*o++ = (char)c;
			i++;
			continue;
		}
		switch (c) {
		case '"': *o++ = '\\'; *o++ = '"'; i++; continue;
		case '\\': *o++ = '\\'; *o++ = '\\'; i++; continue;
		case '\n': *o++ = '\\'; *o++ = 'n'; i++; continue;
		case '\r': *o++ = '\\'; *o++ = 'r'; i++; continue;
		case '\t': *o++ = '\\'; *o++ = 't'; i++; continue;
		default: break;
		}
		n = c >= 0x80 ? utf8_seq(p + i, len - i) : 0;
		if (n > 1) {
			memcpy(o, p + i, n);
			o += n;
			i += n;
			continue;
		}
		memcpy(o, "\\u00", 4);
		o[4] = hex[c >> 4];
		o[5] = hex[c & 15];
		o += 6;
		i++;
	}
	if (quote)
		*o++ = '"';
	zm_buf_commit(b, (size_t)(o - start));
	return 0;
}

int zm_json_str(struct zm_buf *b, const char *s, size_t len)
{
	return escape(b, s, len, 1);
}

int zm_json_escape(struct zm_buf *b, const char *s, size_t len)
{
	return escape(b, s, len, 0);
}

int zm_json_kv_str(struct zm_buf *b, int first, const char *key, const char *val)
{
	int rc = first ? 0 : zm_buf_append(b, ",", 1);

	if (!rc)
		rc = zm_json_str(b, key, strlen(key));
	if (!rc)
		rc = zm_buf_append(b, ":", 1);
	if (!rc)
		rc = zm_json_str(b, val ? val : "", val ? strlen(val) : 0);
	return rc;
}

int zm_json_kv_int(struct zm_buf *b, int first, const char *key, long long val)
{
	int rc = first ? 0 : zm_buf_append(b, ",", 1);

	if (!rc)
		rc = zm_json_str(b, key, strlen(key));
	if (!rc)
		rc = zm_buf_printf(b, ":%lld", val);
	return rc;
}
