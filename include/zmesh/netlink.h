/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rtnetlink over libmnl: links, addresses, routes. A struct zm_nl talks to
 * the network namespace it was opened in (a netlink socket stays bound to the
 * namespace current at socket() time), so open it after zm_netns_enter().
 * Every call returns 0 or a negative errno from the kernel's answer.
 */
#ifndef ZMESH_NETLINK_H
#define ZMESH_NETLINK_H

#include <netinet/in.h>
#include <stdint.h>

struct mnl_socket;

struct zm_nl {
	struct mnl_socket *sock;
	unsigned int portid;
	unsigned int seq;
};

int zm_nl_open(struct zm_nl *nl);
void zm_nl_close(struct zm_nl *nl);

/* Create a veth pair: @name in this namespace (or in @netns_fd when >= 0),
 * @peer in @peer_netns_fd (or here when < 0). */
int zm_nl_veth_add(struct zm_nl *nl, const char *name, int netns_fd,
		   const char *peer, int peer_netns_fd);
int zm_nl_bridge_add(struct zm_nl *nl, const char *name);
/* Attach @ifname to bridge @master. */
int zm_nl_link_set_master(struct zm_nl *nl, const char *ifname, const char *master);
int zm_nl_link_up(struct zm_nl *nl, const char *ifname);
int zm_nl_link_del(struct zm_nl *nl, const char *ifname);
int zm_nl_addr_add(struct zm_nl *nl, const char *ifname, struct in_addr addr, int prefixlen);
/*
 * Add an IPv4 route to @dst/@dst_len (0/0 for default). @gw may be 0 (a
 * directly connected route via @ifname, scope link); @onlink sets
 * RTNH_F_ONLINK so a gateway need not be in a connected subnet.
 */
int zm_nl_route_add(struct zm_nl *nl, struct in_addr dst, int dst_len,
		    struct in_addr gw, const char *ifname, int onlink);

#endif
