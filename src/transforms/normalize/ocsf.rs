//! OCSF 1.8.0 records with the `cloud` and `datetime` profiles. CloudTrail follows AWS
//! Security Lake's mapping; whatever has no OCSF attribute is kept under `unmapped`.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::document::{Base, Document, Fields, Head, Leaf, Object};
use super::sections::{
    has_unmapped_activity_fields, unmapped_cloudtrail, unmapped_entra_fields, Part,
};
use super::taxonomy::{OcsfClass, Taxonomy};
use crate::transforms::decode::fields::{obj_of, split_email, str_of};
use crate::transforms::decode::time::parse_time;
use crate::transforms::decode::{tree, AzureRecord, CloudTrailRecord, GcpRecord, UserIdentity};

pub const OCSF_VERSION: &str = "1.8.0";

pub fn epoch_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A document holding the attributes every class shares, placed without walking their
/// paths. `operation` is the source's name for the action: for the activity "Other" (99)
/// OCSF wants it as `activity_name`, not the caption.
fn base(class: OcsfClass, time: DateTime<Utc>, failed: bool, operation: &str) -> Document {
    let mut head = shared_head(class, time, failed, operation);
    head.put_object("metadata", metadata());
    Document::from_head(head)
}

/// The attributes every class shares, before `metadata`.
fn shared_head(class: OcsfClass, time: DateTime<Utc>, failed: bool, operation: &str) -> Head {
    let mut head = Head::with_capacity(20);
    for (key, leaf) in shared_fields(class, time, failed, operation) {
        head.put_leaf(key, leaf);
    }
    head
}

/// [`shared_head`]'s fields.
fn shared_fields(
    class: OcsfClass,
    time: DateTime<Utc>,
    failed: bool,
    operation: &str,
) -> [(&'static str, Leaf<'_>); 15] {
    let (category_uid, category_name) = class.category();
    [
        ("activity_id", Leaf::Int(class.activity_id().into())),
        (
            "activity_name",
            if class.activity_id() == 99 && !operation.is_empty() {
                Leaf::Str(operation)
            } else {
                Leaf::Constant(class.activity_name())
            },
        ),
        ("category_uid", Leaf::Int(category_uid.into())),
        ("category_name", Leaf::Constant(category_name)),
        ("class_uid", Leaf::Int(class.class_uid().into())),
        ("class_name", Leaf::Constant(class.class_name())),
        ("type_uid", Leaf::Int(class.type_uid().into())),
        (
            "type_name",
            Leaf::Joined(class.class_name(), class.activity_name()),
        ),
        ("severity_id", Leaf::Int(1)),
        ("severity", Leaf::Constant("Informational")),
        ("status_id", Leaf::Int(if failed { 2 } else { 1 })),
        (
            "status",
            Leaf::Constant(if failed { "Failure" } else { "Success" }),
        ),
        ("time", Leaf::Int(epoch_ms(time))),
        ("time_dt", Leaf::Time(time)),
        // CloudTrail and Entra write their times in UTC.
        ("timezone_offset", Leaf::Int(0)),
    ]
}

/// The `metadata` every document starts with.
fn metadata() -> Head {
    let mut metadata = Head::with_capacity(10);
    metadata.put_static("version", OCSF_VERSION);
    metadata.put_statics("profiles", &["cloud", "datetime"], None);
    metadata
}

/// `ip` for a real address, `domain` for a service name such as `lambda.amazonaws.com`.
/// OCSF requires a source endpoint to name something, so an absent address is "Unknown".
fn endpoint(addr: Option<&str>) -> Value {
    match addr {
        Some(a) if a.parse::<IpAddr>().is_ok() => json!({ "ip": a }),
        Some(a) => json!({ "domain": a }),
        None => json!({ "name": "Unknown" }),
    }
}

/// OCSF requires a user to carry a name, uid or account.
fn identified(mut user: Object) -> Object {
    if !["name", "uid", "account"].iter().any(|k| user.contains(k)) {
        user.put("name", "Unknown");
        user.put("type_id", 0);
        user.put("type", "Unknown");
    }
    user
}

/// OCSF wants `type` to be the caption of `type_id` unless `type_id` is 99 (Other),
/// which carries the source's own value. CloudTrail's identity types (`IAMUser`,
/// `AssumedRole`, `Root`, `AWSService`, …) are kept as AWS writes them, so they are 99.
fn user_type_id(identity_type: Option<&str>) -> u8 {
    match identity_type {
        None => 0,
        Some(_) => 99,
    }
}

/// The OCSF record of a CloudTrail record, written from the record when it is serialized
/// ([`write_cloudtrail`]).
pub fn cloudtrail(tax: &Taxonomy, now: DateTime<Utc>) -> Document {
    Document::based(Base::OcsfCloudTrail {
        class: tax.ocsf,
        now,
    })
}

/// A CloudTrail Insight event as an OCSF Detection Finding ([`write_cloudtrail`]).
pub fn cloudtrail_insight(now: DateTime<Utc>) -> Document {
    Document::based(Base::OcsfCloudTrail {
        class: OcsfClass::ApiActivity(0),
        now,
    })
}

