//! Exact ECS and OCSF values for hand-checked real records, one per shape users meet.

mod common;

use auditbridge::record::{Format, Record};
use auditbridge::transforms::normalize::OutputFormat;
use common::{doc, gunzip, process, repo, shared};
use serde_json::{json, Value};

/// The corpus line whose `eventID` is `id`, processed on its own.
fn cloudtrail(id: &str) -> Record {
    cloudtrail_matching(&[&format!("\"eventID\":\"{id}\"")])
}

/// The first corpus line containing every needle, processed on its own.
fn cloudtrail_matching(needles: &[&str]) -> Record {
    let corpus = gunzip(&shared("data/corpus/cloudtrail_real_union.ndjson.gz"));
    let line = corpus
        .split(|b| *b == b'\n')
        .find(|l| {
            let l = std::str::from_utf8(l).unwrap();
            needles.iter().all(|n| l.contains(n))
        })
        .unwrap_or_else(|| panic!("no corpus line has {needles:?}"));
    only(process(OutputFormat::Both, line))
}

/// The line of a file containing `needle`, processed on its own.
fn line_of(path: std::path::PathBuf, needle: &str) -> Record {
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {}", path.display()));
    only(process(OutputFormat::Both, line.as_bytes()))
}

fn only(out: auditbridge::transforms::Processed) -> Record {
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(out.records.len(), 1);
    out.records.into_iter().next().unwrap()
}

/// Assert `expected` (JSON pointer → value) against a document.
fn check(doc: &Value, expected: &[(&str, Value)]) {
    for (pointer, want) in expected {
        let got = doc.pointer(pointer).unwrap_or(&Value::Null);
        assert_eq!(got, want, "at {pointer} in {doc}");
    }
}

#[test]
fn create_access_key() {
    let r = cloudtrail("64b7de64-bf53-47ae-b7e3-d30cb1b5136e");
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/@timestamp", json!("2023-07-10T12:24:29.000Z")),
            ("/event/action", json!("CreateAccessKey")),
            ("/event/provider", json!("iam.amazonaws.com")),
            ("/event/category", json!(["iam"])),
            ("/event/type", json!(["user", "change"])),
            ("/event/outcome", json!("success")),
            ("/event/dataset", json!("aws.cloudtrail")),
            // Elastic's conventions (docs/elastic-ecs.md).
            ("/data_stream/dataset", json!("aws.cloudtrail")),
            ("/data_stream/type", json!("logs")),
            ("/data_stream/namespace", json!("default")),
            (
                "/aws/cloudtrail/request_parameters",
                json!("{userName=stratus-red-team-backdoor-u-user}"),
            ),
            (
                "/aws/cloudtrail/flattened/request_parameters/userName",
                json!("stratus-red-team-backdoor-u-user"),
            ),
            // As Elastic's own pipeline test expects for this call: `status` and
            // `createDate` share a HashMap bucket, so they keep the record's order.
            (
                "/aws/cloudtrail/response_elements",
                json!("{accessKey={accessKeyId=AKIATFQR7NSC3ZO6PKAZ, userName=stratus-red-team-backdoor-u-user, status=Active, createDate=Jul 10, 2023 12:24:29 PM}}"),
            ),
            ("/cloud/account/id", json!("123837392027")),
            ("/cloud/region", json!("us-east-1")),
            ("/user/id", json!("AIDATFQR7NSC5AU2ZV3IE")),
            ("/user/name", json!("bert-jan")),
            (
                "/user/target/name",
                json!("stratus-red-team-backdoor-u-user"),
            ),
            ("/source/ip", json!("192.168.10.20")),
            (
                "/related/user",
                json!([
                    "bert-jan",
                    "AIDATFQR7NSC5AU2ZV3IE",
                    "stratus-red-team-backdoor-u-user"
                ]),
            ),
            ("/related/ip", json!(["192.168.10.20"])),
            ("/tls/version", json!("1.2")),
            ("/tls/version_protocol", json!("tls")),
            ("/tls/client/server_name", json!("iam.amazonaws.com")),
            ("/auditbridge/credential/type", json!("long-term")),
            (
                "/aws/cloudtrail/flattened/response_elements/accessKey/accessKeyId",
                json!("AKIATFQR7NSC3ZO6PKAZ"),
            ),
            (
                "/aws/cloudtrail/user_identity/access_key_id",
                json!("AKIATFQR7NSC8Q4X20BJ"),
            ),
        ],
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/class_uid", json!(3001)),
            ("/activity_id", json!(99)),
            ("/type_uid", json!(300199)),
            ("/time", json!(1688991869000_i64)),
            (
                "/metadata/uid",
                json!("64b7de64-bf53-47ae-b7e3-d30cb1b5136e"),
            ),
            (
                "/actor/user/uid",
                json!("arn:aws:iam::123837392027:user/bert-jan"),
            ),
            // OCSF 1.8: credentials as `programmatic_credentials` (`credential_uid` is
            // deprecated); `type_id` 99 keeps AWS's own identity type as `type`.
            (
                "/actor/user/programmatic_credentials",
                json!([{"uid": "AKIATFQR7NSC8Q4X20BJ", "type": "AWS Access Key"}]),
            ),
            ("/actor/user/credential_uid", Value::Null),
            // Recommended attributes the log does carry.
            ("/timezone_offset", json!(0)),
            ("/cloud/account/type_id", json!(10)),
            ("/cloud/account/type", json!("AWS Account")),
            ("/actor/user/type_id", json!(99)),
            ("/actor/user/type", json!("IAMUser")),
            // Activity "Other" carries the operation, not the caption.
            ("/activity_id", json!(99)),
            ("/activity_name", json!("CreateAccessKey")),
            ("/type_name", json!("Account Change: Other")),
            ("/user/name", json!("stratus-red-team-backdoor-u-user")),
            ("/api/operation", json!("CreateAccessKey")),
            (
                "/api/request/uid",
                json!("6e516ef1-9cd8-47ad-b467-3f672af5d137"),
            ),
            ("/src_endpoint/ip", json!("192.168.10.20")),
            ("/cloud/account/uid", json!("123837392027")),
            ("/status_id", json!(1)),
        ],
    );
}

