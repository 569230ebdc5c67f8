//! Release builds of the binary link the functions that run at start and while idle
//! next to each other (lld's `--symbol-ordering-file`, `link/startup.order`, made by
//! `link/order.sh`). The kernel maps a binary's text 64 KiB around every page a
//! process touches (fault-around), and start-up code is spread over the whole text,
//! so an idle daemon had 9.4 of its 12.5 MB of text resident although it had run only
//! 2.7 MB of it. Symbols the file names that a build no longer has are skipped; an
//! out-of-date file only makes the packing less tight. The option is lld's: it is
//! passed only where rustc links with its own lld by default (Rust ≥ 1.90 on
//! x86_64 Linux) and no other linker was asked for; `TRIAGED_NO_ORDER=1` builds
//! without it.
fn main() {
    println!("cargo:rerun-if-changed=link/startup.order");
    println!("cargo:rerun-if-env-changed=TRIAGED_NO_ORDER");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let other_linker = var("CARGO_ENCODED_RUSTFLAGS").contains("link")
        || std::env::vars().any(|(k, _)| k.starts_with("CARGO_TARGET_") && k.ends_with("_LINKER"));
    let wanted = var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && rustc_minor().is_some_and(|minor| minor >= 90)
        && !other_linker
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

/// The minor version of the rustc cargo builds with (`rustc 1.95.0 (…)` → 95).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
