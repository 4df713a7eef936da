//! CPU affinity for benchmarks that must keep one part off the others'
//! cores (e.g. the gateway on a core of its own, as in its own pod), on a
//! machine too small to give every part its own. Linux only.
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// The cores this process may run on now.
pub fn allowed() -> anyhow::Result<Vec<usize>> {
    allowed_of(0)
}

/// The cores a thread or process may run on (0: the calling thread).
pub fn allowed_of(pid: i32) -> anyhow::Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(pid))?;
    Ok((0..CpuSet::count()).filter(|&core| set.is_set(core).unwrap_or(false)).collect())
}

/// Restricts a thread (`None`: the calling one) or another process's main
/// thread to `cores`. Threads started later by a pinned thread inherit its cores.
pub fn pin(thread: Option<i32>, cores: &[usize]) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    for &core in cores {
        set.set(core)?;
    }
    sched_setaffinity(Pid::from_raw(thread.unwrap_or(0)), &set)?;
    Ok(())
}

/// `core` for one part and every other allowed core for the rest; an error
/// when `core` is not allowed or is the only one.
pub fn split(core: usize) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    let all = allowed()?;
    anyhow::ensure!(all.contains(&core), "core {core} is not one of this process's cores {all:?}");
    let rest: Vec<usize> = all.into_iter().filter(|&c| c != core).collect();
    anyhow::ensure!(!rest.is_empty(), "core {core} is the only one: nothing left for the rest");
    Ok((vec![core], rest))
}
