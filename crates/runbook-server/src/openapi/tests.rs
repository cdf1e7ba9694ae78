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

/// The route table is what the router serves: each route has an operation of the same method
/// and path, and each operation a route. A new route without a spec entry fails here.
#[test]
fn every_route_has_an_operation_and_every_operation_a_route() {
    let json: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
    let documented: HashSet<(String, String)> = json["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: HashSet<(String, String)> = crate::routes::table()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let mut undocumented: Vec<_> = routed.difference(&documented).collect();
    let mut unrouted: Vec<_> = documented.difference(&routed).collect();
    undocumented.sort();
    unrouted.sort();
    assert!(
        undocumented.is_empty(),
        "routes without an operation: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "operations without a route: {unrouted:?}"
    );
}

/// An operation's tag says which door it is behind: the same as the route's surface.
#[test]
fn each_operation_is_behind_its_routes_door() {
    use crate::routes::Surface;
    let json: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
    for route in crate::routes::table() {
        let op = &json["paths"][route.path][route.method.as_str().to_lowercase()];
        let tag = op["tags"][0].as_str().unwrap_or_default();
        let open = op["security"].as_array().is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|r| r.is_empty()))
        });
        let expected: &[&str] = match route.surface {
            Surface::Hook => &["hooks"],
            Surface::Api => &["runs", "fleet"],
            Surface::Health => &["health"],
            Surface::Agent => &["agent"],
            Surface::Console | Surface::Asset => &["console"],
        };
        assert!(
            expected.contains(&tag),
            "{} {}: tag {tag}",
            route.method,
            route.path
        );
        let public = matches!(route.surface, Surface::Health | Surface::Asset);
        assert_eq!(
            open, public,
            "{} {}: open to anyone?",
            route.method, route.path
        );
    }
}
