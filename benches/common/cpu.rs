//! Shared by the sink benchmarks: the CPU time this process used, which shows a sink's
//! own cost apart from how the machine's two cores happened to be shared between the
//! transform, the sink and the server on the other end.

/// User plus system CPU time of this process so far (every thread), in seconds.
pub fn seconds() -> f64 {
    of("self")
}

/// The same for another process: the server a bench started, whose CPU comes out of the
/// same cores as the pipeline's.
pub fn of_process(pid: u32) -> f64 {
    of(&pid.to_string())
}

/// What share of file -> null a pipeline into a server can reach at most, when file -> null
/// used `null_cpu` seconds keeping every core busy and the server and the sink add
/// `extra_cpu`: all of it comes out of the same cores.
pub fn ceiling(null_cpu: f64, extra_cpu: f64) -> f64 {
    null_cpu / (null_cpu + extra_cpu)
}

fn of(process: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    // The command name, in parentheses, may hold spaces: count fields after it.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after
        .split_whitespace()
        // `utime` and `stime`, fields 14 and 15 of the line.
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    // Linux reports them in USER_HZ, 100 on every architecture it runs on.
    ticks / 100.0
}
