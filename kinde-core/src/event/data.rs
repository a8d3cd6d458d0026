//! The `data` of each of Kinde's 16 documented event types.
//!
//! Each event type is a struct that deserializes from the payload's `data` object, so
//! `UserCreated` is `{"user": {...}}`. Only an entity's identity is required (`user.id`,
//! `organization.code`, `role.id`, `permission.id`, `subscriber.id`, the `code` of a membership,
//! the `id` of a role or permission reference); every other field may be absent or `null` and
//! reads as `None` (lists: empty). Unknown extra fields are ignored, so Kinde can add fields
//! without breaking receivers.
//!
//! Every struct has a `new(identity)` constructor with every other field `None`; the fields are
//! public, so test data is built by setting them:
//!
//! ```
//! use kinde_core::event::{User, UserCreated};
//! let mut user = User::new("kp_1");
//! user.email = Some("ada@example.com".into());
//! let created = UserCreated::new(user);
//! assert_eq!(created.user.email.as_deref(), Some("ada@example.com"));
//! ```

use serde::{Deserialize, Deserializer, Serialize};

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `new(identity)` constructors: the identity given, every other field `None` / empty.
macro_rules! constructors {
    ($( $ty:ident ( $id:ident ) { $($field:ident),* $(,)? } )+) => {
        $(
            impl $ty {
                #[doc = concat!("A `", stringify!($ty), "` with this `", stringify!($id), "` and nothing else.")]
                pub fn new($id: impl Into<String>) -> Self {
                    Self { $id: $id.into(), $( $field: Default::default(), )* }
                }
            }
        )+
    };
}

constructors! {
    User(id) { email, first_name, last_name, username, phone, is_password_reset_requested, is_suspended, organizations }
    UserOrganization(code) { roles, permissions }
    KeyRef(id) { key }
    UserRef(id) {}
    Organization(code) { name, handle, external_id }
    OrganizationUpdate(code) { name, handle, external_id, is_allow_registrations }
    OrganizationRef(code) {}
    Permission(id) { key, name, description }
    PermissionRef(id) {}
    Role(id) { key, name, description, is_default_role }
    RoleRef(id) {}
    Subscriber(id) { email, first_name, last_name, user_id }
}

impl AccessRequest {
    /// An access request with every field `None`.
    pub fn new() -> Self {
        Self {
            email: None,
            first_name: None,
            last_name: None,
            user_id: None,
        }
    }
}

impl Default for AccessRequest {
    fn default() -> Self {
        Self::new()
    }
}

/// A user as sent with `user.created` and `user.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// Kinde user id, e.g. `kp_…`.
    pub id: String,
    /// Email address, when the user has one.
    #[serde(default)]
    pub email: Option<String>,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Username, when the tenant uses usernames.
    #[serde(default)]
    pub username: Option<String>,
    /// Phone number, when the user has one.
    #[serde(default)]
    pub phone: Option<String>,
    /// Whether a password reset was requested for the user.
    #[serde(default)]
    pub is_password_reset_requested: Option<bool>,
    /// Whether the user is suspended.
    #[serde(default)]
    pub is_suspended: Option<bool>,
    /// Organizations the user belongs to (`null` and absent read as empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub organizations: Vec<UserOrganization>,
}

/// A user's membership of one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserOrganization {
    /// Organization code, e.g. `org_…`.
    pub code: String,
    /// Roles the user has in the organization, when sent.
    #[serde(default)]
    pub roles: Option<Vec<KeyRef>>,
    /// Permissions the user has in the organization, when sent.
    #[serde(default)]
    pub permissions: Option<Vec<KeyRef>>,
}

/// An `{id, key}` reference to a role or permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyRef {
    /// The role's or permission's id.
    pub id: String,
    /// The role's or permission's key.
    #[serde(default)]
    pub key: Option<String>,
}

/// A user referenced by id only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserRef {
    /// Kinde user id.
    pub id: String,
}

/// An access request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessRequest {
    /// Requester's email.
    #[serde(default)]
    pub email: Option<String>,
    /// Requester's given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Requester's family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// The requesting user's id.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// An organization as sent with `organization.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Organization {
    /// Organization code, e.g. `org_…`.
    pub code: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// URL handle.
    #[serde(default)]
    pub handle: Option<String>,
    /// The id in the customer's own system.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// An organization as sent with `organization.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OrganizationUpdate {
    /// Organization code.
    pub code: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// URL handle.
    #[serde(default)]
    pub handle: Option<String>,
    /// The id in the customer's own system.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Whether users may register into the organization.
    #[serde(default)]
    pub is_allow_registrations: Option<bool>,
}

/// An organization referenced by code only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OrganizationRef {
    /// Organization code.
    pub code: String,
}

/// A permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Permission {
    /// Permission id.
    pub id: String,
    /// Permission key, e.g. `read:reports`.
    #[serde(default)]
    pub key: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A permission referenced by id only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PermissionRef {
    /// Permission id.
    pub id: String,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Role {
    /// Role id.
    pub id: String,
    /// Role key, e.g. `admin`.
    #[serde(default)]
    pub key: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether new users get this role by default.
    #[serde(default)]
    pub is_default_role: Option<bool>,
}

/// A role referenced by id only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoleRef {
    /// Role id.
    pub id: String,
}

