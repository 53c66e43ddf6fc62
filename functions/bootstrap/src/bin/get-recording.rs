//! One function alone, the one this binary is named after, for `cargo lambda watch`
//! (every file of `src/bin/` is this one; on Lambda every function runs `bootstrap`).

fn main() {
    livestream_bootstrap::main(Some(env!("CARGO_BIN_NAME")));
}
