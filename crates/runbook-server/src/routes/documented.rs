//! The route table against the OpenAPI document (openapi/): the same routes, behind the same
//! doors.

use std::collections::HashSet;

use super::*;

/// The route table is what the router serves: each route has an operation of the same method
/// and path, and each operation a route. A new route without a spec entry fails here.
#[test]
fn every_route_has_an_operation_and_every_operation_a_route() {
    let json: serde_json::Value =
        serde_json::from_str(&crate::openapi::document().to_json().unwrap()).unwrap();
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
    let routed: HashSet<(String, String)> = table()
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
    let json: serde_json::Value =
        serde_json::from_str(&crate::openapi::document().to_json().unwrap()).unwrap();
    for route in table() {
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
        let public = route.access == Access::Open;
        assert_eq!(
            open, public,
            "{} {}: open to anyone?",
            route.method, route.path
        );
    }
}
