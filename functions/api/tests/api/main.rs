mod chat;
mod courses;
mod helpers;
mod participation;
mod questions;
mod samples;
mod stats;
mod streams;
