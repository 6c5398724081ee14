//! PostgreSQL through the `postgres` crate: `?1` arguments become `$1`,
//! integers are BIGINT, flags BOOLEAN.

use super::{Db, Result, Row, Value};
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{GenericClient, Statement};
use std::borrow::Cow;
use std::collections::HashMap;

/// A PostgreSQL client, or a transaction on one, as a [`Db`], with the
/// statements already prepared on its connection.
pub struct Pg<'c, C: GenericClient> {
    pub client: &'c mut C,
    pub statements: &'c mut Statements,
}

/// Statements prepared on one connection, by their SQL: each is parsed and
/// planned by PostgreSQL once, not on every call.
#[derive(Default)]
pub struct Statements(HashMap<String, Statement>);

impl<C: GenericClient> Pg<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(dollars(sql).as_ref())?;
        self.statements.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(n), &Type::INT4) => i32::try_from(*n)?.to_sql(ty, out),
            (Value::Int(n), &Type::BOOL) => (*n != 0).to_sql(ty, out),
            (Value::Int(n), _) => n.to_sql(ty, out),
            (Value::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Bool(b), _) => i64::from(*b).to_sql(ty, out),
            (Value::Text(text), _) => text.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true // to_sql converts to whatever the statement's parameter is
    }

    to_sql_checked!();
}

/// `?1` as PostgreSQL writes it, `$1`; quoted text is left alone.
pub(super) fn dollars(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => quoted = !quoted,
            '?' if !quoted => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    Cow::Owned(out)
}

fn value(row: &postgres::Row, column: usize) -> Result<Value, postgres::Error> {
    let ty = row.columns()[column].type_();
    Ok(match *ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(column)?
            .map_or(Value::Null, Value::Bool),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(column)?
            .map_or(Value::Null, |n| Value::Int(n.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(column)?
            .map_or(Value::Null, |n| Value::Int(n.into())),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(column)?
            .map_or(Value::Null, Value::Int),
        _ => row
            .try_get::<_, Option<String>>(column)?
            .map_or(Value::Null, Value::Text),
    })
}

fn arguments(args: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl<C: GenericClient> Db for Pg<'_, C> {
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, &arguments(args))?)
    }

    fn rows(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        let rows = self.client.query(&statement, &arguments(args))?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let values = (0..row.len())
                .map(|i| value(row, i))
                .collect::<Result<_, _>>()?;
            found.push(Row(values));
        }
        Ok(found)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql)?)
    }

    fn notify(&mut self, channel: &str) -> Result<()> {
        self.execute("SELECT pg_notify(?1, '')", &[Value::Text(channel.into())])
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::dollars;

    #[test]
    fn arguments_are_numbered_as_postgresql_numbers_them() {
        assert_eq!(
            dollars("SELECT 'a?' || ?1 WHERE x = ?2 AND y = ?12"),
            "SELECT 'a?' || $1 WHERE x = $2 AND y = $12"
        );
        assert_eq!(dollars("SELECT 1"), "SELECT 1");
    }
}
