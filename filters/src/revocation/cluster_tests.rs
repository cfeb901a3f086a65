//! Tests of [`RedisStore`] against a real 3-master Redis Cluster started here.

use std::time::{Duration, Instant};

use redis::AsyncCommands;

use super::test_redis::{admin, RedisCluster};
use super::tests::{calls, config, token, HOUR, ISS, SLACK};
use super::*;

#[tokio::test]
async fn cluster_check_sees_revocations_on_different_shards() {
    let cluster = RedisCluster::start().await;
    let s = RedisStore::connect(RedisConfig {
        cluster: true,
        ..config(cluster.urls())
    })
    .await
    .expect("connect to the cluster");
    let keys = KeyScheme::default();

    let family = "fam-cluster";
    let family_master = cluster.master_of(&keys.family_key(family)).await;
    // A jti whose key lives on another master (bounded search: 3 masters, ~1/3 collide).
    let mut jti = None;
    for i in 0..64 {
        let candidate = format!("jti-{i}");
        if cluster.master_of(&keys.token_key(&candidate)).await != family_master {
            jti = Some(candidate);
            break;
        }
    }
    let jti = jti.expect("a jti on another master");
    let jti_master = cluster.master_of(&keys.token_key(&jti)).await;
    assert_ne!(jti_master, family_master);

    s.revoke_family(family, HOUR).await.unwrap();
    s.revoke_token(&jti, HOUR).await.unwrap();
    // Each entry is on its own shard.
    for (port, key) in [
        (family_master, keys.family_key(family)),
        (jti_master, keys.token_key(&jti)),
    ] {
        let mut conn = admin(port).await;
        let exists: bool = conn.exists(&key).await.unwrap();
        assert!(exists, "{key} not on {port}");
    }

    let mut masters = Vec::new();
    for node in &cluster.nodes {
        let mut conn = admin(node.port).await;
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut conn)
            .await
            .unwrap();
        masters.push((node.port, conn));
    }
    // Both keys in one check, each answer attributed to the right entry.
    assert_eq!(
        s.check(&token(Some(&jti), Some(family), Some(1))).await,
        Ok(Verdict::TokenRevoked)
    );
    assert_eq!(
        s.check(&token(Some("not-revoked"), Some(family), Some(1)))
            .await,
        Ok(Verdict::FamilyRevoked)
    );
    assert_eq!(
        s.check(&token(Some(&jti), Some("other-family"), Some(1)))
            .await,
        Ok(Verdict::TokenRevoked)
    );
    assert_eq!(
        s.check(&token(Some("not-revoked"), Some("other-family"), Some(1)))
            .await,
        Ok(Verdict::Valid)
    );
    s.revoke_subject(ISS, "alice", 100, HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(Some("not-revoked"), Some("other-family"), Some(1)))
            .await,
        Ok(Verdict::SubjectRevoked)
    );

    // The first check was split into one MGET per shard, no CROSSSLOT error anywhere.
    let mut errors = 0;
    for (port, conn) in &mut masters {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(conn)
            .await
            .unwrap();
        if *port == jti_master || *port == family_master {
            assert!(calls(&stats, "mget") >= 1, "no MGET on {port}: {stats}");
        }
        let errorstats: String = redis::cmd("INFO")
            .arg("errorstats")
            .query_async(conn)
            .await
            .unwrap();
        errors += errorstats.matches("CROSSSLOT").count();
    }
    assert_eq!(errors, 0, "CROSSSLOT errors were returned");
    assert!(s.ping().await.is_ok());
}

#[tokio::test]
async fn cluster_store_recovers_when_a_master_restarts() {
    let mut cluster = RedisCluster::start().await;
    let s = RedisStore::connect(RedisConfig {
        cluster: true,
        timeout: Duration::from_millis(200),
        ..config(cluster.urls())
    })
    .await
    .expect("connect to the cluster");
    let keys = KeyScheme::default();
    s.revoke_token("victim", HOUR).await.unwrap();
    let master = cluster.master_of(&keys.token_key("victim")).await;
    let index = cluster
        .nodes
        .iter()
        .position(|n| n.port == master)
        .expect("master is a node");

    cluster.nodes[index].kill();
    let started = Instant::now();
    let result = s.check(&token(Some("victim"), None, None)).await;
    assert!(result.is_err(), "{result:?}");
    assert!(started.elapsed() < Duration::from_millis(200) + SLACK);

    // Same port, same nodes.conf: the node rejoins with its slots (its data is gone).
    cluster.nodes[index].restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(v) = s.check(&token(Some("victim"), None, None)).await {
            assert_eq!(v, Verdict::Valid);
            break;
        }
        assert!(Instant::now() < deadline, "cluster store did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.revoke_token("victim", HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(Some("victim"), None, None)).await,
        Ok(Verdict::TokenRevoked)
    );
}
