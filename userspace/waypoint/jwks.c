// SPDX-License-Identifier: Apache-2.0
/*
 * jwksUri fetching, off the request path (CVE-2024-45809): one thread keeps
 * a cache of JWKS documents by URI. A config reload lists the URIs it needs
 * (wp_jwks_want) and builds with whatever the cache holds (a rule without
 * keys answers 401, never stalls); when a fetch brings a new or changed
 * document the thread asks for a reload, which rebuilds with it. Documents
 * are refetched every 10 minutes; a failed fetch keeps the old copy and is
 * retried after 5 s. Plain http:// only (no TLS trust store for https yet).
 * Bounded: 64 URIs, 256 KiB (ZM_JWKS_MAX_LEN) per document, 5 s per fetch.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ZM_JWKS_MAX_LEN of zmesh/jwt.h (which cannot meet istio.h in one file) */
#define WP_JWKS_MAX_LEN (256 * 1024)
#include "zmesh/log.h"
#include "waypoint.h"

#define MAX_URIS 64
#define REFRESH_S 600
#define RETRY_S 5

struct jwks_ent {
	char *uri;
	char *doc;		/* NULL until fetched */
	time_t next;		/* next fetch (monotonic seconds) */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct jwks_ent ents[MAX_URIS];
static size_t nents;
static bool started;
static void (*on_change)(void);

static time_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* GET http://host[:port]/path; the body (NUL-terminated) or NULL. */
static char *http_get(const char *uri)
{
	char host[256], port[8] = "80", req[1024];
	const char *p = uri + 7, *slash = strchr(p, '/'), *colon;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct zm_buf in = { 0 };
	char *body = NULL;
	int fd = -1;
	time_t end = mono_s() + 5;

	if (strncmp(uri, "http://", 7))
		return NULL;
	snprintf(host, sizeof(host), "%.*s", (int)(slash ? (size_t)(slash - p) : strlen(p)), p);
	if ((colon = strchr(host, ':'))) {
		snprintf(port, sizeof(port), "%s", colon + 1);
		host[colon - host] = '\0';
	}
	if (getaddrinfo(host, port, &hints, &ai) || !ai)
		goto out;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen))
		goto out;
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: application/json\r\n\r\n",
		 slash ? slash : "/", host);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		goto out;
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char *dst;
		ssize_t r;
		int left = (int)(end - mono_s()) * 1000;

		if (left <= 0 || poll(&pf, 1, left) <= 0)
			goto out;
		dst = zm_buf_reserve(&in, 16384);
		if (!dst)
			goto out;
		r = recv(fd, dst, 16384, 0);
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		zm_buf_commit(&in, (size_t)r);
		if (zm_buf_len(&in) > WP_JWKS_MAX_LEN + 8192)
			goto out;
	}
	{
		const char *d = zm_buf_cstr(&in), *hdr_end = d ? strstr(d, "\r\n\r\n") : NULL;

		/* HTTP/1.0 read to EOF: the body is everything after the header block */
		if (d && hdr_end && !strncmp(d, "HTTP/1.", 7) && !strncmp(d + 8, " 200", 4))
			body = strdup(hdr_end + 4);
	}
out:
	if (ai)
		freeaddrinfo(ai);
	if (fd >= 0)
		close(fd);
	zm_buf_free(&in);
	return body;
}

static void *fetch_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		time_t now = mono_s(), wake = now + 60;

		for (size_t i = 0; i < nents; i++) {
			char *uri, *doc;
			bool changed;

			if (ents[i].next > now) {
				if (ents[i].next < wake)
					wake = ents[i].next;
				continue;
			}
			uri = strdup(ents[i].uri);
			pthread_mutex_unlock(&mu);
			doc = uri ? http_get(uri) : NULL;
			pthread_mutex_lock(&mu);
			changed = doc && (!ents[i].doc || strcmp(doc, ents[i].doc));
			if (doc) {
				free(ents[i].doc);
				ents[i].doc = doc;
				ents[i].next = mono_s() + REFRESH_S;
			} else {
				ents[i].next = mono_s() + RETRY_S;
				zm_log_warn("jwks: fetching %s failed; retrying in %ds", uri ? uri : "?", RETRY_S);
			}
			free(uri);
			if (changed && on_change)
				on_change();
			now = mono_s();
		}
		/* sleep until the earliest next fetch (those just made included) */
		for (size_t i = 0; i < nents; i++)
			if (ents[i].next < wake)
				wake = ents[i].next;
		{
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wake > now ? wake - now : 1;
			pthread_cond_timedwait(&cv, &mu, &ts);
		}
	}
	return NULL;
}

void wp_jwks_init(void (*changed)(void))
{
	on_change = changed;
}

void wp_jwks_want(const char *uri)
{
	pthread_t th;

	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nents; i++)
		if (!strcmp(ents[i].uri, uri))
			goto out;
	if (nents == MAX_URIS || strncmp(uri, "http://", 7)) {
		zm_log_warn("jwks: %s not fetched (%s)", uri,
			    nents == MAX_URIS ? "too many jwksUri" : "only http:// is supported");
		goto out;
	}
	ents[nents].uri = strdup(uri);
	if (!ents[nents].uri)
		goto out;
	ents[nents++].next = 0;
	if (!started && pthread_create(&th, NULL, fetch_thread, NULL) == 0) {
		pthread_detach(th);
		started = true;
	}
	pthread_cond_signal(&cv);
out:
	pthread_mutex_unlock(&mu);
}

char *wp_jwks_get(const char *uri, void *arg)
{
	char *doc = NULL;

	(void)arg;
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nents; i++)
		if (!strcmp(ents[i].uri, uri) && ents[i].doc)
			doc = strdup(ents[i].doc);
	pthread_mutex_unlock(&mu);
	return doc;
}
