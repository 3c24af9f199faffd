# syntax=docker/dockerfile:1
#
# One image for burstd and the String Hashr demo binaries:
#   docker build -t ghcr.io/bursting-dev/burst:0.1.0 .
# burstd is the entrypoint (`operator` by default); the demo manifests in deploy/app/ run
# /usr/local/bin/hashr-worker and /usr/local/bin/hashr-frontend instead.
#
# Stage 1 builds fully static binaries against musl (Alpine's native target); stage 2 is
# distroless/static: no shell, no package manager, no libc, user 65532 (nonroot).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# C toolchain for aws-lc-rs (TLS) and ring; binutils to check that the result is static.
RUN apk add --no-cache musl-dev gcc g++ make cmake perl binutils
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p burst-bin --bin burstd \
        -p burst-hashr --bin hashr-worker --bin hashr-frontend \
 && mkdir -p /out \
 && cp target/release/burstd target/release/hashr-worker target/release/hashr-frontend /out/
# Fail the build if any binary needs a shared library.
RUN for b in /out/*; do \
      if readelf -d "$b" | grep -q NEEDED; then echo "$b is not static"; exit 1; fi; \
    done

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/bursting-dev/burst" \
      org.opencontainers.image.description="burstd (cloud bursting controller for Istio and Gateway API) and the String Hashr demo" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/burstd"]
CMD ["operator"]
