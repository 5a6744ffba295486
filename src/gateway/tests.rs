//! The gateway core without sockets: handshakes, the trust rule, routing to owner shards,
//! link flow control and reload decisions, driven through its inputs and read from its outputs.
