//! The command line: `conserver [serve]` and `conserver check-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::api::Role;
use crate::server;

#[derive(Debug, Parser)]
#[command(name = "conserver", version, about = "vCon processing server")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API (the default command).
    Serve(ServeArgs),
    /// Check a configuration file: print every problem and exit 1, or a summary and exit 0.
    CheckConfig {
        /// The file to check (default: as for `serve`).
        path: Option<PathBuf>,
        /// The file to check, as for `serve`.
        #[arg(long, conflicts_with = "path")]
        config: Option<PathBuf>,
        /// The role the configuration is checked for (the authentication rule does not apply
        /// to `worker`, which serves no token route).
        #[arg(long, env = "CONSERVER_ROLE", value_enum, default_value_t = Role::All)]
        role: Role,
    },
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (else CONSERVER_CONFIG_FILE, ./config.yml, ./config.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address, overriding api.bind and CONSERVER_BIND (e.g. 127.0.0.1:8000).
    #[arg(long)]
    pub bind: Option<String>,
    /// What this instance runs.
    #[arg(long, env = "CONSERVER_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
}

/// Parse the command line and run it; the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => server::run(args),
        Command::CheckConfig { path, config, role } => server::check_config(path.or(config), role),
    }
}
