// Deleting a dyno's host veth by name over rtnetlink. The kernel would delete the pair by itself
// once the dyno's network namespace dies, but that happens later on a workqueue (cleanup_net), so
// "the dyno has ended and nothing of it is left" would be false for a while. Deleting one end
// deletes both.
#pragma once

// Returns 0 when the link is gone (deleted now, or already gone: ENODEV), else the errno.
// Blocking: takes the RTNL lock and waits for RCU, so callers run it off the JS thread.
int DeleteLinkByName(const char *name);
