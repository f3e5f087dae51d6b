//! The CRDs as the API server will see them, and the conversion of specs to the v1 API.

use serde_json::{Value, json};

use super::*;

fn schema(crd: &CustomResourceDefinition) -> Value {
    serde_json::to_value(&crd.spec.versions[0].schema).expect("schema")["openAPIV3Schema"].clone()
}

/// `crds/` (and the chart's copy) hold exactly what `sluice-operator crds --dir crds`
/// writes.
#[test]
fn the_crds_directories_are_what_the_generator_writes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in [root.join("crds"), root.join("charts/sluice/crds")] {
        crds_directory_is_generated(&dir);
    }
}

fn crds_directory_is_generated(dir: &std::path::Path) {
    let mut expected: Vec<String> = Vec::new();
    for (file, crd) in all() {
        expected.push(file.to_string());
        let written = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            written == to_yaml(&crd).expect("yaml"),
            "{}/{file} differs from the generated CRD; run `cargo run -p sluice-operator -- crds --dir crds` and copy crds/*.yaml to charts/sluice/crds/",
            dir.display()
        );
    }
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .expect("a crds directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    present.sort();
    expected.sort();
    assert_eq!(
        present, expected,
        "crds/ holds a file the generator does not write"
    );
}

#[test]
fn every_kind_is_in_the_sluice_category_with_status() {
    for (_, crd) in all() {
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.categories, Some(vec!["sluice".to_string()]));
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let columns = version
            .additional_printer_columns
            .as_ref()
            .expect("columns");
        assert!(columns.iter().any(|c| c.name == "Ready"));
    }
}

#[test]
fn a_cluster_scales_through_the_scale_subresource() {
    let crd = SluiceCluster::crd();
    let scale = crd.spec.versions[0]
        .subresources
        .as_ref()
        .and_then(|s| s.scale.as_ref())
        .expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let spec = &schema(&crd)["properties"]["spec"];
    assert_eq!(
        spec["properties"]["replicas"]["minimum"].as_f64(),
        Some(1.0)
    );
    let required = spec["required"].as_array().expect("required");
    assert!(required.contains(&json!("replicas")) && required.contains(&json!("image")));
}

#[test]
fn queue_ranges_and_transition_rules_are_in_the_schema() {
    let spec = &schema(&Queue::crd())["properties"]["spec"];
    let props = &spec["properties"];
    assert_eq!(
        props["visibilitySeconds"]["maximum"].as_f64(),
        Some(43200.0)
    );
    assert_eq!(props["retentionSeconds"]["minimum"].as_f64(), Some(60.0));
    assert_eq!(props["deletionPolicy"]["enum"], json!(["Delete", "Retain"]));
    let rules = props["partitions"]["x-kubernetes-validations"].to_string();
    assert!(rules.contains("self >= oldSelf"), "{rules}");
    assert!(
        props["fifo"]["x-kubernetes-validations"]
            .to_string()
            .contains("self == oldSelf")
    );
    assert_eq!(spec["required"], json!(["clusterRef"]));
    assert_eq!(props["name"]["pattern"], json!(common::BROKER_NAME_PATTERN));
}

#[test]
fn a_subscription_endpoint_is_exactly_one_of_its_kinds() {
    let endpoint = &schema(&Subscription::crd())["properties"]["spec"]["properties"]["endpoint"];
    let one_of = endpoint["oneOf"].as_array().expect("oneOf");
    let mut kinds: Vec<String> = one_of
        .iter()
        .map(|branch| {
            branch["required"][0]
                .as_str()
                .expect("required")
                .to_string()
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["email", "http", "pull", "queue", "websocket"]);
    // Structural: every branch's property is declared on the parent.
    for kind in &kinds {
        assert!(
            endpoint["properties"][kind].is_object(),
            "{kind} not declared"
        );
    }
}

#[test]
fn a_subscription_spec_becomes_the_v1_body() {
    let spec: SubscriptionSpec = serde_json::from_value(json!({
        "clusterRef": {"name": "demo"},
        "topicRef": {"name": "orders"},
        "endpoint": {"http": {"url": "http://audit:8080/hook"}},
        "filter": {"tags": ["paid"], "attributes": {
            "region": [{"prefix": "eu-"}, {"equals": "us"}],
            "total": [{"numeric": {"gte": 100, "lt": 200}}],
            "vip": [{"exists": true}],
        }},
        "retry": {"strategy": "EXPONENTIAL_DECAY_RETRY", "maxRetries": 5},
        "format": "SIMPLIFIED",
        "maxInFlight": 4,
    }))
    .expect("spec");
    let wire = spec.to_wire(Some("k".into())).expect("wire");
    assert_eq!(
        serde_json::to_value(&wire).expect("json"),
        json!({
            "endpoint": {"http": {"url": "http://audit:8080/hook"}},
            "filter": {"tags": ["paid"], "attributes": {
                "region": [{"prefix": "eu-"}, "us"],
                "total": [{"numeric": [">=", 100.0, "<", 200.0]}],
                "vip": [{"exists": true}],
            }},
            "retry": {"strategy": "EXPONENTIAL_DECAY_RETRY", "maxRetries": 5},
            "format": "SIMPLIFIED",
            "maxInFlight": 4,
            "secret": "k",
        })
    );
}

#[test]
fn an_attribute_condition_with_two_kinds_is_refused() {
    let condition = AttributeConditionSpec {
        equals: Some("a".into()),
        prefix: Some("b".into()),
        ..AttributeConditionSpec::default()
    };
    assert!(condition.to_wire().unwrap_err().contains("exactly one"));
    assert!(AttributeConditionSpec::default().to_wire().is_err());
}

#[test]
fn a_queue_spec_sends_only_what_it_sets() {
    let spec: QueueSpec = serde_json::from_value(json!({
        "clusterRef": {"name": "demo"},
        "visibilitySeconds": 60,
        "deadLetter": {"queue": "orders-dlq", "maxReceives": 5},
    }))
    .expect("spec");
    assert_eq!(spec.deletion_policy, DeletionPolicy::Delete);
    assert_eq!(
        serde_json::to_value(spec.attributes()).expect("json"),
        json!({"visibilitySeconds": 60, "deadLetter": {"queue": "orders-dlq", "maxReceives": 5}})
    );
}
