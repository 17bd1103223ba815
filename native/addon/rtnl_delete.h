// Deleting host network objects of a dyno over rtnetlink: its veth, and the bridge's neighbour
// (ARP) entry for its address.
#pragma once

#include <stdint.h>

// Returns 0 when the link is gone (deleted now, or already gone: ENODEV), else the errno.
// The kernel would delete the veth pair by itself once the dyno's network namespace dies, but
// later, on a workqueue (cleanup_net), so "the dyno has ended and nothing of it is left" would be
// false for a while. Deleting one end deletes both.
// Blocking: takes the RTNL lock and waits for RCU, so callers run it off the JS thread.
int DeleteLinkByName(const char *name);

// Deletes the IPv4 neighbour entry for `address` (network byte order) on interface `ifindex`.
// Returns 0 when there is none left (deleted now, or none: ENOENT), else the errno.
// Why: a bridge port leaving does not flush the bridge's neighbour table, so the host keeps the
// old dyno's MAC for its address, marked REACHABLE; a new dyno leasing that address was then
// unreachable from the host (router, port check) for a minute, until the entry failed.
// Blocking (RTNL), like DeleteLinkByName.
int DeleteNeighbour(int ifindex, uint32_t address);
