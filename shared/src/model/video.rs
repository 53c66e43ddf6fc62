//! What each deployment's video service can carry, and the channel type that carries
//! a stream's quality settings.

use super::stream::{QualitySettings, Resolution};
use crate::error::{ApiError, FieldError};

/// Amazon IVS's channel types this backend uses (low latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelType {
    /// Delivers the input as it is: up to 1.5 Mbps at 480p, 3.5 Mbps up to 1080p.
    Basic,
    /// Transcodes into renditions: up to 8.5 Mbps at 1080p.
    Standard,
}

impl ChannelType {
    /// The cheapest channel that carries `quality`.
    pub fn for_quality(quality: &QualitySettings) -> Self {
        let basic_kbps = if quality.resolution <= Resolution::P480 {
            1_500
        } else {
            3_500
        };
        if quality.resolution <= Resolution::P1080 && quality.bitrate_kbps <= basic_kbps {
            Self::Basic
        } else {
            Self::Standard
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "BASIC",
            Self::Standard => "STANDARD",
        }
    }
}

/// What one deployment's video service can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoLimits {
    pub service: &'static str,
    pub max_resolution: Resolution,
    pub max_bitrate_kbps: u32,
}

impl VideoLimits {
    /// Amazon IVS: 1080p and 8.5 Mbps at most (a STANDARD channel's input).
    pub const IVS: Self = Self {
        service: "Amazon IVS",
        max_resolution: Resolution::P1080,
        max_bitrate_kbps: 8_500,
    };

    /// The local stack remuxes whatever arrives: every setting the API accepts.
    pub const LOCAL: Self = Self {
        service: "the local stack",
        max_resolution: Resolution::K4,
        max_bitrate_kbps: 15_000,
    };

    /// 422 `quality_not_supported` when this service cannot carry `quality`.
    pub fn check(&self, quality: &QualitySettings) -> Result<(), ApiError> {
        let mut details = Vec::new();
        if quality.resolution > self.max_resolution {
            details.push(FieldError::new(
                "quality_settings.resolution",
                format!(
                    "{} carries at most {}",
                    self.service,
                    resolution_name(self.max_resolution)
                ),
            ));
        }
        if quality.bitrate_kbps > self.max_bitrate_kbps {
            details.push(FieldError::new(
                "quality_settings.bitrate_kbps",
                format!(
                    "{} carries at most {} kbps",
                    self.service, self.max_bitrate_kbps
                ),
            ));
        }
        if details.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unsupported {
                code: "quality_not_supported",
                message: format!(
                    "this deployment's video service ({}) cannot carry these quality settings",
                    self.service
                ),
                details,
            })
        }
    }
}

fn resolution_name(resolution: Resolution) -> &'static str {
    match resolution {
        Resolution::P480 => "480p",
        Resolution::P720 => "720p",
        Resolution::P1080 => "1080p",
        Resolution::K4 => "4K",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(resolution: Resolution, bitrate_kbps: u32) -> QualitySettings {
        QualitySettings {
            resolution,
            frame_rate: 30,
            bitrate_kbps,
        }
    }

    #[test]
    fn the_cheapest_channel_that_carries_the_input_is_chosen() {
        let kind = |r, b| ChannelType::for_quality(&quality(r, b));
        assert_eq!(kind(Resolution::P480, 1_500), ChannelType::Basic);
        assert_eq!(kind(Resolution::P480, 2_000), ChannelType::Standard);
        assert_eq!(kind(Resolution::P720, 3_500), ChannelType::Basic);
        assert_eq!(kind(Resolution::P1080, 4_500), ChannelType::Standard);
        assert_eq!(kind(Resolution::P1080, 8_500), ChannelType::Standard);
    }

    #[test]
    fn ivs_refuses_4k_and_more_than_8_5_mbps_with_the_fields() {
        let err = VideoLimits::IVS
            .check(&quality(Resolution::K4, 12_000))
            .unwrap_err();
        assert_eq!(err.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.code(), "quality_not_supported");
        let body = err.body();
        let fields: Vec<_> = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            fields,
            [
                "quality_settings.resolution",
                "quality_settings.bitrate_kbps"
            ]
        );
        assert!(
            VideoLimits::IVS
                .check(&quality(Resolution::P1080, 8_500))
                .is_ok()
        );
    }

    #[test]
    fn the_local_stack_carries_every_accepted_setting() {
        assert!(
            VideoLimits::LOCAL
                .check(&quality(Resolution::K4, 15_000))
                .is_ok()
        );
    }
}
