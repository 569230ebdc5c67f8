//! Fills a data directory with N resolved incidents (one alert and three audit
//! entries each), through the store as the daemon writes them, for the growth
//! benchmark (`benches/growth.sh`).
//!
//! `cargo run --release --example seed -- --data-dir /tmp/d --incidents 1000000`

#[path = "../benches/common/batch.rs"]
mod batch;

use std::time::Instant;

use clap::Parser;
use triaged::config::StoreSettings;
use triaged::store::{SledStore, Store};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    data_dir: std::path::PathBuf,
    #[arg(long)]
    incidents: u64,
}

fn main() {
    let args = Args::parse();
    let store = SledStore::open(&StoreSettings {
        data_dir: args.data_dir.clone(),
        cache_capacity_bytes: 32 << 20,
        checkpoint_interval_secs: 3600,
        checkpoint_max_records: 200_000,
        backup_dir: std::path::PathBuf::from("backups"),
        ballast_bytes: 0,
    })
    .expect("store opens");
    let started = Instant::now();
    let mut next = store.next_incident_number().unwrap();
    let end = next + args.incidents;
    while next < end {
        let n = (end - next).min(1000);
        store.commit(batch::resolved_batch(next, n)).unwrap();
        next += n;
    }
    store.flush().unwrap();
    eprintln!(
        "seeded {} incidents in {:.1} s",
        args.incidents,
        started.elapsed().as_secs_f64()
    );
}
