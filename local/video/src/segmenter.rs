//! Groups the transmuxer's fMP4 fragments (one moof+mdat per frame) into HLS segments
//! that each start on a video keyframe.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use scuffle_transmuxer::{MediaSegment, MediaType};

/// A finished HLS media segment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    /// Concatenated moof+mdat fragments.
    pub data: Bytes,
    /// Media duration from its first keyframe to the next segment's.
    pub duration: Duration,
    /// Wall clock when its first frame arrived.
    pub program_date_time: DateTime<Utc>,
}

#[derive(Debug)]
struct OpenSegment {
    data: BytesMut,
    /// Video decode time of its first keyframe, in video timescale ticks.
    start: u64,
    program_date_time: DateTime<Utc>,
}

/// Cuts a new segment at the first video keyframe after at least `target` of media time.
#[derive(Debug)]
pub(crate) struct Segmenter {
    target: Duration,
    /// Video track ticks per second.
    video_timescale: u32,
    open: Option<OpenSegment>,
    last_video: Option<u64>,
    last_video_step: u64,
}

impl Segmenter {
    pub(crate) fn new(target: Duration, video_timescale: u32) -> Self {
        Self {
            target,
            video_timescale: video_timescale.max(1),
            open: None,
            last_video: None,
            last_video_step: 0,
        }
    }

    /// Adds one fragment; returns the segment it closed, if any.
    pub(crate) fn push(
        &mut self,
        fragment: &MediaSegment,
        arrived_at: DateTime<Utc>,
    ) -> Option<Segment> {
        let mut closed = None;
        if fragment.ty == MediaType::Video {
            if let Some(last) = self.last_video
                && fragment.timestamp > last
            {
                self.last_video_step = fragment.timestamp - last;
            }
            self.last_video = Some(fragment.timestamp);

            if fragment.keyframe {
                let due = self.open.as_ref().is_none_or(|open| {
                    self.ticks_to_duration(fragment.timestamp.saturating_sub(open.start))
                        >= self.target
                });
                if due {
                    closed = self.close(fragment.timestamp);
                    self.open = Some(OpenSegment {
                        data: BytesMut::new(),
                        start: fragment.timestamp,
                        program_date_time: arrived_at,
                    });
                }
            }
        }
        // Fragments before the first keyframe cannot be decoded on their own: dropped.
        if let Some(open) = &mut self.open {
            open.data.extend_from_slice(&fragment.data);
        }
        closed
    }

    /// Closes the open segment at the end of the stream (its last frame included).
    pub(crate) fn finish(&mut self) -> Option<Segment> {
        let end = self.last_video? + self.last_video_step;
        self.close(end)
    }

    fn close(&mut self, end: u64) -> Option<Segment> {
        let open = self.open.take()?;
        if open.data.is_empty() {
            return None;
        }
        Some(Segment {
            data: open.data.freeze(),
            duration: self.ticks_to_duration(end.saturating_sub(open.start)),
            program_date_time: open.program_date_time,
        })
    }

    fn ticks_to_duration(&self, ticks: u64) -> Duration {
        let timescale = u64::from(self.video_timescale);
        Duration::from_secs(ticks / timescale)
            + Duration::from_nanos((ticks % timescale) * 1_000_000_000 / timescale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 fps with the transmuxer's timescale of fps × 1000: 1000 ticks a frame.
    const TIMESCALE: u32 = 30_000;

    fn video(frame: u64, keyframe: bool) -> MediaSegment {
        MediaSegment {
            data: Bytes::from(vec![b'v'; 10]),
            ty: MediaType::Video,
            keyframe,
            timestamp: frame * 1000,
        }
    }

    fn audio() -> MediaSegment {
        MediaSegment {
            data: Bytes::from_static(b"a"),
            ty: MediaType::Audio,
            keyframe: false,
            timestamp: 0,
        }
    }

    fn feed(segmenter: &mut Segmenter, frames: std::ops::Range<u64>, gop: u64) -> Vec<Segment> {
        let mut closed = Vec::new();
        for frame in frames {
            closed.extend(segmenter.push(&audio(), Utc::now()));
            closed.extend(segmenter.push(&video(frame, frame % gop == 0), Utc::now()));
        }
        closed
    }

    #[test]
    fn cuts_at_each_keyframe_once_the_target_has_passed() {
        let mut segmenter = Segmenter::new(Duration::from_secs(1), TIMESCALE);
        // One-second GOPs: every keyframe closes a segment of exactly 1 s.
        let closed = feed(&mut segmenter, 0..91, 30);
        assert_eq!(closed.len(), 3);
        for segment in &closed {
            assert_eq!(segment.duration, Duration::from_secs(1));
            // 30 video fragments plus the audio between them.
            assert_eq!(segment.data.len(), 30 * 10 + 30);
        }
    }

    #[test]
    fn keyframes_before_the_target_do_not_cut() {
        let mut segmenter = Segmenter::new(Duration::from_secs(1), TIMESCALE);
        // Half-second GOPs: segments span two of them.
        let closed = feed(&mut segmenter, 0..61, 15);
        let durations: Vec<_> = closed.iter().map(|s| s.duration).collect();
        assert_eq!(durations, vec![Duration::from_secs(1); 2]);
    }

    #[test]
    fn drops_fragments_before_the_first_keyframe() {
        let mut segmenter = Segmenter::new(Duration::from_secs(1), TIMESCALE);
        assert_eq!(segmenter.push(&audio(), Utc::now()), None);
        assert_eq!(segmenter.push(&video(0, false), Utc::now()), None);
        assert_eq!(segmenter.finish(), None);
    }

    #[test]
    fn finish_closes_the_partial_segment_including_its_last_frame() {
        let mut segmenter = Segmenter::new(Duration::from_secs(1), TIMESCALE);
        let closed = feed(&mut segmenter, 0..45, 30);
        assert_eq!(closed.len(), 1);
        let tail = segmenter.finish().unwrap();
        assert_eq!(tail.duration, Duration::from_millis(500));
        assert_eq!(segmenter.finish(), None);
    }

    #[test]
    fn program_date_time_is_the_arrival_of_the_first_keyframe() {
        let mut segmenter = Segmenter::new(Duration::from_secs(1), TIMESCALE);
        let first = Utc::now();
        segmenter.push(&video(0, true), first);
        segmenter.push(&video(1, false), first + chrono::Duration::milliseconds(33));
        let closed = segmenter.push(&video(30, true), first + chrono::Duration::seconds(1));
        assert_eq!(closed.unwrap().program_date_time, first);
    }
}
