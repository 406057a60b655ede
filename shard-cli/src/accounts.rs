//! The account commands: account create/ls/passwd/rm/recovery-code, and recover.
//!
//! Passphrases come from a file (`--password-file`), the environment (`SHARD_PASSWORD`, and
//! `SHARD_NEW_PASSWORD` for the new one of `passwd`) or a prompt without echo; the rules they
//! must meet and the delay after failures live in `shard_node::accounts`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;
use shard_node::accounts;
use shard_node::home::Home;
use zeroize::Zeroizing;

use shard_http::client::Client as ApiClient;
use shard_http::types::{Accounts, RecoverBody};

use crate::network::print_json;

/// Where a passphrase comes from: the file, the environment variable `env`, or a prompt.
fn read_secret(
    file: Option<&Path>,
    env: &str,
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<String>> {
    if let Some(path) = file {
        let bytes = Zeroizing::new(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        );
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            anyhow::anyhow!(
                "{} is not UTF-8 text; a passphrase is text\n  hint: save the file as UTF-8",
                path.display()
            )
        })?;
        return Ok(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_string(),
        ));
    }
    match std::env::var_os(env) {
        Some(value) => {
            return value
                .into_string()
                .map(Zeroizing::new)
                .map_err(|_| anyhow::anyhow!("{env} is not UTF-8 text; a passphrase is text"));
        }
        None if !std::io::stdin().is_terminal() => bail!(
            "a passphrase is needed\n  hint: type it at a terminal, or use {env} or --password-file"
        ),
        None => {}
    }
    let read = |prompt: &str| -> Result<Zeroizing<String>> {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    anyhow::anyhow!(
                        "what was typed is not UTF-8 text\n  hint: check the terminal's character encoding"
                    )
                } else {
                    anyhow::anyhow!("reading the passphrase: {e}")
                }
            })
    };
    let first = read(prompt)?;
    if confirm && *first != *read("Repeat it: ")? {
        bail!("the two passphrases differ; nothing was changed");
    }
    Ok(first)
}

/// The passphrase of an existing account.
pub fn passphrase(file: Option<&Path>, user: &str) -> Result<Zeroizing<String>> {
    read_secret(
        file,
        "SHARD_PASSWORD",
        &format!("Passphrase for {user}: "),
        false,
    )
}

/// A new passphrase (asked twice at a prompt), checked against the rules before anything else.
fn new_passphrase(file: Option<&Path>, env: &str, user: &str) -> Result<Zeroizing<String>> {
    let pass = read_secret(
        file,
        env,
        &format!("New passphrase for {user} (10 characters or more): "),
        true,
    )?;
    accounts::check_new_passphrase(user, &pass)
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed\n  hint: use at least 10 characters that are not a common password: a few unrelated words work well"))?;
    Ok(pass)
}

fn print_code(code: &str) {
    println!();
    println!("    {code}");
    println!();
    println!("With this code and your peers, a new machine gets every file back. Anyone with it");
    println!("and access to your peers can read your files: keep it offline, like a house key.");
}

pub fn create(home: &Home, json: bool, user: &str, password_file: Option<&Path>) -> Result<()> {
    accounts::check_account_name(user)?;
    home.config()?;
    let catalog = home.open_catalog()?;
    if catalog.account(user)?.is_some() {
        bail!("an account named {user:?} exists already\n  hint: `shard account ls` lists them");
    }
    let pass = new_passphrase(password_file, "SHARD_PASSWORD", user)?;
    let code = accounts::create(&catalog, user, &pass)?;
    if json {
        println!("{}", json!({"user": user, "recovery_code": code.as_str()}));
    } else {
        println!("created account {user:?}");
        println!();
        println!("Recovery code (write it down and keep it safe; it is shown only now):");
        print_code(&code);
        println!("Next: `shard login {user}`.");
    }
    Ok(())
}

