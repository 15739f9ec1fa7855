//! Splitting a SQL script into statements the way the `mysql` client does:
//! `DELIMITER` lines, quotes (`'`, `"`, `` ` ``, backslash escapes inside
//! `'` and `"`), and comments (`-- `, `#`, `/* */`). Comments outside
//! statements are dropped. Used for the schema and post files, whose
//! statements span lines; data files are one statement per line.

/// Splits `script` into statements (without their delimiters).
pub(crate) fn split(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut delim = ";".to_owned();
    let mut cur = String::new();
    let bytes = script.as_bytes();
    let mut i = 0;
    let at_line_start = |cur: &str| cur.trim().is_empty();
    while i < bytes.len() {
        // DELIMITER only at the start of a statement.
        if at_line_start(&cur) && (i == 0 || bytes[i - 1] == b'\n') {
            let line_end = script[i..].find('\n').map_or(script.len(), |n| i + n);
            let line = script[i..line_end].trim();
            if line.len() > 10 && line[..10].eq_ignore_ascii_case("delimiter ") {
                delim = line[10..].trim().to_owned();
                cur.clear();
                i = line_end + 1;
                continue;
            }
        }
        let c = bytes[i];
        match c {
            b'\'' | b'"' | b'`' => {
                let start = i;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\\' && c != b'`' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == c {
                        if i + 1 < bytes.len() && bytes[i + 1] == c {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                cur.push_str(&script[start..i]);
            }
            b'-' if script[i..].starts_with("-- ") || script[i..].starts_with("--\n") => {
                let end = script[i..].find('\n').map_or(script.len(), |n| i + n);
                if !at_line_start(&cur) {
                    cur.push_str(&script[i..end]);
                }
                i = end;
            }
            b'#' => {
                let end = script[i..].find('\n').map_or(script.len(), |n| i + n);
                if !at_line_start(&cur) {
                    cur.push_str(&script[i..end]);
                }
                i = end;
            }
            b'/' if script[i..].starts_with("/*") && !script[i..].starts_with("/*!") => {
                let end = script[i + 2..]
                    .find("*/")
                    .map_or(script.len(), |n| i + 2 + n + 2);
                if !at_line_start(&cur) {
                    cur.push_str(&script[i..end]);
                }
                i = end;
            }
            _ if script[i..].starts_with(delim.as_str()) => {
                let stmt = cur.trim();
                if !stmt.is_empty() {
                    out.push(stmt.to_owned());
                }
                cur.clear();
                i += delim.len();
            }
            _ => {
                let ch_len = script[i..].chars().next().map_or(1, char::len_utf8);
                cur.push_str(&script[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    let stmt = cur.trim();
    if !stmt.is_empty() {
        out.push(stmt.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_client() {
        let script = "-- header\nSET NAMES utf8mb4;\nCREATE TABLE `a;b` (\n  `x` int COMMENT 'semi; colon \\' quote',\n  y varchar(3) DEFAULT \"q;\"\n);\n\
DELIMITER ;;\nCREATE TRIGGER t BEFORE UPDATE ON x FOR EACH ROW BEGIN\n  SET NEW.a = 1; -- inner; comment\n  SET NEW.b = 'it''s';\nEND ;;\nDELIMITER ;\n# trailing\nSELECT 1;\n";
        let s = split(script);
        assert_eq!(s.len(), 4, "{s:#?}");
        assert_eq!(s[0], "SET NAMES utf8mb4");
        assert!(
            s[1].starts_with("CREATE TABLE `a;b`") && s[1].ends_with(')'),
            "{}",
            s[1]
        );
        assert!(
            s[2].starts_with("CREATE TRIGGER")
                && s[2].contains("SET NEW.a = 1;")
                && s[2].ends_with("END"),
            "{}",
            s[2]
        );
        assert_eq!(s[3], "SELECT 1");
    }
}
