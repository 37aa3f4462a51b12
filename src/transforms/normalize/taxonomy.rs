//! Which ECS categorisation and which OCSF class each kind of event gets.
//!
//! One table per provider, keyed by event name (CloudTrail) or activity (Entra). Events
//! outside the tables are categorised by the verb their name starts with.

use crate::transforms::decode::{AzureRecord, CloudTrailRecord, GcpRecord};

/// An OCSF class with the activity this event represents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcsfClass {
    ApiActivity(u8),
    AccountChange(u8),
    Authentication(u8),
    EntityManagement(u8),
    UserAccess(u8),
    GroupManagement(u8),
}

impl OcsfClass {
    pub fn class_uid(self) -> u32 {
        match self {
            OcsfClass::ApiActivity(_) => 6003,
            OcsfClass::AccountChange(_) => 3001,
            OcsfClass::Authentication(_) => 3002,
            OcsfClass::EntityManagement(_) => 3004,
            OcsfClass::UserAccess(_) => 3005,
            OcsfClass::GroupManagement(_) => 3006,
        }
    }

    pub fn class_name(self) -> &'static str {
        match self {
            OcsfClass::ApiActivity(_) => "API Activity",
            OcsfClass::AccountChange(_) => "Account Change",
            OcsfClass::Authentication(_) => "Authentication",
            OcsfClass::EntityManagement(_) => "Entity Management",
            OcsfClass::UserAccess(_) => "User Access Management",
            OcsfClass::GroupManagement(_) => "Group Management",
        }
    }

    pub fn category(self) -> (u32, &'static str) {
        match self {
            OcsfClass::ApiActivity(_) => (6, "Application Activity"),
            _ => (3, "Identity & Access Management"),
        }
    }

    pub fn activity_id(self) -> u8 {
        match self {
            OcsfClass::ApiActivity(a)
            | OcsfClass::AccountChange(a)
            | OcsfClass::Authentication(a)
            | OcsfClass::EntityManagement(a)
            | OcsfClass::UserAccess(a)
            | OcsfClass::GroupManagement(a) => a,
        }
    }

    pub fn activity_name(self) -> &'static str {
        let a = self.activity_id();
        if a == 99 {
            return "Other";
        }
        let names: &[&str] = match self {
            OcsfClass::ApiActivity(_) => &["Unknown", "Create", "Read", "Update", "Delete"],
            OcsfClass::AccountChange(_) => &[
                "Unknown",
                "Create",
                "Enable",
                "Password Change",
                "Password Reset",
                "Disable",
                "Delete",
                "Attach Policy",
                "Detach Policy",
                "Lock",
                "MFA Factor Enable",
                "MFA Factor Disable",
                "Unlock",
            ],
            OcsfClass::Authentication(_) => &["Unknown", "Logon", "Logoff"],
            OcsfClass::EntityManagement(_) => &["Unknown", "Create", "Read", "Update", "Delete"],
            OcsfClass::UserAccess(_) => &["Unknown", "Assign Privileges", "Revoke Privileges"],
            OcsfClass::GroupManagement(_) => &[
                "Unknown",
                "Assign Privileges",
                "Revoke Privileges",
                "Add User",
                "Remove User",
                "Delete",
                "Create",
                "Add Subgroup",
                "Remove Subgroup",
            ],
        };
        names.get(a as usize).copied().unwrap_or("Unknown")
    }

    pub fn type_uid(self) -> u32 {
        self.class_uid() * 100 + u32::from(self.activity_id())
    }
}

/// ECS categorisation plus the OCSF class for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taxonomy {
    pub ecs_category: &'static [&'static str],
    pub ecs_type: &'static [&'static str],
    pub ocsf: OcsfClass,
}

const fn t(
    ecs_category: &'static [&'static str],
    ecs_type: &'static [&'static str],
    ocsf: OcsfClass,
) -> Taxonomy {
    Taxonomy {
        ecs_category,
        ecs_type,
        ocsf,
    }
}

const IAM: &[&str] = &["iam"];
const AUTH: &[&str] = &["authentication"];
const CONFIG: &[&str] = &["configuration"];
const NONE: &[&str] = &[];

