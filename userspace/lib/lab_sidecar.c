// SPDX-License-Identifier: Apache-2.0
/*
 * The lab's sidecar modes: a proxy per meshed pod behind iptables REDIRECT,
 * the way Istio's sidecar mode captures traffic, so the benchmarks can put
 * ambient next to it on the same lab. Two proxies: our own ztunnel code
 * (`ztunnel --sidecar`) and HAProxy, a proxy people already run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/ca.h"
#include "zmesh/fsutil.h"
#include "zmesh/keymat.h"
#include "lab_int.h"
#include "zmesh/lab.h"
#include "zmesh/labels.h"
#include "zmesh/netns.h"

/*
 * istio-init's rules, reduced to TCP over IPv4: outbound to 15001 unless it
 * is the proxy's own (its group), to lo, or HBONE; inbound to 15006 unless
 * it is for the proxy itself (HBONE/mTLS, metrics, readiness).
 */
static const char rules[] =
	"*nat\n"
	":ZM_INBOUND - [0:0]\n"
	":ZM_OUTPUT - [0:0]\n"
	"-A PREROUTING -p tcp -j ZM_INBOUND\n"
	"-A ZM_INBOUND -p tcp -m multiport --dports 15008,15020,15021 -j RETURN\n"
	"-A ZM_INBOUND -p tcp -j REDIRECT --to-ports 15006\n"
	"-A OUTPUT -p tcp -j ZM_OUTPUT\n"
	"-A ZM_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
	"-A ZM_OUTPUT -o lo -j RETURN\n"
	"-A ZM_OUTPUT -p tcp --dport 15008 -j RETURN\n"
	"-A ZM_OUTPUT -p tcp -j REDIRECT --to-ports 15001\n"
	"COMMIT\n";

_Static_assert(ZM_LAB_PROXY_GID == 1337, "the rules above name the proxy group");

/*
 * HAProxy as a mutual-TLS sidecar. Outbound goes to the original
 * destination's IP (SO_ORIGINAL_DST: server 0.0.0.0) at the peer sidecar's
 * 15008 with the pod's certificate, verifying the peer's chain; the original
 * ip:port travels in a PROXY v2 header ahead of the TLS handshake, so the
 * peer knows which app port was meant (Istio sends it as the CONNECT
 * authority). Inbound TLS needs a client certificate from the mesh CA, then
 * goes to the app over lo. HAProxy cannot check a URI SAN identity, so any
 * mesh workload is accepted (a chain check only).
 */
static const char haproxy_cfg[] =
	"global\n"
	"\tgid %d\n"
	"\tnbthread 1\n"
	"\tmaxconn 8000\n"
	"\tssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets\n"
	"\tssl-default-server-options ssl-min-ver TLSv1.3 no-tls-tickets\n"
	"defaults\n"
	"\tmode tcp\n"
	"\tmaxconn 8000\n"
	"\ttimeout connect 5s\n"
	"\ttimeout client 1h\n"
	"\ttimeout server 1h\n"
	"frontend outbound\n"
	"\tbind 127.0.0.1:15001\n"
	"\tdefault_backend mtls\n"
	"backend mtls\n"
	"\tserver peer 0.0.0.0:15008 ssl crt %s/cert.pem ca-file %s/ca.pem verify required send-proxy-v2\n"
	"frontend inbound_mtls\n"
	"\tbind :15008 ssl crt %s/cert.pem ca-file %s/ca.pem verify required accept-proxy\n"
	"\tdefault_backend app\n"
	"frontend inbound_plain\n"
	"\tbind :15006\n"
	"\tdefault_backend app\n"
	"backend app\n"
	"\tserver app 0.0.0.0\n";

const char *zm_lab_mode_name(enum zm_lab_mode m)
{
	switch (m) {
	case ZM_LAB_SIDECAR:
		return "sidecar";
	case ZM_LAB_SIDECAR_HAPROXY:
		return "sidecar-haproxy";
	default:
		return "ambient";
	}
}

