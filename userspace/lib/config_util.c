// SPDX-License-Identifier: Apache-2.0
/* Value syntax for the config model: durations, RE2 regexes, host names,
 * addresses, Kubernetes names. Pure functions, no allocation. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"

/* ---- durations ------------------------------------------------------------ */

static const struct {
	const char *unit;
	int64_t ns;
} dur_units[] = {
	{ "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 },
	{ "ms", 1000000 }, { "s", ZM_NS_PER_S }, { "m", 60 * ZM_NS_PER_S },
	{ "h", 3600 * ZM_NS_PER_S },
};

int zm_duration_parse(const char *s, int64_t *out)
{
	__int128 total = 0;

	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "0")) {
		*out = 0;
		return 0;
	}
	while (*s) {
		unsigned __int128 ip = 0, fp = 0, scale = 1;
		bool digits = false;
		size_t best = 0;
		int64_t unit = 0;

		while (isdigit((unsigned char)*s)) {
			ip = ip * 10 + (unsigned)(*s++ - '0');
			digits = true;
			if (ip > (unsigned __int128)INT64_MAX)
				return -ERANGE;
		}
		if (*s == '.') {
			s++;
			while (isdigit((unsigned char)*s)) {
				if (scale < 1000000000000000000ULL) {
					fp = fp * 10 + (unsigned)(*s - '0');
					scale *= 10;
				}
				s++;
				digits = true;
			}
		}
		if (!digits)
			return -EINVAL;
		/* Longest unit that matches ("ms" before "m"). */
		for (size_t i = 0; i < sizeof(dur_units) / sizeof(dur_units[0]); i++) {
			size_t l = strlen(dur_units[i].unit);

			if (l > best && !strncmp(s, dur_units[i].unit, l)) {
				best = l;
				unit = dur_units[i].ns;
			}
		}
		if (!best)
			return -EINVAL;
		s += best;
		total += (__int128)ip * unit + (__int128)(fp * (unsigned __int128)unit / scale);
		if (total > INT64_MAX)
			return -ERANGE;
	}
	*out = (int64_t)total;
	return 0;
}

void zm_duration_format(int64_t ns, char *out, size_t outsz)
{
	long long v = ns;

	if (v == 0)
		snprintf(out, outsz, "0s");
	else if (v % (3600 * ZM_NS_PER_S) == 0)
		snprintf(out, outsz, "%lldh", v / (3600 * ZM_NS_PER_S));
	else if (v % (60 * ZM_NS_PER_S) == 0)
		snprintf(out, outsz, "%lldm", v / (60 * ZM_NS_PER_S));
	else if (v % ZM_NS_PER_S == 0)
		snprintf(out, outsz, "%llds", v / ZM_NS_PER_S);
	else if (v < ZM_NS_PER_S && v % ZM_NS_PER_MS == 0)
		snprintf(out, outsz, "%lldms", v / ZM_NS_PER_MS);
	else if (v < ZM_NS_PER_MS && v % 1000 == 0)
		snprintf(out, outsz, "%lldus", v / 1000);
	else if (v < ZM_NS_PER_MS)
		snprintf(out, outsz, "%lldns", v);
	else {
		char frac[16];
		int l;

		snprintf(frac, sizeof(frac), "%09lld", v % ZM_NS_PER_S);
		for (l = 9; l > 1 && frac[l - 1] == '0'; l--)
			;
		frac[l] = 0;
		snprintf(out, outsz, "%lld.%ss", v / ZM_NS_PER_S, frac);
	}
}

/* ---- RE2 syntax --------------------------------------------------------------- */

/*
 * A recursive-descent reading of RE2's grammar (re2/syntax): it accepts what
 * RE2 accepts and names what RE2 refuses (backreferences, lookaround, atomic
 * groups, possessive and stacked repetition, \Z...). Depth is capped as RE2
 * caps it (1000), so hostile input cannot exhaust the stack.
 */
struct rx {
	const char *s;
	size_t i;
	int depth;
	const char *err;
};

#define RX_MAX_DEPTH 1000
#define RX_MAX_REPEAT 1000

