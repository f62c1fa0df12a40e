//! `azi3-status-jobs replay`: the command as a user runs it, and its HTML report in a real
//! browser.

mod browser;
mod cli;
