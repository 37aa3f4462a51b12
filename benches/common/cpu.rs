//! Shared by the sink benchmarks: the CPU time this process used, which shows a sink's
//! own cost apart from how the machine's two cores happened to be shared between the
//! transform, the sink and the server on the other end.

/// User plus system CPU time of this process so far (every thread), in seconds.
pub fn seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
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