static bool rx_repeat_at(const char *s, size_t i, long *lo, long *hi, size_t *end)
{
	/* {n}, {n,}, {n,m}; anything else is a literal '{' in RE2. */
	long a = 0, b;
	size_t j = i + 1;

	if (s[i] != '{' || !isdigit((unsigned char)s[j]))
		return false;
	while (isdigit((unsigned char)s[j])) {
		if (a <= 100000)
			a = a * 10 + (s[j] - '0');
		j++;
	}
	b = a;
	if (s[j] == ',') {
		j++;
		if (s[j] == '}')
			b = -1;
		else {
			if (!isdigit((unsigned char)s[j]))
				return false;
			b = 0;
			while (isdigit((unsigned char)s[j])) {
				if (b <= 100000)
					b = b * 10 + (s[j] - '0');
				j++;
			}
		}
	}
	if (s[j] != '}')
		return false;
	*lo = a;
	*hi = b;
	*end = j + 1;
	return true;
}

static void rx_escape(struct rx *r, bool in_class)
{
	char c = r->s[++r->i];

	if (!c) {
		r->err = "trailing backslash at end of expression";
		return;
	}
	r->i++;
	if (c >= '1' && c <= '9') {
		r->err = "backreferences are not supported in RE2";
		return;
	}
	if (c == '0') {
		for (int k = 0; k < 2 && r->s[r->i] >= '0' && r->s[r->i] <= '7'; k++)
			r->i++;
		return;
	}
	if (!isalnum((unsigned char)c))
		return;		/* escaped punctuation is a literal */
	switch (c) {
	case 'a': case 'f': case 't': case 'n': case 'r': case 'v':
	case 'd': case 'D': case 's': case 'S': case 'w': case 'W':
		return;
	case 'b': case 'B': case 'A': case 'z': case 'C':
		if (in_class)
			r->err = "invalid escape sequence in character class";
		return;
	case 'Q':
		if (in_class) {
			r->err = "invalid escape sequence in character class";
			return;
		}
		{
			const char *e = strstr(r->s + r->i, "\\E");

			r->i = e ? (size_t)(e - r->s) + 2 : strlen(r->s);
		}
		return;
	case 'p': case 'P':
		if (r->s[r->i] == '{') {
			size_t j = r->i + 1;

			while (r->s[j] && r->s[j] != '}') {
				if (!isalnum((unsigned char)r->s[j]) && r->s[j] != '_' &&
				    r->s[j] != '^') {
					r->err = "invalid character class range";
					return;
				}
				j++;
			}
			if (!r->s[j] || j == r->i + 1) {
				r->err = "invalid character class range";
				return;
			}
			r->i = j + 1;
		} else if (isalpha((unsigned char)r->s[r->i])) {
			r->i++;
		} else {
			r->err = "invalid character class range";
		}
		return;
	case 'x':
		if (r->s[r->i] == '{') {
			size_t j = r->i + 1;
			unsigned long v = 0;

			while (isxdigit((unsigned char)r->s[j])) {
				if (v <= 0x10FFFF)
					v = v * 16 + (unsigned long)(isdigit((unsigned char)r->s[j]) ?
						r->s[j] - '0' : (tolower((unsigned char)r->s[j]) - 'a' + 10));
				j++;
			}
			if (r->s[j] != '}' || j == r->i + 1 || v > 0x10FFFF) {
				r->err = "invalid escape sequence";
				return;
			}
			r->i = j + 1;
		} else if (isxdigit((unsigned char)r->s[r->i]) &&
			   isxdigit((unsigned char)r->s[r->i + 1])) {
			r->i += 2;
		} else {
			r->err = "invalid escape sequence";
		}
		return;
	case 'Z':
		r->err = "\\Z is not supported in RE2 (use \\z)";
		return;
	case 'k': case 'g':
		r->err = "backreferences are not supported in RE2";
		return;
	default:
		r->err = "invalid escape sequence";
		return;
	}
}

static const char *const posix_classes[] = {
	"alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower",
	"print", "punct", "space", "upper", "word", "xdigit", NULL,
};

