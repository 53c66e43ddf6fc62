//! The recordings' part of the template: a private, encrypted S3 bucket that keeps a
//! recording `RecordingRetentionDays`, the IVS recording configuration that writes the
//! channels of recording streams into it (thumbnails every minute, a reconnect within
//! the ingest grace period stays one recording), and what the recording functions may
//! do with its objects (see [`FunctionSpec::recordings`](crate::FunctionSpec::recordings)).
//!
//! IVS writes through its service-linked role `AWSServiceRoleForIVSRecordToS3`, which
//! it creates with the first recording configuration of an account (the deploying
//! principal needs `iam:CreateServiceLinkedRole` once); the bucket needs no grant for
//! it, and its policy only refuses requests without TLS, which IVS does not make.

use serde_json::{Map, Value, json};

use crate::{FunctionSpec, get_att, reference, sub};

/// The bucket's logical id.
pub const BUCKET: &str = "RecordingsBucket";
/// The recording configuration's logical id.
pub const CONFIGURATION: &str = "RecordingConfiguration";
/// Seconds between two thumbnails of a recording.
pub const THUMBNAIL_INTERVAL_S: u32 = 60;
/// Where IVS writes every recording in the bucket (`ivs/v1/{account}/{channel}/...`).
const KEY_PREFIX: &str = "ivs/";

/// What a function may do with the recordings' objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingAccess {
    None,
    /// GetObject: reads playlists and presigns objects for players (a presigned URL
    /// carries the signer's rights).
    Read,
    /// ListBucket and DeleteObject: deletes a recording's objects.
    Delete,
}

/// The recordings' parameter.
pub fn parameters(parameters: &mut Map<String, Value>) {
    parameters.insert(
        "RecordingRetentionDays".into(),
        json!({
            "Type": "Number",
            "Default": 90,
            "MinValue": 1,
            "MaxValue": 3650,
            "Description": "Days a class's recording (video, playlists, thumbnails) is kept in the recordings bucket before S3 deletes it; an instructor can delete one sooner"
        }),
    );
}

/// The bucket, its TLS-only policy, and the recording configuration.
pub fn resources(resources: &mut Map<String, Value>) {
    resources.insert(
        BUCKET.into(),
        json!({
            "Type": "AWS::S3::Bucket",
            // Recordings are the classes' record: a stack deleted by mistake keeps them.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Metadata": crate::checkov_skips(&[
                ("CKV_AWS_18", "access logging would need a second bucket for every request of every viewer's segments; reads are presigned by the functions, whose own logs name the viewer"),
                ("CKV_AWS_21", "not versioned: deleting a recording (DELETE /recording, or the retention rule) must remove its video, not keep it as a noncurrent version"),
                ("CKV_AWS_145", "encrypted with S3-managed keys (SSE-S3), which IVS writes with; a customer-managed KMS key would need a grant to IVS's service-linked role and a KMS call per segment"),
            ]),
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [{
                        "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" },
                        "BucketKeyEnabled": true
                    }]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": true,
                    "BlockPublicPolicy": true,
                    "IgnorePublicAcls": true,
                    "RestrictPublicBuckets": true
                },
                "OwnershipControls": { "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] },
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": "expire-recordings",
                            "Status": "Enabled",
                            "Prefix": KEY_PREFIX,
                            "ExpirationInDays": reference("RecordingRetentionDays")
                        },
                        {
                            "Id": "abort-incomplete-uploads",
                            "Status": "Enabled",
                            "AbortIncompleteMultipartUpload": { "DaysAfterInitiation": 1 }
                        }
                    ]
                },
                // Players fetch the presigned segments from the console's origin.
                "CorsConfiguration": {
                    "CorsRules": [{
                        "AllowedMethods": ["GET", "HEAD"],
                        "AllowedOrigins": reference("AllowedOrigins"),
                        "AllowedHeaders": ["*"],
                        "MaxAge": 600
                    }]
                }
            }
        }),
    );
    resources.insert(
        format!("{BUCKET}Policy"),
        json!({
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": reference(BUCKET),
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [get_att(BUCKET, "Arn"), sub(&format!("${{{BUCKET}.Arn}}/*"))],
                        "Condition": { "Bool": { "aws:SecureTransport": "false" } }
                    }]
                }
            }
        }),
    );
    resources.insert(
        CONFIGURATION.into(),
        json!({
            "Type": "AWS::IVS::RecordingConfiguration",
            "Properties": {
                "Name": sub("${AWS::StackName}-recordings"),
                "DestinationConfiguration": { "S3": { "BucketName": reference(BUCKET) } },
                // An encoder back within the grace period carries on the class, and so
                // its recording: one recording for one class.
                "RecordingReconnectWindowSeconds": reference("IngestGraceSeconds"),
                "ThumbnailConfiguration": {
                    "RecordingMode": "INTERVAL",
                    "TargetIntervalSeconds": THUMBNAIL_INTERVAL_S
                }
            }
        }),
    );
}

/// The recording configuration's ARN, which the channels of recording streams get.
pub fn configuration_arn() -> Value {
    get_att(CONFIGURATION, "Arn")
}

/// The function's S3 actions on the recordings.
pub fn statements(spec: &FunctionSpec) -> Vec<Value> {
    let objects = sub(&format!("${{{BUCKET}.Arn}}/{KEY_PREFIX}*"));
    match spec.recordings {
        RecordingAccess::None => Vec::new(),
        RecordingAccess::Read => vec![json!({
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [objects],
        })],
        RecordingAccess::Delete => vec![
            json!({
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [get_att(BUCKET, "Arn")],
                "Condition": { "StringLike": { "s3:prefix": [format!("{KEY_PREFIX}*")] } },
            }),
            json!({
                "Effect": "Allow",
                "Action": ["s3:DeleteObject"],
                "Resource": [objects],
            }),
        ],
    }
}

/// The recordings' settings (`Recordings::from_env`): the bucket, and the playback
/// key's secret that recording tokens are signed with.
pub fn variables(spec: &FunctionSpec) -> Map<String, Value> {
    let mut variables = Map::new();
    if spec.recordings == RecordingAccess::None {
        return variables;
    }
    variables.insert("RECORDING_BUCKET".into(), reference(BUCKET));
    variables.insert(
        "PLAYBACK_KEY_SECRET_NAME".into(),
        reference("PlaybackKeySecretName"),
    );
    variables
}

/// The bucket, for the operator.
pub fn outputs(outputs: &mut Map<String, Value>) {
    outputs.insert(
        "RecordingsBucketName".into(),
        json!({
            "Description": "The private bucket the classes' recordings are written to",
            "Value": reference(BUCKET)
        }),
    );
    outputs.insert(
        "RecordingConfigurationArn".into(),
        json!({
            "Description": "The IVS recording configuration of the channels of streams with is_recording",
            "Value": configuration_arn()
        }),
    );
}
