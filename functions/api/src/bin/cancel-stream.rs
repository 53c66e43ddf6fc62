use livestream_api::handlers::streams;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    livestream_api::serve(streams::cancel).await
}
