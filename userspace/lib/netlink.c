// SPDX-License-Identifier: Apache-2.0
/* rtnetlink requests over libmnl; each waits for the kernel's ACK. */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <time.h>

#include "zmesh/netlink.h"

/* MNL_SOCKET_BUFFER_SIZE is a run-time expression (a VLA); 8 KiB is what it
 * gives on 4 KiB pages and is plenty for one request or its ACK. */
#define ZM_NL_BUF 8192

int zm_nl_open(struct zm_nl *nl)
{
	nl->sock = mnl_socket_open(NETLINK_ROUTE);
	if (!nl->sock)
		return -errno;
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		int rc = -errno;

		mnl_socket_close(nl->sock);
		nl->sock = NULL;
		return rc;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (unsigned int)time(NULL);
	return 0;
}

void zm_nl_close(struct zm_nl *nl)
{
	if (nl->sock)
		mnl_socket_close(nl->sock);
	nl->sock = NULL;
}

static struct nlmsghdr *start(char *buf, struct zm_nl *nl, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++nl->seq;
	return nlh;
}

/* Send and read the ACK (an NLMSG_ERROR with error 0) or the error. */
static int talk(struct zm_nl *nl, struct nlmsghdr *nlh)
{
	char buf[ZM_NL_BUF];
	ssize_t n;
	int rc;

	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	rc = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, nl->portid, NULL, NULL);
	return rc < 0 ? -errno : 0;
}

static int ifindex(const char *name)
{
	unsigned int i = if_nametoindex(name);

	return i ? (int)i : -ENODEV;
}

int zm_nl_veth_add(struct zm_nl *nl, const char *name, int netns_fd,
		   const char *peer, int peer_netns_fd)
{
	char buf[ZM_NL_BUF];
	struct nlmsghdr *nlh = start(buf, nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	struct nlattr *linkinfo, *data, *peerinfo;
	struct ifinfomsg *pifm;

	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	if (netns_fd >= 0)
		mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	peerinfo = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	pifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifm));
	pifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	if (peer_netns_fd >= 0)
		mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd);
	mnl_attr_nest_end(nlh, peerinfo);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, linkinfo);
	return talk(nl, nlh);
}

int zm_nl_bridge_add(struct zm_nl *nl, const char *name)
{
	char buf[ZM_NL_BUF];
	struct nlmsghdr *nlh = start(buf, nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	struct nlattr *linkinfo;

	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
	mnl_attr_nest_end(nlh, linkinfo);
	return talk(nl, nlh);
}

static int link_change(struct zm_nl *nl, const char *ifname, int master, bool up,
		       uint16_t type)
{
	char buf[ZM_NL_BUF];
	struct nlmsghdr *nlh = start(buf, nl, type, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	int idx = ifindex(ifname);

	if (idx < 0)
		return idx;
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = idx;
	if (up) {
		ifm->ifi_flags = IFF_UP;
		ifm->ifi_change = IFF_UP;
	}
	if (master > 0)
		mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
	return talk(nl, nlh);
}

int zm_nl_link_set_master(struct zm_nl *nl, const char *ifname, const char *master)
{
	int m = ifindex(master);

	return m < 0 ? m : link_change(nl, ifname, m, false, RTM_NEWLINK);
}

int zm_nl_link_up(struct zm_nl *nl, const char *ifname)
{
	return link_change(nl, ifname, 0, true, RTM_NEWLINK);
}

int zm_nl_link_del(struct zm_nl *nl, const char *ifname)
{
	return link_change(nl, ifname, 0, false, RTM_DELLINK);
}

int zm_nl_addr_add(struct zm_nl *nl, const char *ifname, struct in_addr addr, int prefixlen)
{
	char buf[ZM_NL_BUF];
	struct nlmsghdr *nlh = start(buf, nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	int idx = ifindex(ifname);

	if (idx < 0)
		return idx;
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)prefixlen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned int)idx;
	mnl_attr_put(nlh, IFA_LOCAL, sizeof(addr), &addr);
	mnl_attr_put(nlh, IFA_ADDRESS, sizeof(addr), &addr);
	return talk(nl, nlh);
}

int zm_nl_route_add(struct zm_nl *nl, struct in_addr dst, int dst_len,
		    struct in_addr gw, const char *ifname, int onlink)
{
	char buf[ZM_NL_BUF];
	struct nlmsghdr *nlh = start(buf, nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	int idx = ifname ? ifindex(ifname) : 0;

	if (idx < 0)
		return idx;
	rtm->rtm_family = AF_INET;
	rtm->rtm_dst_len = (unsigned char)dst_len;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_BOOT;
	rtm->rtm_scope = gw.s_addr ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	rtm->rtm_type = RTN_UNICAST;
	if (onlink)
		rtm->rtm_flags |= RTNH_F_ONLINK;
	if (dst_len)
		mnl_attr_put(nlh, RTA_DST, sizeof(dst), &dst);
	if (gw.s_addr)
		mnl_attr_put(nlh, RTA_GATEWAY, sizeof(gw), &gw);
	if (idx)
		mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)idx);
	return talk(nl, nlh);
}