#[test]
fn create_user() {
    let r = cloudtrail("66d008e1-12cf-4a45-99e7-0be67fc70d71");
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/event/category", json!(["iam"])),
            ("/event/type", json!(["user", "creation"])),
            (
                "/user/target/name",
                json!("stratus-red-team-nmfalu-gfjyeaypjt"),
            ),
            ("/user/target/id", json!("AIDATFQR7NSCYG26CT6RI")),
        ],
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/class_uid", json!(3001)),
            ("/activity_id", json!(1)),
            ("/activity_name", json!("Create")),
            ("/user/name", json!("stratus-red-team-nmfalu-gfjyeaypjt")),
            (
                "/user/uid",
                json!("arn:aws:iam::123837392027:user/stratus-red-team-nmfalu-gfjyeaypjt"),
            ),
            ("/user/uid_alt", json!("AIDATFQR7NSCYG26CT6RI")),
        ],
    );
}

#[test]
fn assume_role() {
    let r = cloudtrail("4bd2a6f6-dddc-49e6-ba7d-08f73e809e64");
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/event/category", json!(["authentication"])),
            ("/event/type", json!(["info"])),
            (
                "/aws/cloudtrail/request_parameters",
                json!("{durationSeconds=900, roleArn=arn:aws:iam::123837392027:role/stratus-red-team-ec2-get-password-data-role, roleSessionName=aws-go-sdk-1688990082523310002}"),
            ),
            ("/event/outcome", json!("success")),
            ("/user/name", json!("bert-jan")),
        ],
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            // Security Lake's routing: taking a role is an Authentication (Logon).
            ("/class_uid", json!(3002)),
            ("/activity_id", json!(1)),
            ("/activity_name", json!("Logon")),
            ("/type_uid", json!(300201)),
            ("/api/service/name", json!("sts.amazonaws.com")),
            // Authentication has no `resources`: the role stays in `unmapped`.
            ("/resources", Value::Null),
            (
                "/unmapped/resources/0/ARN",
                json!("arn:aws:iam::123837392027:role/stratus-red-team-ec2-get-password-data-role"),
            ),
            (
                "/api/request/data/roleSessionName",
                json!("aws-go-sdk-1688990082523310002"),
            ),
        ],
    );
}

#[test]
fn console_login_failure() {
    let r = cloudtrail("d38ce1b3-4575-4cb8-a632-611b8243bfc3");
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/event/action", json!("ConsoleLogin")),
            ("/event/category", json!(["authentication"])),
            ("/event/type", json!(["info"])),
            ("/event/outcome", json!("failure")),
            (
                "/aws/cloudtrail/console_login/additional_eventdata/mfa_used",
                json!(true),
            ),
            ("/user/name", json!("anaya")),
            ("/error/message", json!("Failed authentication")),
            ("/source/ip", json!("192.0.2.0")),
        ],
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/class_uid", json!(3002)),
            ("/activity_id", json!(1)),
            ("/type_uid", json!(300201)),
            ("/status_id", json!(2)),
            ("/status", json!("Failure")),
            ("/status_detail", json!("Failed authentication")),
            ("/is_mfa", json!(true)),
            ("/user/name", json!("anaya")),
            ("/service/name", json!("signin.amazonaws.com")),
        ],
    );
}

