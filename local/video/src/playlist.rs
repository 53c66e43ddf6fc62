//! The text of a live HLS media playlist (RFC 8216, fMP4 segments).

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Utc};

/// One segment as the playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListedSegment {
    pub sequence: u64,
    /// Number of the init segment (`init-<n>.mp4`) it decodes with.
    pub init: u32,
    pub duration_seconds: f64,
    pub program_date_time: DateTime<Utc>,
    /// First segment of a new publish session after earlier ones.
    pub discontinuity: bool,
}

/// A live media playlist's window of segments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MediaPlaylist {
    pub target_duration: u64,
    /// Number of discontinuities that slid out of the window (`EXT-X-DISCONTINUITY-SEQUENCE`).
    pub discontinuity_sequence: u64,
    pub segments: Vec<ListedSegment>,
}

impl MediaPlaylist {
    /// Renders the playlist; a playback token is carried into every URI it lists.
    pub(crate) fn render(&self, token: Option<&str>) -> String {
        let query = token
            .map(|t| format!("?token={}", percent_encode(t)))
            .unwrap_or_default();
        let media_sequence = self.segments.first().map_or(0, |s| s.sequence);

        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(text, "#EXTM3U");
        let _ = writeln!(text, "#EXT-X-VERSION:7");
        let _ = writeln!(text, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let _ = writeln!(text, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                text,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        let _ = writeln!(text, "#EXT-X-INDEPENDENT-SEGMENTS");

        let mut current_init = None;
        for segment in &self.segments {
            if segment.discontinuity && current_init.is_some() {
                let _ = writeln!(text, "#EXT-X-DISCONTINUITY");
            }
            if current_init != Some(segment.init) {
                let _ = writeln!(text, "#EXT-X-MAP:URI=\"init-{}.mp4{query}\"", segment.init);
                current_init = Some(segment.init);
            }
            let _ = writeln!(
                text,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                segment
                    .program_date_time
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
            );
            let _ = writeln!(text, "#EXTINF:{:.3},", segment.duration_seconds);
            let _ = writeln!(text, "seg-{}.m4s{query}", segment.sequence);
        }
        text
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn segment(sequence: u64, init: u32, discontinuity: bool) -> ListedSegment {
        ListedSegment {
            sequence,
            init,
            duration_seconds: 1.0,
            program_date_time: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
                + chrono::Duration::seconds(sequence as i64),
            discontinuity,
        }
    }

    #[test]
    fn renders_a_live_window() {
        let playlist = MediaPlaylist {
            target_duration: 1,
            discontinuity_sequence: 0,
            segments: vec![segment(4, 1, false), segment(5, 1, false)],
        };
        assert_eq!(
            playlist.render(None),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-TARGETDURATION:1\n\
             #EXT-X-MEDIA-SEQUENCE:4\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"init-1.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:09.000Z\n\
             #EXTINF:1.000,\n\
             seg-4.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:10.000Z\n\
             #EXTINF:1.000,\n\
             seg-5.m4s\n"
        );
    }

    #[test]
    fn a_new_session_gets_a_discontinuity_and_a_new_map() {
        let playlist = MediaPlaylist {
            target_duration: 2,
            discontinuity_sequence: 3,
            segments: vec![
                segment(7, 2, false),
                segment(8, 3, true),
                segment(9, 3, false),
            ],
        };
        let text = playlist.render(None);
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:3\n"));
        let body: Vec<_> = text
            .lines()
            .skip_while(|l| !l.starts_with("#EXT-X-MAP"))
            .filter(|l| !l.starts_with("#EXT-X-PROGRAM-DATE-TIME") && !l.starts_with("#EXTINF"))
            .collect();
        assert_eq!(
            body,
            vec![
                "#EXT-X-MAP:URI=\"init-2.mp4\"",
                "seg-7.m4s",
                "#EXT-X-DISCONTINUITY",
                "#EXT-X-MAP:URI=\"init-3.mp4\"",
                "seg-8.m4s",
                "seg-9.m4s",
            ]
        );
    }

    #[test]
    fn a_discontinuity_at_the_window_start_is_not_repeated() {
        // It slid out with the segments before it and is counted by the discontinuity sequence.
        let playlist = MediaPlaylist {
            target_duration: 1,
            discontinuity_sequence: 1,
            segments: vec![segment(8, 3, true)],
        };
        assert!(!playlist.render(None).contains("#EXT-X-DISCONTINUITY\n"));
    }

    #[test]
    fn the_token_is_carried_into_every_uri() {
        let playlist = MediaPlaylist {
            target_duration: 1,
            discontinuity_sequence: 0,
            segments: vec![segment(0, 1, false), segment(1, 1, false)],
        };
        let text = playlist.render(Some("a.b c/+="));
        assert!(text.contains("#EXT-X-MAP:URI=\"init-1.mp4?token=a.b%20c%2F%2B%3D\"\n"));
        assert!(text.contains("seg-0.m4s?token=a.b%20c%2F%2B%3D\n"));
        assert!(text.contains("seg-1.m4s?token=a.b%20c%2F%2B%3D\n"));
    }
}
