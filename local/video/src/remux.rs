//! RTMP media messages (FLV tag bodies) to an fMP4 init segment and HLS segments,
//! without transcoding.

use std::io::Cursor;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use scuffle_flv::audio::AudioData;
use scuffle_flv::audio::body::AudioTagBody;
use scuffle_flv::audio::body::legacy::LegacyAudioTagBody;
use scuffle_flv::audio::body::legacy::aac::AacAudioData;
use scuffle_flv::script::ScriptData;
use scuffle_flv::tag::{FlvTag, FlvTagData};
use scuffle_flv::video::VideoData;
use scuffle_transmuxer::{TransmuxResult, Transmuxer};

use crate::health::Tracks;
use crate::init_segment;
use crate::segmenter::{Segment, Segmenter};

/// The kind of an RTMP media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageKind {
    Audio,
    Video,
    /// AMF0 data message (`@setDataFrame` / `onMetaData`).
    Metadata,
}

/// What remuxing produced.
#[derive(Debug)]
pub(crate) enum Remuxed {
    Init { data: Bytes, tracks: Tracks },
    Segment(Segment),
}

/// Why a stream cannot be remuxed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemuxError {
    #[error("malformed FLV data: {0}")]
    Flv(#[from] scuffle_flv::error::FlvError),
    #[error("cannot remux: {0}")]
    Transmux(#[from] scuffle_transmuxer::TransmuxError),
    #[error("unsupported codecs {video}/{audio}: only H.264 video with AAC audio can be played")]
    UnsupportedCodecs { video: String, audio: String },
}

/// One publish session's remuxing state.
pub(crate) struct Remuxer {
    transmuxer: Transmuxer<'static>,
    segment_target: Duration,
    /// Created with the init segment, which gives the video timescale.
    segmenter: Option<Segmenter>,
    /// From the AAC AudioSpecificConfig: FLV headers always say "stereo" for AAC.
    audio_channels: Option<u8>,
}

/// `@setDataFrame` as an AMF0 string: RTMP encoders prefix `onMetaData` with it.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

impl Remuxer {
    pub(crate) fn new(segment_target: Duration) -> Self {
        Self {
            transmuxer: Transmuxer::new(),
            segment_target,
            segmenter: None,
            audio_channels: None,
        }
    }

    /// Feeds one RTMP media message; returns what it completed.
    pub(crate) fn push(
        &mut self,
        kind: MessageKind,
        timestamp_ms: u32,
        body: Bytes,
        arrived_at: DateTime<Utc>,
    ) -> Result<Vec<Remuxed>, RemuxError> {
        let data = match kind {
            MessageKind::Video => FlvTagData::Video(VideoData::demux(&mut Cursor::new(body))?),
            MessageKind::Audio => {
                let audio = AudioData::demux(&mut Cursor::new(body))?;
                if let AudioTagBody::Legacy(LegacyAudioTagBody::Aac(AacAudioData::SequenceHeader(
                    config,
                ))) = &audio.body
                    && let Ok(config) = scuffle_aac::PartialAudioSpecificConfig::parse(config)
                {
                    self.audio_channels = Some(config.channel_configuration);
                }
                FlvTagData::Audio(audio)
            }
            MessageKind::Metadata => {
                let body = body
                    .strip_prefix(SET_DATA_FRAME)
                    .map_or(body.clone(), |rest| body.slice_ref(rest));
                match ScriptData::demux(&mut Cursor::new(body)) {
                    Ok(script) => FlvTagData::ScriptData(script),
                    // Metadata only hints at the frame rate; the stream plays without it.
                    Err(error) => {
                        tracing::debug!(%error, "ignoring unreadable stream metadata");
                        return Ok(Vec::new());
                    }
                }
            }
        };
        self.transmuxer.add_tag(FlvTag {
            timestamp_ms,
            stream_id: 0,
            data,
        });
        self.drain(arrived_at)
    }

    /// Closes the last, partial segment when the stream ends.
    pub(crate) fn finish(&mut self) -> Option<Segment> {
        self.segmenter.as_mut()?.finish()
    }

    fn drain(&mut self, arrived_at: DateTime<Utc>) -> Result<Vec<Remuxed>, RemuxError> {
        let mut out = Vec::new();
        while let Some(result) = self.transmuxer.mux()? {
            match result {
                TransmuxResult::InitSegment {
                    video_settings,
                    audio_settings,
                    data,
                } => {
                    let video = video_settings.codec.to_string();
                    let audio = audio_settings.codec.to_string();
                    if !video.starts_with("avc1.") || !audio.starts_with("mp4a.40.") {
                        return Err(RemuxError::UnsupportedCodecs { video, audio });
                    }
                    self.segmenter = Some(Segmenter::new(
                        self.segment_target,
                        video_settings.timescale,
                    ));
                    let tracks = Tracks {
                        video_codec: video,
                        audio_codec: audio,
                        width: video_settings.width,
                        height: video_settings.height,
                        frame_rate: video_settings.framerate,
                        audio_sample_rate: audio_settings.sample_rate,
                        audio_channels: self.audio_channels.unwrap_or(audio_settings.channels),
                    };
                    out.push(Remuxed::Init {
                        data: init_segment::normalize_esds(data),
                        tracks,
                    });
                }
                TransmuxResult::MediaSegment(fragment) => {
                    if let Some(segment) = self
                        .segmenter
                        .as_mut()
                        .and_then(|segmenter| segmenter.push(&fragment, arrived_at))
                    {
                        out.push(Remuxed::Segment(segment));
                    }
                }
            }
        }
        Ok(out)
    }
}