pub fn ls(home: &Home, json: bool) -> Result<()> {
    let list = if home.api_addr().is_some() {
        ApiClient::for_home(home)?.accounts()?
    } else {
        Accounts {
            accounts: accounts::list(&home.open_catalog()?, &[])?,
        }
    };
    if json {
        return print_json(&list);
    }
    let list = list.accounts;
    if list.is_empty() {
        println!("no accounts on this node\n  create one with `shard account create USER`");
        return Ok(());
    }
    println!("{:<24}  {:>6}  STATE", "ACCOUNT", "FILES");
    for a in list {
        let mut state = if a.unlocked {
            "unlocked".to_string()
        } else {
            "locked".to_string()
        };
        let failed = a.failed_logins;
        if failed > 0 {
            state.push_str(&format!(", {failed} failed logins"));
        }
        println!(
            "{:<24}  {}  {state}",
            a.name.escape_debug().to_string(),
            a.files
        );
    }
    Ok(())
}

pub fn passwd(
    home: &Home,
    json: bool,
    user: &str,
    password_file: Option<&Path>,
    new_password_file: Option<&Path>,
) -> Result<()> {
    let catalog = home.open_catalog()?;
    accounts::account(&catalog, user)?;
    let old = read_secret(
        password_file,
        "SHARD_PASSWORD",
        &format!("Current passphrase for {user}: "),
        false,
    )?;
    let new = new_passphrase(new_password_file, "SHARD_NEW_PASSWORD", user)?;
    let wiped = accounts::change_passphrase(&catalog, user, old.as_bytes(), &new)?;
    if json {
        println!(
            "{}",
            json!({"user": user, "changed": true, "old_record_wiped": wiped})
        );
    } else {
        println!(
            "the passphrase of {user} is changed; the old one no longer unlocks it (files and recovery code are unchanged)"
        );
        if !wiped {
            println!(
                "note: the node was busy with the catalog, so the old wrapped key stays in the catalog's log until its next checkpoint (a restart of the node does it)"
            );
        }
    }
    Ok(())
}

pub fn recovery_code(
    home: &Home,
    json: bool,
    user: &str,
    password_file: Option<&Path>,
) -> Result<()> {
    let catalog = home.open_catalog()?;
    let pass = passphrase(password_file, user)?;
    let code = accounts::recovery_code(&catalog, user, pass.as_bytes())?;
    if json {
        println!("{}", json!({"user": user, "recovery_code": code.as_str()}));
    } else {
        println!("Recovery code of {user}:");
        print_code(&code);
    }
    Ok(())
}

/// Asks at the terminal for `expected` to be typed; `--yes` skips it.
fn confirm(question: &str, expected: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question}\n  hint: confirm with --yes when no one is at a terminal");
    }
    eprint!("{question}\nType {expected:?} to confirm: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim_end_matches(['\n', '\r']) != expected {
        bail!("not confirmed; nothing was removed");
    }
    Ok(())
}

pub fn rm(home: &Home, json: bool, user: &str, purge: bool, yes: bool) -> Result<()> {
    let catalog = home.open_catalog()?;
    let account = accounts::account(&catalog, user)?;
    let files = catalog.file_count(account.id)?;
    if files > 0 && !purge {
        bail!(
            "account {user:?} still has {files} stored file versions; nothing was removed\n  hint: remove them first (`shard rm`), or remove them with the account: --purge"
        );
    }
    let question = if files > 0 {
        format!(
            "Remove account {user:?} and delete its {files} stored file versions from every peer? This cannot be undone."
        )
    } else {
        format!("Remove account {user:?} (no files stored)?")
    };
    confirm(&question, user, yes)?;
    // Through the node, with the account unlocked: removing it needs its passphrase, and its
    // files and catalog snapshots are deleted from the peers.
    let answer = ApiClient::for_home(home)?.remove_account(user, purge)?;
    if json {
        print_json(&answer)?;
    } else {
        println!(
            "removed account {user:?} ({} file versions deleted)",
            answer.file_versions_removed
        );
    }
    Ok(())
}

