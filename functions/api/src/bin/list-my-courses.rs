use livestream_api::handlers::courses;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    livestream_api::serve(courses::list_mine).await
}
