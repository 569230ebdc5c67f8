//! Release builds of the binary link the functions that run at start and while idle
//! next to each other (lld's `--symbol-ordering-file`, `link/startup.order`, made by
//! `link/order.sh`). The kernel maps a binary's text 64 KiB around every page a
//! process touches (fault-around), and start-up code is spread over the whole text,
//! so an idle daemon had 9.4 of its 12.5 MB of text resident although it had run only
//! 2.7 MB of it. Symbols the file names that a build no longer has are skipped; an
//! out-of-date file only makes the packing less tight. `TRIAGED_NO_ORDER=1` builds
//! without it (for a linker other than lld, the default linker of Rust ≥ 1.90 on
//! x86_64 Linux).
fn main() {
    println!("cargo:rerun-if-changed=link/startup.order");
    println!("cargo:rerun-if-env-changed=TRIAGED_NO_ORDER");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let wanted = var("PROFILE") == "release"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("TRIAGED_NO_ORDER").is_empty();
    let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("link/startup.order");
    if wanted && order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
