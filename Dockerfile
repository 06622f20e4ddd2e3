# forkyard as a container image: the static release build (scripts/build-static.sh: musl,
# [profile.init]) made in a Rust image, copied into an empty one. The image holds only
# /usr/local/bin/forkyard; its entrypoint is forkyard, so arguments are a subcommand:
#
#   docker build -t forkyard .
#   docker run --rm forkyard --version
#   docker run --rm forkyard init -- /usr/local/bin/forkyard ps --tree   # init as PID 1
#
# Other images take the binary from it (examples/docker/):
#   COPY --from=forkyard /usr/local/bin/forkyard /usr/local/bin/forkyard
#
# It needs BuildKit (Docker 23 and later by default, or buildx), or Podman/Buildah.
#
# For another architecture, build with buildx: the build stage runs on the build machine and
# cross-compiles (scripts/build-static.sh installs Debian's cross gcc):
#   docker buildx build --platform linux/arm64 -t forkyard:arm64 .

# Debian-based, so scripts/build-static.sh can apt-get musl-tools or the cross compiler.
ARG RUST_IMAGE=rust:1-bookworm

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
# Set by BuildKit for the image being built (amd64, arm64); empty with the classic builder,
# which builds for its own machine.
ARG TARGETARCH
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    case "${TARGETARCH:-}" in \
      amd64) arch=x86_64 ;; \
      arm64) arch=aarch64 ;; \
      "") arch=$(uname -m) ;; \
      *) echo "forkyard builds for amd64 and arm64, not $TARGETARCH" >&2; exit 1 ;; \
    esac \
    && bin=$(scripts/build-static.sh "$arch") \
    && install -D -m 0755 "$bin" /out/usr/local/bin/forkyard \
    && if [ "$arch" = "$(uname -m)" ]; then /out/usr/local/bin/forkyard --version; fi

FROM scratch
COPY --from=build /out/ /
LABEL org.opencontainers.image.title="forkyard" \
      org.opencontainers.image.description="A container init, a service supervisor and a process lister, in one static binary" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.source="https://github.com/forkyard/forkyard"
ENTRYPOINT ["/usr/local/bin/forkyard"]
CMD ["--help"]