/// Writes the OCSF record of a CloudTrail record straight from it, with no tree of the
/// fields built first: that tree cost more to build and drop than its text to write.
/// `class` is the record's, unless it is an Insight event.
pub fn write_cloudtrail(
    r: &CloudTrailRecord,
    class: OcsfClass,
    now: DateTime<Utc>,
    doc: &mut Fields,
) {
    if r.is_insight() {
        return write_cloudtrail_insight(r, now, doc);
    }
    let fields = r.fields();
    for (key, leaf) in shared_fields(class, r.time(), r.failed(), r.event_name()) {
        doc.leaf(key, leaf);
    }
    write_cloudtrail_source(doc, r, r.event_name_text().map(|s| s.as_str()), now);
    doc.record_str("status_code", fields, "errorCode");
    doc.record_str("status_detail", fields, "errorMessage");
    let who = r.user_identity();
    doc.object("actor", |actor| write_cloudtrail_actor(actor, &who));

    // OCSF's request object requires a uid; without requestID the parameters stay in
    // `unmapped.requestParameters`.
    let request_id = r.str("requestID");
    let present = |k: &str| fields.get(k).is_some_and(|v| !v.is_null());
    doc.object("api", |api| {
        api.record_string_or_empty("operation", r.event_name_text());
        api.object("service", |service| {
            service.record_string_or_empty("name", r.event_source_text());
        });
        api.record_str("version", fields, "apiVersion");
        if let Some(uid) = request_id {
            api.object("request", |request| {
                request.str("uid", uid);
                if present("requestParameters") {
                    request.part("data", Part::Field("requestParameters"));
                }
            });
        }
        let error = ["errorCode", "errorMessage"]
            .iter()
            .any(|k| str_of(fields, k).is_some());
        if error || present("responseElements") {
            api.object("response", |response| {
                response.record_str("error", fields, "errorCode");
                response.record_str("message", fields, "errorMessage");
                if present("responseElements") {
                    response.part("data", Part::Field("responseElements"));
                }
            });
        }
    });
    write_endpoint(doc, r.str("sourceIPAddress"));
    if str_of(fields, "userAgent").is_some() {
        doc.object("http_request", |http| {
            http.record_str("user_agent", fields, "userAgent");
        });
    }

    // Authentication has no `resources`: an assumed role's ARN stays in `unmapped`.
    let homeless_resources = match class {
        OcsfClass::Authentication(_) => true,
        _ => !write_cloudtrail_resources(doc, r),
    };
    match class {
        OcsfClass::AccountChange(_) => {
            match target_user(r) {
                Some(user) => doc.value("user", &Value::Object(user.into_map())),
                None => doc.object("user", |user| write_actor_user(user, &who)),
            }
            if let Some(p) = r.request_parameters() {
                let mut policy = Object::new();
                let created = r
                    .response_elements()
                    .and_then(|e| obj_of(e, "policy"))
                    .and_then(|p| str_of(p, "arn"));
                policy.put_opt("uid", str_of(p, "policyArn").or(created));
                policy.put_opt("name", str_of(p, "policyName"));
                let policy = policy.into_map();
                if !policy.is_empty() {
                    doc.value("policies", &json!([policy]));
                }
            }
        }
        OcsfClass::Authentication(_) => {
            doc.object("user", |user| write_actor_user(user, &who));
            doc.object("service", |service| {
                service.record_string_or_empty("name", r.event_source_text());
            });
            if let Some(mfa) = fields
                .get("additionalEventData")
                .and_then(|a| a.get("MFAUsed"))
                .and_then(tree::Value::as_str)
            {
                doc.bool("is_mfa", mfa == "Yes");
            }
        }
        _ => {}
    }

    // Mapped keys that found no OCSF home in this record stay in `unmapped`.
    let request_parameters = request_id.is_none();
    if fields
        .iter()
        .any(|(k, v)| unmapped_cloudtrail(k, v, request_parameters, homeless_resources))
    {
        doc.part(
            "unmapped",
            Part::OcsfCloudTrailUnmapped {
                request_parameters,
                resources: homeless_resources,
            },
        );
    }
}

/// `src_endpoint`: `ip` for a real address, `domain` for a service name such as
/// `lambda.amazonaws.com`. OCSF requires a source endpoint to name something, so an absent
/// address is "Unknown".
fn write_endpoint(doc: &mut Fields, addr: Option<&str>) {
    doc.object("src_endpoint", |endpoint| match addr {
        Some(a) if a.parse::<IpAddr>().is_ok() => endpoint.str("ip", a),
        Some(a) => endpoint.str("domain", a),
        None => endpoint.constant("name", "Unknown"),
    });
}

/// `actor`: the principal, the service that called for it (`invoked_by` is deprecated),
/// its session and identity provider.
fn write_cloudtrail_actor(actor: &mut Fields, who: &UserIdentity) {
    actor.object("user", |user| write_actor_user(user, who));
    actor.str_opt("app_name", who.invoked_by);
    let attrs = who.session_attributes;
    let created = attrs
        .and_then(|a| str_of(a, "creationDate"))
        .and_then(parse_time);
    let mfa = attrs
        .and_then(|a| a.get("mfaAuthenticated"))
        .and_then(tree::Value::as_str);
    let issuer = who.session_issuer.and_then(|i| str_of(i, "arn"));
    if created.is_some() || mfa.is_some() || issuer.is_some() || who.access_key_id.is_some() {
        actor.object("session", |session| {
            if let Some(created) = created {
                session.int("created_time", epoch_ms(created));
                session.time("created_time_dt", created);
            }
            if let Some(mfa) = mfa {
                session.bool("is_mfa", mfa == "true");
            }
            session.str_opt("issuer", issuer);
            session.str_opt("credential_uid", who.access_key_id);
        });
    }
    actor.strs_object("idp", &[("name", who.identity_provider)]);
}

