//! The deployment cannot drift from the code: the committed template is exactly what
//! the code generates, every deployed function has its handler in the bootstrap and
//! every handler its function, every route has its function, and the table is the one
//! the code (and the local stack) creates.

use std::collections::BTreeSet;
use std::path::Path;

use livestream_infra::{
    BOOTSTRAP, CREATE_CHANNEL, CREATE_STREAM_KEY, DELETE_CHANNEL, DELETE_STREAM_KEY, FUNCTIONS,
    GET_STREAM, GET_STREAM_SESSION, LIST_STREAM_KEYS, RecordingAccess, STOP_STREAM, TAG_RESOURCE,
    UPDATE_CHANNEL, deployed_functions, logical_id, spec, template, template_yaml,
};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn the_committed_template_is_what_the_code_generates() {
    let committed = std::fs::read_to_string(root().join("infra/template.yaml")).unwrap();
    assert!(
        committed == template_yaml(),
        "infra/template.yaml is stale: run `cargo run -p livestream-infra --bin gen-template` and commit it"
    );
}

/// The `[[bin]]` names of the bootstrap crate other than `bootstrap` itself: one per
/// function, for `cargo lambda watch`.
fn watch_binaries() -> BTreeSet<String> {
    let manifest = root().join("functions/bootstrap/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut names = BTreeSet::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            names.insert(name.trim_matches('"').to_string());
        }
    }
    names.remove(BOOTSTRAP);
    names
}

#[test]
fn every_deployed_function_has_a_bootstrap_handler_and_every_handler_is_deployed() {
    let handlers: BTreeSet<String> = livestream_bootstrap::functions()
        .into_iter()
        .map(String::from)
        .collect();
    assert!(handlers.len() >= 30, "found the handlers: {handlers:?}");
    let deployed: BTreeSet<String> = deployed_functions().into_iter().map(String::from).collect();
    assert_eq!(handlers, deployed);
    let specified: BTreeSet<String> = FUNCTIONS.iter().map(|f| f.name.to_string()).collect();
    assert_eq!(
        specified, deployed,
        "FUNCTIONS has exactly the deployed functions"
    );
    assert_eq!(
        watch_binaries(),
        deployed,
        "functions/bootstrap has one `cargo lambda watch` binary per function"
    );
    let resources = &template()["Resources"];
    let first = &resources[logical_id(deployed_functions()[0])];
    for name in &deployed {
        let resource = &resources[logical_id(name)];
        assert_eq!(resource["Type"], "AWS::Serverless::Function", "{name}");
        assert_eq!(resource["Properties"]["Handler"], name.as_str());
        // One build definition for all: SAM builds the bootstrap once.
        assert_eq!(resource["Metadata"], first["Metadata"], "{name}");
        assert_eq!(resource["Properties"]["CodeUri"], "..", "{name}");
        assert_eq!(resource["Metadata"]["BuildProperties"]["Binary"], BOOTSTRAP);
        assert_eq!(resource["Metadata"]["BuildMethod"], "rust-cargolambda");
    }
}

#[test]
fn every_route_is_served_by_its_function() {
    let resources = &template()["Resources"];
    let routes: Vec<&serde_json::Value> = resources
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::ApiGatewayV2::Route")
        .collect();
    for route in livestream::routes::ROUTES {
        let key = format!("{} {}", route.method, route.path);
        let found = routes
            .iter()
            .find(|r| r["Properties"]["RouteKey"] == key.as_str())
            .unwrap_or_else(|| panic!("no route {key}"));
        assert_eq!(found["Properties"]["ApiId"]["Ref"], "HttpApi", "{key}");
        let stem = logical_id(route.function)
            .trim_end_matches("Function")
            .to_string();
        assert_eq!(
            found["Properties"]["Target"]["Fn::Sub"],
            format!("integrations/${{{stem}Integration}}"),
            "{key}"
        );
        let integration = &resources[format!("{stem}Integration")]["Properties"];
        assert!(
            integration["IntegrationUri"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .contains(&format!("${{{}.Arn}}", logical_id(route.function))),
            "{key}"
        );
    }
    for (route_key, function) in livestream_ws::ROUTES {
        let route = resources
            .as_object()
            .unwrap()
            .values()
            .find(|r| {
                r["Type"] == "AWS::ApiGatewayV2::Route" && r["Properties"]["RouteKey"] == *route_key
            })
            .unwrap_or_else(|| panic!("no route {route_key}"));
        let target = route["Properties"]["Target"]["Fn::Sub"].as_str().unwrap();
        let stem = logical_id(function)
            .trim_end_matches("Function")
            .to_string();
        assert_eq!(target, format!("integrations/${{{stem}Integration}}"));
    }
}

#[test]
fn the_table_is_the_one_the_code_uses() {
    let committed: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("infra/template.yaml")).unwrap())
            .unwrap();
    let table = &committed["Resources"]["Table"]["Properties"];
    let def = &livestream::table::TABLE_DEFINITION;
    assert_eq!(table["KeySchema"][0]["AttributeName"], def.partition_key);
    assert_eq!(table["KeySchema"][1]["AttributeName"], def.sort_key);
    let indexes = table["GlobalSecondaryIndexes"].as_array().unwrap();
    assert_eq!(indexes.len(), def.indexes.len());
    for (index, expected) in indexes.iter().zip(def.indexes) {
        assert_eq!(index["IndexName"], expected.name);
        assert_eq!(
            index["KeySchema"][0]["AttributeName"],
            expected.partition_key
        );
        assert_eq!(index["KeySchema"][1]["AttributeName"], expected.sort_key);
        assert_eq!(index["Projection"]["ProjectionType"], "ALL");
    }
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        def.ttl_attribute
    );
    assert_eq!(
        table["StreamSpecification"]["StreamViewType"],
        def.stream_view_type
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
}

