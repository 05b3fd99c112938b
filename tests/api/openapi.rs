//! The committed OpenAPI document matches the code (it fails on drift).

#[test]
fn the_committed_openapi_document_is_current() {
    let generated = consent_ledger::startup::openapi_json();
    let committed = include_str!("../../openapi/openapi.json");
    assert!(
        generated == committed,
        "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_problem_answer_is_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(&consent_ledger::startup::openapi_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let has_problem = responses.iter().any(|(status, r)| {
                (status.starts_with('4') || status.starts_with('5'))
                    && r["content"].get("application/problem+json").is_some()
            });
            if path != "/healthz" {
                assert!(has_problem, "{method} {path} documents no problem response");
            }
        }
    }
}

/// Every `$ref` names a schema the document holds: a client generator or a
/// fuzzer cannot use a reference that leads nowhere.
#[test]
fn every_reference_resolves() {
    fn refs<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                for (name, inner) in map {
                    match (name.as_str(), inner.as_str()) {
                        ("$ref", Some(target)) => found.push(target),
                        _ => refs(inner, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| refs(i, found)),
            _ => {}
        }
    }
    let doc: serde_json::Value =
        serde_json::from_str(&consent_ledger::startup::openapi_json()).unwrap();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty(), "the document uses references");
    for target in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} is not a local reference"));
        assert!(doc.pointer(pointer).is_some(), "{target} leads nowhere");
    }
}
