// SPDX-License-Identifier: Apache-2.0
/*
 * The config store (zmesh/store.h): generations of one-file-per-object
 * directories behind a `current` symlink swapped by rename(2).
 *
 * Why generations and not files replaced in place: a reader (zmeshd, a proxy)
 * must see one whole version. Resolving `current` once and reading that
 * directory gives exactly that, as long as the directory is not removed under
 * the reader; writers keep the previous generation, and a reader that finds
 * `current` moved two steps on while it read retries (see read_gen()).
 *
 * Unchanged objects are hard links into the previous generation, so a change
 * costs what it changes, not the size of the store. Files are never modified
 * once written (a link shares the inode), only new ones made.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_int.h"
#include "zmesh/fsutil.h"
#include "zmesh/store.h"

#define TMP_PREFIX ".tmp-"
#define READ_RETRIES 50

struct zm_store {
	char dir[PATH_MAX];
	int lockfd;
};

/* ---- names ---------------------------------------------------------------------------- */

/* "gen-<N>" with N > 0, decimal, no sign or leading zero: the only names
 * `current` may point at. */
static int parse_gen(const char *s, uint64_t *n)
{
	uint64_t v = 0;

	if (strncmp(s, "gen-", 4))
		return -EINVAL;
	s += 4;
	if (*s < '1' || *s > '9')
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*n = v;
	return 0;
}

static const char *obj_ns(const struct zm_cfg_obj *o)
{
	return zm_kind_cluster_scoped(o->kind) || !o->meta.ns.v ? "_" : o->meta.ns.v;
}

/* Names and namespaces are DNS names once read (no '/', no leading '.'); check
 * again anyway, since they become file names. */
static bool safe_part(const char *s)
{
	return s && *s && *s != '.' && !strchr(s, '/');
}

