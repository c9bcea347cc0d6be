//! Build script of `pilotlight-store`: makes cargo rebuild the crate when a file under
//! `migrations/` is added, removed or changed, because `sqlx::migrate!` embeds that directory at
//! compile time and only tracks the files that existed when it last ran.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
