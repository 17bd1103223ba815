// Who is on the other end of a connected unix socket (SO_PEERCRED): the control API uses it to
// act for the requesting user (a deploy reads the user's files as that user, never as root).
#pragma once

#include <napi.h>

// peerCredentials(fd) -> {pid, uid, gid}; throws a system error (getsockopt) on failure.
Napi::Value PeerCredentials(const Napi::CallbackInfo &info);
