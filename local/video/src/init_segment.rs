//! A fix-up of the fMP4 init segment scuffle-transmuxer writes.
//!
//! Its AAC `esds` ES_Descriptor sets streamDependenceFlag and OCRstreamFlag (with zero
//! ids) and has no SLConfigDescriptor. Browsers' MSE parsers cope, but hls.js skips
//! only the dependency id, misreads the rest and asks MSE for the codec `mp4a`, which
//! no browser accepts. Rewritten in place, the descriptor keeps its size: the flags are
//! cleared and the four freed bytes become the SLConfigDescriptor MP4 files carry
//! (tag 6, a two-byte length of 1, predefined = 2).

use bytes::{Bytes, BytesMut};

const STREAM_DEPENDENCE: u8 = 0x80;
const URL: u8 = 0x40;
const OCR_STREAM: u8 = 0x20;
const SL_CONFIG_DESCRIPTOR: [u8; 4] = [0x06, 0x80, 0x01, 0x02];

/// Returns the init segment with a conventional `esds`, or unchanged if it has none
/// to fix.
pub(crate) fn normalize_esds(init: Bytes) -> Bytes {
    let Some(range) = es_descriptor_fields(&init) else {
        return init;
    };
    let mut fixed = BytesMut::from(&init[..]);
    let fields = &mut fixed[range];
    // ES_ID (2 bytes), flags, dependsOn_ES_ID (2), OCR_ES_ID (2), then the descriptors.
    fields[2] &= !(STREAM_DEPENDENCE | OCR_STREAM);
    fields.copy_within(7.., 3);
    let end = fields.len();
    fields[end - SL_CONFIG_DESCRIPTOR.len()..].copy_from_slice(&SL_CONFIG_DESCRIPTOR);
    fixed.freeze()
}

/// The byte range of the ES_Descriptor's content when it has the extra ids and no SL
/// descriptor, i.e. it is scuffle's.
fn es_descriptor_fields(init: &[u8]) -> Option<std::ops::Range<usize>> {
    let fourcc = init.windows(4).position(|w| w == b"esds")?;
    let box_start = fourcc.checked_sub(4)?;
    let box_size = u32::from_be_bytes(init.get(box_start..fourcc)?.try_into().ok()?) as usize;
    let box_end = box_start
        .checked_add(box_size)
        .filter(|end| *end <= init.len())?;
    // After the fourcc: version and flags (4 bytes), then the ES_Descriptor tag.
    let tag = fourcc + 8;
    if init.get(tag) != Some(&0x03) {
        return None;
    }
    let (length, length_bytes) = descriptor_length(init.get(tag + 1..box_end)?)?;
    let start = tag + 1 + length_bytes;
    let end = start + length;
    let fields = init.get(start..end)?;
    let flags = *fields.get(2)?;
    let has_both_ids = flags & (STREAM_DEPENDENCE | OCR_STREAM) == STREAM_DEPENDENCE | OCR_STREAM;
    let has_sl_descriptor = fields.ends_with(&[0x06, 0x01, 0x02]);
    (end == box_end && has_both_ids && flags & URL == 0 && !has_sl_descriptor && fields.len() > 7)
        .then_some(start..end)
}

/// An MPEG-4 descriptor length: 7 bits a byte, high bit set while more follow.
fn descriptor_length(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut length = 0usize;
    for (index, byte) in bytes.iter().take(4).enumerate() {
        length = (length << 7) | usize::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((length, index + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `esds` box scuffle-transmuxer 0.2.2 writes for 48 kHz mono AAC-LC from ffmpeg.
    const SCUFFLE_ESDS: &[u8] = &[
        0x00, 0x00, 0x00, 0x2b, b'e', b's', b'd', b's', 0x00, 0x00, 0x00,
        0x00, // box header, version/flags
        0x03, 0x1d, 0x00, 0x02, 0xa0, 0x00, 0x00, 0x00,
        0x00, // ES_Descriptor: id 2, flags, two ids
        0x04, 0x14, 0x40, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, // DecoderConfig
        0x05, 0x05, 0x11, 0x88, 0x56, 0xe5, 0x00, // DecoderSpecificInfo (AudioSpecificConfig)
    ];

    #[test]
    fn rewrites_the_es_descriptor_in_place() {
        let mut init = b"\x00\x00\x00\x08mp4a".to_vec();
        init.extend_from_slice(SCUFFLE_ESDS);
        init.extend_from_slice(b"\x00\x00\x00\x08stts");
        let fixed = normalize_esds(Bytes::from(init.clone()));
        assert_eq!(fixed.len(), init.len());
        let esds = &fixed[8..8 + SCUFFLE_ESDS.len()];
        assert_eq!(&esds[..16], &SCUFFLE_ESDS[..16]);
        assert_eq!(esds[16], 0x00, "flags cleared");
        assert_eq!(&esds[17..esds.len() - 4], &SCUFFLE_ESDS[21..]);
        assert_eq!(&esds[esds.len() - 4..], &SL_CONFIG_DESCRIPTOR);
        assert_eq!(&fixed[8 + SCUFFLE_ESDS.len()..], b"\x00\x00\x00\x08stts");
        // Idempotent: the fixed descriptor is left alone.
        assert_eq!(normalize_esds(fixed.clone()), fixed);
    }

    #[test]
    fn leaves_other_init_segments_alone() {
        let plain = Bytes::from_static(b"\x00\x00\x00\x08ftypiso5");
        assert_eq!(normalize_esds(plain.clone()), plain);
        let truncated = Bytes::copy_from_slice(&SCUFFLE_ESDS[..20]);
        assert_eq!(normalize_esds(truncated.clone()), truncated);
    }
}
