//! BeTrace server and command-line tool (SERVER.md): the `betrace` binary's subcommands
//! ([`cli`]) and the server of `betrace serve` ([`serve`]).
#![forbid(unsafe_code)]

pub mod cli;
pub mod serve;
