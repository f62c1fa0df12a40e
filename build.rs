//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the `migrations/` folders at
//! compile time, and a new file changes no Rust source.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
