// SPDX-License-Identifier: Apache-2.0
/* Node bootstrap identities and credential files; see nodeid.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zmesh/fsutil.h"
#include "zmesh/nodeid.h"
#include "zmesh/spiffe.h"

#define NODE_PATH "/zmesh/node/"

static bool alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool zm_node_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > ZM_NODE_NAME_MAX || !alnum(s[0]) || !alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!alnum(s[i]) && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

int zm_node_id_format(const char *td, const char *node, char *buf, size_t sz)
{
	int n;

	if (!zm_spiffe_td_valid(td, strlen(td)) || !zm_node_name_valid(node, strlen(node)))
		return -EINVAL;
	n = snprintf(buf, sz, "spiffe://%s" NODE_PATH "%s", td, node);
	return n < 0 || (size_t)n >= sz ? -ENOSPC : 0;
}

int zm_node_id_parse(const char *s, size_t len, const char *td, char *node, size_t nodesz)
{
	size_t tdl = strlen(td), pl = strlen(NODE_PATH), off = 9 + tdl + pl;

	if (len <= off || memcmp(s, "spiffe://", 9) || memcmp(s + 9, td, tdl) ||
	    memcmp(s + 9 + tdl, NODE_PATH, pl))
		return -EINVAL;
	if (!zm_node_name_valid(s + off, len - off) || len - off >= nodesz)
		return -EINVAL;
	memcpy(node, s + off, len - off);
	node[len - off] = 0;
	return 0;
}

const char *zm_cp_role_name(enum zm_cp_role r)
{
	return r == ZM_CP_WAYPOINT ? "waypoint" : r == ZM_CP_GATEWAY ? "gateway" : "node";
}

int zm_proxy_id_format(const char *td, enum zm_cp_role role, const char *ns, const char *sa,
		       char *buf, size_t sz)
{
	struct zm_spiffe_id id;
	int n;

	if (role == ZM_CP_NODE || zm_spiffe_make(&id, td, ns, sa))
		return -EINVAL;
	n = snprintf(buf, sz, "spiffe://%s/zmesh/%s/%s/%s", td, zm_cp_role_name(role), ns, sa);
	return n < 0 || (size_t)n >= sz ? -ENOSPC : 0;
}

int zm_cp_id_parse(const char *s, size_t len, const char *td, struct zm_cp_peer *out)
{
	static const enum zm_cp_role roles[] = { ZM_CP_WAYPOINT, ZM_CP_GATEWAY };
	char pre[ZM_TD_MAX + 64], wl[ZM_SPIFFE_MAX + 1];
	const char *rest, *slash;
	struct zm_spiffe_id id;

	memset(out, 0, sizeof(*out));
	if (!zm_node_id_parse(s, len, td, out->node, sizeof(out->node))) {
		out->role = ZM_CP_NODE;
		return 0;
	}
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		int n = snprintf(pre, sizeof(pre), "spiffe://%s/zmesh/%s/", td, zm_cp_role_name(roles[i]));

		if (n < 0 || (size_t)n >= sizeof(pre) || len <= (size_t)n || memcmp(s, pre, (size_t)n))
			continue;
		/* <ns>/<sa>: checked by the workload ID parser, segment rules and all */
		rest = s + n;
		slash = memchr(rest, '/', len - (size_t)n);
		if (!slash)
			return -EINVAL;
		n = snprintf(wl, sizeof(wl), "spiffe://%s/ns/%.*s/sa/", td, (int)(slash - rest), rest);
		if (n < 0 || (size_t)n + (size_t)(s + len - slash - 1) >= sizeof(wl))
			return -EINVAL;
		memcpy(wl + n, slash + 1, (size_t)(s + len - slash - 1));
		if (memchr(rest, 0, len - (size_t)(rest - s)) ||
		    zm_spiffe_parse(wl, (size_t)n + (size_t)(s + len - slash - 1), &id))
			return -EINVAL;
		out->role = roles[i];
		snprintf(out->ns, sizeof(out->ns), "%s", id.ns);
		snprintf(out->sa, sizeof(out->sa), "%s", id.sa);
		return 0;
	}
	return -EINVAL;
}

#define WHY(...) do { if (why) snprintf(why, whysz, __VA_ARGS__); rc = -EACCES; goto out; } while (0)

