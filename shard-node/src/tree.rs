//! The file-tree walk of a put, and the rules for names in a vault: what a put stores, in a
//! stable order, and which names a restore may write.

use std::collections::HashSet;
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
    /// Its change time when the walk found it (compared after it is read, stamp or not).
    pub ctime: (i64, u32),
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

fn meta_of(
    path: &Path,
    name: Vec<u8>,
    md: &fs::Metadata,
    kind: FileKind,
    real_ctimes: bool,
) -> Result<Entry> {
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
        ctime: (md.ctime(), u32::try_from(md.ctime_nsec()).unwrap_or(0)),
        stamp: real_ctimes.then(|| stamp_of(md)),
        streamed: false,
    })
}

/// File systems whose ctime and inode numbers stand for nothing (FAT keeps no change time, and
/// makes inode numbers up at every mount): a file there gets no stamp, and every put reads it.
const NO_REAL_CTIME: [u64; 2] = [
    0x4d44,      // MSDOS_SUPER_MAGIC: vfat, msdos
    0x2011_bab0, // EXFAT_SUPER_MAGIC
];

/// Whether the file system holding `path` keeps real change times and inode numbers (asked
/// once per folder: what a folder holds lies on its file system, but for a mount point, whose
/// own times do not decide whether a file is read).
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

/// What the walk of a put meets, one at a time.
#[derive(Debug)]
pub(crate) enum Found {
    /// Something to store.
    Entry(Entry),
    /// A path that could not be read (a folder not listed, a link not read, a child that
    /// vanished): the put goes on with the rest and ends partial, naming it.
    Unreadable { path: PathBuf, reason: String },
    /// Something a vault does not keep (a socket, a device): a warning, not a failure.
    Skipped(String),
}

/// A folder being walked: its name in the vault, whether its file system keeps real change
/// times, and its children not yet visited (sorted, last first).
struct Frame {
    name: Vec<u8>,
    real_ctimes: bool,
    children: Vec<PathBuf>,
}

/// The entries a put stores, found as they are needed, in a stable order (each folder before
/// what it holds, children by name): folders are listed one at a time, so what the walk holds
/// is the children of the folders on its current way, never the whole tree.
pub(crate) struct Walk {
    roots: std::vec::IntoIter<(PathBuf, Vec<u8>, fs::Metadata)>,
    stack: Vec<Frame>,
    /// What a backup job leaves out: never listed, so an excluded folder is not entered.
    exclusions: Option<crate::backup::Exclusions>,
}

impl Walk {
    /// Checks the paths given (each exists and has a name the vault takes) before anything is
    /// read.
    pub(crate) fn new(paths: &[PathBuf], as_name: Option<&[u8]>) -> Result<Self> {
        if as_name.is_some() && paths.len() != 1 {
            return Err(Error::Usage(
                "--as names one stored file: give exactly one path with it".into(),
            ));
        }
        let mut roots = Vec::with_capacity(paths.len());
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
            roots.push((path.clone(), name, md));
        }
        Ok(Self {
            roots: roots.into_iter(),
            stack: Vec::new(),
            exclusions: None,
        })
    }

    /// The same walk, leaving out what `exclusions` name (matched against the full paths,
    /// which lie under the folder the exclusions were made for).
    pub(crate) fn excluding(mut self, exclusions: crate::backup::Exclusions) -> Self {
        self.exclusions = Some(exclusions);
        self
    }

    /// Names given to more than one of the paths (`put a/x b/x`): every name under them may be
    /// met twice in one put.
    pub(crate) fn names_twice(paths: &[PathBuf], as_name: Option<&[u8]>) -> HashSet<Vec<u8>> {
        let mut seen = HashSet::new();
        paths
            .iter()
            .filter_map(|p| {
                as_name
                    .map(<[u8]>::to_vec)
                    .or_else(|| p.file_name().map(|n| n.as_bytes().to_vec()))
            })
            .filter(|name| !seen.insert(name.clone()))
            .collect()
    }

    /// What `path` (met as `name`) is: an entry, and for a folder its children to visit next.
    fn visit(&mut self, path: PathBuf, name: Vec<u8>, md: &fs::Metadata, real: bool) -> Found {
        let ft = md.file_type();
        let kind = if ft.is_file() {
            FileKind::File
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_dir() {
            FileKind::Dir
        } else {
            return Found::Skipped(format!(
                "skipped {}: not a regular file, folder or link",
                path.display()
            ));
        };
        if kind == FileKind::Dir {
            let exclusions = self.exclusions.as_ref();
            let listed = fs::read_dir(&path).and_then(|dir| {
                dir.filter_map(|e| match e {
                    Err(e) => Some(Err(e)),
                    Ok(e) => {
                        let path = e.path();
                        // The kind comes with the listing on most file systems: no stat.
                        let left_out = exclusions.is_some_and(|ex| {
                            ex.excludes(&path, e.file_type().is_ok_and(|t| t.is_dir()))
                        });
                        (!left_out).then_some(Ok(path))
                    }
                })
                .collect::<std::io::Result<Vec<_>>>()
            });
            let mut children = match listed {
                Ok(children) => children,
                Err(e) => {
                    return Found::Unreadable {
                        reason: format!("its folder could not be listed: {e}"),
                        path,
                    };
                }
            };
            children.sort();
            children.reverse();
            self.stack.push(Frame {
                name: name.clone(),
                real_ctimes: real_ctimes(&path),
                children,
            });
        }
        match meta_of(&path, name, md, kind, real) {
            Ok(entry) => Found::Entry(entry),
            Err(e) => Found::Unreadable {
                reason: e.to_string(),
                path,
            },
        }
    }
}

