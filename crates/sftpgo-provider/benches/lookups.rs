//! User lookups by username per second on each backend: 1000 users, 16 concurrent tasks,
//! 3 seconds each. PostgreSQL and MariaDB are the local servers used by the tests (a
//! throw-away database each).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sftpgo_provider::bolt::BoltBackend;
use sftpgo_provider::memory::MemoryBackend;
use sftpgo_provider::mysql::MySqlBackend;
use sftpgo_provider::postgres::PostgresBackend;
use sftpgo_provider::sql::testdb;
use sftpgo_provider::sqlite::SqliteBackend;
use sftpgo_provider::{Backend, User};

const USERS: usize = 1000;
const TASKS: usize = 16;
const RUN: Duration = Duration::from_secs(3);

async fn measure(backend: Arc<dyn Backend>) -> f64 {
    for i in 0..USERS {
        let user = User {
            password: Some("$2b$04$abcdefghijklmnopqrstuu5Ff0vdXZp6Bq6YQmEolFv9A8hbFKE2.".into()),
            ..sftpgo_provider::conformance::sample_user(&format!("user{i:04}"))
        };
        backend.insert_user(&user).await.expect("insert");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (b, stop, count) = (backend.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("user{:04}", i % USERS);
                b.user_by_username(&name).await.expect("lookup");
                count.fetch_add(1, Ordering::Relaxed);
                i += 7;
                if i % 64 < 7 {
                    // The memory backend never suspends: let the timer task run.
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results = Vec::new();
    results.push(("memory", measure(Arc::new(MemoryBackend::new())).await));
    let sqlite = SqliteBackend::open(&dir.path().join("bench.db"), "users")
        .await
        .expect("sqlite");
    results.push(("sqlite", measure(Arc::new(sqlite)).await));
    let bolt = BoltBackend::open(&dir.path().join("bench.redb"))
        .await
        .expect("bolt");
    results.push(("bolt", measure(Arc::new(bolt)).await));
    if let Some(pg_db) = testdb::postgres().await {
        let pg = PostgresBackend::connect(&pg_db.settings)
            .await
            .expect("postgresql");
        results.push(("postgresql", measure(Arc::new(pg.clone())).await));
        pg.close().await;
    }
    if let Some(my_db) = testdb::mysql().await {
        let my = MySqlBackend::connect(&my_db.settings).await.expect("mysql");
        results.push(("mysql", measure(Arc::new(my.clone())).await));
        my.close().await;
    }
    for (driver, rate) in results {
        println!("{driver:>10}: {rate:>10.0} user lookups/s ({TASKS} tasks)");
    }
}
