//! The workspace's root package: it holds the integration tests (`tests/`) and no code.
//!
//! The code is in four crates, each a folder of `src/` (docs/ARCHITECTURE.md §1):
//! `ibackup-proto` (`src/proto/`: wire types, keys and the blob envelope, the objects),
//! `ibackup-client` (`src/client/`: the `ibackup` command and its mount), `ibackup-server`
//! (`src/server/`: `ibackup-server`) and `ibackup-tools` (`src/tools/`: the fuzzer and the
//! load tester, which release builds leave out). The client and the server each depend on
//! `proto` and never on each other: the compiler keeps that wall.
