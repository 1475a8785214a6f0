// SPDX-License-Identifier: Apache-2.0
/*
 * Workload certificates: a key and CSR per enrolled pod, signed (the lab's
 * CA until zmeshd's CSR endpoint is wired in, behind the same call), renewed
 * at half life (keymat.h), swapped in without touching live connections
 * (zm_tls_creds: a connection keeps the generation it was made with).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ztunnel.h"
#include "zmesh/buf.h"
#include "zmesh/keymat.h"
#include "zmesh/tls.h"

static uint64_t bundle_sum(const char *pem)
{
	uint64_t h = 1469598103934665603ULL;

	for (; pem && *pem; pem++)
		h = (h ^ (unsigned char)*pem) * 1099511628211ULL;
	return h;
}

int zt_certs_bundle(struct zt *z, const char *bundle)
{
	uint64_t sum = bundle_sum(bundle);
	bool changed = false;

	for (int i = 0; i < ZT_MAX_PODS; i++) {
		struct zt_pod *p = &z->pods[i];
		struct zm_error e = { 0 };

		if (!p->used || !p->client_creds || p->bundle_sum == sum)
			continue;
		if (zm_tls_creds_update(p->client_creds, NULL, NULL, bundle, &e) ||
		    zm_tls_creds_update(p->server_creds, NULL, NULL, bundle, &e)) {
			zm_log_error("pod %s: trust bundle: %s (keeping the old one)", p->id, e.msg);
			continue;
		}
		p->bundle_sum = sum;
		changed = true;
	}
	if (changed) {
		zm_log_info("trust bundle changed: re-checking pooled HBONE connections");
		zt_tunnel_recheck(z, NULL);
	}
	return 0;
}

int zt_cert_install(struct zt *z, struct zt_pod *p, const char *key, const char *chain, const char *bundle)
{
	struct zm_svid_cert fresh = { 0 };
	struct zm_error e = { 0 };
	time_t now = time(NULL);
	uint64_t sum = bundle_sum(bundle);
	bool new_bundle;
	int rc;

	if ((rc = zm_svid_cert_load(&fresh, key, chain, &e)))
		goto fail;
	if (!p->client_creds && ((rc = zm_tls_creds_new(false, p->id_spiffe.td, &p->client_creds)) ||
				 (rc = zm_tls_creds_new(true, p->id_spiffe.td, &p->server_creds)))) {
		zm_error_set(&e, -rc, "TLS credentials: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = zm_tls_creds_update(p->client_creds, key, chain, bundle, &e)) ||
	    (rc = zm_tls_creds_update(p->server_creds, key, chain, bundle, &e)))
		goto fail;
	new_bundle = p->bundle_sum && bundle && sum != p->bundle_sum;
	if (bundle)
		p->bundle_sum = sum;
	zm_svid_cert_clear(&p->svid);
	p->svid = fresh;
	memset(&fresh, 0, sizeof(fresh));
	/* Half of the life left from now: the CA backdates notBefore for
	 * clock skew, and counting from there would renew at once. */
	p->renew_at = zm_renew_at(p->svid.not_before > now ? p->svid.not_before : now, p->svid.not_after, now,
				  ZM_RENEW_JITTER_PCT, zm_rand_unit());
	p->cert_gen++;
	if (p->cert_gen > 1) {
		zt_count(z->st.renewed);
		zm_log_info("pod %s: certificate renewed (generation %u, valid until %ld, next renewal in %lds)",
			    p->id, p->cert_gen, (long)p->svid.not_after, (long)(p->renew_at - now));
	}
	if (new_bundle)
		zt_tunnel_recheck(z, p);
	return 0;
fail:
	/* Keep serving with the certificate we have while it is valid; try
	 * again in a few seconds rather than on every tick. */
	zm_log_error("pod %s: certificate: %s", p->id, e.msg[0] ? e.msg : strerror(-rc));
	zm_svid_cert_clear(&fresh);
	p->renew_at = now + 5;
	return rc;
}

int zt_cert_issue(struct zt *z, struct zt_pod *p)
{
	char *key = NULL, *csr = NULL, *chain = NULL;
	struct zm_error e = { 0 };
	int rc;

	p->z = z;
	if (z->xds) {
		/* zmeshd signs; the answer installs it. Not connected yet: soon. */
		rc = zt_xds_request_cert(z, p);
		if (rc)
			p->renew_at = time(NULL) + 1;
		return rc == -ENOTCONN ? 0 : rc;
	}
	if (!z->ca) {
		zm_log_error("pod %s: no CA to sign its certificate", p->id);
		p->renew_at = time(NULL) + 5;
		return -ENOENT;
	}
	if ((rc = zm_key_csr(&p->id_spiffe, &key, &csr, &e)) ||
	    (rc = zm_ca_sign(z->ca, csr, &p->id_spiffe, z->cert_ttl, &chain, &e))) {
		zm_log_error("pod %s: certificate: %s", p->id, e.msg);
		p->renew_at = time(NULL) + 5;
	} else {
		rc = zt_cert_install(z, p, key, chain, zm_ca_bundle(z->ca));
	}
	if (key)
		OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(csr);
	free(chain);
	return rc;
}

void zt_cert_drop(struct zt_pod *p)
{
	zm_tls_creds_free(p->client_creds);
	zm_tls_creds_free(p->server_creds);
	p->client_creds = p->server_creds = NULL;
	zm_svid_cert_clear(&p->svid);
}

void zt_certs_tick(struct zt *z)
{
	time_t now = time(NULL);

	for (int i = 0; i < ZT_MAX_PODS; i++) {
		struct zt_pod *p = &z->pods[i];

		if (p->used && p->l[0].fd >= 0 && now >= p->renew_at) {
			zt_write_lock(z);	/* the pod's credentials and generation change */
			zt_cert_issue(z, p);
			zt_write_unlock(z);
		}
	}
}

bool zt_certs_ready(struct zt *z)
{
	for (int i = 0; i < ZT_MAX_PODS; i++)
		if (z->pods[i].used && z->pods[i].l[0].fd >= 0 && !z->pods[i].client_creds)
			return false;
	return true;
}

SSL_CTX *zt_pod_ctx(struct zt_pod *p, bool server)
{
	struct zm_tls_creds *c = server ? p->server_creds : p->client_creds;

	return c ? zm_tls_creds_ctx(c) : NULL;
}

void zt_certs_json(struct zt *z, struct zm_buf *b)
{
	json_t *all = json_array();
	char *s;

	for (int i = 0; i < ZT_MAX_PODS; i++) {
		struct zt_pod *p = &z->pods[i];
		char id[ZM_SPIFFE_MAX] = "";

		if (!p->used)
			continue;
		zm_spiffe_format(&p->id_spiffe, id, sizeof(id));
		json_array_append_new(all, json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:b}", "pod", p->id,
						     "identity", id, "not_before", (json_int_t)p->svid.not_before,
						     "not_after", (json_int_t)p->svid.not_after,
						     "renew_at", (json_int_t)p->renew_at, "generation",
						     (int)p->cert_gen, "valid",
						     zm_svid_cert_valid_at(&p->svid, time(NULL))));
	}
	s = json_dumps(all, JSON_INDENT(2));
	if (s)
		zm_buf_printf(b, "%s\n", s);
	free(s);
	json_decref(all);
}
