#!/bin/sh
# Runs node-gyp against the headers of the node that runs the build, where that install ships them
# (NodeSource's /usr/include/node, the official tarballs' and the npm registry's node-linux-* packages'
# include/node). A nodedir left in a user's npmrc for another Node version, or a header download that
# can't reach the network, would otherwise decide what we compile against.
prefix=$(node -p 'require("path").resolve(require("fs").realpathSync(process.execPath), "..", "..")')
if [ -f "$prefix/include/node/node_api.h" ]; then
  export npm_config_nodedir="$prefix"   # node-gyp reads npm's environment before its own flags
fi
exec node-gyp "$@"