/// The verb an API or activity name starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Create,
    Read,
    Update,
    Delete,
    Other,
}

fn verb(name: &str) -> Verb {
    const CREATE: &[&str] = &[
        "Create", "Run", "Add", "Allocate", "Import", "Register", "Copy", "Issue", "Request",
        "Generate", "Upload", "Invite",
    ];
    const READ: &[&str] = &[
        "Get", "List", "Describe", "Head", "Lookup", "Search", "Scan", "Query", "Select",
        "BatchGet", "Check", "Download", "Preview", "Simulate", "Decrypt", "Verify",
    ];
    const UPDATE: &[&str] = &[
        "Update",
        "Put",
        "Modify",
        "Set",
        "Attach",
        "Detach",
        "Enable",
        "Disable",
        "Associate",
        "Disassociate",
        "Start",
        "Stop",
        "Reboot",
        "Tag",
        "Untag",
        "Authorize",
        "Revoke",
        "Replace",
        "Change",
        "Restore",
        "Reset",
        "Assign",
        "Unassign",
        "Apply",
        "Rotate",
    ];
    const DELETE: &[&str] = &[
        "Delete",
        "Remove",
        "Terminate",
        "Deregister",
        "Release",
        "Cancel",
        "Purge",
        "Hard delete",
    ];
    let starts = |list: &[&str]| list.iter().any(|p| name.starts_with(p));
    if starts(DELETE) {
        Verb::Delete
    } else if starts(READ) {
        Verb::Read
    } else if starts(CREATE) {
        Verb::Create
    } else if starts(UPDATE) {
        Verb::Update
    } else {
        Verb::Other
    }
}

fn api_activity(v: Verb) -> OcsfClass {
    OcsfClass::ApiActivity(match v {
        Verb::Create => 1,
        Verb::Read => 2,
        Verb::Update => 3,
        Verb::Delete => 4,
        Verb::Other => 99,
    })
}

fn ecs_type_of(v: Verb) -> &'static [&'static str] {
    match v {
        Verb::Create => &["creation"],
        Verb::Update => &["change"],
        Verb::Delete => &["deletion"],
        Verb::Read | Verb::Other => &["info"],
    }
}

/// Categorise a CloudTrail record.
pub fn cloudtrail(r: &CloudTrailRecord) -> Taxonomy {
    let name = r.event_name();
    let source = r.event_source();
    if source == "signin.amazonaws.com" {
        if name == "PasswordUpdated" {
            return t(IAM, &["user", "change"], OcsfClass::AccountChange(3));
        }
        let activity = if name == "ConsoleLogin" { 1 } else { 99 };
        return t(AUTH, &["start"], OcsfClass::Authentication(activity));
    }
    if source == "sts.amazonaws.com" {
        // As Security Lake maps them: taking a role is a logon to it.
        if name.starts_with("AssumeRole") {
            return t(AUTH, &["start"], OcsfClass::Authentication(1));
        }
        if name == "GetSessionToken" || name == "GetFederationToken" {
            return t(AUTH, &["start"], OcsfClass::ApiActivity(1));
        }
    }
    if source == "iam.amazonaws.com" {
        if let Some(tax) = iam(name) {
            return tax;
        }
        let v = verb(name);
        return t(IAM, ecs_type_of(v), api_activity(v));
    }
    let v = verb(name);
    match v {
        Verb::Read | Verb::Other => t(NONE, &["info"], api_activity(v)),
        _ => t(CONFIG, ecs_type_of(v), api_activity(v)),
    }
}

