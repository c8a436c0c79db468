import CLibbpf
import Glibc

/// libbpf-wide settings.
public enum Libbpf {
    /// Routes libbpf's log to stderr: warnings and errors, plus debug output when `debug` is set.
    /// Calls `libbpf_set_print` (through a C shim that formats the `va_list`).
    public static func routeLogs(debug: Bool = false) {
        vxmon_shim_set_print(debug ? 1 : 0)
    }

    /// Number of possible CPUs (the size of per-CPU map values). Calls `libbpf_num_possible_cpus`.
    public static let possibleCPUs: Int = max(Int(libbpf_num_possible_cpus()), 1)
}

/// An opened and loaded BPF ELF object. `deinit` calls `bpf_object__close`; programs and maps that
/// were pinned or attached stay in the kernel.
public final class BPFObject {
    private var handle: OpaquePointer?
    public let path: String

    /// Opens the object file. Calls `bpf_object__open_file`.
    public init(path: String) throws(LibbpfError) {
        self.path = path
        guard let object = bpf_object__open_file(path, nil) else {
            throw LibbpfError.errno("bpf_object__open_file", path)
        }
        handle = object
    }

    deinit { close() }

    /// Frees the object (idempotent). Calls `bpf_object__close`.
    public func close() {
        if let handle { bpf_object__close(handle) }
        handle = nil
    }

    private func object() throws(LibbpfError) -> OpaquePointer {
        guard let handle else { throw LibbpfError(function: "bpf_object__close", code: EBADF, subject: path) }
        return handle
    }

    /// Makes the map `name` use the existing map `fd` instead of creating its own when the object is
    /// loaded (call before `load`). Calls `bpf_object__find_map_by_name` and `bpf_map__reuse_fd`.
    public func reuseMap(_ name: String, fd: Int32) throws(LibbpfError) {
        guard let map = bpf_object__find_map_by_name(try object(), name) else {
            throw LibbpfError(function: "bpf_object__find_map_by_name", code: ENOENT, subject: name)
        }
        try LibbpfError.check(bpf_map__reuse_fd(map, fd), "bpf_map__reuse_fd", name)
    }

    /// Creates the maps and verifies and loads the programs. Calls `bpf_object__load`.
    public func load() throws(LibbpfError) {
        try LibbpfError.check(bpf_object__load(try object()), "bpf_object__load", path)
    }

    /// The file descriptor of a loaded program. Calls `bpf_object__find_program_by_name`.
    public func programFD(_ name: String) throws(LibbpfError) -> Int32 {
        guard let program = bpf_object__find_program_by_name(try object(), name) else {
            throw LibbpfError(function: "bpf_object__find_program_by_name", code: ENOENT, subject: name)
        }
        return try LibbpfError.check(bpf_program__fd(program), "bpf_program__fd", name)
    }

    /// The file descriptor of a created map. Calls `bpf_object__find_map_by_name`.
    public func mapFD(_ name: String) throws(LibbpfError) -> Int32 {
        guard let map = bpf_object__find_map_by_name(try object(), name) else {
            throw LibbpfError(function: "bpf_object__find_map_by_name", code: ENOENT, subject: name)
        }
        return try LibbpfError.check(bpf_map__fd(map), "bpf_map__fd", name)
    }

    /// Pins every map at `directory/<map name>`. Calls `bpf_object__pin_maps`.
    public func pinMaps(in directory: String) throws(LibbpfError) {
        try LibbpfError.check(bpf_object__pin_maps(try object(), directory), "bpf_object__pin_maps", directory)
    }

    /// Pins every program at `directory/<program name>`. Calls `bpf_object__pin_programs`.
    public func pinPrograms(in directory: String) throws(LibbpfError) {
        try LibbpfError.check(bpf_object__pin_programs(try object(), directory), "bpf_object__pin_programs", directory)
    }
}

/// A BPF map (or program) file descriptor, typically re-opened from its pin. `deinit` closes it.
public final class BPFMap {
    public let fd: Int32
    public let name: String

