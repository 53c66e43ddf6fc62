mod connections;
mod helpers;
mod messages;
mod samples;
