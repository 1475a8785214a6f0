// SPDX-License-Identifier: Apache-2.0
/* The mesh CA: self-signed root or plug-in CA, CSR signing, root rotation. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zmesh/bundle.h"
#include "zmesh/ca.h"
#include "zmesh/fsutil.h"
#include "zmesh/nodeid.h"

struct zm_ca {
	pthread_mutex_t lock;
	char *dir;
	bool plugin;
	EVP_PKEY *key;		/* signing key */
	X509 *cert;		/* signing certificate */
	char *chain;		/* PEM: signing cert + intermediates (plug-in); "" for a root */
	struct zm_bundle *bundle;
	char *bundle_pem;	/* cache of the bundle, rebuilt on each change */
};

static char *bio_str(BIO *b)
{
	char *data, *s;
	long n = BIO_get_mem_data(b, &data);

	s = malloc((size_t)n + 1);
	if (s) {
		memcpy(s, data, (size_t)n);
		s[n] = 0;
	}
	return s;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = 0;
		}
	}
	fclose(f);
	return buf;
}

static int ssl_err(struct zm_error *e, const char *what)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	ERR_clear_error();
	return zm_error_set(e, EINVAL, "%s: %s", what, buf);
}

static void path_of(char *out, const struct zm_ca *ca, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", ca->dir, name);
}

/* Write @data to <dir>/<name> atomically (temp file, fsync, rename), mode 0600. */
static int write_file(const struct zm_ca *ca, const char *name, const char *data, struct zm_error *e)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	size_t len = strlen(data), off = 0;
	int fd, rc = 0;

	path_of(path, ca, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return zm_error_set(e, errno, "%s: %s", tmp, strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = zm_error_set(e, n < 0 ? errno : EIO, "%s: %s", tmp, strerror(n < 0 ? errno : EIO));
			break;
		}
		off += (size_t)n;
	}
	if (!rc && fsync(fd))
		rc = zm_error_set(e, errno, "%s: %s", tmp, strerror(errno));
	close(fd);
	if (!rc && rename(tmp, path))
		rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	if (rc)
		unlink(tmp);
	return rc;
}

static char *cert_pem(X509 *c)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (b && PEM_write_bio_X509(b, c))
		s = bio_str(b);
	BIO_free(b);
	return s;
}

static char *key_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
		s = bio_str(b);
	BIO_free(b);
	return s;
}

static void free_secret(char *s)
{
	if (s)
		OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -ENOMEM;
}

static int random_serial(X509 *cert)
{
	unsigned char b[16];
	BIGNUM *bn;
	int rc = -EIO;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	b[0] &= 0x7f;	/* positive */
	b[0] |= 0x01;	/* and never zero or short */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
		rc = 0;
	BN_free(bn);
	return rc;
}

/* A new self-signed P-256 root, valid ten years. */
static int new_root(EVP_PKEY **key, X509 **cert, struct zm_error *e)
{
	X509 *c = X509_new();
	X509_NAME *name = X509_NAME_new();
	EVP_PKEY *k = EVP_EC_gen("P-256");
	unsigned char rnd[4];
	char cn[64];
	int rc = -EINVAL;

	if (!c || !name || !k || RAND_bytes(rnd, sizeof(rnd)) != 1) {
		rc = zm_error_set(e, ENOMEM, "make root CA: out of memory");
		goto out;
	}
	/* A distinct subject per root, so old and new roots never shadow each other. */
	snprintf(cn, sizeof(cn), "zmesh root CA %02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	if (!X509_set_version(c, 2) || random_serial(c) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"zmesh", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_subject_name(c, name) || !X509_set_issuer_name(c, name) ||
	    !X509_gmtime_adj(X509_getm_notBefore(c), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(c), 10L * 365 * 24 * 3600) || !X509_set_pubkey(c, k) ||
	    add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE") ||
	    add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    add_ext(c, c, NID_subject_key_identifier, "hash") ||
	    !X509_sign(c, k, EVP_sha256())) {
		rc = ssl_err(e, "make root CA");
		goto out;
	}
	*key = k;
	*cert = c;
	k = NULL;
	c = NULL;
	rc = 0;
out:
	X509_free(c);
	X509_NAME_free(name);
	EVP_PKEY_free(k);
	return rc;
}

