mod connections;
mod helpers;
mod messages;