static void rx_class(struct rx *r)
{
	bool first = true;
	int prev = -1;		/* previous single character, for ranges */

	r->i++;			/* [ */
	if (r->s[r->i] == '^')
		r->i++;
	for (;;) {
		char c = r->s[r->i];
		int cur = -1;

		if (!c) {
			r->err = "missing closing ]";
			return;
		}
		if (c == ']' && !first) {
			r->i++;
			return;
		}
		first = false;
		if (c == '[' && r->s[r->i + 1] == ':') {
			const char *e = strstr(r->s + r->i + 2, ":]");
			bool ok = false;

			if (e) {
				const char *n = r->s + r->i + 2;
				size_t l = (size_t)(e - n);

				if (l && *n == '^') {
					n++;
					l--;
				}
				for (int k = 0; posix_classes[k]; k++)
					if (strlen(posix_classes[k]) == l && !strncmp(n, posix_classes[k], l))
						ok = true;
			}
			if (!ok) {
				r->err = "invalid character class range";
				return;
			}
			r->i = (size_t)(e - r->s) + 2;
			prev = -1;
			continue;
		}
		if (c == '\\') {
			char n = r->s[r->i + 1];

			rx_escape(r, true);
			if (r->err)
				return;
			if (n && !isalnum((unsigned char)n))
				cur = (unsigned char)n;
			else if (n == 'a' || n == 'f' || n == 't' || n == 'n' || n == 'r' || n == 'v')
				cur = 0;	/* a control character: low enough for any range */
		} else if (c == '-' && prev >= 0 && r->s[r->i + 1] && r->s[r->i + 1] != ']') {
			/* A range prev-hi. */
			int hi;

			r->i++;
			if (r->s[r->i] == '\\') {
				char n = r->s[r->i + 1];

				rx_escape(r, true);
				if (r->err)
					return;
				hi = n && !isalnum((unsigned char)n) ? (unsigned char)n : 256;
			} else {
				hi = (unsigned char)r->s[r->i++];
			}
			if (hi < prev) {
				r->err = "invalid character class range";
				return;
			}
			prev = -1;
			continue;
		} else {
			cur = (unsigned char)c;
			r->i++;
		}
		prev = cur;
	}
}

static void rx_alt(struct rx *r);

static void rx_group(struct rx *r)
{
	const char *s = r->s;

	r->i++;			/* ( */
	if (s[r->i] == '?') {
		r->i++;
		if (s[r->i] == '=' || s[r->i] == '!') {
			r->err = "lookahead is not supported in RE2";
			return;
		}
		if (s[r->i] == '<' && (s[r->i + 1] == '=' || s[r->i + 1] == '!')) {
			r->err = "lookbehind is not supported in RE2";
			return;
		}
		if (s[r->i] == '>') {
			r->err = "atomic groups are not supported in RE2";
			return;
		}
		if (s[r->i] == 'P' && (s[r->i + 1] == '=' || s[r->i + 1] == '>')) {
			r->err = "backreferences are not supported in RE2";
			return;
		}
		if (s[r->i] == '<' || (s[r->i] == 'P' && s[r->i + 1] == '<')) {
			size_t j = r->i + (s[r->i] == 'P' ? 2 : 1), st = j;

			while (isalnum((unsigned char)s[j]) || s[j] == '_')
				j++;
			if (s[j] != '>' || j == st) {
				r->err = "invalid named capture group";
				return;
			}
			r->i = j + 1;
		} else {
			/* Flags: (?flags) or (?flags:re). */
			bool any = false, neg = false;

			while (s[r->i] && strchr("imsU-", s[r->i])) {
				if (s[r->i] == '-') {
					if (neg) {
						r->err = "invalid or unsupported Perl syntax";
						return;
					}
					neg = true;
				} else {
					any = true;
				}
				r->i++;
			}
			if (!any || (s[r->i] != ':' && s[r->i] != ')') || s[r->i - 1] == '-') {
				r->err = "invalid or unsupported Perl syntax";
				return;
			}
			if (s[r->i] == ')') {
				r->i++;
				return;	/* a flag change, not a group */
			}
			r->i++;
		}
	}
	if (++r->depth > RX_MAX_DEPTH) {
		r->err = "expression nests too deeply";
		return;
	}
	rx_alt(r);
	r->depth--;
	if (r->err)
		return;
	if (s[r->i] != ')') {
		r->err = "missing closing )";
		return;
	}
	r->i++;
}

