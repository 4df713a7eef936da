//! `sqlx::migrate!()` embeds `migrations/` at compile time, and Cargo reruns
//! a macro only when a file it already knows changes: a new migration is a
//! new file, so without this the binary and its tests keep migrating to the
//! schema of the previous build. The build script sqlx recommends.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
