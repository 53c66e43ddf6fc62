//! The live video's part of the template (Amazon IVS): the playback key pair that IVS
//! checks private streams' viewer tokens with, the parameters that configure video, the
//! `video-events` function on an EventBridge rule for the channels' stream state
//! changes with its dead-letter queue, and what each function may do with IVS (see
//! [`FunctionSpec::ivs_actions`](crate::FunctionSpec::ivs_actions)) and with the
//! private half of the playback key.

use serde_json::{Map, Value, json};

use crate::{FunctionSpec, get_att, reference, sub};

/// The function that applies the IVS stream state events to the streams.
pub const FUNCTION: &str = "video-events";
/// A handful of reads and writes, and perhaps a StopStream.
pub const TIMEOUT_S: u32 = 30;

pub const CREATE_CHANNEL: &str = "ivs:CreateChannel";
/// CreateChannel with tags: IVS authorizes the tags as a TagResource.
pub const TAG_RESOURCE: &str = "ivs:TagResource";
pub const UPDATE_CHANNEL: &str = "ivs:UpdateChannel";
pub const DELETE_CHANNEL: &str = "ivs:DeleteChannel";
pub const STOP_STREAM: &str = "ivs:StopStream";
pub const GET_STREAM: &str = "ivs:GetStream";
pub const GET_STREAM_SESSION: &str = "ivs:GetStreamSession";
pub const LIST_STREAM_KEYS: &str = "ivs:ListStreamKeys";
pub const CREATE_STREAM_KEY: &str = "ivs:CreateStreamKey";
pub const DELETE_STREAM_KEY: &str = "ivs:DeleteStreamKey";

/// The only tag key the functions put on channels (`stream_id`, see
/// `shared/src/video.rs`).
const CHANNEL_TAG_KEYS: &[&str] = &["stream_id"];

const KEY_PAIR: &str = "PlaybackKeyPair";
const DEAD_LETTER_QUEUE: &str = "VideoEventsDeadLetterQueue";
/// The SAM event of the function; SAM names its rule `VideoEventsFunction` + this.
const RULE_EVENT: &str = "StreamStateChange";
/// The events the function is given: every stream and recording state change of the
/// account's IVS channels in this region (the function ignores channels of no stream
/// here).
pub const EVENT_SOURCE: &str = "aws.ivs";
pub const EVENT_DETAIL_TYPES: &[&str] = &[
    livestream::service::video::STREAM_STATE_CHANGE,
    livestream::service::video::RECORDING_STATE_CHANGE,
];
/// A state change older than this is dropped rather than retried: the ingest has moved
/// on, and the event would be ignored as stale anyway.
const MAX_EVENT_AGE_S: u32 = 3600;

/// The parameters of video.
pub fn parameters(parameters: &mut Map<String, Value>) {
    parameters.insert(
        "PlaybackKeySecretName".into(),
        json!({
            "Type": "String",
            "Default": "livestream/playback-key",
            "AllowedPattern": "^[A-Za-z0-9/_+=.@-]+$",
            "ConstraintDescription": "the name of a Secrets Manager secret (letters, digits and /_+=.@-)",
            "Description": "Name of the Secrets Manager secret whose string is the private half of the playback key pair (PEM, PKCS#8, ECDSA P-384), with which get-playback signs the viewer tokens of private streams; only that function may read it, on its first token, and it never appears in this template or an environment. Make the pair and the secret once per account and region: `openssl ecparam -name secp384r1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out playback-private.pem; openssl ec -in playback-private.pem -pubout -out playback-public.pem; aws secretsmanager create-secret --name livestream/playback-key --secret-string file://playback-private.pem` (encrypted with the account's aws/secretsmanager key), then give PlaybackPublicKey the public half and delete playback-private.pem"
        }),
    );
    parameters.insert(
        "PlaybackPublicKey".into(),
        json!({
            "Type": "String",
            "AllowedPattern": "^-----BEGIN PUBLIC KEY-----[A-Za-z0-9+/=\\s]+-----END PUBLIC KEY-----\\s*$",
            "ConstraintDescription": "the whole of playback-public.pem (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----, line breaks included), never the private key",
            "Description": "Public half of the playback key pair (the whole of playback-public.pem, line breaks included; see PlaybackKeySecretName for making the pair). The stack imports it as an IVS playback key pair, so IVS plays private streams for the tokens signed with the private half. A prompt takes one line, so give it on the command line: sam deploy --parameter-overrides \"PlaybackPublicKey=\\\"$(cat playback-public.pem)\\\"\". Each stack imports one key pair, and IVS keeps at most three per account and region"
        }),
    );
    parameters.insert(
        "IngestGraceSeconds".into(),
        json!({
            "Type": "Number",
            "Default": 60,
            "MinValue": 0,
            // IVS's longest recording reconnect window, which follows this.
            "MaxValue": 300,
            "Description": "Seconds an encoder's push may stay away before a class that went live from the encoder ends (found by the one-minute sweep, so up to a minute later); also the recording's reconnect window, so a push back within it stays one recording (at most 300, IVS's limit)"
        }),
    );
}

