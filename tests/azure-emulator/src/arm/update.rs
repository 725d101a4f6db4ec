//! A PATCH body's `identity` delta, checked in ARM's order: shape, type, linked authorization, the 150 limit, identities that exist.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::auth::Caller;
use super::config::UnknownIdentityAnswer;
use super::error::ArmError;
use crate::state::{AzureState, IdentityUpdate, Target};

/// ARM refuses more identity changes than this in one request.
pub const MAX_IDENTITY_CHANGES: usize = 150;

/// What the checks need besides the body.
#[derive(Debug)]
pub struct UpdateContext<'a> {
    /// The world.
    pub state: &'a AzureState,
    /// The VM or scale set.
    pub target: &'a Target,
    /// Its ARM id as the client wrote it.
    pub resource_id: &'a str,
    /// Who is calling.
    pub caller: &'a Caller,
    /// 400 or 404 for unknown identities.
    pub unknown: UnknownIdentityAnswer,
}

/// The identity change a PATCH body asks for; `None` when it has no `identity`.
pub fn parse_update(
    ctx: &UpdateContext<'_>,
    body: &[u8],
) -> Result<Option<IdentityUpdate>, ArmError> {
    let body: Value = serde_json::from_slice(body).map_err(|e| {
        ArmError::bad_request(
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: '{e}'."),
        )
    })?;
    let Some(body) = body.as_object() else {
        return Err(ArmError::bad_request(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'not an object'.",
        ));
    };
    let identity = match body.get("identity") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(identity)) => identity,
        Some(_) => {
            return Err(ArmError::invalid_parameter(
                "The identity is not an object.",
                "identity",
            ));
        }
    };
    let (system, user) = parse_type(identity.get("type"))?;
    let changes = parse_map(identity.get("userAssignedIdentities"))?;
    if !user && !changes.is_empty() {
        let kind = if system { "SystemAssigned" } else { "None" };
        return Err(ArmError::invalid_parameter(
            format!(
                "ResourceIdentity identityIds should not be provided if the type is \"{kind}\"."
            ),
            "resourceIdentity.identityIds",
        ));
    }
    check_linked_authorization(ctx, &changes)?;
    check_identities(ctx, &changes)?;
    let update = build(ctx, system, user, &changes)?;
    Ok(Some(update))
}

/// `(system, user)` from `identity.type` (`"SystemAssigned, UserAssigned"`, any case and spacing).
fn parse_type(kind: Option<&Value>) -> Result<(bool, bool), ArmError> {
    let invalid = |shown: &str| {
        ArmError::invalid_parameter(
            format!(
                "The value '{shown}' of parameter 'identity.type' is invalid. Allowed values are 'None', \
                 'SystemAssigned', 'UserAssigned', 'SystemAssigned, UserAssigned'."
            ),
            "identity.type",
        )
    };
    let Some(text) = kind.and_then(Value::as_str) else {
        return Err(invalid(&kind.map(Value::to_string).unwrap_or_default()));
    };
    let parts: BTreeSet<String> = text
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    let as_strs: Vec<&str> = parts.iter().map(String::as_str).collect();
    match as_strs.as_slice() {
        ["none"] => Ok((false, false)),
        ["systemassigned"] => Ok((true, false)),
        ["userassigned"] => Ok((false, true)),
        ["systemassigned", "userassigned"] => Ok((true, true)),
        _ => Err(invalid(text)),
    }
}

/// `(id as written, add?)` for every entry of `userAssignedIdentities`.
fn parse_map(map: Option<&Value>) -> Result<Vec<(String, bool)>, ArmError> {
    let entries: &Map<String, Value> = match map {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ArmError::invalid_parameter(
                "The 'userAssignedIdentities' property must be a dictionary.",
                "identity.userAssignedIdentities",
            ));
        }
    };
    let mut changes = Vec::with_capacity(entries.len());
    for (id, value) in entries {
        let add = match value {
            Value::Null => false,
            Value::Object(_) => true,
            _ => {
                return Err(ArmError::bad_request(
                    "InvalidIdentityValues",
                    format!(
                        "Invalid value for the identities '{id}'. The 'UserAssignedIdentities' property keys \
                         should only be empty json objects, null or the resource existing property."
                    ),
                ));
            }
        };
        changes.push((id.clone(), add));
    }
    Ok(changes)
}

