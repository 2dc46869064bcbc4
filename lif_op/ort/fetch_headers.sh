#!/usr/bin/env bash
# Fetch the onnxruntime C/C++ API headers into DEST for building the eventflow custom-op library.
#
#   lif_op/ort/fetch_headers.sh DEST
#
# The headers come from Debian's package libonnxruntime-dev (ONNX Runtime, MIT licence; its copyright file is copied
# beside them). The pip wheel of onnxruntime ships no headers, and this machine reaches only package registries.
# apt-get downloads the package with a private state folder (nothing on the system changes), from the Debian
# mirror this machine is already configured with, suite $EVENTFLOW_ORT_DEBIAN_SUITE (default trixie: the first
# Debian release with onnxruntime). Headers of an older API version load into a newer onnxruntime: the C API is
# versioned and backward compatible.
set -euo pipefail

dest=${1:?usage: fetch_headers.sh DEST}
suite=${EVENTFLOW_ORT_DEBIAN_SUITE:-trixie}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    echo "fetch_headers.sh: needs apt-get and dpkg-deb (a Debian-based system)" >&2; exit 2; }
[ -r "$keyring" ] || { echo "fetch_headers.sh: $keyring not found (package debian-archive-keyring)" >&2; exit 2; }

# The configured Debian mirror: deb822 sources first, then the one-line format.
uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -v security | head -n 1 || true)
if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
          2>/dev/null || true)
fi
[ -n "$uri" ] || { echo "fetch_headers.sh: no Debian mirror configured in /etc/apt" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state/lists/partial" "$work/state/cache/archives/partial" "$work/sources" "$work/deb"
: > "$work/sources.list"
printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' "$uri" "$suite" "$keyring" \
    > "$work/sources/debian.sources"
opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/sources"
      -o "Dir::State::Lists=$work/state/lists" -o "Dir::Cache=$work/state/cache" -o "APT::Sandbox::User=root")
apt-get "${opts[@]}" -qq update
(cd "$work/deb" && apt-get "${opts[@]}" -qq download libonnxruntime-dev)
dpkg-deb -x "$work"/deb/libonnxruntime-dev_*.deb "$work/root"
mkdir -p "$dest"
cp -r "$work/root/usr/include/onnxruntime/." "$dest/"
cp "$work/root/usr/share/doc/libonnxruntime-dev/copyright" "$dest/COPYRIGHT.debian"
version=$(dpkg-deb -f "$work"/deb/libonnxruntime-dev_*.deb Version)
echo "$version" > "$dest/VERSION.debian"
echo "fetched the onnxruntime headers of libonnxruntime-dev $version ($suite) into $dest"
