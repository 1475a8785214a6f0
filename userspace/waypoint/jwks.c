// SPDX-License-Identifier: Apache-2.0
/*
 * jwksUri fetching, off the request path (CVE-2024-45809): one thread keeps
 * a cache of JWKS documents by URI. A config reload lists the URIs it needs
 * (wp_jwks_want) and builds with whatever the cache holds (a rule without
 * keys answers 401, never stalls); when a fetch brings a new or changed
 * document the thread asks for a reload, which rebuilds with it. Documents
 * are refetched every --jwks-refresh seconds (10 minutes); a failed fetch
 * keeps the old copy and is retried after 5 s. http:// or https:// through
 * httpc.h: TLS 1.2+, the server verified against --jwks-ca or the system
 * store, its name against the URI's host; no verified document, no keys:
 * that issuer's tokens get 401 (fail closed).
 * Bounded: 64 URIs, 256 KiB (ZM_JWKS_MAX_LEN) per document, 5 s per fetch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ZM_JWKS_MAX_LEN of zmesh/jwt.h (which cannot meet istio.h in one file) */
#define WP_JWKS_MAX_LEN (256 * 1024)
#include "zmesh/httpc.h"
#include "zmesh/log.h"
#include "waypoint.h"

#define MAX_URIS 64
#define REFRESH_S 600		/* Envoy's remote_jwks cache_duration default */
#define RETRY_S 5
#define FETCH_MS 5000

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

static int refresh_s(void)
{
	return wp_options && wp_options->jwks_refresh_s > 0 ? wp_options->jwks_refresh_s : REFRESH_S;
}

static time_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* GET @uri (http or https, httpc.h); the body (NUL-terminated) or NULL, the reason logged. */
static char *jwks_get(const char *uri)
{
	struct zm_httpc_opts o = { .ca_file = wp_options ? wp_options->jwks_ca : NULL,
				   .timeout_ms = FETCH_MS, .max_body = WP_JWKS_MAX_LEN,
				   .accept = "application/json" };
	struct zm_buf body = { 0 };
	struct zm_error e = { "" };
	char *doc = NULL;
	int status = 0;

	if (zm_httpc_request("GET", uri, NULL, 0, &o, &status, &body, &e) < 0)
		zm_log_warn("jwks: fetching %s failed: %s; retrying in %ds", uri, e.msg, RETRY_S);
	else if (status != 200)
		zm_log_warn("jwks: fetching %s failed: HTTP %d; retrying in %ds", uri, status, RETRY_S);
	else if (zm_buf_cstr(&body))
		doc = strdup(zm_buf_cstr(&body));
	else
		doc = strdup("");
	zm_buf_free(&body);
	return doc;
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
			doc = uri ? jwks_get(uri) : NULL;
			pthread_mutex_lock(&mu);
			changed = doc && (!ents[i].doc || strcmp(doc, ents[i].doc));
			if (doc) {
				free(ents[i].doc);
				ents[i].doc = doc;
				ents[i].next = mono_s() + refresh_s();
				if (changed)
					zm_log_info("jwks: %s fetched (%zu bytes)", uri, strlen(doc));
			} else {
				ents[i].next = mono_s() + RETRY_S;
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
	struct zm_error e = { "" };
	struct zm_url u;
	pthread_t th;

	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nents; i++)
		if (!strcmp(ents[i].uri, uri))
			goto out;
	if (nents == MAX_URIS || zm_url_parse(uri, &u, &e) < 0) {
		zm_log_warn("jwks: %s not fetched (%s)", uri, nents == MAX_URIS ? "too many jwksUri" : e.msg);
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
