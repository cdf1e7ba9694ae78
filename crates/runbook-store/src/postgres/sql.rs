//! The statements every part of the PostgreSQL store sends, through one place: prepared once
//! per connection, their errors with the server's message, and counted (`statements_sent`).

use anyhow::Result;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{count_statement, pg_error};

pub(super) async fn query(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    count_statement();
    let statement = c.prepare_cached(sql).await.map_err(pg_error)?;
    c.query(&statement, params).await.map_err(pg_error)
}

pub(super) async fn query_opt(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    count_statement();
    let statement = c.prepare_cached(sql).await.map_err(pg_error)?;
    c.query_opt(&statement, params).await.map_err(pg_error)
}

pub(super) async fn execute(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    count_statement();
    let statement = c.prepare_cached(sql).await.map_err(pg_error)?;
    c.execute(&statement, params).await.map_err(pg_error)
}

pub(super) async fn begin(client: &mut deadpool_postgres::Object) -> Result<Transaction<'_>> {
    count_statement();
    client.transaction().await.map_err(pg_error)
}

pub(super) async fn commit(tx: Transaction<'_>) -> Result<()> {
    count_statement();
    tx.commit().await.map_err(pg_error)
}
