//! Identity and access: passwords, tokens, the permission table, the caller of each request.

pub mod caller;
pub mod config;
pub mod layer;
pub mod password;
pub mod rbac;
pub mod roles;
pub mod standing;
pub mod tokens;
