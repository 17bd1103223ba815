#include "rtnl_delete.h"

#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

// Sends one rtnetlink request with NLM_F_ACK and returns the kernel's answer: 0 for the ack, else
// the errno it carries (or the errno of socket/sendto/recv, EPROTO for an answer we can't read).
int RtnlRequest(struct nlmsghdr *request) {
  request->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  request->nlmsg_seq = 1;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno;
  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, request, request->nlmsg_len, 0, reinterpret_cast<struct sockaddr *>(&kernel), sizeof kernel) < 0) {
    int err = errno;
    close(fd);
    return err;
  }
  // The answer is one NLMSG_ERROR message: error 0 is the ack.
  alignas(struct nlmsghdr) char answer[512];
  ssize_t n;
  do n = recv(fd, answer, sizeof answer, 0);
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : EPROTO;
  close(fd);
  if (n < 0) return err;
  struct nlmsghdr *reply = reinterpret_cast<struct nlmsghdr *>(answer);
  if (!NLMSG_OK(reply, (size_t)n) || reply->nlmsg_type != NLMSG_ERROR) return EPROTO;
  if (reply->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return EPROTO;
  return -static_cast<struct nlmsgerr *>(NLMSG_DATA(reply))->error;
}

}  // namespace

int DeleteLinkByName(const char *name) {
  size_t name_len = strlen(name) + 1;
  if (name_len > IFNAMSIZ) return EINVAL;
  struct {
    struct nlmsghdr header;
    struct ifinfomsg info;
    char attrs[RTA_SPACE(IFNAMSIZ)];
  } request;
  memset(&request, 0, sizeof request);
  struct rtattr *attr = reinterpret_cast<struct rtattr *>(request.attrs);
  attr->rta_type = IFLA_IFNAME;
  attr->rta_len = RTA_LENGTH(name_len);
  memcpy(RTA_DATA(attr), name, name_len);
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof request.info) + RTA_ALIGN(attr->rta_len);
  request.header.nlmsg_type = RTM_DELLINK;
  request.info.ifi_family = AF_UNSPEC;
  int code = RtnlRequest(&request.header);
  return code == ENODEV ? 0 : code;
}

int DeleteNeighbour(int ifindex, uint32_t address) {
  if (ifindex <= 0) return EINVAL;
  struct {
    struct nlmsghdr header;
    struct ndmsg neigh;
    char attrs[RTA_SPACE(sizeof(uint32_t))];
  } request;
  memset(&request, 0, sizeof request);
  struct rtattr *attr = reinterpret_cast<struct rtattr *>(request.attrs);
  attr->rta_type = NDA_DST;
  attr->rta_len = RTA_LENGTH(sizeof address);
  memcpy(RTA_DATA(attr), &address, sizeof address);
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof request.neigh) + RTA_ALIGN(attr->rta_len);
  request.header.nlmsg_type = RTM_DELNEIGH;
  request.neigh.ndm_family = AF_INET;
  request.neigh.ndm_ifindex = ifindex;
  int code = RtnlRequest(&request.header);
  return code == ENOENT ? 0 : code;
}
