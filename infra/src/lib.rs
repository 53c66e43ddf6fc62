//! The AWS deployment, generated from the code so it cannot drift from it.
//!
//! `infra/template.yaml` is written by `cargo run -p livestream-infra --bin
//! gen-template` from: the HTTP routes ([`livestream::routes::ROUTES`]), the WebSocket
//! routes ([`livestream_ws::ROUTES`]), the broadcaster, the table definition
//! ([`livestream::table::TABLE_DEFINITION`]) and [`FUNCTIONS`], the one table of each
//! function's size and of the DynamoDB actions it may use (least privilege). A test
//! fails when the committed template differs from what the code generates.

mod fanout;

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
    }
}

/// Every function of the deployment. A binary without an entry here fails the tests.
pub const FUNCTIONS: &[FunctionSpec] = &[
    http("create-stream", &[GET, PUT]),
    http("list-live-streams", &[QUERY]),
    http("list-my-streams", &[QUERY]),
    http("get-stream", &[GET]),
    http("update-stream", &[GET, UPDATE]),
    http("start-stream", &[GET, UPDATE]),
    // Stopping ends every watching period, then writes the final statistics.
    http("stop-stream", &[GET, UPDATE, QUERY, PUT]),
    http("cancel-stream", &[GET, UPDATE]),
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
    },
    FunctionSpec {
        name: "ws-disconnect",
        memory_mb: 256,
        timeout_s: 10,
        table_actions: &[GET, UPDATE, DELETE],
        manages_connections: false,
    },
    FunctionSpec {
        name: "ws-default",
        memory_mb: 256,
        timeout_s: 10,
        table_actions: &[GET, PUT, UPDATE, QUERY],
        manages_connections: true,
    },
    FunctionSpec {
        name: "broadcast",
        memory_mb: 512,
        timeout_s: 60,
        table_actions: &[GET, PUT, UPDATE, DELETE, QUERY],
        manages_connections: true,
    },
    // Posts pages of a large stream's connections; prunes those gone, as `$disconnect`.
    FunctionSpec {
        name: fanout::FUNCTION,
        memory_mb: 256,
        timeout_s: fanout::TIMEOUT_S,
        table_actions: &[GET, UPDATE, DELETE],
        manages_connections: true,
    },
    // Ends lapsed HTTP presence and connections that died without `$disconnect`.
    FunctionSpec {
        name: "sweep-presence",
        memory_mb: 256,
        timeout_s: 60,
        table_actions: &[GET, UPDATE, DELETE, QUERY],
        manages_connections: true,
    },
];

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
    if spec.name == "broadcast" {
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": [get_att("BroadcastFailureQueue", "Arn")],
        }));
    }
    json!([{ "Version": "2012-10-17", "Statement": statements }])
}

fn function_resource(spec: &FunctionSpec, events: Map<String, Value>) -> Value {
    let id = logical_id(spec.name);
    let mut properties = json!({
        "CodeUri": "..",
        "Handler": "bootstrap",
        "Description": format!("livestream {}", spec.name),
        "MemorySize": spec.memory_mb,
        "Timeout": spec.timeout_s,
        "Policies": policies(spec),
        "LoggingConfig": { "LogGroup": reference(&format!("{id}LogGroup")) },
    });
    if !events.is_empty() {
        properties["Events"] = Value::Object(events);
    }
    if let Some(environment) = fanout::environment(spec.name) {
        properties["Environment"] = environment;
    }
    json!({
        "Type": "AWS::Serverless::Function",
        "Metadata": { "BuildMethod": "rust-cargolambda", "BuildProperties": { "Binary": spec.name } },
        "Properties": properties,
    })
}