fn iam(name: &str) -> Option<Taxonomy> {
    use OcsfClass::AccountChange as Acct;
    const USER_CREATION: &[&str] = &["user", "creation"];
    const USER_CHANGE: &[&str] = &["user", "change"];
    const USER_DELETION: &[&str] = &["user", "deletion"];
    const GROUP_CREATION: &[&str] = &["group", "creation"];
    const GROUP_CHANGE: &[&str] = &["group", "change"];
    const GROUP_DELETION: &[&str] = &["group", "deletion"];
    let tax = match name {
        "CreateUser" => t(IAM, USER_CREATION, Acct(1)),
        "DeleteUser" => t(IAM, USER_DELETION, Acct(6)),
        "UpdateUser" | "TagUser" | "UntagUser" => t(IAM, USER_CHANGE, Acct(99)),
        "CreateAccessKey" | "UpdateAccessKey" | "DeleteAccessKey" => t(IAM, USER_CHANGE, Acct(99)),
        "CreateLoginProfile" | "UpdateLoginProfile" | "ChangePassword" => {
            t(IAM, USER_CHANGE, Acct(3))
        }
        "DeleteLoginProfile" => t(IAM, USER_CHANGE, Acct(99)),
        "EnableMFADevice" => t(IAM, USER_CHANGE, Acct(10)),
        "DeactivateMFADevice" => t(IAM, USER_CHANGE, Acct(11)),
        "AttachUserPolicy" | "PutUserPolicy" | "PutUserPermissionsBoundary" => {
            t(IAM, USER_CHANGE, Acct(7))
        }
        "DetachUserPolicy" | "DeleteUserPolicy" | "DeleteUserPermissionsBoundary" => {
            t(IAM, USER_CHANGE, Acct(8))
        }
        "AttachGroupPolicy" | "PutGroupPolicy" => t(IAM, GROUP_CHANGE, Acct(7)),
        "DetachGroupPolicy" | "DeleteGroupPolicy" => t(IAM, GROUP_CHANGE, Acct(8)),
        "AttachRolePolicy" | "PutRolePolicy" | "PutRolePermissionsBoundary" => {
            t(IAM, &["change"], Acct(7))
        }
        "DetachRolePolicy" | "DeleteRolePolicy" | "DeleteRolePermissionsBoundary" => {
            t(IAM, &["change"], Acct(8))
        }
        "CreateRole" | "CreateServiceLinkedRole" => t(IAM, &["creation"], Acct(1)),
        "DeleteRole" | "DeleteServiceLinkedRole" => t(IAM, &["deletion"], Acct(6)),
        "UpdateAssumeRolePolicy" | "UpdateRole" => t(IAM, &["change"], Acct(99)),
        "CreateGroup" => t(IAM, GROUP_CREATION, Acct(1)),
        "DeleteGroup" => t(IAM, GROUP_DELETION, Acct(6)),
        "AddUserToGroup" | "RemoveUserFromGroup" => t(IAM, GROUP_CHANGE, Acct(99)),
        // Policies, MFA devices and instance profiles change what an identity may do:
        // Account Change, as Security Lake routes them.
        "CreatePolicy" => t(IAM, &["creation"], Acct(1)),
        "DeletePolicy" => t(IAM, &["deletion"], Acct(6)),
        "CreatePolicyVersion" | "DeletePolicyVersion" | "SetDefaultPolicyVersion" => {
            t(IAM, &["change"], Acct(99))
        }
        "CreateVirtualMFADevice" | "DeleteVirtualMFADevice" | "ResyncMFADevice" => {
            t(IAM, USER_CHANGE, Acct(99))
        }
        "CreateInstanceProfile" => t(IAM, &["creation"], Acct(1)),
        "DeleteInstanceProfile" => t(IAM, &["deletion"], Acct(6)),
        "AddRoleToInstanceProfile" | "RemoveRoleFromInstanceProfile" => {
            t(IAM, &["change"], Acct(99))
        }
        _ => return None,
    };
    Some(tax)
}