/// The playback key pair and the dead-letter queue of the events (with the policy that
/// lets the rule put events on it).
pub fn resources(resources: &mut Map<String, Value>) {
    resources.insert(
        KEY_PAIR.into(),
        json!({
            "Type": "AWS::IVS::PlaybackKeyPair",
            "Properties": {
                "Name": sub("${AWS::StackName}-playback"),
                "PublicKeyMaterial": reference("PlaybackPublicKey")
            }
        }),
    );
    resources.insert(
        DEAD_LETTER_QUEUE.into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Metadata": crate::checkov_skips(&[(
                "CKV_AWS_27",
                "encrypted with SQS-managed keys (SqsManagedSseEnabled), which this check does not recognize; it holds IVS stream state events (channel ARNs, session ids)",
            )]),
            "Properties": { "MessageRetentionPeriod": 1_209_600, "SqsManagedSseEnabled": true }
        }),
    );
    resources.insert(
        format!("{DEAD_LETTER_QUEUE}Policy"),
        json!({
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [reference(DEAD_LETTER_QUEUE)],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "Service": "events.amazonaws.com" },
                        "Action": "sqs:SendMessage",
                        "Resource": get_att(DEAD_LETTER_QUEUE, "Arn"),
                        "Condition": { "ArnEquals": { "aws:SourceArn": get_att(&rule_id(), "Arn") } }
                    }]
                }
            }
        }),
    );
}

/// The logical id SAM gives the rule of the function's event.
fn rule_id() -> String {
    format!("{}{RULE_EVENT}", crate::logical_id(FUNCTION))
}

/// The rule on the default bus: retried while the function cannot be invoked, then on
/// the dead-letter queue.
pub fn events(function: &str, events: &mut Map<String, Value>) {
    if function != FUNCTION {
        return;
    }
    events.insert(
        RULE_EVENT.into(),
        json!({
            "Type": "EventBridgeRule",
            "Properties": {
                "EventBusName": "default",
                "Pattern": { "source": [EVENT_SOURCE], "detail-type": EVENT_DETAIL_TYPES },
                "RetryPolicy": { "MaximumEventAgeInSeconds": MAX_EVENT_AGE_S, "MaximumRetryAttempts": 20 },
                "DeadLetterConfig": { "Arn": get_att(DEAD_LETTER_QUEUE, "Arn") }
            }
        }),
    );
}

/// EventBridge invokes asynchronously, so the rule's dead-letter queue only takes the
/// events it could not hand to Lambda: an event the function fails on is retried twice
/// by Lambda, then sent to the same queue by this on-failure destination (SAM adds the
/// function's `sqs:SendMessage` on it).
pub fn function_properties(function: &str, properties: &mut Value) {
    if function != FUNCTION {
        return;
    }
    properties["EventInvokeConfig"] = json!({
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": MAX_EVENT_AGE_S,
        "DestinationConfig": { "OnFailure": { "Type": "SQS", "Destination": get_att(DEAD_LETTER_QUEUE, "Arn") } }
    });
}