static void rx_concat(struct rx *r)
{
	const char *s = r->s;

	while (!r->err && s[r->i] && s[r->i] != '|' && s[r->i] != ')') {
		char c = s[r->i];
		long lo, hi;
		size_t end;

		/* One atom. */
		if (c == '*' || c == '+' || c == '?' || rx_repeat_at(s, r->i, &lo, &hi, &end)) {
			r->err = "missing argument to repetition operator";
			return;
		}
		if (c == '(')
			rx_group(r);
		else if (c == '[')
			rx_class(r);
		else if (c == '\\')
			rx_escape(r, false);
		else
			r->i++;
		if (r->err)
			return;
		/* At most one repetition operator, optionally non-greedy. */
		c = s[r->i];
		if (c == '*' || c == '+' || c == '?') {
			r->i++;
		} else if (rx_repeat_at(s, r->i, &lo, &hi, &end)) {
			if (lo > RX_MAX_REPEAT || hi > RX_MAX_REPEAT || (hi >= 0 && hi < lo)) {
				r->err = "invalid repeat count";
				return;
			}
			r->i = end;
		} else {
			continue;
		}
		if (s[r->i] == '?')
			r->i++;
		c = s[r->i];
		if (c == '*' || c == '+' || c == '?' || rx_repeat_at(s, r->i, &lo, &hi, &end)) {
			r->err = "bad repetition operator (RE2 has no possessive or stacked repetition)";
			return;
		}
	}
}

static void rx_alt(struct rx *r)
{
	rx_concat(r);
	while (!r->err && r->s[r->i] == '|') {
		r->i++;
		rx_concat(r);
	}
}

const char *zm_regex_check(const char *re)
{
	struct rx r = { .s = re };

	rx_alt(&r);
	if (!r.err && re[r.i] == ')')
		r.err = "unexpected )";
	return r.err;
}

/* ---- names and addresses ----------------------------------------------------- */

static bool host_label_ok(const char *s, size_t l)
{
	if (l == 0 || l > 63 || s[0] == '-' || s[l - 1] == '-')
		return false;
	for (size_t i = 0; i < l; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

const char *zm_host_check(const char *h, bool allow_star)
{
	size_t len = strlen(h);

	if (!len)
		return "host must not be empty";
	if (!strcmp(h, "*"))
		return allow_star ? NULL : "wildcard host \"*\" is not allowed here";
	if (len > 253)
		return "host name longer than 253 characters";
	if (!strncmp(h, "*.", 2))
		h += 2;
	if (strchr(h, '*'))
		return "a wildcard is only allowed as a leading \"*.\"";
	while (*h) {
		const char *dot = strchr(h, '.');
		size_t l = dot ? (size_t)(dot - h) : strlen(h);

		if (!host_label_ok(h, l))
			return "invalid host name (want DNS labels of letters, digits and '-', e.g. reviews.default.svc.cluster.local or *.example.com)";
		h += l;
		if (*h == '.') {
			h++;
			if (!*h)
				return "host name must not end with a dot";
		}
	}
	return NULL;
}

void zm_host_fqdn(const char *host, const char *ns, char *out, size_t outsz)
{
	/* Istio expands only names without a dot (ResolveShortnameToFQDN). */
	if (strchr(host, '.') || strchr(host, '*') || !ns)
		snprintf(out, outsz, "%s", host);
	else
		snprintf(out, outsz, "%s.%s.svc.cluster.local", host, ns);
}

bool zm_host_match(const char *pat, const char *h)
{
	size_t lp = strlen(pat), lh = strlen(h);

	if (!strcmp(pat, "*"))
		return true;
	if (!strncmp(pat, "*.", 2)) {
		const char *suf = pat + 1;	/* ".example.com" */
		size_t ls = lp - 1;

		if (!strncmp(h, "*.", 2))	/* wildcard inside wildcard */
			return lh - 1 >= ls && !strcasecmp(h + 1 + (lh - 1 - ls), suf);
		return lh > ls && !strcasecmp(h + lh - ls, suf);
	}
	return !strcasecmp(pat, h);
}

const char *zm_ip_check(const char *s)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
		return NULL;
	return "invalid IP address";
}

const char *zm_cidr_check(const char *s)
{
	char addr[64];
	const char *slash = strchr(s, '/');
	unsigned char buf[16];
	size_t l = slash ? (size_t)(slash - s) : strlen(s);
	int fam;
	long bits = 0;

	if (l == 0 || l >= sizeof(addr))
		return "invalid IP address or CIDR";
	memcpy(addr, s, l);
	addr[l] = 0;
	if (inet_pton(AF_INET, addr, buf) == 1)
		fam = 32;
	else if (inet_pton(AF_INET6, addr, buf) == 1)
		fam = 128;
	else
		return "invalid IP address or CIDR";
	if (!slash)
		return NULL;
	if (!slash[1] || strlen(slash + 1) > 3)
		return "invalid CIDR prefix length";
	for (const char *p = slash + 1; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return "invalid CIDR prefix length";
		bits = bits * 10 + (*p - '0');
	}
	if (bits > fam)
		return "invalid CIDR prefix length";
	return NULL;
}

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

const char *zm_dns_label_check(const char *s)
{
	size_t l = strlen(s);

	if (l == 0 || l > 63)
		return "must be 1 to 63 characters";
	if (!lower_alnum(s[0]) || !lower_alnum(s[l - 1]))
		return "must start and end with a lower-case letter or digit (RFC 1123 label)";
	for (size_t i = 0; i < l; i++)
		if (!lower_alnum(s[i]) && s[i] != '-')
			return "must consist of lower-case letters, digits and '-' (RFC 1123 label)";
	return NULL;
}

const char *zm_dns_subdomain_check(const char *s)
{
	size_t l = strlen(s);

	if (l == 0 || l > 253)
		return "must be 1 to 253 characters";
	for (size_t i = 0; i < l; i++) {
		if (!lower_alnum(s[i]) && s[i] != '-' && s[i] != '.')
			return "must consist of lower-case letters, digits, '-' and '.' (RFC 1123 subdomain)";
		if (s[i] == '.' || s[i] == '-') {
			bool at_edge = i == 0 || i == l - 1;

			if (at_edge || (s[i] == '.' && (!lower_alnum(s[i - 1]) || !lower_alnum(s[i + 1]))))
				return "each part must start and end with a lower-case letter or digit (RFC 1123 subdomain)";
		}
	}
	return NULL;
}

static const char *label_name_check(const char *s, size_t l, bool empty_ok)
{
	if (l == 0)
		return empty_ok ? NULL : "name part must not be empty";
	if (l > 63)
		return "must be at most 63 characters";
	if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[l - 1]))
		return "must start and end with a letter or digit";
	for (size_t i = 0; i < l; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return "must consist of letters, digits, '-', '_' and '.'";
	return NULL;
}

