#!/bin/sh
# Installs vxnet on this Debian host (run as root): PREFIX/bin/vxnet, its own Node.js and built code in
# PREFIX/lib/vxnet (nothing points back to where it was installed from), the Debian packages the agent runs
# (iproute2, nftables, util-linux, ethtool, wireguard-tools, wireguard-go), and the systemd units
# vxnet-manager and vxnet-agent with their flags in SYSCONFDIR/default/vxnet-*. Run it from a checkout (it
# builds first: `npm run build`) or from an unpacked `npm run dist` tarball, or give it the tarball with --from.
#
#   ./install.sh [--prefix /usr/local] [--sysconfdir /etc] [--from vxnet-VERSION-linux-x64.tar.gz] [--no-packages]
#   ./install.sh --uninstall [--purge] [--prefix ...] [--sysconfdir ...] [--localstatedir /var]
#
# --uninstall removes what the install put there and leaves the flags, tokens and state (/var/lib/vxnet,
# where the units keep it); --purge removes those too. Reinstalling over an installation upgrades it and
# keeps the flags.
set -eu

usage() {
  sed -n '8,9p' "$0" | sed 's/^#   /usage: /' >&2
  exit 2
}
fail() {
  echo "install.sh: $*" >&2
  exit 1
}

prefix=/usr/local
sysconfdir=/etc
localstatedir=/var
from=""
packages=yes
action=install
purge=no
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --sysconfdir) [ $# -ge 2 ] || usage; sysconfdir=$2; shift 2 ;;
    --sysconfdir=*) sysconfdir=${1#*=}; shift ;;
    --localstatedir) [ $# -ge 2 ] || usage; localstatedir=$2; shift 2 ;;
    --localstatedir=*) localstatedir=${1#*=}; shift ;;
    --from) [ $# -ge 2 ] || usage; from=$2; shift 2 ;;
    --from=*) from=${1#*=}; shift ;;
    --no-packages) packages=no; shift ;;
    --uninstall) action=uninstall; shift ;;
    --purge) purge=yes; shift ;;
    -h | --help) usage ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done
