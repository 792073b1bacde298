#!/bin/sh
# fetch-deb.sh ARCH DEST PKG — download Debian package PKG for ARCH (a
# GOARCH: amd64, arm64, arm, riscv64) with apt-get download (APT's
# architecture options, a private APT state under .cache/apt/DEBARCH,
# nothing installed on the host) and unpack it with dpkg -x into DEST. A
# metapackage such as linux-image-arm64 is followed to the package it
# depends on. Idempotent: DEST/.fetched records what is there.
#
# arm is Debian's armhf. riscv64 is not a Debian 12 architecture: it comes
# from Debian 13 (trixie) on the same archive host as the machine's own
# Debian sources, through a source list of this script's own.
set -eu
arch=$1 dest=$2 pkg=$3
case $dest in /*) ;; *) dest=$(pwd)/$dest ;; esac
top=$(cd "$(dirname "$0")/.." && pwd)
case $arch in
arm) debarch=armhf ;;
*) debarch=$arch ;;
esac
state=$top/.cache/apt/$debarch
if [ -f "$dest/.fetched" ]; then exit 0; fi

mkdir -p "$state/lists/partial" "$state/archives/partial" "$top/.cache/debs"
touch "$state/status"
apt_opts="-o APT::Architecture=$debarch -o APT::Architectures=$debarch
  -o Dir::State=$state -o Dir::State::Lists=$state/lists
  -o Dir::State::status=$state/status -o Dir::Cache=$state
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root"
if [ "$debarch" = riscv64 ]; then
  # The archive host of the machine's own Debian sources (the one labelled
  # "Debian"), else Debian's redirector.
  mirror=$(apt-get indextargets --format '$(LABEL) $(REPO_URI)' 2>/dev/null |
    awk '$1 == "Debian" { print $2; exit }')
  mirror=${mirror:-http://deb.debian.org/debian/}
  mkdir -p "$state/sources.list.d"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$state/sources.list.new"
  if ! cmp -s "$state/sources.list.new" "$state/sources.list"; then
    mv "$state/sources.list.new" "$state/sources.list"
    rm -f "$state/.updated" # a new source: refresh the lists
  else
    rm -f "$state/sources.list.new"
  fi
  apt_opts="$apt_opts -o Dir::Etc::SourceList=$state/sources.list
  -o Dir::Etc::SourceParts=$state/sources.list.d"
fi
# The package lists are refreshed once a day at most; .updated marks an
# update that fetched every list. A list the mirror serves broken (one
# caught mid-sync) fails the update in part: the others are used, and the
# next fetch updates again.
if [ -z "$(find "$state/.updated" -mtime -1 2>/dev/null)" ]; then
  echo "fetch-deb: apt-get update for $debarch"
  # shellcheck disable=SC2086
  if apt-get $apt_opts -qq update; then
    touch "$state/.updated"
  else
    echo "fetch-deb: warning: apt-get update for $debarch failed in part; using the lists it got" >&2
  fi
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
if ! ls "${real}"_*_"$debarch".deb >/dev/null 2>&1 && ! ls "${real}"_*_all.deb >/dev/null 2>&1; then
  echo "fetch-deb: apt-get download $real ($debarch)"
  # shellcheck disable=SC2086
  apt-get $apt_opts -qq download "$real:$debarch"
fi
deb=$(ls "${real}"_*_"$debarch".deb 2>/dev/null | tail -n1)
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
dpkg -x "$deb" "$dest.tmp"
echo "$deb" >"$dest.tmp/.fetched"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
