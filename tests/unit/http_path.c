// SPDX-License-Identifier: Apache-2.0
/* Path normalization table: the CVE-2021-31920 / -39156 bypass shapes and
 * every option, checked against what the backend must see. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "zmesh/http_path.h"
#include "../harness/test.h"

enum { NONE, BASE, MERGE, DECODE, REJECT };

struct pcase {
	int mode;
	const char *in;
	size_t in_len;		/* 0: strlen(in) */
	int rc;
	const char *path;	/* what rules match */
	const char *fwd;	/* what the backend sees */
};

static struct zm_path_opts opts_for(int mode)
{
	struct zm_path_opts o;

	switch (mode) {
	case NONE: return zm_path_opts_istio(ZM_ISTIO_PATH_NONE);
	case BASE: return zm_path_opts_istio(ZM_ISTIO_PATH_BASE);
	case MERGE: return zm_path_opts_istio(ZM_ISTIO_PATH_MERGE_SLASHES);
	case DECODE: return zm_path_opts_istio(ZM_ISTIO_PATH_DECODE_AND_MERGE_SLASHES);
	default:
		o = zm_path_opts_istio(ZM_ISTIO_PATH_MERGE_SLASHES);
		o.escaped_slash = ZM_PATH_SLASH_REJECT;
		return o;
	}
}

