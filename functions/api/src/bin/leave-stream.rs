use livestream_api::handlers::participation;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    livestream_api::serve(participation::leave).await
}
