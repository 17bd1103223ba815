#include "netlink.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static uint32_t next_seq = 1;

void *nl_begin(struct nl_request *r, uint16_t type, uint16_t flags, size_t family_len) {
  memset(r->buf, 0, sizeof r->buf);
  r->hdr = (struct nlmsghdr *)r->buf;
  r->hdr->nlmsg_len = NLMSG_LENGTH(family_len);
  r->hdr->nlmsg_type = type;
  r->hdr->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  r->hdr->nlmsg_seq = next_seq++;
  return NLMSG_DATA(r->hdr);
}

int nl_put(struct nl_request *r, uint16_t type, const void *data, size_t len) {
  size_t off = NLMSG_ALIGN(r->hdr->nlmsg_len);
  size_t total = RTA_LENGTH(len);
  if (off + RTA_ALIGN(total) > sizeof r->buf) return -ENOBUFS;
  struct rtattr *rta = (struct rtattr *)(r->buf + off);
  rta->rta_type = type;
  rta->rta_len = (unsigned short)total;
  if (len) memcpy(RTA_DATA(rta), data, len);
  r->hdr->nlmsg_len = (uint32_t)(off + RTA_ALIGN(total));
  return 0;
}

int nl_put_u32(struct nl_request *r, uint16_t type, uint32_t v) { return nl_put(r, type, &v, sizeof v); }

int nl_put_str(struct nl_request *r, uint16_t type, const char *s) { return nl_put(r, type, s, strlen(s) + 1); }

struct rtattr *nl_nest_begin(struct nl_request *r, uint16_t type) {
  struct rtattr *nest = (struct rtattr *)(r->buf + NLMSG_ALIGN(r->hdr->nlmsg_len));
  if (nl_put(r, type, NULL, 0) < 0) return NULL;
  return nest;
}

void nl_nest_end(struct nl_request *r, struct rtattr *nest) {
  nest->rta_len = (unsigned short)((r->buf + r->hdr->nlmsg_len) - (char *)nest);
}

int nl_transact(int fd, struct nl_request *r) {
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t n;
  do {
    n = sendto(fd, r->buf, r->hdr->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  char reply[4096];
  for (;;) {
    do {
      n = recv(fd, reply, sizeof reply, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (struct nlmsghdr *h = (struct nlmsghdr *)reply; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != r->hdr->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
  }
}
