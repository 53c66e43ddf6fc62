//! Text fields: trimmed, length-checked, free of control characters, of bidi
//! controls and of text that is only invisible.

use crate::error::FieldError;

/// The rules of [`parse_text`] as JSON Schema patterns, for the API documents: no
/// control characters (newlines and tabs allowed where multiline) and, where text is
/// required, at least one character that is not whitespace. The server trims first, so
/// it also accepts surrounding whitespace these patterns exclude.
pub mod pattern {
    pub const LINE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
    pub const LINE_REQUIRED: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
    pub const MULTILINE: &str = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$";
    pub const MULTILINE_REQUIRED: &str = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$";
    /// A ULID, as ids are (Crockford base 32; lowercase is accepted too).
    pub const ULID: &str = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$";
    /// A user id, as [`crate::model::parse_user_id`] accepts it.
    pub const USER_ID: &str = "^[A-Za-z0-9_.@:|-]{1,128}$";
}

/// Bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) and the
/// directional marks (U+200E, U+200F, U+061C): removed, since they can make a message
/// display as something other than what was typed ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that draw nothing: zero-width space and joiners, word joiner and the
/// invisible operators, BOM, soft hyphen, Hangul fillers, variation selectors. Kept
/// inside text (emoji sequences need the joiner), but text of only these is empty.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'
            | '\u{180E}'
            | '\u{FE00}'..='\u{FE0F}')
}

/// Removes bidi controls, trims, and checks the text has `min..=max` characters, no
/// control characters (newlines and tabs are allowed where `multiline`), and, when
/// `min > 0`, something visible.
pub fn parse_text(
    field: &str,
    raw: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, FieldError> {
    let cleaned: String = raw.chars().filter(|c| !is_bidi_control(*c)).collect();
    let text = cleaned.trim_matches(is_invisible);
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
    fn invisible_only_text_is_empty() {
        for raw in [
            "\u{200B}\u{200B}",
            "\u{FEFF} \u{2060}",
            "\u{200D}",
            "\u{3164}",
        ] {
            let err = parse_text("message", raw, 1, 500, false).unwrap_err();
            assert_eq!(err.message, "must not be empty", "{raw:?}");
        }
        // Joiners inside text are kept: they build emoji sequences.
        let family = "\u{1F468}\u{200D}\u{1F469}";
        assert_eq!(
            parse_text("message", family, 1, 500, false).unwrap(),
            family
        );
        assert_eq!(
            parse_text("message", "\u{200B}hi\u{200B}", 1, 500, false).unwrap(),
            "hi"
        );
    }

    #[test]
    fn bidi_controls_are_removed() {
        let raw = "abc\u{202E}fed\u{202C} \u{2066}x\u{2069}\u{200F}";
        assert_eq!(
            parse_text("message", raw, 1, 500, false).unwrap(),
            "abcfed x"
        );
        assert!(parse_text("message", "\u{202E}\u{202C}", 1, 500, false).is_err());
    }

    #[test]
    fn text_is_trimmed() {
        assert_eq!(parse_text("title", "  Hi  ", 1, 200, false).unwrap(), "Hi");
    }
}
