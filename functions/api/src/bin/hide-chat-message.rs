use livestream_api::handlers::chat;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    livestream_api::serve(chat::hide).await
}
