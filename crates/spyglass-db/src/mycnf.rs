//! The `[client]` section of a MySQL option file (`~/.my.cnf`).
//!
//! Follows <https://dev.mysql.com/doc/refman/8.0/en/option-files.html>: `#` and
//! `;` comments, `key=value` with optional quotes, `-` and `_` equivalent in
//! keys, backslash escapes inside quoted values. `!include` directives are not
//! followed.

use std::collections::BTreeMap;

/// Values of the `[client]` section, keys normalised to `_`.
pub fn parse_client_section(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut in_client = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || line.starts_with('!')
        {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_client = section.trim().eq_ignore_ascii_case("client");
            continue;
        }
        if !in_client {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        out.insert(key.replace('-', "_").to_ascii_lowercase(), unquote(value));
    }
    out
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            let inner = &v[1..v.len() - 1];
            let mut s = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('s') => s.push(' '),
                        Some(o) => s.push(o),
                        None => s.push('\\'),
                    }
                } else {
                    s.push(c);
                }
            }
            return s;
        }
    }
    // Unquoted values end at a comment.
    match v.find(" #") {
        Some(i) => v[..i].trim_end().to_owned(),
        None => v.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_client_section_only() {
        let m = parse_client_section(
            "[mysqld]\nport=1\n[client]\nuser = alice\npassword=\"p#w\\\"d\"\nport=3307 # comment\nsocket='/run/m.sock'\n[mysql]\nuser=bob\n",
        );
        assert_eq!(m.get("user").map(String::as_str), Some("alice"));
        assert_eq!(m.get("password").map(String::as_str), Some("p#w\"d"));
        assert_eq!(m.get("port").map(String::as_str), Some("3307"));
        assert_eq!(m.get("socket").map(String::as_str), Some("/run/m.sock"));
    }
}