/// `metadata` and `cloud` of a CloudTrail record: the product, the record's ids and times,
/// and the account it was delivered to.
fn write_cloudtrail_source(
    doc: &mut Fields,
    r: &CloudTrailRecord,
    event_code: Option<&str>,
    now: DateTime<Utc>,
) {
    let fields = r.fields();
    doc.object("metadata", |metadata| {
        metadata.constant("version", OCSF_VERSION);
        metadata.constants("profiles", &["cloud", "datetime"], None);
        metadata.object("product", |product| {
            product.constant("name", "CloudTrail");
            product.constant("vendor_name", "AWS");
            product.record_str("version", fields, "eventVersion");
        });
        metadata.str_opt("uid", r.id());
        metadata.str_opt("event_code", event_code);
        metadata.record_str("original_time", fields, "eventTime");
        metadata.int("processed_time", epoch_ms(now));
        metadata.time("processed_time_dt", now);
    });
    doc.object("cloud", |cloud| {
        cloud.constant("provider", "AWS");
        cloud.record_str("region", fields, "awsRegion");
        if let Some(id) = r.account_id() {
            cloud.object("account", |account| {
                account.str("uid", id);
                account.int("type_id", 10);
                account.constant("type", "AWS Account");
            });
        }
    });
}

/// A CloudTrail Insight event as an OCSF Detection Finding: CloudTrail's statistical
/// analysis found an API's call or error rate far from its baseline. `Start` opens the
/// finding and `End` closes it; both carry the same `sharedEventID`, which becomes the
/// finding's uid so the two pair up.
fn write_cloudtrail_insight(r: &CloudTrailRecord, now: DateTime<Utc>, doc: &mut Fields) {
    let empty = tree::Map::new();
    let details = r.insight_details().unwrap_or(&empty);
    let state = str_of(details, "state");
    let (activity_id, activity_name) = match state {
        Some("Start") => (1, "Create"),
        Some("End") => (3, "Close"),
        Some(other) => (99, other),
        None => (0, "Unknown"),
    };
    doc.int("activity_id", activity_id);
    doc.str("activity_name", activity_name);
    doc.int("category_uid", 2);
    doc.constant("category_name", "Findings");
    doc.int("class_uid", 2004);
    doc.constant("class_name", "Detection Finding");
    doc.int("type_uid", 200400 + activity_id);
    doc.str(
        "type_name",
        &format!(
            "Detection Finding: {}",
            if activity_id == 99 {
                "Other"
            } else {
                activity_name
            }
        ),
    );
    // CloudTrail grades no Insight; the SIEM's analyst does.
    doc.int("severity_id", 0);
    doc.constant("severity", "Unknown");
    match state {
        Some("Start") => {
            doc.int("status_id", 1);
            doc.constant("status", "New");
        }
        Some(other) => {
            doc.int("status_id", 99);
            doc.str("status", other);
        }
        None => {}
    }
    doc.int("time", epoch_ms(r.time()));
    doc.time("time_dt", r.time());
    doc.int("timezone_offset", 0);
    write_cloudtrail_source(doc, r, r.str("eventType"), now);

    let insight_type = str_of(details, "insightType");
    let operation = str_of(details, "eventName");
    let service = str_of(details, "eventSource");
    if operation.is_some() || service.is_some() {
        doc.object("api", |api| {
            api.str_opt("operation", operation);
            api.strs_object("service", &[("name", service)]);
        });
    }
    doc.object("finding_info", |finding| {
        finding.str_opt("uid", r.str("sharedEventID").or_else(|| r.id()));
        finding.str(
            "title",
            &format!(
                "CloudTrail Insight: {} on {} {}",
                insight_type.unwrap_or("?"),
                service.unwrap_or("?"),
                operation.unwrap_or("?"),
            ),
        );
        if let Some(t) = insight_type {
            finding.strs("types", &[t]);
        }
        finding.object("analytic", |analytic| {
            analytic.constant("name", "CloudTrail Insights");
            analytic.constant("type", "Statistical");
            analytic.int("type_id", 3);
            analytic.str_opt("uid", insight_type);
        });
    });
    if let Some(analysis) = anomaly_analysis(details, operation) {
        doc.value("anomaly_analyses", &json!([analysis]));
    }
    doc.str("message", &super::ecs::insight_message(details));
    doc.part(
        "unmapped",
        Part::OcsfCloudTrailUnmapped {
            request_parameters: false,
            resources: false,
        },
    );
}

/// The Insight's averages as OCSF's baseline and anomaly observations.
fn anomaly_analysis(details: &tree::Map<'_>, operation: Option<&str>) -> Option<Value> {
    let statistics = obj_of(details, "insightContext").and_then(|c| obj_of(c, "statistics"))?;
    let observed = |k: &str| {
        let average = obj_of(statistics, k)?.get("average")?;
        average.is_number().then(|| {
            json!([{
                "observation_parameter": "average",
                "observation_type": str_of(details, "insightType").unwrap_or("Insight"),
                "observations": [{ "value": average.to_string() }],
            }])
        })
    };
    let anomalies = observed("insight")?;
    let mut analysis = Object::new();
    analysis.put(
        "analysis_targets",
        json!([{ "name": operation.unwrap_or("Unknown"), "type": "API" }]),
    );
    analysis.put("anomalies", anomalies);
    analysis.put_opt("baselines", observed("baseline"));
    Some(Value::Object(analysis.into_map()))
}

