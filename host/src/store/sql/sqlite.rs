//! SQLite through rusqlite: statements are cached per connection.

use super::{Db, Result, Row, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};

/// A SQLite connection, or a transaction on one, as a [`Db`].
pub struct Lite<'c>(pub &'c rusqlite::Connection);

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(n) => ToSqlOutput::from(*n),
            Value::Bool(b) => ToSqlOutput::from(*b),
            Value::Text(text) => ToSqlOutput::from(text.as_str()),
        })
    }
}

fn value(column: ValueRef<'_>) -> Value {
    match column {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        // remedy writes no reals or blobs; read them as text, never lose them.
        ValueRef::Real(x) => Value::Text(x.to_string()),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Value::Text(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

impl Db for Lite<'_> {
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64> {
        let changed = self
            .0
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(args))?;
        Ok(changed as u64)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn notify(&mut self, _channel: &str) -> Result<()> {
        Ok(())
    }

    fn rows(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        let mut statement = self.0.prepare_cached(sql)?;
        let width = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(args))?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..width)
                .map(|i| row.get_ref(i).map(value))
                .collect::<rusqlite::Result<_>>()?;
            found.push(Row(values));
        }
        Ok(found)
    }
}