static const struct pcase cases[] = {
	/* plain */
	{ MERGE, "/", 0, 0, "/", "/" },
	{ MERGE, "/api/v1/items", 0, 0, "/api/v1/items", "/api/v1/items" },
	{ MERGE, "/a/", 0, 0, "/a/", "/a/" },
	/* CVE-2021-31920 shapes */
	{ MERGE, "//admin", 0, 0, "/admin", "/admin" },
	{ BASE, "//admin", 0, 0, "//admin", "//admin" },
	{ MERGE, "///admin///x", 0, 0, "/admin/x", "/admin/x" },
	{ MERGE, "/./admin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/api/../admin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/api/v1/../../admin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/../../../admin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/api/%2e%2e/admin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/api/%2E%2e/admin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/api/.%2e/admin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/%2e/admin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/api/..%2fadmin", 0, 0, "/api/..%2Fadmin", "/api/..%2Fadmin" },
	{ DECODE, "/api/..%2fadmin", 0, 0, "/admin", "/admin" },
	{ DECODE, "/api%2F..%2Fadmin", 0, 0, "/admin", "/admin" },
	{ REJECT, "/api/..%2fadmin", 0, -EPERM, NULL, NULL },
	{ REJECT, "/a%5cb", 0, -EPERM, NULL, NULL },
	{ MERGE, "/a%2Fb", 0, 0, "/a%2Fb", "/a%2Fb" },
	{ MERGE, "/a%2fb", 0, 0, "/a%2Fb", "/a%2Fb" },
	{ DECODE, "/a%2fb", 0, 0, "/a/b", "/a/b" },
	{ DECODE, "/a%2f%2fb", 0, 0, "/a/b", "/a/b" },
	{ DECODE, "/a%5cb", 0, 0, "/a/b", "/a/b" },
	{ MERGE, "/a%5cb", 0, 0, "/a%5Cb", "/a%5Cb" },
	/* backslash */
	{ BASE, "\\admin", 0, -EINVAL, NULL, NULL },
	{ BASE, "/\\admin", 0, 0, "//admin", "//admin" },
	{ MERGE, "/\\admin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/api\\..\\admin", 0, 0, "/admin", "/admin" },
	{ NONE, "/api\\..\\admin", 0, 0, "/api\\..\\admin", "/api\\..\\admin" },
	/* unreserved decoding, once */
	{ MERGE, "/%41dmin", 0, 0, "/Admin", "/Admin" },
	{ MERGE, "/%61dmin", 0, 0, "/admin", "/admin" },
	{ MERGE, "/%7e%7Euser", 0, 0, "/~~user", "/~~user" },
	{ MERGE, "/a%2db%5fc%30", 0, 0, "/a-b_c0", "/a-b_c0" },
	{ MERGE, "/%252e%252e/admin", 0, 0, "/%252e%252e/admin", "/%252e%252e/admin" },
	{ MERGE, "/a%3fb", 0, 0, "/a%3Fb", "/a%3Fb" },
	{ MERGE, "/a%20b", 0, 0, "/a%20b", "/a%20b" },
	{ MERGE, "/caf\xc3\xa9", 0, 0, "/caf%C3%A9", "/caf%C3%A9" },
	/* trailing dot segments keep the directory */
	{ MERGE, "/a/b/..", 0, 0, "/a/", "/a/" },
	{ MERGE, "/a/b/.", 0, 0, "/a/b/", "/a/b/" },
	{ MERGE, "/a/b/%2e", 0, 0, "/a/b/", "/a/b/" },
	{ MERGE, "/..", 0, 0, "/", "/" },
	{ MERGE, "/.", 0, 0, "/", "/" },
	{ MERGE, "/a/...", 0, 0, "/a/...", "/a/..." },
	{ MERGE, "/a/..b/.c", 0, 0, "/a/..b/.c", "/a/..b/.c" },
	/* Envoy order: dot segments before merging slashes */
	{ MERGE, "/a//../b", 0, 0, "/a/b", "/a/b" },
	{ BASE, "/a//../b", 0, 0, "/a/b", "/a/b" },
	/* query and fragment */
	{ MERGE, "/admin?x=/../y", 0, 0, "/admin", "/admin?x=/../y" },
	{ MERGE, "/public/../admin?a=1", 0, 0, "/admin", "/admin?a=1" },
	{ MERGE, "/admin#frag", 0, 0, "/admin", "/admin" },
	{ MERGE, "/admin#/../public", 0, 0, "/admin", "/admin" },
	{ MERGE, "/admin?q=1#f", 0, 0, "/admin", "/admin?q=1" },
	{ MERGE, "/a#?b", 0, 0, "/a", "/a" },
	{ MERGE, "/a?", 0, 0, "/a", "/a?" },
	{ MERGE, "/a?b%zz", 0, 0, "/a", "/a?b%zz" },
	{ MERGE, "/a?b c", 0, -EINVAL, NULL, NULL },
	{ MERGE, "/a?q=caf\xc3\xa9", 0, 0, "/a", "/a?q=caf%C3%A9" },
	/* %00, NUL and invalid escapes */
	{ MERGE, "/admin%00.html", 0, -EINVAL, NULL, NULL },
	{ NONE, "/admin%00", 0, -EINVAL, NULL, NULL },
	{ MERGE, "/admin\0x", 8, -EINVAL, NULL, NULL },
	{ MERGE, "/a%zz", 0, -EINVAL, NULL, NULL },
	{ MERGE, "/a%4", 0, -EINVAL, NULL, NULL },
	{ MERGE, "/a%", 0, -EINVAL, NULL, NULL },
	{ NONE, "/a%", 0, -EINVAL, NULL, NULL },
	{ MERGE, "/a\r\nX-Evil: 1", 0, -EINVAL, NULL, NULL },
	{ MERGE, "/a b", 0, -EINVAL, NULL, NULL },
	{ MERGE, "/a\x7f", 0, -EINVAL, NULL, NULL },
	/* not origin-form */
	{ MERGE, "", 0, -EINVAL, NULL, NULL },
	{ MERGE, "admin", 0, -EINVAL, NULL, NULL },
	{ MERGE, "?a=1", 0, -EINVAL, NULL, NULL },
	{ MERGE, "http://h/admin", 0, -EINVAL, NULL, NULL },
	{ MERGE, "*", 0, 0, "*", "*" },
	/* NONE forwards as sent (but still drops the fragment) */
	{ NONE, "//a/../b%2f%41#x", 0, 0, "//a/../b%2f%41", "//a/../b%2f%41" },
};