#[test]
fn aws_service_event() {
    let r = cloudtrail("a4a7b25e-c2d5-436f-8a7e-ea89f50541ab");
    let ecs = doc(&r, Format::Ecs);
    check(
        &ecs,
        &[
            // As Elastic writes it: the calling service is `service.name`, not a user.
            ("/user/name", Value::Null),
            ("/service/name", json!("inspector2.amazonaws.com")),
            ("/cloud/service/name", json!("sts")),
            ("/source/address", json!("inspector2.amazonaws.com")),
            (
                "/aws/cloudtrail/shared_event_id",
                json!("71797d26-1286-4204-81d4-cbcce8819672"),
            ),
        ],
    );
    assert!(
        ecs.pointer("/source/ip").is_none(),
        "a service name is not an IP"
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/actor/user/type_id", json!(99)),
            ("/actor/user/type", json!("AWSService")),
            ("/actor/user/name", json!("inspector2.amazonaws.com")),
            ("/actor/app_name", json!("inspector2.amazonaws.com")),
            ("/src_endpoint/domain", json!("inspector2.amazonaws.com")),
            (
                "/unmapped/sharedEventID",
                json!("71797d26-1286-4204-81d4-cbcce8819672"),
            ),
        ],
    );
}

/// One constructed CloudTrail record, processed on its own.
fn constructed(record: Value) -> Value {
    doc(
        &only(process(OutputFormat::Ecs, record.to_string().as_bytes())),
        Format::Ecs,
    )
}

#[test]
fn iam_group_user_rename_and_email_role_session_as_elastic_writes_them() {
    let issuer = json!({"type": "Role", "principalId": "AROAEXAMPLE", "userName": "AWSReservedSSO_Admin_1",
        "arn": "arn:aws:iam::111111111111:role/AWSReservedSSO_Admin_1", "accountId": "111111111111"});
    let identity = json!({"type": "AssumedRole", "principalId": "AROAEXAMPLE:jane.doe@example.com",
        "arn": "arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Admin_1/jane.doe@example.com",
        "accountId": "111111111111", "sessionContext": {"sessionIssuer": issuer}});
    let call = |name: &str, params: Value, response: Value| {
        json!({"eventVersion": "1.08", "eventTime": "2024-05-01T10:00:00Z", "eventSource": "iam.amazonaws.com",
            "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
            "userIdentity": identity, "requestParameters": params, "responseElements": response,
            "eventID": format!("e-{name}"), "eventType": "AwsApiCall", "recipientAccountId": "111111111111"})
    };
    let created = constructed(call(
        "CreateGroup",
        json!({"groupName": "admins"}),
        json!({"group": {"groupName": "admins", "groupId": "AGPAEXAMPLE", "path": "/"}}),
    ));
    check(
        &created,
        &[
            ("/group/name", json!("admins")),
            ("/group/id", json!("AGPAEXAMPLE")),
            ("/user/name", json!("AWSReservedSSO_Admin_1")),
            ("/user/email", json!("jane.doe@example.com")),
            (
                "/related/user",
                json!([
                    "AWSReservedSSO_Admin_1",
                    "jane.doe@example.com",
                    "jane.doe",
                    "AROAEXAMPLE:jane.doe@example.com"
                ]),
            ),
            ("/cloud/service/name", json!("iam")),
        ],
    );
    let renamed = constructed(call(
        "UpdateUser",
        json!({"userName": "bob", "newUserName": "robert"}),
        Value::Null,
    ));
    check(
        &renamed,
        &[
            ("/user/target/name", json!("bob")),
            ("/user/changes/name", json!("robert")),
            ("/related/user/4", json!("bob")),
            ("/related/user/5", json!("robert")),
            ("/group", Value::Null),
        ],
    );
    // EC2's `groupName` is a security group: no user group.
    let mut sg = call(
        "CreateSecurityGroup",
        json!({"groupName": "web"}),
        json!({"groupId": "sg-1"}),
    );
    sg["eventSource"] = json!("ec2.amazonaws.com");
    check(&constructed(sg), &[("/group", Value::Null)]);
}

/// `related.entity` as Elastic's entity pipeline lists it: the caller's identifiers on every
/// record, and per action the ids it touches. "Customer-managed policy attached to role"
/// excludes AWS-managed policies with `not related.entity: arn\:aws\:iam\:\:aws\:policy*`.
#[test]
fn related_entities_as_elastic_lists_them() {
    let attach = |policy: &str| {
        constructed(
            json!({"eventVersion": "1.08", "eventTime": "2024-05-01T10:00:00Z",
            "eventSource": "iam.amazonaws.com", "eventName": "AttachRolePolicy", "awsRegion": "us-east-1",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "userName": "alice",
                "arn": "arn:aws:iam::111111111111:user/alice", "accountId": "111111111111"},
            "requestParameters": {"roleName": "ops", "policyArn": policy},
            "eventID": "e-attach", "eventType": "AwsApiCall", "recipientAccountId": "111111111111"}),
        )
    };
    check(
        &attach("arn:aws:iam::aws:policy/AdministratorAccess"),
        &[(
            "/related/entity",
            json!([
                "AIDAEXAMPLE",
                "alice",
                "arn:aws:iam::111111111111:user/alice",
                "arn:aws:iam::aws:policy/AdministratorAccess",
                "ops"
            ]),
        )],
    );
    check(
        &attach("arn:aws:iam::111111111111:policy/escalate"),
        &[(
            "/related/entity/2",
            json!("arn:aws:iam::111111111111:policy/escalate"),
        )],
    );
}

