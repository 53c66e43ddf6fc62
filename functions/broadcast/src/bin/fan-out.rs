#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    livestream_broadcast::serve_fan_out().await
}
