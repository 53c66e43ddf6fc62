use livestream_api::handlers::questions;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    livestream_api::serve(questions::clear_highlight).await
}