/// One constructed record's OCSF document, checked against its class schema and the
/// OCSF server's rules.
fn ocsf_of(record: Value) -> Value {
    let d = doc(
        &only(process(OutputFormat::Ocsf, record.to_string().as_bytes())),
        Format::Ocsf,
    );
    assert_eq!(
        common::Schemas::load().ocsf_errors(&d),
        Vec::<String>::new(),
        "{d}"
    );
    let findings = common::ocsf_rules::OcsfRules::load().validate(&d, false);
    assert!(findings.is_empty(), "{findings:#?} in {d}");
    d
}

/// An Insight's Start and End, as AWS documents them: ECS as Elastic indexes Insight events
/// (no action, the details flattened), OCSF as one Detection Finding opened and closed.
#[test]
fn cloudtrail_insight_start_and_end() {
    let bytes = std::fs::read(repo(
        "tests/fixtures/cloudtrail/aws-docs-insight-events.json",
    ))
    .unwrap();
    let out = process(OutputFormat::Both, &bytes);
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    let [start, end] = &out.records[..] else {
        panic!("{} records", out.records.len())
    };
    check(
        &doc(start, Format::Ecs),
        &[
            ("/@timestamp", json!("2019-10-17T10:05:00.000Z")),
            ("/event/kind", json!("event")),
            ("/event/type", json!(["info"])),
            ("/event/category", Value::Null),
            ("/event/action", Value::Null),
            ("/event/outcome", json!("success")),
            ("/data_stream/dataset", json!("aws.cloudtrail")),
            ("/cloud/account/id", json!("123456789012")),
            ("/aws/cloudtrail/event_type", json!("AwsCloudTrailInsight")),
            ("/aws/cloudtrail/event_category", json!("Insight")),
            ("/aws/cloudtrail/flattened/insight_details/insightType", json!("ApiCallRateInsight")),
            ("/aws/cloudtrail/flattened/insight_details/eventName", json!("UpdateInstanceAssociationStatus")),
            ("/aws/cloudtrail/insight_details", Value::Null),
            ("/message", json!("CloudTrail Insight Start: ApiCallRateInsight on ssm.amazonaws.com UpdateInstanceAssociationStatus (baseline average 1.7561507937, insight average 50.1)")),
        ],
    );
    let rules = common::ocsf_rules::OcsfRules::load();
    for (r, activity, status) in [(start, 1, 1), (end, 3, 99)] {
        let d = doc(r, Format::Ocsf);
        assert!(rules.validate(&d, false).is_empty(), "{d}");
        check(
            &d,
            &[
                ("/class_uid", json!(2004)),
                ("/activity_id", json!(activity)),
                ("/type_uid", json!(200400 + activity)),
                ("/status_id", json!(status)),
                ("/severity_id", json!(0)),
                (
                    "/finding_info/uid",
                    json!("12edc982-3348-4794-83d3-a3db26525049"),
                ),
                ("/finding_info/analytic/type_id", json!(3)),
                ("/finding_info/analytic/uid", json!("ApiCallRateInsight")),
                ("/api/operation", json!("UpdateInstanceAssociationStatus")),
                ("/api/service/name", json!("ssm.amazonaws.com")),
                (
                    "/anomaly_analyses/0/baselines/0/observations/0/value",
                    json!("1.7561507937"),
                ),
                (
                    "/unmapped/insightDetails/state",
                    json!(if activity == 1 { "Start" } else { "End" }),
                ),
            ],
        );
    }
    check(
        &doc(end, Format::Ocsf),
        &[
            ("/status", json!("End")),
            (
                "/anomaly_analyses/0/anomalies/0/observations/0/value",
                json!("50"),
            ),
        ],
    );
}

