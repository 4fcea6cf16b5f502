#!/usr/bin/env bash
# Builds the local Debian base images molecule and `make demo` run: there is no registry
# to pull from, so each image is debootstrapped and imported. Images that exist are kept.
set -euo pipefail

# The Debian archive this machine's apt already uses (deb822 .sources files or
# sources.list), not a host named here; GANTRY_DEBIAN_MIRROR overrides it.
apt_mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -r "$file" ] || continue
    # A stanza's URIs, when its Types has deb and its Suites are not -security ones.
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uris = ""; deb = 0; security = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/ && $i ~ /[[:space:]]deb([[:space:]]|$)/) deb = 1
          if ($i ~ /^Suites:/ && $i ~ /-security/) security = 1
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[[:space:]]*/, "", uris); split(uris, u, /[[:space:]]+/); uris = u[1] }
        }
        if (deb && !security && uris != "") { print uris; exit } }' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$file" ] || continue
    awk '$1 == "deb" && $0 !~ /-security/ {
      for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; exit } }' "$file"
  done
}
mirror=${GANTRY_DEBIAN_MIRROR:-$(apt_mirror | sed -n 1p)}
if [ -z "$mirror" ]; then
  echo "no Debian mirror found in /etc/apt/sources.list*: set GANTRY_DEBIAN_MIRROR" >&2
  exit 1
fi
packages=systemd,systemd-sysv,dbus,python3,python3-apt,python3-venv,sudo,ca-certificates,procps

if ! command -v debootstrap >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

build() {
  local suite=$1 image=gantry/debian:$1
  if docker image inspect "$image" >/dev/null 2>&1; then
    return 0
  fi
  local root
  root=$(mktemp -d "/var/tmp/gantry-rootfs-$suite.XXXXXX")
  trap 'rm -rf "$root"' RETURN
  echo "building $image (debootstrap $suite, a few minutes)"
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" \
    >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; return 1; }
  # systemd in a container: no getty on a console that does not exist, no udev.
  rm -f "$root"/etc/systemd/system/getty.target.wants/* \
        "$root"/lib/systemd/system/multi-user.target.wants/getty.target
  echo "gantry-$suite" >"$root/etc/hostname"
  : >"$root/etc/machine-id"
  tar -C "$root" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' \
    - "$image" >/dev/null
  rm -f "$root.log"
}

for suite in "${@:-bookworm trixie}"; do
  for s in $suite; do build "$s"; done
done
