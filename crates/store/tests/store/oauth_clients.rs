//! OAuth clients: create, check the secret, revoke, list, audit.

use crate::backend_tests;
use crate::harness::TestDb;
use store::{CLIENT_ID_PREFIX, ClientCheck, Scopes, StoreError, TOKEN_PREFIX};

async fn clients_check_their_secret_until_revoked(db: &TestDb) {
    let oauth_clients = db.store.oauth_clients();
    let audit = db.store.audit();
    let entra = oauth_clients.create("entra", Scopes::ALL).await.unwrap();
    let reader = oauth_clients.create("reader", Scopes::READ).await.unwrap();
    assert!(entra.client_id.starts_with(CLIENT_ID_PREFIX));
    assert!(entra.client_secret.starts_with(TOKEN_PREFIX));
    assert_ne!(entra.client_id, reader.client_id);
    assert_ne!(entra.client_secret, reader.client_secret);

    let check = |id: String, secret: String| {
        let store = db.store.clone();
        async move { store.oauth_clients().check(&id, &secret).await.unwrap() }
    };
    match check(entra.client_id.clone(), entra.client_secret.clone()).await {
        ClientCheck::Valid(info) => {
            assert_eq!(
                (info.name.as_str(), info.scopes, info.revoked_at),
                ("entra", Scopes::ALL, None)
            );
            assert_eq!(info.client_id, entra.client_id);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        check(reader.client_id.clone(), reader.client_secret.clone()).await,
        ClientCheck::Valid(info) if info.scopes == Scopes::READ
    ));
    // Another client's secret, a secret with a byte more, an unknown id: all just invalid.
    for (id, secret) in [
        (entra.client_id.clone(), reader.client_secret.clone()),
        (entra.client_id.clone(), format!("{}x", entra.client_secret)),
        (entra.client_id.clone(), String::new()),
        ("scimc_unknown".to_string(), entra.client_secret.clone()),
    ] {
        assert_eq!(check(id, secret).await, ClientCheck::Invalid);
    }

    let dup = oauth_clients
        .create("entra", Scopes::ALL)
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Uniqueness(_)), "{dup:?}");
    assert!(matches!(
        oauth_clients.create("empty", Scopes::NONE).await,
        Err(StoreError::Invalid { .. })
    ));

    assert!(oauth_clients.revoked().await.unwrap().is_empty());
    oauth_clients.revoke("entra").await.unwrap();
    assert_eq!(
        check(entra.client_id.clone(), entra.client_secret.clone()).await,
        ClientCheck::Revoked
    );
    assert_eq!(
        check(entra.client_id.clone(), reader.client_secret.clone()).await,
        ClientCheck::Invalid,
        "a wrong secret tells nothing about the client"
    );
    assert_eq!(
        oauth_clients.revoked().await.unwrap(),
        vec![entra.client_id.clone()]
    );
    assert!(matches!(
        oauth_clients.revoke("entra").await,
        Err(StoreError::NotFound(_))
    ));
    // The name is free again once revoked (rotation), with a new id and secret.
    let entra2 = oauth_clients.create("entra", Scopes::READ).await.unwrap();
    assert_ne!(entra2.client_id, entra.client_id);

    let listed = oauth_clients.list().await.unwrap();
    let summary: Vec<(&str, Scopes, bool)> = listed
        .iter()
        .map(|c| (c.name.as_str(), c.scopes, c.revoked_at.is_some()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("entra", Scopes::ALL, true),
            ("reader", Scopes::READ, false),
            ("entra", Scopes::READ, false)
        ]
    );

    let records = audit.export(None).await.unwrap();
    let ops: Vec<(&str, Option<&str>, Option<&str>)> = records
        .iter()
        .map(|r| {
            (
                r.operation.as_str(),
                r.resource_type.as_deref(),
                r.resource_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("oauth_client.create", Some("OAuthClient"), Some("entra")),
            ("oauth_client.create", Some("OAuthClient"), Some("reader")),
            ("oauth_client.revoke", Some("OAuthClient"), Some("entra")),
            ("oauth_client.create", Some("OAuthClient"), Some("entra")),
        ]
    );
    assert_eq!(records[0].change["client_id"], entra.client_id.as_str());
    let exported = serde_json::to_string(&records).unwrap();
    for secret in [
        &entra.client_secret,
        &reader.client_secret,
        &entra2.client_secret,
    ] {
        assert!(
            !exported.contains(secret.as_str()),
            "a secret reached the audit log"
        );
    }
    assert!(audit.verify().await.unwrap().first_broken.is_none());
}

backend_tests!(clients_check_their_secret_until_revoked);
