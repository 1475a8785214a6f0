// SPDX-License-Identifier: Apache-2.0
/*
 * Policy: the config (PeerAuthentication, AuthorizationPolicy) from the
 * lab's store (store.h layout; zmeshd's push later, behind these calls), and
 * the decision for each inbound connection (l4policy.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ztunnel.h"
#include "zmesh/buf.h"
#include "zmesh/lab.h"
#include "zmesh/store.h"

void zt_policy_init(struct zt *z)
{
	zm_cfg_set_init(&z->cfg);
	if (!z->store_dir[0])
		snprintf(z->store_dir, sizeof(z->store_dir), "%s/%s/store", ZM_LAB_STATE_ROOT, z->lab);
}

void zt_policy_free(struct zt *z)
{
	zm_cfg_set_free(&z->cfg);
}

/* The version `current` names, 0 when there is none. */
static uint64_t store_version(const char *dir)
{
	char path[PATH_MAX + 16], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/current", dir);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 4)
		return 0;
	link[n] = '\0';
	return strncmp(link, "gen-", 4) ? 0 : strtoull(link + 4, NULL, 10);
}

int zt_policy_reload(struct zt *z)
{
	char path[PATH_MAX + 32];
	struct zm_cfg_set fresh;
	uint64_t v = store_version(z->store_dir);
	int rc;

	if (v == z->cfg_version)
		return 0;
	/* A version swapped in under us makes this load fail or see the newer
	 * one whole: generations are immutable, only `current` moves. */
	snprintf(path, sizeof(path), "%s/gen-%llu", z->store_dir, (unsigned long long)v);
	zm_cfg_set_init(&fresh);
	rc = v ? zm_cfg_load_path(&fresh, path) : 0;
	if (rc) {
		/* The store only holds validated config: this is damage. Keep
		 * the last good config, as a proxy does when zmeshd sends garbage. */
		zm_log_error("config version %llu: %s (keeping version %llu)", (unsigned long long)v,
			     fresh.nerrs ? fresh.errs[0].text : strerror(-rc),
			     (unsigned long long)z->cfg_version);
		zm_cfg_set_free(&fresh);
		z->cfg_version = v;	/* do not retry the same broken version every tick */
		return rc;
	}
	/* Parsed outside the lock; swapped with the workers paused. */
	zt_write_lock(z);
	zm_cfg_set_free(&z->cfg);
	z->cfg = fresh;
	z->cfg_version = v;
	zt_write_unlock(z);
	zm_log_info("config version %llu: %zu objects", (unsigned long long)v, z->cfg.nobjs);
	return 1;
}

/* An enrolled pod's labels (as ZDS gave them), for selectors. */
static const struct zm_labels *pod_labels(struct zt *z, const struct zt_pod *p)
{
	(void)z;
	return &p->labels;
}

bool zt_pod_strict(struct zt *z, const struct zt_pod *p)
{
	struct zm_l4_workload w = { .ns = p->ns, .labels = pod_labels(z, p) };

	return zm_l4_strict_everywhere(&z->cfg, &w);
}

bool zt_policy_check(struct zt *z, const struct zt_pod *p, const char *principal, struct in_addr src,
		     uint16_t port, const char *conn_desc)
{
	struct zm_l4_workload w = { .ns = p->ns, .labels = pod_labels(z, p) };
	struct zm_l4_conn c = { .principal = principal, .family = AF_INET, .dst_port = port };
	struct zm_l4_verdict v;

	memcpy(c.src_ip, &src, 4);
	memcpy(c.dst_ip, &p->ip, 4);
	if (!principal && zm_l4_mtls_mode(&z->cfg, &w, port) == ZM_MTLS_STRICT) {
		zt_count(z->st.denied_mtls);
		zm_log_info("pod %s: %s refused: plaintext to port %u under STRICT mTLS", p->id, conn_desc,
			    port);
		return false;
	}
	zm_l4_authorize(&z->cfg, &w, &c, &v);
	if (v.allow)
		return true;
	zt_count(z->st.denied_authz);
	zm_log_info("pod %s: %s from %s denied: %s%s%s", p->id, conn_desc,
		    principal ? principal : inet_ntoa(src), v.reason, v.policy[0] ? " " : "", v.policy);
	return false;
}

void zt_policy_metrics(struct zt *z, struct zm_buf *b)
{
	zm_buf_printf(b, "# HELP zmesh_ztunnel_denied_total Inbound connections refused by policy\n"
		      "# TYPE zmesh_ztunnel_denied_total counter\n"
		      "zmesh_ztunnel_denied_total{reason=\"authorization_policy\"} %llu\n"
		      "zmesh_ztunnel_denied_total{reason=\"mtls_strict\"} %llu\n"
		      "# TYPE zmesh_ztunnel_config_version gauge\nzmesh_ztunnel_config_version %llu\n"
		      "# HELP zmesh_ztunnel_hbone_bundle_drained_total HBONE connections drained: the peer no "
		      "longer verifies against the trust bundle\n"
		      "# TYPE zmesh_ztunnel_hbone_bundle_drained_total counter\n"
		      "zmesh_ztunnel_hbone_bundle_drained_total %llu\n",
		      (unsigned long long)zt_read(z->st.denied_authz), (unsigned long long)zt_read(z->st.denied_mtls),
		      (unsigned long long)z->cfg_version, (unsigned long long)zt_read(z->st.bundle_drained));
}
