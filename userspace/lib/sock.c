// SPDX-License-Identifier: Apache-2.0
/* Socket helpers; see include/zmesh/sock.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zmesh/sock.h"

static int listen_family(int family, int port, int backlog, unsigned int flags)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
				   .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_ANY) };
	int one = 1, zero = 0, fd, rc;

	if (flags & ZM_SOCK_LOOPBACK) {
		a6.sin6_addr = in6addr_loopback;
		a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    ((flags & ZM_SOCK_REUSEPORT) &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    (family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0))
		goto fail;
	if (family == AF_INET6)
		rc = bind(fd, (struct sockaddr *)&a6, sizeof(a6));
	else
		rc = bind(fd, (struct sockaddr *)&a4, sizeof(a4));
	if (rc < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

int zm_sock_listen_tcp(int port, int backlog, unsigned int flags)
{
	int fd;

	if (port < 0 || port > 65535)
		return -EINVAL;
	if (!(flags & ZM_SOCK_V4ONLY)) {
		fd = listen_family(AF_INET6, port, backlog, flags);
		/* Only a missing IPv6 falls back; EADDRINUSE and the like are real. */
		if (fd >= 0 || (fd != -EAFNOSUPPORT && fd != -EADDRNOTAVAIL && fd != -EPROTONOSUPPORT))
			return fd;
	}
	return listen_family(AF_INET, port, backlog, flags);
}

int zm_sock_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}

int zm_sock_addr_str(const struct sockaddr *sa, char *out, size_t outsz)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(out, outsz, "%s:%u", ip, ntohs(a->sin_port));
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof(ip));
			snprintf(out, outsz, "%s:%u", ip, ntohs(a->sin6_port));
		} else if (a->sin6_scope_id) {
			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
			snprintf(out, outsz, "[%s%%%u]:%u", ip, a->sin6_scope_id, ntohs(a->sin6_port));
		} else {
			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
			snprintf(out, outsz, "[%s]:%u", ip, ntohs(a->sin6_port));
		}
		return 0;
	}
	snprintf(out, outsz, "?");
	return -EAFNOSUPPORT;
}

int zm_sock_peer_str(int fd, char *out, size_t outsz)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(out, outsz, "?");
		return -errno;
	}
	return zm_sock_addr_str((struct sockaddr *)&ss, out, outsz);
}

int zm_sock_local_str(int fd, char *out, size_t outsz)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(out, outsz, "?");
		return -errno;
	}
	return zm_sock_addr_str((struct sockaddr *)&ss, out, outsz);
}
