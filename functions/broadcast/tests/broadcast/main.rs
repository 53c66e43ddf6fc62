mod access;
mod delivery;
mod helpers;
mod samples;
