//! Quoting identifiers and string literals for MySQL and MariaDB.
//!
//! Identifiers are always backquoted (a backquote inside is doubled), which is
//! valid whatever `ANSI_QUOTES` says. String literals escape backslash, quote,
//! NUL, newline, carriage return and Ctrl-Z, so they are valid with and
//! without `NO_BACKSLASH_ESCAPES` as long as no backslash is present; when
//! `NO_BACKSLASH_ESCAPES` may be set, use hex literals for arbitrary bytes.
//! See <https://dev.mysql.com/doc/refman/8.0/en/string-literals.html>.

/// `` `name` `` with inner backquotes doubled.
pub fn ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('`');
    for c in name.chars() {
        if c == '`' {
            s.push('`');
        }
        s.push(c);
    }
    s.push('`');
    s
}

/// `` `db`.`table` ``.
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", ident(db), ident(table))
}

/// `'text'` with `\`, `'`, NUL, `\n`, `\r` and Ctrl-Z escaped.
pub fn string(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('\'');
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\'' => s.push_str("\\'"),
            '\0' => s.push_str("\\0"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\x1a' => s.push_str("\\Z"),
            c => s.push(c),
        }
    }
    s.push('\'');
    s
}

/// `'user'@'host'`, the way account names are written in GRANT and CREATE USER.
pub fn account(user: &str, host: &str) -> String {
    format!("{}@{}", string(user), string(host))
}

/// A word for a POSIX shell line (`sh -c`, a remote ssh command, a crontab
/// line): left as it is when it holds only characters no shell treats
/// specially, else single-quoted with each `'` written as `'\''`. Inside
/// single quotes nothing is special, so this is exact for any text.
pub fn shell(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(ident("common_lab"), "`common_lab`");
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(ident("~external_raw"), "`~external_raw`");
        assert_eq!(qualified("d b", "#t"), "`d b`.`#t`");
    }

    #[test]
    fn strings() {
        assert_eq!(string("it's"), r"'it\'s'");
        assert_eq!(string(r"a\b"), r"'a\\b'");
        assert_eq!(string("nul\0z\x1a"), r"'nul\0z\Z'");
        assert_eq!(account("bob", "%"), "'bob'@'%'");
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell("/usr/bin/spyglass-admin"), "/usr/bin/spyglass-admin");
        assert_eq!(shell("a b"), "'a b'");
        assert_eq!(shell(""), "''");
        assert_eq!(shell("it's"), r"'it'\''s'");
        assert_eq!(shell("$HOME;rm"), "'$HOME;rm'");
        assert_eq!(shell("*"), "'*'");
    }
}
