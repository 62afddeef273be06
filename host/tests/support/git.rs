//! Real git repositories for tests, built in temp dirs: init, write and commit files, tags and
//! branches, each step returning what tests compare against (commit shas). git runs isolated
//! from the machine's configuration (no system or global config, no signing, `main` as the
//! default branch), so a developer's `~/.gitconfig` cannot change a test's outcome.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Run git in `dir` for a fixture; panics with git's stderr on failure. Returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Fixture",
            "-c",
            "user.email=fixture@example.org",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with a work tree, on branch `main`.
pub struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    /// `git init` at `dir` (created if missing).
    pub fn init(dir: &Path) -> Repo {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q", "-b", "main"]);
        Repo {
            dir: dir.to_path_buf(),
        }
    }

    /// A repository holding a copy of the files under `src`, committed, at `dest`.
    pub fn from_tree(src: &Path, dest: &Path, msg: &str) -> Repo {
        std::fs::create_dir_all(dest).unwrap();
        let status = Command::new("cp")
            .arg("-R")
            .arg(format!("{}/.", src.display()))
            .arg(dest)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cp -R {} {}",
            src.display(),
            dest.display()
        );
        let repo = Repo::init(dest);
        repo.commit(msg);
        repo
    }

    /// Write `file` (parents created) without committing.
    pub fn write(&self, file: &str, content: &str) -> &Self {
        let p = self.dir.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        self
    }

    /// Commit every change in the work tree; returns the new commit's sha.
    pub fn commit(&self, msg: &str) -> String {
        git(&self.dir, &["add", "-A"]);
        git(&self.dir, &["commit", "-q", "-m", msg]);
        self.head()
    }

    /// Write `file` and commit it alone; returns the new commit's sha.
    pub fn commit_file(&self, file: &str, content: &str, msg: &str) -> String {
        self.write(file, content);
        git(&self.dir, &["add", file]);
        git(&self.dir, &["commit", "-q", "-m", msg]);
        self.head()
    }

    pub fn tag(&self, name: &str) -> &Self {
        git(&self.dir, &["tag", name]);
        self
    }

    /// Create branch `name` at HEAD without switching to it.
    pub fn branch(&self, name: &str) -> &Self {
        git(&self.dir, &["branch", name]);
        self
    }

    /// Switch to an existing branch (or detach at a commit).
    pub fn checkout(&self, rev: &str) -> &Self {
        git(&self.dir, &["checkout", "-q", rev]);
        self
    }

    /// The sha `rev` names.
    pub fn rev(&self, rev: &str) -> String {
        git(&self.dir, &["rev-parse", rev])
    }

    pub fn head(&self) -> String {
        self.rev("HEAD")
    }

    /// Run any other git command in the repository.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.dir, args)
    }

    /// The repository as a URL git clones from (its path).
    pub fn url(&self) -> String {
        self.dir.display().to_string()
    }
}
