//! What the tests share, apart from the tests themselves: servers, clients and mounts
//! (`util`), and the real PostgreSQL cluster (`pg`) and Garage (`garage`) they start.

pub mod garage;
pub mod pg;
pub mod util;