impl Iterator for Walk {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        loop {
            let Some(frame) = self.stack.last_mut() else {
                let (path, name, md) = self.roots.next()?;
                let real = real_ctimes(&path);
                return Some(self.visit(path, name, &md, real));
            };
            let Some(child) = frame.children.pop() else {
                self.stack.pop();
                continue;
            };
            let mut name = frame.name.clone();
            name.push(b'/');
            name.extend_from_slice(child.file_name().map(|n| n.as_bytes()).unwrap_or_default());
            let real = frame.real_ctimes;
            return Some(match fs::symlink_metadata(&child) {
                Ok(md) => self.visit(child, name, &md, real),
                Err(e) => Found::Unreadable {
                    reason: e.to_string(),
                    path: child,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(walk: Walk) -> Vec<String> {
        walk.map(|f| match f {
            Found::Entry(e) => String::from_utf8_lossy(&e.meta.name).into_owned(),
            Found::Unreadable { path, reason } => {
                format!("unreadable {}: {reason}", path.display())
            }
            Found::Skipped(w) => w,
        })
        .collect()
    }

    #[test]
    fn a_walk_meets_each_folder_before_what_it_holds_children_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("top");
        fs::create_dir_all(root.join("b/inner")).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("z.txt"), b"z").unwrap();
        fs::write(root.join("b/inner/deep"), b"d").unwrap();
        fs::write(root.join("b/c"), b"c").unwrap();
        fs::write(root.join("a/x"), b"x").unwrap();
        std::os::unix::fs::symlink("z.txt", root.join("link")).unwrap();
        let walk = Walk::new(&[root], None).unwrap();
        assert_eq!(
            names(walk),
            [
                "top",
                "top/a",
                "top/a/x",
                "top/b",
                "top/b/c",
                "top/b/inner",
                "top/b/inner/deep",
                "top/link",
                "top/z.txt",
            ]
        );
    }

    #[test]
    fn what_a_walk_cannot_read_or_keep_is_named_and_the_walk_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("top");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("kept"), b"k").unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        let walk = Walk::new(std::slice::from_ref(&root), None).unwrap();
        let found = names(walk);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found.first().map(String::as_str), Some("top"));
        assert_eq!(found.get(1).map(String::as_str), Some("top/kept"));
        assert!(
            found.get(2).is_some_and(|w| w.starts_with("skipped ")
                && w.ends_with("sock: not a regular file, folder or link")),
            "{found:?}"
        );
        // A folder gone between being seen and being listed (root reads any folder, so a
        // permission cannot make one unreadable here) is named with the reason.
        let md = fs::symlink_metadata(&root).unwrap();
        let mut walk = Walk::new(std::slice::from_ref(&root), None).unwrap();
        let gone = dir.path().join("gone");
        match walk.visit(gone.clone(), b"top/gone".to_vec(), &md, true) {
            Found::Unreadable { path, reason } => {
                assert_eq!(path, gone);
                assert!(
                    reason.starts_with("its folder could not be listed: "),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_path_or_a_nameless_one_stops_the_walk_before_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing here");
        assert!(matches!(
            Walk::new(&[missing], None),
            Err(Error::PathMissing(_))
        ));
        assert!(matches!(
            Walk::new(&[PathBuf::from("/")], None),
            Err(Error::InvalidName(_))
        ));
        let twice = Walk::names_twice(
            &[
                PathBuf::from("a/x"),
                PathBuf::from("b/x"),
                PathBuf::from("c/y"),
            ],
            None,
        );
        assert_eq!(twice, HashSet::from([b"x".to_vec()]));
    }
}
