// SPDX-License-Identifier: Apache-2.0
/* Istio authorization value matchers, header safety and CIDRs. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "zmesh/authz_match.h"
#include "zmesh/http_safe.h"
#include "../harness/test.h"

#define S(x) x, sizeof(x) - 1

struct mcase {
	const char *pat, *val;	/* val NULL: absent */
	unsigned flags;
	bool match;
};

TEST(match_strings)
{
	static const struct mcase t[] = {
		{ "/admin", "/admin", 0, true },
		{ "/admin", "/admin/", 0, false },
		{ "/admin", "/Admin", 0, false },
		{ "/admin*", "/admin", 0, true },
		{ "/admin*", "/admin/x", 0, true },
		{ "/admin*", "/adm", 0, false },
		{ "*.html", "/x.html", 0, true },
		{ "*.html", ".html", 0, true },
		{ "*.html", "/x.htm", 0, false },
		{ "*", "x", 0, true },
		{ "*", "", 0, false },
		{ "*", NULL, 0, false },
		{ "/a", NULL, 0, false },
		{ "", "", 0, true },
		{ "a*b", "a*b", 0, true },
		{ "a*b", "axxb", 0, false },
		{ "*a*", "xa*", 0, true },
		{ "*a*", "xax", 0, false },
		{ "**", "*", 0, true },
		{ "**", "x", 0, false },
		{ "Example.COM", "example.com", ZM_MATCH_ICASE, true },
		{ "*.Example.com", "api.EXAMPLE.com", ZM_MATCH_ICASE, true },
		{ "example.com", "example.com.", ZM_MATCH_ICASE, false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!EXPECT_EQ(zm_authz_match(t[i].pat, strlen(t[i].pat), t[i].val,
					      t[i].val ? strlen(t[i].val) : 0, t[i].flags),
			       t[i].match))
			test_log("case %zu: \"%s\" vs \"%s\"", i, t[i].pat, t[i].val ? t[i].val : "(absent)");
	/* A NUL inside the value is a byte, not the end (CVE-2025-66220). */
	EXPECT_FALSE(zm_authz_match(S("/admin"), S("/admin\0.png"), 0));
	EXPECT_FALSE(zm_authz_match(S("*.png"), S("/admin\0"), 0));
	EXPECT_TRUE(zm_authz_match(S("/admin*"), S("/admin\0.png"), 0));
	EXPECT_FALSE(zm_authz_match(S("ab"), S("aB"), 0));
	EXPECT_FALSE(zm_authz_match(S("a\0b"), S("a\0c"), 0));
	EXPECT_FALSE(zm_authz_match(S("A\0B"), S("a\0c"), ZM_MATCH_ICASE));
}

TEST(match_pattern_valid)
{
	EXPECT_TRUE(zm_authz_pattern_valid(S("*")));
	EXPECT_TRUE(zm_authz_pattern_valid(S("/a*")));
	EXPECT_TRUE(zm_authz_pattern_valid(S("*.a")));
	EXPECT_TRUE(zm_authz_pattern_valid(S("/a")));
	EXPECT_FALSE(zm_authz_pattern_valid(S("")));
	EXPECT_FALSE(zm_authz_pattern_valid(S("/a*b")));
	EXPECT_FALSE(zm_authz_pattern_valid(S("*a*")));
	EXPECT_FALSE(zm_authz_pattern_valid(S("**")));
}

TEST(match_hosts_and_methods)
{
	/* CVE-2021-39155: Host compares case-insensitively. */
	EXPECT_TRUE(zm_authz_match_host(S("httpbin.foo"), S("HttpBin.Foo")));
	/* The port is part of the value, as in Istio. */
	EXPECT_FALSE(zm_authz_match_host(S("httpbin.foo"), S("httpbin.foo:8000")));
	EXPECT_TRUE(zm_authz_match_host(S("httpbin.foo:*"), S("HTTPBIN.foo:8000")));
	EXPECT_FALSE(zm_authz_match_host(S("httpbin.foo"), NULL, 0));

	EXPECT_TRUE(zm_authz_match_method(S("GET"), S("GET")));
	EXPECT_FALSE(zm_authz_match_method(S("get"), S("GET")));
	EXPECT_FALSE(zm_authz_match_method(S("GET"), S("get")));
	EXPECT_FALSE(zm_authz_match_method(S("GET"), S("GETX")));
	EXPECT_TRUE(zm_http_method_valid(S("GET")));
	EXPECT_TRUE(zm_http_method_valid(S("M-SEARCH")));
	EXPECT_FALSE(zm_http_method_valid(S("get")));
	EXPECT_FALSE(zm_http_method_valid(S("Get")));
	EXPECT_FALSE(zm_http_method_valid(S("")));
	EXPECT_FALSE(zm_http_method_valid(S("GET ")));
	EXPECT_FALSE(zm_http_method_valid(S("GE\0T")));
}

TEST(match_headers)
{
	const struct zm_http_field h[] = {
		{ S("Host"), S("a.example") },
		{ S("X-Role"), S("user") },
		{ S("content-type"), S("text/plain") },
		{ S("x-role"), S("admin") },
		{ S("X-Empty"), S("") },
	};
	size_t n = sizeof(h) / sizeof(h[0]);
	char buf[64];
	size_t len;

	ASSERT_OK(zm_http_header_join(h, n, S("X-ROLE"), buf, sizeof(buf), &len));
	EXPECT_STREQ(buf, "user, admin");
	EXPECT_EQ(len, 11);
	/* Exact "admin" must not match when a second value hides behind it. */
	EXPECT_EQ(zm_authz_match_header(S("admin"), h, n, S("x-role")), 0);
	EXPECT_EQ(zm_authz_match_header(S("user, admin"), h, n, S("x-role")), 1);
	EXPECT_EQ(zm_authz_match_header(S("*admin"), h, n, S("X-Role")), 1);
	EXPECT_EQ(zm_authz_match_header(S("text/*"), h, n, S("Content-Type")), 1);
	EXPECT_EQ(zm_authz_match_header(S("*"), h, n, S("x-missing")), 0);
	EXPECT_EQ(zm_authz_match_header(S("*"), h, n, S("x-empty")), 0);
	EXPECT_EQ(zm_http_header_join(h, n, S("x-missing"), buf, sizeof(buf), &len), -ENOENT);
	EXPECT_EQ(zm_http_header_join(h, n, S("x-role"), buf, 11, &len), -ENOSPC);
	EXPECT_OK(zm_http_header_join(h, n, S("x-role"), buf, 12, &len));
}

TEST(match_header_too_long_is_error)
{
	static char big[ZM_AUTHZ_HEADER_MAX];
	struct zm_http_field h[2] = {
		{ S("x-a"), big, sizeof(big) - 1 },
		{ S("x-a"), S("zz") },
	};

	memset(big, 'a', sizeof(big));
	EXPECT_EQ(zm_authz_match_header(S("*"), h, 1, S("x-a")), 1);
	EXPECT_EQ(zm_authz_match_header(S("*"), h, 2, S("x-a")), -ENOSPC);
}

struct ccase {
	const char *cidr, *addr;
	bool match;
};

static bool cidr_has(const char *cidr, const char *addr)
{
	struct zm_cidr c;
	uint8_t a[16];
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;

	if (zm_cidr_parse(cidr, strlen(cidr), &c) || inet_pton(fam, addr, a) != 1)
		return false;
	return zm_cidr_match(&c, fam, a);
}

TEST(match_cidr)
{
	static const struct ccase t[] = {
		{ "10.0.0.0/8", "10.1.2.3", true },
		{ "10.0.0.0/8", "11.1.2.3", false },
		{ "10.1.2.3", "10.1.2.3", true },
		{ "10.1.2.3", "10.1.2.4", false },
		{ "10.1.2.3/16", "10.1.9.9", true },	/* host bits cleared */
		{ "0.0.0.0/0", "1.2.3.4", true },
		{ "192.168.1.128/25", "192.168.1.127", false },
		{ "192.168.1.128/25", "192.168.1.200", true },
		{ "10.0.0.0/8", "::ffff:10.9.9.9", true },	/* v4-mapped peer */
		{ "10.0.0.0/8", "::ffff:11.9.9.9", false },
		{ "10.0.0.0/8", "::10.9.9.9", false },
		{ "2001:db8::/32", "2001:db8:1::5", true },
		{ "2001:db8::/32", "2001:db9::5", false },
		{ "fe80::/10", "febf::1", true },
		{ "fe80::/10", "fec0::1", false },
		{ "::1", "::1", true },
		{ "::/0", "10.1.2.3", false },	/* families never mix otherwise */
		{ "::ffff:10.0.0.0/104", "10.1.2.3", false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!EXPECT_EQ(cidr_has(t[i].cidr, t[i].addr), t[i].match))
			test_log("case %zu: %s in %s", i, t[i].addr, t[i].cidr);
}

TEST(match_cidr_parse_errors)
{
	static const char *const bad[] = {
		"", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8 ", " 10.0.0.0/8",
		"10.0.0/8", "::/129", "10.0.0.0/08", "10.0.0.0/1a", "host.example", "1.2.3.4/8/8",
		"10.0.0.0/0008",
	};
	struct zm_cidr c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!EXPECT_EQ(zm_cidr_parse(bad[i], strlen(bad[i]), &c), -EINVAL))
			test_log("accepted \"%s\"", bad[i]);
	EXPECT_EQ(zm_cidr_parse(S("10.0.0.1\0/8"), &c), -EINVAL);
	ASSERT_OK(zm_cidr_parse(S("10.255.255.255/8"), &c));
	EXPECT_EQ(c.prefix, 8);
	EXPECT_EQ(c.addr[1], 0);
	ASSERT_OK(zm_cidr_parse(S("10.0.0.0/0"), &c));
	EXPECT_EQ(c.addr[0], 0);
}

TEST(header_validation)
{
	EXPECT_TRUE(zm_http_name_valid(S("X-Request-Id")));
	EXPECT_FALSE(zm_http_name_valid(S("")));
	EXPECT_FALSE(zm_http_name_valid(S("X Bad")));
	EXPECT_FALSE(zm_http_name_valid(S("X-Bad:")));
	EXPECT_FALSE(zm_http_name_valid(S("X\r\nY")));
	EXPECT_FALSE(zm_http_name_valid(S("X\0Y")));
	EXPECT_TRUE(zm_http2_name_valid(S("x-request-id")));
	EXPECT_FALSE(zm_http2_name_valid(S("X-Request-Id")));

	EXPECT_TRUE(zm_http_value_valid(S("text/plain; q=0.5")));
	EXPECT_TRUE(zm_http_value_valid(S("")));
	EXPECT_TRUE(zm_http_value_valid(S("a\tb")));
	EXPECT_TRUE(zm_http_value_valid(S("caf\xc3\xa9")));
	EXPECT_FALSE(zm_http_value_valid(S("a\r\nX-Injected: 1")));
	EXPECT_FALSE(zm_http_value_valid(S("a\nb")));
	EXPECT_FALSE(zm_http_value_valid(S("a\rb")));
	EXPECT_FALSE(zm_http_value_valid(S("a\0b")));
	EXPECT_FALSE(zm_http_value_valid(S("a\r\n b")));	/* obs-fold */
	EXPECT_FALSE(zm_http_value_valid(S(" a")));
	EXPECT_FALSE(zm_http_value_valid(S("a ")));
	EXPECT_FALSE(zm_http_value_valid(S("a\x7f")));
}

TEST(header_strip_internal)
{
	struct zm_http_field h[] = {
		{ S("Host"), S("a") },
		{ S("X-Envoy-Retry-On"), S("5xx") },
		{ S("x-envoy-upstream-rq-timeout-ms"), S("1") },
		{ S("X-Forwarded-Client-Cert"), S("By=spiffe://evil") },
		{ S("x-zmesh-identity"), S("spiffe://cluster.local/ns/x/sa/admin") },
		{ S("x-istio-attributes"), S("x") },
		{ S("x-envoyish"), S("kept") },
		{ S("x-request-id"), S("kept") },
	};
	struct zm_http_field copy[sizeof(h) / sizeof(h[0])];
	size_t n = sizeof(h) / sizeof(h[0]), m;

	memcpy(copy, h, sizeof(h));
	m = zm_http_strip_internal(copy, n, ZM_PEER_UNTRUSTED);
	ASSERT_EQ(m, 3);
	EXPECT_TRUE(zm_http_name_eq(copy[0].name, copy[0].name_len, S("host")));
	EXPECT_TRUE(zm_http_name_eq(copy[1].name, copy[1].name_len, S("x-envoyish")));
	EXPECT_TRUE(zm_http_name_eq(copy[2].name, copy[2].name_len, S("x-request-id")));

	memcpy(copy, h, sizeof(h));
	m = zm_http_strip_internal(copy, n, ZM_PEER_TRUSTED_XFCC);
	ASSERT_EQ(m, 4);
	EXPECT_TRUE(zm_http_name_eq(copy[1].name, copy[1].name_len, S("x-forwarded-client-cert")));
	EXPECT_TRUE(zm_http_header_is_internal(S("X-ENVOY-"), 0));
	EXPECT_FALSE(zm_http_header_is_internal(S("x-envoy"), 0));
}

TEST(log_escape_attacker_text)
{
	char out[64];
	const char evil[] = "GET /\r\n2026-01-01 INFO forged \"line\"\x1b[31m";

	zm_http_log_escape(out, sizeof(out), evil, sizeof(evil) - 1);
	EXPECT_TRUE(strchr(out, '\n') == NULL);
	EXPECT_TRUE(strchr(out, '\r') == NULL);
	EXPECT_TRUE(strchr(out, '\x1b') == NULL);
	EXPECT_STRSTR(out, "\\x0d\\x0a");
	EXPECT_LT(strlen(out), sizeof(out));
}
