//! The statements every part of the PostgreSQL store sends, through one place: their errors
//! with the server's message, counted (`statements_sent`), and sent the way the link allows.
//! Direct: prepared once per connection, the statement timeout set at connect. Behind a
//! transaction-mode pooler (PgBouncer, `pgbouncer=true`), where neither a prepared statement
//! nor a session setting survives the transaction: unnamed statements (parse, bind and
//! execute in one round trip) and `SET LOCAL statement_timeout` in every transaction — a
//! lone statement gets a transaction of its own, pipelined.

use std::future::Future;
use std::ops::Deref;

use anyhow::{Result, anyhow};
use deadpool_postgres::{GenericClient, Object, Pool, PoolError, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type, WrongType};

use super::{STATEMENT_TIMEOUT, count_statement, pg_error};

/// The pool, and whether it reaches the database through a transaction-mode pooler.
#[derive(Clone)]
pub(super) struct Connections {
    pub(super) pool: Pool,
    pub(super) pooled: bool,
}

impl Connections {
    pub(super) async fn get(&self) -> Result<Conn, PoolError> {
        Ok(Conn {
            client: self.pool.get().await?,
            pooled: self.pooled,
        })
    }
}

/// A pooled connection outside a transaction. No `DerefMut`: a transaction starts through
/// [`begin`], which sets its timeout when pooled.
pub(crate) struct Conn {
    client: Object,
    pooled: bool,
}

impl Deref for Conn {
    type Target = Object;
    fn deref(&self) -> &Object {
        &self.client
    }
}

pub(super) struct Tx<'a> {
    tx: Transaction<'a>,
    pooled: bool,
}

impl<'a> Deref for Tx<'a> {
    type Target = Transaction<'a>;
    fn deref(&self) -> &Transaction<'a> {
        &self.tx
    }
}

pub(super) enum On<'c> {
    Conn(&'c Object),
    Tx(&'c Transaction<'c>),
}

/// What the statement helpers send on: a connection or a transaction, pooled or not.
pub(super) trait Db: Sync {
    fn on(&self) -> On<'_>;
    fn pooled(&self) -> bool;
}

impl Db for Conn {
    fn on(&self) -> On<'_> {
        On::Conn(&self.client)
    }
    fn pooled(&self) -> bool {
        self.pooled
    }
}

impl Db for Tx<'_> {
    fn on(&self) -> On<'_> {
        On::Tx(&self.tx)
    }
    fn pooled(&self) -> bool {
        self.pooled
    }
}

pub(super) async fn query(
    c: &impl Db,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    count_statement();
    if !c.pooled() {
        return match c.on() {
            On::Conn(client) => prepared(client, sql, params).await,
            On::Tx(tx) => prepared(tx, sql, params).await,
        };
    }
    let typed = typed(params)?;
    match c.on() {
        On::Tx(tx) => tx.query_typed(sql, &typed).await.map_err(pg_error),
        On::Conn(client) => own_transaction(client, client.query_typed(sql, &typed)).await,
    }
}

pub(super) async fn query_opt(
    c: &impl Db,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    let mut rows = query(c, sql, params).await?.into_iter();
    let row = rows.next();
    if rows.next().is_some() {
        return Err(anyhow!("query returned more than one row"));
    }
    Ok(row)
}

pub(super) async fn execute(c: &impl Db, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    count_statement();
    if !c.pooled() {
        return match c.on() {
            On::Conn(client) => {
                let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
                client.execute(&statement, params).await.map_err(pg_error)
            }
            On::Tx(tx) => {
                let statement = tx.prepare_cached(sql).await.map_err(pg_error)?;
                tx.execute(&statement, params).await.map_err(pg_error)
            }
        };
    }
    let typed = typed(params)?;
    match c.on() {
        On::Tx(tx) => tx.execute_typed(sql, &typed).await.map_err(pg_error),
        On::Conn(client) => own_transaction(client, client.execute_typed(sql, &typed)).await,
    }
}

async fn prepared(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let statement = c.prepare_cached(sql).await.map_err(pg_error)?;
    c.query(&statement, params).await.map_err(pg_error)
}

fn set_timeout() -> String {
    format!(
        "SET LOCAL statement_timeout = {}",
        STATEMENT_TIMEOUT.as_millis()
    )
}

/// A lone statement behind the pooler, with its timeout: BEGIN, the statement and COMMIT
/// sent at once (tokio-postgres pipelines requests in the order first polled), so one round
/// trip. A failed statement makes the COMMIT a rollback.
async fn own_transaction<T>(
    client: &Object,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T> {
    let begin = format!("BEGIN; {}", set_timeout());
    let (begun, done, ended) = tokio::join!(
        client.batch_execute(&begin),
        statement,
        client.batch_execute("COMMIT")
    );
    begun.map_err(pg_error)?;
    let done = done.map_err(pg_error)?;
    ended.map_err(pg_error)?;
    Ok(done)
}

/// The types an unnamed statement declares for its parameters, read off the Rust values
/// (what a prepared statement would have asked the server): the first type each accepts, in
/// an order where the usual reading comes first (a string is `text`, not `varchar`).
fn typed<'a>(params: &[&'a (dyn ToSql + Sync)]) -> Result<Vec<(&'a (dyn ToSql + Sync), Type)>> {
    const CANDIDATES: &[Type] = &[
        Type::TEXT,
        Type::INT8,
        Type::INT4,
        Type::FLOAT8,
        Type::BOOL,
        Type::INT2,
        Type::FLOAT4,
        Type::JSONB,
        Type::BYTEA,
        Type::TIMESTAMPTZ,
        Type::TEXT_ARRAY,
        Type::INT8_ARRAY,
        Type::INT4_ARRAY,
        Type::FLOAT8_ARRAY,
        Type::BOOL_ARRAY,
        Type::INT2_ARRAY,
        Type::JSONB_ARRAY,
        Type::BYTEA_ARRAY,
        Type::TIMESTAMPTZ_ARRAY,
        Type::CHAR,
        Type::OID,
    ];
    let mut scratch = bytes::BytesMut::new();
    let mut accepts = |param: &(dyn ToSql + Sync), ty: &Type| {
        scratch.clear();
        match param.to_sql_checked(ty, &mut scratch) {
            Ok(_) => true,
            Err(e) => !e.is::<WrongType>(),
        }
    };
    params
        .iter()
        .enumerate()
        .map(|(i, &param)| {
            CANDIDATES
                .iter()
                .find(|ty| accepts(param, ty))
                .map(|ty| (param, ty.clone()))
                .ok_or_else(|| {
                    anyhow!(
                        "parameter ${} has no type an unnamed statement can declare",
                        i + 1
                    )
                })
        })
        .collect()
}

pub(super) async fn begin(client: &mut Conn) -> Result<Tx<'_>> {
    count_statement();
    let pooled = client.pooled;
    let tx = client.client.transaction().await.map_err(pg_error)?;
    if pooled {
        tx.batch_execute(&set_timeout()).await.map_err(pg_error)?;
    }
    Ok(Tx { tx, pooled })
}

pub(super) async fn commit(tx: Tx<'_>) -> Result<()> {
    count_statement();
    tx.tx.commit().await.map_err(pg_error)
}