/* Persist a key + cert pair as <prefix>-key.pem and <prefix>-cert.pem (key first). */
static int save_pair(const struct zm_ca *ca, const char *prefix, EVP_PKEY *k, X509 *c, struct zm_error *e)
{
	char name[64], *kp = key_pem(k), *cp = cert_pem(c);
	int rc;

	if (!kp || !cp) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	snprintf(name, sizeof(name), "%s-key.pem", prefix);
	rc = write_file(ca, name, kp, e);
	snprintf(name, sizeof(name), "%s-cert.pem", prefix);
	if (!rc)
		rc = write_file(ca, name, cp, e);
out:
	free_secret(kp);
	free(cp);
	return rc;
}

static int load_cert(const char *path, X509 **cert, struct zm_error *e)
{
	FILE *f = fopen(path, "re");

	if (!f)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	*cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return *cert ? 0 : ssl_err(e, path);
}

static int load_key(const char *path, EVP_PKEY **key, struct zm_error *e)
{
	FILE *f = fopen(path, "re");

	if (!f)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return *key ? 0 : ssl_err(e, path);
}

/* Add the PEM file <dir>/<name> to the bundle; a missing file is fine unless @required. */
static int bundle_add_file(struct zm_ca *ca, const char *name, bool required, struct zm_error *e)
{
	char path[PATH_MAX], *pem;
	int rc;

	path_of(path, ca, name);
	pem = read_file(path);
	if (!pem)
		return required || errno != ENOENT ? zm_error_set(e, errno ? errno : EIO, "%s: cannot read", path) : 0;
	rc = zm_bundle_add_pem(ca->bundle, pem, e);
	free(pem);
	if (rc)
		zm_error_set(e, EINVAL, "%s: not a list of CA certificates", path);
	return rc;
}

/* Rebuild the bundle from the files, and its PEM cache. Caller holds the lock (or owns ca). */
static int reload_bundle(struct zm_ca *ca, struct zm_error *e)
{
	struct zm_bundle *old = ca->bundle;
	char *pem;
	int rc;

	ca->bundle = zm_bundle_new();
	if (!ca->bundle) {
		ca->bundle = old;
		return zm_error_set(e, ENOMEM, "out of memory");
	}
	if (ca->plugin) {
		rc = bundle_add_file(ca, "cacerts/root-cert.pem", true, e);
	} else {
		rc = bundle_add_file(ca, "root-cert.pem", true, e);
		if (!rc)
			rc = bundle_add_file(ca, "next-root-cert.pem", false, e);
		if (!rc)
			rc = bundle_add_file(ca, "retired-roots.pem", false, e);
	}
	pem = rc ? NULL : zm_bundle_pem(ca->bundle);
	if (!rc && !pem)
		rc = zm_error_set(e, ENOMEM, "out of memory");
	if (rc) {
		zm_bundle_free(ca->bundle);
		ca->bundle = old;
		return rc;
	}
	zm_bundle_free(old);
	free(ca->bundle_pem);
	ca->bundle_pem = pem;
	return 0;
}

/* ca-cert.pem must chain, through cert-chain.pem, to a root of root-cert.pem. */
static int check_plugin_chain(struct zm_ca *ca, struct zm_error *e)
{
	STACK_OF(X509) *chain = zm_pem_certs(ca->chain, e);
	X509_STORE *store = zm_bundle_store(ca->bundle);
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	int rc = -EINVAL;

	if (!chain) {
		rc = zm_error_set(e, EINVAL, "%s/cacerts/cert-chain.pem: no certificate", ca->dir);
		goto out;
	}
	if (X509_cmp(sk_X509_value(chain, 0), ca->cert)) {
		rc = zm_error_set(e, EINVAL, "%s/cacerts/cert-chain.pem must start with ca-cert.pem", ca->dir);
		goto out;
	}
	if (X509_check_ca(ca->cert) != 1) {
		rc = zm_error_set(e, EINVAL, "%s/cacerts/ca-cert.pem is not a CA certificate", ca->dir);
		goto out;
	}
	if (!store || !xs || X509_STORE_CTX_init(xs, store, ca->cert, chain) != 1) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	if (X509_verify_cert(xs) != 1) {
		rc = zm_error_set(e, EINVAL, "%s/cacerts: ca-cert.pem does not chain to root-cert.pem: %s", ca->dir,
				  X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)));
		goto out;
	}
	rc = 0;