const char *zm_label_key_check(const char *s)
{
	const char *slash = strrchr(s, '/');

	if (slash) {
		char pfx[254];
		size_t pl = (size_t)(slash - s);

		if (pl == 0 || pl > 253)
			return "label key prefix must be 1 to 253 characters";
		memcpy(pfx, s, pl);
		pfx[pl] = 0;
		if (zm_dns_subdomain_check(pfx))
			return "label key prefix must be a DNS subdomain";
		s = slash + 1;
	}
	return label_name_check(s, strlen(s), false);
}

const char *zm_label_value_check(const char *s)
{
	return label_name_check(s, strlen(s), true);
}

const char *zm_header_name_check(const char *s)
{
	if (!*s)
		return "header name must not be empty";
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return "invalid HTTP header name";
	return NULL;
}

const char *zm_port_str_check(const char *s)
{
	long v = 0;

	if (!*s || strlen(s) > 5)
		return "invalid port (want 1-65535)";
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return "invalid port (want 1-65535)";
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > 65535)
		return "invalid port (want 1-65535)";
	return NULL;
}

const char *zm_gateway_ref_check(const char *s)
{
	const char *slash = strchr(s, '/');

	if (!strcmp(s, "mesh"))
		return NULL;
	if (slash) {
		char ns[64];
		size_t l = (size_t)(slash - s);

		if (l == 0 || l >= sizeof(ns) || strchr(slash + 1, '/'))
			return "invalid gateway reference (want \"mesh\", NAME or NAMESPACE/NAME)";
		memcpy(ns, s, l);
		ns[l] = 0;
		if (zm_dns_label_check(ns))
			return "invalid gateway namespace (want \"mesh\", NAME or NAMESPACE/NAME)";
		s = slash + 1;
	}
	if (zm_dns_subdomain_check(s))
		return "invalid gateway name (want \"mesh\", NAME or NAMESPACE/NAME)";
	return NULL;
}

const char *zm_export_to_check(const char *s)
{
	if (!strcmp(s, ".") || !strcmp(s, "*") || !strcmp(s, "~"))
		return NULL;
	if (zm_dns_label_check(s))
		return "exportTo wants \".\", \"*\" or a namespace name";
	return NULL;
}

const char *zm_policy_value_check(const char *s)
{
	size_t l = strlen(s);
	const char *star = strchr(s, '*');

	if (!l)
		return "value must not be empty";
	if (star && (strchr(star + 1, '*') || (star != s && star != s + l - 1)))
		return "'*' is only allowed as a prefix, a suffix or the whole value";
	return NULL;
}
