// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: a whole waypoint connection (userspace/waypoint, all
 * but main.c) fed attacker bytes: the HTTP/1 reader, the HTTP/2 front end
 * (prior knowledge: nghttp2's parser with our callbacks, a worker thread per
 * stream), the L7 engine and the upstream path, against a config with a
 * fault, a direct response, a deny rule and a service whose only endpoint
 * refuses connections (127.0.0.1:1: connect failure, retries, 503). The
 * input goes in, the write side is shut, the connection is served to its
 * end on this thread (wp_conn_thread) while another drains the answers.
 * Checks: no crash, no sanitizer report, no leak (LSan at exit), and that
 * the connection ends (a hang is libFuzzer's -timeout).
 *
 * Input: byte 0, bit 0 set: the HTTP/2 client preface and an empty
 * SETTINGS frame go first (so mutations start inside HTTP/2); the rest is
 * the wire bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../../userspace/waypoint/waypoint.h"
#include "../fuzz_svc.h"
#include "zmesh/config.h"
#include "zmesh/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_wp_cfg[] =
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: default}\n"
	"spec:\n  hosts: [a]\n  http:\n"
	"  - match: [{uri: {prefix: /abort}}]\n    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}\n"
	"    route: [{destination: {host: a}}]\n"
	"  - match: [{uri: {prefix: /direct}}]\n    directResponse: {status: 200, body: {string: hi}}\n"
	"  - route: [{destination: {host: a}}]\n    retries: {attempts: 1, retryOn: connect-failure}\n---\n"
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: d, namespace: default}\n"
	"spec:\n  action: DENY\n  rules:\n  - to: [{operation: {paths: [/admin*]}}]\n";

/* What main.c provides in the waypoint binary. */
const struct wp_opts *wp_options;
static struct wp_snap *fuzz_snap;

struct wp_snap *wp_snap_get(void)
{
	if (fuzz_snap)
		atomic_fetch_add(&fuzz_snap->ref, 1);
	return fuzz_snap;
}

void wp_snap_put(struct wp_snap *s)
{
	if (s)
		atomic_fetch_sub(&s->ref, 1);	/* the fuzz snapshot lives for the process */
}

int wp_build(const struct wp_opts *o, struct zm_cfg_set *set, uint64_t version, char *why, size_t whysz)
{
	(void)o, (void)set, (void)version, (void)why, (void)whysz;
	return -ENOSYS;
}

int wp_reload(const struct wp_opts *o)
{
	(void)o;
	return -ENOSYS;
}

int wp_listen(const char *spec)
{
	(void)spec;
	return -ENOSYS;
}

static void fuzz_wp_init(void)
{
	static struct wp_opts o = { .listen = "", .access_log = "off", .header_timeout_ms = 300,
				    .idle_timeout_ms = 300, .jwks_refresh_s = 600 };
	struct zm_cfg_set set;
	struct zm_l7_view v = { 0 };
	struct zm_l7_opts lo = { 0 };
	struct zm_error e;
	struct zm_l7_svc *s;

	signal(SIGPIPE, SIG_IGN);
	if (!getenv("ZM_FUZZ_LOG"))	/* quiet: every input is an error somewhere */
		zm_log_set_level((enum zm_log_level)(ZM_LOG_ERROR + 1));
	wp_options = &o;
	if (wp_access_log_open(o.access_log) < 0)
		abort();
	zm_cfg_set_init(&set);
	if (zm_cfg_load_buf(&set, "fuzz.yaml", fuzz_wp_cfg, strlen(fuzz_wp_cfg)) || zm_cfg_validate(&set, NULL))
		abort();
	s = fuzz_svc_a(&v, 1);
	snprintf(s->eps[0].addr, sizeof(s->eps[0].addr), "127.0.0.1");
	s->eps[0].tport[0] = 1;
	fuzz_snap = calloc(1, sizeof(*fuzz_snap));
	if (!fuzz_snap)
		abort();
	atomic_init(&fuzz_snap->ref, 1);
	if (zm_l7_build(&set, &v, &lo, &fuzz_snap->l7, &e))
		abort();
	zm_cfg_set_free(&set);
}

static void *fuzz_drain(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];

	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (getenv("ZM_FUZZ_LOG"))	/* what the waypoint answered */
			fwrite(buf, 1, (size_t)n, stderr);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
	struct sockaddr_storage ss = { .ss_family = AF_INET };
	struct conn *c;
	pthread_t th;
	int sv[2];

	if (!fuzz_snap)
		fuzz_wp_init();
	if (size < 1 || size > 65536)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	if (pthread_create(&th, NULL, fuzz_drain, (void *)(intptr_t)sv[0]))
		abort();
	/* Unix stream sockets hold a few hundred KiB: the input fits before anyone reads. */
	if ((data[0] & 1) && write(sv[0], preface, sizeof(preface) - 1) != sizeof(preface) - 1)
		abort();
	if (size > 1 && write(sv[0], data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	shutdown(sv[0], SHUT_WR);
	c = wp_conn_new(sv[1], &ss);
	if (!c)
		abort();
	wp_conn_thread(c);	/* serves to the end, closes sv[1], frees c */
	pthread_join(th, NULL);
	close(sv[0]);
	return 0;
}
