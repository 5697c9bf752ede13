//! One way to stand between the reactions and a [`Tables`] adapter: counting requests,
//! recording effects, injecting faults in tests. An [`Intercept`] sees every call, described
//! by a [`TableCall`], before it reaches the adapter (and may stop it there) and learns when it
//! succeeded; [`Intercepted`] does the forwarding, so no wrapper repeats the seven methods.

use std::sync::Arc;

use async_trait::async_trait;
use handlers::ports::{Condition, Query, Tables, TransactItem, Update, WriteRequest};
use handlers::{Item, PortError};

/// One call of the [`Tables`] port, its arguments borrowed.
#[derive(Debug, Clone, Copy)]
pub enum TableCall<'a> {
    Get {
        table: &'a str,
        key: &'a Item,
    },
    Put {
        table: &'a str,
        item: &'a Item,
        condition: Option<&'a Condition>,
    },
    Update {
        table: &'a str,
        key: &'a Item,
        update: &'a Update,
        condition: Option<&'a Condition>,
    },
    Delete {
        table: &'a str,
        key: &'a Item,
        condition: Option<&'a Condition>,
    },
    Query(&'a Query),
    BatchGet {
        table: &'a str,
        keys: &'a [Item],
    },
    BatchWrite {
        table: &'a str,
        writes: &'a [WriteRequest],
    },
    TransactWrite(&'a [TransactItem]),
}

impl TableCall<'_> {
    /// The DynamoDB operation the call becomes.
    pub fn operation(&self) -> &'static str {
        match self {
            TableCall::Get { .. } => "GetItem",
            TableCall::Put { .. } => "PutItem",
            TableCall::Update { .. } => "UpdateItem",
            TableCall::Delete { .. } => "DeleteItem",
            TableCall::Query(_) => "Query",
            TableCall::BatchGet { .. } => "BatchGetItem",
            TableCall::BatchWrite { .. } => "BatchWriteItem",
            TableCall::TransactWrite(_) => "TransactWriteItems",
        }
    }

    /// The table the call touches (a transaction's first).
    pub fn table(&self) -> &str {
        match self {
            TableCall::Get { table, .. }
            | TableCall::Put { table, .. }
            | TableCall::Update { table, .. }
            | TableCall::Delete { table, .. }
            | TableCall::BatchGet { table, .. }
            | TableCall::BatchWrite { table, .. } => table,
            TableCall::Query(query) => &query.table,
            TableCall::TransactWrite(items) => items.first().map_or("", |item| item.table()),
        }
    }
}

/// What stands between: `before` sees each call first (an error stops it, unsent) and may use
/// the adapter itself; `after` hears of each success with what `before` prepared.
#[async_trait]
pub trait Intercept: Send + Sync {
    type Pending: Send;

    async fn before(
        &self,
        inner: &dyn Tables,
        call: TableCall<'_>,
    ) -> Result<Self::Pending, PortError>;

    fn after(&self, _pending: Self::Pending) {}
}

/// `inner` with `hook` in front of it.
pub struct Intercepted<H> {
    pub inner: Arc<dyn Tables>,
    pub hook: H,
}

impl<H: Intercept> Intercepted<H> {
    pub fn new(inner: Arc<dyn Tables>, hook: H) -> Self {
        Intercepted { inner, hook }
    }
}

#[async_trait]
impl<H: Intercept> Tables for Intercepted<H> {
    async fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, PortError> {
        let pending = self
            .hook
            .before(&*self.inner, TableCall::Get { table, key })
            .await?;
        let found = self.inner.get(table, key).await?;
        self.hook.after(pending);
        Ok(found)
    }

    async fn put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<(), PortError> {
        let call = TableCall::Put {
            table,
            item: &item,
            condition,
        };
        let pending = self.hook.before(&*self.inner, call).await?;
        self.inner.put(table, item, condition).await?;
        self.hook.after(pending);
        Ok(())
    }

    async fn update(
        &self,
        table: &str,
        key: &Item,
        update: &Update,
        condition: Option<&Condition>,
    ) -> Result<Item, PortError> {
        let call = TableCall::Update {
            table,
            key,
            update,
            condition,
        };
        let pending = self.hook.before(&*self.inner, call).await?;
        let item = self.inner.update(table, key, update, condition).await?;
        self.hook.after(pending);
        Ok(item)
    }

    async fn delete(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Option<Item>, PortError> {
        let call = TableCall::Delete {
            table,
            key,
            condition,
        };
        let pending = self.hook.before(&*self.inner, call).await?;
        let old = self.inner.delete(table, key, condition).await?;
        self.hook.after(pending);
        Ok(old)
    }

    async fn query(&self, query: &Query) -> Result<Vec<Item>, PortError> {
        let pending = self
            .hook
            .before(&*self.inner, TableCall::Query(query))
            .await?;
        let items = self.inner.query(query).await?;
        self.hook.after(pending);
        Ok(items)
    }

    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, PortError> {
        let call = TableCall::BatchGet { table, keys: &keys };
        let pending = self.hook.before(&*self.inner, call).await?;
        let items = self.inner.batch_get(table, keys).await?;
        self.hook.after(pending);
        Ok(items)
    }

    async fn batch_write(&self, table: &str, writes: &[WriteRequest]) -> Result<(), PortError> {
        let call = TableCall::BatchWrite { table, writes };
        let pending = self.hook.before(&*self.inner, call).await?;
        self.inner.batch_write(table, writes).await?;
        self.hook.after(pending);
        Ok(())
    }

    async fn transact_write(&self, items: Vec<TransactItem>) -> Result<(), PortError> {
        let pending = self
            .hook
            .before(&*self.inner, TableCall::TransactWrite(&items))
            .await?;
        self.inner.transact_write(items).await?;
        self.hook.after(pending);
        Ok(())
    }
}