/// Where the recovery code comes from.
pub struct CodeSource {
    flag: Option<String>,
    file: Option<PathBuf>,
}

impl CodeSource {
    /// `--code` and `--code-file` as given.
    pub fn new(flag: Option<String>, file: Option<PathBuf>) -> Self {
        Self { flag, file }
    }

    /// The recovery code: `--code-file`, `--code` (with a warning: a command line is visible
    /// to other users), `SHARD_RECOVERY_CODE`, typed at the terminal, or the first line of
    /// standard input.
    fn read(self) -> Result<Zeroizing<String>> {
        if let Some(path) = self.file {
            let text =
                Zeroizing::new(std::fs::read_to_string(&path).with_context(|| {
                    format!("reading the recovery code from {}", path.display())
                })?);
            return Ok(Zeroizing::new(text.trim().to_string()));
        }
        if let Some(code) = self.flag {
            eprintln!(
                "warning: a recovery code on the command line can be read by other users of this machine (ps, shell history); prefer the prompt, standard input or --code-file"
            );
            return Ok(Zeroizing::new(code));
        }
        if let Some(value) = std::env::var_os("SHARD_RECOVERY_CODE") {
            return value
                .into_string()
                .map(Zeroizing::new)
                .map_err(|_| anyhow::anyhow!("SHARD_RECOVERY_CODE is not UTF-8 text"));
        }
        read_secret_line("Recovery code: ", "the recovery code", "--code-file FILE")
    }
}

/// A secret typed at the terminal, or the first line of standard input: trimmed, never empty.
pub fn read_secret_line(prompt: &str, what: &str, other: &str) -> Result<Zeroizing<String>> {
    let line = if std::io::stdin().is_terminal() {
        // Typed without echo: a code on the screen is as readable as one in `ps`.
        Zeroizing::new(
            rpassword::prompt_password(prompt).with_context(|| format!("reading {what}"))?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .with_context(|| format!("reading {what}"))?;
        line
    };
    let value = Zeroizing::new(line.trim().to_string());
    if value.is_empty() {
        bail!(
            "{what} is needed\n  hint: type it at the prompt, give it on standard input, or use {other}"
        );
    }
    Ok(value)
}

pub fn recover(
    home: &Home,
    json: bool,
    code: CodeSource,
    head: Option<u64>,
    user: Option<&str>,
    password_file: Option<&Path>,
) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let code = code.read()?;
    // A mistyped group is named now, before a passphrase is asked for.
    shard_crypto::decode_recovery_code(&code).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n  hint: type the code exactly as written down (spaces and dashes do not matter)"
        )
    })?;
    let pass = new_passphrase(
        password_file,
        "SHARD_PASSWORD",
        user.unwrap_or("the recovered account"),
    )?;
    let answer = client.recover(&RecoverBody {
        code: code.as_str().to_string(),
        password: pass.as_str().to_string(),
        user: user.map(str::to_string),
        head,
    })?;
    if json {
        print_json(&answer)?;
    } else {
        println!(
            "recovered account {:?}: {} files in its catalog; {} peers handed the vault over to this node ({} shares moved)",
            answer.account, answer.files, answer.peers_handed_over, answer.shares_moved,
        );
        println!(
            "It is unlocked on this node with the new passphrase; `shard ls` lists the files. The old node can no longer change or delete them."
        );
        let chosen = answer.catalog_head;
        let older: Vec<String> = answer
            .heads_available
            .iter()
            .filter(|h| h.head != chosen)
            .map(|h| format!("{} ({})", h.head, crate::vault::when(h.written_at)))
            .collect();
        if !older.is_empty() {
            println!(
                "This was catalog head {} ({}); the peers also keep heads {}: `shard recover --head N` brings the catalog back as it was then.",
                answer.catalog_head,
                crate::vault::when(answer.catalog_written_at),
                older.join(", ")
            );
        }
    }
    Ok(())
}