static int obj_file(const struct zm_cfg_obj *o, char *out, size_t sz)
{
	int n;

	if (!safe_part(o->meta.name.v) || !safe_part(obj_ns(o)))
		return -EINVAL;
	n = snprintf(out, sz, "%s.%s.%s.yaml", zm_kind_name(o->kind), obj_ns(o), o->meta.name.v);
	if (n < 0 || (size_t)n >= sz || n > NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Split "<Kind>.<ns>.<name>.yaml" (names may hold dots; kinds and namespaces
 * do not). */
static int parse_obj_file(const char *f, int *kind, char *ns, size_t nssz, char *name, size_t namesz)
{
	const char *d1 = strchr(f, '.'), *d2, *end;
	size_t l = strlen(f);
	char kn[64];
	int k;

	if (!d1 || l < 6 || strcmp(f + l - 5, ".yaml"))
		return -EINVAL;
	d2 = strchr(d1 + 1, '.');
	end = f + l - 5;
	if (!d2 || d2 >= end - 1 || (size_t)(d1 - f) >= sizeof(kn) || (size_t)(d2 - d1 - 1) >= nssz ||
	    (size_t)(end - d2 - 1) >= namesz || d2 == d1 + 1)
		return -EINVAL;
	memcpy(kn, f, (size_t)(d1 - f));
	kn[d1 - f] = 0;
	k = zm_kind_parse(kn);
	if (k < 0)
		return -EINVAL;
	memcpy(ns, d1 + 1, (size_t)(d2 - d1 - 1));
	ns[d2 - d1 - 1] = 0;
	memcpy(name, d2 + 1, (size_t)(end - d2 - 1));
	name[end - d2 - 1] = 0;
	*kind = k;
	return 0;
}

/* ---- reading ---------------------------------------------------------------------------- */

static int current_gen(const char *dir, uint64_t *n)
{
	char path[PATH_MAX + 16], target[64];
	ssize_t len;

	snprintf(path, sizeof(path), "%s/current", dir);
	len = readlink(path, target, sizeof(target) - 1);
	if (len < 0)
		return -errno;
	target[len] = 0;
	return parse_gen(target, n) ? -EBADMSG : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The file names of generation directory @gdir, sorted. */
static int list_gen(const char *gdir, char ***out, size_t *nout, struct zm_error *e)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	DIR *d = opendir(gdir);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nv = realloc(v, nc * sizeof(*nv));

			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
			cap = nc;
		}
		if (!(v[n] = strdup(de->d_name))) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return zm_error_set(e, -rc, "%s: out of memory", gdir);
	}
	if (v)
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	*nout = n;
	return 0;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * Load generation @gen of @dir into @out. -ENOENT when the generation
 * directory (or a file of it) vanished under us: a writer removed it, the
 * caller retries on the newer one. Anything that is not an object file
 * written by a store is an error naming the file.
 */
static int load_gen(const char *dir, uint64_t gen, struct zm_cfg_set *out, struct zm_error *e)
{
	char gdir[PATH_MAX + 32], path[PATH_MAX + 300], ns[80], name[300];
	char **names = NULL;
	size_t n = 0;
	int rc, kind;

	snprintf(gdir, sizeof(gdir), "%s/gen-%" PRIu64, dir, gen);
	rc = list_gen(gdir, &names, &n, e);
	if (rc == -ENOENT)
		return rc;
	if (rc < 0)
		return e && e->msg[0] ? rc : zm_error_set(e, -rc, "%s: %s", gdir, strerror(-rc));
	for (size_t i = 0; i < n; i++) {
		struct zm_cfg_set one;
		struct zm_cfg_obj *o;

		snprintf(path, sizeof(path), "%s/%s", gdir, names[i]);
		if (parse_obj_file(names[i], &kind, ns, sizeof(ns), name, sizeof(name))) {
			rc = zm_error_set(e, EBADMSG, "%s: not a config store object file "
					  "(want <Kind>.<namespace>.<name>.yaml)", path);
			break;
		}
		zm_cfg_set_init(&one);
		rc = zm_cfg_load_file(&one, path);
		if (rc == -EINVAL && access(path, F_OK) && errno == ENOENT) {
			zm_cfg_set_free(&one);
			rc = -ENOENT;
			break;
		}
		if (rc) {
			if (rc == -ENOMEM)
				zm_error_set(e, ENOMEM, "%s: out of memory", path);
			else
				zm_error_set(e, EBADMSG, "%s", one.nerrs ? one.errs[0].text : path);
			zm_cfg_set_free(&one);
			rc = rc == -ENOMEM ? rc : -EBADMSG;
			break;
		}
		o = one.nobjs == 1 ? one.objs[0] : NULL;
		if (!o || o->kind != (enum zm_kind)kind || !o->meta.name.v ||
		    strcmp(o->meta.name.v, name) || strcmp(obj_ns(o), ns)) {
			zm_error_set(e, EBADMSG, "%s: does not hold exactly the object its name says", path);
			zm_cfg_set_free(&one);
			rc = -EBADMSG;
			break;
		}
		rc = zm_cfg_set_take(out, &one);
		zm_cfg_set_free(&one);
		if (rc) {
			zm_error_set(e, ENOMEM, "out of memory");
			break;
		}
	}
	free_names(names, n);
	return rc;
}

int zm_store_read(const char *dir, struct zm_cfg_set *out, uint64_t *version, struct zm_error *e)
{
	size_t keep = out->nobjs;
	uint64_t gen, now;
	int rc;

	for (int tries = 0; tries < READ_RETRIES; tries++) {
		rc = current_gen(dir, &gen);
		if (rc == -ENOENT)
			return zm_error_set(e, ENOENT, "%s: no config store here (no %s/current)", dir, dir);
		if (rc == -EBADMSG || rc == -EINVAL)
			return zm_error_set(e, EBADMSG, "%s/current: not a link to gen-<N>: not a config store", dir);
		if (rc)
			return zm_error_set(e, -rc, "%s/current: %s", dir, strerror(-rc));
		rc = load_gen(dir, gen, out, e);
		/*
		 * Writers remove a generation only after `current` moved past the
		 * next one. If `current` is still at gen or gen+1 now, nothing we
		 * read can have been removed while we read it.
		 */
		if (!rc && !current_gen(dir, &now) && now >= gen && now <= gen + 1) {
			if (version)
				*version = gen;
			return 0;
		}
		if (rc && rc != -ENOENT)
			return rc;
		/* Raced with two writers: start again on the newer generation. */
		while (out->nobjs > keep)
			zm_cfg_obj_free(zm_cfg_set_remove(out, out->nobjs - 1));
		if (e)
			e->msg[0] = 0;
	}
	return zm_error_set(e, EAGAIN, "%s: the store kept changing while it was read", dir);
}

uint64_t zm_store_version(const char *dir)
{
	uint64_t n;

	return current_gen(dir, &n) ? 0 : n;
}

/* ---- opening ---------------------------------------------------------------------------- */

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int sync_dir_fs(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -1;
	if (syncfs(fd) < 0)
		rc = -1;
	close(fd);
	return rc;
}

/* Point `current` at gen-@n: a new link renamed over the old one. */
static int swap_current(struct zm_store *st, uint64_t n, struct zm_error *e)
{
	char tmp[PATH_MAX + 32], cur[PATH_MAX + 16], target[32];

	snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "current", st->dir);
	snprintf(cur, sizeof(cur), "%s/current", st->dir);
	snprintf(target, sizeof(target), "gen-%" PRIu64, n);
	unlink(tmp);
	if (symlink(target, tmp) < 0)
		return zm_error_set(e, errno, "%s: %s", tmp, strerror(errno));
	if (rename(tmp, cur) < 0) {
		int err = errno;

		unlink(tmp);
		return zm_error_set(e, err, "%s: %s", cur, strerror(err));
	}
	fsync_path(st->dir);
	return 0;
}