    /// Opens a pinned object. Calls `bpf_obj_get`.
    public init(pinned path: String) throws(LibbpfError) {
        let fd = bpf_obj_get(path)
        if fd < 0 { throw LibbpfError.errno("bpf_obj_get", path) }
        self.fd = fd
        name = path
    }

    /// Takes ownership of a descriptor (it is duplicated, so the source may close its copy).
    public init(duplicating fd: Int32, name: String) throws(LibbpfError) {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        if copy < 0 { throw LibbpfError.errno("fcntl", name) }
        self.fd = copy
        self.name = name
    }

    deinit { close(fd) }

    /// The value stored under `key`, or nil. Calls `bpf_map_lookup_elem`.
    public func lookup<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ key: Key, as _: Value.Type = Value.self)
        -> Value?
    {
        var key = key
        return withUnsafeTemporaryAllocation(of: Value.self, capacity: 1) { value -> Value? in
            guard let base = value.baseAddress else { return nil }
            UnsafeMutableRawPointer(base).initializeMemory(
                as: UInt8.self, repeating: 0, count: MemoryLayout<Value>.size)
            guard bpf_map_lookup_elem(fd, &key, base) == 0 else { return nil }
            return UnsafeMutableRawPointer(base).load(as: Value.self)
        }
    }

    /// Creates or replaces `key`. Calls `bpf_map_update_elem` with BPF_ANY.
    public func update<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ key: Key, _ value: Value) throws(LibbpfError) {
        var key = key
        var value = value
        try LibbpfError.check(bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY)), "bpf_map_update_elem", name)
    }

    /// Deletes `key`; false if it was not there. Calls `bpf_map_delete_elem`.
    @discardableResult
    public func delete<Key: BitwiseCopyable>(_ key: Key) throws(LibbpfError) -> Bool {
        var key = key
        let rc = bpf_map_delete_elem(fd, &key)
        if rc == -ENOENT { return false }
        try LibbpfError.check(rc, "bpf_map_delete_elem", name)
        return true
    }

    /// Every key of the map. Calls `bpf_map_get_next_key`.
    public func keys<Key: BitwiseCopyable>(_: Key.Type = Key.self) -> [Key] {
        var result: [Key] = []
        let size = MemoryLayout<Key>.size
        let current = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        let next = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer {
            current.deallocate()
            next.deallocate()
        }
        var first = true
        // A bound guards against a map that keeps changing under the walk.
        while result.count < 1 << 20 {
            let rc = bpf_map_get_next_key(fd, first ? nil : current, next)
            if rc != 0 { break }
            result.append(next.load(as: Key.self))
            current.copyMemory(from: next, byteCount: size)
            first = false
        }
        return result
    }

    /// Every (key, value) pair of the map.
    public func entries<Key: BitwiseCopyable, Value: BitwiseCopyable>(_: Key.Type, _: Value.Type) -> [(Key, Value)] {
        keys(Key.self).compactMap { key in lookup(key, as: Value.self).map { (key, $0) } }
    }

    /// The per-CPU `u64` values under `key` of a per-CPU array or hash. Calls `bpf_map_lookup_elem`.
    public func perCPUCounters<Key: BitwiseCopyable>(_ key: Key) -> [UInt64] {
        var key = key
        var values = [UInt64](repeating: 0, count: Libbpf.possibleCPUs)
        let rc = values.withUnsafeMutableBytes { bpf_map_lookup_elem(fd, &key, $0.baseAddress) }
        return rc == 0 ? values : []
    }
}

extension BPFMap {
    /// The kernel id of this program or map. Calls `bpf_obj_get_info_by_fd`.
    public var objectID: UInt32? {
        // bpf_prog_info and bpf_map_info both start with `type` then `id`; ask for the prog layout,
        // which is the larger of the two.
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &length) == 0 else { return nil }
        return info.id
    }

    /// The kernel id of the pinned program or map at `path`. Calls `bpf_obj_get` and
    /// `bpf_obj_get_info_by_fd`.
    public static func objectID(pinned path: String) -> UInt32? {
        (try? BPFMap(pinned: path))?.objectID
    }
}
