//! The `wgpu-style` command: parses the command line, then runs a style
//! transfer, the benchmark or the layer listing.

mod run;

use std::process::ExitCode;

use clap::Parser;
use wgpu_style::cli::{self, Action};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = cli::Args::parse();
    let action = match cli::resolve(args) {
        Ok(action) => action,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match action {
        Action::ListLayers => {
            print!("{}", cli::list_layers_text());
            Ok(run::Outcome::Finished)
        }
        Action::Bench(config) => run::bench(&config).map(|()| run::Outcome::Finished),
        Action::Run(config) => run::style_transfer(&config),
    };
    match result {
        Ok(run::Outcome::Finished) => ExitCode::SUCCESS,
        Ok(run::Outcome::Interrupted) => ExitCode::from(130),
        Ok(run::Outcome::Diverged) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
