import GRPCNIOTransportHTTP2Posix
import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import Synchronization
import VxmonLive

/// The limits every node's server enforces on its connections.
public struct HubbleConnectionLimits: Sendable {
    /// Open connections per node's server; one more is closed as soon as it is accepted.
    public var maxConnections = 1000
    /// Open connections from one address per node's server (one client cannot take every slot).
    public var maxConnectionsPerPeer = 100
    /// A connection with no stream for this long is closed (GOAWAY): grpc-go's MaxConnectionIdle, so
    /// idle connections cannot hold slots for good. Clients reconnect when they need to.
    public var maxIdleSeconds: Int64 = 300
    /// Streams at once per connection, advertised in SETTINGS_MAX_CONCURRENT_STREAMS; one more is
    /// refused alone (RST_STREAM REFUSED_STREAM). 99: one under the 100 that swift-nio-http2 itself
    /// enforces before the client has acknowledged the settings, so that even then a stream over the
    /// limit is refused by us, alone, and never ends the connection.
    public var maxConcurrentStreams = 99 {
        // More would bring back the connection error for a burst before the client's ACK.
        didSet { maxConcurrentStreams = min(max(maxConcurrentStreams, 1), 99) }
    }
    /// A connection that has not sent HTTP/2's client preface (after the TLS handshake, if any) this
    /// long after it was accepted is closed (grpc-go waits 120 s; a silent connection then held a slot
    /// that long, and could be opened again at once).
    public var prefaceTimeoutSeconds: Int64 = 20
    /// Refusals and accept errors are logged at most once per this many seconds (with counts).
    public var logIntervalSeconds = 10.0

    public init() {}
}

/// The listening side of one node's gRPC server: the transport's `ListenerFactory` over the socket
/// made in the node's namespace, with TLS, the connection limit and the stream limit.
///
/// The connection limit is applied where the listening socket hands over accepted connections, before
/// anything is set up for them. Accepting itself fails softly: NIO's accept back-off waits a second
/// after EMFILE/ENFILE and tries again (logged here), and the server goes on.
struct HubbleListener: HTTP2ServerTransport.ListenerFactory {
    let eventLoopGroup: any EventLoopGroup
    let descriptor: Int32
    let tls: NIOSSLContext?
    let gate: ConnectionGate

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        let gate = self.gate
        let tls = self.tls
        return try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelInitializer { channel in
                listenerConfigurator.configure(channel: channel).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(AcceptGate(gate: gate))
                }
            }
            .bind(NIOBSDSocket.Handle(descriptor)) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    try sync.addHandler(
                        HTTP2ConnectionGuard(
                            advertisedStreams: gate.limits.maxConcurrentStreams,
                            prefaceTimeout: .seconds(gate.limits.prefaceTimeoutSeconds)))
                }.flatMap {
                    // TLS requires ALPN h2, as grpc-go's servers do (Hubble's are grpc-go's).
                    connectionConfigurator.configure(channel: channel, tls: tls == nil ? .none : .configured(requireALPN: true))
                }.flatMapErrorThrowing { error in
                    channel.close(promise: nil)
                    throw error
                }
            }
    }

    /// The gRPC configuration that goes with it: NIO's own limit for the streams it tracks is one
    /// over what we advertise (see `HTTP2ConnectionGuard`), and each new stream passes the guard.
    static func transportConfig(limits: HubbleConnectionLimits, gate: ConnectionGate)
        -> HTTP2ServerTransport.Custom<HubbleListener>.Config
    {
        var config = HTTP2ServerTransport.Custom<HubbleListener>.Config.defaults
        config.http2.maxConcurrentStreams = limits.maxConcurrentStreams + 1
        config.connection.maxIdleTime = .seconds(limits.maxIdleSeconds)
        config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { stream in
            stream.eventLoop.makeCompletedFuture { HTTP2ConnectionGuard.admit(stream, gate: gate) }
        }
        return config
    }
}

/// One server's connection count and the counts of what it refused, with their log lines (at most
/// one per `logIntervalSeconds`, each with the counts since the last).
final class ConnectionGate: Sendable {
    let limits: HubbleConnectionLimits
    let name: String
    private let log: @Sendable (String) -> Void
    let open = Atomic<Int>(0)
    /// Open connections per peer address (only addresses with one or more).
    private let byPeer = Mutex<[String: Int]>([:])
    let refusedConnections = Atomic<Int>(0)
    let refusedStreams = Atomic<Int>(0)
    let acceptErrors = Atomic<Int>(0)