/// The principal as an OCSF user, `Unknown` when the identity names no one (OCSF requires
/// a name, uid or account), with its fields in the order of a map's keys, as an [`Object`]
/// would write them.
fn write_actor_user(u: &mut Fields, who: &UserIdentity) {
    // Without an ARN (AWS services, some federated callers) the principal id is the uid.
    let (uid, uid_alt) = match who.arn {
        Some(arn) => (Some(arn), who.principal_id),
        None => (who.principal_id, None),
    };
    let name = match who.kind {
        Some("AssumedRole") | Some("FederatedUser") => who
            .session_issuer
            .and_then(|i| str_of(i, "userName"))
            .or(who.user_name),
        Some("AWSService") => who.invoked_by,
        _ => who.user_name,
    };
    // The same rule as `identified`, for a user that is not an `Object`.
    let (name, kind, type_id) = if uid.is_some() || name.is_some() || who.account_id.is_some() {
        (name, who.kind, who.present.then(|| user_type_id(who.kind)))
    } else {
        (Some("Unknown"), Some("Unknown"), Some(0))
    };
    u.strs_object("account", &[("uid", who.account_id)]);
    u.str_opt("name", name);
    if let Some(key) = who.access_key_id {
        // An access key as OCSF 1.8 records credentials (`credential_uid` is deprecated).
        u.list_of_object("programmatic_credentials", |credential| {
            credential.constant("type", "AWS Access Key");
            credential.str("uid", key);
        });
    }
    u.str_opt("type", kind);
    if let Some(type_id) = type_id {
        u.int("type_id", type_id.into());
    }
    u.str_opt("uid", uid);
    u.str_opt("uid_alt", uid_alt);
}

/// The IAM principal an Account Change acts on, from the request.
fn target_user(r: &CloudTrailRecord) -> Option<Object> {
    let params = r.request_parameters()?;
    let name = ["userName", "roleName", "groupName"]
        .iter()
        .find_map(|k| str_of(params, k))?;
    let mut u = Object::new();
    u.put("name", name);
    let created = r
        .response_elements()
        .and_then(|e| obj_of(e, "user").or_else(|| obj_of(e, "role")));
    u.put_opt("uid", created.and_then(|c| str_of(c, "arn")));
    u.put_opt(
        "uid_alt",
        created.and_then(|c| str_of(c, "userId").or_else(|| str_of(c, "roleId"))),
    );
    u.put_opt("account.uid", r.account_id());
    Some(u)
}

/// `resources`: those with an ARN (OCSF needs a uid or name), each with its keys in the
/// order of a map's, as an [`Object`] would write them; whether every resource had one.
fn write_cloudtrail_resources(doc: &mut Fields, r: &CloudTrailRecord) -> bool {
    let Some(list) = r.fields().get("resources").and_then(tree::Value::as_array) else {
        return true;
    };
    // Counted as they are written: one pass, and no list of them made per record.
    let mut named_count = 0;
    let mut named = list
        .iter()
        .filter_map(tree::Value::as_object)
        .filter_map(|res| Some((res, str_of(res, "ARN").or_else(|| str_of(res, "arn"))?)))
        .inspect(|_| named_count += 1)
        .peekable();
    if named.peek().is_some() {
        doc.list_of_objects("resources", named, |resource, (res, uid)| {
            if let Some(account) = str_of(res, "accountId") {
                resource.object("owner", |owner| {
                    owner.object("account", |a| a.str("uid", account));
                });
            }
            resource.str_opt("type", str_of(res, "type"));
            resource.str("uid", uid);
        });
    }
    named_count == list.len()
}

