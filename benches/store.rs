//! Store writes: one durable commit (write-ahead log append + fdatasync) of a batch of
//! 100 new incidents with one alert each and their audit entries, as correlation makes
//! them; the background checkpoint into sled runs as in production.
//!
//! `cargo bench --bench store`

#[path = "common/batch.rs"]
mod batch;

use batch::batch;
use divan::counter::ItemsCount;
use divan::Bencher;
use triaged::config::StoreSettings;
use triaged::store::{SledStore, Store};

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 50, sample_size = 10)]
fn commit_100_incidents(bencher: Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&StoreSettings {
        data_dir: dir.path().to_path_buf(),
        cache_capacity_bytes: 8 << 20,
        checkpoint_interval_secs: 30,
        checkpoint_max_records: 50_000,
        backup_dir: std::path::PathBuf::from("backups"),
        ballast_bytes: 0,
    })
    .unwrap();
    bencher.counter(ItemsCount::new(100usize)).bench_local(|| {
        let start = store.next_incident_number().unwrap();
        store.commit(batch(start, 100)).unwrap();
    });
}
