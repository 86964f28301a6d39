/// The version regwatch reports about itself (reports, logs, `--version`).
public enum RegwatchVersion {
    public static let current = "0.1.0"
}