/// Categorise an Entra record.
pub fn entra(r: &AzureRecord) -> Taxonomy {
    if r.kind().is_sign_in() {
        return t(AUTH, &["start"], OcsfClass::Authentication(1));
    }
    let activity = r.activity();
    let lower = activity.to_ascii_lowercase();
    let has = |p: &str| lower.starts_with(p);
    use OcsfClass::{
        AccountChange as Acct, EntityManagement as Ent, GroupManagement as Group,
        UserAccess as Access,
    };
    match lower.as_str() {
        "add member to group" => return t(IAM, &["group", "change"], Group(3)),
        "remove member from group" => return t(IAM, &["group", "change"], Group(4)),
        "add group" => return t(IAM, &["group", "creation"], Group(6)),
        "delete group" | "hard delete group" => return t(IAM, &["group", "deletion"], Group(5)),
        _ => {}
    }
    if has("add member to role") || has("add eligible member to role") {
        return t(IAM, &["user", "change", "admin"], Access(1));
    }
    if has("remove member from role") || has("remove eligible member from role") {
        return t(IAM, &["user", "change", "admin"], Access(2));
    }
    if has("add app role assignment")
        || has("add delegated permission grant")
        || has("consent to application")
    {
        return t(IAM, &["change"], Access(1));
    }
    if has("remove app role assignment") || has("remove delegated permission grant") {
        return t(IAM, &["change"], Access(2));
    }
    match lower.as_str() {
        "add user" | "invite external user" | "invite internal user" => {
            return t(IAM, &["user", "creation"], Acct(1))
        }
        "delete user" | "hard delete user" => return t(IAM, &["user", "deletion"], Acct(6)),
        "update user" => return t(IAM, &["user", "change"], Acct(99)),
        "change user password" => return t(IAM, &["user", "change"], Acct(3)),
        "reset user password" | "reset password (by admin)" => {
            return t(IAM, &["user", "change"], Acct(4))
        }
        "disable account" => return t(IAM, &["user", "change"], Acct(5)),
        "enable account" => return t(IAM, &["user", "change"], Acct(2)),
        _ => {}
    }
    if has("add service principal credentials")
        || has("remove service principal credentials")
        || has("update application – certificates and secrets")
        || has("update application - certificates and secrets")
        || has("add owner to")
        || has("remove owner from")
    {
        return t(IAM, &["change"], Ent(3));
    }
    let v = match r
        .prop_str("operationType")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") | Some("create") => Verb::Create,
        Some("update") | Some("assign") | Some("unassign") | Some("reset") => Verb::Update,
        Some("delete") => Verb::Delete,
        _ => verb(
            activity
                .split(' ')
                .next()
                .map(capitalise)
                .as_deref()
                .unwrap_or(""),
        ),
    };
    let category: &'static [&'static str] = match r.prop_str("category") {
        Some("UserManagement") | Some("GroupManagement") | Some("RoleManagement") => IAM,
        _ => CONFIG,
    };
    let ecs_type: &'static [&'static str] = match (r.prop_str("category"), v) {
        (Some("UserManagement"), Verb::Create) => &["user", "creation"],
        (Some("UserManagement"), Verb::Delete) => &["user", "deletion"],
        (Some("UserManagement"), _) => &["user", "change"],
        (Some("GroupManagement"), Verb::Create) => &["group", "creation"],
        (Some("GroupManagement"), Verb::Delete) => &["group", "deletion"],
        (Some("GroupManagement"), _) => &["group", "change"],
        (_, v) => ecs_type_of(v),
    };
    let activity_id = match v {
        Verb::Create => 1,
        Verb::Read => 2,
        Verb::Update => 3,
        Verb::Delete => 4,
        Verb::Other => 99,
    };
    t(category, ecs_type, Ent(activity_id))
}

/// Categorise an Activity Log record by its operation, `{namespace}/{type…}/{verb}`. A
/// `write` creates or updates, and its status tells which; a role assignment is the
/// privilege change it is, when the record names whom it gives the role.
pub fn activity(r: &AzureRecord) -> Taxonomy {
    use OcsfClass::UserAccess as Access;
    let Some(operation) = r.str("operationName").map(str::to_ascii_lowercase) else {
        return t(NONE, &["info"], OcsfClass::ApiActivity(0));
    };
    let last = operation.rsplit('/').next().unwrap_or("");
    const ADMIN_CHANGE: &[&str] = &["admin", "change"];
    if operation == "microsoft.authorization/elevateaccess/action" {
        return t(IAM, ADMIN_CHANGE, Access(1));
    }
    if operation.starts_with("microsoft.authorization/roleassignments/")
        && r.role_assignment().is_some()
    {
        match last {
            "write" => return t(IAM, ADMIN_CHANGE, Access(1)),
            "delete" => return t(IAM, ADMIN_CHANGE, Access(2)),
            _ => {}
        }
    }
    let created = r
        .prop_str("statusCode")
        .is_some_and(|c| c.eq_ignore_ascii_case("created"))
        || r.str("resultSignature")
            .is_some_and(|s| s.ends_with(".Created"));
    let v = match last {
        "write" if created => Verb::Create,
        "write" => Verb::Update,
        "delete" => Verb::Delete,
        "read" => Verb::Read,
        _ => Verb::Other,
    };
    let category = if operation.starts_with("microsoft.authorization/") {
        IAM
    } else {
        CONFIG
    };
    let ecs_type: &'static [&'static str] = match v {
        Verb::Read if category == CONFIG => &["access"],
        v => ecs_type_of(v),
    };
    t(category, ecs_type, api_activity(v))
}

