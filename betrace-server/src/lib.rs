//! BeTrace server and command-line tool (SERVER.md): the `betrace` binary's subcommands.
#![forbid(unsafe_code)]

pub mod cli;
