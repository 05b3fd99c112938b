//! How the domain's typed values bind into queries: a `TenantId` is written
//! as the text it holds, a `SubjectId` or a `GroupId` as its integer.

use crate::domain::access::TenantId;
use crate::domain::ids::{GroupId, SubjectId};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{BigInt, Nullable, Text};

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

/// A row id's type: bound and read as the `BIGINT` it holds.
macro_rules! row_id {
    ($id:ident) => {
        impl AsExpression<BigInt> for $id {
            type Expression = <i64 as AsExpression<BigInt>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <i64 as AsExpression<BigInt>>::as_expression(self.0)
            }
        }

        impl AsExpression<Nullable<BigInt>> for $id {
            type Expression = <i64 as AsExpression<Nullable<BigInt>>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <i64 as AsExpression<Nullable<BigInt>>>::as_expression(self.0)
            }
        }

        impl AsExpression<BigInt> for &$id {
            type Expression = <i64 as AsExpression<BigInt>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <i64 as AsExpression<BigInt>>::as_expression(self.0)
            }
        }

        impl<DB> ToSql<BigInt, DB> for $id
        where
            DB: Backend,
            i64: ToSql<BigInt, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.0.to_sql(out)
            }
        }

        impl<DB> FromSql<BigInt, DB> for $id
        where
            DB: Backend,
            i64: FromSql<BigInt, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                i64::from_sql(bytes).map($id)
            }
        }

        impl<DB> Queryable<BigInt, DB> for $id
        where
            DB: Backend,
            Self: FromSql<BigInt, DB>,
        {
            type Row = Self;
            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }
    };
}

row_id!(SubjectId);
row_id!(GroupId);
