// SPDX-License-Identifier: Apache-2.0
/*
 * The watched directory (`zmeshd --watch-dir DIR`): manifests dropped there
 * are applied to the store as `zmeshctl apply -f DIR` would, all or
 * nothing. A file that is written, renamed in or removed makes zmeshd read
 * the whole directory again a moment later (editors write in several
 * steps); a directory that does not validate is logged with every
 * file:line:col error and changes nothing. Removing a file does not delete
 * its objects from the store (as with kubectl apply without --prune):
 * `zmeshctl delete` does that.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "zmeshd.h"
#include "zmesh/store.h"

#define SETTLE_MS 300	/* quiet time after the last event before reading */

int zd_watch_start(struct zd *d)
{
	if (!d->watch_dir)
		return 0;
	d->wfd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->wfd < 0 || inotify_add_watch(d->wfd, d->watch_dir,
					    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE) < 0) {
		zm_log_error("--watch-dir %s: %s", d->watch_dir, strerror(errno));
		return -errno;
	}
	d->wev = (struct zd_ev){ .kind = ZD_WATCH };
	d->watch_due = zd_now_ms();	/* what is there already */
	return d->wfd;
}

void zd_watch_event(struct zd *d)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(d->wfd, buf, sizeof(buf)) > 0)
		;
	d->watch_due = zd_now_ms() + SETTLE_MS;
}

void zd_watch_poll(struct zd *d)
{
	struct zm_cfg_set s;
	struct zm_store *st = NULL;
	struct zm_error e = { 0 };
	uint64_t version = 0;
	int rc;

	if (!d->watch_dir || !d->watch_due || zd_now_ms() < d->watch_due)
		return;
	d->watch_due = 0;
	zm_cfg_set_init(&s);
	rc = zm_cfg_load_path(&s, d->watch_dir);
	if (rc == 0 && s.nobjs)
		rc = zm_store_open(d->store_dir, &st, &e);
	if (rc == 0 && st)
		rc = zm_store_apply(st, &s, &version, &e);
	if (rc == -EINVAL && s.nerrs) {
		zm_cfg_sort_errors(&s);
		for (size_t i = 0; i < s.nerrs; i++)
			zm_log_error("%s", s.errs[i].text);
		zm_log_error("--watch-dir %s: %zu error%s: nothing applied", d->watch_dir, s.nerrs,
			     s.nerrs == 1 ? "" : "s");
	} else if (rc) {
		zm_log_error("--watch-dir %s: %s", d->watch_dir, e.msg[0] ? e.msg : strerror(-rc));
	} else if (st) {
		zm_log_info("--watch-dir %s: %zu objects applied (store version %llu)", d->watch_dir, s.nobjs,
			    (unsigned long long)version);
	}
	zm_store_close(st);
	zm_cfg_set_free(&s);
}
