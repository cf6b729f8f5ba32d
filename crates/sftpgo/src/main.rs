use std::process::ExitCode;

use clap::Parser;
use sftpgo::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("{}", sftpgo::version::version_line());
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Serve(args) => runtime.block_on(sftpgo::service::run(args)),
        Command::Initprovider(args) => runtime.block_on(sftpgo::service::init_provider(args)),
        Command::Api(args) => runtime.block_on(sftpgo::api_client::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