/// Build the OCSF record for an Entra record.
pub fn entra(r: &AzureRecord, tax: &Taxonomy, now: DateTime<Utc>) -> Document {
    let class = tax.ocsf;
    let mut doc = base(class, r.time(), r.failed(), r.activity());
    doc.put_static("metadata.product.name", "Entra ID");
    doc.put_static("metadata.product.vendor_name", "Microsoft");
    doc.put_opt("metadata.uid", r.id());
    doc.put("metadata.event_code", r.activity());
    doc.put_opt("metadata.log_name", r.str("category"));
    doc.put_opt("metadata.correlation_uid", r.str("correlationId"));
    doc.put_opt("metadata.tenant_uid", r.str("tenantId"));
    doc.put_opt("metadata.original_time", r.str("time"));
    doc.put("metadata.processed_time", epoch_ms(now));
    doc.put_time("metadata.processed_time_dt", now);
    doc.put_static("cloud.provider", "Azure");
    doc.put_opt("cloud.account.uid", r.str("tenantId"));
    doc.put("api.operation", r.activity());
    doc.put_opt("api.service.name", r.prop_str("loggedByService"));

    let props = r.properties();
    let prop = |k: &str| props.and_then(|p| str_of(p, k));
    if r.kind().is_sign_in() {
        let status = props.and_then(|p| obj_of(p, "status"));
        if let Some(code) = status.and_then(|s| s.get("errorCode")) {
            doc.put(
                "status_code",
                code.to_string().trim_matches('"').to_string(),
            );
        }
        doc.put_opt(
            "status_detail",
            status.and_then(|s| str_of(s, "failureReason")),
        );
        let mut user = Object::new();
        match prop("userId") {
            Some(id) => {
                user.put("uid", id);
                user.put("type_id", 1);
                user.put("type", "User");
            }
            None => {
                user.put_opt("uid", prop("servicePrincipalId"));
                user.put("type_id", 4);
                user.put("type", "Service");
            }
        }
        if let Some(upn) = prop("userPrincipalName").or_else(|| prop("servicePrincipalName")) {
            user.put("name", upn);
            if split_email(upn).is_some() && is_email(upn) {
                user.put("email_addr", upn);
            }
        }
        user.put_opt("full_name", prop("userDisplayName"));
        let user = Value::Object(identified(user).into_map());
        doc.put("user", user.clone());
        doc.put("actor.user", user);
        doc.put_opt("actor.app_name", prop("appDisplayName"));
        doc.put_opt("actor.app_uid", prop("appId"));
        // OCSF requires an Authentication to name the service or the destination.
        doc.put(
            "service.name",
            prop("resourceDisplayName")
                .or_else(|| prop("appDisplayName"))
                .unwrap_or("Microsoft Entra ID"),
        );
        doc.put_opt("service.uid", prop("resourceId"));
        let mut src = endpoint(prop("ipAddress").or(r.str("callerIpAddress")));
        if let Some(loc) = props.and_then(|p| obj_of(p, "location")) {
            let mut l = Object::new();
            l.put_opt("city", str_of(loc, "city"));
            l.put_opt("region", str_of(loc, "state"));
            l.put_opt("country", str_of(loc, "countryOrRegion"));
            if let Some(geo) = obj_of(loc, "geoCoordinates") {
                l.put_opt("lat", geo.get("latitude").and_then(tree::Value::as_f64));
                l.put_opt("long", geo.get("longitude").and_then(tree::Value::as_f64));
            }
            let l = l.into_map();
            if !l.is_empty() {
                src["location"] = Value::Object(l);
            }
        }
        doc.put("src_endpoint", src);
        doc.put_opt("http_request.user_agent", prop("userAgent"));
    } else {
        doc.put_opt("status_detail", prop("resultReason"));
        let actor = audit_actor(r);
        if let Some(user) = actor.get("user") {
            doc.put("actor.user", user.clone());
        }
        doc.put_opt("actor.app_name", actor.get("app_name").cloned());
        doc.put_opt("actor.app_uid", actor.get("app_uid").cloned());
        let caller = r.str("callerIpAddress").or_else(|| {
            props
                .and_then(|p| obj_of(p, "initiatedBy"))
                .and_then(|i| obj_of(i, "user"))
                .and_then(|u| str_of(u, "ipAddress"))
        });
        doc.put("src_endpoint", endpoint(caller));
        let agent = prop("userAgent").or_else(|| r.additional_detail("User-Agent"));
        doc.put_opt("http_request.user_agent", agent);
        let target_user = r.first_target("User").map(entra_target_user);
        match class {
            OcsfClass::AccountChange(_) => {
                doc.put("user", subject(target_user, &actor));
            }
            OcsfClass::UserAccess(_) => {
                doc.put("user", subject(target_user, &actor));
                doc.put("privileges", privileges(r));
            }
            OcsfClass::GroupManagement(_) => {
                doc.put("group", entra_group(r));
                if let Some(user) = target_user {
                    doc.put("user", user);
                }
            }
            _ => doc.put("entity", entity(r)),
        }
    }

    if !unmapped_entra_fields(r).is_empty() {
        doc.splice("unmapped", Part::OcsfEntraUnmapped);
    }
    doc
}

/// Build the OCSF record for an Activity Log record: API Activity, or User Access
/// Management for a role assignment whose principal the record names.
pub fn azure_activity(r: &AzureRecord, tax: &Taxonomy, now: DateTime<Utc>) -> Document {
    let class = tax.ocsf;
    let operation = r.str("operationName").unwrap_or("");
    let mut doc = base(class, r.time(), r.failed(), operation);
    // `Start`, `Accept` and the like are steps, not outcomes: OCSF's Other, with the
    // step's name.
    if let Some(result) = r.str("resultType") {
        let settled = ["success", "succeeded"]
            .iter()
            .any(|s| result.eq_ignore_ascii_case(s))
            || r.failed();
        if !settled {
            doc.put("status_id", 99);
            doc.put("status", result);
        }
    }
    doc.put_opt("status_detail", r.prop_str("statusMessage"));
    doc.put_opt("status_code", r.prop_str("statusCode"));
    doc.put_static("metadata.product.name", "Azure Activity Log");
    doc.put_static("metadata.product.vendor_name", "Microsoft");
    doc.put_opt("metadata.uid", r.id());
    doc.put("metadata.event_code", operation);
    doc.put_opt("metadata.log_name", r.str("category"));
    doc.put_opt("metadata.correlation_uid", r.str("correlationId"));
    doc.put_opt("metadata.tenant_uid", r.str("tenantId"));
    doc.put_opt("metadata.original_time", r.str("time"));
    doc.put("metadata.processed_time", epoch_ms(now));
    doc.put_time("metadata.processed_time_dt", now);
    doc.put_static("cloud.provider", "Azure");
    doc.put_opt("cloud.account.uid", r.subscription_id());
    doc.put_opt(
        "cloud.region",
        r.str("location")
            .filter(|l| !l.eq_ignore_ascii_case("global")),
    );
    doc.put("api.operation", operation);
    doc.put_opt(
        "api.service.name",
        operation.split('/').next().filter(|s| !s.is_empty()),
    );
    doc.put_opt("api.request.uid", r.prop_str("serviceRequestId"));
    doc.put("actor.user", Value::Object(activity_caller(r)));
    doc.put_opt("actor.app_uid", r.claims().and_then(|c| str_of(c, "appid")));
    doc.put("src_endpoint", endpoint(r.str("callerIpAddress")));
    if let Some(id) = r.str("resourceId") {
        let mut resource = Object::new();
        resource.put("uid", id);
        let parts: Vec<&str> = id.split('/').filter(|p| !p.is_empty()).collect();
        if let Some(at) = parts
            .iter()
            .rposition(|p| p.eq_ignore_ascii_case("providers"))
        {
            if let (Some(namespace), Some(kind)) = (parts.get(at + 1), parts.get(at + 2)) {
                resource.put("type", format!("{namespace}/{kind}"));
            }
        }
        resource.put_opt("name", parts.last().copied());
        doc.put("resources", json!([Value::Object(resource.into_map())]));
    }
    if let (OcsfClass::UserAccess(_), Some(assignment)) = (class, r.role_assignment()) {
        let mut user = Object::new();
        user.put("uid", assignment.principal_id);
        match assignment.principal_type.as_deref() {
            Some("User") => {
                user.put("type_id", 1);
                user.put("type", "User");
            }
            Some(other) => {
                user.put("type_id", 99);
                user.put("type", other);
            }
            None => {}
        }
        doc.put("user", Value::Object(user.into_map()));
        doc.put(
            "privileges",
            json!([assignment
                .role_definition_id
                .unwrap_or_else(|| operation.to_string())]),
        );
    } else if let OcsfClass::UserAccess(_) = class {
        // Elevating one's own access: the caller is also the one who gains the role.
        doc.put("user", Value::Object(activity_caller(r)));
        doc.put("privileges", json!(["User Access Administrator"]));
    }
    if has_unmapped_activity_fields(r) {
        doc.splice("unmapped", Part::OcsfActivityUnmapped);
    }
    doc
}