fn log_group(function: &str) -> Value {
    json!({
        "Type": "AWS::Logs::LogGroup",
        "Properties": {
            "LogGroupName": sub(&format!("/aws/lambda/${{AWS::StackName}}-{function}")),
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
    names.push("sweep-presence");
    names
}

/// The whole template as a JSON value (CloudFormation's long-form intrinsics).
pub fn template() -> Value {
    let mut resources = Map::new();
    resources.insert("Table".into(), table_resource());
    resources.insert(
        "BroadcastFailureQueue".into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Properties": { "MessageRetentionPeriod": 1_209_600, "SqsManagedSseEnabled": true }
        }),
    );
    resources.insert(
        "HttpApi".into(),
        json!({
            "Type": "AWS::Serverless::HttpApi",
            "Properties": {
                "CorsConfiguration": {
                    "AllowOrigins": reference("AllowedOrigins"),
                    "AllowMethods": ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                    "AllowHeaders": ["authorization", "content-type"],
                    "ExposeHeaders": ["retry-after"],
                    "MaxAge": 600
                },
                "DefaultRouteSettings": {
                    "ThrottlingBurstLimit": reference("HttpBurstLimit"),
                    "ThrottlingRateLimit": reference("HttpRateLimit")
                }
            }
        }),
    );
    for function in deployed_functions() {
        let spec = spec(function).unwrap_or_else(|| panic!("{function} has no entry in FUNCTIONS"));
        let mut events = Map::new();
        for (i, route) in livestream::routes::ROUTES
            .iter()
            .filter(|r| r.function == function)
            .enumerate()
        {
            events.insert(
                format!("Route{i}"),
                json!({
                    "Type": "HttpApi",
                    "Properties": { "ApiId": reference("HttpApi"), "Method": route.method, "Path": route.path }
                }),
            );
        }
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
        if function == "sweep-presence" {
            events.insert(
                "EveryMinute".into(),
                json!({ "Type": "Schedule", "Properties": { "Schedule": "rate(1 minute)" } }),
            );
        }
        let id = logical_id(function);
        resources.insert(format!("{id}LogGroup"), log_group(function));
        resources.insert(id, function_resource(spec, events));
    }
    websocket_resources(&mut resources);
    fanout::resources(&mut resources);

    let mut template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "Livestream backend: HTTP API, WebSocket API, one DynamoDB table, change-stream broadcaster. Generated by `cargo run -p livestream-infra --bin gen-template`; do not edit by hand.",
        "Parameters": parameters(),
        "Conditions": {
            "UseJwks": { "Fn::Not": [{ "Fn::Equals": [reference("JwtJwksUrl"), ""] }] },
            "UseSecret": { "Fn::Not": [{ "Fn::Equals": [reference("JwtSecretName"), ""] }] },
            "HasIssuer": { "Fn::Not": [{ "Fn::Equals": [reference("JwtIssuer"), ""] }] },
            "HasAudience": { "Fn::Not": [{ "Fn::Equals": [reference("JwtAudience"), ""] }] },
            "ProtectTable": { "Fn::Equals": [reference("DeletionProtection"), "true"] }
        },
        "Globals": {
            "Function": {
                "Runtime": "provided.al2023",
                "Architectures": ["arm64"],
                "Environment": { "Variables": {
                    "TABLE_NAME": reference("Table"),
                    "WS_MANAGEMENT_ENDPOINT": sub("https://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"),
                    "JWT_JWKS_URL": { "Fn::If": ["UseJwks", reference("JwtJwksUrl"), reference("AWS::NoValue")] },
                    "JWT_SECRET": { "Fn::If": ["UseSecret", sub("{{resolve:secretsmanager:${JwtSecretName}:SecretString}}"), reference("AWS::NoValue")] },
                    "JWT_ISSUER": { "Fn::If": ["HasIssuer", reference("JwtIssuer"), reference("AWS::NoValue")] },
                    "JWT_AUDIENCE": { "Fn::If": ["HasAudience", reference("JwtAudience"), reference("AWS::NoValue")] },
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
                        "Description": "RS256 keys of the identity provider, e.g. https://cognito-idp.<region>.amazonaws.com/<pool-id>/.well-known/jwks.json" },
        "JwtSecretName": { "Type": "String", "Default": "",
                           "Description": "Name of a Secrets Manager secret holding an HS256 secret (instead of a JWKS URL); the value never appears in this template" },
        "JwtIssuer": { "Type": "String", "Default": "", "Description": "Required `iss` of tokens (e.g. the Cognito pool URL); empty: not checked" },
        "JwtAudience": { "Type": "String", "Default": "", "Description": "Required `aud` of tokens (e.g. the app client id); empty: not checked" },
        "DeletionProtection": { "Type": "String", "Default": "true", "AllowedValues": ["true", "false"],
                                "Description": "Protect the table from deletion" },
        "LogRetentionDays": { "Type": "Number", "Default": 30,
                              "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653],
                              "Description": "Days to keep function logs" },
        "LogLevel": { "Type": "String", "Default": "info", "Description": "RUST_LOG of every function" },
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
        let stem = function_id.trim_end_matches("Function").to_string();
        resources.insert(
            format!("{stem}Integration"),
            json!({
                "Type": "AWS::ApiGatewayV2::Integration",
                "Properties": {
                    "ApiId": reference("WebSocketApi"),
                    "IntegrationType": "AWS_PROXY",
                    "IntegrationUri": sub(&format!("arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{{function_id}.Arn}}/invocations"))
                }
            }),
        );
        resources.insert(
            format!("{stem}Route"),
            json!({
                "Type": "AWS::ApiGatewayV2::Route",
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
            json!({
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": reference(&function_id),
                    "Principal": "apigateway.amazonaws.com",
                    "SourceArn": sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/*")
                }
            }),
        );
        routes.push(format!("{stem}Route"));
    }
    resources.insert(
        "WebSocketDeployment".into(),
        json!({
            "Type": "AWS::ApiGatewayV2::Deployment",
            "DependsOn": routes,
            "Properties": { "ApiId": reference("WebSocketApi") }
        }),
    );
    resources.insert(
        "WebSocketStage".into(),
        json!({
            "Type": "AWS::ApiGatewayV2::Stage",
            "Properties": {
                "ApiId": reference("WebSocketApi"),
                "StageName": reference("StageName"),
                "DeploymentId": reference("WebSocketDeployment"),
                "DefaultRouteSettings": {
                    "ThrottlingBurstLimit": reference("WebSocketBurstLimit"),
                    "ThrottlingRateLimit": reference("WebSocketRateLimit")
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