#[test]
fn ocsf_classes_as_security_lake_routes_cloudtrail() {
    let call = |source: &str, name: &str, params: Value, response: Value| {
        json!({"eventVersion": "1.08", "eventTime": "2024-05-01T10:00:00Z", "eventSource": source,
            "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "userName": "alice",
                "arn": "arn:aws:iam::111111111111:user/alice", "accountId": "111111111111"},
            "requestParameters": params, "responseElements": response, "requestID": "r-1",
            "eventID": format!("e-{name}"), "eventType": "AwsApiCall", "recipientAccountId": "111111111111"})
    };
    let policy = ocsf_of(call(
        "iam.amazonaws.com",
        "CreatePolicy",
        json!({"policyName": "escalate", "policyDocument": "{}"}),
        json!({"policy": {"arn": "arn:aws:iam::111111111111:policy/escalate", "policyName": "escalate"}}),
    ));
    check(
        &policy,
        &[
            ("/class_uid", json!(3001)),
            ("/activity_id", json!(1)),
            (
                "/policies",
                json!([{"uid": "arn:aws:iam::111111111111:policy/escalate", "name": "escalate"}]),
            ),
            ("/policy", Value::Null),
            ("/user/name", json!("alice")),
        ],
    );
    for (name, activity) in [
        ("CreateVirtualMFADevice", 99),
        ("AddRoleToInstanceProfile", 99),
        ("CreateInstanceProfile", 1),
        ("DeletePolicy", 6),
    ] {
        let d = ocsf_of(call(
            "iam.amazonaws.com",
            name,
            json!({"roleName": "r"}),
            Value::Null,
        ));
        check(
            &d,
            &[
                ("/class_uid", json!(3001)),
                ("/activity_id", json!(activity)),
            ],
        );
    }
    let password = ocsf_of(call(
        "signin.amazonaws.com",
        "PasswordUpdated",
        Value::Null,
        Value::Null,
    ));
    check(
        &password,
        &[
            ("/class_uid", json!(3001)),
            ("/activity_id", json!(3)),
            ("/activity_name", json!("Password Change")),
        ],
    );
    // No ARN: the principal id is the uid.
    let mut anonymous = call("s3.amazonaws.com", "GetObject", Value::Null, Value::Null);
    anonymous["userIdentity"] =
        json!({"type": "AWSAccount", "principalId": "AIDAOTHER", "accountId": "222222222222"});
    check(
        &ocsf_of(anonymous),
        &[
            ("/actor/user/uid", json!("AIDAOTHER")),
            ("/actor/user/uid_alt", Value::Null),
        ],
    );
}

#[test]
fn entra_group_membership_is_group_management() {
    let audit = |activity: &str, initiated: Value, targets: Value| {
        json!({"time": "2024-05-01T10:00:00Z", "category": "AuditLogs", "operationName": activity,
            "tenantId": "t-1", "resultType": "Success", "correlationId": "c-1",
            "properties": {"id": format!("a-{activity}"), "activityDisplayName": activity,
                "category": "GroupManagement", "result": "success", "loggedByService": "Core Directory",
                "operationType": "Assign", "initiatedBy": initiated, "targetResources": targets}})
    };
    let admin = json!({"user": {"id": "u-admin", "userPrincipalName": "admin@contoso.com"}});
    let member = json!({"id": "u-bob", "type": "User", "userPrincipalName": "bob@contoso.com",
        "modifiedProperties": [
            {"displayName": "Group.ObjectID", "oldValue": null, "newValue": "\"g-admins\""},
            {"displayName": "Group.DisplayName", "oldValue": null, "newValue": "\"Admins\""}]});
    let added = ocsf_of(audit("Add member to group", admin.clone(), json!([member])));
    check(
        &added,
        &[
            ("/class_uid", json!(3006)),
            ("/activity_id", json!(3)),
            ("/activity_name", json!("Add User")),
            ("/group", json!({"uid": "g-admins", "name": "Admins"})),
            ("/user/uid", json!("u-bob")),
            ("/actor/user/uid", json!("u-admin")),
        ],
    );
    let removed = ocsf_of(audit(
        "Remove member from group",
        admin,
        json!([{"id": "u-bob", "type": "User"}, {"id": "g-admins", "type": "Group", "displayName": "Admins"}]),
    ));
    check(
        &removed,
        &[
            ("/class_uid", json!(3006)),
            ("/activity_id", json!(4)),
            ("/group/uid", json!("g-admins")),
        ],
    );
    // Initiated by an application: its service principal is the actor; a target whose
    // keys are spelled in PascalCase still names the user.
    let by_app = json!({"app": {"appId": "app-1", "displayName": "Provisioner",
        "servicePrincipalId": "sp-1"}});
    let mut add_user = audit(
        "Add user",
        by_app,
        json!([{"Id": "u-new", "Type": "User", "UserPrincipalName": "new@contoso.com"}]),
    );
    add_user["properties"]["category"] = json!("UserManagement");
    check(
        &ocsf_of(add_user),
        &[
            ("/class_uid", json!(3001)),
            ("/actor/app_uid", json!("app-1")),
            ("/actor/user/uid", json!("sp-1")),
            ("/actor/user/type_id", json!(4)),
            ("/user/uid", json!("u-new")),
        ],
    );
}

