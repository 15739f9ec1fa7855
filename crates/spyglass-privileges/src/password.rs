//! Random temporary passwords.

use spyglass_db::Secret;

use crate::Error;

/// Letters and digits without look-alikes (no `0O1lI`), plus a few symbols
/// that need no quoting in a shell or a config file.
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789-_.+";

/// A random password of `len` characters from the operating system's
/// generator (about 5.9 bits a character: 20 characters give ~118 bits). It
/// always has a lower, an upper case letter, a digit and a symbol, so it
/// passes `validate_password` policies at their MEDIUM level.
pub fn generate(len: usize) -> Result<Secret, Error> {
    let len = len.max(12);
    loop {
        let mut bytes = vec![0u8; len];
        getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
        // Rejection sampling: no modulo bias.
        let limit = 256 - (256 % ALPHABET.len());
        let mut s = String::with_capacity(len);
        let mut pool = bytes.into_iter();
        while s.len() < len {
            let b = match pool.next() {
                Some(b) => b as usize,
                None => {
                    let mut one = [0u8; 1];
                    getrandom::fill(&mut one).map_err(|e| Error::Random(e.to_string()))?;
                    one[0] as usize
                }
            };
            if b < limit {
                s.push(ALPHABET[b % ALPHABET.len()] as char);
            }
        }
        let classes = [
            s.chars().any(|c| c.is_ascii_lowercase()),
            s.chars().any(|c| c.is_ascii_uppercase()),
            s.chars().any(|c| c.is_ascii_digit()),
            s.chars().any(|c| "-_.+".contains(c)),
        ];
        if classes.iter().all(|x| *x) {
            return Ok(Secret::new(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strong_and_different() {
        let a = generate(20).unwrap();
        let b = generate(20).unwrap();
        assert_eq!(a.expose().len(), 20);
        assert_ne!(a, b);
        assert!(a.expose().bytes().all(|c| ALPHABET.contains(&c)));
    }
}
