//! Security: what an attacker probing Monti from outside, or from another tenant, must not
//! achieve. One module per area; each test fails on a server without the fix it covers.

mod access;
mod alert_isolation;
mod floods;
mod hooks;
mod invitations;
mod packages;
mod scoped;
mod streams;
mod uploads;