#[test]
fn user_agents_parsed_as_elastics_user_agent_processor_does() {
    let t = auditbridge::transforms::Transformer::new(
        OutputFormat::Ecs,
        common::enrichment().with_user_agent(),
        std::sync::Arc::new(auditbridge::metrics::Metrics::default()),
    );
    let parsed = |agent: &str| {
        let record = json!({"eventVersion": "1.08", "eventTime": "2024-05-01T10:00:00Z",
            "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity", "userAgent": agent,
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "userName": "alice"},
            "eventID": "e-ua", "eventType": "AwsApiCall"});
        let out = t.process(
            record.to_string().as_bytes(),
            &auditbridge::event::Origin::Inline { name: "ua".into() },
        );
        doc(&only(out), Format::Ecs)["user_agent"].clone()
    };
    // Elastic's expected output for this agent (its CloudTrail pipeline test
    // `test-assume-role-email-session-json.log-expected.json`).
    let agent = "aws-cli/1.16.248 Python/3.4.7 Linux/4.9.184-0.1.ac.235.83.329.metal1.x86_64 botocore/1.12.239";
    assert_eq!(
        parsed(agent),
        json!({"original": agent, "name": "aws-cli", "version": "1.16.248",
            "os": {"name": "Linux", "version": "4.9.184", "full": "Linux 4.9.184"},
            "device": {"name": "Spider"}})
    );
    // And for a service calling (`test-assume-role-aws-service-json.log-expected.json`).
    assert_eq!(
        parsed("ec2.amazonaws.com"),
        json!({"original": "ec2.amazonaws.com", "name": "Other", "device": {"name": "Other"}})
    );
    // Off unless asked for.
    let plain = doc(
        &only(process(OutputFormat::Ecs, format!("{{\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"GetObject\",\"eventTime\":\"2024-05-01T10:00:00Z\",\"userAgent\":\"{agent}\"}}").as_bytes())),
        Format::Ecs,
    );
    assert_eq!(plain["user_agent"], json!({"original": agent}));
}

#[test]
fn geoip_and_asn_as_elastics_geoip_processor_writes_them() {
    let geoip = auditbridge::transforms::enrich::geoip::GeoIp::open(
        Some(&repo("tests/fixtures/geoip/City-Test.mmdb")),
        Some(&repo("tests/fixtures/geoip/ASN-Test.mmdb")),
    )
    .unwrap();
    let t = auditbridge::transforms::Transformer::new(
        OutputFormat::Ecs,
        common::enrichment().with_geoip(geoip),
        std::sync::Arc::new(auditbridge::metrics::Metrics::default()),
    );
    let source = |ip: &str| {
        let record = json!({"eventVersion": "1.08", "eventTime": "2024-05-01T10:00:00Z",
            "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
            "sourceIPAddress": ip, "eventID": "e-geo", "eventType": "AwsApiCall"});
        let out = t.process(
            record.to_string().as_bytes(),
            &auditbridge::event::Origin::Inline { name: "geo".into() },
        );
        doc(&only(out), Format::Ecs)["source"].clone()
    };
    // Elastic's expected `source.geo` for this address
    // (`test-assume-role-email-session-json.log-expected.json`).
    assert_eq!(
        source("81.2.69.144"),
        json!({"address": "81.2.69.144", "ip": "81.2.69.144",
            "geo": {"city_name": "London", "continent_name": "Europe", "country_iso_code": "GB",
                "country_name": "United Kingdom", "location": {"lat": 51.5142, "lon": -0.0931},
                "region_iso_code": "GB-ENG", "region_name": "England"},
            "as": {"number": 20712, "organization": {"name": "Andrews & Arnold Ltd"}}})
    );
    assert_eq!(
        source("198.51.100.7"),
        json!({"address": "198.51.100.7", "ip": "198.51.100.7"})
    );
    assert_eq!(
        source("ec2.amazonaws.com"),
        json!({"address": "ec2.amazonaws.com"})
    );
    let missing = auditbridge::transforms::enrich::geoip::GeoIp::open(
        Some(std::path::Path::new("/nonexistent/GeoLite2-City.mmdb")),
        None,
    );
    let err = missing.err().unwrap().to_string();
    assert!(
        err.starts_with(
            "cannot open the MaxMind database /nonexistent/GeoLite2-City.mmdb (enrich.geoip_city)"
        ),
        "{err}"
    );
}

#[test]
fn root_event() {
    let r = cloudtrail_matching(&[
        "\"eventID\":\"1111\"",
        "\"type\":\"Root\"",
        "CreateAccessKey",
    ]);
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/user/id", json!("123456789012")),
            ("/user/name", json!("root")),
            ("/event/action", json!("CreateAccessKey")),
            (
                "/aws/cloudtrail/user_identity/session_context/mfa_authenticated",
                json!("true"),
            ),
        ],
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/actor/user/type_id", json!(99)),
            ("/actor/user/type", json!("Root")),
            ("/actor/user/type", json!("Root")),
            ("/actor/user/uid", json!("arn:aws:iam::123456789012:root")),
            ("/actor/session/is_mfa", json!(true)),
            ("/actor/app_name", json!("signin.amazonaws.com")),
            ("/actor/invoked_by", Value::Null),
        ],
    );
}

#[test]
fn access_denied() {
    let r = cloudtrail("e4bad408-6272-4892-bf47-bd41b435ce40");
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/event/outcome", json!("failure")),
            ("/error/code", json!("AccessDenied")),
            ("/event/type", json!(["info"])),
        ],
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/status_id", json!(2)),
            ("/status_code", json!("AccessDenied")),
            ("/api/response/error", json!("AccessDenied")),
        ],
    );
}