    private struct Pending {
        var connections = 0
        var streams = 0
        var acceptErrors = 0
        var lastError = ""
        var lastLog: UInt64 = 0
        var logged = false
    }
    private let pending = Mutex(Pending())

    init(limits: HubbleConnectionLimits, name: String, log: @escaping @Sendable (String) -> Void) {
        self.limits = limits
        self.name = name
        self.log = log
    }

    /// Takes a slot for a new connection from `peer` (its address, nil if unknown), or says there is
    /// none: the server's limit, or the peer's.
    func admit(peer: String?) -> Bool {
        // A bounded count (at most maxConnections + the acceptor threads) cannot overflow.
        let now = open.add(1, ordering: .relaxed).newValue
        let peerFits: Bool =
            now <= limits.maxConnections
            && byPeer.withLock { counts in
                guard let peer else { return true }
                let n = counts[peer, default: 0]
                guard n < limits.maxConnectionsPerPeer else { return false }
                counts[peer] = n + 1
                return true
            }
        if peerFits { return true }
        open.subtract(1, ordering: .relaxed)
        refusedConnections.add(1, ordering: .relaxed)
        note { $0.connections += 1 }
        return false
    }

    func release(peer: String?) {
        open.subtract(1, ordering: .relaxed)
        guard let peer else { return }
        byPeer.withLock { counts in
            if let n = counts[peer] { counts[peer] = n > 1 ? n - 1 : nil }
        }
    }

    func refusedStream() {
        refusedStreams.add(1, ordering: .relaxed)
        note { $0.streams += 1 }
    }

    func acceptFailed(_ error: any Error) {
        acceptErrors.add(1, ordering: .relaxed)
        let text = (error as? IOError).map { "\(errnoString($0.errnoCode)), errno \($0.errnoCode)" } ?? "\(error)"
        note {
            $0.acceptErrors += 1
            $0.lastError = text
        }
    }

    /// Counts an event and logs what is pending when the last line is old enough.
    private func note(_ update: (inout Pending) -> Void) {
        let line: String? = pending.withLock { p in
            update(&p)
            let now = monotonicNanoseconds()
            let interval = UInt64(limits.logIntervalSeconds * 1e9)
            // The clock is monotonic: now >= lastLog.
            guard !p.logged || now - p.lastLog >= interval else { return nil }
            defer {
                p = Pending(lastLog: now, logged: true)
            }
            return Self.line(name, p, limits)
        }
        if let line { log(line) }
    }

    /// What is pending, for the last line at stop; nil when nothing is.
    func flush() -> String? {
        pending.withLock { p in
            defer { p.connections = 0; p.streams = 0; p.acceptErrors = 0 }
            return p.connections + p.streams + p.acceptErrors > 0 ? Self.line(name, p, limits) : nil
        }
    }

    private static func line(_ name: String, _ p: Pending, _ limits: HubbleConnectionLimits) -> String {
        var parts: [String] = []
        if p.connections > 0 {
            parts.append(
                "connections refused: \(p.connections) (at most \(limits.maxConnections) open, "
                    + "\(limits.maxConnectionsPerPeer) from one address)")
        }
        if p.streams > 0 {
            parts.append("streams refused: \(p.streams) (over \(limits.maxConcurrentStreams) on one connection)")
        }
        if p.acceptErrors > 0 {
            parts.append("failed accepts: \(p.acceptErrors) (\(p.lastError)); accepting again each second")
        }
        return "vxmon-hubble: \(name): " + parts.joined(separator: "; ")
    }
}

/// On the listening channel, before NIO's acceptor: every accepted connection takes a slot of the
/// gate or is closed at once (before TLS or HTTP/2 are set up for it).
///
/// Accept errors are counted and logged here, and after one this stops accepting for a second.
/// NIO's own back-off (AcceptBackoffHandler) does not: it waits for the channel's next read request,
/// which never comes after a failed accept (the read stays pending), so the listening socket, readable
/// while connections wait in its backlog, woke the event loop for another failing accept4 at once
/// (about 20,000 EMFILE a second and one core busy, measured). Turning autoRead off takes the socket out of
/// epoll; turning it on a second later puts it back.
final class AcceptGate: ChannelInboundHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    let gate: ConnectionGate
    private var pausedForError = false

    init(gate: ConnectionGate) { self.gate = gate }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let accepted = Self.unwrapInboundIn(data)
        let peer = accepted.remoteAddress?.ipAddress
        guard gate.admit(peer: peer) else {
            accepted.close(promise: nil)
            return
        }
        let gate = self.gate
        accepted.closeFuture.whenComplete { _ in gate.release(peer: peer) }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is IOError {
            gate.acceptFailed(error)
            if !pausedForError, let options = context.channel.syncOptions,
                (try? options.setOption(ChannelOptions.autoRead, value: false)) != nil
            {
                pausedForError = true
                let channel = context.channel
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .seconds(1)) {
                    loopBound.value.pausedForError = false
                    try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
                }
            }
        }
        context.fireErrorCaught(error)
    }
}

