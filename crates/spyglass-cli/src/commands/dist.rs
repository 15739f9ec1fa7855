//! `completions SHELL` and the hidden `dist-files --out DIR`: shell completion
//! scripts, man pages and systemd units, generated from the clap definitions
//! and the units template so the package and the binary never disagree.

use std::path::Path;

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs, DistFilesArgs};
use crate::output::{ExitStatus, UserError};

const BIN: &str = "spyglass-admin";

/// The completion script for one shell.
fn completion(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    out
}

pub fn completions(a: &CompletionsArgs) -> anyhow::Result<ExitStatus> {
    use std::io::Write;
    let text = completion(a.shell);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&text).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitStatus::Success),
        // `completions bash | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitStatus::Success),
        Err(e) => Err(UserError::new(format!("cannot write the completion script: {e}")).into()),
    }
}

fn write(dir: &Path, name: &str, body: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join(name), body))
        .map_err(|e| {
            UserError::new(format!("cannot write {}: {e}", dir.join(name).display())).into()
        })
}

/// One man page per command and subcommand (`spyglass-admin-backup-run.1`),
/// hidden commands left out.
fn man_pages(dir: &Path) -> anyhow::Result<usize> {
    fn walk(
        cmd: &clap::Command,
        name: String,
        words: String,
        dir: &Path,
        n: &mut usize,
    ) -> anyhow::Result<()> {
        let page_cmd = cmd.clone().name(name.clone()).bin_name(words.clone());
        let mut buf = Vec::new();
        clap_mangen::Man::new(page_cmd)
            .section("1")
            .manual("spyglass-admin manual")
            .source(format!("spyglass-admin {}", env!("CARGO_PKG_VERSION")))
            .render(&mut buf)
            .map_err(|e| UserError::new(format!("cannot render the man page of {name}: {e}")))?;
        write(dir, &format!("{name}.1"), &buf)?;
        *n += 1;
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            let sub_name = sub.get_name();
            walk(
                sub,
                format!("{name}-{sub_name}"),
                format!("{words} {sub_name}"),
                dir,
                n,
            )?;
        }
        Ok(())
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut n = 0;
    walk(&cmd, BIN.to_string(), BIN.to_string(), dir, &mut n)?;
    Ok(n)
}

pub fn files(a: &DistFilesArgs) -> anyhow::Result<ExitStatus> {
    let pages = man_pages(&a.out.join("man"))?;
    let comp = a.out.join("completions");
    use clap_complete::Shell;
    write(&comp, "spyglass-admin", &completion(Shell::Bash))?;
    write(&comp, "_spyglass-admin", &completion(Shell::Zsh))?;
    write(&comp, "spyglass-admin.fish", &completion(Shell::Fish))?;
    let units = super::schedule::packaged_units();
    for (name, body) in &units {
        write(&a.out.join("systemd"), name, body.as_bytes())?;
    }
    eprintln!(
        "wrote {pages} man pages, 3 completion scripts and {} systemd units under {}",
        units.len(),
        a.out.display()
    );
    Ok(ExitStatus::Success)
}
