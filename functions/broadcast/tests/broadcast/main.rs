mod delivery;
mod helpers;
