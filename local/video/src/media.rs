//! A channel's recent media in memory: its init segments and the live window of
//! segments the playlist lists, continued across publish sessions.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::playlist::{ListedSegment, MediaPlaylist};
use crate::segmenter::Segment;

#[derive(Debug)]
struct StoredSegment {
    listed: ListedSegment,
    data: Bytes,
}

/// Per-channel store behind the HLS routes.
#[derive(Debug)]
pub(crate) struct ChannelMedia {
    capacity: usize,
    inits: VecDeque<(u32, Bytes)>,
    segments: VecDeque<StoredSegment>,
    next_sequence: u64,
    next_init: u32,
    /// Discontinuities no longer tagged in the playlist (see `MediaPlaylist`).
    discontinuities_passed: u64,
    discontinuity_pending: bool,
    /// Only grows, as RFC 8216 wants a stable target duration.
    target_duration: u64,
}

impl ChannelMedia {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inits: VecDeque::new(),
            segments: VecDeque::new(),
            next_sequence: 0,
            next_init: 1,
            discontinuities_passed: 0,
            discontinuity_pending: false,
            target_duration: 1,
        }
    }

    /// Adds the init segment of a new publish session; returns its number.
    pub(crate) fn add_init(&mut self, data: Bytes) -> u32 {
        let number = self.next_init;
        self.next_init += 1;
        self.inits.push_back((number, data));
        if self.next_sequence > 0 {
            self.discontinuity_pending = true;
        }
        self.drop_unused_inits();
        number
    }

    /// Lists a segment of the latest session; returns its media sequence number.
    pub(crate) fn add_segment(&mut self, segment: &Segment) -> Option<u64> {
        let init = self.inits.back()?.0;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let duration_seconds = segment.duration.as_secs_f64();
        self.target_duration = self.target_duration.max(duration_seconds.round() as u64);
        self.segments.push_back(StoredSegment {
            listed: ListedSegment {
                sequence,
                init,
                duration_seconds,
                program_date_time: segment.program_date_time,
                discontinuity: std::mem::take(&mut self.discontinuity_pending),
            },
            data: segment.data.clone(),
        });
        while self.segments.len() > self.capacity {
            if self
                .segments
                .pop_front()
                .is_some_and(|s| s.listed.discontinuity)
            {
                self.discontinuities_passed += 1;
            }
        }
        self.drop_unused_inits();
        Some(sequence)
    }

    pub(crate) fn playlist(&self) -> Option<MediaPlaylist> {
        if self.segments.is_empty() {
            return None;
        }
        Some(MediaPlaylist {
            target_duration: self.target_duration,
            // A discontinuity on the first listed segment is counted here, not tagged.
            discontinuity_sequence: self.discontinuities_passed
                + u64::from(self.first_is_discontinuity()),
            segments: self.segments.iter().map(|s| s.listed.clone()).collect(),
        })
    }

    pub(crate) fn init(&self, number: u32) -> Option<Bytes> {
        self.inits
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, data)| data.clone())
    }

    pub(crate) fn segment(&self, sequence: u64) -> Option<Bytes> {
        let first = self.segments.front()?.listed.sequence;
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        self.segments.get(index).map(|s| s.data.clone())
    }

    fn first_is_discontinuity(&self) -> bool {
        self.segments
            .front()
            .is_some_and(|s| s.listed.discontinuity)
    }

    /// Keeps the latest init and those a listed segment still refers to.
    fn drop_unused_inits(&mut self) {
        let oldest_used = self.segments.front().map(|s| s.listed.init);
        let latest = self.inits.back().map(|(n, _)| *n);
        self.inits
            .retain(|(n, _)| Some(*n) == latest || oldest_used.is_some_and(|oldest| *n >= oldest));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;

    fn segment(seconds: f64) -> Segment {
        Segment {
            data: Bytes::from_static(b"moof+mdat"),
            duration: Duration::from_secs_f64(seconds),
            program_date_time: Utc::now(),
        }
    }

    #[test]
    fn no_playlist_before_the_first_segment() {
        let mut media = ChannelMedia::new(3);
        assert!(media.playlist().is_none());
        assert_eq!(
            media.add_segment(&segment(1.0)),
            None,
            "a segment needs an init first"
        );
        media.add_init(Bytes::from_static(b"init"));
        assert!(media.playlist().is_none());
    }

    #[test]
    fn keeps_a_sliding_window() {
        let mut media = ChannelMedia::new(3);
        assert_eq!(media.add_init(Bytes::from_static(b"init")), 1);
        for _ in 0..5 {
            media.add_segment(&segment(1.0));
        }
        let playlist = media.playlist().unwrap();
        let sequences: Vec<_> = playlist.segments.iter().map(|s| s.sequence).collect();
        assert_eq!(sequences, vec![2, 3, 4]);
        assert!(media.segment(1).is_none());
        assert!(media.segment(4).is_some());
        assert!(media.segment(5).is_none());
        assert!(media.init(1).is_some());
    }

    #[test]
    fn target_duration_never_shrinks() {
        let mut media = ChannelMedia::new(2);
        media.add_init(Bytes::from_static(b"init"));
        media.add_segment(&segment(2.2));
        for _ in 0..3 {
            media.add_segment(&segment(1.0));
        }
        assert_eq!(media.playlist().unwrap().target_duration, 2);
    }

    #[test]
    fn a_reconnect_continues_the_sequence_with_a_discontinuity() {
        let mut media = ChannelMedia::new(4);
        media.add_init(Bytes::from_static(b"first"));
        media.add_segment(&segment(1.0));
        media.add_segment(&segment(1.0));
        assert_eq!(media.add_init(Bytes::from_static(b"second")), 2);
        assert_eq!(media.add_segment(&segment(1.0)), Some(2));
        media.add_segment(&segment(1.0));

        let playlist = media.playlist().unwrap();
        let listed: Vec<_> = playlist
            .segments
            .iter()
            .map(|s| (s.sequence, s.init, s.discontinuity))
            .collect();
        assert_eq!(
            listed,
            vec![(0, 1, false), (1, 1, false), (2, 2, true), (3, 2, false)]
        );
        assert_eq!(playlist.discontinuity_sequence, 0);

        // Sliding the first session out counts its discontinuity and drops its init.
        media.add_segment(&segment(1.0));
        media.add_segment(&segment(1.0));
        assert_eq!(media.playlist().unwrap().discontinuity_sequence, 1);
        assert!(media.init(1).is_none());
        media.add_segment(&segment(1.0));
        assert_eq!(media.playlist().unwrap().discontinuity_sequence, 1);
    }

    #[test]
    fn the_first_session_has_no_discontinuity() {
        let mut media = ChannelMedia::new(4);
        media.add_init(Bytes::from_static(b"first"));
        // A session that never produced a segment leaves nothing to be discontinuous with.
        media.add_init(Bytes::from_static(b"second"));
        media.add_segment(&segment(1.0));
        assert!(!media.playlist().unwrap().segments[0].discontinuity);
        assert!(media.init(1).is_none());
    }
}
