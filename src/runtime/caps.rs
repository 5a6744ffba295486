//! Connection caps as counts: how many connections of one listener a shard accepted, how many
//! of them have not completed their handshake, and why one more is refused.
//!
//! Plain values and arithmetic, shared by the accept loops (`accept.rs`), the shard context
//! that keeps the counts (`shard.rs`) and the mesh message that reports a change back to the
//! accepting shard (`mesh.rs`); it must not depend on any of them.

/// Open connections of one listener that this shard accepted, as this shard counts them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub open: usize,
    /// Of `open`, those that have not completed the handshake.
    pub unauthenticated: usize,
}

/// A change to an accepting shard's count, sent back by the shard that serves the connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The connection completed its handshake.
    Authenticated,
    /// The connection ended (after its handshake or not).
    Ended { authenticated: bool },
}

/// Why a connection is refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections(usize),
    MaxUnauthenticated(usize),
    /// The admin endpoint serves `accept::ADMIN_MAX_CONNECTIONS` at once.
    AdminBusy,
}

impl Count {
    /// Admits one more connection under the caps `(max, max_unauthenticated)`.
    pub fn admit(&mut self, max: usize, max_unauthenticated: usize) -> Result<(), Refusal> {
        if self.open >= max {
            return Err(Refusal::MaxConnections(max));
        }
        if self.unauthenticated >= max_unauthenticated {
            return Err(Refusal::MaxUnauthenticated(max_unauthenticated));
        }
        self.open += 1;
        self.unauthenticated += 1;
        Ok(())
    }

    pub fn apply(&mut self, change: Admission) {
        match change {
            Admission::Authenticated => {
                self.unauthenticated = self.unauthenticated.saturating_sub(1)
            }
            Admission::Ended { authenticated } => {
                self.open = self.open.saturating_sub(1);
                if !authenticated {
                    self.unauthenticated = self.unauthenticated.saturating_sub(1);
                }
            }
        }
    }
}
