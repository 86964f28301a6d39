import FoundationEssentials
import RegwatchShared

/// The endpoints a runtime on this host tries for a registry, in its order: the managed runtime's
/// configured mirrors (Docker for Hub images, else containerd, else CRI-O), else the agent's own mirror
/// list, then the upstream last.
public enum PullPath {
    public static func targets(for image: ImageReference, config: AgentConfig, runtimes: [RuntimeConfigState], credentials: DockerCredentials?) -> [ProbeTarget] {
        let registry = config.registries.first { $0.name == image.registry }
        let upstreamURL = registry?.upstream ?? AgentConfig.Registry.defaultUpstream(image.registry)
        var mirrors: [String] = []
        let order: [RuntimeKind] = [.docker, .containerd, .crio]
        for kind in order {
            guard let state = runtimes.first(where: { $0.runtime == kind && $0.valid }) else { continue }
            let list = state.mirrors[image.registry] ?? []
            if kind == .docker && image.registry != "docker.io" { continue } // registry-mirrors only mirror Docker Hub
            if !list.isEmpty {
                mirrors = list.map { $0.contains("://") ? $0 : "https://\($0)" }
                break
            }
        }
        if mirrors.isEmpty { mirrors = registry?.mirrors.map(\.url) ?? [] }
        func target(_ url: String, _ role: Endpoint.Role) -> ProbeTarget {
            ProbeTarget.endpoint(url, role: role, registry: image.registry, config: registry,
                                 repository: image.repository, tag: image.reference, credentials: credentials)
        }
        return mirrors.filter { $0 != upstreamURL }.map { target($0, .mirror) } + [target(upstreamURL, .upstream)]
    }
}
