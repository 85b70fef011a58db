//! Rebuilds the server when a migration file is added, renamed or changed:
//! `sqlx::migrate!` (in `db.rs`) embeds `../migrations` at compile time, and
//! without this Cargo would not notice a new file there.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
