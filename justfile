# List the recipes.
default:
    @just --list

# Run the whole test suite (real Postgres and Redis on 127.0.0.1).
test:
    cargo nextest run --workspace --no-fail-fast

# Format the code.
fmt:
    cargo fmt --all

# Clippy with warnings as errors.
lint:
    cargo clippy --all-targets -- -D warnings

# Lint the protobuf contracts.
proto-lint:
    cd proto && buf lint
