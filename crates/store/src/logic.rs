//! Semantics shared by every backend, so that they cannot drift apart: a backend reads the
//! current set, calls [`plan_update`], and writes what it returns in the same transaction.

use std::collections::HashSet;

use crate::error::{Result, StoreError};
use crate::types::{Binding, BindingKey, BindingUpdate};

/// The binding set of `aor` after `update`, given the `existing` set. Pure; see
/// [`BindingUpdate`] for the rules.
pub(crate) fn plan_update(
    aor: &str,
    existing: &[Binding],
    update: BindingUpdate,
) -> Result<Vec<Binding>> {
    if aor.is_empty() {
        return Err(StoreError::InvalidInput("empty AOR".into()));
    }
    if let Some(b) = update.upsert.iter().find(|b| b.aor != aor) {
        return Err(StoreError::InvalidInput(format!(
            "binding for {:?} in an update of {aor:?}",
            b.aor
        )));
    }
    let now = update.now;

    // Order check on every live binding the update touches.
    let touched: HashSet<BindingKey> = update
        .remove
        .iter()
        .cloned()
        .chain(update.upsert.iter().map(Binding::key))
        .collect();
    for old in existing.iter().filter(|b| !b.is_expired(now)) {
        let touches = update.remove_all || touched.contains(&old.key());
        if touches && old.call_id == update.call_id && old.cseq >= update.cseq {
            return Err(StoreError::OutOfOrder {
                call_id: update.call_id,
                stored_cseq: old.cseq,
                cseq: update.cseq,
            });
        }
    }

    let live_before = existing.iter().filter(|b| !b.is_expired(now)).count();
    let mut result: Vec<Binding> = if update.remove_all {
        Vec::new()
    } else {
        let removed: HashSet<&BindingKey> = update.remove.iter().collect();
        existing
            .iter()
            .filter(|b| !removed.contains(&b.key()))
            .cloned()
            .collect()
    };
    for mut new in update.upsert {
        new.normalize();
        let key = new.key();
        let pos = result.iter().position(|b| b.key() == key);
        match (pos, new.is_expired(now)) {
            (Some(i), false) => result[i] = new,
            (Some(i), true) => {
                result.remove(i);
            }
            (None, false) => result.push(new),
            (None, true) => {}
        }
    }
    result.retain(|b| !b.is_expired(now));

    if let Some(limit) = update.max_bindings {
        if result.len() > limit && result.len() > live_before {
            return Err(StoreError::TooManyBindings { limit });
        }
    }
    Ok(result)
}
