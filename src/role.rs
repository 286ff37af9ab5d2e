//! [`Role`]: which side of a ring a handle plays.

/// Which side of a ring a handle plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The sending side.
    Producer,
    /// The receiving side.
    Consumer,
}

impl Role {
    /// 0 for the producer, 1 for the consumer: an index into per-side arrays.
    pub(crate) const fn index(self) -> usize {
        match self {
            Role::Producer => 0,
            Role::Consumer => 1,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        })
    }
}