out:
	X509_STORE_CTX_free(xs);
	X509_STORE_free(store);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	return rc;
}

static int open_plugin(struct zm_ca *ca, struct zm_error *e)
{
	char path[PATH_MAX];
	int rc;

	ca->plugin = true;
	path_of(path, ca, "cacerts/ca-cert.pem");
	rc = load_cert(path, &ca->cert, e);
	path_of(path, ca, "cacerts/ca-key.pem");
	if (!rc)
		rc = load_key(path, &ca->key, e);
	if (rc)
		return rc;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		return zm_error_set(e, EINVAL, "%s/cacerts: ca-key.pem does not match ca-cert.pem", ca->dir);
	}
	path_of(path, ca, "cacerts/cert-chain.pem");
	ca->chain = read_file(path);
	if (!ca->chain)
		return zm_error_set(e, ENOENT, "%s: cannot read", path);
	rc = reload_bundle(ca, e);
	return rc ? rc : check_plugin_chain(ca, e);
}

/*
 * Several processes may open or rotate the same directory (the lab starts
 * a ztunnel per node): an exclusive flock on <dir>/.lock keeps a key from
 * one process from being paired with a certificate from another.
 */
static int dir_lock(const struct zm_ca *ca, struct zm_error *e)
{
	char path[PATH_MAX];
	int fd;

	path_of(path, ca, ".lock");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX) && errno == EINTR)
		;
	return fd;
}

static void dir_unlock(int fd)
{
	if (fd >= 0)
		close(fd);	/* drops the flock */
}

static int open_selfsigned(struct zm_ca *ca, struct zm_error *e)
{
	char path[PATH_MAX], next[PATH_MAX];
	int rc, lk;

	rc = zm_mkdir_p(ca->dir, 0700);
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", ca->dir, strerror(-rc));
	lk = dir_lock(ca, e);
	if (lk < 0)
		return lk;
	path_of(path, ca, "root-cert.pem");
	if (access(path, F_OK) != 0) {
		rc = new_root(&ca->key, &ca->cert, e);
		if (!rc)
			rc = save_pair(ca, "root", ca->key, ca->cert, e);
	} else {
		rc = load_cert(path, &ca->cert, e);
		path_of(path, ca, "root-key.pem");
		if (!rc)
			rc = load_key(path, &ca->key, e);
		if (!rc && X509_check_private_key(ca->cert, ca->key) != 1) {
			/* Crash between the two renames of zm_ca_root_activate: finish it. */
			X509 *n = NULL;

			ERR_clear_error();
			path_of(next, ca, "next-root-cert.pem");
			if (load_cert(next, &n, NULL) == 0 && X509_check_private_key(n, ca->key) == 1 &&
			    rename(next, path) == 0) {
				X509_free(ca->cert);
				ca->cert = n;
			} else {
				X509_free(n);
				rc = zm_error_set(e, EINVAL, "%s: root-key.pem does not match root-cert.pem", ca->dir);
			}
			ERR_clear_error();
		}
	}
	ca->chain = strdup("");
	if (!rc && !ca->chain)
		rc = zm_error_set(e, ENOMEM, "out of memory");
	if (!rc)
		rc = reload_bundle(ca, e);
	dir_unlock(lk);
	return rc;
}

int zm_ca_open(const char *dir, struct zm_ca **out, struct zm_error *e)
{
	struct zm_ca *ca = calloc(1, sizeof(*ca));
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	if (!ca || !(ca->dir = strdup(dir))) {
		free(ca);
		return zm_error_set(e, ENOMEM, "out of memory");
	}
	pthread_mutex_init(&ca->lock, NULL);
	path_of(path, ca, "cacerts/ca-cert.pem");
	rc = access(path, F_OK) == 0 ? open_plugin(ca, e) : open_selfsigned(ca, e);
	ERR_clear_error();
	if (rc) {
		zm_ca_free(ca);
		return rc;
	}
	*out = ca;
	return 0;
}

