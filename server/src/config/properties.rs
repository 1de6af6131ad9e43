//! A Java `.properties` reader, enough for Kafka's `server.properties`.
//!
//! Follows `java.util.Properties.load`: `#` and `!` start comment lines; a key
//! ends at the first unescaped `=`, `:` or whitespace; a natural line ending in
//! an odd number of backslashes continues on the next line; `\t \n \r \f \uXXXX`
//! are escapes and any other escaped character stands for itself. One
//! difference, as Kafka users expect: trailing whitespace of a value is
//! trimmed (Java keeps it, which turns `num.partitions=3 ` into a parse error).
//! Each property remembers the line it started on for error messages.

use super::error::{ConfigError, Origin};

/// One `key=value` entry and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Key after unescaping.
    pub key: String,
    /// Value after unescaping and trimming.
    pub value: String,
    /// The line or override that set it.
    pub origin: Origin,
}

/// Parses properties text. `source` names the file in error messages.
pub fn parse_properties(text: &str, source: &str) -> Result<Vec<Property>, ConfigError> {
    let mut properties = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((index, first_line)) = lines.next() {
        let origin = Origin::File {
            source: source.to_owned(),
            line: index + 1,
        };
        let trimmed = first_line.trim_start_matches(is_properties_whitespace);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        // Join continuation lines into one logical line.
        let mut logical = String::from(trimmed);
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => {
                    logical.push_str(next.trim_start_matches(is_properties_whitespace));
                }
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical, &origin)?;
        if key.is_empty() {
            return Err(ConfigError::Syntax {
                origin,
                reason: "line has a value but no key",
            });
        }
        properties.push(Property {
            key,
            value: value.trim_end().to_owned(),
            origin,
        });
    }
    Ok(properties)
}

fn is_properties_whitespace(character: char) -> bool {
    matches!(character, ' ' | '\t' | '\u{c}')
}

/// True when the line ends in an odd number of backslashes.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits a logical line into unescaped key and value.
fn split_key_value(line: &str, origin: &Origin) -> Result<(String, String), ConfigError> {
    let mut characters = line.chars().peekable();
    let mut key = String::new();
    while let Some(&character) = characters.peek() {
        if character == '=' || character == ':' || is_properties_whitespace(character) {
            break;
        }
        characters.next();
        if character == '\\' {
            key.push(unescape(&mut characters, origin)?);
        } else {
            key.push(character);
        }
    }
    // Separator: whitespace, then at most one '=' or ':', then whitespace.
    while characters
        .next_if(|&c| is_properties_whitespace(c))
        .is_some()
    {}
    if characters.next_if(|&c| c == '=' || c == ':').is_some() {
        while characters
            .next_if(|&c| is_properties_whitespace(c))
            .is_some()
        {}
    }
    let mut value = String::new();
    while let Some(character) = characters.next() {
        if character == '\\' {
            value.push(unescape(&mut characters, origin)?);
        } else {
            value.push(character);
        }
    }
    Ok((key, value))
}

/// Decodes the character after a backslash.
fn unescape(
    characters: &mut std::iter::Peekable<std::str::Chars<'_>>,
    origin: &Origin,
) -> Result<char, ConfigError> {
    let Some(escaped) = characters.next() else {
        // A lone trailing backslash left by a continuation at end of file.
        return Ok('\\');
    };
    Ok(match escaped {
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        'f' => '\u{c}',
        'u' => {
            let hex: String = characters.by_ref().take(4).collect();
            let invalid = || ConfigError::Syntax {
                origin: origin.clone(),
                reason: "malformed \\uXXXX escape",
            };
            if hex.len() != 4 {
                return Err(invalid());
            }
            let code = u32::from_str_radix(&hex, 16).map_err(|_| invalid())?;
            char::from_u32(code).ok_or_else(invalid)?
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, usize)> {
        parse_properties(text, "test.properties")
            .expect("parses")
            .into_iter()
            .map(|property| {
                let Origin::File { line, .. } = property.origin else {
                    panic!("file origin expected");
                };
                (property.key, property.value, line)
            })
            .collect()
    }

    fn pair(key: &str, value: &str, line: usize) -> (String, String, usize) {
        (key.to_owned(), value.to_owned(), line)
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# comment\n! also comment\n\n  a=1\nb : 2\nc 3\nd=\ne\n";
        assert_eq!(
            pairs(text),
            vec![
                pair("a", "1", 4),
                pair("b", "2", 5),
                pair("c", "3", 6),
                pair("d", "", 7),
                pair("e", "", 8),
            ]
        );
    }

    #[test]
    fn trailing_whitespace_is_trimmed_and_inner_kept() {
        assert_eq!(pairs("k = a b \t \r\n"), vec![pair("k", "a b", 1)]);
    }

    #[test]
    fn value_may_contain_separators() {
        assert_eq!(
            pairs("listeners=PLAINTEXT://h:9092"),
            vec![pair("listeners", "PLAINTEXT://h:9092", 1)]
        );
    }

    #[test]
    fn continuation_lines_join_and_keep_first_line_number() {
        let text = "x=1\nlog.dirs=/a,\\\n    /b,\\\n  /c\ny=2";
        assert_eq!(
            pairs(text),
            vec![
                pair("x", "1", 1),
                pair("log.dirs", "/a,/b,/c", 2),
                pair("y", "2", 5)
            ]
        );
    }

    #[test]
    fn escaped_backslash_is_not_a_continuation() {
        assert_eq!(
            pairs("p=C:\\\\dir\\\\\nq=1"),
            vec![pair("p", "C:\\dir\\", 1), pair("q", "1", 2)]
        );
    }

    #[test]
    fn escapes_in_keys_and_values() {
        assert_eq!(pairs("a\\=b=c\\u0041\\td"), vec![pair("a=b", "cA\td", 1)]);
    }

    #[test]
    fn malformed_unicode_escape_names_the_line() {
        let error = parse_properties("ok=1\nbad=\\u12", "f").expect_err("malformed");
        assert_eq!(error.to_string(), "f:2: malformed \\uXXXX escape");
    }

    #[test]
    fn value_without_key_is_an_error() {
        assert!(matches!(
            parse_properties("=5", "f"),
            Err(ConfigError::Syntax { .. })
        ));
    }
}
