//! Client round trips against the Coder fake on 127.0.0.1: the client's own overhead (request
//! building, classification, JSON decoding) plus loopback HTTP and the fake's handler.
//!
//! `cargo bench -p coder --bench roundtrip`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coder::types::{CreateUserRequest, DEFAULT_ORGANIZATION_ALIAS, LoginType, PatchGroupRequest};
use coder::{CoderClient, CoderConfig, SessionToken};
use coder_fake::{CoderFake, FakeOptions};
use criterion::{Criterion, criterion_group, criterion_main};

fn roundtrips(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let options = FakeOptions {
        premium: true,
        rate_limit_per_minute: None,
        ..Default::default()
    };
    let fake = runtime.block_on(CoderFake::start(options)).unwrap();
    let config = CoderConfig::new(
        fake.base_url().parse().unwrap(),
        SessionToken::new(fake.owner_token()),
    );
    let client = CoderClient::new(config).unwrap();
    let org = fake.default_organization_id();
    let (user, group) = runtime.block_on(async {
        for i in 0..200 {
            let request = CreateUserRequest {
                email: format!("user{i}@example.com"),
                username: format!("user{i}"),
                name: String::new(),
                login_type: LoginType::Oidc,
                organization_ids: vec![DEFAULT_ORGANIZATION_ALIAS],
                user_status: None,
                service_account: false,
            };
            client.create_user(&request).await.unwrap();
        }
        let user = client
            .find_user_by_username("user100")
            .await
            .unwrap()
            .unwrap();
        let group = client
            .create_group(
                org,
                &coder::types::CreateGroupRequest {
                    name: "devs".into(),
                    display_name: String::new(),
                },
            )
            .await
            .unwrap();
        (user, group)
    });

    c.bench_function("build_info", |b| {
        b.iter(|| runtime.block_on(client.build_info()).unwrap())
    });
    c.bench_function("find_user_by_email among 200", |b| {
        b.iter(|| {
            runtime
                .block_on(client.find_user_by_email("user150@example.com"))
                .unwrap()
                .unwrap()
        })
    });
    c.bench_function("list_all_users 201", |b| {
        b.iter(|| runtime.block_on(client.list_all_users(None)).unwrap())
    });
    c.bench_function("group patch add+remove", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let add = PatchGroupRequest {
                    add_users: vec![user.id],
                    ..Default::default()
                };
                client.patch_group(group.id, &add).await.unwrap();
                let remove = PatchGroupRequest {
                    remove_users: vec![user.id],
                    ..Default::default()
                };
                client.patch_group(group.id, &remove).await.unwrap();
            })
        })
    });
    drop(fake);
}

criterion_group!(benches, roundtrips);
criterion_main!(benches);
