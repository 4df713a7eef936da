//! Cross-service benchmarks and their shared measuring helpers. Each
//! benchmark prints its figures beside a reference measured in the same run
//! (see `docs/benchmarks.md`).
use std::time::Duration;

/// Rows per second, as printed in the benchmark tables.
pub fn rate(rows: u64, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

/// A short description of the machine the figures come from.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| info.lines().next().map(|line| line.split_whitespace().nth(1).unwrap_or("?").to_owned()))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or_else(|| "? GiB".to_owned(), |kib| format!("{} GiB", kib / 1024 / 1024));
    format!("{cores} cores, {memory} RAM")
}
