//! The service layer's tests over real sockets: the metrics endpoint's probes, and the
//! image's health check asking them ([`probes`]).

mod probes;
