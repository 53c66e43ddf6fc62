//! A small builder for UpdateItem expressions, so callers never splice attribute
//! names or values into expression strings by hand.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{Item, Store, StoreError, keys};

/// SET / ADD / REMOVE clauses and a condition, with generated placeholders.
#[derive(Debug, Default)]
pub struct Update {
    sets: Vec<String>,
    adds: Vec<String>,
    removes: Vec<String>,
    deletes: Vec<String>,
    conditions: Vec<String>,
    pub(crate) names: HashMap<String, String>,
    pub(crate) values: HashMap<String, AttributeValue>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }

    fn name(&mut self, attr: &str) -> String {
        let placeholder = format!(
            "#{}",
            attr.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        self.names.insert(placeholder.clone(), attr.to_string());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// `SET attr = value`.
    pub fn set(mut self, attr: &str, value: AttributeValue) -> Self {
        let n = self.name(attr);
        let v = self.value(value);
        self.sets.push(format!("{n} = {v}"));
        self
    }

    /// `ADD attr delta` (an atomic counter change).
    pub fn add(mut self, attr: &str, delta: i64) -> Self {
        let n = self.name(attr);
        let v = self.value(AttributeValue::N(delta.to_string()));
        self.adds.push(format!("{n} {v}"));
        self
    }

    /// `SET attr = if_not_exists(attr, value)`: a default that never overwrites.
    pub fn set_default(mut self, attr: &str, value: AttributeValue) -> Self {
        let n = self.name(attr);
        let v = self.value(value);
        self.sets.push(format!("{n} = if_not_exists({n}, {v})"));
        self
    }

    /// `SET target = if_not_exists(source, 0) + delta`, from `source` as it was before
    /// this update (DynamoDB reads every operand before applying any clause).
    pub fn set_offset(mut self, target: &str, source: &str, delta: i64) -> Self {
        let t = self.name(target);
        let s = self.name(source);
        let zero = self.value(AttributeValue::N("0".into()));
        let d = self.value(AttributeValue::N(delta.to_string()));
        self.sets
            .push(format!("{t} = if_not_exists({s}, {zero}) + {d}"));
        self
    }

    /// `SET target = source`: copies one attribute to another within the item.
    pub fn copy(mut self, target: &str, source: &str) -> Self {
        let t = self.name(target);
        let s = self.name(source);
        self.sets.push(format!("{t} = {s}"));
        self
    }

    /// `ADD attr {values}` on a string set.
    pub fn add_to_set(mut self, attr: &str, values: Vec<String>) -> Self {
        let n = self.name(attr);
        let v = self.value(AttributeValue::Ss(values));
        self.adds.push(format!("{n} {v}"));
        self
    }

    /// `DELETE attr {values}` on a string set (an emptied set disappears).
    pub fn delete_from_set(mut self, attr: &str, values: Vec<String>) -> Self {
        let n = self.name(attr);
        let v = self.value(AttributeValue::Ss(values));
        self.deletes.push(format!("{n} {v}"));
        self
    }

    /// `REMOVE attr`.
    pub fn remove(mut self, attr: &str) -> Self {
        let n = self.name(attr);
        self.removes.push(n);
        self
    }

    /// The item must exist.
    pub fn exists(mut self) -> Self {
        let n = self.name(crate::table::PK);
        self.conditions.push(format!("attribute_exists({n})"));
        self
    }

    /// `attr = value` must hold.
    pub fn require_eq(mut self, attr: &str, value: AttributeValue) -> Self {
        let n = self.name(attr);
        let v = self.value(value);
        self.conditions.push(format!("{n} = {v}"));
        self
    }

    /// `attr IN (values)` must hold.
    pub fn require_in(mut self, attr: &str, values: Vec<AttributeValue>) -> Self {
        let n = self.name(attr);
        let vs: Vec<String> = values.into_iter().map(|v| self.value(v)).collect();
        self.conditions.push(format!("{n} IN ({})", vs.join(", ")));
        self
    }

    /// A condition the helpers above do not cover. In `template`, `{a0}`, `{a1}`, ...
    /// stand for the attribute names `attrs` and `{0}`, `{1}`, ... for `values`, each
    /// bound to a placeholder, so nothing is spliced into the expression.
    pub fn require(mut self, template: &str, attrs: &[&str], values: Vec<AttributeValue>) -> Self {
        let mut condition = template.to_string();
        for (i, attr) in attrs.iter().enumerate() {
            let n = self.name(attr);
            condition = condition.replace(&format!("{{a{i}}}"), &n);
        }
        for (i, value) in values.into_iter().enumerate() {
            let v = self.value(value);
            condition = condition.replace(&format!("{{{i}}}"), &v);
        }
        self.conditions.push(condition);
        self
    }

    pub(crate) fn expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.adds.is_empty() {
            parts.push(format!("ADD {}", self.adds.join(", ")));
        }
        if !self.removes.is_empty() {
            parts.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        if !self.deletes.is_empty() {
            parts.push(format!("DELETE {}", self.deletes.join(", ")));
        }
        parts.join(" ")
    }

    pub(crate) fn condition(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }

    /// The same update as one action of a transaction.
    pub fn into_transact(
        self,
        table: &str,
        pk: String,
        sk: String,
    ) -> aws_sdk_dynamodb::types::TransactWriteItem {
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(table)
            .set_key(Some(keys::key(pk, sk)))
            .update_expression(self.expression())
            .set_condition_expression(self.condition())
            .set_expression_attribute_names((!self.names.is_empty()).then_some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
            .build()
            .expect("update has table, key and expression");
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .update(update)
            .build()
    }
}

impl Store {
    /// Applies `update` to one item and returns the item as it is afterwards.
    pub async fn update(&self, pk: String, sk: String, update: Update) -> Result<Item, StoreError> {
        let condition = update.condition();
        let expression = update.expression();
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(pk, sk)))
            .update_expression(expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names((!update.names.is_empty()).then_some(update.names))
            .set_expression_attribute_values((!update.values.is_empty()).then_some(update.values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map(|out| out.attributes.unwrap_or_default())
            .map_err(StoreError::from_sdk)
    }

    /// Deletes one item when the condition of `condition` holds (its SET, ADD, ...
    /// clauses are not used); [`StoreError::ConditionFailed`] otherwise.
    pub(crate) async fn delete_where(
        &self,
        pk: String,
        sk: String,
        condition: Update,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(pk, sk)))
            .set_condition_expression(condition.condition())
            .set_expression_attribute_names(
                (!condition.names.is_empty()).then_some(condition.names),
            )
            .set_expression_attribute_values(
                (!condition.values.is_empty()).then_some(condition.values),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::from_sdk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_set_add_remove_and_condition() {
        let u = Update::new()
            .set("status", AttributeValue::S("live".into()))
            .add("viewer_count", 1)
            .remove("GSI1PK")
            .exists()
            .require_eq("status", AttributeValue::S("scheduled".into()));
        assert_eq!(
            u.expression(),
            "SET #status = :v0 ADD #viewer_count :v1 REMOVE #GSI1PK"
        );
        assert_eq!(
            u.condition().unwrap(),
            "attribute_exists(#PK) AND #status = :v2"
        );
    }
}
