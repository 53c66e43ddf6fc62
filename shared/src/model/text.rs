//! Text fields: trimmed, length-checked, free of control characters.

use crate::error::FieldError;

/// Trims `raw` and checks it has `min..=max` characters and no control characters
/// (newlines and tabs are allowed where `multiline`).
pub fn parse_text(
    field: &str,
    raw: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, FieldError> {
    let text = raw.trim();
    let len = text.chars().count();
    if len < min {
        return Err(FieldError::new(
            field,
            if min == 1 {
                "must not be empty".to_string()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if len > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters (got {len})"),
        ));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_only_text_is_rejected() {
        assert!(parse_text("title", "   ", 1, 200, false).is_err());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let title = "é".repeat(200);
        assert_eq!(parse_text("title", &title, 1, 200, false).unwrap(), title);
        assert!(parse_text("title", &"é".repeat(201), 1, 200, false).is_err());
    }

    #[test]
    fn control_characters_are_rejected() {
        assert!(parse_text("title", "a\u{0007}b", 1, 200, false).is_err());
        assert!(parse_text("title", "a\nb", 1, 200, false).is_err());
        assert!(parse_text("description", "a\nb", 0, 5000, true).is_ok());
    }

    #[test]
    fn text_is_trimmed() {
        assert_eq!(parse_text("title", "  Hi  ", 1, 200, false).unwrap(), "Hi");
    }
}
