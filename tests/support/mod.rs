//! Shared test support: stand-ins for the services this one talks to.

#![allow(dead_code)]

pub mod app;
pub mod live;
pub mod megazord;
pub mod service;
pub mod tcp_proxy;
