# The environment both launchers give Node, sourced by bin/vxnet (from source) and PREFIX/bin/vxnet
# (install.sh copies this file to PREFIX/lib/vxnet/launcher-env.sh). POSIX sh, no process started.
#
# NODE_EXTRA_CA_CERTS: vxnet trusts only the CAs it is given (the cluster CA a token pins, --ca,
# --etcd-ca), never Node's default store, so the variable adds nothing it trusts; yet Node parses the
# bundle it names at the first TLS connection: 8-10 ms of a `vxnet network ls` with Debian's whole bundle
# (bench/cli-start.ts, docs/security.md).
unset NODE_EXTRA_CA_CERTS
# Node's compile cache keeps V8's code of the modules between calls: from source (type-stripped .ts)
# `vxnet --version` took 141 against 346 ms of CPU with it; of the installed bundle's `vxnet network ls`,
# 4-6% of the CPU (bench/cli-start.ts, two runs). The cache is the user's own (XDG_CACHE_HOME or ~/.cache),
# never a shared folder: what another user could write there would be code this one runs. A
# NODE_COMPILE_CACHE already set wins. The folder is made here first: Node 24.21 spun forever on a cache
# path it could not create (under /proc).
if [ -z "${NODE_COMPILE_CACHE+set}" ] && [ -n "${HOME:-}" ]; then
  vxnet_cache="${XDG_CACHE_HOME:-$HOME/.cache}/vxnet/node-compile-cache"
  if { [ -d "$vxnet_cache" ] || mkdir -p -m 700 "$vxnet_cache" 2>/dev/null; } && [ -w "$vxnet_cache" ]; then
    NODE_COMPILE_CACHE=$vxnet_cache
    export NODE_COMPILE_CACHE
  fi
  unset vxnet_cache
fi
