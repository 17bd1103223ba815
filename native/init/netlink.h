/* A minimal rtnetlink client: build one request, send it, wait for its ACK. */
#ifndef DYNO_NETLINK_H
#define DYNO_NETLINK_H

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stddef.h>
#include <stdint.h>

struct nl_request {
  char buf[1024];
  struct nlmsghdr *hdr;
};

/* Starts a request with a fixed header of `family_len` bytes (ifinfomsg, ifaddrmsg, rtmsg). */
void *nl_begin(struct nl_request *r, uint16_t type, uint16_t flags, size_t family_len);
int nl_put(struct nl_request *r, uint16_t type, const void *data, size_t len);
int nl_put_u32(struct nl_request *r, uint16_t type, uint32_t v);
int nl_put_str(struct nl_request *r, uint16_t type, const char *s);
struct rtattr *nl_nest_begin(struct nl_request *r, uint16_t type);
void nl_nest_end(struct nl_request *r, struct rtattr *nest);
/* Sends the request on `fd` and returns 0 on ACK or -errno from the kernel's NLMSG_ERROR. */
int nl_transact(int fd, struct nl_request *r);

#endif
