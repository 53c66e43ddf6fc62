mod delivery;
mod helpers;
mod samples;
