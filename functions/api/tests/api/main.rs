mod chat;
mod courses;
mod helpers;
mod participation;
mod samples;
mod stats;
mod streams;
