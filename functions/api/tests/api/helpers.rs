//! Drives the API handlers the way API Gateway does: the route is matched from the
//! shared routes table, a payload 2.0 event is built and parsed by `lambda_http`, and
//! the function is invoked by name, against an embedded DynamoDB of its own.

use http::StatusCode;
use livestream::apigw::{HttpRequestSpec, http_request};
use livestream::auth::Role;
use livestream::routes::match_route;
use livestream::testing::{TestEnv, token};
use serde_json::{Value, json};

pub struct TestApp {
    pub env: TestEnv,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: http::HeaderMap,
}

impl Reply {
    /// The stable error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self {
            env: TestEnv::start().await,
        }
    }

    /// Sends a request as `user` (`None`: without a token).
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let (route, params) =
            match_route(method, path).unwrap_or_else(|| panic!("no route for {method} {path}"));
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(user) = user {
            headers.push(("authorization".into(), format!("Bearer {user}")));
        }
        let body = body.map(|b| b.to_string());
        let request = http_request(&HttpRequestSpec {
            method,
            route_path: route.path,
            path,
            path_parameters: params,
            query,
            headers,
            body: body.as_deref(),
            ..Default::default()
        });
        let response = livestream_api::invoke(route.function, &self.env.state, request)
            .await
            .expect("every route has a handler");
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.into_body() {
            lambda_http::Body::Text(t) => serde_json::from_str(&t).expect("responses are JSON"),
            lambda_http::Body::Empty => Value::Null,
            lambda_http::Body::Binary(b) => serde_json::from_slice(&b).expect("responses are JSON"),
            _ => Value::Null,
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn post(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call("POST", path, Some(user), Some(body)).await
    }

    pub async fn get(&self, path: &str, user: &str) -> Reply {
        self.call("GET", path, Some(user), None).await
    }

    /// A course taught by `teacher`; returns its id.
    pub async fn course(&self, teacher: &str) -> String {
        let reply = self
            .post("/api/courses", teacher, json!({"title": "Rust 101"}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["id"].as_str().unwrap().to_string()
    }

    pub async fn enroll(&self, teacher: &str, course_id: &str, student_id: &str) {
        let reply = self
            .post(
                &format!("/api/courses/{course_id}/enrollments"),
                teacher,
                json!({"user_id": student_id}),
            )
            .await;
        assert!(reply.status.is_success(), "{:?}", reply.body);
    }

    /// A scheduled stream of a new course of `teacher`; returns (stream id, course id).
    pub async fn stream(&self, teacher: &str, extra: Value) -> (String, String) {
        let course_id = self.course(teacher).await;
        let mut body = json!({"title": "Live lecture", "course_id": course_id});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let reply = self.post("/api/livestream/", teacher, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        (reply.body["id"].as_str().unwrap().to_string(), course_id)
    }

    /// A live stream of `teacher`.
    pub async fn live_stream(&self, teacher: &str, extra: Value) -> (String, String) {
        let (id, course) = self.stream(teacher, extra).await;
        let reply = self
            .post(&format!("/api/livestream/{id}/start"), teacher, json!({}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        (id, course)
    }
}

pub fn teacher(id: &str) -> String {
    token(id, Role::Teacher)
}

pub fn student(id: &str) -> String {
    token(id, Role::Student)
}

pub fn admin(id: &str) -> String {
    token(id, Role::Admin)
}
