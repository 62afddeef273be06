//! Headless Chromium (Debian's `chromium`) for looking at the HTML report as a person would:
//! the DOM after its scripts ran (`--dump-dom`) and screenshots. Each call gets its own
//! profile directory and a time limit; no network, no sync, no component updates.
//! [`Browser::find`] says when it is missing: tests skip loudly on a developer machine and
//! fail in CI (where `scripts/setup` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Browser {
    program: PathBuf,
}

impl Browser {
    /// Chromium on PATH. `None` (with a loud message) off CI; a panic in CI (`CI` set).
    pub fn find() -> Option<Browser> {
        for name in ["chromium", "chromium-browser"] {
            if let Ok(out) = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                && out.status.success()
            {
                let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if !path.is_empty() {
                    return Some(Browser {
                        program: PathBuf::from(path),
                    });
                }
            }
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed, and CI must run the browser tests (scripts/setup installs it)"
        );
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! SKIPPED: chromium is not installed; the HTML report was not looked at in a  !!\n\
             !! browser. Run scripts/setup (Debian package `chromium`).                      !!\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        None
    }

    fn run(&self, extra: &[String], page: &Path) -> String {
        let profile = tempfile::tempdir().unwrap();
        let url = format!("file://{}", page.display());
        let mut child = Command::new(&self.program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut s).ok();
            s
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "chromium on {url} exited {status}");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium on {url} did not finish in 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        reader.join().unwrap()
    }

    /// The page's DOM after its scripts ran.
    pub fn dump_dom(&self, page: &Path) -> String {
        self.run(&["--dump-dom".into()], page)
    }

    /// A PNG of the page's first 1280×900 pixels.
    pub fn screenshot(&self, page: &Path, png: &Path) {
        self.run(&[format!("--screenshot={}", png.display())], page);
        assert!(
            png.is_file(),
            "chromium wrote no screenshot at {}",
            png.display()
        );
    }
}
