//! The `reprise` binary: everything lives in the library; this only hands over the exit code.

// mimalloc: the proxy path allocates many small, short-lived buffers per request, where it is
// measurably faster than the system allocator (see the proxy benchmark in the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    reprise_gateway::cli::main()
}
