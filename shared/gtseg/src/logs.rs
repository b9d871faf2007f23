//! Text from the data in logs: ids, worker ids and reasons are written with their control
//! characters escaped, so that no value can forge a log line or carry terminal escapes.

use std::fmt;

/// `text`, with every control character written as its escape (`\n`, `\u{1b}`, ...).
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            Escaped("a\nb\r\u{1b}[31mé\t").to_string(),
            "a\\nb\\r\\u{1b}[31mé\\t"
        );
        assert_eq!(Escaped("plain-id_0.png").to_string(), "plain-id_0.png");
    }
}
