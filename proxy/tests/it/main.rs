//! End-to-end tests of the proxy: its binary as a host runs it ([`cli`]), and its front
//! door's limits against a stand-in server ([`limits`], [`stand_in`]).

mod cli;
mod limits;
mod stand_in;
