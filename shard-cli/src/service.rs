//! `shard service install|status|uninstall`: a systemd user unit that runs the node and
//! unlocks one account from a password file, so backups run without anyone logged in at a
//! terminal (as Syncthing ships its unit).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use shard_node::home::Home;

use crate::network::print_json;

/// The unit's file name.
pub const UNIT: &str = "shard.service";

/// Where systemd looks for the user's units.
fn unit_dir() -> Result<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(config.join("systemd/user"))
}

/// An argument as `ExecStart=` reads it back: always in double quotes, with `\\` and `"`
/// escaped, `$` written `$$` (no variable expansion) and `%` written `%%` (no specifier);
/// control characters are refused.
fn unit_quote(text: &str) -> Result<String> {
    if text.chars().any(char::is_control) {
        bail!("{text:?}: a unit file cannot hold a control character here");
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("$$"),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// A path for the unit: UTF-8, quoted.
fn unit_arg(path: &Path) -> Result<String> {
    let text = path.to_str().with_context(|| {
        format!(
            "{}: not UTF-8, which a unit file cannot name",
            path.display()
        )
    })?;
    unit_quote(text)
}

/// The unit's text: `shard serve` of `home`, unlocking `user` with `password_file`.
pub fn unit_text(exe: &Path, home: &Path, user: &str, password_file: &Path) -> Result<String> {
    if user.is_empty() {
        bail!("an account name is needed");
    }
    Ok(format!(
        "# Written by `shard service install`; `shard service uninstall` removes it.\n\
         [Unit]\n\
         Description=shard node: files kept safe on machines you trust; backups on schedule\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={} --home {} serve --login {} --password-file {}\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        unit_arg(exe)?,
        unit_arg(home)?,
        unit_quote(user)?,
        unit_arg(password_file)?,
    ))
}

/// Refuses a password file others could read (or that is not a plain file of this user).
fn check_password_file(path: &Path) -> Result<()> {
    let md = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if !md.is_file() {
        bail!("{} is not a file", path.display());
    }
    if md.mode() & 0o077 != 0 {
        bail!(
            "{} can be read by others (mode {:o}); make it private first: chmod 600 {}",
            path.display(),
            md.mode() & 0o777,
            path.display()
        );
    }
    // /proc/self belongs to the process's effective user.
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if me.is_some_and(|me| md.uid() != me) {
        bail!("{} belongs to another user", path.display());
    }
    Ok(())
}

fn systemctl(args: &[&str]) -> Result<std::process::Output> {
    Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .context(
            "systemctl could not be run (no systemd here? see README, \"Running without systemd\")",
        )
}

pub fn install(
    home: &Home,
    json: bool,
    user: &str,
    password_file: &Path,
    enable: bool,
) -> Result<()> {
    let exe = std::env::current_exe().context("where this program is")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let home_dir = std::path::absolute(home.root())?;
    let password_file = std::path::absolute(password_file)?;
    check_password_file(&password_file)?;
    let text = unit_text(&exe, &home_dir, user, &password_file)?;
    let dir = unit_dir()?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(UNIT);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o644)
        .open(&path)
        .with_context(|| format!("{}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    let mut enabled = false;
    if enable {
        let reload = systemctl(&["daemon-reload"])?;
        let on = systemctl(&["enable", "--now", UNIT])?;
        if !reload.status.success() || !on.status.success() {
            bail!(
                "{} was written, but systemd did not enable it: {}{}",
                path.display(),
                String::from_utf8_lossy(&reload.stderr),
                String::from_utf8_lossy(&on.stderr)
            );
        }
        enabled = true;
    }
    if json {
        return print_json(&serde_json::json!({"unit": path, "enabled": enabled}));
    }
    println!("wrote {}", path.display());
    if enabled {
        println!(
            "enabled and started: the node runs at login with {user} unlocked; `loginctl enable-linger` keeps it running without a login session"
        );
    } else {
        println!("not enabled; `systemctl --user enable --now {UNIT}` starts it");
    }
    Ok(())
}

pub fn status(json: bool) -> Result<()> {
    let path = unit_dir()?.join(UNIT);
    let installed = path.exists();
    let state = if installed {
        systemctl(&["is-active", UNIT])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "unknown (no systemctl)".into())
    } else {
        "not installed".into()
    };
    if json {
        return print_json(
            &serde_json::json!({"unit": path, "installed": installed, "state": state}),
        );
    }
    println!("{}: {state}", path.display());
    Ok(())
}

pub fn uninstall(json: bool) -> Result<()> {
    let path = unit_dir()?.join(UNIT);
    if !path.exists() {
        bail!("no shard unit is installed at {}", path.display());
    }
    // Stopped and disabled when systemd is there; the file goes either way.
    let stopped = systemctl(&["disable", "--now", UNIT]).is_ok_and(|o| o.status.success());
    std::fs::remove_file(&path)?;
    let _ = systemctl(&["daemon-reload"]);
    if json {
        return print_json(&serde_json::json!({"unit": path, "removed": true, "stopped": stopped}));
    }
    println!(
        "removed {}{}",
        path.display(),
        if stopped {
            "; the node was stopped"
        } else {
            ""
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_serve_with_the_account_and_quotes_what_systemd_would_read() {
        let text = unit_text(
            Path::new("/usr/local/bin/shard"),
            Path::new("/home/ann/my data/shard"),
            "o'neil",
            Path::new("/home/ann/100% $HOME \\ \"x\""),
        )
        .unwrap();
        assert!(
            text.contains(
                "ExecStart=\"/usr/local/bin/shard\" --home \"/home/ann/my data/shard\" serve --login \"o'neil\" --password-file \"/home/ann/100%% $$HOME \\\\ \\\"x\\\"\"\n"
            ),
            "{text}"
        );
        assert!(text.contains("WantedBy=default.target"));
        assert!(text.contains("Restart=on-failure"));
        assert!(
            !text.contains("PrivateTmp"),
            "get -o /tmp/… must reach the real /tmp"
        );
        assert!(unit_text(Path::new("/x\ty"), Path::new("/h"), "ann", Path::new("/p")).is_err());
        assert!(unit_text(Path::new("/x"), Path::new("/h"), "", Path::new("/p")).is_err());
    }

    #[test]
    fn a_password_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "a passphrase").unwrap();
        std::fs::set_permissions(
            &path,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644),
        )
        .unwrap();
        let err = check_password_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(
            &path,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .unwrap();
        check_password_file(&path).unwrap();
    }
}
