//! The AWS deployment, generated from the code so it cannot drift from it.
//!
//! `infra/template.yaml` is written by `cargo run -p livestream-infra --bin
//! gen-template` from: the HTTP routes ([`livestream::routes::ROUTES`]), the WebSocket
//! routes ([`livestream_ws::ROUTES`]), the broadcaster, the table definition
//! ([`livestream::table::TABLE_DEFINITION`]) and [`FUNCTIONS`], the one table of each
//! function's size and of the DynamoDB and IVS actions it may use (least privilege). A
//! test fails when the committed template differs from what the code generates.

mod fanout;
mod recording;
mod video;

pub use recording::RecordingAccess;

pub use video::{
    CREATE_CHANNEL, CREATE_STREAM_KEY, DELETE_CHANNEL, DELETE_STREAM_KEY, GET_STREAM,
    GET_STREAM_SESSION, LIST_STREAM_KEYS, STOP_STREAM, TAG_RESOURCE, UPDATE_CHANNEL,
};

use serde_json::{Map, Value, json};

/// What a function needs from AWS, besides its code.
#[derive(Debug, Clone, Copy)]
pub struct FunctionSpec {
    pub name: &'static str,
    pub memory_mb: u32,
    pub timeout_s: u32,
    /// DynamoDB item actions on the table (and its indexes for `Query`).
    pub table_actions: &'static [&'static str],
    /// Posts to WebSocket clients (`execute-api:ManageConnections`).
    pub manages_connections: bool,
    /// Verifies bearer tokens, so may read the HS256 secret from Secrets Manager.
    pub verifies_tokens: bool,
    /// Amazon IVS actions on the stream channels and their keys; a function with any
    /// uses video, so it gets the video settings (`Video::from_env`).
    pub ivs_actions: &'static [&'static str],
    /// Signs private streams' viewer tokens, so may read the private half of the
    /// playback key pair from Secrets Manager.
    pub signs_viewer_tokens: bool,
    /// What it may do with the recordings' objects; a function with any gets the
    /// recordings' settings (`Recordings::from_env`).
    pub recordings: RecordingAccess,
}

impl FunctionSpec {
    /// The function uses video, with these IVS actions.
    const fn video(mut self, ivs_actions: &'static [&'static str]) -> Self {
        self.ivs_actions = ivs_actions;
        self
    }

    /// The function signs viewer tokens.
    const fn signing_viewer_tokens(mut self) -> Self {
        self.signs_viewer_tokens = true;
        self
    }

    /// The function uses the recordings' objects.
    const fn recordings(mut self, access: RecordingAccess) -> Self {
        self.recordings = access;
        self
    }

    /// The function does not take bearer tokens (its route authenticates a token of
    /// its own), so it may not read the HS256 secret.
    const fn without_bearer_tokens(mut self) -> Self {
        self.verifies_tokens = false;
        self
    }
}

const GET: &str = "dynamodb:GetItem";
const PUT: &str = "dynamodb:PutItem";
const UPDATE: &str = "dynamodb:UpdateItem";
const DELETE: &str = "dynamodb:DeleteItem";
const QUERY: &str = "dynamodb:Query";
const BATCH_GET: &str = "dynamodb:BatchGetItem";
const CHECK: &str = "dynamodb:ConditionCheckItem";

