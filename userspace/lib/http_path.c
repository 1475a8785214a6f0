// SPDX-License-Identifier: Apache-2.0
/* Path normalization for authorization and forwarding; see http_path.h. */
#include <errno.h>
#include <string.h>

#include "zmesh/http_path.h"

static const char hexu[] = "0123456789ABCDEF";

struct zm_path_opts zm_path_opts_istio(enum zm_istio_path_normalization mode)
{
	struct zm_path_opts o = { 0 };

	switch (mode) {
	case ZM_ISTIO_PATH_NONE:
		break;
	case ZM_ISTIO_PATH_DECODE_AND_MERGE_SLASHES:
		o.escaped_slash = ZM_PATH_SLASH_DECODE;
		/* fallthrough */
	case ZM_ISTIO_PATH_MERGE_SLASHES:
		o.merge_slashes = true;
		/* fallthrough */
	case ZM_ISTIO_PATH_BASE:
	default:
		o.normalize = true;
		o.backslash_to_slash = true;
		break;
	}
	return o;
}

int zm_istio_path_normalization_parse(const char *name)
{
	static const char *const names[] = { "NONE", "BASE", "MERGE_SLASHES",
					     "DECODE_AND_MERGE_SLASHES" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return (int)i;
	return -EINVAL;
}

const char *zm_path_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -EINVAL:
		return "malformed path (bad percent-encoding, NUL or control byte)";
	case -EPERM:
		return "escaped slash (%2F or %5C) in path";
	case -ENOSPC:
		return "path too long";
	default:
		return "invalid path";
	}
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Bytes that may never appear raw in a request-target. */
static bool forbidden_raw(unsigned char c)
{
	return c <= 0x20 || c == 0x7f;
}

/* Appends with a bound check; the caller keeps one byte for the NUL. */
#define PUT(c)                                                  \
	do {                                                    \
		if (o + 1 >= out_sz)                            \
			return -ENOSPC;                         \
		out[o++] = (char)(c);                           \
	} while (0)

static int put_escape(char *out, size_t out_sz, size_t *op, unsigned char v)
{
	size_t o = *op;

	if (o + 3 >= out_sz)
		return -ENOSPC;
	out[o++] = '%';
	out[o++] = hexu[v >> 4];
	out[o++] = hexu[v & 15];
	*op = o;
	return 0;
}

/*
 * Step 2-4: copy the path part, decoding/validating escapes. Returns the
 * number of bytes written or a negative errno.
 */
static long decode_path(const char *in, size_t len, char *out, size_t out_sz,
			const struct zm_path_opts *opts)
{
	size_t o = 0;
	int rc;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '%') {
			int hi, lo;
			unsigned char v;

			if (i + 2 >= len)
				return -EINVAL;
			hi = hexval((unsigned char)in[i + 1]);
			lo = hexval((unsigned char)in[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			v = (unsigned char)(hi << 4 | lo);
			i += 2;
			if (v == 0)
				return -EINVAL;
			if (!opts->normalize) {
				/* NONE: forward the escape exactly as sent. */
				if (o + 3 >= out_sz)
					return -ENOSPC;
				memcpy(out + o, in + i - 2, 3);
				o += 3;
				continue;
			}
			if (unreserved(v)) {
				PUT(v);
				continue;
			}
			if (v == '/' || v == '\\') {
				if (opts->escaped_slash == ZM_PATH_SLASH_REJECT)
					return -EPERM;
				if (opts->escaped_slash == ZM_PATH_SLASH_DECODE) {
					PUT(v == '\\' && opts->backslash_to_slash ? '/' : v);
					continue;
				}
			}
			rc = put_escape(out, out_sz, &o, v);
			if (rc)
				return rc;
			continue;
		}
		if (forbidden_raw(c))
			return -EINVAL;
		if (c >= 0x80) {
			rc = put_escape(out, out_sz, &o, c);
			if (rc)
				return rc;
			continue;
		}
		if (c == '\\' && opts->normalize && opts->backslash_to_slash)
			c = '/';
		PUT(c);
	}
	return (long)o;
}

/*
 * Step 5, in place on p[0..n) which starts with '/'. Writes never overtake
 * reads: each segment is written at most as long as it was read.
 */
static size_t remove_dot_segments(char *p, size_t n)
{
	size_t r = 1, w = 0;	/* read past the leading '/'; write from 0 */

	for (;;) {
		size_t s = r, e = r;
		bool last;

		while (e < n && p[e] != '/')
			e++;
		last = e >= n;
		if (e - s == 1 && p[s] == '.') {
			if (last)
				p[w++] = '/';
		} else if (e - s == 2 && p[s] == '.' && p[s + 1] == '.') {
			while (w > 0 && p[w - 1] != '/')
				w--;
			if (w > 0)
				w--;	/* drop the '/' that led the popped segment */
			if (last)
				p[w++] = '/';
		} else {
			p[w++] = '/';
			memmove(p + w, p + s, e - s);
			w += e - s;
		}
		if (last)
			break;
		r = e + 1;
	}
	if (w == 0)
		p[w++] = '/';
	return w;
}

static size_t merge_slashes(char *p, size_t n)
{
	size_t w = 0;

	for (size_t r = 0; r < n; r++) {
		if (p[r] == '/' && w > 0 && p[w - 1] == '/')
			continue;
		p[w++] = p[r];
	}
	return w;
}

int zm_http_path_normalize(const char *in, size_t in_len, char *out, size_t out_sz,
			   const struct zm_path_opts *opts, struct zm_path_result *res)
{
	size_t plen = 0, qend, o;
	long n;

	if (!in || !out || !opts || !res || !out_sz)
		return -EINVAL;
	res->path_len = res->len = 0;
	out[0] = 0;

	/* The fragment goes first: a '?' after '#' is part of the fragment. */
	qend = in_len;
	for (size_t i = 0; i < in_len; i++)
		if (in[i] == '#') {
			qend = i;
			break;
		}
	while (plen < qend && in[plen] != '?')
		plen++;

	if (plen == 1 && in[0] == '*' && qend == 1) {
		if (out_sz < 2)
			return -ENOSPC;
		out[0] = '*';
		out[1] = 0;
		res->path_len = res->len = 1;
		return 0;
	}
	if (plen == 0 || in[0] != '/')
		return -EINVAL;

	n = decode_path(in, plen, out, out_sz, opts);
	if (n < 0)
		return (int)n;
	o = (size_t)n;
	if (opts->normalize)
		o = remove_dot_segments(out, o);
	if (opts->merge_slashes)
		o = merge_slashes(out, o);
	res->path_len = o;

	/* The query is forwarded as sent, except that raw bytes >= 0x80 are
	 * percent-encoded like in the path; it still must not smuggle bytes. */
	for (size_t i = plen; i < qend; i++) {
		unsigned char c = (unsigned char)in[i];

		if (forbidden_raw(c))
			return -EINVAL;
		if (c >= 0x80) {
			int rc = put_escape(out, out_sz, &o, c);

			if (rc)
				return rc;
			continue;
		}
		if (o + 1 >= out_sz)
			return -ENOSPC;
		out[o++] = (char)c;
	}
	out[o] = 0;
	res->len = o;
	return 0;
}
