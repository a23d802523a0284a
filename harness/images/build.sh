#!/usr/bin/env bash
# Build the container tier's images locally, without a registry, cached by content key.
#
#   harness/images/build.sh [all|base|localstack|moto|shipper|writer]...     (default: all)
#
#   shipper-harness/base:<key>                  debootstrap'd Debian (minbase + CA certs), `docker import`ed
#   shipper-harness/localstack:<ver>-<key>      pinned localstack-core (harness/images/pins/localstack.txt)
#   shipper-harness/moto:<ver>-<key>            pinned moto[server] (harness/images/pins/moto.txt)
#   shipper-harness/shipper:<key>               deploy/Dockerfile, the same one users build
#   shipper-harness/writer:<key>                the harness binary as `harness write` (kind-tier pods)
#
# Each key is a hash of what goes into the image; an image whose tag exists is not rebuilt, and
# the debootstrap'd rootfs tarball is kept under $CACHE/rootfs/ so a fresh Docker daemon does
# not debootstrap again. The tags are written to $CACHE/images.env, where the harness (feature
# `e2e`) reads them. $CACHE is $SHIPPER_HARNESS_CACHE, else ~/.cache/shipper-harness.
#
# The shipper binary is built on the host (`cargo build --release --locked`, incremental) and
# passed to deploy/Dockerfile as SHIPPER_PREBUILT: compiling inside the legacy builder (no
# BuildKit cache mounts here) would redo a full release build on every source change.
# Needs: root (debootstrap), docker, cargo, python3.11 with pip (the images' Python is
# Debian 12's 3.11: wheels built here fit); installs debootstrap with apt-get if missing.
# Every binary and wheel put into an image is first checked against the base's glibc
# (check-glibc.sh): a host with a newer glibc builds binaries the image cannot load.
set -euo pipefail

SCRIPT_VERSION=1
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES=ca-certificates

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGES=$ROOT/harness/images
CACHE=${SHIPPER_HARNESS_CACHE:-$HOME/.cache/shipper-harness}
MANIFEST=$CACHE/images.env
START=$SECONDS