/* The leaf rules every control-plane client passes; its single URI SAN into @uri. */
static int cp_leaf(X509 *leaf, GENERAL_NAMES **sans_out, const ASN1_IA5STRING **uri, char *why, size_t whysz)
{
	GENERAL_NAMES *sans = NULL;
	uint32_t ku, xku, flags;
	int uris = 0, crit = -1, rc = 0;

	if (X509_check_purpose(leaf, -1, 0) != 1 || (X509_get_extension_flags(leaf) & EXFLAG_INVALID))
		WHY("certificate extensions are malformed");
	flags = X509_get_extension_flags(leaf);
	ku = X509_get_key_usage(leaf);
	xku = X509_get_extended_key_usage(leaf);
	if (flags & EXFLAG_CA)
		WHY("leaf certificate is a CA (CA:TRUE)");
	if (!(flags & EXFLAG_KUSAGE) || ku == UINT32_MAX || !(ku & KU_DIGITAL_SIGNATURE) ||
	    (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))
		WHY("leaf keyUsage must have digitalSignature and neither keyCertSign nor cRLSign");
	if ((flags & EXFLAG_XKUSAGE) && !(xku & XKU_SSL_CLIENT))
		WHY("extended key usage lacks clientAuth");
	sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	if (!sans)
		WHY(crit == -2 ? "more than one subjectAltName extension" : "no subjectAltName");
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);

		if (gn->type == GEN_URI) {
			uris++;
			*uri = gn->d.uniformResourceIdentifier;
		}
	}
	if (uris != 1)
		WHY("want exactly one URI SAN, found %d", uris);
out:
	*sans_out = sans;
	return rc;
}

int zm_node_id_from_x509(X509 *leaf, const char *td, char *node, size_t nodesz,
			 char *why, size_t whysz)
{
	GENERAL_NAMES *sans = NULL;
	const ASN1_IA5STRING *uri = NULL;
	int rc = cp_leaf(leaf, &sans, &uri, why, whysz);

	if (rc)
		goto out;
	if (zm_node_id_parse((const char *)ASN1_STRING_get0_data(uri), (size_t)ASN1_STRING_length(uri),
			     td, node, nodesz))
		WHY("URI SAN is not a node identity of trust domain %s", td);
out:
	GENERAL_NAMES_free(sans);
	return rc;
}

int zm_cp_id_from_x509(X509 *leaf, const char *td, struct zm_cp_peer *p, char *why, size_t whysz)
{
	GENERAL_NAMES *sans = NULL;
	const ASN1_IA5STRING *uri = NULL;
	int rc = cp_leaf(leaf, &sans, &uri, why, whysz);

	if (rc)
		goto out;
	if (zm_cp_id_parse((const char *)ASN1_STRING_get0_data(uri), (size_t)ASN1_STRING_length(uri), td, p))
		WHY("URI SAN is not a node, waypoint or gateway identity of trust domain %s", td);
out:
	GENERAL_NAMES_free(sans);
	return rc;
}

static int write_one(const char *dir, const char *name, const char *data, mode_t mode,
		     struct zm_error *e)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	size_t len = strlen(data), off = 0;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return zm_error_set(e, errno, "%s: %s", tmp, strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = zm_error_set(e, n < 0 ? errno : EIO, "%s: write failed", tmp);
			break;
		}
		off += (size_t)n;
	}
	close(fd);
	if (!rc && rename(tmp, path))
		rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	if (rc)
		unlink(tmp);
	return rc;
}

int zm_node_cred_write(const char *dir, const char *key_pem, const char *chain_pem,
		       const char *bundle_pem, struct zm_error *e)
{
	int rc = zm_mkdir_p(dir, 0700);

	if (rc)
		return zm_error_set(e, -rc, "%s: %s", dir, strerror(-rc));
	if ((rc = write_one(dir, ZM_NODE_KEY_FILE, key_pem, 0600, e)) ||
	    (rc = write_one(dir, ZM_NODE_CERT_FILE, chain_pem, 0644, e)) ||
	    (rc = write_one(dir, ZM_NODE_ROOT_FILE, bundle_pem, 0644, e)))
		return rc;
	return 0;
}

static int read_one(const char *dir, const char *name, char **out, struct zm_error *e)
{
	char path[PATH_MAX];
	FILE *f;
	long n;
	int rc = 0;

	if (!out)
		return 0;
	*out = NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || n > (1 << 20) || fseek(f, 0, SEEK_SET)) {
		rc = zm_error_set(e, EINVAL, "%s: unreadable or larger than 1 MiB", path);
	} else if (!(*out = malloc((size_t)n + 1))) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
	} else if (fread(*out, 1, (size_t)n, f) != (size_t)n) {
		rc = zm_error_set(e, EIO, "%s: short read", path);
		free(*out);
		*out = NULL;
	} else {
		(*out)[n] = 0;
	}
	fclose(f);
	return rc;
}

int zm_node_cred_read(const char *dir, char **key_pem, char **chain_pem, char **bundle_pem,
		      struct zm_error *e)
{
	int rc;

	if (chain_pem)
		*chain_pem = NULL;
	if (bundle_pem)
		*bundle_pem = NULL;
	if ((rc = read_one(dir, ZM_NODE_KEY_FILE, key_pem, e)))
		return rc;
	if ((rc = read_one(dir, ZM_NODE_CERT_FILE, chain_pem, e)) ||
	    (rc = read_one(dir, ZM_NODE_ROOT_FILE, bundle_pem, e))) {
		if (key_pem) {
			free(*key_pem);
			*key_pem = NULL;
		}
		if (chain_pem) {
			free(*chain_pem);
			*chain_pem = NULL;
		}
	}
	return rc;
}