int zm_lab_mode_parse(const char *name, enum zm_lab_mode *m)
{
	static const enum zm_lab_mode all[] = { ZM_LAB_AMBIENT, ZM_LAB_SIDECAR, ZM_LAB_SIDECAR_HAPROXY };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(name, zm_lab_mode_name(all[i]))) {
			*m = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

static int write_file(const char *path, const char *data, mode_t mode, struct zm_error *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t n = strlen(data);
	int rc = 0;

	if (fd < 0)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	if (write(fd, data, n) != (ssize_t)n)
		rc = zm_error_set(e, EIO, "%s: short write", path);
	close(fd);
	return rc;
}

/* The pod's workload certificate and the trust bundle, for HAProxy. */
static int write_certs(struct zm_ca *ca, const struct zm_lab_pod *p, const char *dir, struct zm_error *e)
{
	struct zm_spiffe_id id = { 0 };
	char *key = NULL, *csr = NULL, *chain = NULL, *both = NULL, path[PATH_MAX + 400];
	int rc;

	snprintf(id.td, sizeof(id.td), "cluster.local");
	snprintf(id.ns, sizeof(id.ns), "%s", p->ns);
	snprintf(id.sa, sizeof(id.sa), "%s", p->sa);
	rc = zm_key_csr(&id, &key, &csr, e);
	if (!rc)
		rc = zm_ca_sign(ca, csr, &id, 0, &chain, e);
	if (rc)
		goto out;
	both = malloc(strlen(chain) + strlen(key) + 2);
	if (!both) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	sprintf(both, "%s%s", chain, key);
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	rc = write_file(path, both, 0600, e);
	if (rc)
		goto out;
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	rc = write_file(path, zm_ca_bundle(ca), 0644, e);
out:
	free(key);
	free(csr);
	free(chain);
	free(both);
	return rc;
}

/* The proxy, detached, in the pod's netns and the sidecar's own cgroup. */
static int start_proxy(const struct zm_lab *lab, const struct zm_lab_pod *p, const char *cgroup,
		       char *const argv[], struct zm_error *e)
{
	char log[PATH_MAX + 300];
	pid_t pid;

	snprintf(log, sizeof(log), "%s/logs/sidecar-%s_%s.log", lab->state_dir, p->ns, p->name);
	pid = fork();
	if (pid < 0)
		return zm_error_set(e, errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct zm_error ce = { 0 };
		int saved;

		zm_lab_child_stdio(log, true);
		if (zm_lab_cgroup_join(cgroup, &ce)) {
			fprintf(stderr, "zmeshctl lab: %s\n", ce.msg);
			_exit(126);
		}
		if (zm_netns_enter(p->netns, &saved)) {
			fprintf(stderr, "zmeshctl lab: netns %s\n", p->netns);
			_exit(126);
		}
		close(saved);
		execvp(argv[0], argv);
		fprintf(stderr, "zmeshctl lab: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return 0;
}

/* Has the proxy of @p bound 15001 yet? */
static bool proxy_listening(const struct zm_lab_pod *p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(15001),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int saved, fd = -1;
	bool ok;

	if (zm_netns_enter(p->netns, &saved))
		return false;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	zm_netns_restore(saved);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static bool wanted(struct zm_lab *lab, const struct zm_lab_pod *p)
{
	const struct zm_lab_ns *ns = zm_lab_ns_find(lab, p->ns);

	return ns && zm_enroll_wanted(&ns->labels, &p->labels);
}

int zm_lab_sidecars_up(struct zm_lab *lab, struct zm_error *e)
{
	char *ipt[] = { "iptables-restore", "-w", NULL };
	struct zm_ca *ca = NULL;
	char cadir[PATH_MAX + 8];
	int rc = 0;

	snprintf(cadir, sizeof(cadir), "%s/ca", lab->state_dir);
	rc = zm_ca_open(cadir, &ca, e);
	for (size_t i = 0; i < lab->npods && !rc; i++) {
		struct zm_lab_pod *p = &lab->pods[i];
		char cg[PATH_MAX + 300], dir[PATH_MAX + 300], nspod[160], cfg[PATH_MAX + 400];

		if (!wanted(lab, p))
			continue;
		snprintf(cg, sizeof(cg), "%.3000s/sidecars/%s_%s", lab->cgroup_root, p->ns, p->name);
		snprintf(dir, sizeof(dir), "%.3000s/sidecars/%s_%s", lab->state_dir, p->ns, p->name);
		rc = zm_mkdir_p(cg, 0755);
		if (rc) {
			rc = zm_error_set(e, -rc, "%s: %s", cg, strerror(-rc));
			break;
		}
		rc = zm_mkdir_p(dir, 0700);
		if (rc) {
			rc = zm_error_set(e, -rc, "%s: %s", dir, strerror(-rc));
			break;
		}
		rc = zm_lab_run_in_netns(p->netns, ipt, rules, e);
		if (rc)
			break;
		if (lab->mode == ZM_LAB_SIDECAR) {
			char bin[PATH_MAX + 16];
			char *argv[] = { bin, "--sidecar", nspod, "--lab", lab->name, NULL };

			snprintf(bin, sizeof(bin), "%s/ztunnel", lab->bin_dir);
			snprintf(nspod, sizeof(nspod), "%s/%s", p->ns, p->name);
			rc = start_proxy(lab, p, cg, argv, e);
		} else {
			char *text = NULL;
			char *argv[] = { "haproxy", "-db", "-f", cfg, NULL };

			rc = write_certs(ca, p, dir, e);
			if (rc)
				break;
			if (asprintf(&text, haproxy_cfg, ZM_LAB_PROXY_GID, dir, dir, dir, dir) < 0) {
				rc = zm_error_set(e, ENOMEM, "out of memory");
				break;
			}
			snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", dir);
			rc = write_file(cfg, text, 0644, e);
			free(text);
			if (!rc)
				rc = start_proxy(lab, p, cg, argv, e);
		}
	}
	zm_ca_free(ca);
	/* Apps start after their proxy listens (holdApplicationUntilProxyStarts). */
	for (size_t i = 0; i < lab->npods && !rc; i++) {
		struct timespec d = { 0, 20 * 1000 * 1000 };
		int tries = 500;

		if (!wanted(lab, &lab->pods[i]))
			continue;
		while (!proxy_listening(&lab->pods[i]) && --tries)
			nanosleep(&d, NULL);
		if (!tries) {
			char log[PATH_MAX + 300], last[256] = "";
			FILE *f;

			/* `up` fails and removes the lab with its logs: keep the proxy's last word. */
			snprintf(log, sizeof(log), "%s/logs/sidecar-%s_%s.log", lab->state_dir,
				 lab->pods[i].ns, lab->pods[i].name);
			f = fopen(log, "re");
			while (f && fgets(last, sizeof(last), f))
				;
			if (f)
				fclose(f);
			last[strcspn(last, "\n")] = 0;
			rc = zm_error_set(e, ETIMEDOUT, "the %s sidecar of %s/%s did not listen on 15001 in 10 s (%s)",
					  zm_lab_mode_name(lab->mode), lab->pods[i].ns, lab->pods[i].name,
					  last[0] ? last : "no output");
		}
	}
	return rc;
}
