//! `gatehouse validate FILE`: parse, validate and compile a configuration
//! file without serving it.

use std::path::PathBuf;
use std::process::ExitCode;

/// `gatehouse validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The file to check.
    pub file: PathBuf,
}

/// Exit 0 if valid, 1 with every error (file:line:column: field: message)
/// if not.
pub fn exec(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let file = args.file;
    let loaded = crate::load_and_check(&file)?;
    println!(
        "{}: ok ({} services, {} routes, {} plugins, {} consumers)",
        file.display(),
        loaded.config.services.len(),
        loaded.config.routes.len(),
        loaded.config.plugins.len(),
        loaded.config.consumers.len()
    );
    Ok(ExitCode::SUCCESS)
}