/// On every connection, between TLS and HTTP/2:
/// - advertises the stream limit: NIO is configured to track one stream more than the limit (so that
///   a stream over it reaches us instead of being a connection error in NIO), and the server's first
///   SETTINGS frame is rewritten on its way out to advertise the limit itself;
/// - counts the connection's streams and refuses one over the limit with RST_STREAM REFUSED_STREAM
///   (`admit`), which closes that stream at once, so NIO never sees more than limit + 1;
/// - closes a connection that has not sent the client preface within the preface timeout.
final class HTTP2ConnectionGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    let advertisedStreams: Int
    let prefaceTimeout: TimeAmount
    /// Streams of this connection being served.
    var streams = 0

    private var settingsSent = false
    private var held: ByteBuffer?
    private var heldPromises: [EventLoopPromise<Void>] = []
    private var heldFlush = false
    private var prefaceBytes = 0
    private var prefaceDeadline: Scheduled<Void>?
    /// Set while the connection's socket takes no more bytes: when it fires, the connection ends.
    private var unwritableDeadline: Scheduled<Void>?

    /// Refusals in `refusalWindow` a connection may cause before it is ended.
    static let maxRefusals = 200
    static let refusalWindow = TimeAmount.seconds(10)
    var refusals = 0
    var windowStart = NIODeadline.now()

    /// "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113, 3.4).
    static let clientPrefaceLength = 24

    init(advertisedStreams: Int, prefaceTimeout: TimeAmount) {
        self.advertisedStreams = advertisedStreams
        self.prefaceTimeout = prefaceTimeout
    }

    /// Admits a new stream of the connection or refuses it (the stream initialiser's callback; on the
    /// connection's event loop, where NIO runs its streams).
    static func admit(_ stream: any Channel, gate: ConnectionGate) {
        guard let parent = stream.parent,
            let guardHandler = try? parent.pipeline.syncOperations.handler(type: HTTP2ConnectionGuard.self)
        else { return }
        if guardHandler.streams < guardHandler.advertisedStreams,
            (try? stream.pipeline.syncOperations.addHandler(StreamRelease(guardHandler), position: .first)) != nil
        {
            guardHandler.streams += 1
            return
        }
        gate.refusedStream()
        guard let id = try? stream.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID) else {
            stream.close(promise: nil)
            return
        }
        // A client that goes on opening streams over the limit makes us work for each refusal: past
        // `maxRefusals` in `refusalWindow`, the connection ends (GOAWAY ENHANCE_YOUR_CALM), as NIO does
        // for a flood of resets.
        let now = NIODeadline.now()
        if now - guardHandler.windowStart > Self.refusalWindow {
            guardHandler.windowStart = now
            guardHandler.refusals = 0
        }
        guardHandler.refusals += 1
        if guardHandler.refusals > Self.maxRefusals {
            let goAway = HTTP2Frame(
                streamID: .rootStream, payload: .goAway(lastStreamID: id, errorCode: .enhanceYourCalm, opaqueData: nil))
            parent.writeAndFlush(goAway).whenComplete { _ in parent.close(promise: nil) }
            return
        }
        // Through the connection: NIO marks the stream closed as the frame passes, and closes its
        // channel; its request never reaches a service.
        parent.writeAndFlush(HTTP2Frame(streamID: id, payload: .rstStream(.refusedStream)), promise: nil)
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        prefaceDeadline = context.eventLoop.scheduleTask(in: prefaceTimeout) { channel.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        prefaceDeadline?.cancel()
        prefaceDeadline = nil
        unwritableDeadline?.cancel()
        unwritableDeadline = nil
        context.fireChannelInactive()
    }

    /// A client that reads nothing at all fills its socket: its streams' requests end after the stall
    /// limit, but their statuses and buffered bytes wait behind what it does not read, and so do its
    /// streams' places and memory. Unwritable for the stall limit and 10 s more, the connection ends.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            unwritableDeadline?.cancel()
            unwritableDeadline = nil
        } else if unwritableDeadline == nil {
            let channel = context.channel
            let seconds = ObserverService.stallLimit.components.seconds + 10
            unwritableDeadline = context.eventLoop.scheduleTask(in: .seconds(seconds)) { channel.close(promise: nil) }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if prefaceDeadline != nil {
            // Bounded by the check: at most the preface length plus one read.
            prefaceBytes += Self.unwrapInboundIn(data).readableBytes
            if prefaceBytes >= Self.clientPrefaceLength {
                prefaceDeadline?.cancel()
                prefaceDeadline = nil
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !settingsSent, case .byteBuffer(var bytes) = Self.unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        if held == nil { held = bytes } else { held!.writeBuffer(&bytes) }
        if let promise { heldPromises.append(promise) }
        guard Self.advertise(advertisedStreams, inFirstFrameOf: &held!) else { return }
        settingsSent = true
        let out = held!
        held = nil
        let promises = heldPromises
        heldPromises = []
        var combined: EventLoopPromise<Void>?
        if !promises.isEmpty {
            combined = context.eventLoop.makePromise()
            combined!.futureResult.whenComplete { result in for p in promises { p.completeWith(result) } }
        }
        context.write(Self.wrapOutboundOut(.byteBuffer(out)), promise: combined)
        if heldFlush {
            heldFlush = false
            context.flush()
        }
    }

    func flush(context: ChannelHandlerContext) {
        if held != nil {
            heldFlush = true
            return
        }
        context.flush()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        prefaceDeadline?.cancel()
        for p in heldPromises { p.fail(ChannelError.ioOnClosedChannel) }
        heldPromises = []
        held = nil
    }

    /// Sets SETTINGS_MAX_CONCURRENT_STREAMS (3) to `value` in the frame at the start of `bytes`, if
    /// that frame is a SETTINGS frame, adding the setting when the frame does not carry it. Returns
    /// false while the frame is not complete yet; true once `bytes` may go out (patched, or untouched
    /// when the first frame is not SETTINGS or is not one this can read).
    static func advertise(_ value: Int, inFirstFrameOf bytes: inout ByteBuffer) -> Bool {
        let start = bytes.readerIndex
        guard let lengthHigh = bytes.getInteger(at: start, as: UInt8.self),
            let lengthLow = bytes.getInteger(at: start + 1, as: UInt16.self),
            let type = bytes.getInteger(at: start + 3, as: UInt8.self),
            let flags = bytes.getInteger(at: start + 4, as: UInt8.self),
            let stream = bytes.getInteger(at: start + 5, as: UInt32.self)
        else { return false }
        let length = Int(lengthHigh) << 16 | Int(lengthLow)
        // A server's own first frame: SETTINGS (4), not an ACK, on stream 0, whole entries.
        guard type == 4, flags & 1 == 0, stream & 0x7fff_ffff == 0, length % 6 == 0, length <= 16_384 else { return true }
        guard bytes.readableBytes >= 9 + length else { return false }
        let setting = UInt32(clamping: value)
        for entry in stride(from: start + 9, to: start + 9 + length, by: 6)
        where bytes.getInteger(at: entry, as: UInt16.self) == 3 {
            bytes.setInteger(setting, at: entry + 2)
            return true
        }
        // Not there: one more entry at the end of the frame (its length grows by 6, still < 2^24).
        var out = ByteBuffer()
        out.reserveCapacity(bytes.readableBytes + 6)
        out.writeInteger(UInt8(truncatingIfNeeded: (length + 6) >> 16))
        out.writeInteger(UInt16(truncatingIfNeeded: length + 6))
        out.writeBytes(bytes.readableBytesView.dropFirst(3).prefix(6 + length))
        out.writeInteger(UInt16(3))
        out.writeInteger(setting)
        out.writeBytes(bytes.readableBytesView.dropFirst(9 + length))
        bytes = out
        return true
    }
}

/// On each stream admitted: gives its place back when the stream ends (NIO closes the stream's
/// channel, synchronously, when it processes the frame that ends it; a later stream of the same read
/// sees the place free).
final class StreamRelease: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private weak var guardHandler: HTTP2ConnectionGuard?
    private var released = false

    init(_ guardHandler: HTTP2ConnectionGuard) { self.guardHandler = guardHandler }

    private func release() {
        guard !released else { return }
        released = true
        // Each admitted stream adds one and releases once: never below zero.
        guardHandler?.streams -= 1
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { release() }
}
