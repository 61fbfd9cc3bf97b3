# syntax=docker/dockerfile:1
#
# Container image of scim-bridge: `docker build -t scim-bridge .`
#
# Not built in CI: the project's build machines have no Docker engine, so this file is checked
# by review only. Build it on a machine with Docker or any OCI builder (BuildKit, Podman, Kaniko).
#
# Stages: `chef` (toolchain + cargo-chef), `planner` (dependency recipe from the manifests),
# `builder` (dependencies in their own cached layer, then the workspace), and a small runtime on
# distroless cc (glibc, CA certificates for reqwest's rustls native roots, uid 65532, no shell).

# Base images are pinned by digest, so a rebuild starts from the same bytes whatever the tags
# point at by then; the tag stays in each FROM for readers (with a digest, the builder pulls by
# digest). scripts/dockerfile-check (run by scripts/test) refuses a FROM without a digest and a
# digest without its source line. To update: docs/operations.md, "Updating the base images".
#
# rust:1.95-slim-bookworm, the multi-platform index (12 platforms) built 2026-05-19.
# source: docker-library/repo-info, repos/rust/remote/1.95-slim-bookworm.md (registry record)
ARG RUST_DIGEST=sha256:2f38914f22d4428179ca09eff59ea3b17e8e03d738fdaea9bf3051b97583d32d
# gcr.io/distroless/cc-debian12:nonroot.
# source: public Dockerfiles pinning this tag (not checked against gcr.io from the project's
# machines, which reach no registry): check it with the update procedure before a release build.
ARG RUNTIME_DIGEST=sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
ARG CARGO_CHEF_VERSION=0.1.78

FROM rust:1.95-slim-bookworm@${RUST_DIGEST} AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src
# Set here so the cooked dependencies and the final build share one profile (and so one cache).
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
# The build context has no .git: `scim-bridge --version` and scim_bridge_build_info show this
# commit (`docker build --build-arg SCIM_BRIDGE_GIT_COMMIT=$(git rev-parse --short=12 HEAD) .`),
# "unknown" without it. SOURCE_DATE_EPOCH, when given, fixes the build date.
ARG SCIM_BRIDGE_GIT_COMMIT=unknown
ARG SOURCE_DATE_EPOCH
RUN SCIM_BRIDGE_GIT_COMMIT="${SCIM_BRIDGE_GIT_COMMIT}" cargo build --release --locked --bin scim-bridge \
 && install -D -m 0755 target/release/scim-bridge /out/usr/local/bin/scim-bridge \
 && install -d -m 0750 /out/data

# Debian 12 (bookworm), as the builder, so the binary's glibc matches.
FROM gcr.io/distroless/cc-debian12:nonroot@${RUNTIME_DIGEST}
COPY --from=builder /out/usr/local/bin/scim-bridge /usr/local/bin/scim-bridge
COPY --from=builder --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV SCIM_BRIDGE_LISTEN=0.0.0.0:8080 \
    SCIM_BRIDGE_DATABASE_URL=sqlite:///data/scim-bridge.db
VOLUME ["/data"]
EXPOSE 8080
# The image has no shell and no curl: the binary asks its own /healthz.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s \
  CMD ["scim-bridge", "healthcheck"]
ENTRYPOINT ["scim-bridge"]
CMD ["serve"]