/// A subscriber (marketing sign-up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Subscriber {
    /// Subscriber id.
    pub id: String,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// The matching user's id, when there is one.
    #[serde(default)]
    pub user_id: Option<String>,
}

macro_rules! event_types {
    ($( $(#[$doc:meta])* $name:ident = $ty:literal { $field:ident : $fty:ty } ),+ $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
            #[non_exhaustive]
            pub struct $name {
                #[allow(missing_docs)]
                pub $field: $fty,
            }

            impl $name {
                /// Builds the event data (for tests and the test kit).
                pub fn new($field: $fty) -> Self {
                    Self { $field }
                }
            }

            impl crate::event::KindeEvent for $name {
                const TYPE: &'static str = $ty;

                fn from_payload(payload: crate::event::EventPayload) -> Option<Self> {
                    match payload {
                        crate::event::EventPayload::$name(e) => Some(e),
                        _ => None,
                    }
                }

                fn into_payload(self) -> crate::event::EventPayload {
                    crate::event::EventPayload::$name(self)
                }
            }
        )+

        /// The typed payload of one event: one arm per documented Kinde event type, and
        /// [`EventPayload::Unknown`] for every other type.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum EventPayload {
            $( $(#[$doc])* $name($name), )+
            /// Any type without a published schema (`passkey.*`, `customer.*` billing events,
            /// anything Kinde adds later), kept with its raw `data`.
            Unknown(crate::event::UnknownEvent),
        }

        impl EventPayload {
            /// The Kinde type string, e.g. `user.created`.
            pub fn event_type(&self) -> &str {
                match self {
                    $( EventPayload::$name(_) => $ty, )+
                    EventPayload::Unknown(u) => &u.event_type,
                }
            }

            /// Parses raw `data` for the given type. A **known** type whose `data` does not match
            /// its schema is an error, never [`EventPayload::Unknown`].
            pub fn parse(event_type: &str, data: &serde_json::value::RawValue) -> Result<Self, serde_json::Error> {
                Ok(match event_type {
                    $( $ty => EventPayload::$name(serde_json::from_str(data.get())?), )+
                    other => EventPayload::Unknown(crate::event::UnknownEvent {
                        event_type: other.to_owned(),
                        data: serde_json::from_str(data.get())?,
                    }),
                })
            }

            /// [`EventPayload::parse`] from an already parsed `data` value.
            pub fn from_value(event_type: &str, data: serde_json::Value) -> Result<Self, serde_json::Error> {
                Ok(match event_type {
                    $( $ty => EventPayload::$name(serde_json::from_value(data)?), )+
                    other => EventPayload::Unknown(crate::event::UnknownEvent {
                        event_type: other.to_owned(),
                        data,
                    }),
                })
            }

            /// The `data` object as JSON (what [`EventPayload::parse`] reads).
            pub fn to_data_json(&self) -> serde_json::Value {
                match self {
                    $( EventPayload::$name(e) => serde_json::to_value(e).unwrap_or_default(), )+
                    EventPayload::Unknown(u) => u.data.clone(),
                }
            }
        }

        /// Every documented event type string, in the order of [`EventPayload`]'s arms.
        pub const KNOWN_EVENT_TYPES: &[&str] = &[ $( $ty, )+ ];
    };
}

event_types! {
    /// `user.created`
    UserCreated = "user.created" { user: User },
    /// `user.updated` (also fires on organization membership, role and permission changes)
    UserUpdated = "user.updated" { user: User },
    /// `user.deleted`
    UserDeleted = "user.deleted" { user: UserRef },
    /// `user.authenticated` (the client address is in [`crate::EventMeta::ip_address`])
    UserAuthenticated = "user.authenticated" { user: UserRef },
    /// `user.authentication_failed` (the client address is in [`crate::EventMeta::ip_address`])
    UserAuthenticationFailed = "user.authentication_failed" { user: UserRef },
    /// `access_request.created`
    AccessRequestCreated = "access_request.created" { access_request: AccessRequest },
    /// `organization.created`
    OrganizationCreated = "organization.created" { organization: Organization },
    /// `organization.updated`
    OrganizationUpdated = "organization.updated" { organization: OrganizationUpdate },
    /// `organization.deleted`
    OrganizationDeleted = "organization.deleted" { organization: OrganizationRef },
    /// `permission.created`
    PermissionCreated = "permission.created" { permission: Permission },
    /// `permission.updated`
    PermissionUpdated = "permission.updated" { permission: Permission },
    /// `permission.deleted`
    PermissionDeleted = "permission.deleted" { permission: PermissionRef },
    /// `role.created`
    RoleCreated = "role.created" { role: Role },
    /// `role.updated`
    RoleUpdated = "role.updated" { role: Role },
    /// `role.deleted`
    RoleDeleted = "role.deleted" { role: RoleRef },
    /// `subscriber.created`
    SubscriberCreated = "subscriber.created" { subscriber: Subscriber },
}
