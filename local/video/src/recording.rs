//! Recording a session to disk: its init and media segments with a VOD playlist
//! rewritten after each segment, so a killed process still leaves a playable
//! recording up to its last complete segment.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use bytes::Bytes;

use crate::segmenter::Segment;

enum Job {
    Init {
        number: u32,
        data: Bytes,
    },
    Segment {
        sequence: u64,
        seconds: f64,
        data: Bytes,
    },
}

/// Writes one session's recording on a thread of its own, off the ingest path;
/// dropping it lets the thread finish the writes already queued.
pub(crate) struct Recorder {
    jobs: mpsc::Sender<Job>,
}

impl Recorder {
    /// Starts recording into `<root>/<channel_id>/<session_id>/`.
    pub(crate) fn start(root: &Path, channel_id: &str, session_id: &str) -> Option<Self> {
        let dir = root.join(path_safe(channel_id)).join(path_safe(session_id));
        if let Err(error) = std::fs::create_dir_all(&dir) {
            tracing::error!(channel_id, session_id, %error, "cannot create the recording directory");
            return None;
        }
        let (jobs, queue) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("local-video-recorder".into())
            .spawn(move || RecordingWriter::new(dir).run(queue));
        if let Err(error) = spawned {
            tracing::error!(channel_id, session_id, %error, "cannot start the recording writer");
            return None;
        }
        Some(Self { jobs })
    }

    pub(crate) fn write_init(&mut self, number: u32, data: &Bytes) {
        let _ = self.jobs.send(Job::Init {
            number,
            data: data.clone(),
        });
    }

    pub(crate) fn write_segment(&mut self, sequence: u64, segment: &Segment) {
        let _ = self.jobs.send(Job::Segment {
            sequence,
            seconds: segment.duration.as_secs_f64(),
            data: segment.data.clone(),
        });
    }
}

struct RecordingWriter {
    dir: PathBuf,
    init: Option<u32>,
    segments: Vec<(u64, f64)>,
}

impl RecordingWriter {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            init: None,
            segments: Vec::new(),
        }
    }

    fn run(mut self, queue: mpsc::Receiver<Job>) {
        for job in queue {
            if let Err(error) = self.write(job) {
                tracing::error!(dir = %self.dir.display(), %error, "recording write failed");
            }
        }
    }

    fn write(&mut self, job: Job) -> std::io::Result<()> {
        match job {
            Job::Init { number, data } => {
                std::fs::write(self.dir.join(format!("init-{number}.mp4")), &data)?;
                self.init = Some(number);
            }
            Job::Segment {
                sequence,
                seconds,
                data,
            } => {
                std::fs::write(self.dir.join(format!("seg-{sequence}.m4s")), &data)?;
                self.segments.push((sequence, seconds));
                // Written aside and renamed, so the playlist on disk is always whole.
                let staged = self.dir.join("index.m3u8.tmp");
                std::fs::write(&staged, self.vod_playlist())?;
                std::fs::rename(staged, self.dir.join("index.m3u8"))?;
            }
        }
        Ok(())
    }

    fn vod_playlist(&self) -> String {
        let target = self
            .segments
            .iter()
            .map(|(_, s)| s.round() as u64)
            .max()
            .unwrap_or(1)
            .max(1);
        let first = self.segments.first().map_or(0, |(sequence, _)| *sequence);
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:{target}\n\
             #EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        );
        if let Some(init) = self.init {
            let _ = writeln!(text, "#EXT-X-MAP:URI=\"init-{init}.mp4\"");
        }
        for (sequence, seconds) in &self.segments {
            let _ = write!(text, "#EXTINF:{seconds:.3},\nseg-{sequence}.m4s\n");
        }
        text.push_str("#EXT-X-ENDLIST\n");
        text
    }
}

/// Channel ids may be ARNs: keep a path component to safe characters.
fn path_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;

    #[test]
    fn path_components_stay_inside_the_recording_dir() {
        assert_eq!(
            path_safe("arn:aws:ivs:us-west-2:1:channel/abc"),
            "arn_aws_ivs_us-west-2_1_channel_abc"
        );
        assert_eq!(path_safe("../x"), "_x");
    }

    #[test]
    fn writes_a_playable_vod_playlist_after_each_segment() {
        let root =
            std::env::temp_dir().join(format!("local-video-recording-{}", ulid::Ulid::generate()));
        let mut recorder = Recorder::start(&root, "ch1", "st-1").unwrap();
        recorder.write_init(1, &Bytes::from_static(b"init"));
        for sequence in 7..9 {
            let segment = Segment {
                data: Bytes::from_static(b"media"),
                duration: Duration::from_millis(1500),
                program_date_time: Utc::now(),
            };
            recorder.write_segment(sequence, &segment);
        }
        drop(recorder);

        let dir = root.join("ch1").join("st-1");
        let playlist_path = dir.join("index.m3u8");
        // The writer thread finishes the queued writes after the recorder is dropped.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&playlist_path)
            .map_or(true, |t| t.matches("#EXTINF").count() < 2)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "recording not written"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let playlist = std::fs::read_to_string(&playlist_path).unwrap();
        assert!(playlist.contains("#EXT-X-TARGETDURATION:2\n"));
        assert!(playlist.contains("#EXT-X-MAP:URI=\"init-1.mp4\"\n"));
        assert!(playlist.ends_with("#EXTINF:1.500,\nseg-8.m4s\n#EXT-X-ENDLIST\n"));
        assert_eq!(std::fs::read(dir.join("init-1.mp4")).unwrap(), b"init");
        std::fs::remove_dir_all(root).unwrap();
    }
}
