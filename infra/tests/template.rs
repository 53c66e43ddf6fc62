//! The deployment cannot drift from the code: the committed template is exactly what
//! the code generates, every deployed function has its handler in the bootstrap and
//! every handler its function, every route has its function, and the table is the one
//! the code (and the local stack) creates.

use std::collections::BTreeSet;
use std::path::Path;

use livestream_infra::{
    BOOTSTRAP, FUNCTIONS, deployed_functions, logical_id, template, template_yaml,
};

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

#[test]
fn the_hs256_secret_never_enters_the_environment_and_only_token_verifiers_may_read_it() {
    let t = template();
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(env.get("JWT_SECRET").is_none());
    assert_eq!(env["JWT_SECRET_NAME"]["Fn::If"][1]["Ref"], "JwtSecretName");
    assert!(!t.to_string().contains("resolve:secretsmanager"));
    for spec in FUNCTIONS {
        let text = t["Resources"][logical_id(spec.name)]["Properties"]["Policies"].to_string();
        assert_eq!(
            text.contains("secretsmanager:GetSecretValue"),
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
        assert_eq!(p["AuthorizationType"]["Fn::If"][0], "UseJwtAuthorizer");
        assert_eq!(
            p["AuthorizerId"]["Fn::If"][1]["Ref"],
            "HttpApiJwtAuthorizer"
        );
        count += 1;
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