# The paths end up in unit files and a shell launcher: absolute, and nothing a unit's ExecStart would split.
for dir in "$prefix" "$sysconfdir" "$localstatedir"; do
  case "$dir" in
    /*) ;;
    *) fail "--prefix, --sysconfdir and --localstatedir need absolute paths, not \"$dir\"." ;;
  esac
  case "$dir" in
    *[!A-Za-z0-9/._+-]*) fail "\"$dir\" has characters a systemd unit cannot hold unquoted; use letters, digits and / . _ + -." ;;
  esac
done
prefix=${prefix%/}
sysconfdir=${sysconfdir%/}
localstatedir=${localstatedir%/}
[ "$purge" = no ] || [ "$action" = uninstall ] || fail "--purge goes with --uninstall."

here=$(cd "$(dirname "$0")" && pwd)
libdir=$prefix/lib/vxnet
unitdir=$sysconfdir/systemd/system
units="vxnet-manager vxnet-agent"
# Units are (re)loaded and restarted only on a host booted with systemd, and only for the real /etc.
systemd=no
if [ "$sysconfdir" = /etc ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemd=yes; fi

if [ "$action" = uninstall ]; then
  for unit in $units; do
    [ "$systemd" = no ] || systemctl disable --now "$unit.service" >/dev/null 2>&1 || true
    rm -f "$unitdir/$unit.service"
  done
  [ "$systemd" = no ] || systemctl daemon-reload
  rm -rf "$libdir" "$prefix/share/doc/vxnet"
  # Only our own launcher: another program of that name is not ours to remove.
  if grep -qs '^# vxnet launcher' "$prefix/bin/vxnet"; then rm -f "$prefix/bin/vxnet"; fi
  if [ "$purge" = yes ]; then
    rm -rf "$sysconfdir/default/vxnet-manager" "$sysconfdir/default/vxnet-agent" "$sysconfdir/vxnet" "$localstatedir/lib/vxnet"
    echo "install.sh: vxnet removed from $prefix, with its flags, tokens and state."
  else
    echo "install.sh: vxnet removed from $prefix; kept $sysconfdir/default/vxnet-*, $sysconfdir/vxnet and $localstatedir/lib/vxnet (--purge removes them)."
  fi
  exit 0
fi

# ---- the tree to install: a tarball, an unpacked tarball (this script's folder), or a checkout to build ----
scratch=""
trap '[ -z "$scratch" ] || rm -rf "$scratch"' EXIT INT TERM
if [ -n "$from" ]; then
  [ -f "$from" ] || fail "no such tarball: $from."
  scratch=$(mktemp -d)
  tar -C "$scratch" -xzf "$from"
  tree=$(find "$scratch" -mindepth 1 -maxdepth 1 -type d -name 'vxnet-*' | head -n 1)
  [ -n "$tree" ] && [ -f "$tree/lib/vxnet/js/main.js" ] || fail "$from is not a vxnet tarball (made by npm run dist)."
elif [ -f "$here/lib/vxnet/js/main.js" ]; then
  tree=$here
elif [ -f "$here/package.json" ] && [ -d "$here/src" ]; then
  # A checkout: the build needs the npm packages (esbuild, Node.js 24), which setup.sh or npm ci installs.
  if [ ! -x "$here/node_modules/.bin/node" ] || [ ! -d "$here/node_modules/esbuild" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      [ "$packages" = yes ] && [ "$(id -u)" = 0 ] || fail "building from a checkout needs npm: apt-get install -y npm, then run me again."
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  "$here/node_modules/.bin/node" "$here/packaging/build.ts"
  tree=$here/build/vxnet-$("$here/node_modules/.bin/node" -p 'require(process.argv[1]).version' "$here/package.json")-linux-x64
  [ -f "$tree/lib/vxnet/js/main.js" ] || fail "the build left no $tree."
else
  fail "run me from a vxnet checkout or an unpacked vxnet tarball, or give --from TARBALL."
fi
version=$(cat "$tree/VERSION")

# ---- the Debian packages the agent drives (not the ones only the tests need) ----
if [ "$packages" = yes ]; then
  [ "$(id -u)" = 0 ] || fail "run as root to install Debian packages (or pass --no-packages)."
  # wireguard-tools and wireguard-go: encrypted networks where the kernel has no WireGuard module (without
  # recommends: wireguard-tools recommends a kernel image); ethtool: an Open vSwitch host's agent
  missing=""
  for p in iproute2 nftables util-linux ethtool wireguard-tools wireguard-go; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

# ---- PREFIX/lib/vxnet: copied next to the old one, then swapped in, so a failed copy leaves the old ----
mkdir -p "$prefix/bin" "$prefix/lib" "$prefix/share/doc"
rm -rf "$libdir.new" "$libdir.old"
cp -R "$tree/lib/vxnet" "$libdir.new"
[ ! -d "$libdir" ] || mv "$libdir" "$libdir.old"
mv "$libdir.new" "$libdir"
rm -rf "$libdir.old" "$prefix/share/doc/vxnet"
cp -R "$tree/share/doc/vxnet" "$prefix/share/doc/vxnet"

# --preserve-symlinks(-main): without them Node takes the real path (fs.realpathSync, in JavaScript) of main.js
# and of each of the ~25 chunks a `vxnet network ls` loads. The installed tree holds no links to resolve
# (cp -R above, imports relative to it), so the launcher skips that work: 5-8% of a call's CPU, measured under
# load (bench/cli-start.ts).
cat >"$prefix/bin/vxnet.new" <<EOF
#!/bin/sh
# vxnet launcher, written by install.sh (vxnet $version): the Node.js and the built code in $libdir,
# with the environment of launcher-env.sh there.
. "$libdir/launcher-env.sh"
exec "$libdir/node/bin/node" --preserve-symlinks --preserve-symlinks-main "$libdir/js/main.js" "\$@"
EOF
chmod 0755 "$prefix/bin/vxnet.new"
mv "$prefix/bin/vxnet.new" "$prefix/bin/vxnet"
"$prefix/bin/vxnet" --version >/dev/null || fail "the installed $prefix/bin/vxnet does not run."

# ---- systemd units and their flags ----
fill() {
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@BINDIR@|$prefix/bin|g" -e "s|@SYSCONFDIR@|$sysconfdir|g" "$1"
}
mkdir -p "$unitdir" "$sysconfdir/default"
mkdir -p -m 0700 "$sysconfdir/vxnet"
for unit in $units; do
  fill "$tree/packaging/systemd/$unit.service" >"$unitdir/$unit.service"
  chmod 0644 "$unitdir/$unit.service"
  # The host's flags are the admin's: written once, never overwritten.
  [ -e "$sysconfdir/default/$unit" ] || fill "$tree/packaging/default/$unit" >"$sysconfdir/default/$unit"
done
if [ "$systemd" = yes ]; then
  systemctl daemon-reload
  # An upgrade takes effect in the daemons that run (a running agent keeps the kernel state meanwhile).
  systemctl try-restart vxnet-manager.service vxnet-agent.service
fi

echo "install.sh: vxnet $version installed in $prefix (run $prefix/bin/vxnet); units in $unitdir, flags in $sysconfdir/default/vxnet-{manager,agent}."
