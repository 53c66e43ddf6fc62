//! The Lambda bootstrap of every function: `_HANDLER` (the function's `Handler`) names
//! the function to run.

fn main() {
    livestream_bootstrap::main(std::env::var("_HANDLER").ok().as_deref());
}
