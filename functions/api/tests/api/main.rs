mod courses;
mod helpers;
mod streams;