/// The OCSF class of a Cloud Audit Logs entry, chosen as for CloudTrail: a service
/// account's life cycle is Account Change, an IAM policy set is User Access Management,
/// anything else API Activity by the verb of the method's last segment
/// (`v1.compute.instances.insert`, `google.iam.admin.v1.CreateServiceAccountKey`).
pub fn gcp(r: &GcpRecord) -> OcsfClass {
    use OcsfClass::AccountChange as Acct;
    let method = r.method();
    let name = capitalise(method.rsplit('.').next().unwrap_or(method));
    if r.service() == "iam.googleapis.com" {
        match name.as_str() {
            "CreateServiceAccount" => return Acct(1),
            "DeleteServiceAccount" => return Acct(6),
            "EnableServiceAccount" | "UndeleteServiceAccount" => return Acct(2),
            "DisableServiceAccount" => return Acct(5),
            "CreateServiceAccountKey"
            | "UploadServiceAccountKey"
            | "DeleteServiceAccountKey"
            | "EnableServiceAccountKey"
            | "DisableServiceAccountKey"
            | "PatchServiceAccount"
            | "UpdateServiceAccount" => return Acct(99),
            _ => {}
        }
    }
    if name.eq_ignore_ascii_case("SetIamPolicy") {
        return OcsfClass::UserAccess(1);
    }
    // Compute and storage name their verbs in REST style.
    let v = match name.as_str() {
        "Insert" => Verb::Create,
        "Patch" => Verb::Update,
        other => verb(other),
    };
    api_activity(v)
}

fn capitalise(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// ECS `event.category` and `event.type` of a CloudTrail record, as Elastic's integration
/// categorizes it where it does, so its rules keep working:
/// - an action in Elastic's table gets Elastic's values;
/// - any other action gets ours with `info` added: Elastic writes `info` for every action
///   outside its table, and its EQL rules select on it (`info where …` over
///   `event.type`), while ours keep `creation`/`change`/`deletion`.
///
/// Returned as the category, the types, and whether `info` follows them, so no list is
/// built per record.
pub fn cloudtrail_ecs(r: &CloudTrailRecord, tax: &Taxonomy) -> EcsCategories {
    match elastic_cloudtrail(r.event_name()) {
        Some((category, types)) => (category, types, false),
        None => (
            tax.ecs_category,
            tax.ecs_type,
            !tax.ecs_type.contains(&"info"),
        ),
    }
}

/// `event.category`, `event.type`, and whether `info` is added to the types.
pub type EcsCategories = (&'static [&'static str], &'static [&'static str], bool);

