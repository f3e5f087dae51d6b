//! The log store and state machine pass openraft's own storage conformance suite.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use sluice_broker::raft::TypeConfig;
use sluice_broker::raft::log_store::LogStore;
use sluice_broker::raft::state_machine::StateMachine;
use sluice_broker::store::log::LogOptions;
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let to_storage = |e: std::io::Error| StorageError::read(TypeConfig::err_from_error(&e));
        let dir = TempDir::new().map_err(to_storage)?;
        let log = LogStore::open(dir.path(), LogOptions::default(), None).map_err(to_storage)?;
        let sm = StateMachine::new(
            &dir.path().join("snapshots"),
            log.clone(),
            Default::default(),
        )
        .map_err(to_storage)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn log_store_and_state_machine_pass_the_openraft_suite() {
    TypeConfig::run(async {
        Suite::test_all(Builder).await.expect("conformance");
    });
}