#[test]
fn only_functions_that_post_to_clients_may_manage_connections() {
    let resources = &template()["Resources"];
    for spec in FUNCTIONS {
        let text = resources[logical_id(spec.name)]["Properties"]["Policies"].to_string();
        assert_eq!(
            text.contains("execute-api:ManageConnections"),
            spec.manages_connections,
            "{}",
            spec.name
        );
        assert!(!text.contains("dynamodb:Scan"), "{}", spec.name);
        assert!(!text.contains("dynamodb:*"), "{}", spec.name);
    }
}

/// The statements of a function's policy, those under a condition (`Fn::If`) included.
fn statements(function: &str) -> Vec<Value> {
    let t = template();
    let policies = &t["Resources"][logical_id(function)]["Properties"]["Policies"];
    policies[0]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| match s.get("Fn::If") {
            Some(branches) => branches[1].clone(),
            None => s.clone(),
        })
        .collect()
}

fn actions(statement: &Value) -> Vec<&str> {
    statement["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// The statements that allow reading the secret named by `parameter`.
fn reads_secret(function: &str, parameter: &str) -> bool {
    statements(function).iter().any(|s| {
        actions(s).contains(&"secretsmanager:GetSecretValue")
            && s["Resource"]
                .to_string()
                .contains(&format!("${{{parameter}}}-??????"))
    })
}

#[test]
fn the_hs256_secret_never_enters_the_environment_and_only_token_verifiers_may_read_it() {
    let t = template();
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(env.get("JWT_SECRET").is_none());
    assert_eq!(env["JWT_SECRET_NAME"]["Fn::If"][1]["Ref"], "JwtSecretName");
    assert!(!t.to_string().contains("resolve:secretsmanager"));
    for spec in FUNCTIONS {
        assert_eq!(
            reads_secret(spec.name, "JwtSecretName"),
            spec.verifies_tokens,
            "{}",
            spec.name
        );
    }
}

#[test]
fn a_deploy_without_a_jwt_source_is_refused_by_the_rules() {
    let t = template();
    let assertions = t["Rules"]["JwtSourceIsGiven"]["Assertions"]
        .as_array()
        .unwrap();
    let text = assertions[0]["Assert"].to_string();
    assert!(text.contains("JwtJwksUrl") && text.contains("JwtSecretName"));
    assert!(assertions[0]["Assert"]["Fn::Or"].is_array());
}

#[test]
fn every_function_has_a_failure_alarm_and_the_pipeline_and_apis_are_watched() {
    let resources = &template()["Resources"];
    for function in deployed_functions() {
        let stem = logical_id(function)
            .trim_end_matches("Function")
            .to_string();
        let alarm = &resources[format!("{stem}FailuresAlarm")];
        assert_eq!(alarm["Type"], "AWS::CloudWatch::Alarm", "{function}");
        let metrics = alarm["Properties"]["Metrics"].to_string();
        assert!(metrics.contains("Errors") && metrics.contains("Throttles"));
        assert!(metrics.contains(&logical_id(function)));
        assert_eq!(
            alarm["Properties"]["AlarmActions"]["Fn::If"][0],
            "HasAlarmTopic"
        );
    }
    for (name, metric) in [
        ("BroadcastIteratorAgeAlarm", "IteratorAge"),
        (
            "BroadcastFailureQueueAlarm",
            "ApproximateNumberOfMessagesVisible",
        ),
        ("HttpApi5xxAlarm", "5xx"),
        ("DynamoThrottlesAlarm", "DynamoThrottles"),
        ("WebSocketApiErrorAlarm", "IntegrationError"),
    ] {
        assert!(
            resources[name]["Properties"]["Metrics"]
                .to_string()
                .contains(metric),
            "{name}"
        );
    }
}

#[test]
fn both_apis_log_access_the_websocket_stage_deploys_itself_and_functions_are_traced() {
    let t = template();
    let resources = &t["Resources"];
    for (stage, group) in [
        ("HttpApiStage", "HttpApiAccessLogGroup"),
        ("WebSocketStage", "WebSocketAccessLogGroup"),
    ] {
        let properties = &resources[stage]["Properties"];
        assert_eq!(properties["AutoDeploy"], true, "{stage}");
        assert_eq!(
            properties["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0],
            group
        );
        let format: serde_json::Value =
            serde_json::from_str(properties["AccessLogSettings"]["Format"].as_str().unwrap())
                .expect("access logs are JSON lines");
        assert!(format["requestId"].is_string());
    }
    assert!(resources.get("WebSocketDeployment").is_none());
    assert_eq!(t["Globals"]["Function"]["Tracing"], "Active");
}

#[test]
fn routes_use_the_jwt_authorizer_exactly_when_it_is_configured() {
    let resources = &template()["Resources"];
    assert_eq!(
        resources["HttpApiJwtAuthorizer"]["Condition"],
        "UseJwtAuthorizer"
    );
    let http_routes = resources.as_object().unwrap().values().filter(|r| {
        r["Type"] == "AWS::ApiGatewayV2::Route" && r["Properties"]["ApiId"]["Ref"] == "HttpApi"
    });
    let mut count = 0;
    for route in http_routes {
        let p = &route["Properties"];
        count += 1;
        if p["RouteKey"] == "GET /api/livestream/{id}/recording/playlist.m3u8" {
            // HLS players fetch it without headers: the function checks its token.
            assert_eq!(p["AuthorizationType"], "NONE");
            assert!(p.get("AuthorizerId").is_none());
            continue;
        }
        assert_eq!(p["AuthorizationType"]["Fn::If"][0], "UseJwtAuthorizer");
        assert_eq!(
            p["AuthorizerId"]["Fn::If"][1]["Ref"],
            "HttpApiJwtAuthorizer"
        );
    }
    assert_eq!(count, livestream::routes::ROUTES.len());
}

#[test]
fn every_checkov_skip_in_the_template_gives_its_reason() {
    let resources = template()["Resources"].clone();
    let mut skips = 0;
    for (id, resource) in resources.as_object().unwrap() {
        for skip in resource["Metadata"]["checkov"]["skip"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(skip["id"].as_str().unwrap().starts_with("CKV_"), "{id}");
            assert!(skip["comment"].as_str().unwrap().len() > 40, "{id}");
            skips += 1;
        }
    }
    assert!(skips > 0);
}

/// What each function may do with IVS, written out again: a change to a function's
/// video calls has to change both this and `FUNCTIONS`.
const IVS_ACTIONS: &[(&str, &[&str])] = &[
    (
        "create-stream",
        &[CREATE_CHANNEL, TAG_RESOURCE, DELETE_CHANNEL],
    ),
    ("update-stream", &[UPDATE_CHANNEL]),
    ("stop-stream", &[DELETE_STREAM_KEY, STOP_STREAM]),
    ("cancel-stream", &[DELETE_STREAM_KEY, STOP_STREAM]),
    (
        "get-ingest",
        &[
            CREATE_CHANNEL,
            TAG_RESOURCE,
            DELETE_CHANNEL,
            GET_STREAM,
            GET_STREAM_SESSION,
        ],
    ),
    (
        "rotate-stream-key",
        &[
            CREATE_CHANNEL,
            TAG_RESOURCE,
            DELETE_CHANNEL,
            STOP_STREAM,
            LIST_STREAM_KEYS,
            DELETE_STREAM_KEY,
            CREATE_STREAM_KEY,
        ],
    ),
    (
        "get-playback",
        &[CREATE_CHANNEL, TAG_RESOURCE, DELETE_CHANNEL],
    ),
    ("video-events", &[STOP_STREAM]),
    (
        "sweep-presence",
        &[DELETE_STREAM_KEY, STOP_STREAM, DELETE_CHANNEL],
    ),
];

fn ivs_arn(kind: &str) -> String {
    format!("arn:${{AWS::Partition}}:ivs:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/*")
}

#[test]
fn every_video_function_has_exactly_its_ivs_actions_on_channels_and_keys() {
    for function in deployed_functions() {
        let expected: BTreeSet<&str> = IVS_ACTIONS
            .iter()
            .find(|(f, _)| *f == function)
            .map(|(_, actions)| actions.iter().copied().collect())
            .unwrap_or_default();
        let mut granted = BTreeSet::new();
        for statement in statements(function) {
            let ivs: Vec<&str> = actions(&statement)
                .into_iter()
                .filter(|a| a.starts_with("ivs:"))
                .collect();
            if ivs.is_empty() {
                continue;
            }
            assert!(!ivs.contains(&"ivs:*"), "{function}");
            let resources = statement["Resource"].as_array().unwrap();
            let recording = resources
                .iter()
                .any(|r| r["Fn::GetAtt"][0] == "RecordingConfiguration");
            if recording {
                // The recording configuration, for creating and updating channels only.
                assert_eq!(resources.len(), 1, "{function}");
                assert!(
                    ivs.iter()
                        .all(|a| [CREATE_CHANNEL, UPDATE_CHANNEL].contains(a)),
                    "{function}: {ivs:?}"
                );
                continue;
            }
            let arns: Vec<&str> = resources
                .iter()
                .map(|r| r["Fn::Sub"].as_str().unwrap())
                .collect();
            assert_eq!(
                arns,
                [ivs_arn("channel"), ivs_arn("stream-key")],
                "{function}"
            );
            if ivs.contains(&TAG_RESOURCE) {
                // Tags only the stream's id, not whatever an operator tagged.
                assert_eq!(ivs, [TAG_RESOURCE], "{function}");
                assert_eq!(
                    statement["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"],
                    serde_json::json!(["stream_id"]),
                    "{function}"
                );
            }
            granted.extend(ivs.into_iter().map(String::from));
        }
        assert_eq!(
            granted,
            expected.iter().map(|a| a.to_string()).collect(),
            "{function}"
        );
        let spec = spec(function).unwrap();
        assert_eq!(
            spec.ivs_actions.iter().copied().collect::<BTreeSet<_>>(),
            expected,
            "{function}"
        );
    }
}

#[test]
fn the_recording_configuration_is_granted_only_to_channel_writers() {
    for function in deployed_functions() {
        let granted = statements(function)
            .iter()
            .filter(|s| s.to_string().contains("RecordingConfiguration"))
            .count();
        let writes_channels = spec(function)
            .unwrap()
            .ivs_actions
            .iter()
            .any(|a| [CREATE_CHANNEL, UPDATE_CHANNEL].contains(a));
        assert_eq!(granted, usize::from(writes_channels), "{function}");
    }
}

#[test]
fn only_the_functions_that_sign_viewer_tokens_may_read_the_playback_key() {
    let signers: Vec<&str> = FUNCTIONS
        .iter()
        .filter(|f| f.signs_viewer_tokens)
        .map(|f| f.name)
        .collect();
    assert_eq!(
        signers,
        ["get-playback", "get-recording", "get-recording-playlist"]
    );
    for function in deployed_functions() {
        assert_eq!(
            reads_secret(function, "PlaybackKeySecretName"),
            signers.contains(&function),
            "{function}"
        );
    }
    let t = template();
    // The private key itself appears nowhere: only the secret's name.
    assert!(!t.to_string().contains("PRIVATE KEY"));
    assert_eq!(
        t["Parameters"]["PlaybackKeySecretName"]["Default"],
        "livestream/playback-key"
    );
}

#[test]
fn every_video_function_gets_the_video_settings_and_no_other_does() {
    let t = template();
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    for name in [
        "PLAYBACK_KEY_SECRET_NAME",
        "INGEST_GRACE_SECONDS",
        "RECORDING_CONFIGURATION_ARN",
    ] {
        assert!(globals.get(name).is_none(), "{name} is not global");
    }
    for function in deployed_functions() {
        let env = &t["Resources"][logical_id(function)]["Properties"]["Environment"]["Variables"];
        let uses_video = IVS_ACTIONS.iter().any(|(f, _)| *f == function);
        let uses_recordings = spec(function).unwrap().recordings != RecordingAccess::None;
        assert_eq!(
            env.get("PLAYBACK_KEY_SECRET_NAME").is_some(),
            uses_video || uses_recordings,
            "{function}"
        );
        if !uses_video {
            continue;
        }
        assert_eq!(
            env["PLAYBACK_KEY_SECRET_NAME"]["Ref"],
            "PlaybackKeySecretName"
        );
        assert_eq!(env["INGEST_GRACE_SECONDS"]["Ref"], "IngestGraceSeconds");
        assert_eq!(
            env["RECORDING_CONFIGURATION_ARN"]["Fn::GetAtt"],
            serde_json::json!(["RecordingConfiguration", "Arn"]),
            "{function}"
        );
    }
    // The fan-out settings stay on their functions beside the video ones.
    let broadcast = &t["Resources"]["BroadcastFunction"]["Properties"]["Environment"]["Variables"];
    assert!(broadcast["FANOUT_QUEUE_URL"].is_object());
}

#[test]
fn the_playback_key_pair_imports_the_public_key_parameter() {
    let t = template();
    let pair = &t["Resources"]["PlaybackKeyPair"];
    assert_eq!(pair["Type"], "AWS::IVS::PlaybackKeyPair");
    assert_eq!(
        pair["Properties"]["PublicKeyMaterial"]["Ref"],
        "PlaybackPublicKey"
    );
    let parameter = &t["Parameters"]["PlaybackPublicKey"];
    assert!(parameter.get("Default").is_none(), "a deploy must give it");
    let pattern = parameter["AllowedPattern"].as_str().unwrap();
    assert!(pattern.starts_with("^-----BEGIN PUBLIC KEY-----"));
    assert!(pattern.contains("-----END PUBLIC KEY-----"));
    // The description says how to make the pair.
    let how = t["Parameters"]["PlaybackKeySecretName"]["Description"]
        .as_str()
        .unwrap();
    for step in [
        "openssl ecparam -name secp384r1",
        "openssl ec -in playback-private.pem -pubout",
        "aws secretsmanager create-secret",
    ] {
        assert!(how.contains(step), "{step}");
    }
    // Only the key pair reads the public key.
    let users: Vec<&String> = t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r.to_string().contains("\"PlaybackPublicKey\""))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(users, ["PlaybackKeyPair"]);
}

#[test]
fn ivs_stream_state_changes_reach_video_events_and_what_keeps_failing_waits_in_its_queue() {
    let t = template();
    let resources = t["Resources"].as_object().unwrap();
    let rules: Vec<(&String, &str, &Value)> = resources
        .iter()
        .filter_map(|(id, r)| Some((id, r["Properties"]["Events"].as_object()?)))
        .flat_map(|(id, events)| {
            events
                .iter()
                .filter(|(_, e)| e["Type"] == "EventBridgeRule")
                .map(move |(name, e)| (id, name.as_str(), e))
        })
        .collect();
    assert_eq!(rules.len(), 1, "one rule: {rules:?}");
    let (function, event, rule) = rules[0];
    assert_eq!(function, "VideoEventsFunction");
    let p = &rule["Properties"];
    assert_eq!(p["EventBusName"], "default");
    assert_eq!(
        p["Pattern"],
        serde_json::json!({ "source": ["aws.ivs"], "detail-type": ["IVS Stream State Change", "IVS Recording State Change"] })
    );
    assert!(p["RetryPolicy"]["MaximumRetryAttempts"].as_u64().unwrap() > 0);
    assert!(
        p["RetryPolicy"]["MaximumEventAgeInSeconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    let queue = "VideoEventsDeadLetterQueue";
    assert_eq!(p["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0], queue);
    // What the function itself keeps failing on (EventBridge invokes asynchronously).
    let on_failure = &resources[function]["Properties"]["EventInvokeConfig"];
    assert_eq!(
        on_failure["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0],
        queue
    );
    assert_eq!(on_failure["DestinationConfig"]["OnFailure"]["Type"], "SQS");
    assert!(on_failure["MaximumRetryAttempts"].as_u64().unwrap() <= 2);
    // Encrypted; only this rule may put events on it.
    assert_eq!(resources[queue]["Properties"]["SqsManagedSseEnabled"], true);
    let policy = &resources[&format!("{queue}Policy")]["Properties"];
    assert_eq!(policy["Queues"][0]["Ref"], queue);
    let statement = &policy["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(
        statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0],
        format!("{function}{event}"),
        "the rule SAM makes of the event"
    );
    // Watched.
    assert_eq!(
        resources["VideoEventsFailuresAlarm"]["Type"],
        "AWS::CloudWatch::Alarm"
    );
    let depth = resources[&format!("{queue}Alarm")]["Properties"]["Metrics"].to_string();
    assert!(depth.contains("ApproximateNumberOfMessagesVisible") && depth.contains(queue));
    assert_eq!(
        resources["VideoEventsFunctionLogGroup"]["Type"],
        "AWS::Logs::LogGroup"
    );
    assert!(t["Outputs"]["VideoEventsDeadLetterQueueUrl"].is_object());
}

/// What each function may do with the recordings' objects, written out again.
const RECORDING_ACCESS: &[(&str, &[&str])] = &[
    ("get-recording", &["s3:GetObject"]),
    ("get-recording-playlist", &["s3:GetObject"]),
    ("delete-recording", &["s3:ListBucket", "s3:DeleteObject"]),
];

#[test]
fn only_the_recording_functions_reach_the_recordings_and_only_under_their_prefix() {
    for function in deployed_functions() {
        let expected: BTreeSet<&str> = RECORDING_ACCESS
            .iter()
            .find(|(f, _)| *f == function)
            .map(|(_, actions)| actions.iter().copied().collect())
            .unwrap_or_default();
        let mut granted = BTreeSet::new();
        for statement in statements(function) {
            for action in actions(&statement)
                .into_iter()
                .filter(|a| a.starts_with("s3:"))
            {
                let resource = statement["Resource"].to_string();
                assert!(
                    resource.contains("RecordingsBucket"),
                    "{function}: {resource}"
                );
                if action == "s3:ListBucket" {
                    assert_eq!(
                        statement["Condition"]["StringLike"]["s3:prefix"],
                        serde_json::json!(["ivs/*"])
                    );
                } else {
                    assert!(
                        resource.contains("RecordingsBucket.Arn}/ivs/*"),
                        "{function}"
                    );
                }
                granted.insert(action.to_string());
            }
        }
        let expected: BTreeSet<String> = expected.iter().map(|a| a.to_string()).collect();
        assert_eq!(granted, expected, "{function}");
        let env = &template()["Resources"][logical_id(function)]["Properties"]["Environment"]["Variables"];
        assert_eq!(
            env.get("RECORDING_BUCKET").is_some(),
            !expected.is_empty(),
            "{function}"
        );
    }
}

#[test]
fn the_recordings_bucket_is_private_encrypted_tls_only_and_expires_recordings() {
    let t = template();
    let resources = &t["Resources"];
    let bucket = &resources["RecordingsBucket"];
    assert_eq!(bucket["Type"], "AWS::S3::Bucket");
    let p = &bucket["Properties"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            p["PublicAccessBlockConfiguration"][setting], true,
            "{setting}"
        );
    }
    assert_eq!(
        p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
            ["SSEAlgorithm"],
        "AES256"
    );
    let rules = p["LifecycleConfiguration"]["Rules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["ExpirationInDays"]["Ref"] == "RecordingRetentionDays")
    );
    assert!(
        rules
            .iter()
            .any(|r| r["AbortIncompleteMultipartUpload"].is_object())
    );
    assert_eq!(t["Parameters"]["RecordingRetentionDays"]["Default"], 90);
    let statement =
        &resources["RecordingsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Deny");
    assert_eq!(
        statement["Condition"]["Bool"]["aws:SecureTransport"],
        "false"
    );
    let configuration = &resources["RecordingConfiguration"];
    assert_eq!(configuration["Type"], "AWS::IVS::RecordingConfiguration");
    let c = &configuration["Properties"];
    assert_eq!(
        c["DestinationConfiguration"]["S3"]["BucketName"]["Ref"],
        "RecordingsBucket"
    );
    assert_eq!(
        c["RecordingReconnectWindowSeconds"]["Ref"],
        "IngestGraceSeconds"
    );
    assert_eq!(c["ThumbnailConfiguration"]["TargetIntervalSeconds"], 60);
    assert!(
        t["Parameters"]["IngestGraceSeconds"]["MaxValue"]
            .as_u64()
            .unwrap()
            <= 300,
        "IVS's longest reconnect window"
    );
}
