{
  "targets": [
    {
      "target_name": "manifold_native",
      "sources": [
        "native/addon/addon.cc",
        "native/addon/dyno_process.cc",
        "native/addon/errors.cc",
        "native/addon/file_watch.cc",
        "native/addon/helper_memfd.cc",
        "native/addon/spawn.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    },
    {
      "target_name": "dyno-init",
      "type": "executable",
      "sources": [
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
      ],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-format-truncation", "-Wno-stringop-truncation", "-D_GNU_SOURCE"],
      "ldflags": ["-static"]
    }
  ]
}
