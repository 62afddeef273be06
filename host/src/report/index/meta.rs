//! Upstream's delivery meta files (`meta/*.stasis`, `key value` lines) as the indexer reads
//! them, and the indexer's order of deliveries. Parsing follows upstream's `load_metadata`:
//! split at the first space, value right-trimmed, `rc` by `strtol`, `platform` split on spaces
//! with only word 3 (the release platform, `linux`/`macos`) used; unknown keys ignored.
//!
//! Pure (the caller reads the files).

use std::cmp::Ordering;

/// One delivery as its meta file describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub name: Option<String>,
    pub version: String,
    pub rc: i64,
    pub python: String,
    pub python_compact: String,
    /// `platform` word 3: `linux`, `macos`.
    pub platform: String,
    pub arch: String,
    pub release_name: String,
    pub release_fmt: String,
    pub build_number: String,
}

/// `strtol(s, NULL, 10)`: leading whitespace, a sign, digits; 0 when there are none.
fn strtol(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n: i64 = digits
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .fold(0i64, |acc, c| {
            acc.saturating_mul(10)
                .saturating_add(i64::from(c as u8 - b'0'))
        });
    if neg { -n } else { n }
}

/// `strtoul(python_compact)`, for ordering.
fn python_number(d: &Delivery) -> u64 {
    u64::try_from(strtol(&d.python_compact)).unwrap_or(0)
}

pub fn parse(text: &str) -> Delivery {
    let mut d = Delivery::default();
    for line in text.lines() {
        let (key, value) = match line.split_once(' ') {
            Some((k, v)) => (k, v.trim_end()),
            None => (line.trim_end(), ""),
        };
        let v = value.to_string();
        match key {
            "name" => d.name = Some(v),
            "version" => d.version = v,
            "rc" => d.rc = strtol(value),
            "python" => d.python = v,
            "python_compact" => d.python_compact = v,
            "platform" => {
                d.platform = value
                    .split(' ')
                    .filter(|w| !w.is_empty())
                    .nth(3)
                    .unwrap_or_default()
                    .to_string()
            }
            "arch" => d.arch = v,
            "release_name" => d.release_name = v,
            "release_fmt" => d.release_fmt = v,
            "build_number" => d.build_number = v,
            _ => {}
        }
    }
    d
}

/// Upstream's order: rc descending, release platform ascending, python descending. (Upstream's
/// comparator never says "greater" for python, but its input is already python-descending,
/// so that is the order it produces; a stable sort with a total order gives the same.)
pub fn sort(deliveries: &mut [Delivery]) {
    deliveries.sort_by(|a, b| -> Ordering {
        b.rc.cmp(&a.rc)
            .then_with(|| a.platform.cmp(&b.platform))
            .then_with(|| python_number(b).cmp(&python_number(a)))
    });
}

/// The highest `rc` of all (upstream's "latest").
pub fn latest_rc(deliveries: &[Delivery]) -> i64 {
    deliveries.iter().map(|d| d.rc).max().unwrap_or(0).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_meta_lines() {
        let d = parse(
            "name pkg\nversion 1.0.0\nrc 2x\npython 3.12\npython_compact 312\n\
             platform Linux linux-64 Linux linux\narch x86_64\nrelease_name R2  \nunknown k v\n",
        );
        assert_eq!(d.name.as_deref(), Some("pkg"));
        assert_eq!(d.rc, 2);
        assert_eq!(d.platform, "linux");
        assert_eq!(d.release_name, "R2");
    }

    #[test]
    fn order_is_rc_desc_platform_asc_python_desc() {
        let mk = |rc, plat: &str, py: &str| Delivery {
            name: Some("n".into()),
            rc,
            platform: plat.into(),
            python_compact: py.into(),
            release_name: format!("{rc}-{plat}-{py}"),
            ..Delivery::default()
        };
        let mut v = vec![
            mk(1, "linux", "312"),
            mk(2, "macos", "311"),
            mk(2, "linux", "311"),
            mk(2, "linux", "312"),
        ];
        sort(&mut v);
        let names: Vec<&str> = v.iter().map(|d| d.release_name.as_str()).collect();
        assert_eq!(
            names,
            ["2-linux-312", "2-linux-311", "2-macos-311", "1-linux-312"]
        );
        assert_eq!(latest_rc(&v), 2);
    }
}
