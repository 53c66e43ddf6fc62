#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    livestream_ws::serve("ws-disconnect").await
}