/// The caller of an Activity Log operation, from its token's claims: a user by name, or
/// an application by its id.
fn activity_caller(r: &AzureRecord) -> Map<String, Value> {
    let claim = |name: &str| r.claims().and_then(|c| str_of(c, name));
    let mut u = Object::new();
    u.put_opt("uid", r.caller_object_id());
    if let Some(name) = r.caller_name() {
        u.put("name", name);
        if is_email(name) {
            u.put("email_addr", name);
        }
        u.put("type_id", 1);
        u.put("type", "User");
    } else if let Some(app) = claim("appid") {
        if r.caller_object_id().is_none() {
            u.put("uid", app);
        }
        u.put("type_id", 4);
        u.put("type", "Service");
    }
    u.put_opt("full_name", claim("name"));
    identified(u).into_map()
}

/// The user an account or access change is about: the target user, else the initiator.
fn subject(target: Option<Value>, actor: &Map<String, Value>) -> Value {
    let user = target
        .or_else(|| actor.get("user").cloned())
        .and_then(|u| u.as_object().cloned())
        .unwrap_or_default();
    Value::Object(identified(Object::from(user)).into_map())
}

fn is_email(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.@".contains(&b))
        && s.matches('@').count() == 1
}

fn entra_target_user(t: &tree::Map<'_>) -> Value {
    let mut u = Object::new();
    u.put_opt("uid", str_of(t, "id"));
    u.put_opt(
        "name",
        str_of(t, "userPrincipalName").or_else(|| str_of(t, "displayName")),
    );
    if let Some(upn) = str_of(t, "userPrincipalName").filter(|u| is_email(u)) {
        u.put("email_addr", upn);
    }
    u.put("type_id", 1);
    u.put("type", "User");
    Value::Object(u.into_map())
}

/// The initiator of an audit: a user, or an application (service principal).
fn audit_actor(r: &AzureRecord) -> Map<String, Value> {
    let mut a = Object::new();
    let initiated = r.properties().and_then(|p| obj_of(p, "initiatedBy"));
    if let Some(user) = initiated.and_then(|i| obj_of(i, "user")) {
        let mut u = Object::new();
        u.put_opt("uid", str_of(user, "id"));
        u.put_opt(
            "name",
            str_of(user, "userPrincipalName").or_else(|| str_of(user, "displayName")),
        );
        if let Some(upn) = str_of(user, "userPrincipalName").filter(|u| is_email(u)) {
            u.put("email_addr", upn);
        }
        u.put("type_id", 1);
        u.put("type", "User");
        a.put("user", Value::Object(u.into_map()));
    }
    if let Some(app) = initiated.and_then(|i| obj_of(i, "app")) {
        a.put_opt("app_name", str_of(app, "displayName"));
        a.put_opt(
            "app_uid",
            str_of(app, "appId").or_else(|| str_of(app, "servicePrincipalId")),
        );
        // An application acts through its service principal: that is the acting
        // identity, and its id must not be lost behind the app id.
        let by_user = initiated.and_then(|i| obj_of(i, "user")).is_some();
        if let (false, Some(sp)) = (by_user, str_of(app, "servicePrincipalId")) {
            let mut u = Object::new();
            u.put("uid", sp);
            u.put_opt(
                "name",
                str_of(app, "servicePrincipalName").or_else(|| str_of(app, "displayName")),
            );
            u.put("type_id", 4);
            u.put("type", "Service");
            a.put("user", Value::Object(u.into_map()));
        }
    }
    a.into_map()
}

/// The group of a membership or group change: the `Group` target, else the group named
/// in the modified properties (`Group.ObjectID`, `Group.DisplayName`), which is where
/// Entra puts it when the target is the member.
fn entra_group(r: &AzureRecord) -> Value {
    let target = r.first_target("Group");
    let modified = |name: &str| {
        r.properties()
            .and_then(|p| p.get("targetResources"))
            .and_then(tree::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("modifiedProperties").and_then(tree::Value::as_array))
            .flatten()
            .filter_map(tree::Value::as_object)
            .find(|m| str_of(m, "displayName") == Some(name))
            .and_then(|m| str_of(m, "newValue").or_else(|| str_of(m, "oldValue")))
            .map(|v| v.trim_matches('"').to_string())
    };
    let uid = target
        .and_then(|t| str_of(t, "id"))
        .map(str::to_string)
        .or_else(|| modified("Group.ObjectID"));
    let name = target
        .and_then(|t| str_of(t, "displayName"))
        .map(str::to_string)
        .or_else(|| modified("Group.DisplayName"));
    let mut g = Map::new();
    if uid.is_none() && name.is_none() {
        g.insert("name".into(), json!(r.activity()));
    }
    if let Some(uid) = uid {
        g.insert("uid".into(), json!(uid));
    }
    if let Some(name) = name {
        g.insert("name".into(), json!(name));
    }
    Value::Object(g)
}

