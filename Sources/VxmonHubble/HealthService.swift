import GRPCCore

/// `grpc.health.v1.Health`: SERVING for the server ("") and Hubble's observer service name.
public struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    static let services: Set<String> = ["", "hubble.server.Observer", "observer.Observer", "peer.Peer", "grpc.health.v1.Health"]

    public init() {}

    func status(_ service: String) -> Grpc_Health_V1_HealthCheckResponse {
        var r = Grpc_Health_V1_HealthCheckResponse()
        r.status = Self.services.contains(service) ? .serving : .serviceUnknown
        return r
    }

    public func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws
        -> Grpc_Health_V1_HealthCheckResponse
    {
        let r = status(request.service)
        if r.status == .serviceUnknown { throw RPCError(code: .notFound, message: "unknown service") }
        return r
    }

    public func watch(
        request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        try await response.write(status(request.service))
        // The status never changes while the server runs: hold the stream until the client goes.
        while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
    }
}
