//! Where a benchmark level's CPU time went: this process's threads by
//! name, the local Redis and Postgres servers, and the whole machine. On a
//! small shared machine the latency tails say more about the machine than
//! about the code; CPU time per call is the steadier figure for comparing
//! two builds or two paths. Linux only (`/proc`).
use std::collections::BTreeMap;

/// CPU time in clock ticks, by part.
#[derive(Debug, Clone, Default)]
pub struct CpuTimes {
    parts: BTreeMap<String, u64>,
    /// All cores together: ticks spent by every process so far, and ticks
    /// of wall time since this process began measuring times the cores.
    machine: (u64, u64),
}

/// The parts: this process's threads grouped by name (a Tokio runtime's
/// workers share theirs), and other processes by command name.
const SERVERS: [&str; 2] = ["redis-server", "postgres"];

impl CpuTimes {
    /// Reads the counters now.
    pub fn now() -> CpuTimes {
        let mut parts = BTreeMap::new();
        for (name, ticks) in tasks("/proc/self/task") {
            *parts.entry(name).or_insert(0) += ticks;
        }
        let mut busy = 0;
        for (name, ticks) in tasks("/proc") {
            busy += ticks;
            if SERVERS.contains(&name.as_str()) {
                *parts.entry(name).or_insert(0) += ticks;
            }
        }
        CpuTimes { parts, machine: (busy, machine_ticks()) }
    }

    /// What was spent since `before`: microseconds of CPU per call, by part,
    /// the most first, and the share of the machine that was busy.
    pub fn per_call_since(&self, before: &CpuTimes, calls: usize) -> CpuPerCall {
        let tick_micros = 1e6 / clock_ticks_per_second();
        let mut parts: Vec<(String, f64)> = self
            .parts
            .iter()
            .map(|(name, &ticks)| {
                let spent = ticks.saturating_sub(before.parts.get(name).copied().unwrap_or(0));
                (name.clone(), spent as f64 * tick_micros / calls.max(1) as f64)
            })
            .filter(|(_, micros)| *micros > 0.0)
            .collect();
        parts.sort_by(|a, b| b.1.total_cmp(&a.1));
        let busy = self.machine.0.saturating_sub(before.machine.0) as f64;
        let all = self.machine.1.saturating_sub(before.machine.1) as f64;
        CpuPerCall { parts, machine_busy: if all > 0.0 { busy / all } else { f64::NAN } }
    }
}

/// CPU time per call of one level.
#[derive(Debug, Clone, Default)]
pub struct CpuPerCall {
    /// (part, microseconds per call), the most first.
    pub parts: Vec<(String, f64)>,
    /// Share of the machine's cores busy over the level (0..1).
    pub machine_busy: f64,
}

impl CpuPerCall {
    /// Microseconds per call of the part `name` (0 if it took none).
    pub fn of(&self, name: &str) -> f64 {
        self.parts.iter().find(|(part, _)| part == name).map_or(0.0, |(_, micros)| *micros)
    }

    /// E.g. "service 182, load 141, redis-server 18 us/call; machine 97% busy".
    pub fn text(&self) -> String {
        let parts: Vec<String> = self
            .parts
            .iter()
            .filter(|(_, micros)| *micros >= 1.0)
            .map(|(name, us)| format!("{name} {us:.0}"))
            .collect();
        format!("{} us/call; machine {:.0}% busy", parts.join(", "), self.machine_busy * 100.0)
    }
}

/// (command name, user + system ticks) of every task under `dir`
/// (`/proc/self/task` for threads, `/proc` for processes).
fn tasks(dir: &str) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| parse_stat(&stat))
        .collect()
}

/// Name and user + system ticks from a `stat` line: "pid (name) state ... utime stime ...".
/// The name may hold spaces and parentheses, so it ends at the last ')'.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let name = stat.get(open + 1..close)?.to_owned();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let mut rest = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// Ticks of wall time since the first call, times the cores.
///
/// The machine's busy share is the processes' CPU time over this, not
/// `/proc/stat`'s busy and idle ticks: those are sampled at each timer tick,
/// and a load paced in step with the tick (200 us calls, 4 ms ticks) is
/// sampled at the same phase every time, which showed a machine 8% busy
/// while this process alone spent 15% of it. A task's own times add up to
/// the time it really ran. (A process that exits between two readings
/// takes its time with it; interrupts on an idle core count nowhere.)
fn machine_ticks() -> u64 {
    static FIRST: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = FIRST.get_or_init(std::time::Instant::now).elapsed().as_secs_f64();
    let cores = crate::cores_online();
    (elapsed * clock_ticks_per_second() * cores as f64) as u64
}

fn clock_ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_name_and_cpu_ticks() {
        let line = "4242 (tokio (x) 1) S 1 2 3 4 5 6 7 8 9 10 120 35 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), Some(("tokio (x) 1".to_owned(), 155)));
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
    }

    #[test]
    fn per_call_divides_each_part_by_the_calls_and_sorts_the_most_first() {
        let before =
            CpuTimes { parts: BTreeMap::from([("service".into(), 100), ("load".into(), 50)]), machine: (1_000, 4_000) };
        let after = CpuTimes {
            parts: BTreeMap::from([("service".into(), 300), ("load".into(), 150), ("idle".into(), 0)]),
            machine: (1_750, 5_000),
        };
        let per_call = after.per_call_since(&before, 10_000);
        let tick = 1e6 / clock_ticks_per_second();
        assert_eq!(per_call.parts, vec![("service".into(), 200.0 * tick / 1e4), ("load".into(), 100.0 * tick / 1e4)]);
        assert_eq!(per_call.of("redis-server"), 0.0);
        assert!((per_call.machine_busy - 0.75).abs() < 1e-12);
    }
}
