//! `host completions` and `host man`: shell completion scripts and manual pages, generated from
//! the command line's own definition (src/cli.rs) so they never drift from `--help`.

use std::path::PathBuf;

use anstream::println;
use clap::Args;

use crate::commands::write_stdout;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host completions bash > /etc/bash_completion.d/host\n  host completions zsh > \"${fpath[1]}/_host\"\n  host completions fish > ~/.config/fish/completions/host.fish"
)]
pub struct CompletionsArgs {
    shell: clap_complete::Shell,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host man | man -l -\n  host man --dir /usr/local/share/man/man1 && man runbook-host-run"
)]
pub struct ManArgs {
    /// Write runbook-host.1 and runbook-host-SUBCOMMAND.1 here instead of printing
    /// runbook-host.1
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl CompletionsArgs {
    /// `cli`: the command line's definition (`Cli::command()`), handed down so that this
    /// module does not import the one that lists it.
    pub fn run(self, mut cli: clap::Command) -> anyhow::Result<u8> {
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut cli, "host", &mut script);
        write_stdout(&script)?;
        Ok(0)
    }
}

impl ManArgs {
    /// `cli`: the command line's definition, as for completions.
    pub fn run(self, cli: clap::Command) -> anyhow::Result<u8> {
        match &self.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                clap_mangen::generate_to(man_command(cli), dir)?;
                println!("{}", dir.display());
            }
            None => {
                let mut page = Vec::new();
                clap_mangen::Man::new(man_command(cli)).render(&mut page)?;
                write_stdout(&page)?;
            }
        }
        Ok(0)
    }
}

/// The command line as the manual pages name it: runbook-host(1), runbook-host-run(1) … (bind9
/// owns host(1)); the synopsis keeps the `host` the operator types.
fn man_command(cli: clap::Command) -> clap::Command {
    cli.display_name("runbook-host").bin_name("host")
}
