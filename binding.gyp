{
  "targets": [
    {
      "target_name": "manifold_native",
      "sources": [
        "native/addon/addon.cc",
        "native/addon/clone_vm.cc",
        "native/addon/dyno_process.cc",
        "native/addon/errors.cc",
        "native/addon/file_lock.cc",
        "native/addon/file_watch.cc",
        "native/addon/helper_memfd.cc",
        "native/addon/rtnl_delete.cc",
        "native/addon/peer_cred.cc",
        "native/addon/spawn.cc",
        "native/addon/tables.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    },
    {
      "target_name": "dyno-init",
      "type": "none",
      "variables": {
        "init_sources": [
          "native/init/main.c",
          "native/init/app.c",
          "native/init/config.c",
          "native/init/identity.c",
          "native/init/netdev.c",
          "native/init/netlink.c",
          "native/init/rootfs.c",
          "native/init/seccomp.c",
          "native/init/status.c",
          "native/init/supervise.c"
        ]
      },
      "actions": [
        {
          "action_name": "build_dyno_init",
          "inputs": ["native/init/build.sh", "native/init/init.h", "native/init/netlink.h", "native/common/dyno_table.h", "native/common/protocol.h", "<@(init_sources)"],
          "outputs": ["<(PRODUCT_DIR)/dyno-init"],
          "action": ["sh", "native/init/build.sh", "<(PRODUCT_DIR)/dyno-init", "<@(init_sources)"]
        }
      ]
    }
  ]
}
