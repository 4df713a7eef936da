# syntax=docker/dockerfile:1.7
#
# One image for every branchscore service:
#   docker build -t branchscore:dev .
#   docker run --rm branchscore:dev --help
#   docker run --rm -p 50051:50051 \
#     -e BRANCHSCORE_CLIENTS__SERVER__LISTEN=0.0.0.0:50051 \
#     -e BRANCHSCORE_CLIENTS__DATABASE__URL=postgres://user:pass@db:5432/branchscore_clients \
#     branchscore:dev serve clients
#
# Stages:
#   chef     Rust toolchain + cargo-chef (cached until RUST_VERSION/CHEF_VERSION change)
#   planner  reduces the workspace to a dependency "recipe" (manifests + Cargo.lock only)
#   builder  compiles the dependencies from the recipe (this layer is reused as long as
#            Cargo.toml/Cargo.lock do not change), then the workspace itself
#   runtime  distroless glibc image, non-root, nothing but the binary
#
# Notes on what the build needs:
#   * No system protoc: shared/proto uses a vendored protoc (protoc-bin-vendored).
#   * No OpenSSL: sqlx and the OTLP exporter use rustls (ring needs only the C compiler
#     that the rust:*-slim image already ships).
#   * No `.sqlx` offline data: the workspace uses runtime-checked queries
#     (sqlx::query, not sqlx::query!), so the build never needs a database and there is
#     nothing to copy. If checked macros are ever introduced, commit `.sqlx/` and add
#     `ENV SQLX_OFFLINE=true` to the builder stage; `COPY . .` already brings it in.
#   * Migrations are embedded at compile time (sqlx::migrate!), so the runtime image needs
#     no migration files: `branchscore migrate` works from the binary alone.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
ARG CHEF_VERSION=0.1.77

FROM docker.io/library/rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
ARG CHEF_VERSION
# cargo-chef from crates.io; the registry cache mount keeps re-installs cheap.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo install cargo-chef --locked --version "${CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: cached until a manifest or Cargo.lock changes.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo chef cook --release --locked -p branchscore --recipe-path recipe.json
# The workspace (proto/ is needed by shared/proto's build script, migrations/ by sqlx::migrate!).
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo build --release --locked -p branchscore \
    && install -D -m 0755 target/release/branchscore /out/branchscore \
    && /out/branchscore --help >/dev/null

# gcr.io/distroless/cc-debian12 carries glibc, libgcc_s, CA certificates and tzdata; the
# :nonroot variant runs as uid/gid 65532. It matches the builder's Debian release (glibc).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="branchscore" \
      org.opencontainers.image.description="Client scoring services for a branch network (gRPC)" \
      org.opencontainers.image.source="https://github.com/branchscore/branchscore" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder --chown=0:0 /out/branchscore /usr/local/bin/branchscore
# Metrics must be reachable from outside the container; every service section
# (listen address, database URL, ...) is left to the deployment.
ENV BRANCHSCORE_TELEMETRY__METRICS_LISTEN=0.0.0.0:9464
# gateway, clients, pipeline, feedback, kpi, reporting (gRPC, h2c) and Prometheus metrics.
EXPOSE 50050 50051 50052 50053 50054 50055 9464
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/usr/local/bin/branchscore"]
CMD ["serve"]
