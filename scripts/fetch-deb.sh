#!/bin/sh
# fetch-deb.sh ARCH DEST PKG — download Debian package PKG for ARCH with
# apt-get download (APT's architecture options, a private APT state under
# .cache/apt/ARCH, nothing installed on the host) and unpack it with dpkg -x
# into DEST. A metapackage such as linux-image-arm64 is followed to the
# package it depends on. Idempotent: DEST/.fetched records what is there.
set -eu
arch=$1 dest=$2 pkg=$3
case $dest in /*) ;; *) dest=$(pwd)/$dest ;; esac
top=$(cd "$(dirname "$0")/.." && pwd)
state=$top/.cache/apt/$arch
if [ -f "$dest/.fetched" ]; then exit 0; fi

mkdir -p "$state/lists/partial" "$state/archives/partial" "$top/.cache/debs"
touch "$state/status"
apt_opts="-o APT::Architecture=$arch -o APT::Architectures=$arch
  -o Dir::State=$state -o Dir::State::Lists=$state/lists
  -o Dir::State::status=$state/status -o Dir::Cache=$state
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root"
# The package lists are refreshed once a day at most.
if [ -z "$(find "$state/lists" -name '*Packages*' -mtime -1 2>/dev/null | head -n1)" ]; then
  echo "fetch-deb: apt-get update for $arch"
  # shellcheck disable=SC2086
  apt-get $apt_opts -qq update
fi
# Follow a metapackage (linux-image-amd64 -> linux-image-6.1.0-NN-amd64).
real=$pkg
case $pkg in
linux-image-*)
  # shellcheck disable=SC2086
  dep=$(apt-cache $apt_opts depends "$pkg" | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
  [ -n "$dep" ] && real=$dep
  ;;
esac
cd "$top/.cache/debs"
if ! ls "${real}"_*_"$arch".deb >/dev/null 2>&1 && ! ls "${real}"_*_all.deb >/dev/null 2>&1; then
  echo "fetch-deb: apt-get download $real ($arch)"
  # shellcheck disable=SC2086
  apt-get $apt_opts -qq download "$real:$arch"
fi
deb=$(ls "${real}"_*_"$arch".deb 2>/dev/null | tail -n1)
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
dpkg -x "$deb" "$dest.tmp"
echo "$deb" >"$dest.tmp/.fetched"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