static bool ours(const char *f)
{
	uint64_t n;

	return !strcmp(f, ".") || !strcmp(f, "..") || !strcmp(f, "lock") || !strcmp(f, "current") ||
	       !parse_gen(f, &n) || !strncmp(f, TMP_PREFIX, strlen(TMP_PREFIX));
}

static int check_foreign(const char *dir, struct zm_error *e)
{
	struct dirent *de;
	int rc = 0;
	DIR *d = opendir(dir);

	if (!d)
		return zm_error_set(e, errno, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) && !rc)
		if (!ours(de->d_name))
			rc = zm_error_set(e, EEXIST, "%s: not a zmesh config store: unexpected entry \"%.200s\" "
					  "(a store directory holds only lock, current and gen-<N>; "
					  "use an empty or new directory)", dir, de->d_name);
	closedir(d);
	return rc;
}

/*
 * Under the lock: leftovers of a writer that died are removed; anything else
 * that is not ours means @dir is not a store (or not only one), and we touch
 * nothing in it.
 */
static int check_dir(struct zm_store *st, bool *fresh, struct zm_error *e)
{
	char path[PATH_MAX + 300];
	struct dirent *de;
	bool has_current = false, has_gen = false;
	uint64_t n;
	int rc = 0, ngen = 0;
	DIR *d = opendir(st->dir);

	if (!d)
		return zm_error_set(e, errno, "%s: %s", st->dir, strerror(errno));
	while ((de = readdir(d))) {
		const char *f = de->d_name;

		if (!strcmp(f, ".") || !strcmp(f, "..") || !strcmp(f, "lock"))
			continue;
		if (!strcmp(f, "current")) {
			has_current = true;
		} else if (!parse_gen(f, &n)) {
			has_gen = true;
			ngen++;
		} else if (!strncmp(f, TMP_PREFIX, strlen(TMP_PREFIX))) {
			snprintf(path, sizeof(path), "%s/%s", st->dir, f);
			zm_rm_rf(path);
		} else {
			rc = check_foreign(st->dir, e);	/* appeared since: name it */
			if (!rc)
				rc = zm_error_set(e, EEXIST, "%s: not a zmesh config store", st->dir);
			break;
		}
	}
	closedir(d);
	if (rc)
		return rc;
	if (has_gen && !has_current) {
		/* An open that died between making gen-1 and linking it: redo it. */
		snprintf(path, sizeof(path), "%s/gen-1", st->dir);
		if (ngen == 1 && rmdir(path) == 0)
			has_gen = false;
		else
			return zm_error_set(e, EBADMSG, "%s: gen-<N> directories but no current link: "
					    "not a usable config store", st->dir);
	}
	if (has_current) {
		rc = current_gen(st->dir, &n);
		if (rc)
			return zm_error_set(e, EBADMSG, "%s/current: not a link to gen-<N>: "
					    "not a config store", st->dir);
		snprintf(path, sizeof(path), "%s/gen-%" PRIu64, st->dir, n);
		if (access(path, F_OK))
			return zm_error_set(e, EBADMSG, "%s/current points at gen-%" PRIu64
					    ", which does not exist", st->dir, n);
	}
	*fresh = !has_current;
	return 0;
}

