// SPDX-License-Identifier: Apache-2.0
/* Named network namespaces, compatible with iproute2's `ip netns`. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zmesh/netns.h"

static int netns_path(char *buf, size_t sz, const char *name)
{
	if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	if ((size_t)snprintf(buf, sz, "%s/%s", ZM_NETNS_RUN_DIR, name) >= sz)
		return -ENAMETOOLONG;
	return 0;
}

/* /run/netns must be a shared mount so that namespaces mounted there show up
 * in every mount namespace (ip netns does the same). */
static int prepare_run_dir(void)
{
	if (mkdir(ZM_NETNS_RUN_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (mount("", ZM_NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	if (mount(ZM_NETNS_RUN_DIR, ZM_NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL) < 0)
		return -errno;
	if (mount("", ZM_NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) < 0)
		return -errno;
	return 0;
}

bool zm_netns_exists(const char *name)
{
	char path[PATH_MAX];

	return netns_path(path, sizeof(path), name) == 0 && access(path, F_OK) == 0;
}

int zm_netns_add(const char *name)
{
	char path[PATH_MAX];
	int fd, saved = -1, rc;

	rc = netns_path(path, sizeof(path), name);
	if (rc)
		return rc;
	rc = prepare_run_dir();
	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	close(fd);

	saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (saved < 0) {
		rc = -errno;
		goto out_unlink;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		rc = -errno;
		goto out_unlink;
	}
	/* A fresh namespace has lo down: the caller brings it up over netlink. */
	if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0)
		rc = -errno;
	if (setns(saved, CLONE_NEWNET) < 0 && !rc)
		rc = -errno;
	close(saved);
	if (rc == 0)
		return 0;
	umount2(path, MNT_DETACH);
out_unlink:
	unlink(path);
	return rc;
}

int zm_netns_del(const char *name)
{
	char path[PATH_MAX];
	int rc = netns_path(path, sizeof(path), name);

	if (rc)
		return rc;
	if (access(path, F_OK) < 0)
		return 0;
	umount2(path, MNT_DETACH);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int zm_netns_open(const char *name)
{
	char path[PATH_MAX];
	int rc = netns_path(path, sizeof(path), name), fd;

	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int zm_netns_enter_fd(int fd, int *saved)
{
	*saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*saved < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0) {
		int rc = -errno;

		close(*saved);
		*saved = -1;
		return rc;
	}
	return 0;
}

int zm_netns_enter(const char *name, int *saved)
{
	int fd = zm_netns_open(name), rc;

	if (fd < 0)
		return fd;
	rc = zm_netns_enter_fd(fd, saved);
	close(fd);
	return rc;
}

int zm_netns_restore(int saved)
{
	int rc = 0;

	if (saved < 0)
		return 0;
	if (setns(saved, CLONE_NEWNET) < 0)
		rc = -errno;
	close(saved);
	return rc;
}

int zm_sysctl_set(const char *key, const char *value)
{
	char path[PATH_MAX];
	size_t len = strlen(value);
	int fd, rc = 0;

	if ((size_t)snprintf(path, sizeof(path), "/proc/sys/%s", key) >= sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + 10; *p; p++)
		if (*p == '.')
			*p = '/';
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		rc = -errno;
	close(fd);
	return rc;
}

int zm_netns_fd_check(int fd)
{
	int t = ioctl(fd, NS_GET_NSTYPE);

	if (t < 0)
		return errno == ENOTTY || errno == EINVAL ? -EINVAL : -errno;
	return t == CLONE_NEWNET ? 0 : -EINVAL;
}

int zm_netns_same(int a, int b)
{
	struct stat sa, sb;

	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return -errno;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino ? 0 : -ENOENT;
}
