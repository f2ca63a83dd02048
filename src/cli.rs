//! The command line: `conserver [serve]` and `conserver check-config`. `conserver` alone is
//! `serve`, and takes `serve`'s flags (`conserver --config config.yml`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::api::Role;
use crate::server;

#[derive(Debug, Parser)]
#[command(
    name = "conserver",
    version,
    about = "A vCon processing server: the REST API of the vCon Conserver and the chains that \
             process the vCons it receives",
    long_about = None,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no command: `serve`.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: the REST API and the chains (the default command).
    Serve(ServeArgs),
    /// Check a configuration file as `serve` would: print every problem and exit 1, or a
    /// summary and exit 0. Nothing is connected.
    CheckConfig {
        /// The file to check (default: as for `serve`).
        path: Option<PathBuf>,
        /// The file to check, as for `serve`.
        #[arg(long, conflicts_with = "path", env = "CONSERVER_CONFIG_FILE")]
        config: Option<PathBuf>,
        /// The role the configuration is checked for (the authentication rule does not apply
        /// to `worker`, which serves no token route).
        #[arg(long, env = "CONSERVER_ROLE", value_enum, default_value_t = Role::All)]
        role: Role,
    },
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (else ./config.yml, else ./config.yaml).
    #[arg(long, env = "CONSERVER_CONFIG_FILE")]
    pub config: Option<PathBuf>,
    /// Listen address host:port, overriding api.bind (e.g. 127.0.0.1:8000, [::]:8000).
    #[arg(long, env = "CONSERVER_BIND")]
    pub bind: Option<String>,
    /// What this instance runs.
    #[arg(long, env = "CONSERVER_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
}

/// Parse the command line and run it; the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => server::run(args),
        Command::CheckConfig { path, config, role } => server::check_config(path.or(config), role),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("conserver").chain(args.iter().copied()))
    }

    #[test]
    fn no_command_is_serve_with_its_flags() {
        let cli = parse(&["--config", "x.yml", "--role", "worker"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.config, Some(PathBuf::from("x.yml")));
        assert_eq!(cli.serve.role, Role::Worker);
        let cli = parse(&["serve", "--bind", "0.0.0.0:1"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Serve(ServeArgs { bind: Some(_), .. }))
        ));
    }

    #[test]
    fn flag_errors_name_the_flag_given() {
        let error = parse(&["--role", "boss"]).unwrap_err().to_string();
        assert!(
            error.contains("'boss'") && error.contains("--role"),
            "{error}"
        );
        assert!(error.contains("all") && error.contains("worker"), "{error}");
        let error = parse(&["--cofnig", "x"]).unwrap_err().to_string();
        assert!(
            error.contains("--cofnig") && error.contains("--config"),
            "{error}"
        );
    }

    #[test]
    fn help_shows_each_flags_environment_variable() {
        let help = Cli::command().render_help().to_string();
        for variable in ["CONSERVER_CONFIG_FILE", "CONSERVER_BIND", "CONSERVER_ROLE"] {
            assert!(
                help.contains(&format!("env: {variable}")),
                "{variable}:\n{help}"
            );
        }
        assert!(help.contains("the chains"), "{help}");
        Cli::command().debug_assert();
    }
}
