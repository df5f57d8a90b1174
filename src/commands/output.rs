//! The one output path of the commands: results on stdout (text for people or JSON), questions
//! on the terminal.

use anyhow::Result;

use crate::cli::Output;

/// Prints `value` on stdout: as JSON, or as `text` renders it for people.
pub(super) fn emit<T: serde::Serialize>(
    output: Output,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Text => print!("{}", text(value)),
    }
    Ok(())
}

/// Prints what a rollout did: the summary event as JSON, or the line `text` makes of it.
pub(super) fn summary<T: serde::Serialize>(
    output: Output,
    outcome: &T,
    text: impl FnOnce(&T) -> String,
) {
    match output {
        Output::Json => println!("{}", serde_json::json!({ "summary": outcome })),
        Output::Text => eprintln!("{}", text(outcome)),
    }
}

/// Asks on the terminal for `expected`; refuses without a terminal.
pub(super) fn confirm(question: &str, expected: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no terminal to confirm on: pass --yes to go on without asking");
    }
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != expected {
        anyhow::bail!("not confirmed; nothing was changed");
    }
    Ok(())
}
