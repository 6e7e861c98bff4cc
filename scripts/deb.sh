#!/usr/bin/env bash
# Build the Debian packages (debian/): copy the source tree (the files git
# tracks or would track, as they are in the working tree) to
# OUT/amonitor-VERSION, run "dpkg-buildpackage -us -uc -b" there, so the
# checkout's own build/ is never cleaned, then lintian on the result.
# The .deb, .changes and .buildinfo files end up in OUT (default
# build/deb).  Needs the build dependencies of debian/control
# (apt-get build-dep ./ or "bash scripts/deps.sh --deb" as root).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-$ROOT/build/deb}
LINTIAN=${AMON_DEB_LINTIAN:-1}

for tool in dpkg-buildpackage dpkg-parsechangelog dh; do
    command -v "$tool" >/dev/null || {
        echo "deb: $tool is missing (apt-get install dpkg-dev debhelper)" >&2
        exit 2
    }
done

version=$(dpkg-parsechangelog -S Version)
source=$(dpkg-parsechangelog -S Source)
arch=$(dpkg --print-architecture)
tree=$OUT/$source-$version

rm -rf "$OUT"
mkdir -p "$tree"

# the files of the source tree: git's list where there is one, otherwise
# everything but what builds and tests leave behind
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do
            [ -e "$f" ] && printf '%s\0' "$f"
        done \
        | tar --null -T - -cf - | tar -C "$tree" -xf -
else
    tar --exclude=./.git --exclude=./build --exclude=./dist \
        --exclude=./src/core/gen --exclude=./fuzz/corpus-run \
        --exclude='./t/servroot*' --exclude=node_modules -cf - . \
        | tar -C "$tree" -xf -
fi

(cd "$tree" && dpkg-checkbuilddeps) || {
    echo "deb: missing build dependencies (bash scripts/deps.sh --deb)" >&2
    exit 2
}

(cd "$tree" && dpkg-buildpackage -us -uc -b)

changes=$OUT/${source}_${version}_$arch.changes
echo "deb: packages in $OUT:"
ls -1 "$OUT"/*.deb

if [ "$LINTIAN" = 1 ] && command -v lintian >/dev/null; then
    # errors fail the build; warnings and below are printed
    lintian --fail-on error --info "$changes"
fi
