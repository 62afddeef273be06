//! pattern: jf's wildcard patterns. jf turns a pattern into a regular expression in which
//! `*` is `.*` (so it crosses `/`, and `**` means the same), a trailing `/` means "everything
//! under it", and every other character is literal. Matching is on the whole path.

#[derive(Debug, Clone)]
pub struct Pattern {
    /// The literal pieces between `*`s; `parts.len() - 1` wildcards.
    parts: Vec<String>,
}

impl Pattern {
    pub fn new(pattern: &str) -> Pattern {
        let mut text = pattern.to_string();
        if text.ends_with('/') {
            text.push('*');
        }
        Pattern {
            parts: text.split('*').map(str::to_string).collect(),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        let (first, rest) = match self.parts.split_first() {
            Some(x) => x,
            None => return path.is_empty(),
        };
        let Some(mut tail) = path.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return tail.is_empty();
        };
        for piece in middle {
            match tail.find(piece.as_str()) {
                Some(i) => tail = &tail[i + piece.len()..],
                None => return false,
            }
        }
        tail.len() >= last.len() && tail.ends_with(last.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn star_crosses_directories_and_the_rest_is_literal() {
        let p = |s: &str| Pattern::new(s);
        assert!(p("**").matches("delivery/a.yml"));
        assert!(p("*.yml").matches("a.yml") && p("*.yml").matches("sub/b.yml"));
        assert!(!p("*.yml").matches("a.yml.bak"));
        assert!(p("a*b*c").matches("abc") && p("a*b*c").matches("a/x/b/y/c"));
        assert!(!p("a*b*c").matches("acb"));
        assert!(p("x.whl").matches("x.whl") && !p("x.whl").matches("xywhl"));
        assert!(p("sub/").matches("sub/deep/f") && !p("sub/").matches("other/f"));
        assert!(!p("*aa*aa").matches("aaa") && p("*a*a").matches("aa"));
    }
}
