//! The file-tree walk of a put, and the rules for names in a vault: what a put stores, in a
//! stable order, and which names a restore may write.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use shard_store::{FileKind, FileMeta, FileStamp};

use crate::{Error, Result};

/// One thing to store.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub src: PathBuf,
    pub meta: FileMeta,
    pub dev_ino: (u64, u64),
    /// What it was when scanned (what the next put compares to skip it if unchanged); none
    /// for an upload.
    pub stamp: Option<FileStamp>,
    /// Its bytes come from the put's [`Upload`], not from `src`.
    pub streamed: bool,
}

/// What tells a later put that a file has not changed, besides its size and mtime.
pub(crate) fn stamp_of(md: &fs::Metadata) -> FileStamp {
    FileStamp {
        ctime: md.ctime(),
        ctime_nanos: u32::try_from(md.ctime_nsec()).unwrap_or(0),
        inode: md.ino(),
    }
}

/// Checks a vault name: not empty, not absolute, no empty, `.` or `..` component, no NUL.
pub fn check_name(name: &[u8]) -> Result<()> {
    let bad = name.is_empty()
        || name.first() == Some(&b'/')
        || name.contains(&0)
        || name
            .split(|&b| b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..");
    if bad {
        return Err(Error::InvalidName(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    Ok(())
}

fn meta_of(path: &Path, name: Vec<u8>, md: &fs::Metadata, kind: FileKind) -> Result<Entry> {
    let link_target = if kind == FileKind::Symlink {
        let target = fs::read_link(path).map_err(|e| access(path, &e))?;
        Some(serde_bytes::ByteBuf::from(
            target.as_os_str().as_bytes().to_vec(),
        ))
    } else {
        None
    };
    Ok(Entry {
        src: path.to_path_buf(),
        meta: FileMeta {
            name,
            kind,
            size: if kind == FileKind::File { md.len() } else { 0 },
            mtime: md.mtime(),
            mtime_nanos: u32::try_from(md.mtime_nsec()).unwrap_or(0),
            mode: md.mode() & 0o7777,
            link_target,
        },
        dev_ino: (md.dev(), md.ino()),
        stamp: real_ctimes(path).then(|| stamp_of(md)),
        streamed: false,
    })
}

/// File systems whose ctime and inode numbers stand for nothing (FAT keeps no change time, and
/// makes inode numbers up at every mount): a file there gets no stamp, and every put reads it.
const NO_REAL_CTIME: [u64; 2] = [
    0x4d44,      // MSDOS_SUPER_MAGIC: vfat, msdos
    0x2011_bab0, // EXFAT_SUPER_MAGIC
];

/// Whether the file system holding `path` keeps real change times and inode numbers.
fn real_ctimes(path: &Path) -> bool {
    rustix::fs::statfs(path)
        .is_ok_and(|fs| u64::try_from(fs.f_type).is_ok_and(|kind| !NO_REAL_CTIME.contains(&kind)))
}

/// Forgets the stamps of files that changed within `window` of `scan_start` (or after it):
/// their times may not move on a second write in the same clock tick, so the next put must
/// read them again rather than trust them (git's "racily clean" rule).
pub(crate) fn settle(
    entries: &mut [Entry],
    scan_start: std::time::SystemTime,
    window: std::time::Duration,
) {
    let nanos = |secs: i64, nanos: u32| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    let start = scan_start
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().try_into().unwrap_or(i128::MAX));
    let limit = start - i128::try_from(window.as_nanos()).unwrap_or(i128::MAX);
    for e in entries {
        if let Some(s) = e.stamp {
            let latest = nanos(e.meta.mtime, e.meta.mtime_nanos).max(nanos(s.ctime, s.ctime_nanos));
            if latest >= limit {
                e.stamp = None;
            }
        }
    }
}

/// A path that cannot be read or written, said plainly (a full disk by name).
pub(crate) fn access(path: &Path, e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::StorageFull {
        return Error::PathAccess {
            path: path.display().to_string(),
            reason: "the disk is full".into(),
        };
    }
    Error::PathAccess {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Lists what a put stores, in a stable order; returns warnings for skipped paths.
pub(crate) fn scan(paths: &[PathBuf], as_name: Option<&[u8]>) -> Result<(Vec<Entry>, Vec<String>)> {
    if as_name.is_some() && paths.len() != 1 {
        return Err(Error::Usage(
            "--as names one stored file: give exactly one path with it".into(),
        ));
    }
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    for path in paths {
        let md = match fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::PathMissing(path.display().to_string()));
            }
            Err(e) => return Err(access(path, &e)),
        };
        let name = match as_name {
            Some(n) => n.to_vec(),
            None => path
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .ok_or_else(|| {
                    Error::InvalidName(format!(
                        "{} has no name; give one with --as",
                        path.display()
                    ))
                })?,
        };
        check_name(&name)?;
        walk(path, name, &md, &mut entries, &mut warnings)?;
    }
    Ok((entries, warnings))
}

fn walk(
    path: &Path,
    name: Vec<u8>,
    md: &fs::Metadata,
    out: &mut Vec<Entry>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let ft = md.file_type();
    if ft.is_file() {
        // Opened now so that an unreadable file fails the put before anything is sent.
        fs::File::open(path).map_err(|e| access(path, &e))?;
        out.push(meta_of(path, name, md, FileKind::File)?);
    } else if ft.is_symlink() {
        out.push(meta_of(path, name, md, FileKind::Symlink)?);
    } else if ft.is_dir() {
        out.push(meta_of(path, name.clone(), md, FileKind::Dir)?);
        let mut children: Vec<PathBuf> = fs::read_dir(path)
            .map_err(|e| access(path, &e))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| access(path, &e))?;
        children.sort();
        for child in children {
            let child_md = fs::symlink_metadata(&child).map_err(|e| access(&child, &e))?;
            let mut child_name = name.clone();
            child_name.push(b'/');
            child_name
                .extend_from_slice(child.file_name().map(|n| n.as_bytes()).unwrap_or_default());
            walk(&child, child_name, &child_md, out, warnings)?;
        }
    } else {
        warnings.push(format!(
            "skipped {}: not a regular file, folder or link",
            path.display()
        ));
    }
    Ok(())
}
