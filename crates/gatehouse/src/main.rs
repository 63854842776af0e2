//! The `gatehouse` binary.

// mimalloc: the request path allocates many small, short-lived objects
// (headers, futures, body frames); glibc malloc showed up at ~8% of CPU in
// profiles of the load benchmark. mimalloc builds with the C compiler alone.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
