//! What a backup leaves out: patterns in gitignore syntax (`--exclude`, and a `.shardignore`
//! file at the top of the folder), matched by the `ignore` crate — the same rules as git's,
//! so `build/`, `/notes.tmp`, `*.iso` and `!keep.iso` mean what people already expect.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The file at the top of a backed-up folder whose lines are more exclusions.
pub const IGNORE_FILE: &str = ".shardignore";

/// Why exclusions were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadExclusion {
    /// A pattern gitignore syntax does not allow.
    #[error("{pattern:?} is not a pattern in gitignore syntax: {why}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        why: String,
    },
    /// The `.shardignore` file could not be read or holds a bad pattern.
    #[error("{path}: {why}")]
    IgnoreFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The exclusions of one folder.
#[derive(Debug, Clone)]
pub struct Exclusions {
    matcher: Gitignore,
}

impl Exclusions {
    /// The exclusions of the folder `root`: `patterns`, then the lines of its `.shardignore`
    /// if it has one (a later line wins, as in git, so the file can re-include with `!`).
    pub fn new(root: &Path, patterns: &[String]) -> Result<Exclusions, BadExclusion> {
        Self::build(root, patterns, true)
    }

    /// `patterns` alone, without the folder's `.shardignore`: for a job a web UI session made
    /// on a folder under `[web] node_paths`, where other accounts' sessions may write files
    /// too (a `.shardignore` one of them put there would silently leave out what it names).
    pub fn patterns_only(root: &Path, patterns: &[String]) -> Result<Exclusions, BadExclusion> {
        Self::build(root, patterns, false)
    }

    fn build(
        root: &Path,
        patterns: &[String],
        read_file: bool,
    ) -> Result<Exclusions, BadExclusion> {
        let mut builder = GitignoreBuilder::new(root);
        for pattern in patterns {
            builder
                .add_line(None, pattern)
                .map_err(|e| BadExclusion::Pattern {
                    pattern: pattern.clone(),
                    why: e.to_string(),
                })?;
        }
        let file = root.join(IGNORE_FILE);
        if read_file
            && file.is_file()
            && let Some(e) = builder.add(&file)
        {
            return Err(BadExclusion::IgnoreFile {
                path: file,
                why: e.to_string(),
            });
        }
        let matcher = builder.build().map_err(|e| BadExclusion::Pattern {
            pattern: patterns.join(" "),
            why: e.to_string(),
        })?;
        Ok(Exclusions { matcher })
    }

    /// Whether `path` (under the root, or relative to it) is left out: it matches, or a folder
    /// it lies in does.
    pub fn excludes(&self, path: &Path, is_dir: bool) -> bool {
        self.matcher
            .matched_path_or_any_parents(path, is_dir)
            .is_ignore()
    }

    /// Whether these exclusions leave out everything a folder could hold (a job that would
    /// store nothing): every probe name, as a file and as a folder, is excluded.
    pub fn exclude_everything(&self) -> bool {
        ["a", "notes.txt", ".hidden", "Photos", "x/y/z.jpg"]
            .iter()
            .all(|p| self.excludes(Path::new(p), false) && self.excludes(Path::new(p), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(patterns: &[&str]) -> (tempfile::TempDir, Exclusions) {
        let dir = tempfile::tempdir().unwrap();
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let ex = Exclusions::new(dir.path(), &patterns).unwrap();
        (dir, ex)
    }

    #[test]
    fn patterns_mean_what_they_mean_to_git() {
        let (dir, ex) = rules(&["*.iso", "!keep.iso", "/notes.tmp", "build/", "cache"]);
        let at = |p: &str| dir.path().join(p);
        assert!(ex.excludes(&at("big.iso"), false));
        assert!(ex.excludes(&at("deep/in/big.iso"), false));
        assert!(!ex.excludes(&at("keep.iso"), false), "re-included");
        assert!(ex.excludes(&at("notes.tmp"), false));
        assert!(
            !ex.excludes(&at("sub/notes.tmp"), false),
            "anchored at the top"
        );
        assert!(ex.excludes(&at("build"), true));
        assert!(
            !ex.excludes(&at("build"), false),
            "build/ names folders only"
        );
        assert!(
            ex.excludes(&at("build/out/app"), false),
            "inside an excluded folder"
        );
        assert!(ex.excludes(&at("a/cache"), true));
        assert!(!ex.excludes(&at("letters/2026.txt"), false));
        // Paths relative to the folder read the same.
        assert!(ex.excludes(Path::new("deep/in/big.iso"), false));
    }

    #[test]
    fn a_web_sessions_job_reads_no_shardignore() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(IGNORE_FILE), "*.jpg\n").unwrap();
        let photo = dir.path().join("kids.jpg");
        let patterns = vec!["*.tmp".to_string()];
        assert!(
            Exclusions::new(dir.path(), &patterns)
                .unwrap()
                .excludes(&photo, false)
        );
        let web = Exclusions::patterns_only(dir.path(), &patterns).unwrap();
        assert!(!web.excludes(&photo, false));
        assert!(web.excludes(&dir.path().join("x.tmp"), false));
    }

    #[test]
    fn a_shardignore_file_adds_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(IGNORE_FILE),
            "# comment\n*.log\n!important.log\n",
        )
        .unwrap();
        let ex = Exclusions::new(dir.path(), &["*.tmp".to_string()]).unwrap();
        assert!(ex.excludes(&dir.path().join("run.log"), false));
        assert!(!ex.excludes(&dir.path().join("important.log"), false));
        assert!(ex.excludes(&dir.path().join("x.tmp"), false));
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Exclusions::new(dir.path(), &["{a,b".to_string()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("\"{a,b\" is not a pattern in gitignore syntax"),
            "{err}"
        );
    }

    #[test]
    fn exclusions_that_leave_nothing_are_told_apart() {
        assert!(rules(&["*"]).1.exclude_everything());
        assert!(rules(&["**"]).1.exclude_everything());
        assert!(!rules(&["*.iso"]).1.exclude_everything());
        assert!(!rules(&["*", "!*.txt"]).1.exclude_everything());
        assert!(!rules(&[]).1.exclude_everything());
    }
}
