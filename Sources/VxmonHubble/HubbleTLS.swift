import Glibc
import NIOSSL
import VxmonLive

/// TLS of the Hubble servers, as Cilium's agent serves it (`--hubble-tls-cert-file`,
/// `--hubble-tls-key-file`, `--hubble-tls-client-ca-files`): a certificate and key, and mutual TLS
/// with the clients' CAs. Unlike Cilium, where no client CA means TLS without client certificates,
/// vxmon-hubble asks for that explicitly (`--tls-no-client-auth`): mutual TLS is the default.
public struct HubbleTLS: Sendable {
    /// PEM: the server's certificate, then any intermediates.
    public var certificateFile: String
    /// PEM: the certificate's private key.
    public var keyFile: String
    /// PEM files of the CAs whose certificates clients must present; empty only with `clientAuth` off.
    public var clientCAFiles: [String]
    /// Whether clients must present a certificate signed by one of `clientCAFiles`.
    public var clientAuth: Bool

    public init(certificateFile: String, keyFile: String, clientCAFiles: [String], clientAuth: Bool) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.clientCAFiles = clientCAFiles
        self.clientAuth = clientAuth
    }

    /// The names Cilium's Peer service gives its servers for TLS (`peer.TLSServerName`):
    /// `<node>.<cluster>.hubble-grpc.cilium.io`, dots of either replaced by dashes so that every node is
    /// one level under the cluster. A Relay checks the server's certificate against it, so a certificate
    /// for `*.default.hubble-grpc.cilium.io` serves every node of the lab.
    public static func serverName(node: String, cluster: String = "default") -> String {
        func label(_ s: String) -> String { String(s.map { $0 == "." ? "-" : $0 }) }
        return "\(label(node)).\(label(cluster)).hubble-grpc.cilium.io"
    }

    /// The TLS context every node's server uses: TLS 1.3 or later, ALPN h2 (gRPC over HTTP/2; the
    /// server then requires it, as grpc-go does), and with `clientAuth` a client certificate that
    /// chains to one of the client CAs (its name is not checked: `noHostnameVerification`, as gRPC's
    /// own mTLS servers do). Each file is read once, here; an unreadable or malformed one is an error
    /// naming it.
    public func makeContext() throws -> NIOSSLContext {
        func certificates(_ path: String, _ what: String) throws -> [NIOSSLCertificate] {
            try Self.requireReadable(path, what)
            let list: [NIOSSLCertificate]
            do { list = try NIOSSLCertificate.fromPEMFile(path) } catch {
                throw VxmonError("\(what) \(path): not a PEM certificate file (\(error))")
            }
            if list.isEmpty { throw VxmonError("\(what) \(path): no certificate in it") }
            return list
        }
        let chain = try certificates(certificateFile, "--tls-cert-file")
        try Self.requireReadable(keyFile, "--tls-key-file")
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: keyFile, format: .pem) } catch {
            throw VxmonError("--tls-key-file \(keyFile): not a PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        // TLS 1.3 at least, as Cilium's Hubble server requires (serveroption.MinTLSVersion).
        configuration.minimumTLSVersion = .tlsv13
        configuration.applicationProtocols = ["grpc-exp", "h2"]
        if clientAuth {
            var roots: [NIOSSLCertificate] = []
            for file in clientCAFiles { roots += try certificates(file, "--tls-client-ca-files") }
            configuration.trustRoots = .certificates(roots)
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration.certificateVerification = .none
        }
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw VxmonError("TLS: the certificate and key do not make a server context (\(error))")
        }
    }

    /// A clear error for a file that cannot be read (NIOSSL's own says only "failed to load").
    /// A readable regular file (a FIFO or a device would hang the start, or read without end).
    static func requireReadable(_ path: String, _ what: String) throws {
        if access(path, R_OK) != 0 {
            throw VxmonError("\(what) \(path): \(errnoString(errno))")
        }
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw VxmonError("\(what) \(path): not a regular file")
        }
    }
}
