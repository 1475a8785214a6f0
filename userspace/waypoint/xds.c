// SPDX-License-Identifier: Apache-2.0
/*
 * The waypoint (and gateway) as zmeshd's client (cfgclient.h), as ztunnel
 * is: its own bootstrap credential (nodeid.h, a waypoint or gateway
 * identity minted by the lab), its view of the config on the :15012 stream
 * (each version built into a snapshot, ACKed, or NACKed with the reason
 * while the last good one keeps serving), and its workload certificate
 * (ns/<ns>/sa/<sa>) through a CSR, renewed at half life and when zmeshd
 * pushes new roots (the answer carries the bundle). Everything runs on
 * the main thread, from the accept loop's poll.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zmesh/cfgclient.h"
#include "zmesh/config.h"
#include "zmesh/keymat.h"
#include "zmesh/log.h"
#include "waypoint.h"

static struct {
	struct zm_cfgclient *c;
	const struct wp_opts *o;
	struct zm_spiffe_id id;
	bool want_cert, have_cert, cert_pending, have_config;
	time_t renew_at;
} x;

static int on_config(void *arg, uint64_t version, json_t *objects, char *why, size_t whysz)
{
	struct zm_cfg_set set;
	int rc;

	(void)arg;
	zm_cfg_set_init(&set);
	rc = zm_cfgclient_to_set(objects, &set, why, whysz);
	if (!rc)
		rc = wp_build(x.o, &set, version, why, whysz);
	zm_cfg_set_free(&set);
	if (rc) {
		zm_log_error("config version %llu from zmeshd refused: %s; keeping the last good one",
			     (unsigned long long)version, why);
		return rc;
	}
	x.have_config = true;
	return 0;
}

static void on_cert(void *arg, int rc, struct zm_svid_cert *cert, const char *bundle, const char *error)
{
	time_t now = time(NULL);

	(void)arg;
	x.cert_pending = false;
	if (rc) {
		zm_log_error("certificate from zmeshd for ns/%s/sa/%s: %s", x.id.ns, x.id.sa,
			     error ? error : strerror(-rc));
		x.renew_at = now + 2;
		return;
	}
	if (!zm_spiffe_eq(&cert->id, &x.id) ||
	    wp_hbone_set_cert(cert->key_pem, cert->chain_pem, bundle, x.id.ns, x.id.sa)) {
		zm_log_error("certificate from zmeshd for ns/%s/sa/%s: not usable", x.id.ns, x.id.sa);
		x.renew_at = now + 2;
		return;
	}
	zm_log_info("%s certificate for spiffe://%s/ns/%s/sa/%s from zmeshd (valid until %ld)",
		    x.have_cert ? "renewed" : "got", x.id.td, x.id.ns, x.id.sa, (long)cert->not_after);
	x.have_cert = true;
	x.renew_at = zm_svid_cert_renew_at(cert, now, zm_rand_unit());
	/* gateway ISTIO_MUTUAL servers present this certificate: rebuild them */
	if (x.o->gateway)
		wp_xds_rebuild();
}

/* New roots (a rotation step): a fresh certificate brings them, with the current signer's leaf. */
static void on_bundle(void *arg, const char *bundle_pem)
{
	(void)arg;
	(void)bundle_pem;
	if (x.have_cert) {
		zm_log_info("zmeshd sent a new trust bundle: renewing the certificate to take it");
		x.renew_at = 0;
	}
}

int wp_xds_start(const struct wp_opts *o, const char *server, const char *cred_dir, const char *ns,
		 const char *sa)
{
	struct zm_cfgclient_opts co = { .server = server, .cred_dir = cred_dir, .on_config = on_config,
					.on_bundle = on_bundle, .proxy = o->gateway ? "gateway" : "waypoint" };
	struct zm_error e = { "" };

	x.o = o;
	x.want_cert = o->hbone_port > 0;
	if (zm_spiffe_make(&x.id, "cluster.local", ns, sa)) {
		zm_log_error("zmeshd: identity ns/%s/sa/%s is not valid", ns, sa);
		return -EINVAL;
	}
	if (zm_cfgclient_new(&co, &x.c, &e)) {
		zm_log_error("zmeshd %s: %s", server, e.msg);
		return -EINVAL;
	}
	zm_log_info("control plane: zmeshd at %s (credential %s): config stream%s", server, cred_dir,
		    x.want_cert ? " and CSRs" : "");
	wp_xds_process();
	return 0;
}

int wp_xds_fd(void)
{
	return x.c ? zm_cfgclient_fd(x.c) : -1;
}

void wp_xds_process(void)
{
	if (!x.c)
		return;
	zm_cfgclient_process(x.c);
	if (x.want_cert && !x.cert_pending && zm_cfgclient_connected(x.c) &&
	    time(NULL) >= x.renew_at &&
	    zm_cfgclient_request_cert(x.c, &x.id, on_cert, NULL) == 0)
		x.cert_pending = true;
}

bool wp_xds_on(void)
{
	return x.c != NULL;
}

bool wp_xds_ready(void)
{
	return x.c && x.have_config && (!x.want_cert || x.have_cert);
}

int wp_xds_rebuild(void)
{
	json_t *objs = x.c ? zm_cfgclient_config(x.c) : NULL;
	bool have;
	uint64_t v = x.c ? zm_cfgclient_version(x.c, &have) : 0;
	struct zm_cfg_set set;
	char why[ZM_ERROR_MAX] = "";
	int rc;

	if (!objs)
		return 0;
	zm_cfg_set_init(&set);
	rc = zm_cfgclient_to_set(objs, &set, why, sizeof(why));
	if (!rc)
		rc = wp_build(x.o, &set, v, why, sizeof(why));
	if (rc)
		zm_log_error("config version %llu: %s", (unsigned long long)v, why);
	zm_cfg_set_free(&set);
	return rc;
}

void wp_xds_stop(void)
{
	zm_cfgclient_free(x.c);
	x.c = NULL;
}