#[test]
fn eventbridge_wrapped_record() {
    // The CreateUser record above as EventBridge delivers it.
    let corpus = gunzip(&shared("data/corpus/cloudtrail_real_union.ndjson.gz"));
    let line = corpus
        .split(|b| *b == b'\n')
        .find(|l| {
            std::str::from_utf8(l)
                .unwrap()
                .contains("66d008e1-12cf-4a45-99e7-0be67fc70d71")
        })
        .unwrap();
    let detail: Value = serde_json::from_slice(line).unwrap();
    let wrapped = json!({"version": "0", "id": "6b1a6bd6-5c6c-4a2d-9f5e-1c2b3d4e5f60",
        "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "account": "123837392027",
        "time": "2023-07-10T12:23:05Z", "region": "us-east-1", "resources": [], "detail": detail});
    let r = only(process(OutputFormat::Both, wrapped.to_string().as_bytes()));
    assert_eq!(r.id, "66d008e1-12cf-4a45-99e7-0be67fc70d71");
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/event/action", json!("CreateUser")),
            (
                "/user/target/name",
                json!("stratus-red-team-nmfalu-gfjyeaypjt"),
            ),
        ],
    );
}

#[test]
fn entra_add_service_principal_credentials() {
    let r = line_of(
        shared("data/entra/elastic/test-audit-logs-sample.log"),
        "\"operationName\": \"Add service principal credentials\"",
    );
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/@timestamp", json!("2022-01-22T18:15:02.516Z")),
            ("/event/action", json!("Add service principal credentials")),
            ("/event/category", json!(["iam"])),
            ("/event/type", json!(["change"])),
            ("/event/outcome", json!("success")),
            ("/event/dataset", json!("azure.auditlogs")),
            (
                "/event/id",
                json!("Directory_53161141-e3f4-4944-85b6-7b953f17265e_6X649_134684731"),
            ),
            ("/user/id", json!("b9814691-9ca1-4e55-a1ac-8ef5dd010ec0")),
            ("/user/name", json!("Managed Service Identity")),
            ("/source/ip", json!("1.128.3.4")),
            ("/cloud/provider", json!("azure")),
            (
                "/cloud/account/id",
                json!("4bbb79f7-5724-4c9e-95f3-de075f6ec090"),
            ),
            (
                // Keyed by position and in snake_case, as Elastic's rules address it.
                "/azure/auditlogs/properties/target_resources/0/display_name",
                json!("billing-test-wus"),
            ),
        ],
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/class_uid", json!(3004)),
            ("/activity_id", json!(3)),
            ("/entity/uid", json!("a7d5dcbe-0627-4ddf-a2f4-86b6785bcc42")),
            ("/entity/name", json!("billing-test-wus")),
            ("/entity/type", json!("ServicePrincipal")),
            ("/actor/app_name", json!("Managed Service Identity")),
            (
                "/actor/app_uid",
                json!("b9814691-9ca1-4e55-a1ac-8ef5dd010ec0"),
            ),
            ("/metadata/product/name", json!("Entra ID")),
            (
                "/metadata/correlation_uid",
                json!("53161141-e3f4-4944-85b6-7b953f17265e"),
            ),
        ],
    );
}

#[test]
fn entra_failed_sign_in() {
    let r = line_of(
        repo("samples/entra/panther-entra-diagnostic.ndjson"),
        "lockout-row-001",
    );
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/@timestamp", json!("2025-01-15T08:15:23.456Z")),
            ("/event/category", json!(["authentication"])),
            ("/event/outcome", json!("failure")),
            ("/event/dataset", json!("azure.signinlogs")),
            ("/user/id", json!("user-001")),
            ("/user/name", json!("boromir")),
            ("/user/email", json!("boromir@lotr.com")),
            ("/user/domain", json!("lotr.com")),
            ("/source/ip", json!("4.4.4.4")),
            ("/source/geo/country_iso_code", json!("RU")),
            ("/user_agent/original", json!("python-requests/2.28.0")),
            // snake_case at every level, as Elastic's rules query it.
            (
                "/azure/signinlogs/properties/status/error_code",
                json!(50053),
            ),
            ("/azure/tenant_id", json!("tenant-123")),
            ("/azure/correlation_id", json!("lockout-attack-001")),
            (
                "/azure/resource/id",
                json!("/tenants/tenant-123/providers/Microsoft.aadiam"),
            ),
            ("/azure/resource/provider", json!("Microsoft.aadiam")),
            ("/log/level", json!("4")),
            ("/client/ip", json!("4.4.4.4")),
            (
                "/message",
                json!("The account is locked, you’ve tried to sign in too many times with an incorrect user ID or password."),
            ),
        ],
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/class_uid", json!(3002)),
            ("/status_id", json!(2)),
            ("/status_code", json!("50053")),
            ("/user/email_addr", json!("boromir@lotr.com")),
            ("/service/name", json!("Microsoft Graph")),
            ("/actor/app_name", json!("Microsoft Office")),
            ("/src_endpoint/location/country", json!("RU")),
        ],
    );
}

