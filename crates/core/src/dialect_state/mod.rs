//! State that one product's wire needs core to keep, apart from the domain rules and
//! without wire text: ZStack's async job results (`jobs`), server-wide settings such as
//! its `twofa.enable` (`settings`) and its inventory query engine (`query`); Saasu's
//! files and web-service keys (`files`).

pub mod files;
pub mod jobs;
pub mod query;
pub mod settings;
