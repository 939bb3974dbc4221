//! The `betrace` command (SERVER.md).

fn main() -> std::process::ExitCode {
    betrace_server::cli::main()
}
