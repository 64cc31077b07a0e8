//! What the server says about itself: `/ServiceProviderConfig`,
//! `/ResourceTypes`, `/Schemas` (RFC 7643 §5–7). The User schema here is also
//! what requests are checked against ([`USER_ATTRIBUTES`]).

use serde_json::{Value, json};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SPC_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// The most resources one list answer holds (`filter.maxResults`).
pub const MAX_RESULTS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    Complex,
}

/// One attribute of the published User schema.
#[derive(Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: &'static str,
    pub uniqueness: &'static str,
    pub canonical: &'static [&'static str],
    pub description: &'static str,
    pub sub: &'static [Attribute],
}

const fn string(name: &'static str, description: &'static str) -> Attribute {
    Attribute {
        name,
        ty: Type::String,
        multi: false,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        uniqueness: "none",
        canonical: &[],
        description,
        sub: &[],
    }
}

const fn boolean(name: &'static str, description: &'static str) -> Attribute {
    Attribute {
        ty: Type::Boolean,
        ..string(name, description)
    }
}

const fn multi(
    name: &'static str,
    description: &'static str,
    sub: &'static [Attribute],
) -> Attribute {
    Attribute {
        ty: Type::Complex,
        multi: true,
        sub,
        ..string(name, description)
    }
}

const TYPES: &[&str] = &["work", "home", "other"];

const NAME: &[Attribute] = &[
    string("formatted", "The full name, formatted for display."),
    string(
        "familyName",
        "The family name (last name in most Western languages).",
    ),
    string(
        "givenName",
        "The given name (first name in most Western languages).",
    ),
    string("middleName", "The middle name(s)."),
    string("honorificPrefix", "Honorific prefix(es), e.g. Ms."),
    string("honorificSuffix", "Honorific suffix(es), e.g. III."),
];

const EMAIL: &[Attribute] = &[
    string("value", "The e-mail address."),
    string("display", "A human-readable name for display."),
    Attribute {
        canonical: TYPES,
        ..string("type", "work, home or other.")
    },
    boolean("primary", "Whether this is the primary address."),
];

const PHONE: &[Attribute] = &[
    string("value", "The phone number."),
    string("display", "A human-readable name for display."),
    Attribute {
        canonical: &["work", "home", "mobile", "fax", "pager", "other"],
        ..string("type", "work, home, mobile, fax, pager or other.")
    },
    boolean("primary", "Whether this is the primary number."),
];

/// The User attributes keygate publishes and checks. Others an identity
/// provider sends (addresses, the enterprise extension, …) are kept as sent.
pub const USER_ATTRIBUTES: &[Attribute] = &[
    Attribute {
        required: true,
        uniqueness: "server",
        ..string(
            "userName",
            "The keygate user id (1–200 printable characters), unique case-insensitively. \
             After a rename, deprovisioning removes the former ids too.",
        )
    },
    Attribute {
        ty: Type::Complex,
        sub: NAME,
        ..string("name", "The components of the user's name.")
    },
    string("displayName", "The name of the user, for display."),
    string("nickName", "The casual name of the user."),
    string("title", "The user's title, e.g. Vice President."),
    string(
        "userType",
        "The relationship to the organisation, e.g. Employee.",
    ),
    string("preferredLanguage", "The preferred language, e.g. en-US."),
    string("locale", "The default location, e.g. en-US."),
    string("timezone", "The time zone, e.g. Europe/Amsterdam."),
    boolean(
        "active",
        "false removes the user from keygate: every key revoked, no more acting. \
         true again lets the user act again; revoked keys stay revoked.",
    ),
    multi("emails", "E-mail addresses.", EMAIL),
    multi("phoneNumbers", "Phone numbers.", PHONE),
];

/// The published attribute named `name` (case-insensitively).
pub fn attribute(name: &str) -> Option<&'static Attribute> {
    USER_ATTRIBUTES
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
}

impl Attribute {
    pub fn sub_attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    fn to_json(&self) -> Value {
        let ty = match self.ty {
            Type::String => "string",
            Type::Boolean => "boolean",
            Type::Complex => "complex",
        };
        let mut a = json!({
            "name": self.name,
            "type": ty,
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "mutability": self.mutability,
            "returned": "default",
        });
        if self.ty == Type::String {
            a["caseExact"] = json!(self.case_exact);
            a["uniqueness"] = json!(self.uniqueness);
        }
        if !self.canonical.is_empty() {
            a["canonicalValues"] = json!(self.canonical);
        }
        if !self.sub.is_empty() {
            a["subAttributes"] = Value::Array(self.sub.iter().map(Attribute::to_json).collect());
        }
        a
    }
}

fn meta(resource_type: &str, base: &str, path: &str) -> Value {
    json!({"resourceType": resource_type, "location": format!("{base}{path}")})
}

pub fn user_schema(base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": USER_URN,
        "name": "User",
        "description": "A person whose keygate user id is userName",
        "attributes": USER_ATTRIBUTES.iter().map(Attribute::to_json).collect::<Vec<_>>(),
        "meta": meta("Schema", base, &format!("/Schemas/{USER_URN}")),
    })
}

pub fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "User Account",
        "schema": USER_URN,
        "meta": meta("ResourceType", base, "/ResourceTypes/User"),
    })
}

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_URN],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "Authorization: Bearer <scim_token>, the Spin variable scim_token",
            "primary": true,
        }],
        "meta": meta("ServiceProviderConfig", base, "/ServiceProviderConfig"),
    })
}

/// A ListResponse of everything, for the discovery collections.
pub fn list_of(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}