/// The first target resource as a managed entity.
fn entity(r: &AzureRecord) -> Value {
    let target = r
        .properties()
        .and_then(|p| p.get("targetResources"))
        .and_then(tree::Value::as_array)
        .and_then(|t| t.first())
        .and_then(tree::Value::as_object);
    let mut e = Object::new();
    match target {
        Some(t) => {
            e.put_opt("uid", str_of(t, "id"));
            e.put_opt(
                "name",
                str_of(t, "displayName").or_else(|| str_of(t, "userPrincipalName")),
            );
            e.put_opt("type", str_of(t, "type"));
        }
        None => e.put("name", r.activity()),
    }
    Value::Object(e.into_map())
}

/// What was granted: role names, app roles or permission scopes named in the targets.
fn privileges(r: &AzureRecord) -> Value {
    let mut out: Vec<String> = Vec::new();
    let targets = r
        .properties()
        .and_then(|p| p.get("targetResources"))
        .and_then(tree::Value::as_array);
    for t in targets
        .into_iter()
        .flatten()
        .filter_map(tree::Value::as_object)
    {
        if str_of(t, "type") == Some("Role") {
            if let Some(name) = str_of(t, "displayName") {
                out.push(name.to_string());
            }
        }
        let modified = t.get("modifiedProperties").and_then(tree::Value::as_array);
        for m in modified
            .into_iter()
            .flatten()
            .filter_map(tree::Value::as_object)
        {
            let name = str_of(m, "displayName").unwrap_or("");
            if matches!(
                name,
                "Role.DisplayName"
                    | "AppRole.Value"
                    | "DelegatedPermissionGrant.Scope"
                    | "ConsentAction.Permissions"
            ) {
                if let Some(v) = str_of(m, "newValue") {
                    out.push(v.trim_matches('"').to_string());
                }
            }
        }
    }
    if out.is_empty() {
        out.push(r.activity().to_string());
    }
    json!(out)
}

