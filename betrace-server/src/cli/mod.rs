//! Command-line interface (SERVER.md §2): argument parsing and the offline subcommands.
//!
//! Exit codes: 0 success, 1 the command's check failed (violations at or above `--fail-on`,
//! rule errors for `validate`, unformatted files for `fmt --check`, a bad signature for
//! `verify`), 2 bad input (unreadable files, malformed spans, rules that do not compile).

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Writes one line of a command's result to standard output: `outln!("{x}")`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::emit(format_args!($($arg)*))
    };
}

mod check;
mod fmt;
mod load;
mod test_cmd;
mod validate;
mod verify;

/// Behavioral assertions on distributed traces.
#[derive(Debug, Parser)]
#[command(name = "betrace", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats of `check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Human-readable report.
    Text,
    /// One violation per line (the JSON shape of ENGINE.md §6).
    Json,
    /// JUnit XML, one test case per rule.
    Junit,
}

/// Output formats of `test`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    Text,
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: OTLP in (HTTP and gRPC), rules over REST, violations stored, exported
    /// and signed.
    Serve(Box<crate::serve::config::ServeArgs>),
    /// Evaluate the rules of a rules file against trace files; exit 1 when a violation at or
    /// above --fail-on is found.
    Check {
        /// Rules file (YAML or JSON).
        #[arg(long)]
        rules: std::path::PathBuf,
        /// Lowest severity that makes the command fail.
        #[arg(long, default_value = "LOW", value_parser = ["LOW", "MEDIUM", "HIGH", "CRITICAL", "low", "medium", "high", "critical"])]
        fail_on: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
        /// Files or directories of OTLP/JSON (one or more requests per file), OTLP
        /// protobuf or simple-JSON spans, recognised by content; gzip is inflated.
        #[arg(required = true)]
        traces: Vec<std::path::PathBuf>,
    },
    /// Compile rules (a rules file, or one expression on standard input with `-`) and print
    /// every diagnostic; exit 1 on any error.
    Validate {
        /// Rules file, or `-` for one expression on standard input.
        file: String,
    },
    /// Rewrite the rule expressions of rules files in canonical form.
    Fmt {
        /// Do not write; exit 1 when a file is not formatted.
        #[arg(long)]
        check: bool,
        /// Rules files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Evaluate one expression against the spans of a file taken as one trace.
    Test {
        /// The rule expression (may start with `-`, e.g. a `--` comment).
        #[arg(long, allow_hyphen_values = true)]
        expression: String,
        /// A file of spans: a JSON array of simple-JSON spans, OTLP/JSON requests, or OTLP
        /// protobuf, recognised by content; gzip is inflated.
        #[arg(long)]
        spans: std::path::PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TestFormat::Text)]
        format: TestFormat,
    },
    /// Check a violation's signature with the key in a file.
    Verify {
        /// File holding the signature key (raw bytes; one trailing newline is ignored).
        #[arg(long)]
        key_file: std::path::PathBuf,
        /// A violation as JSON (ENGINE.md §6).
        violation: std::path::PathBuf,
    },
}

/// What became of standard output: still open, closed by the reader, or failing.
static STDOUT: AtomicU8 = AtomicU8::new(OPEN);
const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

/// Writes one line to standard output. Once the reader has gone (a closed pipe:
/// `betrace check … | head -1`) nothing more is written and the command finishes quietly with
/// its own exit code, as other command-line tools do; any other write error is reported once
/// on standard error and makes the command exit 2.
pub(crate) fn emit(line: std::fmt::Arguments<'_>) {
    if STDOUT.load(Ordering::Relaxed) != OPEN {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        stdout_failed(&e);
    }
}

fn stdout_failed(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        STDOUT.store(CLOSED, Ordering::Relaxed);
    } else if STDOUT.swap(FAILED, Ordering::Relaxed) == OPEN {
        eprintln!("error: cannot write to standard output: {e}");
    }
}

/// The exit code once standard output is flushed: `code`, or 2 when writing failed for a
/// reason other than a closed pipe.
fn finish(code: u8) -> u8 {
    if STDOUT.load(Ordering::Relaxed) == OPEN
        && let Err(e) = std::io::stdout().flush()
    {
        stdout_failed(&e);
    }
    if STDOUT.load(Ordering::Relaxed) == FAILED {
        2
    } else {
        code
    }
}

/// Parses the process arguments and runs the subcommand.
pub fn main() -> ExitCode {
    let mut cmd = Cli::command();
    let matches = cmd.get_matches_mut();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit());
    if let Command::Serve(args) = &mut cli.command
        && let (Some(m), Some(serve)) = (
            matches.subcommand_matches("serve"),
            cmd.find_subcommand("serve"),
        )
    {
        match crate::serve::config::ServeArgs::from_matches(m, serve) {
            Ok(a) => **args = a,
            Err(e) => e.format(&mut cmd).exit(),
        }
    }
    let code = match cli.command {
        Command::Serve(args) => crate::serve::run(*args),
        Command::Check {
            rules,
            fail_on,
            format,
            traces,
        } => check::run(&rules, &fail_on, format, &traces),
        Command::Validate { file } => validate::run(&file),
        Command::Fmt { check, files } => fmt::run(check, &files),
        Command::Test {
            expression,
            spans,
            format,
        } => test_cmd::run(&expression, &spans, format),
        Command::Verify {
            key_file,
            violation,
        } => verify::run(&key_file, &violation),
    };
    ExitCode::from(finish(code))
}
