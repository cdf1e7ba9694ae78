use std::collections::HashSet;

use super::*;

#[test]
fn the_document_is_openapi_3_1_with_unique_operation_ids() {
    let json: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
    assert!(
        json["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        json["openapi"]
    );
    let mut ids = HashSet::new();
    for (path, item) in json["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}"));
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            assert!(
                !op["responses"].as_object().unwrap().is_empty(),
                "{method} {path} has no responses"
            );
        }
    }
}

#[test]
fn every_security_requirement_names_a_scheme() {
    let json: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
    let schemes = json["components"]["securitySchemes"].as_object().unwrap();
    for (path, item) in json["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} says nothing of auth"));
            for requirement in security {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(
                        schemes.contains_key(name),
                        "{method} {path}: no scheme {name}"
                    );
                }
            }
        }
    }
}