/// 403 unless the caller may assign every identity it adds (Managed Identity Operator).
fn check_linked_authorization(
    ctx: &UpdateContext<'_>,
    changes: &[(String, bool)],
) -> Result<(), ArmError> {
    let denied: Vec<&str> = changes
        .iter()
        .filter(|(id, add)| *add && !ctx.state.caller_can_assign(&id.to_ascii_lowercase()))
        .map(|(id, _)| id.as_str())
        .collect();
    if denied.is_empty() {
        return Ok(());
    }
    let action = match ctx.target {
        Target::Vm(_) => "Microsoft.Compute/virtualMachines/write",
        Target::ScaleSet(_) => "Microsoft.Compute/virtualMachineScaleSets/write",
    };
    Err(ArmError::new(
        StatusCode::FORBIDDEN,
        "LinkedAuthorizationFailed",
        format!(
            "The client '{}' with object id '{}' has permission to perform action '{action}' on scope \
             '{}'; however, it does not have permission to perform action \
             'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked scope(s) '{}' \
             or the linked scope(s) are invalid.",
            ctx.caller.client_id,
            ctx.caller.object_id,
            ctx.resource_id,
            denied.join(",")
        ),
    ))
}

/// The 150 limit, then every id must name an existing identity (removals too:
/// ARM refuses to drop a deleted identity by its id).
fn check_identities(ctx: &UpdateContext<'_>, changes: &[(String, bool)]) -> Result<(), ArmError> {
    if changes.len() > MAX_IDENTITY_CHANGES {
        return Err(ArmError::failed_identity_operation(
            StatusCode::BAD_REQUEST,
            ctx.resource_id,
            &format!(
                "User Assigned Identities Number '{}' Assign exceed limit '{MAX_IDENTITY_CHANGES}' in one request.",
                changes.len()
            ),
        ));
    }
    let unknown = changes.iter().find(|(id, _)| {
        ctx.state
            .identity(id)
            .is_none_or(|i| !i.resource_id.eq_ignore_ascii_case(id))
    });
    let Some((id, _)) = unknown else {
        return Ok(());
    };
    let status = match ctx.unknown {
        UnknownIdentityAnswer::FailedIdentityOperation400 => StatusCode::BAD_REQUEST,
        UnknownIdentityAnswer::NotFound404 => StatusCode::NOT_FOUND,
    };
    Err(ArmError::failed_identity_operation(
        status,
        ctx.resource_id,
        &format!("Resource '{}' was not found.", id.to_ascii_lowercase()),
    ))
}

fn build(
    ctx: &UpdateContext<'_>,
    system: bool,
    user: bool,
    changes: &[(String, bool)],
) -> Result<IdentityUpdate, ArmError> {
    let mut update = IdentityUpdate {
        system_assigned: system,
        keep_user_assigned: user,
        ..IdentityUpdate::default()
    };
    for (id, add) in changes {
        let key = id.to_ascii_lowercase();
        match add {
            true => update.add.insert(key),
            false => update.remove.insert(key),
        };
    }
    let current = ctx
        .state
        .assigned(ctx.target)
        .map(|b| b.user_assigned.clone())
        .unwrap_or_default();
    let remaining =
        current.difference(&update.remove).count() + update.add.difference(&current).count();
    if user && remaining == 0 {
        return Err(ArmError::invalid_parameter(
            "The identity type 'UserAssigned' requires at least one user-assigned identity; send type \
             'None' or 'SystemAssigned' to remove the last one.",
            "identity.userAssignedIdentities",
        ));
    }
    Ok(update)
}
