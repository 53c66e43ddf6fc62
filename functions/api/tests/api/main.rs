mod chat;
mod courses;
mod helpers;
mod participation;
mod stats;
mod streams;
