// SPDX-License-Identifier: Apache-2.0
/*
 * Citadel's job: POST /v1/certs signs a CSR for a workload identity when a
 * pod with that service account runs on the caller's node (the Pod objects
 * in the store; the lab state only when the store holds no Pod), or, for a waypoint's or gateway's
 * credential, when it is exactly the account that credential names;
 * GET /v1/bundle serves the roots.
 */
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "zmesh/lab.h"
#include "zmesh/log.h"
#include "zmeshd.h"

static const char ctype_json[] = "application/json";

static void respond_json(struct zd_conn *c, struct zd_stream *s, int status, json_t *j)
{
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (txt) {
		zd_respond(c, s, status, ctype_json, txt, strlen(txt));
	} else {
		zd_respond_lit(c, s, 500, "{\"error\":\"out of memory\"}");
	}
	free(txt);
	json_decref(j);
}

static void respond_error(struct zd_conn *c, struct zd_stream *s, int status, const char *msg)
{
	respond_json(c, s, status, json_pack("{ss}", "error", msg));
}

static bool lab_allows(struct zd *d, const char *node, const struct zm_spiffe_id *id)
{
	struct zm_lab lab;
	struct zm_error e;
	bool ok = false;

	if (!d->lab)
		return false;
	memset(&lab, 0, sizeof(lab));
	if (zm_lab_load(d->lab, &lab, &e)) {
		zm_log_warn("lab %s: %s", d->lab, e.msg);
		return false;
	}
	for (size_t i = 0; i < lab.npods && !ok; i++) {
		const struct zm_lab_pod *p = &lab.pods[i];

		ok = !strcmp(p->node, node) && !strcmp(p->ns, id->ns) && !strcmp(p->sa, id->sa);
	}
	zm_lab_free(&lab);
	return ok;
}

static const char *jstr(json_t *o, const char *path1, const char *path2, const char *dflt)
{
	json_t *v = json_object_get(o, path1);

	if (path2)
		v = json_object_get(v, path2);
	return json_is_string(v) ? json_string_value(v) : dflt;
}

/*
 * Pod objects of the applied config (Kubernetes: what the API server says).
 * A lab writes its pods there (lab_cluster.c); only a store without any Pod
 * (a lab made before that, or files without workloads) falls back to the
 * lab state named by --lab.
 */
static bool store_allows(struct zd *d, const char *node, const struct zm_spiffe_id *id, bool *any_pod)
{
	const char *key;
	json_t *o;

	*any_pod = false;
	json_object_foreach(d->cur.objs, key, o) {
		const char *sa;

		if (strncmp(key, "Pod/", 4))
			continue;
		*any_pod = true;
		sa = jstr(o, "spec", "serviceAccountName", NULL);
		if (!sa)
			sa = jstr(o, "spec", "serviceAccount", "default");
		if (!strcmp(jstr(o, "spec", "nodeName", ""), node) &&
		    !strcmp(jstr(o, "metadata", "namespace", "default"), id->ns) && !strcmp(sa, id->sa))
			return true;
	}
	return false;
}