const fn http(name: &'static str, table_actions: &'static [&'static str]) -> FunctionSpec {
    FunctionSpec {
        name,
        memory_mb: 256,
        timeout_s: 10,
        table_actions,
        manages_connections: false,
        verifies_tokens: true,
        ivs_actions: &[],
        signs_viewer_tokens: false,
        recordings: RecordingAccess::None,
    }
}

/// Every function of the deployment. A bootstrap handler without an entry here fails
/// the tests.
pub const FUNCTIONS: &[FunctionSpec] = &[
    // With video, a stream's channel is created with it (CreateChannel, tagged with the
    // stream's id) and stored with its lookup item by a transaction (UpdateItem +
    // PutItem); DeleteChannel when another request stored its channel first. The ingest,
    // key and playback functions create it the same way for a stream without one.
    http("create-stream", &[GET, PUT, UPDATE]).video(&[
        CREATE_CHANNEL,
        TAG_RESOURCE,
        DELETE_CHANNEL,
    ]),
    http("list-live-streams", &[QUERY]),
    http("list-my-streams", &[QUERY]),
    http("get-stream", &[GET]),
    // The channel follows the settings (type, private playback, recording).
    http("update-stream", &[GET, UPDATE]).video(&[UPDATE_CHANNEL]),
    http("start-stream", &[GET, UPDATE]),
    // Stopping ends every watching period, then writes the final statistics; it takes
    // the closed marker back (DeleteItem) when the stream turns out still live; the
    // encoder is cut off and its key revoked.
    http("stop-stream", &[GET, UPDATE, QUERY, PUT, DELETE])
        .video(&[DELETE_STREAM_KEY, STOP_STREAM]),
    // A cancel that met a start takes the closed marker back (DeleteItem).
    http("cancel-stream", &[GET, UPDATE, DELETE]).video(&[DELETE_STREAM_KEY, STOP_STREAM]),
    http("update-stream-settings", &[GET, UPDATE]),
    http("join-stream", &[GET, PUT, UPDATE]),
    http("leave-stream", &[GET, UPDATE]),
    http("list-participants", &[GET, QUERY]),
    http("update-participant", &[GET, UPDATE, CHECK]),
    http("send-chat-message", &[GET, PUT, UPDATE]),
    http("list-chat-messages", &[GET, QUERY, PUT]),
    http("hide-chat-message", &[GET, UPDATE, CHECK]),
    http("pin-chat-message", &[GET, UPDATE, CHECK]),
    http("unpin-chat-message", &[GET, UPDATE]),
    http("get-stream-stats", &[GET, QUERY, PUT]),
    // The viewer's rights (stream, enrollment); the chat by time (GSI1), the questions
    // and the viewer's votes.
    http("get-replay", &[GET, QUERY]),
    // The participants, chat, questions and votes of the stream, the course's members.
    http("get-attendance", &[GET, QUERY]),
    // The push's health while connected.
    http("get-ingest", &[GET, UPDATE, PUT]).video(&[
        CREATE_CHANNEL,
        TAG_RESOURCE,
        DELETE_CHANNEL,
        GET_STREAM,
        GET_STREAM_SESSION,
    ]),
    // The encoder cut off, every key of the channel revoked, a new one.
    http("rotate-stream-key", &[GET, UPDATE, PUT]).video(&[
        CREATE_CHANNEL,
        TAG_RESOURCE,
        DELETE_CHANNEL,
        STOP_STREAM,
        LIST_STREAM_KEYS,
        DELETE_STREAM_KEY,
        CREATE_STREAM_KEY,
    ]),
    // Reads the viewer's rights (stream, enrollment); signs private streams' tokens.
    http("get-playback", &[GET, UPDATE, PUT])
        .video(&[CREATE_CHANNEL, TAG_RESOURCE, DELETE_CHANNEL])
        .signing_viewer_tokens(),
    // Reads the viewer's rights (stream, enrollment); signs the recording token and
    // presigns the thumbnail after reading the master playlist.
    http("get-recording", &[GET])
        .recordings(RecordingAccess::Read)
        .signing_viewer_tokens(),
    // Checks the recording token (the playback key), reads the stream's recording,
    // then the playlists, and presigns every segment.
    http("get-recording-playlist", &[GET])
        .recordings(RecordingAccess::Read)
        .signing_viewer_tokens()
        .without_bearer_tokens(),
    // Deletes the recording's objects, then marks it deleted (a conditional update).
    http("delete-recording", &[GET, UPDATE]).recordings(RecordingAccess::Delete),
    http("create-course", &[PUT]),
    http("list-my-courses", &[QUERY, BATCH_GET]),
    http("enroll-student", &[GET, PUT]),
    http("ask-question", &[GET, PUT, UPDATE]),
    http("list-questions", &[GET, QUERY]),
    http("upvote-question", &[GET, PUT, UPDATE]),
    http("remove-upvote", &[GET, DELETE, UPDATE]),
    http("answer-question", &[GET, UPDATE, CHECK]),
    http("hide-question", &[GET, UPDATE, CHECK]),
    http("approve-question", &[GET, UPDATE, CHECK]),
    http("dismiss-question", &[GET, UPDATE, CHECK]),
    http("reopen-question", &[GET, UPDATE, CHECK]),
    http("highlight-question", &[GET, UPDATE, CHECK]),
    http("clear-highlight", &[GET, UPDATE]),
    FunctionSpec {
        name: "ws-connect",
        memory_mb: 256,
        timeout_s: 10,
        table_actions: &[GET, PUT, UPDATE, DELETE],
        manages_connections: false,
        verifies_tokens: true,
        ivs_actions: &[],
        signs_viewer_tokens: false,
        recordings: RecordingAccess::None,
    },
    FunctionSpec {
        name: "ws-disconnect",
        memory_mb: 256,
        timeout_s: 10,
        table_actions: &[GET, UPDATE, DELETE],
        manages_connections: false,
        verifies_tokens: false,
        ivs_actions: &[],
        signs_viewer_tokens: false,
        recordings: RecordingAccess::None,
    },
    FunctionSpec {
        name: "ws-default",
        memory_mb: 256,
        timeout_s: 10,
        table_actions: &[GET, PUT, UPDATE, QUERY],
        manages_connections: true,
        verifies_tokens: false,
        ivs_actions: &[],
        signs_viewer_tokens: false,
        recordings: RecordingAccess::None,
    },
    FunctionSpec {
        name: "broadcast",
        memory_mb: 512,
        timeout_s: 60,
        table_actions: &[GET, PUT, UPDATE, DELETE, QUERY],
        manages_connections: true,
        verifies_tokens: false,
        ivs_actions: &[],
        signs_viewer_tokens: false,
        recordings: RecordingAccess::None,
    },
    // Posts pages of a large stream's connections; prunes those gone, as `$disconnect`.
    FunctionSpec {
        name: fanout::FUNCTION,
        memory_mb: 256,
        timeout_s: fanout::TIMEOUT_S,
        table_actions: &[GET, UPDATE, DELETE],
        manages_connections: true,
        verifies_tokens: false,
        ivs_actions: &[],
        signs_viewer_tokens: false,
        recordings: RecordingAccess::None,
    },
    // Ends lapsed HTTP presence and connections that died without `$disconnect`, and
    // classes whose push did not come back in time as a stop does (live streams by a
    // Query of GSI1, final statistics written, the encoder cut off and its key revoked);
    // deletes the channels retired an hour before (a Query of GSI1), then forgets them.
    FunctionSpec {
        name: "sweep-presence",
        memory_mb: 256,
        timeout_s: 60,
        table_actions: &[GET, PUT, UPDATE, DELETE, QUERY],
        manages_connections: true,
        verifies_tokens: false,
        ivs_actions: &[],
        signs_viewer_tokens: false,
        recordings: RecordingAccess::None,
    }
    .video(&[DELETE_STREAM_KEY, STOP_STREAM, DELETE_CHANNEL]),
    // Applies IVS stream state changes: finds the stream by its channel's lookup item,
    // records the ingest state, starts a scheduled stream, cuts off a push to a finished
    // one.
    FunctionSpec {
        name: video::FUNCTION,
        memory_mb: 256,
        timeout_s: video::TIMEOUT_S,
        table_actions: &[GET, UPDATE],
        manages_connections: false,
        verifies_tokens: false,
        ivs_actions: &[],
        signs_viewer_tokens: false,
        recordings: RecordingAccess::None,
    }
    .video(&[STOP_STREAM]),
];

/// Functions run on a schedule (EventBridge): `(function, schedule expression)`. Each
/// also needs its [`FUNCTIONS`] entry.
pub const SCHEDULED: &[(&str, &str)] = &[("sweep-presence", "rate(1 minute)")];

pub fn spec(name: &str) -> Option<&'static FunctionSpec> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// `create-stream` -> `CreateStreamFunction`.
pub fn logical_id(function: &str) -> String {
    let mut id: String = function
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    id.push_str("Function");
    id
}

pub(crate) fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

pub(crate) fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

pub(crate) fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

fn table_resource() -> Value {
    let def = &livestream::table::TABLE_DEFINITION;
    let attribute = |name: &str| json!({ "AttributeName": name, "AttributeType": "S" });
    let key = |hash: &str, range: &str| json!([{ "AttributeName": hash, "KeyType": "HASH" }, { "AttributeName": range, "KeyType": "RANGE" }]);
    let mut attributes = vec![attribute(def.partition_key), attribute(def.sort_key)];
    let mut indexes = Vec::new();
    for index in def.indexes {
        attributes.push(attribute(index.partition_key));
        attributes.push(attribute(index.sort_key));
        indexes.push(json!({
            "IndexName": index.name,
            "KeySchema": key(index.partition_key, index.sort_key),
            "Projection": { "ProjectionType": "ALL" },
        }));
    }
    json!({
        "Type": "AWS::DynamoDB::Table",
        "Metadata": checkov_skips(&[("CKV_AWS_119", "encrypted at rest with DynamoDB's AWS-owned key (SSESpecification); a customer-managed key adds a KMS call per request and a key to manage, an account policy decision")]),
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": attributes,
            "KeySchema": key(def.partition_key, def.sort_key),
            "GlobalSecondaryIndexes": indexes,
            "StreamSpecification": { "StreamViewType": def.stream_view_type },
            "TimeToLiveSpecification": { "AttributeName": def.ttl_attribute, "Enabled": true },
            "PointInTimeRecoverySpecification": { "PointInTimeRecoveryEnabled": true },
            "DeletionProtectionEnabled": { "Fn::If": ["ProtectTable", true, false] },
            "SSESpecification": { "SSEEnabled": true },
        }
    })
}