TEST(path_table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase *c = &cases[i];
		struct zm_path_opts o = opts_for(c->mode);
		struct zm_path_result res;
		char out[256];
		size_t len = c->in_len ? c->in_len : strlen(c->in);
		int rc = zm_http_path_normalize(c->in, len, out, sizeof(out), &o, &res);

		if (!EXPECT_EQ(rc, c->rc)) {
			test_log("case %zu: \"%s\" mode %d: rc %d (%s)", i, c->in, c->mode, rc,
				 zm_path_strerror(rc));
			continue;
		}
		if (rc)
			continue;
		EXPECT_EQ(res.len, strlen(out));
		if (!EXPECT_TRUE(res.path_len == strlen(c->path) &&
				 !memcmp(out, c->path, res.path_len)) ||
		    !EXPECT_STREQ(out, c->fwd))
			test_log("case %zu: \"%s\" mode %d -> \"%s\" (path_len %zu)", i, c->in,
				 c->mode, out, res.path_len);
	}
}

/* Normalizing twice changes nothing: what we forward re-normalizes to itself,
 * so a second proxy with the same settings cannot see another path. */
TEST(path_idempotent)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase *c = &cases[i];
		struct zm_path_opts o = opts_for(c->mode);
		struct zm_path_result r1, r2;
		char o1[256], o2[256];
		size_t len = c->in_len ? c->in_len : strlen(c->in);

		if (c->rc || c->mode == NONE)
			continue;
		ASSERT_OK(zm_http_path_normalize(c->in, len, o1, sizeof(o1), &o, &r1));
		if (!EXPECT_OK(zm_http_path_normalize(o1, r1.len, o2, sizeof(o2), &o, &r2)))
			continue;
		EXPECT_STREQ(o2, o1);
	}
}

TEST(path_bounded_output)
{
	struct zm_path_opts o = opts_for(MERGE);
	struct zm_path_result res;
	char out[16];
	char big[64];

	memset(out, 'Z', sizeof(out));
	/* 4 bytes of UTF-8 need 12 bytes encoded + '/' + NUL. */
	EXPECT_EQ(zm_http_path_normalize("/\xc3\xa9\xc3\xa9", 5, out, 13, &o, &res), -ENOSPC);
	EXPECT_EQ(out[13], 'Z');
	EXPECT_OK(zm_http_path_normalize("/\xc3\xa9\xc3\xa9", 5, out, 14, &o, &res));
	EXPECT_STREQ(out, "/%C3%A9%C3%A9");
	EXPECT_EQ(zm_http_path_normalize("/abc", 4, out, 4, &o, &res), -ENOSPC);
	EXPECT_OK(zm_http_path_normalize("/abc", 4, out, 5, &o, &res));
	EXPECT_EQ(zm_http_path_normalize("/a?bcdef", 8, out, 8, &o, &res), -ENOSPC);
	EXPECT_EQ(zm_http_path_normalize("*", 1, out, 1, &o, &res), -ENOSPC);
	/* 3x the input always fits. */
	memset(big, 0xff, sizeof(big));
	big[0] = '/';
	{
		char out3[3 * sizeof(big) + 1];

		EXPECT_OK(zm_http_path_normalize(big, sizeof(big), out3, sizeof(out3), &o, &res));
		EXPECT_EQ(res.len, 1 + 3 * (sizeof(big) - 1));
	}
}

TEST(path_istio_names)
{
	EXPECT_EQ(zm_istio_path_normalization_parse("NONE"), ZM_ISTIO_PATH_NONE);
	EXPECT_EQ(zm_istio_path_normalization_parse("BASE"), ZM_ISTIO_PATH_BASE);
	EXPECT_EQ(zm_istio_path_normalization_parse("MERGE_SLASHES"), ZM_ISTIO_PATH_MERGE_SLASHES);
	EXPECT_EQ(zm_istio_path_normalization_parse("DECODE_AND_MERGE_SLASHES"),
		  ZM_ISTIO_PATH_DECODE_AND_MERGE_SLASHES);
	EXPECT_EQ(zm_istio_path_normalization_parse("base"), -EINVAL);
	EXPECT_STRSTR(zm_path_strerror(-EPERM), "escaped slash");
}
