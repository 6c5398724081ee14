//! The little SQL the store needs, said once for both backends: statements
//! take `?1`-style arguments as [`Value`]s and give back [`Row`]s of them.
//! SQLite runs the text as written; PostgreSQL gets `$1`-style arguments.
//! The store's queries keep to SQL both accept (`ON CONFLICT`, `RETURNING`,
//! `IS NOT DISTINCT FROM`, `TRUE`/`FALSE`), so their logic is written once.

mod postgres;
mod sqlite;

pub(super) use postgres::{Pg, Statements};
pub(super) use sqlite::Lite;

/// A value bound to a statement or read from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_error(.0))]
    Postgres(#[from] ::postgres::Error),
    #[error("cannot flush the write-ahead log to disk: {0}")]
    Flush(std::io::Error),
    #[error("expected a row, found none")]
    NoRow,
    #[error("column {column}: expected {expected}, found {found:?}")]
    Type {
        column: usize,
        expected: &'static str,
        found: Value,
    },
    #[error("column {column}: {detail}")]
    Decode { column: usize, detail: String },
}

/// PostgreSQL's own words for what failed, with its detail where it gave one.
fn postgres_error(error: &::postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {detail}", db.message()),
            None => db.message().to_string(),
        },
        None => error.to_string(),
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// A connection or transaction of either backend.
pub trait Db {
    /// Run one statement; how many rows it changed.
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64>;
    /// Run one statement; every row it gave.
    fn rows(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>>;
    /// Run statements without arguments, one after another.
    fn batch(&mut self, sql: &str) -> Result<()>;
    /// Wake the processes listening on `channel` once the transaction
    /// commits (PostgreSQL's `NOTIFY`). One SQLite file has one process,
    /// which wakes itself.
    fn notify(&mut self, channel: &str) -> Result<()>;
}

impl dyn Db + '_ {
    /// The first row, made into a `T`; no row is [`DbError::NoRow`].
    pub fn query_row<T>(
        &mut self,
        sql: &str,
        args: &[Value],
        make: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, args, make)?.ok_or(DbError::NoRow)
    }

    /// The first row, if any, made into a `T`.
    pub fn query_opt<T>(
        &mut self,
        sql: &str,
        args: &[Value],
        make: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        self.rows(sql, args)?.first().map(make).transpose()
    }

    /// Every row, each made into a `T`.
    pub fn query_map<T>(
        &mut self,
        sql: &str,
        args: &[Value],
        make: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.rows(sql, args)?.iter().map(make).collect()
    }
}

/// One row of a result.
#[derive(Debug)]
pub struct Row(pub(super) Vec<Value>);

impl Row {
    pub fn get<T: FromValue>(&self, column: usize) -> Result<T> {
        let value = self.0.get(column).unwrap_or(&Value::Null);
        T::from_value(value).ok_or_else(|| DbError::Type {
            column,
            expected: T::EXPECTED,
            found: value.clone(),
        })
    }

    /// A JSON column decoded.
    pub fn json<T: serde::de::DeserializeOwned>(&self, column: usize) -> Result<T> {
        let text: String = self.get(column)?;
        serde_json::from_str(&text).map_err(|e| DbError::Decode {
            column,
            detail: e.to_string(),
        })
    }
}

/// A Rust value a column converts to.
pub trait FromValue: Sized {
    const EXPECTED: &'static str;
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(n) => Some(*n),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

impl FromValue for u32 {
    const EXPECTED: &'static str = "a small non-negative integer";
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|n| u32::try_from(n).ok())
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "a boolean";
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).map(|n| n != 0)
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "text";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A Rust value bound as an argument.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

macro_rules! int_to_value {
    ($($int:ty),*) => {$(
        impl ToValue for $int {
            fn to_value(&self) -> Value {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_value!(i64, u32, u64, usize);

/// `args![a, b]`: the statement arguments `?1`, `?2`.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::store::sql::ToValue::to_value(&$arg)),*]
    };
}
pub(crate) use args;
