//! Cross-service benchmarks and their shared measuring helpers. Each
//! benchmark prints its figures beside a reference measured in the same run
//! (see `docs/benchmarks.md`).
use std::time::Duration;

pub mod cores;
pub mod cpu;
pub mod network;
pub mod open_loop;

/// Rows per second, as printed in the benchmark tables.
pub fn rate(rows: u64, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

/// The machine's cores, whatever this thread is pinned to
/// (`available_parallelism` counts only the cores a thread may run on).
pub fn cores_online() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(cores)) if cores > 0 => cores as usize,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// A short description of the machine the figures come from.
pub fn machine() -> String {
    let cores = cores_online();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| info.lines().next().map(|line| line.split_whitespace().nth(1).unwrap_or("?").to_owned()))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or_else(|| "? GiB".to_owned(), |kib| format!("{} GiB", kib / 1024 / 1024));
    format!("{cores} cores, {memory} RAM")
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`): other work on the machine shows here.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A line of `/proc/self/status` in bytes (`VmHWM`: peak resident set, `VmRSS`: current), Linux only.
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Peak resident set of this process so far (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM")
}

/// Adjusted Rand index of two labelings of the same items (1 = same partition,
/// whatever the label names; about 0 for unrelated ones).
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    use std::collections::HashMap;
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let mut table: HashMap<(usize, usize), f64> = HashMap::new();
    let (mut rows, mut cols): (HashMap<usize, f64>, HashMap<usize, f64>) = Default::default();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *rows.entry(x).or_default() += 1.0;
        *cols.entry(y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&n| pairs(n)).sum();
    let (row_sum, col_sum): (f64, f64) =
        (rows.values().map(|&n| pairs(n)).sum(), cols.values().map(|&n| pairs(n)).sum());
    let expected = row_sum * col_sum / pairs(a.len().min(b.len()) as f64);
    let max = (row_sum + col_sum) / 2.0;
    if (max - expected).abs() < f64::EPSILON { 1.0 } else { (index - expected) / (max - expected) }
}

/// The server's version and the settings that shape a plan, for a benchmark's header line:
/// `("15.19 (Debian ...)", "work_mem 4MB, shared_buffers 128MB, max_parallel_workers_per_gather 2")`.
pub async fn postgres_settings(conn: &mut sqlx::PgConnection) -> sqlx::Result<(String, String)> {
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut *conn).await?;
    let mut settings = Vec::new();
    for name in ["work_mem", "shared_buffers", "max_parallel_workers_per_gather"] {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)").bind(name).fetch_one(&mut *conn).await?;
        settings.push(format!("{name} {value}"));
    }
    Ok((version, settings.join(", ")))
}
