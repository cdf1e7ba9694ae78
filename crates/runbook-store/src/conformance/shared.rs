//! The `SharedState` role: a Standard Webhooks id is accepted once across instances, and a
//! shared secret is made once and the same for every instance.

use super::*;

pub(crate) async fn a_webhook_id_is_accepted_once(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let b = &s.backend;
    assert!(b.first_delivery("msg_1", LONG).await.unwrap());
    assert!(!b.first_delivery("msg_1", LONG).await.unwrap());
    assert!(!replicas[1].first_delivery("msg_1", LONG).await.unwrap());
    assert!(b.first_delivery("msg_2", LONG).await.unwrap());

    let deliveries: Vec<_> = (0..20)
        .map(|i| {
            let backend = replicas[i % 2].clone();
            tokio::spawn(async move { backend.first_delivery("msg_3", LONG).await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for delivery in deliveries {
        accepted += usize::from(delivery.await.unwrap());
    }
    assert_eq!(accepted, 1);

    assert!(b.first_delivery("msg_4", BRIEF).await.unwrap());
    assert!(!b.first_delivery("msg_4", BRIEF).await.unwrap());
    eventually("the replay window ends", || async move {
        b.first_delivery("msg_4", BRIEF).await.unwrap()
    })
    .await;
}

pub(crate) async fn a_shared_secret_is_made_once_and_the_same_for_every_instance(s: Subject) {
    let b = &s.backend;
    let other = (s.open_again)().await.unwrap();
    // Two replicas asking at once: one candidate wins, both get it.
    let (one, two) = tokio::join!(
        b.shared_secret("console-csrf", "first"),
        other.shared_secret("console-csrf", "second")
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one, two);
    assert!(one == "first" || one == "second", "{one}");
    // Later candidates change nothing; another name is another secret.
    assert_eq!(b.shared_secret("console-csrf", "third").await.unwrap(), one);
    assert_eq!(
        other.shared_secret("another", "fourth").await.unwrap(),
        "fourth"
    );
}
