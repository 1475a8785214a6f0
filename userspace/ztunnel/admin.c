// SPDX-License-Identifier: Apache-2.0
/*
 * The admin endpoint, Istio's ztunnel :15000, on 127.0.0.1 of the node's
 * netns only (it shows identities and changes the log level):
 *   GET /config_dump     the node, its pods, the config version and the
 *                        policies in force (JSON)
 *   GET /certs           each pod's certificate: identity, validity, renewal
 *   GET /logging         the log level; /logging?level=debug|info|warn|error sets it
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ztunnel.h"
#include "zmesh/buf.h"

static void reply(int fd, int status, const char *type, const char *body, size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n", status,
			 status == 200 ? "OK" : status == 400 ? "Bad Request" : "Not Found", type, len);

	(void)!write(fd, head, (size_t)n);
	(void)!write(fd, body, len);
}

static json_t *config_dump(struct zt *z)
{
	json_t *j = json_object(), *pods = json_array(), *pol = json_array(), *objs = json_array();
	json_t *workers = json_array();
	uint64_t opened, closed;

	json_object_set_new(j, "node", json_string(z->node));
	json_object_set_new(j, "lab", json_string(z->lab));
	json_object_set_new(j, "config_source", json_string(z->store_dir));
	json_object_set_new(j, "config_version", json_integer((json_int_t)z->cfg_version));
	json_object_set_new(j, "fastpath", json_boolean(z->fastpath));
	for (int i = 0; i < ZT_MAX_PODS; i++) {
		struct zt_pod *p = &z->pods[i];
		char id[ZM_SPIFFE_MAX] = "";

		if (!p->used)
			continue;
		zm_spiffe_format(&p->id_spiffe, id, sizeof(id));
		json_array_append_new(pods, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b}", "namespace", p->ns,
						      "name", p->name, "ip", inet_ntoa(p->ip), "identity", id,
						      "workload", p->workload, "strict_mtls", p->strict,
						      "listening", p->l[0].fd >= 0));
	}
	json_object_set_new(j, "workloads", pods);
	/* The cluster routing sees, and where it came from. */
	{
		json_t *cl = json_pack("{s:s}", "source", z->view == &z->pushed ? "zmeshd" : "lab state");
		json_t *cp = json_array(), *cs = json_array();

		for (size_t i = 0; i < z->view->npods; i++) {
			const struct zm_lab_pod *lp = &z->view->pods[i];
			char pod[2 * ZM_K8S_NAME_MAX + 2];

			/* "ns/name", so these never read as enrolled "workloads" */
			snprintf(pod, sizeof(pod), "%s/%s", lp->ns, lp->name);
			json_array_append_new(cp, json_pack("{s:s, s:s, s:s, s:s, s:b}", "pod", pod,
							    "ip", inet_ntoa(lp->ip), "node", lp->node,
							    "serviceAccount", lp->sa, "meshed", zt_pod_meshed(z, lp)));
		}
		for (size_t i = 0; i < z->view->nservices; i++) {
			const struct zm_lab_svc *sv = &z->view->services[i];

			char svc[2 * ZM_K8S_NAME_MAX + 2];

			snprintf(svc, sizeof(svc), "%s/%s", sv->ns, sv->name);
			json_array_append_new(cs, json_pack("{s:s, s:s}", "service", svc,
							    "clusterIP", inet_ntoa(sv->cluster_ip)));
		}
		json_object_set_new(cl, "pods", cp);
		json_object_set_new(cl, "services", cs);
		json_object_set_new(j, "cluster", cl);
	}
	for (size_t i = 0; i < z->cfg.nobjs; i++) {
		const struct zm_cfg_obj *o = z->cfg.objs[i];
		char key[400];

		/* Everything this ztunnel holds (with zmeshd: exactly its view). */
		snprintf(key, sizeof(key), "%s/%s/%s", zm_kind_name(o->kind),
			 zm_kind_cluster_scoped(o->kind) || !o->meta.ns.v ? "" : o->meta.ns.v,
			 o->meta.name.v ? o->meta.name.v : "");
		json_array_append_new(objs, json_string(key));
		if (o->kind == ZM_K_PEERAUTHENTICATION || o->kind == ZM_K_AUTHORIZATIONPOLICY) {
			json_t *doc = zm_cfg_obj_to_json(o);

			if (doc)
				json_array_append_new(pol, doc);
		}
	}
	json_object_set_new(j, "policies", pol);
	json_object_set_new(j, "objects", objs);
	zt_workers_sum(z, &opened, &closed);
	json_object_set_new(j, "stats", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
		"connections_opened", (json_int_t)opened, "connections_closed", (json_int_t)closed,
		"refused", (json_int_t)zt_read(z->st.refused), "denied_authz", (json_int_t)zt_read(z->st.denied_authz),
		"denied_mtls", (json_int_t)zt_read(z->st.denied_mtls), "cert_renewals", (json_int_t)zt_read(z->st.renewed)));
	/* Per worker: how the kernel spread the connections (SO_REUSEPORT). */
	for (unsigned i = 0; i < z->nworkers; i++) {
		struct zt_worker *w = &z->workers[i];

		json_array_append_new(workers, json_pack("{s:i, s:I, s:I, s:I, s:I}", "worker", (int)i,
			"connections_opened", (json_int_t)zt_read(w->opened),
			"connections_closed", (json_int_t)zt_read(w->closed),
			"hbone_client_connections", (json_int_t)zt_read(w->hconns[0]),
			"hbone_server_connections", (json_int_t)zt_read(w->hconns[1])));
	}
	json_object_set_new(j, "workers", workers);
	return j;
}

void zt_admin_serve(struct zt *z, int fd, const char *req)
{
	struct zm_buf b = { 0 };

	if (!strncmp(req, "GET /config_dump ", 17)) {
		json_t *j = config_dump(z);
		char *s = json_dumps(j, JSON_INDENT(2));

		if (s)
			reply(fd, 200, "application/json", s, strlen(s));
		free(s);
		json_decref(j);
	} else if (!strncmp(req, "GET /certs ", 11)) {
		zt_certs_json(z, &b);
		reply(fd, 200, "application/json", zm_buf_data(&b), zm_buf_len(&b));
	} else if (!strncmp(req, "GET /logging ", 13)) {
		zm_buf_printf(&b, "level: %s\n", zm_log_level_name(zm_log_get_level()));
		reply(fd, 200, "text/plain", zm_buf_data(&b), zm_buf_len(&b));
	} else if (!strncmp(req, "GET /logging?level=", 19) || !strncmp(req, "POST /logging?level=", 20)) {
		const char *v = strchr(req, '=') + 1;
		char name[16];
		size_t n = strcspn(v, " &\r\n");
		int lvl;

		snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1), v);
		lvl = zm_log_level_parse(name);
		if (lvl < 0) {
			zm_buf_printf(&b, "unknown level \"%s\": want error, warn, info or debug\n", name);
			reply(fd, 400, "text/plain", zm_buf_data(&b), zm_buf_len(&b));
		} else {
			zm_log_set_level((enum zm_log_level)lvl);
			zm_log_info("log level set to %s (admin)", name);
			zm_buf_printf(&b, "level: %s\n", name);
			reply(fd, 200, "text/plain", zm_buf_data(&b), zm_buf_len(&b));
		}
	} else {
		static const char nf[] = "not found: try /config_dump, /certs, /logging\n";

		reply(fd, 404, "text/plain", nf, sizeof(nf) - 1);
	}
	zm_buf_free(&b);
}
