//! The `Alerts` role: alerts that started nothing are recorded as given and read back newest
//! first, each disposition as it was written (a name this host does not know included). The
//! alerts admissions record are `queue.rs`'s.

use super::*;
use crate::records::Disposition;

pub(crate) async fn recorded_alerts_read_back_newest_first_with_their_disposition(s: Subject) {
    let b = &s.backend;
    b.record_alerts(vec![
        alert("First", "unrouted"),
        alert("Second", "rejected"),
        alert("Third", "escalated"),
    ])
    .await
    .unwrap();
    let read = b.alerts(10).await.unwrap();
    let got: Vec<(&str, &Disposition)> = read
        .iter()
        .map(|a| (a.alertname.as_str(), &a.disposition))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Third", &Disposition::Other("escalated".into())),
            ("Second", &Disposition::Rejected),
            ("First", &Disposition::Unrouted),
        ]
    );
    assert_eq!(b.alerts(1).await.unwrap().len(), 1);
}
