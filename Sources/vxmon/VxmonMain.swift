import VxmonCLI

/// The `vxmon` executable. Its commands are the VxmonCLI library's, where tests also parse and run
/// them in-process; `Vxmon.main` parses the command line, runs the command and sets the exit status.
@main
enum VxmonMain {
    static func main() { Vxmon.main() }
}
