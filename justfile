# List the recipes.
default:
    @just --list

# Run the whole test suite (real Postgres and Redis on 127.0.0.1).
test:
    cargo nextest run --workspace --no-fail-fast

# Everything CI checks: format, clippy, tests, proto lint.
ci:
    bash .ci/run

# Format the code.
fmt:
    cargo fmt --all

# Clippy with warnings as errors.
lint:
    cargo clippy --all-targets -- -D warnings

# Lint the protobuf contracts.
proto-lint:
    cd proto && buf lint

# Start the services, load the demo branch network, print scores and reports.
demo *ARGS:
    cargo run --release -p branchscore -- demo {{ARGS}}

# Run every service in this process (Ctrl-C drains and stops).
serve *ARGS:
    cargo run --release -p branchscore -- serve {{ARGS}}

# ImportTransactions throughput beside a plain COPY (docs/benchmarks.md).
bench-import LINES="1000000":
    cargo run --release -p branchscore-tests --bin bench_import -- --lines {{LINES}}

# Recompute of 1M synthetic clients (~20M lines) beside the Python reference; installs pandas + scikit-learn (docs/benchmarks.md).
bench-recompute CLIENTS="1000000" LINES_PER_CLIENT="20" *ARGS:
    bash tests/python/setup-venv.sh >/dev/null
    cargo run --release -p branchscore-tests --bin bench_recompute -- --clients {{CLIENTS}} --lines-per-client {{LINES_PER_CLIENT}} {{ARGS}}

# Start the local Postgres and Redis if they are down (this machine kind's commands).
db-up:
    pg_isready -h 127.0.0.1 -q || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log

# GetClientScore latency and maximum rate, open loop, beside a trivial tonic service and redis-benchmark (docs/benchmarks.md).
bench-lookup CLIENTS="100000" RATE="5000":
    cargo run --release -p branchscore-tests --bin bench_lookup -- --clients {{CLIENTS}} --rate {{RATE}}

# GetForecast and GetFunnel over 1M deals beside the same SQL run directly in the same database (docs/benchmarks.md).
bench-pipeline DEALS="1000000":
    cargo run --release -p branchscore-tests --bin bench_pipeline -- --deals {{DEALS}}

# GetPeriodReport over a year of 1M synthetic clients (~20M lines) beside the facts store functions called directly (docs/benchmarks.md).
bench-report CLIENTS="1000000" *ARGS:
    cargo run --release -p branchscore-tests --bin bench_report -- --clients {{CLIENTS}} {{ARGS}}