int zm_store_open(const char *dir, struct zm_store **out, struct zm_error *e)
{
	struct zm_store *st;
	char path[PATH_MAX + 32];
	bool fresh = false;
	int rc;

	*out = NULL;
	if (!dir || !*dir)
		return zm_error_set(e, EINVAL, "config store: no directory given");
	st = calloc(1, sizeof(*st));
	if (!st)
		return zm_error_set(e, ENOMEM, "out of memory");
	st->lockfd = -1;
	if ((size_t)snprintf(st->dir, sizeof(st->dir), "%s", dir) >= sizeof(st->dir) - 64) {
		rc = zm_error_set(e, ENAMETOOLONG, "%s: path too long", dir);
		goto fail;
	}
	rc = zm_mkdir_p(dir, 0700);
	if (rc) {
		zm_error_set(e, -rc, "%s: %s", dir, strerror(-rc));
		goto fail;
	}
	/* Refuse a foreign directory before making anything in it (the lock). */
	rc = check_foreign(dir, e);
	if (rc)
		goto fail;
	snprintf(path, sizeof(path), "%s/lock", dir);
	st->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (st->lockfd < 0) {
		rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(st->lockfd, LOCK_EX) < 0) {
		rc = zm_error_set(e, errno, "%s: flock: %s", path, strerror(errno));
		goto fail;
	}
	rc = check_dir(st, &fresh, e);
	if (!rc && fresh) {
		snprintf(path, sizeof(path), "%s/gen-1", dir);
		zm_rm_rf(path);
		if (mkdir(path, 0700) < 0)
			rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
		else
			rc = swap_current(st, 1, e);
	}
	flock(st->lockfd, LOCK_UN);
	if (rc)
		goto fail;
	*out = st;
	return 0;
fail:
	zm_store_close(st);
	return rc;
}

void zm_store_close(struct zm_store *st)
{
	if (!st)
		return;
	if (st->lockfd >= 0)
		close(st->lockfd);
	free(st);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* One object of the next generation: a link to its file in the current one,
 * or new content. */
struct entry {
	const struct zm_cfg_obj *obj;
	json_t *json;			/* new content; NULL: link the current file */
};

static int write_obj(const char *path, json_t *j, struct zm_error *e)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	size_t len, off = 0;
	int fd, rc = 0;

	if (!s)
		return zm_error_set(e, ENOMEM, "out of memory");
	len = strlen(s);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, s + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
			break;
		}
		off += (size_t)w;
	}
	if (!rc && write(fd, "\n", 1) != 1)
		rc = zm_error_set(e, errno ? errno : EIO, "%s: %s", path, strerror(errno ? errno : EIO));
	close(fd);
out:
	free(s);
	return rc;
}

/* Remove every generation but @keep_a and @keep_b. */
static void prune(struct zm_store *st, uint64_t keep_a, uint64_t keep_b)
{
	char path[PATH_MAX + 300];
	struct dirent *de;
	uint64_t n;
	DIR *d = opendir(st->dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (parse_gen(de->d_name, &n) || n == keep_a || n == keep_b)
			continue;
		snprintf(path, sizeof(path), "%s/%s", st->dir, de->d_name);
		zm_rm_rf(path);
	}
	closedir(d);
}

