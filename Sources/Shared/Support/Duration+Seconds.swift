extension Duration {
    /// The duration in seconds, for arithmetic with `Date` and `TimeInterval`.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
