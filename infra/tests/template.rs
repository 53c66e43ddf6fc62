//! The deployment cannot drift from the code: the committed template is exactly what
//! the code generates, every function binary is deployed, every route has its function,
//! and the table is the one the code (and the local stack) creates.

use std::collections::BTreeSet;
use std::path::Path;

use livestream_infra::{FUNCTIONS, deployed_functions, logical_id, template, template_yaml};

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

/// The `[[bin]]` names of every crate under `functions/`.
fn function_binaries() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let mut in_bin = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
                names.insert(name.trim_matches('"').to_string());
            }
        }
    }
    names
}

#[test]
fn every_function_binary_is_deployed_and_every_deployed_function_has_a_binary() {
    let binaries = function_binaries();
    assert!(binaries.len() >= 30, "found the binaries: {binaries:?}");
    let deployed: BTreeSet<String> = deployed_functions().into_iter().map(String::from).collect();
    assert_eq!(binaries, deployed);
    let specified: BTreeSet<String> = FUNCTIONS.iter().map(|f| f.name.to_string()).collect();
    assert_eq!(
        specified, deployed,
        "FUNCTIONS has exactly the deployed functions"
    );
    let resources = &template()["Resources"];
    for name in &binaries {
        let resource = &resources[logical_id(name)];
        assert_eq!(resource["Type"], "AWS::Serverless::Function", "{name}");
        assert_eq!(
            resource["Metadata"]["BuildProperties"]["Binary"],
            name.as_str()
        );
        assert_eq!(resource["Metadata"]["BuildMethod"], "rust-cargolambda");
    }
}

#[test]
fn every_route_is_served_by_its_function() {
    let resources = &template()["Resources"];
    for route in livestream::routes::ROUTES {
        let events = &resources[logical_id(route.function)]["Properties"]["Events"];
        let found = events.as_object().unwrap().values().any(|e| {
            e["Type"] == "HttpApi"
                && e["Properties"]["Method"] == route.method
                && e["Properties"]["Path"] == route.path
        });
        assert!(
            found,
            "{} {} -> {}",
            route.method, route.path, route.function
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
