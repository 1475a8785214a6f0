// SPDX-License-Identifier: Apache-2.0
/* zmeshctl proxy-status: each proxy's config version and sync state, from zmeshd's :15014. */
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "zmesh/buf.h"
#include "zmesh/lab.h"
#include "zmesh/netns.h"

static const char usage_text[] =
	"usage: zmeshctl proxy-status [--addr HOST:PORT | --name LAB] [-o json]\n"
	"  HOST:PORT is zmeshd's monitoring address (default 127.0.0.1:15014);\n"
	"  --name LAB (default $ZMESH_LAB) asks the zmeshd of a lab (in the lab's underlay netns)\n";

/* GET @path from @addr over plain HTTP/1.1; the body into @body. */
static int http_get(const char *addr, const char *path, struct zm_buf *body, char *err, size_t errsz)
{
	char host[256], port[16], buf[4096];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai = NULL;
	struct zm_buf resp = { 0 };
	size_t hl;
	int fd = -1, rc = -EINVAL;
	char *hdr_end;

	if (!colon || (hl = (size_t)(colon - addr)) == 0 || hl >= sizeof(host) || strlen(colon + 1) >= sizeof(port)) {
		snprintf(err, errsz, "%s: want HOST:PORT", addr);
		return -EINVAL;
	}
	memcpy(host, addr, hl);
	host[hl] = 0;
	if (host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (getaddrinfo(host, port, &hints, &ai)) {
		snprintf(err, errsz, "%s: cannot resolve", addr);
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		rc = -errno;
		snprintf(err, errsz, "cannot reach zmeshd at %s: %s", addr, strerror(errno));
		goto out;
	}
	dprintf(fd, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0) {
			rc = -ETIMEDOUT;
			snprintf(err, errsz, "zmeshd at %s: no answer", addr);
			goto out;
		}
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (zm_buf_len(&resp) + (size_t)n > (64u << 20) || zm_buf_append(&resp, buf, (size_t)n)) {
			snprintf(err, errsz, "answer too large");
			goto out;
		}
	}
	hdr_end = strstr(zm_buf_cstr(&resp), "\r\n\r\n");
	if (strncmp(zm_buf_cstr(&resp), "HTTP/1.1 200", 12) || !hdr_end) {
		snprintf(err, errsz, "zmeshd at %s: unexpected answer: %.60s", addr, zm_buf_cstr(&resp));
		goto out;
	}
	rc = zm_buf_puts(body, hdr_end + 4);
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	zm_buf_free(&resp);
	return rc;
}

static void num(char *out, size_t sz, json_t *v)
{
	if (json_is_integer(v))
		snprintf(out, sz, "%lld", (long long)json_integer_value(v));
	else
		snprintf(out, sz, "-");
}

static int cmd_proxy_status(int argc, char **argv)
{
	const char *addr = NULL, *lab = getenv("ZMESH_LAB");
	struct zm_buf body = { 0 };
	char err[512], sent[32], acked[32];
	bool as_json = false;
	json_t *j = NULL, *p;
	size_t i;
	int rc = 1;

	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--addr") && a + 1 < argc) {
			addr = argv[++a];
		} else if (!strcmp(argv[a], "--name") && a + 1 < argc) {
			lab = argv[++a];
		} else if (!strcmp(argv[a], "-o") && a + 1 < argc && !strcmp(argv[a + 1], "json")) {
			as_json = true;
			a++;
		} else if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
			fputs(usage_text, stdout);
			return 0;
		} else {
			fprintf(stderr, "zmeshctl proxy-status: unexpected argument '%s'\n%s", argv[a], usage_text);
			return 2;
		}
	}
	/* A lab's zmeshd monitors on 127.0.0.1 inside the lab's underlay netns. */
	if (!addr && lab) {
		char ul[96];
		int saved;

		snprintf(ul, sizeof(ul), "zm-%s-ul", lab);
		if (zm_lab_name_check(lab, NULL) || zm_netns_enter(ul, &saved)) {
			fprintf(stderr, "zmeshctl proxy-status: lab %s: not up (no netns %s)\n", lab, ul);
			return 1;
		}
		close(saved);
	}
	if (!addr)
		addr = "127.0.0.1:15014";
	if (http_get(addr, "/debug/syncz", &body, err, sizeof(err))) {
		fprintf(stderr, "zmeshctl proxy-status: %s\n", err);
		goto out;
	}
	if (as_json) {
		fputs(zm_buf_cstr(&body), stdout);
		rc = 0;
		goto out;
	}
	j = json_loads(zm_buf_cstr(&body), 0, NULL);
	if (!json_is_array(json_object_get(j, "proxies"))) {
		fprintf(stderr, "zmeshctl proxy-status: zmeshd sent no proxy list\n");
		goto out;
	}
	printf("%-40s %-9s %-8s %-8s %-13s %s\n", "NAME", "TYPE", "VERSION", "ACKED", "SYNCED", "ERROR");
	json_array_foreach(json_object_get(j, "proxies"), i, p) {
		const char *e = json_string_value(json_object_get(p, "error"));

		num(sent, sizeof(sent), json_object_get(p, "sent"));
		num(acked, sizeof(acked), json_object_get(p, "acked"));
		printf("%-40s %-9s %-8s %-8s %-13s %s\n", json_string_value(json_object_get(p, "name")) ?: "?",
		       json_string_value(json_object_get(p, "type")) ?: "?", sent, acked,
		       json_string_value(json_object_get(p, "status")) ?: "?", e ? e : "");
	}
	rc = 0;
out:
	json_decref(j);
	zm_buf_free(&body);
	return rc;
}

/* ZM_CMD takes an identifier; istioctl's name has a dash, so register by hand. */
static struct zmctl_cmd proxy_status_cmd = {
	.name = "proxy-status", .run = cmd_proxy_status,
	.help = "proxy-status [--addr H:P]  each proxy's config version and sync state (zmeshd)" };
__attribute__((constructor)) static void proxy_status_reg(void)
{
	zmctl_cmd_register(&proxy_status_cmd);
}
