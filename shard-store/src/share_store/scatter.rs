//! The scatter layout's names: harmless-looking folders and files, and the check that a path
//! read back from the index is one this layout could have made (relative, no `..`, no
//! separators inside names, only plain characters) so nothing is ever read or written outside
//! the store's root.
//!
//! The names avoid `.tmp`, `Temp` and the like, which disk cleaners delete.

use rand_chacha::ChaCha20Rng;
use rand_core::Rng;

const DIR_NAMES: &[&str] = &[
    "cache",
    "data",
    "logs",
    "assets",
    "backup",
    "config",
    "thumbnails",
    "index",
    "session",
    "profile",
    "storage",
    "blob_storage",
    "GPUCache",
    "Code Cache",
    "shader_cache",
    "reports",
    "updates",
    "locale",
    "fonts",
    "media",
    "db",
    "journal",
    "v2",
    "store",
];

const FILE_NAMES: &[(&str, &str)] = &[
    ("cache", ".data"),
    ("debug", ".log"),
    ("prefs", ".ini"),
    ("thumbs", ".db"),
    ("index", ".dat"),
    ("settings", ".json"),
    ("session", ".bak"),
    ("journal", ".log"),
    ("blob", ".bin"),
    ("fonts", ".cache"),
    ("state", ".dat"),
    ("history", ".db"),
    ("manifest", ".bin"),
    ("usage", ".log"),
];

fn pick<'a, T>(rng: &mut ChaCha20Rng, items: &'a [T]) -> &'a T {
    // `items` is a non-empty constant list, so the index is always in range.
    &items[below(rng, items.len())]
}

/// A folder name; `attempt > 0` adds a suffix to make it unique among its siblings.
pub(super) fn dir_name(rng: &mut ChaCha20Rng, attempt: u32) -> String {
    let base = pick(rng, DIR_NAMES);
    if attempt == 0 {
        (*base).to_string()
    } else {
        format!("{base}_{}", rng.next_u32() % 1000)
    }
}

/// A file name; `attempt > 0` adds a number to make it unique in its folder.
pub(super) fn file_name(rng: &mut ChaCha20Rng, attempt: u32) -> String {
    let (stem, ext) = pick(rng, FILE_NAMES);
    if attempt == 0 {
        format!("{stem}{ext}")
    } else {
        format!("{stem}-{}{ext}", rng.next_u32() % 10_000)
    }
}

/// A random number in `0..n` (n > 0).
pub(super) fn below(rng: &mut ChaCha20Rng, n: usize) -> usize {
    let n = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
    // The remainder is below `n`, which came from a usize.
    usize::try_from(rng.next_u64() % n).unwrap_or(0)
}

/// True if `path` is a relative path of plain components: ASCII letters, digits, space, `.`,
/// `_`, `-`; no empty, `.` or `..` component; at most 16 levels.
pub(crate) fn valid_relpath(path: &str) -> bool {
    let mut depth = 0;
    for part in path.split('/') {
        depth += 1;
        let plain = part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'-'));
        if part.is_empty() || part == "." || part == ".." || !plain || part.len() > 128 {
            return false;
        }
    }
    depth <= 16 && !path.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn generated_names_are_valid_components() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for attempt in 0..50 {
            assert!(valid_relpath(&dir_name(&mut rng, attempt)));
            assert!(valid_relpath(&file_name(&mut rng, attempt)));
        }
    }

    #[test]
    fn paths_that_could_escape_are_rejected() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
            "é",
            "a/b\nc",
            "..",
            ".",
            &"a/".repeat(17),
        ] {
            assert!(!valid_relpath(bad), "{bad:?} accepted");
        }
        assert!(valid_relpath("cache/Code Cache/debug-12.log"));
        assert!(valid_relpath(".quarantine/abc"));
    }
}