/* Write generation @cur+1 from @ents, swap `current` to it, prune. */
static int commit(struct zm_store *st, uint64_t cur, struct entry *ents, size_t n,
		  uint64_t *version, struct zm_error *e)
{
	char tmp[PATH_MAX + 64], gdir[PATH_MAX + 64], src[PATH_MAX + 400], dst[PATH_MAX + 400];
	char file[NAME_MAX + 1];
	uint64_t next = cur + 1;
	int rc = 0;

	snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "gen-%" PRIu64, st->dir, next);
	snprintf(gdir, sizeof(gdir), "%s/gen-%" PRIu64, st->dir, next);
	zm_rm_rf(tmp);
	/* A gen-<next> can only be a leftover: `current` never pointed at it. */
	zm_rm_rf(gdir);
	if (mkdir(tmp, 0700) < 0)
		return zm_error_set(e, errno, "%s: %s", tmp, strerror(errno));
	for (size_t i = 0; i < n && !rc; i++) {
		rc = obj_file(ents[i].obj, file, sizeof(file));
		if (rc) {
			rc = zm_error_set(e, -rc, "%s %s/%s: cannot be stored (%s)",
					  zm_kind_name(ents[i].obj->kind), obj_ns(ents[i].obj),
					  ents[i].obj->meta.name.v ? ents[i].obj->meta.name.v : "",
					  strerror(-rc));
			break;
		}
		snprintf(dst, sizeof(dst), "%s/%s", tmp, file);
		if (ents[i].json) {
			rc = write_obj(dst, ents[i].json, e);
			continue;
		}
		snprintf(src, sizeof(src), "%s/gen-%" PRIu64 "/%s", st->dir, cur, file);
		if (link(src, dst) < 0)
			rc = zm_error_set(e, errno, "link %s: %s", src, strerror(errno));
	}
	/*
	 * One syncfs for the whole generation (files and directory) before it
	 * becomes visible: an fsync per file costs a journal commit each, which
	 * made a first apply of 1000 objects take seconds.
	 */
	if (!rc && sync_dir_fs(tmp) < 0)
		rc = zm_error_set(e, errno, "%s: syncfs: %s", tmp, strerror(errno));
	if (!rc && rename(tmp, gdir) < 0)
		rc = zm_error_set(e, errno, "%s: %s", gdir, strerror(errno));
	if (!rc)
		rc = swap_current(st, next, e);
	if (rc) {
		zm_rm_rf(tmp);
		zm_rm_rf(gdir);
		return rc;
	}
	prune(st, cur, next);
	*version = next;
	return 0;
}

static int lock(struct zm_store *st, struct zm_error *e)
{
	while (flock(st->lockfd, LOCK_EX) < 0) {
		if (errno != EINTR)
			return zm_error_set(e, errno, "%s/lock: flock: %s", st->dir, strerror(errno));
	}
	return 0;
}

static void unlock(struct zm_store *st)
{
	flock(st->lockfd, LOCK_UN);
}

/* Store-only rules: every object must be storable under its name. */
static void check_storable(struct zm_cfg_set *in)
{
	char file[NAME_MAX + 1];

	for (size_t i = 0; i < in->nobjs; i++) {
		const struct zm_cfg_obj *o = in->objs[i];

		if (obj_file(o, file, sizeof(file)))
			zm_cfg_add_err(in, o->file, o->meta.name.pos, "metadata.name",
				       "name too long for the config store (%s.%s.<name>.yaml must fit "
				       "in %d bytes)", zm_kind_name(o->kind), obj_ns(o), NAME_MAX);
	}
}

