//! `tessera incentive`: the Yuma-consensus epoch on a yuma-ref-input/1 document.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum IncentiveCmd {
    /// Run the epoch(s) of a yuma-ref-input/1 document (shared/design/INCENTIVES-IO.md) and
    /// print the yuma-ref-expected/1 output document, results under `sparse`.
    Epoch {
        /// The input document ("-" reads standard input).
        #[arg(long)]
        input: PathBuf,
        /// One line of JSON instead of indented JSON.
        #[arg(long)]
        compact: bool,
    },
}

pub fn run(cmd: IncentiveCmd) -> Result<()> {
    match cmd {
        IncentiveCmd::Epoch { input, compact } => {
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?
            };
            let doc = incentives::run_document(&text)?;
            let out = if compact { serde_json::to_string(&doc)? } else { serde_json::to_string_pretty(&doc)? };
            println!("{out}");
            Ok(())
        }
    }
}