/// The table of Elastic's CloudTrail pipeline (`packages/aws/data_stream/cloudtrail`,
/// "Add ECS categorization").
fn elastic_cloudtrail(action: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    const FILE: &[&str] = &["file"];
    let types: &'static [&'static str] = match action {
        "AssumeRole" | "ConsoleLogin" => return Some((AUTH, &["info"])),
        "CreateBucket" => return Some((FILE, &["creation"])),
        "DeleteBucket" => return Some((FILE, &["deletion"])),
        "AddUserToGroup"
        | "AttachGroupPolicy"
        | "DeleteGroupPolicy"
        | "DetachGroupPolicy"
        | "PutGroupPolicy"
        | "RemoveUserFromGroup"
        | "UpdateGroup" => &["group", "change"],
        "CreateGroup" => &["group", "creation"],
        "DeleteGroup" => &["group", "deletion"],
        "GetGroup"
        | "GetGroupPolicy"
        | "ListAttachedGroupPolicies"
        | "ListGroupPolicies"
        | "ListGroups" => &["group", "info"],
        "CreateUser" => &["user", "creation"],
        "DeleteUser" => &["user", "deletion"],
        "AttachUserPolicy"
        | "ChangePassword"
        | "CreateAccessKey"
        | "CreateVirtualMFADevice"
        | "DeactivateMFADevice"
        | "DeleteAccessKey"
        | "DeleteSSHPublicKey"
        | "DeleteUserPermissionsBoundary"
        | "DeleteUserPolicy"
        | "DeleteVirtualMFADevice"
        | "DetachUserPolicy"
        | "EnableMFADevice"
        | "PutUserPermissionsBoundary"
        | "PutUserPolicy"
        | "TagUser"
        | "UntagUser"
        | "UpdateAccessKey"
        | "UpdateLoginProfile"
        | "UpdateSSHPublicKey"
        | "UpdateUser" => &["user", "change"],
        "GetUser"
        | "GetUserPolicy"
        | "ListAttachedUserPolicies"
        | "ListGroupsForUser"
        | "ListUserPolicies"
        | "ListUsers"
        | "ListUserTags" => &["user", "info"],
        "CreateKeyPair" => &["admin", "creation"],
        "SetDefaultPolicyVersion"
        | "SetSecurityTokenServicePreferences"
        | "UpdateAccountPasswordPolicy"
        | "UpdateRole" => &["admin", "change"],
        _ => return None,
    };
    Some((IAM, types))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs() {
        assert_eq!(verb("CreateFunction20150331"), Verb::Create);
        assert_eq!(verb("DescribeInstances"), Verb::Read);
        assert_eq!(verb("PutBucketPolicy"), Verb::Update);
        assert_eq!(verb("TerminateInstances"), Verb::Delete);
        assert_eq!(verb("ConsoleLogin"), Verb::Other);
    }

    #[test]
    fn ecs_categories_follow_elastic_where_it_has_them_and_always_say_info() {
        let record = |name: &str, source: &str| {
            let fields = serde_json::json!({"eventName": name, "eventSource": source, "eventTime": "2024-01-01T00:00:00Z"});
            let fields = fields.as_object().cloned().unwrap();
            CloudTrailRecord::new(fields.into(), chrono::Utc::now()).unwrap()
        };
        let ecs = |name: &str, source: &str| {
            let r = record(name, source);
            let (category, types, info) = cloudtrail_ecs(&r, &cloudtrail(&r));
            let mut types = types.to_vec();
            types.extend(info.then_some("info"));
            (category, types)
        };
        assert_eq!(
            ecs("CreateAccessKey", "iam.amazonaws.com"),
            (IAM, vec!["user", "change"])
        );
        assert_eq!(ecs("AssumeRole", "sts.amazonaws.com"), (AUTH, vec!["info"]));
        assert_eq!(
            ecs("CreateBucket", "s3.amazonaws.com"),
            (&["file"][..], vec!["creation"])
        );
        assert_eq!(
            ecs("PutBucketPolicy", "s3.amazonaws.com"),
            (CONFIG, vec!["change", "info"])
        );
        assert_eq!(
            ecs("AssumeRoleWithWebIdentity", "sts.amazonaws.com"),
            (AUTH, vec!["start", "info"])
        );
        assert_eq!(
            ecs("DescribeInstances", "ec2.amazonaws.com"),
            (NONE, vec!["info"])
        );
    }

    #[test]
    fn type_uids() {
        assert_eq!(OcsfClass::AccountChange(7).type_uid(), 300107);
        assert_eq!(OcsfClass::AccountChange(7).activity_name(), "Attach Policy");
        assert_eq!(OcsfClass::ApiActivity(99).activity_name(), "Other");
    }
}
