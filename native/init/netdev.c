/*
 * Network devices of the dyno's own network namespace.
 *   none:   only lo, up.
 *   bridge: a veth pair created in one RTM_NEWLINK on a netlink socket of the host's namespace
 *           (fd HOST_NETLINK_FD, opened by the parent): the host end is enslaved to the bridge and
 *           up, the peer is born directly inside our namespace as eth0 (creating then moving a veth
 *           costs ~30x more). The host end is made an isolated bridge port, so dynos cannot reach
 *           each other, only the host. When the namespace dies the kernel deletes both ends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/veth.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "init.h"
#include "netlink.h"

static int set_up(const char *ifname, struct init_error *e) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(e, errno, DYNO_STEP_NETWORK, "socket", ifname);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP;
    rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  int saved = errno;
  close(fd);
  if (rc < 0) return fail(e, saved, DYNO_STEP_NETWORK, "ioctl", ifname);
  return 0;
}

int bring_loopback_up(struct init_error *e) { return set_up("lo", e); }

static int nl_fail(struct init_error *e, int rc, const char *what) {
  return fail(e, rc < 0 ? -rc : EIO, DYNO_STEP_NETWORK, "netlink", what);
}

/* RTM_GETLINK by name; returns the ifindex or -errno. */
static int host_ifindex(int fd, const char *name) {
  struct nl_request r;
  nl_begin(&r, RTM_GETLINK, 0, sizeof(struct ifinfomsg));
  r.hdr->nlmsg_flags = NLM_F_REQUEST; /* a GET answers with the object, not an ACK */
  if (nl_put_str(&r, IFLA_IFNAME, name) < 0) return -ENOBUFS;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(fd, r.buf, r.hdr->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return -errno;
  char reply[8192];
  for (;;) {
    ssize_t n = recv(fd, reply, sizeof reply, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    for (struct nlmsghdr *h = (struct nlmsghdr *)reply; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != r.hdr->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) return ((struct nlmsgerr *)NLMSG_DATA(h))->error ?: -ENODEV;
      if (h->nlmsg_type == RTM_NEWLINK) return ((struct ifinfomsg *)NLMSG_DATA(h))->ifi_index;
    }
  }
}

/* Returns 0, or -errno from the kernel (EBUSY: the requested ifindex is taken). */
static int create_veth(const struct dyno_config *cfg, int own_netns, int ifindex, struct init_error *e) {
  struct nl_request r;
  struct ifinfomsg *ifi = nl_begin(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifi);
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex; /* chosen by us, so isolating the port needs no RTM_GETLINK round trip */
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  nl_put_str(&r, IFLA_IFNAME, cfg->veth);
  nl_put_u32(&r, IFLA_MASTER, (uint32_t)cfg->bridge_ifindex);
  struct rtattr *linkinfo = nl_nest_begin(&r, IFLA_LINKINFO);
  nl_put_str(&r, IFLA_INFO_KIND, "veth");
  struct rtattr *data = nl_nest_begin(&r, IFLA_INFO_DATA);
  struct rtattr *peer = nl_nest_begin(&r, VETH_INFO_PEER);
  struct ifinfomsg peer_ifi;
  memset(&peer_ifi, 0, sizeof peer_ifi);
  /* the peer's payload starts with its own ifinfomsg, then attributes */
  memcpy(r.buf + r.hdr->nlmsg_len, &peer_ifi, sizeof peer_ifi);
  r.hdr->nlmsg_len += NLMSG_ALIGN(sizeof peer_ifi);
  nl_put_str(&r, IFLA_IFNAME, "eth0");
  int rc = nl_put_u32(&r, IFLA_NET_NS_FD, (uint32_t)own_netns);
  if (!linkinfo || !data || !peer || rc < 0) return nl_fail(e, -ENOBUFS, "veth request too large");
  nl_nest_end(&r, peer);
  nl_nest_end(&r, data);
  nl_nest_end(&r, linkinfo);
  rc = nl_transact(HOST_NETLINK_FD, &r);
  if (rc < 0 && !(rc == -EBUSY && ifindex)) return nl_fail(e, rc, cfg->veth);
  return rc;
}

static int isolate_port(const struct dyno_config *cfg, int index, struct init_error *e) {
  if (index <= 0) index = host_ifindex(HOST_NETLINK_FD, cfg->veth);
  if (index < 0) return nl_fail(e, index, cfg->veth);
  struct nl_request r;
  struct ifinfomsg *ifi = nl_begin(&r, RTM_SETLINK, 0, sizeof *ifi);
  ifi->ifi_family = AF_BRIDGE;
  ifi->ifi_index = index;
  struct rtattr *prot = nl_nest_begin(&r, IFLA_PROTINFO | NLA_F_NESTED);
  uint8_t on = 1;
  nl_put(&r, IFLA_BRPORT_ISOLATED, &on, sizeof on);
  nl_nest_end(&r, prot);
  int rc = nl_transact(HOST_NETLINK_FD, &r);
  if (rc < 0) return nl_fail(e, rc, "bridge port isolation");
  return 0;
}

static int configure_inside(const struct dyno_config *cfg, struct init_error *e) {
  struct in_addr addr, gw;
  if (inet_pton(AF_INET, cfg->address, &addr) != 1) return fail(e, EINVAL, DYNO_STEP_NETWORK, "inet_pton", cfg->address);
  if (inet_pton(AF_INET, cfg->gateway, &gw) != 1) return fail(e, EINVAL, DYNO_STEP_NETWORK, "inet_pton", cfg->gateway);
  unsigned index = if_nametoindex("eth0");
  if (!index) return fail(e, errno, DYNO_STEP_NETWORK, "if_nametoindex", "eth0");
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return fail(e, errno, DYNO_STEP_NETWORK, "socket", "netlink");

  struct nl_request r;
  struct ifaddrmsg *ifa = nl_begin(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifa);
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = (unsigned char)cfg->prefix_len;
  ifa->ifa_index = index;
  nl_put(&r, IFA_LOCAL, &addr, sizeof addr);
  nl_put(&r, IFA_ADDRESS, &addr, sizeof addr);
  int rc = nl_transact(fd, &r);
  if (rc < 0) {
    close(fd);
    return nl_fail(e, rc, cfg->address);
  }
  if (set_up("eth0", e) < 0) {
    close(fd);
    return -1;
  }
  struct rtmsg *rt = nl_begin(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof *rt);
  rt->rtm_family = AF_INET;
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_BOOT;
  rt->rtm_scope = RT_SCOPE_UNIVERSE;
  rt->rtm_type = RTN_UNICAST;
  nl_put(&r, RTA_GATEWAY, &gw, sizeof gw);
  nl_put_u32(&r, RTA_OIF, index);
  rc = nl_transact(fd, &r);
  close(fd);
  if (rc < 0) return nl_fail(e, rc, "default route");
  return 0;
}

int setup_network(const struct dyno_config *cfg, struct init_error *e) {
  if (bring_loopback_up(e) < 0) return -1;
  if (strcmp(cfg->net, "bridge") != 0) {
    /* The host netlink socket is not passed in this mode, so fd 4 is not ours to close: it is
     * whatever setup opened first (the signalfd), and closing it stops signal forwarding and reaping. */
    return 0;
  }
  int own_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (own_netns < 0) return fail(e, errno, DYNO_STEP_NETWORK, "open", "/proc/self/ns/net");
  /* a random high ifindex; if it is taken (EBUSY), let the kernel choose and look it up */
  int index = cfg->veth_ifindex;
  int rc = create_veth(cfg, own_netns, index, e);
  if (rc == -EBUSY) {
    index = 0;
    rc = create_veth(cfg, own_netns, 0, e);
  }
  close(own_netns);
  if (rc < 0) return -1;
  if (isolate_port(cfg, index, e) < 0 || configure_inside(cfg, e) < 0) return -1;
  close(HOST_NETLINK_FD);
  return 0;
}
