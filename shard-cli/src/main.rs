//! `shard`: keep files safe by spreading them, encrypted and erasure-coded, over trusted machines.
//!
//! This binary parses arguments and prints; everything worth reusing lives in the `shard-*`
//! libraries.
#![allow(clippy::print_stdout)]

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "shard",
    version,
    about = "Keep files safe on machines you trust: encrypted, erasure-coded, out of sight."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the data path at work: split a sample into 5 shares per chunk, lose 2, restore it.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => demo::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