fn ivs_arns(kinds: &[&str]) -> Vec<Value> {
    kinds
        .iter()
        .map(|kind| {
            sub(&format!(
                "arn:${{AWS::Partition}}:ivs:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/*"
            ))
        })
        .collect()
}

/// The function's IVS actions on the channels and their keys (tags only `stream_id`,
/// and the recording configuration when one is set), and the playback key's secret for
/// the functions that sign viewer tokens. (SAM itself lets `video-events` send to its
/// dead-letter queue: the on-failure destination of [`function_properties`].)
pub fn statements(spec: &FunctionSpec) -> Vec<Value> {
    let mut statements = Vec::new();
    let actions: Vec<&str> = spec
        .ivs_actions
        .iter()
        .copied()
        .filter(|a| *a != TAG_RESOURCE)
        .collect();
    if !actions.is_empty() {
        statements.push(json!({
            "Effect": "Allow",
            "Action": actions,
            "Resource": ivs_arns(&["channel", "stream-key"]),
        }));
    }
    if spec.ivs_actions.contains(&TAG_RESOURCE) {
        statements.push(json!({
            "Effect": "Allow",
            "Action": [TAG_RESOURCE],
            "Resource": ivs_arns(&["channel", "stream-key"]),
            "Condition": { "ForAllValues:StringEquals": { "aws:TagKeys": CHANNEL_TAG_KEYS } },
        }));
    }
    let recording: Vec<&str> = spec
        .ivs_actions
        .iter()
        .copied()
        .filter(|a| [CREATE_CHANNEL, UPDATE_CHANNEL].contains(a))
        .collect();
    if !recording.is_empty() {
        statements.push(json!({
            "Effect": "Allow",
            "Action": recording,
            "Resource": [crate::recording::configuration_arn()],
        }));
    }
    if spec.signs_viewer_tokens {
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            // Secrets Manager appends six random characters to a secret's name.
            "Resource": [sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${PlaybackKeySecretName}-??????")],
        }));
    }
    statements
}

/// The video settings of the functions that use video (`Video::from_env`): the
/// secret's name (the private key itself stays in Secrets Manager), the grace period
/// and the recording configuration. Every video function gets all of them, so a
/// channel created lazily by any of them is the same.
pub fn variables(spec: &FunctionSpec) -> Map<String, Value> {
    let mut variables = Map::new();
    if spec.ivs_actions.is_empty() {
        return variables;
    }
    variables.insert(
        "PLAYBACK_KEY_SECRET_NAME".into(),
        reference("PlaybackKeySecretName"),
    );
    variables.insert(
        "INGEST_GRACE_SECONDS".into(),
        reference("IngestGraceSeconds"),
    );
    variables.insert(
        "RECORDING_CONFIGURATION_ARN".into(),
        crate::recording::configuration_arn(),
    );
    variables
}

/// Events given up on wait in the dead-letter queue.
pub fn alarms(resources: &mut Map<String, Value>) {
    let queue = json!([{ "Name": "QueueName", "Value": get_att(DEAD_LETTER_QUEUE, "QueueName") }]);
    resources.insert(
        format!("{DEAD_LETTER_QUEUE}Alarm"),
        crate::math_alarm(
            "video-events gave up on IVS stream and recording state events (the function kept failing, or EventBridge could not invoke it): they wait in VideoEventsDeadLetterQueue",
            vec![crate::metric(
                "depth",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                queue,
                "Maximum",
                300,
            )],
            "depth",
            0.0,
            1,
        ),
    );
}

/// The dead-letter queue and the key pair, for the operator.
pub fn outputs(outputs: &mut Map<String, Value>) {
    outputs.insert(
        "VideoEventsDeadLetterQueueUrl".into(),
        json!({
            "Description": "IVS stream state events video-events gave up on",
            "Value": reference(DEAD_LETTER_QUEUE)
        }),
    );
    outputs.insert(
        "PlaybackKeyPairArn".into(),
        json!({
            "Description": "The imported playback key pair that IVS checks private streams' viewer tokens with",
            "Value": get_att(KEY_PAIR, "Arn")
        }),
    );
}