fn if_condition(condition: &str, then: Value, otherwise: Value) -> Value {
    json!({ "Fn::If": [condition, then, otherwise] })
}

fn no_value() -> Value {
    reference("AWS::NoValue")
}

fn policies(spec: &FunctionSpec) -> Value {
    let mut statements = vec![json!({
        "Effect": "Allow",
        "Action": spec.table_actions,
        "Resource": [get_att("Table", "Arn"), sub("${Table.Arn}/index/*")],
    })];
    if spec.manages_connections {
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["execute-api:ManageConnections"],
            "Resource": [sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/*/@connections/*")],
        }));
    }
    statements.extend(fanout::statements(spec.name));
    statements.extend(video::statements(spec));
    statements.extend(recording::statements(spec));
    if spec.verifies_tokens {
        statements.push(if_condition(
            "UseSecret",
            json!({
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                // Secrets Manager appends six random characters to a secret's name.
                "Resource": [sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${JwtSecretName}-??????")],
            }),
            no_value(),
        ));
    }
    if spec.name == "broadcast" {
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": [get_att("BroadcastFailureQueue", "Arn")],
        }));
    }
    json!([{ "Version": "2012-10-17", "Statement": statements }])
}

/// checkov findings that do not apply, each with its reason, on the resource itself.
fn checkov_skips(skips: &[(&str, &str)]) -> Value {
    let list: Vec<Value> = skips
        .iter()
        .map(|(id, comment)| json!({ "id": id, "comment": comment }))
        .collect();
    json!({ "checkov": { "skip": list } })
}

const FUNCTION_SKIPS: &[(&str, &str)] = &[
    (
        "CKV_AWS_116",
        "API Gateway and the event source mappings invoke synchronously, and a DLQ only serves asynchronous invocations (the stream's failed batches go to BroadcastFailureQueue, the fan-out pages to FanOutDeadLetterQueue); the sweeper's schedule runs it again a minute later, and video-events sends the events it fails on to VideoEventsDeadLetterQueue (EventInvokeConfig)",
    ),
    (
        "CKV_AWS_117",
        "reaches only DynamoDB, API Gateway, SQS, IVS and Secrets Manager over their public AWS endpoints; a VPC would add NAT cost and cold-start time for nothing",
    ),
    (
        "CKV_AWS_173",
        "the environment holds names, URLs and settings only, no secret (the HS256 secret and the playback key are read from Secrets Manager), so AWS-managed encryption suffices",
    ),
];

/// The one binary every function runs (`functions/bootstrap`).
pub const BOOTSTRAP: &str = "bootstrap";

fn function_resource(spec: &FunctionSpec, events: Map<String, Value>) -> Value {
    let id = logical_id(spec.name);
    let mut properties = json!({
        // Every function runs the same multi-call bootstrap; its Handler (`_HANDLER`)
        // names the function, so identical build definitions let SAM build it once.
        "CodeUri": "..",
        "Handler": spec.name,
        "Description": format!("livestream {}", spec.name),
        "MemorySize": spec.memory_mb,
        "Timeout": spec.timeout_s,
        "Policies": policies(spec),
        "LoggingConfig": { "LogGroup": reference(&format!("{id}LogGroup")) },
    });
    if !events.is_empty() {
        properties["Events"] = Value::Object(events);
    }
    video::function_properties(spec.name, &mut properties);
    // Added to the variables every function has (Globals).
    let mut variables = Map::new();
    if let Some(Value::Object(fanout)) =
        fanout::environment(spec.name).map(|e| e["Variables"].clone())
    {
        variables.extend(fanout);
    }
    variables.extend(video::variables(spec));
    variables.extend(recording::variables(spec));
    if !variables.is_empty() {
        properties["Environment"] = json!({ "Variables": variables });
    }
    let mut metadata = checkov_skips(FUNCTION_SKIPS);
    metadata["BuildMethod"] = json!("rust-cargolambda");
    metadata["BuildProperties"] = json!({ "Binary": BOOTSTRAP });
    json!({
        "Type": "AWS::Serverless::Function",
        "Metadata": metadata,
        "Properties": properties,
    })
}

const LOG_GROUP_SKIPS: &[(&str, &str)] = &[
    (
        "CKV_AWS_158",
        "CloudWatch Logs encrypts every log group; a customer-managed KMS key is an account decision, not this stack's",
    ),
    (
        "CKV_AWS_338",
        "retention is the LogRetentionDays parameter (30 days by default): request logs, not audit records",
    ),
];

fn log_group(name: Value) -> Value {
    json!({
        "Type": "AWS::Logs::LogGroup",
        "Metadata": checkov_skips(LOG_GROUP_SKIPS),
        "Properties": {
            "LogGroupName": name,
            "RetentionInDays": reference("LogRetentionDays"),
        }
    })
}

/// Every function name the template deploys, in a stable order.
pub fn deployed_functions() -> Vec<&'static str> {
    let mut names: Vec<&str> = Vec::new();
    for route in livestream::routes::ROUTES {
        if !names.contains(&route.function) {
            names.push(route.function);
        }
    }
    for (_, function) in livestream_ws::ROUTES {
        names.push(function);
    }
    names.push("broadcast");
    names.push(fanout::FUNCTION);
    names.extend(SCHEDULED.iter().map(|(function, _)| *function));
    names.push(video::FUNCTION);
    names
}

/// `create-stream` -> `CreateStream`: the prefix of a function's resources.
fn stem(function: &str) -> String {
    logical_id(function)
        .trim_end_matches("Function")
        .to_string()
}

fn alarm_actions() -> Value {
    if_condition(
        "HasAlarmTopic",
        json!([reference("AlarmTopicArn")]),
        no_value(),
    )
}

fn metric(
    id: &str,
    namespace: &str,
    name: &str,
    dimensions: Value,
    stat: &str,
    period: u32,
) -> Value {
    json!({
        "Id": id,
        "MetricStat": {
            "Metric": { "Namespace": namespace, "MetricName": name, "Dimensions": dimensions },
            "Period": period,
            "Stat": stat
        },
        "ReturnData": false
    })
}

fn math_alarm(
    description: &str,
    mut metrics: Vec<Value>,
    expression: &str,
    threshold: f64,
    periods: u32,
) -> Value {
    metrics.push(json!({ "Id": "result", "Expression": expression, "Label": description, "ReturnData": true }));
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Metrics": metrics,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": threshold,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "TreatMissingData": "notBreaching",
            "AlarmActions": alarm_actions(),
            "OKActions": alarm_actions()
        }
    })
}

fn alarms(resources: &mut Map<String, Value>) {
    for function in deployed_functions() {
        let dims = json!([{ "Name": "FunctionName", "Value": reference(&logical_id(function)) }]);
        resources.insert(
            format!("{}FailuresAlarm", stem(function)),
            math_alarm(
                &format!("{function}: invocations failed (crash, timeout) or were throttled"),
                vec![
                    metric("errors", "AWS/Lambda", "Errors", dims.clone(), "Sum", 60),
                    metric("throttles", "AWS/Lambda", "Throttles", dims, "Sum", 60),
                ],
                "errors + throttles",
                0.0,
                1,
            ),
        );
    }
    let broadcast = json!([{ "Name": "FunctionName", "Value": reference("BroadcastFunction") }]);
    resources.insert(
        "BroadcastIteratorAgeAlarm".into(),
        math_alarm(
            "broadcast: live events reach viewers more than a minute late (change-stream iterator age)",
            vec![metric("age", "AWS/Lambda", "IteratorAge", broadcast, "Maximum", 60)],
            "age",
            60_000.0,
            3,
        ),
    );
    let queue =
        json!([{ "Name": "QueueName", "Value": get_att("BroadcastFailureQueue", "QueueName") }]);
    resources.insert(
        "BroadcastFailureQueueAlarm".into(),
        math_alarm(
            "broadcast gave up on change-stream batches: they wait in BroadcastFailureQueue",
            vec![metric(
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
    // Retries absorb brief throttling; what is left failed a request. The table's own
    // ThrottledRequests also counts throttles that a retry then absorbed.
    resources.insert(
        "DynamoThrottlesAlarm".into(),
        math_alarm(
            "DynamoDB throttled calls beyond the SDK's retries: requests failed (a hot key or an account limit)",
            vec![metric(
                "throttles",
                livestream::telemetry::NAMESPACE,
                livestream::telemetry::DYNAMO_THROTTLES,
                json!([]),
                "Sum",
                300,
            )],
            "throttles",
            0.0,
            1,
        ),
    );
    let http = json!([{ "Name": "ApiId", "Value": reference("HttpApi") }]);
    resources.insert(
        "HttpApi5xxAlarm".into(),
        math_alarm(
            "HTTP API: more than 5 % of requests answered 5xx (with at least 20 requests in 5 minutes)",
            vec![
                metric("errors", "AWS/ApiGateway", "5xx", http.clone(), "Sum", 300),
                metric("requests", "AWS/ApiGateway", "Count", http, "Sum", 300),
            ],
            "IF(requests >= 20, 100 * errors / requests, 0)",
            5.0,
            1,
        ),
    );
    let ws = json!([{ "Name": "ApiId", "Value": reference("WebSocketApi") }, { "Name": "Stage", "Value": reference("StageName") }]);
    resources.insert(
        "WebSocketApiErrorAlarm".into(),
        math_alarm(
            "WebSocket API: more than 5 % of connects and messages failed in API Gateway or the function (with at least 20 in 5 minutes)",
            vec![
                metric("integration", "AWS/ApiGateway", "IntegrationError", ws.clone(), "Sum", 300),
                metric("execution", "AWS/ApiGateway", "ExecutionError", ws.clone(), "Sum", 300),
                metric("connects", "AWS/ApiGateway", "ConnectCount", ws.clone(), "Sum", 300),
                metric("messages", "AWS/ApiGateway", "MessageCount", ws, "Sum", 300),
            ],
            "IF(connects + messages >= 20, 100 * (integration + execution) / (connects + messages), 0)",
            5.0,
            1,
        ),
    );
}

fn lambda_permission(function_id: &str, api: &str) -> Value {
    json!({
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": reference(function_id),
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": sub(&format!("arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{api}}}/*"))
        }
    })
}

fn integration(api: &str, function_id: &str, payload_v2: bool) -> Value {
    let mut properties = json!({
        "ApiId": reference(api),
        "IntegrationType": "AWS_PROXY",
        "IntegrationUri": sub(&format!("arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{{function_id}.Arn}}/invocations"))
    });
    if payload_v2 {
        properties["PayloadFormatVersion"] = json!("2.0");
    }
    json!({ "Type": "AWS::ApiGatewayV2::Integration", "Properties": properties })
}

const HTTP_ACCESS_LOG: &str = r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","time":"$context.requestTime","routeKey":"$context.routeKey","status":"$context.status","latencyMs":"$context.responseLatency","responseLength":"$context.responseLength","error":"$context.error.message","integrationError":"$context.integrationErrorMessage"}"#;
const WS_ACCESS_LOG: &str = r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","time":"$context.requestTime","eventType":"$context.eventType","routeKey":"$context.routeKey","status":"$context.status","connectionId":"$context.connectionId","error":"$context.error.message","integrationError":"$context.integrationErrorMessage"}"#;

/// The HTTP API as plain API Gateway resources (not SAM's `HttpApi` events), so every
/// route can take the JWT authorizer only when the template's parameters configure one.
fn http_api_resources(resources: &mut Map<String, Value>) {
    resources.insert(
        "HttpApi".into(),
        json!({
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {
                "Name": sub("${AWS::StackName}-http"),
                "ProtocolType": "HTTP",
                "CorsConfiguration": {
                    "AllowOrigins": reference("AllowedOrigins"),
                    "AllowMethods": ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                    "AllowHeaders": ["authorization", "content-type"],
                    "ExposeHeaders": ["retry-after"],
                    "MaxAge": 600
                }
            }
        }),
    );
    resources.insert(
        "HttpApiJwtAuthorizer".into(),
        json!({
            "Type": "AWS::ApiGatewayV2::Authorizer",
            "Condition": "UseJwtAuthorizer",
            "Properties": {
                "ApiId": reference("HttpApi"),
                "Name": "jwt",
                "AuthorizerType": "JWT",
                "IdentitySource": ["$request.header.Authorization"],
                "JwtConfiguration": {
                    "Issuer": reference("JwtIssuer"),
                    "Audience": [reference("JwtAudience")]
                }
            }
        }),
    );
    resources.insert(
        "HttpApiAccessLogGroup".into(),
        log_group(sub("/aws/apigateway/${AWS::StackName}-http")),
    );
    resources.insert(
        "HttpApiStage".into(),
        json!({
            "Type": "AWS::ApiGatewayV2::Stage",
            "Properties": {
                "ApiId": reference("HttpApi"),
                "StageName": "$default",
                "AutoDeploy": true,
                "DefaultRouteSettings": {
                    "ThrottlingBurstLimit": reference("HttpBurstLimit"),
                    "ThrottlingRateLimit": reference("HttpRateLimit")
                },
                "AccessLogSettings": {
                    "DestinationArn": get_att("HttpApiAccessLogGroup", "Arn"),
                    "Format": HTTP_ACCESS_LOG
                }
            }
        }),
    );
    let mut functions: Vec<&str> = Vec::new();
    for route in livestream::routes::ROUTES {
        if !functions.contains(&route.function) {
            functions.push(route.function);
        }
    }
    for function in functions {
        let function_id = logical_id(function);
        let stem = stem(function);
        resources.insert(
            format!("{stem}Integration"),
            integration("HttpApi", &function_id, true),
        );
        resources.insert(
            format!("{stem}Permission"),
            lambda_permission(&function_id, "HttpApi"),
        );
        for (i, route) in livestream::routes::ROUTES
            .iter()
            .filter(|r| r.function == function)
            .enumerate()
        {
            let route_resource = match route.auth {
                livestream::routes::RouteAuth::Bearer => json!({
                    "Type": "AWS::ApiGatewayV2::Route",
                    "Metadata": checkov_skips(&[("CKV_AWS_309", "every function verifies the bearer JWT itself; API Gateway's JWT authorizer is added in front when JwtJwksUrl, JwtIssuer and JwtAudience are set (an HS256 secret cannot be checked by it)")]),
                    "Properties": {
                        "ApiId": reference("HttpApi"),
                        "RouteKey": format!("{} {}", route.method, route.path),
                        "Target": sub(&format!("integrations/${{{stem}Integration}}")),
                        "AuthorizationType": if_condition("UseJwtAuthorizer", json!("JWT"), json!("NONE")),
                        "AuthorizerId": if_condition("UseJwtAuthorizer", reference("HttpApiJwtAuthorizer"), no_value())
                    }
                }),
                // Players fetch it without headers: the function checks its `?token=`.
                livestream::routes::RouteAuth::QueryToken => json!({
                    "Type": "AWS::ApiGatewayV2::Route",
                    "Metadata": checkov_skips(&[("CKV_AWS_309", "HLS players fetch playlists without headers: the function checks the short-lived recording token in the URL's query, which GET /api/livestream/{id}/recording issues to whoever may watch")]),
                    "Properties": {
                        "ApiId": reference("HttpApi"),
                        "RouteKey": format!("{} {}", route.method, route.path),
                        "Target": sub(&format!("integrations/${{{stem}Integration}}")),
                        "AuthorizationType": "NONE"
                    }
                }),
            };
            resources.insert(format!("{stem}Route{i}"), route_resource);
        }
    }
}

/// The whole template as a JSON value (CloudFormation's long-form intrinsics).
pub fn template() -> Value {
    let mut resources = Map::new();
    resources.insert("Table".into(), table_resource());
    resources.insert(
        "BroadcastFailureQueue".into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Metadata": checkov_skips(&[("CKV_AWS_27", "encrypted with SQS-managed keys (SqsManagedSseEnabled), which this check does not recognize; it holds only change-stream batch coordinates")]),
            "Properties": { "MessageRetentionPeriod": 1_209_600, "SqsManagedSseEnabled": true }
        }),
    );
    http_api_resources(&mut resources);
    for function in deployed_functions() {
        let spec = spec(function).unwrap_or_else(|| panic!("{function} has no entry in FUNCTIONS"));
        let mut events = Map::new();
        if function == "broadcast" {
            events.insert(
                "TableStream".into(),
                json!({
                    "Type": "DynamoDB",
                    "Properties": {
                        "Stream": get_att("Table", "StreamArn"),
                        "StartingPosition": "LATEST",
                        "BatchSize": 1000,
                        "MaximumBatchingWindowInSeconds": 0,
                        "BisectBatchOnFunctionError": true,
                        "FunctionResponseTypes": ["ReportBatchItemFailures"],
                        "MaximumRetryAttempts": 5,
                        "MaximumRecordAgeInSeconds": 3600,
                        "ParallelizationFactor": 1,
                        "DestinationConfig": {
                            "OnFailure": { "Type": "SQS", "Destination": get_att("BroadcastFailureQueue", "Arn") }
                        }
                    }
                }),
            );
        }
        fanout::events(function, &mut events);
        video::events(function, &mut events);
        for (_, schedule) in SCHEDULED.iter().filter(|(f, _)| *f == function) {
            events.insert(
                "Schedule".into(),
                json!({ "Type": "Schedule", "Properties": { "Schedule": schedule } }),
            );
        }
        let id = logical_id(function);
        resources.insert(
            format!("{id}LogGroup"),
            log_group(sub(&format!("/aws/lambda/${{AWS::StackName}}-{function}"))),
        );
        resources.insert(id, function_resource(spec, events));
    }
    websocket_resources(&mut resources);
    fanout::resources(&mut resources);
    video::resources(&mut resources);
    recording::resources(&mut resources);
    alarms(&mut resources);
    video::alarms(&mut resources);

    let not_empty =
        |parameter: &str| json!({ "Fn::Not": [{ "Fn::Equals": [reference(parameter), ""] }] });
    let mut template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "Livestream backend: HTTP API, WebSocket API, one DynamoDB table, change-stream broadcaster, live video on Amazon IVS. Generated by `cargo run -p livestream-infra --bin gen-template`; do not edit by hand.",
        "Parameters": parameters(),
        "Rules": {
            "JwtSourceIsGiven": {
                "Assertions": [
                    {
                        "Assert": { "Fn::Or": [not_empty("JwtJwksUrl"), not_empty("JwtSecretName")] },
                        "AssertDescription": "Set JwtJwksUrl (an identity provider's keys) or JwtSecretName (a Secrets Manager secret with an HS256 secret): without one, every request would be refused"
                    },
                    {
                        "Assert": { "Fn::Not": [{ "Fn::And": [not_empty("JwtJwksUrl"), not_empty("JwtSecretName")] }] },
                        "AssertDescription": "Set only one of JwtJwksUrl and JwtSecretName"
                    }
                ]
            }
        },
        "Conditions": {
            "UseJwks": not_empty("JwtJwksUrl"),
            "UseSecret": not_empty("JwtSecretName"),
            "HasIssuer": not_empty("JwtIssuer"),
            "HasAudience": not_empty("JwtAudience"),
            "UseJwtAuthorizer": { "Fn::And": [{ "Condition": "UseJwks" }, { "Condition": "HasIssuer" }, { "Condition": "HasAudience" }] },
            "HasAlarmTopic": not_empty("AlarmTopicArn"),
            "ReserveConcurrency": { "Fn::Not": [{ "Fn::Equals": [reference("FunctionReservedConcurrency"), 0] }] },
            "SetApiGatewayLogsRole": { "Fn::Equals": [reference("SetApiGatewayLogsRole"), "true"] },
            "ProtectTable": { "Fn::Equals": [reference("DeletionProtection"), "true"] }
        },
        "Globals": {
            "Function": {
                "Runtime": "provided.al2023",
                "Architectures": ["arm64"],
                "Tracing": "Active",
                "ReservedConcurrentExecutions": if_condition("ReserveConcurrency", reference("FunctionReservedConcurrency"), no_value()),
                "Environment": { "Variables": {
                    "TABLE_NAME": reference("Table"),
                    "WS_MANAGEMENT_ENDPOINT": sub("https://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"),
                    "JWT_JWKS_URL": if_condition("UseJwks", reference("JwtJwksUrl"), no_value()),
                    "JWT_SECRET_NAME": if_condition("UseSecret", reference("JwtSecretName"), no_value()),
                    "JWT_ISSUER": if_condition("HasIssuer", reference("JwtIssuer"), no_value()),
                    "JWT_AUDIENCE": if_condition("HasAudience", reference("JwtAudience"), no_value()),
                    // No SSL_CERT_FILE: the SDK clients trust the AWS roots built into
                    // the bootstrap (shared/src/aws.rs), which start faster than any
                    // system bundle (`cargo run --release -p livestream-bench -- cold`).
                    "RUST_LOG": reference("LogLevel")
                } }
            }
        },
        "Resources": resources,
        "Outputs": {
            "HttpApiUrl": {
                "Description": "Base URL of the HTTP API (the frontend's API base; paths start with /api/)",
                "Value": sub("https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}")
            },
            "WebSocketUrl": {
                "Description": "WebSocket URL; clients connect with ?token=<JWT>&stream_id=<id>",
                "Value": sub("wss://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}")
            },
            "TableName": { "Description": "The DynamoDB table", "Value": reference("Table") },
            "BroadcastFailureQueueUrl": {
                "Description": "Change-stream batches the broadcaster gave up on",
                "Value": reference("BroadcastFailureQueue")
            }
        }
    });
    if let Some(outputs) = template["Outputs"].as_object_mut() {
        fanout::outputs(outputs);
        video::outputs(outputs);
        recording::outputs(outputs);
    }
    if let Some(parameters) = template["Parameters"].as_object_mut() {
        video::parameters(parameters);
        recording::parameters(parameters);
    }
    template
}

fn parameters() -> Value {
    json!({
        "StageName": { "Type": "String", "Default": "prod", "AllowedPattern": "^[A-Za-z0-9_]+$",
                       "Description": "Stage of the WebSocket API (part of its URL)" },
        "AllowedOrigins": { "Type": "CommaDelimitedList", "Default": "http://localhost:5173",
                            "Description": "Browser origins allowed by CORS, comma-separated (the frontend's URL)" },
        "JwtJwksUrl": { "Type": "String", "Default": "",
                        "Description": "RS256 keys of the identity provider, e.g. https://cognito-idp.<region>.amazonaws.com/<pool-id>/.well-known/jwks.json (set this or JwtSecretName)" },
        "JwtSecretName": { "Type": "String", "Default": "",
                           "Description": "Name of a Secrets Manager secret holding an HS256 secret (instead of a JWKS URL); functions read it on their first token, it never appears in this template or their environment" },
        "JwtIssuer": { "Type": "String", "Default": "", "Description": "Required `iss` of tokens (e.g. the Cognito pool URL); empty: not checked. With JwtJwksUrl and JwtAudience, API Gateway's JWT authorizer also rejects bad tokens before any function runs" },
        "JwtAudience": { "Type": "String", "Default": "", "Description": "Required `aud` of tokens (e.g. the app client id); empty: not checked" },
        "DeletionProtection": { "Type": "String", "Default": "true", "AllowedValues": ["true", "false"],
                                "Description": "Protect the table from deletion" },
        "LogRetentionDays": { "Type": "Number", "Default": 30,
                              "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653],
                              "Description": "Days to keep function and access logs" },
        "LogLevel": { "Type": "String", "Default": "info", "Description": "RUST_LOG of every function" },
        "AlarmTopicArn": { "Type": "String", "Default": "",
                           "Description": "SNS topic the alarms notify (and notify again when they clear); empty: alarms only show in CloudWatch" },
        "FunctionReservedConcurrency": { "Type": "Number", "Default": 0, "MinValue": 0,
                                         "Description": "Reserved concurrency of each function: caps how hard one endpoint can hit the table and keeps a busy one from taking the account's whole concurrency quota from the others. 0: unreserved (the account must keep 100 unreserved, so functions x this must fit the quota)" },
        "SetApiGatewayLogsRole": { "Type": "String", "Default": "true", "AllowedValues": ["true", "false"],
                                   "Description": "Give API Gateway (account-wide, this region) a role to write the WebSocket access logs; false if the account already has one" },
        "HttpRateLimit": { "Type": "Number", "Default": 500, "Description": "Steady requests per second of the HTTP API" },
        "HttpBurstLimit": { "Type": "Number", "Default": 1000, "Description": "Burst of the HTTP API" },
        "WebSocketRateLimit": { "Type": "Number", "Default": 200, "Description": "Steady messages per second into the WebSocket API" },
        "WebSocketBurstLimit": { "Type": "Number", "Default": 400, "Description": "Burst of the WebSocket API" }
    })
}

fn websocket_resources(resources: &mut Map<String, Value>) {
    resources.insert(
        "WebSocketApi".into(),
        json!({
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {
                "Name": sub("${AWS::StackName}-websocket"),
                "ProtocolType": "WEBSOCKET",
                "RouteSelectionExpression": "$request.body.action"
            }
        }),
    );
    let mut routes = Vec::new();
    for (route_key, function) in livestream_ws::ROUTES {
        let function_id = logical_id(function);
        let stem = stem(function);
        resources.insert(
            format!("{stem}Integration"),
            integration("WebSocketApi", &function_id, false),
        );
        resources.insert(
            format!("{stem}Route"),
            json!({
                "Type": "AWS::ApiGatewayV2::Route",
                "Metadata": checkov_skips(&[("CKV_AWS_309", "browsers cannot send headers on WebSockets: $connect verifies the ?token= JWT itself, and later messages belong to a connection it accepted")]),
                "Properties": {
                    "ApiId": reference("WebSocketApi"),
                    "RouteKey": route_key,
                    "AuthorizationType": "NONE",
                    "Target": sub(&format!("integrations/${{{stem}Integration}}"))
                }
            }),
        );
        resources.insert(
            format!("{stem}Permission"),
            lambda_permission(&function_id, "WebSocketApi"),
        );
        routes.push(format!("{stem}Route"));
    }
    resources.insert(
        "ApiGatewayLogsRole".into(),
        json!({
            "Type": "AWS::IAM::Role",
            "Condition": "SetApiGatewayLogsRole",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{ "Effect": "Allow", "Principal": { "Service": "apigateway.amazonaws.com" }, "Action": "sts:AssumeRole" }]
                },
                "ManagedPolicyArns": [sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs")]
            }
        }),
    );
    resources.insert(
        "ApiGatewayAccount".into(),
        json!({
            "Type": "AWS::ApiGateway::Account",
            "Condition": "SetApiGatewayLogsRole",
            "Properties": { "CloudWatchRoleArn": get_att("ApiGatewayLogsRole", "Arn") }
        }),
    );
    resources.insert(
        "WebSocketAccessLogGroup".into(),
        log_group(sub("/aws/apigateway/${AWS::StackName}-websocket")),
    );
    resources.insert(
        "WebSocketStage".into(),
        json!({
            "Type": "AWS::ApiGatewayV2::Stage",
            "DependsOn": routes,
            "Properties": {
                "ApiId": reference("WebSocketApi"),
                "StageName": reference("StageName"),
                // Every later route or integration change reaches clients without a
                // separate deployment resource.
                "AutoDeploy": true,
                // A reference, not DependsOn (which cannot name a resource whose
                // condition is false): access logs need the account's logs role first.
                "Description": if_condition("SetApiGatewayLogsRole", sub("livestream WebSocket stage (API Gateway account ${ApiGatewayAccount})"), json!("livestream WebSocket stage")),
                "DefaultRouteSettings": {
                    "ThrottlingBurstLimit": reference("WebSocketBurstLimit"),
                    "ThrottlingRateLimit": reference("WebSocketRateLimit")
                },
                "AccessLogSettings": {
                    "DestinationArn": get_att("WebSocketAccessLogGroup", "Arn"),
                    "Format": WS_ACCESS_LOG
                }
            }
        }),
    );
}

/// The template as YAML text, as committed in `infra/template.yaml`.
pub fn template_yaml() -> String {
    let yaml = serde_yaml::to_string(&template())
        .expect("a JSON value serializes to YAML")
        // Unquoted, YAML 1.1 readers take the version for a date.
        .replace(
            "AWSTemplateFormatVersion: 2010-09-09",
            "AWSTemplateFormatVersion: '2010-09-09'",
        );
    format!(
        "# Generated by `cargo run -p livestream-infra --bin gen-template` from the code's\n\
         # routes, functions and table definition. Do not edit by hand.\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_are_pascal_case() {
        assert_eq!(logical_id("create-stream"), "CreateStreamFunction");
        assert_eq!(logical_id("ws-connect"), "WsConnectFunction");
    }
}