void zd_handle_certs(struct zd_conn *c, struct zd_stream *s)
{
	struct zd *d = c->d;
	struct zm_spiffe_id id;
	struct zm_error e = { "" };
	char why[256], uri[ZM_SPIFFE_MAX], msg[2048];
	char *chain = NULL, *bundle = NULL;
	const char *pem = zm_buf_cstr(&s->body);
	bool any_pod = false;

	if (!pem || zm_ca_csr_identity(pem, zm_buf_len(&s->body), &id, why, sizeof(why))) {
		d->st.csr_invalid++;
		zm_log_warn("CSR from %s %s (%s): %s", zm_cp_role_name(c->who.role), c->node, c->peer, pem ? why : "out of memory");
		respond_error(c, s, 400, pem ? why : "out of memory");
		goto out;
	}
	zm_spiffe_format(&id, uri, sizeof(uri));
	if (strcmp(id.td, d->td))
		snprintf(msg, sizeof(msg), "%s %s may not get %s: trust domain is not %s", zm_cp_role_name(c->who.role), c->node, uri, d->td);
	else if (!strcmp(id.ns, ZM_ZMESHD_NS) && !strcmp(id.sa, ZM_ZMESHD_SA))
		snprintf(msg, sizeof(msg), "%s %s may not get %s: reserved for zmeshd", zm_cp_role_name(c->who.role), c->node, uri);
	else if (c->who.role != ZM_CP_NODE && (strcmp(id.ns, c->who.ns) || strcmp(id.sa, c->who.sa)))
		snprintf(msg, sizeof(msg), "%s %s may not get %s: its credential is for ns/%s/sa/%s only",
			 zm_cp_role_name(c->who.role), c->node, uri, c->who.ns, c->who.sa);
	else if (c->who.role == ZM_CP_NODE && !store_allows(d, c->node, &id, &any_pod) &&
		 (any_pod || !lab_allows(d, c->node, &id)))
		snprintf(msg, sizeof(msg), "node %s may not get %s: no pod with service account %s/%s on node %s",
			 c->node, uri, id.ns, id.sa, c->node);
	else
		msg[0] = 0;
	if (msg[0]) {
		d->st.csr_denied++;
		zm_log_warn("CSR refused (403): %s", msg);
		respond_error(c, s, 403, msg);
		goto out;
	}
	if (zm_ca_sign(d->ca, pem, &id, d->cert_ttl, &chain, &e) || !(bundle = zm_ca_bundle_dup(d->ca))) {
		d->st.csr_invalid++;
		zm_log_warn("CSR from %s %s for %s: %s", zm_cp_role_name(c->who.role), c->node, uri, e.msg[0] ? e.msg : "out of memory");
		respond_error(c, s, 400, e.msg[0] ? e.msg : "out of memory");
		goto out;
	}
	d->st.csr_issued++;
	zm_log_info("issued %s to %s %s (TTL %u s)", uri, zm_cp_role_name(c->who.role), c->node, d->cert_ttl ? d->cert_ttl : ZM_CA_DEFAULT_TTL);
	respond_json(c, s, 200, json_pack("{ssssss}", "identity", uri, "chain", chain, "bundle", bundle));
out:
	free(chain);
	free(bundle);
}

void zd_handle_bundle(struct zd_conn *c, struct zd_stream *s)
{
	const char *pem = zm_ca_bundle(c->d->ca);

	zd_respond(c, s, 200, "application/x-pem-file", pem, strlen(pem));
}

/* What identifies the CA's files now; any rotation step or plug-in change alters it. */
static void ca_signature(const char *dir, char *out, size_t sz)
{
	static const char *const files[] = { "root-cert.pem", "root-key.pem", "next-root-cert.pem",
					     "retired-roots.pem", "cacerts/ca-cert.pem", "cacerts/ca-key.pem",
					     "cacerts/root-cert.pem", "cacerts/cert-chain.pem" };
	size_t off = 0;

	out[0] = 0;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && off < sz; i++) {
		char path[PATH_MAX];
		struct stat st;
		int n;

		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (stat(path, &st))
			continue;
		n = snprintf(out + off, sz - off, "%zu:%lu:%lld:%lld.%ld;", i, (unsigned long)st.st_ino,
			     (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

void zd_ca_check(struct zd *d)
{
	char sig[sizeof(d->ca_sig)];
	struct zm_ca *ca = NULL, *old;
	struct zm_error e = { "" };
	bool bundle_changed;

	ca_signature(d->ca_dir, sig, sizeof(sig));
	if (!d->ca_sig[0] || !strcmp(sig, d->ca_sig)) {
		snprintf(d->ca_sig, sizeof(d->ca_sig), "%s", sig);
		return;
	}
	snprintf(d->ca_sig, sizeof(d->ca_sig), "%s", sig);
	if (zm_ca_open(d->ca_dir, &ca, &e)) {
		zm_log_error("CA %s changed but does not load (%s): keeping the one in use", d->ca_dir, e.msg);
		return;
	}
	old = d->ca;
	d->ca = ca;
	if (zd_tls_ctx(d)) {
		d->ca = old;
		zm_ca_free(ca);
		return;
	}
	bundle_changed = strcmp(zm_ca_bundle(old), zm_ca_bundle(ca)) != 0;
	zm_ca_free(old);
	d->st.ca_reloads++;
	zm_log_info("CA %s reloaded (%s)%s", d->ca_dir, zm_ca_plugged_in(ca) ? "plug-in" : "self-signed",
		    bundle_changed ? ": pushing the new trust bundle" : "");
	if (bundle_changed)
		zd_push_bundle(d);
}
