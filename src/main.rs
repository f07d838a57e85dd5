//! `drover`: the one binary. Parses flags, loads the config, installs
//! tracing, and runs the command; exit code 0 on success, 1 when something
//! failed at run time, 2 when the command line or config is wrong, always
//! with a one-line reason on stderr.

mod api_server;
mod cli;
mod commands;
mod config;
mod exit;
mod metrics_server;
mod output;
mod redis_child;
mod signals;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind as ClapErrorKind;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};
use crate::config::FileConfig;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    let config = match FileConfig::load(&cli.global) {
        Ok(config) => config,
        Err(e) => return fail(&anyhow::Error::new(e)),
    };
    init_tracing(&config, &cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(commands::run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

#[allow(clippy::print_stderr)] // the binary's one error line
fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("drover: {}", exit::one_line(err));
    ExitCode::from(exit::code_for(err))
}

/// Help and version go to stdout with 0; usage errors become one line
/// on stderr with exit code 2.
#[allow(clippy::print_stderr)]
fn clap_exit(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ClapErrorKind::DisplayHelp
        | ClapErrorKind::DisplayVersion
        | ClapErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(
                if e.kind() == ClapErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    2
                } else {
                    0
                },
            )
        }
        _ => {
            // clap's message spans lines (a list of missing arguments, a
            // hint); keep the part before the first blank line, on one line.
            let text = e.to_string();
            let reason: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let reason = reason.join(" ");
            let reason = reason.strip_prefix("error: ").unwrap_or(&reason);
            eprintln!("drover: {reason} (see --help)");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr. Long-running commands log at info by default,
/// one-shot commands only warnings; `RUST_LOG` or `[log] filter` override.
fn init_tracing(config: &FileConfig, command: &Command) {
    let default = match command {
        Command::Worker(_) | Command::Dev(_) | Command::Serve(_) | Command::Scheduler(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env()
        .ok()
        .or_else(|| {
            config
                .log
                .filter
                .as_deref()
                .and_then(|f| EnvFilter::try_new(f).ok())
        })
        .unwrap_or_else(|| EnvFilter::new(default));
    // Colours only for a person at a terminal, never in files or pipes.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log.format.unwrap_or(LogFormat::Text) {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}