#[test]
fn entra_service_principal_sign_in() {
    let r = line_of(
        shared(
            "data/entra/elastic/test-service-principal-signinlogs-sample.records-1-and-3-of-7.log",
        ),
        "d5935dca-86f2-4ac9-a42c-3593b00af801",
    );
    check(
        &doc(&r, Format::Ecs),
        &[
            ("/event/outcome", json!("success")),
            ("/user/id", json!("b029d485-a308-4311-8720-fb3192e5284e")),
            ("/user/name", json!("Terraform-Datadog-CLI")),
            (
                "/source/geo/location",
                json!({"lat": 17.385000228881836, "lon": 78.48670196533203}),
            ),
            // The three names Elastic's pipeline does not spell in plain snake_case.
            (
                "/azure/signinlogs/properties/created_at",
                json!("2022-02-08T06:22:28.3518405+00:00"),
            ),
            ("/azure/signinlogs/properties/processing_time_ms", json!(0)),
            (
                "/azure/signinlogs/properties/risk_level_during_signin",
                json!("low"),
            ),
            (
                "/azure/signinlogs/properties/risk_level_during_sign_in",
                Value::Null,
            ),
        ],
    );
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/class_uid", json!(3002)),
            ("/user/type_id", json!(4)),
            ("/user/uid", json!("b029d485-a308-4311-8720-fb3192e5284e")),
            (
                "/service/name",
                json!("Windows Azure Service Management API"),
            ),
            (
                "/unmapped/properties/servicePrincipalCredentialKeyId",
                json!("dbcd79c0-c3ea-46b9-9604-ff40d43b8618"),
            ),
        ],
    );
}

#[test]
fn entra_log_analytics_audit_row() {
    let text =
        std::fs::read_to_string(repo("samples/entra/otrf-aad-audit-log-analytics.ndjson")).unwrap();
    let first = text.lines().next().unwrap();
    let r = only(process(OutputFormat::Both, first.as_bytes()));
    check(&doc(&r, Format::Ecs), &[
        ("/@timestamp", json!("2021-08-02T13:29:25.983Z")),
        ("/event/action", json!("Update application – Certificates and secrets management ")),
        ("/event/category", json!(["iam"])),
        ("/event/id", json!("Directory_10065ffb-8199-48bc-8ff5-912cb5b8295a_AUMVX_13992832")),
        ("/user/id", json!("aead923d-498b-4f64-a66c-2af91447a8b6")),
        ("/user/name", json!("pgustavo")),
        ("/user/email", json!("pgustavo@simulandlabs.com")),
        ("/user_agent/original", json!("Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.17763.1971")),
        ("/azure/auditlogs/properties/target_resources/0/display_name", json!("SimuLandApp")),
    ]);
    check(
        &doc(&r, Format::Ocsf),
        &[
            ("/class_uid", json!(3004)),
            ("/entity/name", json!("SimuLandApp")),
            ("/entity/type", json!("Application")),
            ("/actor/user/email_addr", json!("pgustavo@simulandlabs.com")),
        ],
    );
}

/// The README's examples are printed sorted; the documents themselves keep the record's key
/// order in `aws.cloudtrail` (the order Elastic's pipeline writes them in).
#[test]
fn aws_cloudtrail_keeps_the_record_s_key_order() {
    let r = cloudtrail("64b7de64-bf53-47ae-b7e3-d30cb1b5136e");
    let ecs = r.outputs_of(Format::Ecs).next().unwrap();
    let text = std::str::from_utf8(&ecs.body).unwrap();
    for written in [
        concat!(
            r#""user_identity":{"type":"IAMUser","principal_id":"AIDATFQR7NSC5AU2ZV3IE","#,
            r#""arn":"arn:aws:iam::123837392027:user/bert-jan","account_id":"123837392027","#,
            r#""access_key_id":"AKIATFQR7NSC8Q4X20BJ","user_name":"bert-jan"},"event_time":"#
        ),
        concat!(
            r#""tls_details":{"tlsVersion":"TLSv1.2","cipherSuite":"ECDHE-RSA-AES128-GCM-SHA256","#,
            r#""clientProvidedHostHeader":"iam.amazonaws.com"}"#
        ),
        concat!(
            r#""response_elements":{"accessKey":{"accessKeyId":"AKIATFQR7NSC3ZO6PKAZ","#,
            r#""status":"Active","userName":"stratus-red-team-backdoor-u-user","#,
            r#""createDate":"Jul 10, 2023 12:24:29 PM"}}"#
        ),
    ] {
        assert!(text.contains(written), "{written} not in {text}");
    }
}
