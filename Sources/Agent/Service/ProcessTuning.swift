import CCurl

/// Process-wide settings for the long-running agent, applied once by `regwatch-agent run`.
public enum ProcessTuning {
    /// One malloc arena: the agent allocates little and from many short-lived pool threads; with glibc's
    /// default of one arena per thread, a burst (a full event spool) left ~15 MiB more resident memory
    /// spread over several arenas. Measured with Benchmarks/agent-footprint.sh.
    ///
    /// A fixed 128 KiB trim threshold: glibc's adaptive one grows with the largest block freed, so after
    /// a burst (20k pull events, a spool compaction) several MiB stayed resident for good; fixed, the
    /// peak with a full 4 MiB spool fell from about +7 to +4 MiB over steady state.
    public static func forSmallDaemon() {
        _ = ccurl_limit_malloc_arenas(1)
        _ = ccurl_set_malloc_trim_threshold(128 * 1024)
    }
}
