//! The cluster-wide tests, one module per feature. Handoff, subscriptions, visibility,
//! how often players are sent updates ([`pacing`]), a crowd held to each player's byte budget ([`budget`]) and what only a receiver's state can refuse ([`hostile_peers`]) run tick by tick on
//! the in-process [`stepper`] (no sockets, manual time); walking, bad input, the
//! proxies' player cap, the swarm and the [`abuse`] at every door run end to end over real TCP, through a
//! `LocalCluster` of real servers and proxies on loopback ports ([`harness`]), as do
//! players coming back where they left ([`rejoin`]); play over a slow, uneven link ([`lag`]); updates by
//! datagram, a quarter of them lost ([`datagrams`]); and a whole cluster stopped and
//! started again as a real process, on SQLite and on PostgreSQL ([`restart`]); and
//! players of a lost proxy resuming their sessions through another ([`resume`]). Chat
//! ([`chat`]) runs on both. What hosts are given (maps, compose file, Kubernetes
//! manifests) is checked against itself in [`hosting`].

mod abuse;
mod bad_input;
mod budget;
mod chat;
mod datagrams;
mod handoff;
mod harness;
mod hostile_peers;
mod hosting;
mod lag;
mod late_inputs;
mod limits;
mod pacing;
mod rejoin;
mod restart;
mod resume;
mod stepper;
mod subscriptions;
mod swarm;
mod visibility;
mod walking;