say() { printf '[images %4ds] %s\n' "$((SECONDS - START))" "$*"; }
key_of() { sha256sum | cut -c1-12; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
# The version pinned with `==` for package $2 in pins file $1.
pinned_version() { sed -n "s/^$2\(\[[^]]*\]\)\?==\([^ ;]*\).*/\2/p" "$1" | head -n1; }

mkdir -p "$CACHE/rootfs"
# One build at a time per cache (concurrent CI jobs, or a test and a developer).
exec 9>"$CACHE/images.lock"
flock 9

BASE_KEY=$(printf '%s\n' "$SCRIPT_VERSION" "$SUITE" "$BASE_PACKAGES" | key_of)
BASE_IMAGE=shipper-harness/base:$BASE_KEY

build_base() {
    if image_exists "$BASE_IMAGE"; then
        say "base: $BASE_IMAGE exists"
        return
    fi
    local tarball=$CACHE/rootfs/base-$BASE_KEY.tar
    if [[ ! -s $tarball ]]; then
        if ! command -v debootstrap >/dev/null; then
            say "base: installing debootstrap"
            apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
        fi
        local dir
        dir=$(mktemp -d "$CACHE/rootfs/build.XXXXXX")
        # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
        trap "rm -rf '$dir'" EXIT
        say "base: debootstrap --variant=minbase $SUITE (+ $BASE_PACKAGES) from $MIRROR"
        debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$dir/rootfs" "$MIRROR" \
            >"$dir/debootstrap.log" 2>&1 || { tail -n 30 "$dir/debootstrap.log"; exit 1; }
        # Smaller image, no host leftovers: package caches, lists and the resolver file.
        rm -rf "$dir"/rootfs/var/cache/apt/archives/*.deb "$dir"/rootfs/var/lib/apt/lists/* \
            "$dir"/rootfs/tmp/* "$dir"/rootfs/var/log/*.log
        : >"$dir/rootfs/etc/resolv.conf"
        tar --numeric-owner -C "$dir/rootfs" -cf "$tarball.partial" .
        mv "$tarball.partial" "$tarball"
        rm -rf "$dir"
        trap - EXIT
    else
        say "base: reusing cached rootfs $tarball"
    fi
    say "base: docker import -> $BASE_IMAGE"
    docker import --change 'CMD ["/bin/bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --message "debootstrap $SUITE minbase + $BASE_PACKAGES (harness/images/build.sh v$SCRIPT_VERSION)" \
        "$tarball" "$BASE_IMAGE" >/dev/null
}

# The base's glibc version (e.g. 2.36), the limit for every binary that goes into an image.
base_glibc() {
    docker run --rm "$BASE_IMAGE" getconf GNU_LIBC_VERSION | sed -n 's/^glibc \([0-9][0-9.]*\)$/\1/p'
}

# Refuse binaries (or wheels) the base cannot load, naming the symbols.
check_glibc() {
    "$IMAGES/check-glibc.sh" "$BASE_GLIBC" "$@" || {
        say "glibc check failed: the base $BASE_IMAGE has glibc $BASE_GLIBC (see above)"
        exit 1
    }
}

# $1 = localstack|moto, $2 = the pinned package whose version names the tag.
build_emulator() {
    local name=$1 package=$2 pins=$IMAGES/pins/$1.txt
    local version key image
    version=$(pinned_version "$pins" "$package")
    [[ -n $version ]] || { say "$name: no '$package==' pin in $pins"; exit 1; }
    key=$(cat <(echo "$BASE_KEY") "$IMAGES/$name/Dockerfile" "$pins" | key_of)
    image=shipper-harness/$name:$version-$key
    printf -v "${name^^}_IMAGE" '%s' "$image"
    if image_exists "$image"; then
        say "$name: $image exists"
        return
    fi
    # Wheels are built on the host, where PyPI's TLS trust is configured, and cached by the
    # pins alone (a Dockerfile change does not download them again).
    local wheels
    wheels=$CACHE/wheels/$name-$(key_of <"$pins")
    if [[ ! -f $wheels/.complete ]]; then
        say "$name: pip wheel -r pins/$name.txt -> $wheels"
        rm -rf "$wheels"
        python3 -m pip wheel --quiet --disable-pip-version-check -r "$pins" -w "$wheels"
        touch "$wheels/.complete"
    fi
    say "$name: glibc check of the wheels (compiled ones must load on the base)"
    check_glibc "$wheels"/*.whl >/dev/null
    local context
    context=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
    trap "rm -rf '$context'" EXIT
    mkdir -p "$context/pins"
    cp "$pins" "$context/pins/"
    cp -r "$wheels" "$context/wheels"
    say "$name: docker build -> $image"
    docker build --quiet --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$IMAGES/$name/Dockerfile" \
        -t "$image" "$context" >/dev/null
    rm -rf "$context"
    trap - EXIT
}

build_shipper() {
    # SHIPPER_PROFILE=dev reuses the debug binary `cargo test --workspace` already built (what
    # CI does: the image's contents are the same code, and a second, release build of the whole
    # dependency tree would cost CI most of its time budget). Default: release, as users ship.
    local profile="${SHIPPER_PROFILE:-release}" profile_dir
    local t0=$SECONDS
    case "$profile" in
    release)
        say "shipper: cargo build --release --locked -p shipper (host toolchain, incremental)"
        (cd "$ROOT" && cargo build --quiet --release --locked -p shipper --bin shipper)
        profile_dir=release
        ;;
    dev)
        say "shipper: cargo build --locked --workspace --bin shipper (debug, as the tests build it)"
        (cd "$ROOT" && cargo build --quiet --locked --workspace --bin shipper)
        profile_dir=debug
        ;;
    *)
        echo "SHIPPER_PROFILE=$profile: expected release or dev" >&2
        exit 2
        ;;
    esac
    say "shipper: $profile binary ready in $((SECONDS - t0))s"
    local target_dir
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    local binary=$target_dir/$profile_dir/shipper
    say "shipper: glibc check against the base's $BASE_GLIBC"
    check_glibc "$binary"
    local key image
    key=$(cat <(echo "$BASE_KEY") "$ROOT/deploy/Dockerfile" "$binary" | key_of)
    image=shipper-harness/shipper:$key
    SHIPPER_IMAGE=$image
    if image_exists "$image"; then
        say "shipper: $image exists"
        return
    fi
    # A small context: the Dockerfile's build stage copies the context, and the workspace's
    # target/ is gigabytes.
    local context
    context=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$context'" EXIT
    mkdir -p "$context/prebuilt"
    cp "$binary" "$context/prebuilt/shipper"
    say "shipper: docker build -f deploy/Dockerfile (SHIPPER_PREBUILT) -> $image"
    docker build --quiet -f "$ROOT/deploy/Dockerfile" \
        --build-arg "BUILDER_IMAGE=$BASE_IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --build-arg SHIPPER_PREBUILT=prebuilt/shipper \
        -t "$image" "$context" >/dev/null
    rm -rf "$context"
    trap - EXIT
    say "shipper: smoke test: shipper --help, shipper check with the contract env"
    docker run --rm "$image" --help >/dev/null
    docker run --rm -e CLUSTER_NAME=smoke -e NODE_NAME=node-a -e AWS_REGION=us-east-1 "$image" check >/dev/null
}

build_writer() {
    # The writer prints payload lines; its speed does not matter, so it is always the debug
    # binary `cargo test --workspace` builds anyway, stripped of debug info in the image.
    local t0=$SECONDS
    say "writer: cargo build --locked --workspace --bin harness (debug, as the tests build it)"
    (cd "$ROOT" && cargo build --quiet --locked --workspace --bin harness)
    local target_dir
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    local binary=$target_dir/debug/harness
    say "writer: harness binary ready in $((SECONDS - t0))s"
    say "writer: glibc check against the base's $BASE_GLIBC"
    check_glibc "$binary"
    local key image
    key=$(cat <(echo "$BASE_KEY") "$IMAGES/writer/Dockerfile" "$binary" | key_of)
    image=shipper-harness/writer:$key
    WRITER_IMAGE=$image
    if image_exists "$image"; then
        say "writer: $image exists"
        return
    fi
    local context
    context=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$context'" EXIT
    strip --strip-debug -o "$context/harness" "$binary"
    say "writer: docker build -f harness/images/writer/Dockerfile -> $image"
    docker build --quiet -f "$IMAGES/writer/Dockerfile" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        -t "$image" "$context" >/dev/null
    rm -rf "$context"
    trap - EXIT
    say "writer: smoke test: three lines on stdout"
    local lines
    lines=$(docker run --rm "$image" --run=smoke --pod=p --container=c --lines=3 --rate=1000 | wc -l)
    [[ $lines -eq 3 ]] || { say "writer: expected 3 lines, got $lines"; exit 1; }
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(all)
LOCALSTACK_IMAGE="" MOTO_IMAGE="" SHIPPER_IMAGE="" WRITER_IMAGE=""
build_base
BASE_GLIBC=$(base_glibc)
[[ -n $BASE_GLIBC ]] || { say "base: cannot read the glibc version of $BASE_IMAGE"; exit 1; }
say "base: glibc $BASE_GLIBC"
for target in "${targets[@]}"; do
    case $target in
        all)
            build_emulator localstack localstack-core
            build_emulator moto moto
            build_shipper
            build_writer
            ;;
        base) ;;
        localstack) build_emulator localstack localstack-core ;;
        moto) build_emulator moto moto ;;
        shipper) build_shipper ;;
        writer) build_writer ;;
        *) echo "unknown target '$target' (all|base|localstack|moto|shipper|writer)" >&2; exit 2 ;;
    esac
done

# Keep the tags of images not built this time (e.g. `build.sh shipper` after `build.sh all`).
if [[ -f $MANIFEST ]]; then
    # shellcheck disable=SC1090
    previous() { (source "$MANIFEST" && eval "echo \${$1:-}"); }
    : "${LOCALSTACK_IMAGE:=$(previous SHIPPER_HARNESS_LOCALSTACK_IMAGE)}"
    : "${MOTO_IMAGE:=$(previous SHIPPER_HARNESS_MOTO_IMAGE)}"
    : "${SHIPPER_IMAGE:=$(previous SHIPPER_HARNESS_SHIPPER_IMAGE)}"
    : "${WRITER_IMAGE:=$(previous SHIPPER_HARNESS_WRITER_IMAGE)}"
fi
cat >"$MANIFEST.partial" <<EOF
# Written by harness/images/build.sh; read by the harness's container tier (feature e2e).
SHIPPER_HARNESS_BASE_IMAGE=$BASE_IMAGE
SHIPPER_HARNESS_BASE_GLIBC=$BASE_GLIBC
SHIPPER_HARNESS_LOCALSTACK_IMAGE=$LOCALSTACK_IMAGE
SHIPPER_HARNESS_MOTO_IMAGE=$MOTO_IMAGE
SHIPPER_HARNESS_SHIPPER_IMAGE=$SHIPPER_IMAGE
SHIPPER_HARNESS_WRITER_IMAGE=$WRITER_IMAGE
EOF
mv "$MANIFEST.partial" "$MANIFEST"
say "done in $((SECONDS - START))s; tags in $MANIFEST:"
grep -v '^#' "$MANIFEST"
