#!/usr/bin/env bash
# The container image of `host`, built with the local engine and nothing pulled (no base image,
# no registry): the release host FROM scratch with the C libraries it links (glibc's loader,
# libc, libm, libgcc_s, copied from this machine), this machine's CA certificates, a non-root
# user, /data for the run store and the compile cache, port 9095 and a HEALTHCHECK by
# `host health`.
#
#   scripts/image.sh [--no-build] [TAG]      TAG defaults to runbook/host:latest
#
# The image holds the very binary the test suite ran (target/release/host), not a second build
# for another libc: one build instead of two, and glibc's allocator rather than musl's, which is
# slower under the server's many small allocations. --no-build packs the binary already in the
# target dir. The image is labelled with a hash of what it is made of: when TAG already holds the
# same binary and libraries from the same recipe, nothing is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=1
TAG=runbook/host:latest
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        -*) echo "image: unknown option $arg" >&2; exit 2 ;;
        *) TAG=$arg ;;
    esac
done
BIN="${CARGO_TARGET_DIR:-target}/release/host"
# The one user the image knows; any uid works with -u, as long as it can write /data.
USER_ID=10001

if [ "$BUILD" = 1 ]; then
    echo "image: building the host (release)" >&2
    cargo build --release --locked -p runbook-host
fi
if [ ! -x "$BIN" ]; then
    echo "image: $BIN is missing: run scripts/image.sh without --no-build" >&2
    exit 1
fi
# FROM scratch has no loader and no libc: the ones the binary names go in with it, and nothing
# else (a library outside glibc and the compiler's runtime would be a dependency to review).
LIBS=$(ldd "$BIN" | awk '$2 == "=>" { print $3; next } $1 ~ /^\// { print $1 }')
for lib in $LIBS; do
    case "$(basename "$lib")" in
        ld-linux-x86-64.so.2 | libc.so.6 | libm.so.6 | libgcc_s.so.1) ;;
        *) echo "image: $BIN links $lib, which the image does not carry" >&2; exit 1 ;;
    esac
done
CERTS=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$CERTS" ]; then
    echo "image: $CERTS is missing (Debian's ca-certificates package)" >&2
    exit 1
fi

# What the image is made of: the binary, its libraries, this script (the Dockerfile is in it),
# the certificates.
INPUTS=$(cat "$BIN" "$0" "$CERTS" $LIBS | sha256sum | cut -d' ' -f1)
if [ "$(docker image inspect -f '{{ index .Config.Labels "runbook.image.inputs" }}' "$TAG" 2>/dev/null)" = "$INPUTS" ]; then
    echo "image: $TAG is up to date (inputs $INPUTS)" >&2
    exit 0
fi

CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
# The image's whole file tree, copied as is (modes kept): one layer but /data's.
ROOT="$CONTEXT/rootfs"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc/ssl/certs" "$ROOT/tmp" "$CONTEXT/data"
# Without its symbol table (a fifth of the file); a panic's backtrace then shows addresses only.
strip -o "$ROOT/usr/local/bin/host" "$BIN"
chmod 0755 "$ROOT/usr/local/bin/host"
for lib in $LIBS; do
    mkdir -p "$ROOT$(dirname "$lib")"
    # The file itself, not the symlink Debian installs under that name.
    install -m 0755 "$(readlink -f "$lib")" "$ROOT$lib"
done
install -m 0644 "$CERTS" "$ROOT/etc/ssl/certs/ca-certificates.crt"
echo "runbook:x:$USER_ID:$USER_ID:runbook host:/data:/sbin/nologin" >"$ROOT/etc/passwd"
echo "runbook:x:$USER_ID:" >"$ROOT/etc/group"
chmod 0644 "$ROOT/etc/passwd" "$ROOT/etc/group"
chmod 1777 "$ROOT/tmp"
chmod 0755 "$CONTEXT/data"
COMMIT=$("$BIN" --version | sed -n 's/.*(commit \(.*\))$/\1/p')
VERSION=$("$BIN" --version | cut -d' ' -f2)
cat >"$CONTEXT/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
COPY --chown=$USER_ID:$USER_ID data /data
USER $USER_ID:$USER_ID
WORKDIR /data
# The run store and the compile cache live on the volume; the config is mounted read-only
# (RUNBOOK_CONFIG=/etc/runbook/host.toml, or ./host.toml in /data).
ENV HOME=/data \\
    RUNBOOK_STORE=/data/runs.sqlite3 \\
    RUNBOOK_CACHE_DIR=/data/cache \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
VOLUME ["/data"]
EXPOSE 9095
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \\
    CMD ["/usr/local/bin/host", "health", "--timeout", "4"]
ENTRYPOINT ["/usr/local/bin/host"]
CMD ["serve", "--listen", "0.0.0.0:9095"]
LABEL org.opencontainers.image.title="runbook host" \\
      org.opencontainers.image.version="$VERSION" \\
      org.opencontainers.image.revision="$COMMIT" \\
      runbook.image.inputs="$INPUTS"
EOF
docker build -q -t "$TAG" "$CONTEXT" >/dev/null
echo "image: built $TAG ($(docker image inspect -f '{{ .Size }}' "$TAG") bytes)" >&2
