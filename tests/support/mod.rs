//! Shared test support: stand-ins for the services this one talks to.

#![allow(dead_code)]

pub mod megazord;
pub mod service;
