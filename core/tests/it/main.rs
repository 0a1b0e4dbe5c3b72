//! Every integration test of the server, in one binary: each module starts real servers (SQLite
//! and PostgreSQL, headless Chromium where a page is checked) through `common`, and linking the
//! server once instead of once per file is most of what the suite costs on two cores.

mod common;

mod actors;
mod alerts;
mod api;
mod asterisk;
mod browser;
mod browser_board;
mod browser_identity;
mod cli;
mod demo;
mod fragments;
mod history;
mod home;
mod identity;
mod migrations;
mod one_flow;
mod permissions;
mod plugin_install;
mod plugin_runtime;
mod plugins;
mod resilience;
mod rooms;
mod security;
mod tokens;
