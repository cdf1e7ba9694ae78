//! What opening a store promises (`StoreInfo`, the backends' `open`): a schema newer than
//! this host is refused.

use super::*;

pub(crate) async fn a_newer_schema_is_refused(s: Subject) {
    (s.set_schema_version)(99).await.unwrap();
    let err = (s.open_again)().await.err().expect("a newer schema opened");
    assert!(format!("{err:#}").contains("schema version 99"), "{err:#}");
}