void zm_ca_free(struct zm_ca *ca)
{
	if (!ca)
		return;
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca->chain);
	zm_bundle_free(ca->bundle);
	free(ca->bundle_pem);
	free(ca->dir);
	pthread_mutex_destroy(&ca->lock);
	free(ca);
}

bool zm_ca_plugged_in(struct zm_ca *ca)
{
	return ca->plugin;
}

const char *zm_ca_bundle(struct zm_ca *ca)
{
	return ca->bundle_pem;
}

char *zm_ca_bundle_dup(struct zm_ca *ca)
{
	char *s;

	pthread_mutex_lock(&ca->lock);
	s = strdup(ca->bundle_pem);
	pthread_mutex_unlock(&ca->lock);
	return s;
}

static bool is_p256(EVP_PKEY *k)
{
	char group[64];
	size_t len;

	return EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
	       EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &len) == 1 &&
	       !strcmp(group, "prime256v1");
}

/* Issue a leaf for @pub with the single URI SAN @uri; see ca.h for the profile. */
static int sign_pub(struct zm_ca *ca, EVP_PKEY *pub, const char *uri, unsigned ttl,
		    char **chain_pem, struct zm_error *e)
{
	BIO *out = NULL;
	X509 *c = NULL;
	char san[ZM_SPIFFE_MAX + 16];
	int rc;

	pthread_mutex_lock(&ca->lock);
	c = X509_new();
	/* Nothing of the CSR but its key: the SAN is the identity the caller authorized. */
	snprintf(san, sizeof(san), "critical,URI:%s", uri);
	if (!c || !X509_set_version(c, 2) || random_serial(c) ||
	    !X509_set_issuer_name(c, X509_get_subject_name(ca->cert)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(c), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(c), (long)ttl) || !X509_set_pubkey(c, pub)) {
		rc = ssl_err(e, "sign");
		goto out;
	}
	/* Never outlive the signer. */
	if (ASN1_TIME_compare(X509_get0_notAfter(c), X509_get0_notAfter(ca->cert)) > 0 &&
	    !X509_set1_notAfter(c, X509_get0_notAfter(ca->cert))) {
		rc = ssl_err(e, "sign");
		goto out;
	}
	if (add_ext(c, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(c, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
	    add_ext(c, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    add_ext(c, ca->cert, NID_subject_alt_name, san) ||
	    add_ext(c, ca->cert, NID_authority_key_identifier, "keyid:always") ||
	    !X509_sign(c, ca->key, EVP_sha256())) {
		rc = ssl_err(e, "sign");
		goto out;
	}
	out = BIO_new(BIO_s_mem());
	if (!out || !PEM_write_bio_X509(out, c) || (ca->chain[0] && BIO_puts(out, ca->chain) <= 0) ||
	    !(*chain_pem = bio_str(out))) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&ca->lock);
	BIO_free(out);
	X509_free(c);
	ERR_clear_error();
	return rc;
}

static int check_ttl(unsigned *ttl, struct zm_error *e)
{
	if (*ttl == 0)
		*ttl = ZM_CA_DEFAULT_TTL;
	if (*ttl < ZM_CA_MIN_TTL || *ttl > ZM_CA_MAX_TTL)
		return zm_error_set(e, EINVAL, "TTL %u s out of range (%u s to %u s)", *ttl, ZM_CA_MIN_TTL,
				    ZM_CA_MAX_TTL);
	return 0;
}

int zm_ca_sign(struct zm_ca *ca, const char *csr_pem, const struct zm_spiffe_id *id,
	       unsigned ttl, char **chain_pem, struct zm_error *e)
{
	BIO *in = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *pub = NULL;
	char uri[ZM_SPIFFE_MAX];
	int rc;

	*chain_pem = NULL;
	if ((rc = check_ttl(&ttl, e)))
		return rc;
	if (!csr_pem || zm_spiffe_format(id, uri, sizeof(uri)))
		return zm_error_set(e, EINVAL, "CSR or identity missing");
	in = BIO_new_mem_buf(csr_pem, -1);
	if (!in)
		return zm_error_set(e, ENOMEM, "out of memory");
	req = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
	if (!req) {
		rc = ssl_err(e, "CSR");
		goto out;
	}
	pub = X509_REQ_get_pubkey(req);
	if (!pub) {
		rc = zm_error_set(e, EINVAL, "CSR: unreadable public key");
		goto out;
	}
	if (!is_p256(pub)) {
		rc = zm_error_set(e, EINVAL, "CSR: key must be ECDSA P-256");
		goto out;
	}
	if (X509_REQ_verify(req, pub) != 1) {
		rc = zm_error_set(e, EINVAL, "CSR: bad signature");
		goto out;
	}
	rc = sign_pub(ca, pub, uri, ttl, chain_pem, e);
out:
	BIO_free(in);
	X509_REQ_free(req);
	EVP_PKEY_free(pub);
	ERR_clear_error();
	return rc;
}

/* A fresh P-256 key and a leaf for @uri (a bootstrap identity, never from a CSR). */
static int issue_uri(struct zm_ca *ca, const char *uri, unsigned ttl, char **key_out, char **chain_pem,
		     struct zm_error *e)
{
	EVP_PKEY *k = NULL;
	int rc;

	*key_out = NULL;
	*chain_pem = NULL;
	if ((rc = check_ttl(&ttl, e)))
		return rc;
	k = EVP_EC_gen("P-256");
	if (!k) {
		rc = ssl_err(e, "bootstrap key");
		goto out;
	}
	rc = sign_pub(ca, k, uri, ttl, chain_pem, e);
	if (!rc && !(*key_out = key_pem(k))) {
		free(*chain_pem);
		*chain_pem = NULL;
		rc = zm_error_set(e, ENOMEM, "out of memory");
	}
out:
	EVP_PKEY_free(k);
	ERR_clear_error();
	return rc;
}

int zm_ca_issue_node(struct zm_ca *ca, const char *td, const char *node, unsigned ttl,
		     char **key_out, char **chain_pem, struct zm_error *e)
{
	char uri[ZM_SPIFFE_MAX];

	*key_out = NULL;
	*chain_pem = NULL;
	if (zm_node_id_format(td, node, uri, sizeof(uri)))
		return zm_error_set(e, EINVAL, "node identity: bad trust domain or node name");
	return issue_uri(ca, uri, ttl, key_out, chain_pem, e);
}

int zm_ca_issue_proxy(struct zm_ca *ca, const char *td, enum zm_cp_role role, const char *ns, const char *sa,
		      unsigned ttl, char **key_out, char **chain_pem, struct zm_error *e)
{
	char uri[ZM_SPIFFE_MAX];

	*key_out = NULL;
	*chain_pem = NULL;
	if (zm_proxy_id_format(td, role, ns, sa, uri, sizeof(uri)))
		return zm_error_set(e, EINVAL, "proxy identity: bad role, trust domain, namespace or account");
	return issue_uri(ca, uri, ttl, key_out, chain_pem, e);
}

int zm_ca_csr_identity(const char *pem, size_t len, struct zm_spiffe_id *id, char *why, size_t whysz)
{
	BIO *b = len <= INT32_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
	X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	STACK_OF(X509_EXTENSION) *exts = req ? X509_REQ_get_extensions(req) : NULL;
	GENERAL_NAMES *sans = NULL;
	const ASN1_IA5STRING *uri = NULL;
	int uris = 0, rc = -EINVAL;

	if (!req) {
		snprintf(why, whysz, "body is not a PEM certificate request");
		goto out;
	}
	if (exts) {
		int i = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);

		if (i >= 0)
			sans = X509V3_EXT_d2i(X509v3_get_ext(exts, i));
	}
	if (!sans) {
		snprintf(why, whysz, "CSR has no subjectAltName");
		goto out;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);

		if (gn->type == GEN_URI) {
			uris++;
			uri = gn->d.uniformResourceIdentifier;
		}
	}
	if (uris != 1) {
		snprintf(why, whysz, "CSR: want exactly one URI SAN, found %d", uris);
		goto out;
	}
	/* Explicit length: a NUL inside fails the parse instead of cutting it short. */
	if (zm_spiffe_parse((const char *)ASN1_STRING_get0_data(uri), (size_t)ASN1_STRING_length(uri), id)) {
		snprintf(why, whysz, "CSR: URI SAN is not a SPIFFE workload ID");
		goto out;
	}
	rc = 0;
out:
	GENERAL_NAMES_free(sans);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

int zm_ca_root_prepare(struct zm_ca *ca, struct zm_error *e)
{
	char path[PATH_MAX];
	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	int rc, lk;

	if (ca->plugin)
		return zm_error_set(e, ENOTSUP, "root rotation of a plug-in CA: replace %s/cacerts/", ca->dir);
	pthread_mutex_lock(&ca->lock);
	lk = dir_lock(ca, e);
	if (lk < 0) {
		pthread_mutex_unlock(&ca->lock);
		return lk;
	}
	path_of(path, ca, "next-root-cert.pem");
	if (access(path, F_OK) == 0) {
		rc = zm_error_set(e, EEXIST, "%s: a new root is already prepared", path);
		goto out;
	}
	rc = new_root(&k, &c, e);
	if (!rc)
		rc = save_pair(ca, "next-root", k, c, e);
	if (!rc)
		rc = reload_bundle(ca, e);
out:
	dir_unlock(lk);
	pthread_mutex_unlock(&ca->lock);
	EVP_PKEY_free(k);
	X509_free(c);
	return rc;
}

int zm_ca_root_activate(struct zm_ca *ca, struct zm_error *e)
{
	char path[PATH_MAX], next[PATH_MAX], *retired = NULL, *old = NULL, *joined = NULL;
	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	int rc, lk;

	if (ca->plugin)
		return zm_error_set(e, ENOTSUP, "root rotation of a plug-in CA: replace %s/cacerts/", ca->dir);
	pthread_mutex_lock(&ca->lock);
	lk = dir_lock(ca, e);
	if (lk < 0) {
		pthread_mutex_unlock(&ca->lock);
		return lk;
	}
	path_of(next, ca, "next-root-cert.pem");
	rc = load_cert(next, &c, NULL);
	if (rc) {
		rc = zm_error_set(e, ENOENT, "%s: no new root prepared", next);
		goto out;
	}
	path_of(path, ca, "next-root-key.pem");
	rc = load_key(path, &k, e);
	if (rc)
		goto out;
	/* The old root stays trusted: append it to retired-roots.pem first. */
	path_of(path, ca, "retired-roots.pem");
	retired = read_file(path);
	old = cert_pem(ca->cert);
	if (!old || asprintf(&joined, "%s%s", retired ? retired : "", old) < 0) {
		joined = NULL;
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	rc = write_file(ca, "retired-roots.pem", joined, e);
	if (rc)
		goto out;
	/* Key first: a crash in between is repaired by the next open. */
	path_of(path, ca, "root-key.pem");
	{
		char nk[PATH_MAX];

		path_of(nk, ca, "next-root-key.pem");
		if (rename(nk, path)) {
			rc = zm_error_set(e, errno, "%s: %s", nk, strerror(errno));
			goto out;
		}
	}
	path_of(path, ca, "root-cert.pem");
	if (rename(next, path)) {
		rc = zm_error_set(e, errno, "%s: %s", next, strerror(errno));
		goto out;
	}
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	ca->key = k;
	ca->cert = c;
	k = NULL;
	c = NULL;
	rc = reload_bundle(ca, e);
out:
	dir_unlock(lk);
	pthread_mutex_unlock(&ca->lock);
	EVP_PKEY_free(k);
	X509_free(c);
	free(retired);
	free(old);
	free(joined);
	ERR_clear_error();
	return rc;
}

int zm_ca_root_retire(struct zm_ca *ca, struct zm_error *e)
{
	char path[PATH_MAX];
	int rc = 0, lk;

	if (ca->plugin)
		return zm_error_set(e, ENOTSUP, "root rotation of a plug-in CA: replace %s/cacerts/", ca->dir);
	pthread_mutex_lock(&ca->lock);
	lk = dir_lock(ca, e);
	if (lk < 0) {
		pthread_mutex_unlock(&ca->lock);
		return lk;
	}
	path_of(path, ca, "retired-roots.pem");
	if (unlink(path) && errno != ENOENT)
		rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	if (!rc)
		rc = reload_bundle(ca, e);
	dir_unlock(lk);
	pthread_mutex_unlock(&ca->lock);
	return rc;
}