int zm_store_apply(struct zm_store *st, struct zm_cfg_set *in, uint64_t *version, struct zm_error *e)
{
	struct zm_cfg_set base;
	struct entry *ents = NULL;
	size_t n = 0, changed = 0;
	uint64_t cur = 0;
	int rc;

	zm_cfg_set_init(&base);
	rc = lock(st, e);
	if (rc)
		return rc;
	rc = zm_store_read(st->dir, &base, &cur, e);
	if (rc)
		goto out;
	if (version)
		*version = cur;
	check_storable(in);
	if (zm_cfg_validate(in, &base)) {
		zm_cfg_sort_errors(in);
		rc = zm_error_set(e, EINVAL, "%zu error%s: nothing applied", in->nerrs,
				  in->nerrs == 1 ? "" : "s");
		goto out;
	}
	ents = calloc(base.nobjs + in->nobjs + 1, sizeof(*ents));
	if (!ents) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	/* Current objects the apply does not name stay as they are. */
	for (size_t i = 0; i < base.nobjs; i++) {
		const struct zm_cfg_obj *o = base.objs[i];

		if (!zm_cfg_find(in, o->kind, o->meta.ns.v, o->meta.name.v))
			ents[n++].obj = o;
	}
	for (size_t i = 0; i < in->nobjs; i++) {
		const struct zm_cfg_obj *o = in->objs[i], *old;
		json_t *j = zm_cfg_obj_to_json(o), *oj = NULL;

		if (!j) {
			rc = zm_error_set(e, ENOMEM, "out of memory");
			goto out;
		}
		old = zm_cfg_find(&base, o->kind, o->meta.ns.v, o->meta.name.v);
		if (old)
			oj = zm_cfg_obj_to_json(old);
		if (old && !oj) {
			json_decref(j);
			rc = zm_error_set(e, ENOMEM, "out of memory");
			goto out;
		}
		if (old && json_equal(j, oj)) {
			/* Identical: keep the current file (a link). */
			json_decref(j);
			ents[n++].obj = old;
		} else {
			ents[n].obj = o;
			ents[n++].json = j;
			changed++;
		}
		json_decref(oj);
	}
	if (changed)
		rc = commit(st, cur, ents, n, version, e);
out:
	for (size_t i = 0; ents && i < n; i++)
		json_decref(ents[i].json);
	free(ents);
	unlock(st);
	zm_cfg_set_free(&base);
	return rc;
}

int zm_store_delete(struct zm_store *st, struct zm_cfg_set *in, uint64_t *version, struct zm_error *e)
{
	struct zm_cfg_set base;
	struct entry *ents = NULL;
	size_t n = 0, missing = 0;
	uint64_t cur = 0;
	int rc;

	zm_cfg_set_init(&base);
	rc = lock(st, e);
	if (rc)
		return rc;
	rc = zm_store_read(st->dir, &base, &cur, e);
	if (rc)
		goto out;
	if (version)
		*version = cur;
	if (in->nerrs || in->errs_truncated) {
		rc = zm_error_set(e, EINVAL, "%zu error%s: nothing deleted", in->nerrs,
				  in->nerrs == 1 ? "" : "s");
		goto out;
	}
	for (size_t i = 0; i < in->nobjs; i++) {
		const struct zm_cfg_obj *o = in->objs[i];

		if (!zm_cfg_find(&base, o->kind, o->meta.ns.v, o->meta.name.v ? o->meta.name.v : "")) {
			zm_cfg_add_err(in, o->file, o->meta.name.pos, "metadata.name",
				       "%s %s%s%s not found", zm_kind_name(o->kind),
				       zm_kind_cluster_scoped(o->kind) ? "" : obj_ns(o),
				       zm_kind_cluster_scoped(o->kind) ? "" : "/",
				       o->meta.name.v ? o->meta.name.v : "");
			missing++;
		}
	}
	if (missing) {
		zm_cfg_sort_errors(in);
		rc = zm_error_set(e, ENOENT, "%zu object%s not found: nothing deleted", missing,
				  missing == 1 ? "" : "s");
		goto out;
	}
	ents = calloc(base.nobjs + 1, sizeof(*ents));
	if (!ents) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < base.nobjs; i++) {
		const struct zm_cfg_obj *o = base.objs[i];

		if (!zm_cfg_find(in, o->kind, o->meta.ns.v, o->meta.name.v))
			ents[n++].obj = o;
	}
	if (n != base.nobjs)
		rc = commit(st, cur, ents, n, version, e);
out:
	free(ents);
	unlock(st);
	zm_cfg_set_free(&base);
	return rc;
}
