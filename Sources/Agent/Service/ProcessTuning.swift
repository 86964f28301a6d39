import CCurl

/// Process-wide settings for the long-running agent, applied once by `regwatch-agent run`.
public enum ProcessTuning {
    /// One malloc arena: the agent allocates little and from many short-lived pool threads; with glibc's
    /// default of one arena per thread, a burst (a full event spool) left ~15 MiB more resident memory
    /// spread over several arenas. Measured with Benchmarks/agent-footprint.sh.
    public static func forSmallDaemon() {
        _ = ccurl_limit_malloc_arenas(1)
    }
}
