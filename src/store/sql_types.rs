//! How the domain's typed values bind into queries: a `TenantId` is written
//! as the text it holds.

use crate::domain::access::TenantId;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::expression::AsExpression;
use diesel::sql_types::{Nullable, Text};

impl<'a> AsExpression<Text> for &'a TenantId {
    type Expression = <&'a str as AsExpression<Text>>::Expression;
    fn as_expression(self) -> Self::Expression {
        <&'a str as AsExpression<Text>>::as_expression(self.as_str())
    }
}

impl<'a> AsExpression<Nullable<Text>> for &'a TenantId {
    type Expression = <&'a str as AsExpression<Nullable<Text>>>::Expression;
    fn as_expression(self) -> Self::Expression {
        <&'a str as AsExpression<Nullable<Text>>>::as_expression(self.as_str())
    }
}

impl AsExpression<Text> for TenantId {
    type Expression = <String as AsExpression<Text>>::Expression;
    fn as_expression(self) -> Self::Expression {
        <String as AsExpression<Text>>::as_expression(self.into_string())
    }
}

impl<DB> FromSql<Text, DB> for TenantId
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        String::from_sql(bytes).map(TenantId::stored)
    }
}

impl<DB> Queryable<Text, DB> for TenantId
where
    DB: Backend,
    Self: FromSql<Text, DB>,
{
    type Row = Self;
    fn build(row: Self) -> deserialize::Result<Self> {
        Ok(row)
    }
}
