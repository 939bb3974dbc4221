//! The `betrace` command (SERVER.md).

/// mimalloc: OTLP ingest (decode, assembly, evaluation) runs 35% faster than with the system
/// allocator in `benches/benches/engine*.rs` (see `benches/README.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    betrace_server::cli::main()
}