/// Build the OCSF record for a Cloud Audit Logs entry: API Activity, or Account Change
/// and User Access Management for service accounts and IAM policies.
pub fn gcp_audit(r: &GcpRecord, class: OcsfClass, now: DateTime<Utc>) -> Document {
    let method = r.method();
    let mut doc = base(class, r.time(), r.failed(), method);
    if r.outcome().is_none() {
        doc.put("status_id", 0);
        doc.put("status", "Unknown");
    }
    doc.put_opt("status_code", r.status_code().map(|c| c.to_string()));
    doc.put_opt("status_detail", r.status_message());
    doc.put_static("metadata.product.name", "Cloud Audit Logs");
    doc.put_static("metadata.product.vendor_name", "Google");
    doc.put_opt("metadata.uid", r.id());
    doc.put("metadata.event_code", method);
    doc.put_opt("metadata.log_name", str_of(r.fields(), "logName"));
    doc.put_opt("metadata.original_time", str_of(r.fields(), "timestamp"));
    doc.put("metadata.processed_time", epoch_ms(now));
    doc.put_time("metadata.processed_time_dt", now);
    doc.put_static("cloud.provider", "GCP");
    // `cloud.project_uid` is deprecated in 1.8: the project is the account.
    if let Some(project) = r.project_id() {
        doc.put("cloud.account.uid", project);
        doc.put("cloud.account.type_id", 11);
        doc.put_static("cloud.account.type", "GCP Project");
    }
    doc.put("api.operation", method);
    doc.put_opt(
        "api.service.name",
        Some(r.service()).filter(|s| !s.is_empty()),
    );
    if let Some(request) = r.proto().get("request").filter(|v| v.is_object()) {
        // OCSF requires a request to carry an id, and Cloud Audit Logs has none: the
        // long-running operation's id, else the entry's own.
        let uid = r
            .fields()
            .get("operation")
            .and_then(|o| o.get("id"))
            .and_then(tree::Value::as_str)
            .or(r.id())
            .unwrap_or("");
        doc.put("api.request.uid", uid);
        doc.put("api.request.data", request.to_json());
    }
    if let Some(response) = r.proto().get("response").filter(|v| v.is_object()) {
        doc.put("api.response.data", response.to_json());
    }
    let mut user = Object::new();
    if let Some(email) = r.principal_email() {
        user.put("name", email);
        if is_email(email) {
            user.put("email_addr", email);
        }
        let service_account = email.ends_with(".gserviceaccount.com");
        user.put("type_id", if service_account { 99 } else { 1 });
        user.put(
            "type",
            if service_account {
                "Service Account"
            } else {
                "User"
            },
        );
    }
    user.put_opt("uid", r.principal_subject());
    doc.put_object("actor.user", identified(user).into());
    doc.put("src_endpoint", endpoint(r.caller_ip()));
    doc.put_opt("http_request.user_agent", r.user_agent());
    // Account Change has no `resources`: the account is its `user`.
    if let (Some(name), false) = (
        r.resource_name(),
        matches!(class, OcsfClass::AccountChange(_)),
    ) {
        let mut resource = Object::new();
        resource.put("uid", name);
        resource.put_opt("type", r.resource_type());
        resource.put_opt("name", name.rsplit('/').next());
        doc.put("resources", json!([Value::Object(resource.into_map())]));
    }
    match class {
        OcsfClass::AccountChange(_) | OcsfClass::UserAccess(_) => {
            // The account or policy the call changed, named by its resource.
            let mut target = Object::new();
            target.put_opt("uid", r.resource_name());
            target.put_opt("name", r.resource_name().and_then(|n| n.rsplit('/').next()));
            doc.put_object("user", identified(target).into());
            if let OcsfClass::UserAccess(_) = class {
                doc.put("privileges", json!([method]));
            }
        }
        _ => {}
    }
    let mut unmapped = Map::new();
    for key in ["authorizationInfo", "serviceData", "metadata"] {
        if let Some(v) = r.proto().get(key).filter(|v| !v.is_null()) {
            unmapped.insert(key.to_string(), v.to_json());
        }
    }
    if !unmapped.is_empty() {
        doc.put("unmapped", Value::Object(unmapped));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::SourceRecord;

    /// The OCSF document of a CloudTrail record of `fields`, read back.
    fn ocsf_of(fields: Value) -> Value {
        let fields = fields.as_object().cloned().unwrap();
        let record = CloudTrailRecord::new(fields.into(), Utc::now()).unwrap();
        let tax = crate::transforms::normalize::taxonomy::cloudtrail(&record);
        let doc = cloudtrail(&tax, Utc::now()).to_bytes(&SourceRecord::CloudTrail(record));
        serde_json::from_slice(&doc).unwrap()
    }

    /// Resources with an ARN become OCSF `resources`; when any has none, the record's whole
    /// list also stays in `unmapped`, so nothing is lost.
    #[test]
    fn resources_without_an_arn_keep_the_list_in_unmapped() {
        let with = json!({"ARN": "arn:aws:iam::111122223333:user/bob",
            "accountId": "111122223333", "type": "AWS::IAM::User"});
        let without = json!({"type": "AWS::S3::Bucket"});
        let record = |resources: Value| {
            ocsf_of(
                json!({"eventName": "CreateUser", "eventSource": "iam.amazonaws.com",
                "resources": resources}),
            )
        };
        let written = json!([{"owner": {"account": {"uid": "111122223333"}},
            "type": "AWS::IAM::User", "uid": "arn:aws:iam::111122223333:user/bob"}]);

        let all = record(json!([with]));
        assert_eq!(all["resources"], written);
        assert_eq!(all["unmapped"].get("resources"), None);

        let some = record(json!([with, without]));
        assert_eq!(some["resources"], written);
        assert_eq!(some["unmapped"]["resources"], json!([with, without]));

        let none = record(json!([without]));
        assert_eq!(none.get("resources"), None);
        assert_eq!(none["unmapped"]["resources"], json!([without]));

        let empty = record(json!([]));
        assert_eq!(empty.get("resources"), None);
        assert_eq!(empty["unmapped"].get("resources"), None);
    }

    /// The `user` object as written, byte for byte: key order is part of the output.
    fn user_text(identity: Value) -> String {
        let fields = json!({"eventName": "X", "eventSource": "s", "userIdentity": identity});
        let fields = fields.as_object().cloned().unwrap();
        let record = CloudTrailRecord::new(fields.into(), Utc::now()).unwrap();
        let tax = crate::transforms::normalize::taxonomy::cloudtrail(&record);
        let doc = cloudtrail(&tax, Utc::now())
            .to_bytes(&SourceRecord::CloudTrail(record))
            .to_vec();
        let doc = tree::Value::parse(std::str::from_utf8(&doc).unwrap()).unwrap();
        let mut user = b"{\"user\":".to_vec();
        crate::transforms::normalize::json::record_value(&mut user, &doc["actor"]["user"]);
        user.push(b'}');
        String::from_utf8(user).unwrap()
    }

    #[test]
    fn an_iam_user_is_written_with_its_keys_in_order() {
        let text = user_text(json!({"type": "IAMUser", "principalId": "AIDA1",
            "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333",
            "accessKeyId": "AKIA1", "userName": "alice"}));
        assert_eq!(
            text,
            concat!(
                r#"{"user":{"account":{"uid":"111122223333"},"name":"alice","#,
                r#""programmatic_credentials":[{"type":"AWS Access Key","uid":"AKIA1"}],"#,
                r#""type":"IAMUser","type_id":99,"uid":"arn:aws:iam::111122223333:user/alice","#,
                r#""uid_alt":"AIDA1"}}"#
            )
        );
    }

    #[test]
    fn a_principal_without_an_arn_is_its_principal_id() {
        let text = user_text(json!({"type": "AWSService", "principalId": "AROA1:svc",
            "invokedBy": "ec2.amazonaws.com"}));
        assert_eq!(
            text,
            r#"{"user":{"name":"ec2.amazonaws.com","type":"AWSService","type_id":99,"uid":"AROA1:svc"}}"#
        );
    }

    #[test]
    fn an_identity_that_names_no_one_is_unknown() {
        let text = user_text(json!({"type": "Unknown", "accessKeyId": "AKIA2"}));
        assert_eq!(
            text,
            concat!(
                r#"{"user":{"name":"Unknown","#,
                r#""programmatic_credentials":[{"type":"AWS Access Key","uid":"AKIA2"}],"#,
                r#""type":"Unknown","type_id":0}}"#
            )
        );
    }
}
