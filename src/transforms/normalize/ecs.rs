//! ECS 9.x documents. Field semantics follow Elastic's AWS and Azure integrations, plus
//! `event.category`/`event.type` and the initiating `user.*` for Entra audit records.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::document::{Base, Document, Fields, Head, Leaf};
use super::sections::Part;
use super::taxonomy::{EcsCategories, Taxonomy};
use crate::transforms::decode::fields::{obj_of, split_email, str_of};
use crate::transforms::decode::time::TimeSource;
use crate::transforms::decode::{tree, AzureRecord, CloudTrailRecord, GcpRecord};

pub const ECS_VERSION: &str = "9.4.0";

/// What the fields every ECS document starts with are made of.
struct Header {
    time: DateTime<Utc>,
    time_source: TimeSource,
    now: DateTime<Utc>,
    categories: EcsCategories,
    dataset: &'static str,
    module: &'static str,
}

impl Header {
    /// `event.kind`, `.created`, `.category` and `.type`, which the provider's own `event`
    /// fields follow.
    fn event_start(&self) -> [(&'static str, Leaf<'static>); 4] {
        let (category, types, info) = self.categories;
        [
            ("kind", Leaf::Constant("event")),
            ("created", Leaf::Time(self.now)),
            ("category", Leaf::Constants(category, None)),
            ("type", Leaf::Constants(types, info.then_some("info"))),
        ]
    }

    /// What `event` ends in, after the provider's own fields.
    fn event_end(&self) -> [(&'static str, Leaf<'static>); 2] {
        [
            ("dataset", Leaf::Constant(self.dataset)),
            ("module", Leaf::Constant(self.module)),
        ]
    }

    /// The `data_stream.*` Elastic's integration writes (its prebuilt rules filter on
    /// `data_stream.dataset` almost without exception).
    fn data_stream(&self) -> [(&'static str, Leaf<'static>); 3] {
        [
            ("type", Leaf::Constant("logs")),
            ("dataset", Leaf::Constant(self.dataset)),
            ("namespace", Leaf::Constant("default")),
        ]
    }

    fn event(&self) -> Head {
        let mut event = Head::with_capacity(12);
        for (key, leaf) in self.event_start() {
            event.put_leaf(key, leaf);
        }
        event
    }

    /// A document that starts with `@timestamp`, `ecs.version`, `event` (ending in
    /// `dataset` and `module`), `auditbridge.time_source` for a time read at ingest,
    /// `data_stream` and `cloud`.
    fn document(self, mut event: Head, cloud: Head) -> Document {
        for (key, leaf) in self.event_end() {
            event.put_leaf(key, leaf);
        }
        let mut head = Head::with_capacity(6);
        head.put_time("@timestamp", self.time);
        let mut ecs = Head::with_capacity(1);
        ecs.put_static("version", ECS_VERSION);
        head.put_object("ecs", ecs);
        head.put_object("event", event);
        if self.time_source == TimeSource::Ingest {
            let mut auditbridge = Head::with_capacity(1);
            auditbridge.put_static("time_source", "ingest");
            head.put_object("auditbridge", auditbridge);
        }
        let mut data_stream = Head::with_capacity(3);
        for (key, leaf) in self.data_stream() {
            data_stream.put_leaf(key, leaf);
        }
        head.put_object("data_stream", data_stream);
        head.put_object("cloud", cloud);
        Document::from_head(head)
    }

    /// [`Header::document`] written straight from a record: `event` writes the provider's
    /// own `event` fields, `cloud` the `cloud` object.
    fn write<'r>(
        &self,
        doc: &mut Fields<'_, 'r>,
        event: impl FnOnce(&mut Fields<'_, 'r>),
        cloud: impl FnOnce(&mut Fields<'_, 'r>),
    ) {
        doc.time("@timestamp", self.time);
        doc.object("ecs", |ecs| ecs.constant("version", ECS_VERSION));
        doc.object("event", |fields| {
            for (key, leaf) in self.event_start() {
                fields.leaf(key, leaf);
            }
            event(fields);
            for (key, leaf) in self.event_end() {
                fields.leaf(key, leaf);
            }
        });
        if self.time_source == TimeSource::Ingest {
            doc.object("auditbridge", |auditbridge| {
                auditbridge.constant("time_source", "ingest");
            });
        }
        doc.object("data_stream", |data_stream| {
            for (key, leaf) in self.data_stream() {
                data_stream.leaf(key, leaf);
            }
        });
        doc.object("cloud", cloud);
    }
}

/// An object holding `field` when `value` is present, else nothing.
fn nested_field<V: Into<Value>>(field: &'static str, value: Option<V>) -> Head {
    let mut object = Head::with_capacity(1);
    object.put_opt(field, value);
    object
}

/// Collects `related.user` / `related.ip` without duplicates.
#[derive(Default)]
struct Related<'a> {
    users: Vec<&'a str>,
    ips: Vec<Cow<'a, str>>,
}

impl<'a> Related<'a> {
    fn user(&mut self, u: Option<&'a str>) {
        if let Some(u) = u.filter(|u| !u.is_empty()) {
            if !self.users.contains(&u) {
                self.users.push(u);
            }
        }
    }

    fn ip(&mut self, ip: Cow<'a, str>) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    fn write(self, doc: &mut Document) {
        if !self.users.is_empty() {
            doc.put("related.user", self.users);
        }
        if !self.ips.is_empty() {
            doc.put("related.ip", self.ips);
        }
    }

    /// `related` with `entities` after the users and addresses.
    fn write_fields(&self, doc: &mut Fields, entities: &[&str]) {
        if self.users.is_empty() && self.ips.is_empty() && entities.is_empty() {
            return;
        }
        doc.object("related", |related| {
            if !self.users.is_empty() {
                related.strs("user", &self.users);
            }
            if !self.ips.is_empty() {
                let ips: Vec<&str> = self.ips.iter().map(AsRef::as_ref).collect();
                related.strs("ip", &ips);
            }
            if !entities.is_empty() {
                related.strs("entity", entities);
            }
        });
    }
}

/// `addr` as `source.ip` holds it, when it is a real address.
fn real_ip(addr: &str) -> Option<Cow<'_, str>> {
    Some(match addr.parse::<IpAddr>().ok()? {
        // Rust reads no IPv4 address with leading zeros or spaces, so one it read is
        // already written as it would print it.
        IpAddr::V4(_) => Cow::Borrowed(addr),
        v6 => Cow::Owned(v6.to_string()),
    })
}

/// `source.ip` only for real addresses; `source.address` always keeps what was written.
fn put_source<'a>(
    doc: &mut Document,
    related: &mut Related<'a>,
    addr: Option<&'a str>,
) -> Option<String> {
    let addr = addr?;
    doc.put("source.address", addr);
    let ip = real_ip(addr)?;
    related.ip(ip.clone());
    let ip = ip.into_owned();
    doc.put("source.ip", ip.clone());
    Some(ip)
}

/// Where a user's name, e-mail address and domain go: paths written out in full, since a
/// path made per record (`format!("{prefix}.name")`) cost a `String` per segment.
struct UserPaths {
    name: &'static str,
    email: &'static str,
    domain: &'static str,
}

const USER: UserPaths = UserPaths {
    name: "user.name",
    email: "user.email",
    domain: "user.domain",
};

const TARGET_USER: UserPaths = UserPaths {
    name: "user.target.name",
    email: "user.target.email",
    domain: "user.target.domain",
};

/// A name that may be an e-mail address: the name gets the local part, with the e-mail
/// address and the domain when it is one.
fn put_user_name(doc: &mut Document, paths: &UserPaths, name: &str) {
    match split_email(name) {
        Some((local, domain)) => {
            doc.put(paths.name, local);
            doc.put(paths.email, name);
            doc.put(paths.domain, domain);
        }
        None => doc.put(paths.name, name),
    }
}

/// The ECS document of a CloudTrail record, written from the record when it is serialized
/// ([`write_cloudtrail`]).
pub fn cloudtrail(r: &CloudTrailRecord, tax: &Taxonomy, now: DateTime<Utc>) -> Document {
    Document::based(Base::EcsCloudTrail {
        categories: super::taxonomy::cloudtrail_ecs(r, tax),
        now,
    })
}

/// The ECS document of a CloudTrail Insight event ([`write_cloudtrail`]).
pub fn cloudtrail_insight(now: DateTime<Utc>) -> Document {
    Document::based(Base::EcsCloudTrail {
        categories: (&[], &["info"], false),
        now,
    })
}

/// Writes the ECS document of a CloudTrail record straight from it, with no tree of the
/// fields built first: that tree cost more to build and drop than its text to write.
///
/// An Insight event is written as Elastic indexes it: no actor, since the record names no
/// call of its own (the API it is about stays in `aws.cloudtrail.flattened.insight_details`,
/// so rules keyed on an action do not fire on a summary of it), and a `message` a person
/// can read in an alert list.
pub fn write_cloudtrail(
    r: &CloudTrailRecord,
    categories: EcsCategories,
    now: DateTime<Utc>,
    doc: &mut Fields,
) {
    let fields = r.fields();
    let header = Header {
        time: r.time(),
        time_source: r.time_source(),
        now,
        categories,
        dataset: "aws.cloudtrail",
        module: "aws",
    };
    header.write(
        doc,
        |event| {
            event.str_opt("id", r.id());
            event.record_string("action", r.event_name_text());
            event.record_string("provider", r.event_source_text());
            event.constant("outcome", if r.failed() { "failure" } else { "success" });
        },
        |cloud| {
            cloud.constant("provider", "aws");
            cloud.strs_object("account", &[("id", r.account_id())]);
            cloud.record_str("region", fields, "awsRegion");
            // `cloud.service.name` is the service's short name, as Elastic writes it (`sts`).
            let service = r.event_source_text().map(|s| {
                let s = s.as_str();
                s.strip_suffix(".amazonaws.com").unwrap_or(s)
            });
            cloud.strs_object("service", &[("name", service)]);
        },
    );
    if r.is_insight() {
        if let Some(details) = r.insight_details() {
            doc.str("message", &insight_message(details));
        }
    } else {
        write_cloudtrail_call(r, doc);
    }
    doc.object("aws", |aws| aws.part("cloudtrail", Part::EcsCloudTrail));
}

/// Who made a CloudTrail API call, on what, from where: `user.*`, `group.*`, `source.*`,
/// `user_agent.*`, `error.*`, `tls.*` and `related.*`.
fn write_cloudtrail_call(r: &CloudTrailRecord, doc: &mut Fields) {
    let fields = r.fields();
    let mut related = Related::default();
    let who = r.user_identity();
    let user_name = match who.kind {
        Some("AssumedRole") | Some("FederatedUser") => who
            .session_issuer
            .and_then(|i| str_of(i, "userName"))
            .or(who.user_name),
        // A service calling on its own behalf is a service, not a user.
        Some("AWSService") => None,
        Some("Root") => who.user_name.or(Some("root")),
        Some("IdentityCenterUser") => who.on_behalf_of.and_then(|o| str_of(o, "userId")),
        _ => who.user_name,
    };
    if who.kind == Some("AWSService") {
        doc.strs_object("service", &[("name", who.invoked_by)]);
    }
    // A name that is an e-mail address gives the local part as the name, with the address
    // and its domain.
    let (name, mut email, domain) = match user_name.map(|n| (n, split_email(n))) {
        Some((whole, Some((local, domain)))) => (Some(local), Some(whole), Some(domain)),
        Some((whole, None)) => (Some(whole), None, None),
        None => (None, None, None),
    };
    related.user(user_name);
    // The role session name (after the role in an assumed-role ARN) names the person or
    // workload behind the role; Elastic lists it, and its local part when it is an e-mail
    // address, in `related.user`, and takes such an address as `user.email`.
    if who.kind == Some("AssumedRole") {
        let session = who
            .arn
            .and_then(|arn| arn.split_once(":assumed-role/"))
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, session)| session);
        if let Some(session) = session {
            related.user(Some(session));
            if let Some((local, _)) = split_email(session) {
                email = Some(session);
                related.user(Some(local));
            }
        }
    }
    related.user(who.principal_id);

    let params = r.request_parameters();
    let target_name = params.and_then(|p| str_of(p, "userName"));
    related.user(target_name);
    let iam = r.event_source() == "iam.amazonaws.com";
    let response = r.response_elements().filter(|_| iam);
    let target_id = response
        .and_then(|e| obj_of(e, "user"))
        .and_then(|u| str_of(u, "userId"));
    let new_name = params
        .filter(|_| iam)
        .and_then(|p| str_of(p, "newUserName"));
    related.user(new_name);
    let user = [
        who.principal_id,
        name,
        email,
        target_name,
        target_id,
        new_name,
    ];
    if user.iter().any(Option::is_some) {
        doc.object("user", |user| {
            user.str_opt("id", who.principal_id);
            user.str_opt("name", name);
            user.str_opt("email", email);
            user.str_opt("domain", domain);
            user.strs_object("target", &[("name", target_name), ("id", target_id)]);
            user.strs_object("changes", &[("name", new_name)]);
        });
    }
    // IAM groups only: other services' `groupName` (EC2 security groups) is no user group.
    let group_name = params.filter(|_| iam).and_then(|p| str_of(p, "groupName"));
    let group_id = response
        .and_then(|e| obj_of(e, "group"))
        .and_then(|g| str_of(g, "groupId"));
    doc.strs_object("group", &[("name", group_name), ("id", group_id)]);

    if let Some(address) = r.str("sourceIPAddress") {
        let ip = real_ip(address);
        doc.object("source", |source| {
            source.str("address", address);
            if let Some(ip) = &ip {
                source.str("ip", ip);
            }
        });
        if let Some(ip) = ip {
            related.ip(ip);
        }
    }
    if str_of(fields, "userAgent").is_some() {
        doc.object("user_agent", |agent| {
            agent.record_str("original", fields, "userAgent");
        });
    }
    if str_of(fields, "errorCode").is_some() || str_of(fields, "errorMessage").is_some() {
        doc.object("error", |error| {
            error.record_str("code", fields, "errorCode");
            error.record_str("message", fields, "errorMessage");
        });
    }
    if let Some(tls) = obj_of(fields, "tlsDetails") {
        let version = str_of(tls, "tlsVersion").map(|v| v.strip_prefix("TLSv").unwrap_or(v));
        let cipher = str_of(tls, "cipherSuite");
        let host = str_of(tls, "clientProvidedHostHeader");
        if version.is_some() || cipher.is_some() || host.is_some() {
            doc.object("tls", |t| {
                if let Some(version) = version {
                    t.str("version", version);
                    t.constant("version_protocol", "tls");
                }
                t.str_opt("cipher", cipher);
                t.strs_object("client", &[("server_name", host)]);
            });
        }
    }
    related.write_fields(doc, &super::entities::cloudtrail(r));
}

/// "CloudTrail Insight Start: ApiCallRateInsight on ssm.amazonaws.com
/// UpdateInstanceAssociationStatus (baseline average 1.7561507937, insight average 50.1)".
pub fn insight_message(details: &tree::Map<'_>) -> String {
    let field = |k: &str| str_of(details, k).unwrap_or("?");
    let mut message = format!(
        "CloudTrail Insight {}: {} on {} {}",
        field("state"),
        field("insightType"),
        field("eventSource"),
        field("eventName"),
    );
    let statistics = obj_of(details, "insightContext").and_then(|c| obj_of(c, "statistics"));
    let average = |k: &str| {
        statistics
            .and_then(|s| obj_of(s, k))
            .and_then(|a| a.get("average"))
            .filter(|a| a.is_number())
    };
    if let (Some(baseline), Some(insight)) = (average("baseline"), average("insight")) {
        message.push_str(&format!(
            " (baseline average {baseline}, insight average {insight})"
        ));
    }
    message
}

/// The fields every Azure document starts with: the base, `event.id`, the dataset,
/// `event.module`, `event.duration`, `cloud.*` and Elastic's `azure.*`.
fn azure_head(r: &AzureRecord, tax: &Taxonomy, now: DateTime<Utc>) -> Document {
    let header = Header {
        time: r.time(),
        time_source: r.time_source(),
        now,
        categories: (tax.ecs_category, tax.ecs_type, false),
        dataset: r.dataset(),
        module: "azure",
    };
    let mut event = header.event();
    event.put_opt("id", r.id());
    event.put_opt(
        "duration",
        r.fields().get("durationMs").and_then(duration_ns),
    );
    let mut cloud = Head::with_capacity(2);
    cloud.put_static("provider", "azure");
    cloud.put_object("account", nested_field("id", r.account()));
    let mut doc = header.document(event, cloud);
    put_azure(&mut doc, r);
    doc
}

/// Build the ECS document for an Entra record.
pub fn entra(r: &AzureRecord, tax: &Taxonomy, now: DateTime<Utc>) -> Document {
    let mut doc = azure_head(r, tax, now);
    let mut related = Related::default();
    let sign_in = r.kind().is_sign_in();
    doc.put(
        "event.action",
        r.str("operationName").unwrap_or(r.activity()),
    );
    doc.put(
        "event.outcome",
        if r.failed() { "failure" } else { "success" },
    );
    doc.put_opt("event.provider", r.prop_str("loggedByService"));

    let props = r.properties();
    let prop = |k: &str| props.and_then(|p| str_of(p, k));
    if sign_in {
        let user_id = prop("userId").or_else(|| prop("servicePrincipalId"));
        doc.put_opt("user.id", user_id);
        related.user(user_id);
        if let Some(upn) = prop("userPrincipalName").or_else(|| prop("servicePrincipalName")) {
            put_user_name(&mut doc, &USER, upn);
            related.user(Some(upn));
        }
        doc.put_opt("user.full_name", prop("userDisplayName"));
        let ip = put_source(
            &mut doc,
            &mut related,
            prop("ipAddress").or(r.str("callerIpAddress")),
        );
        doc.put_opt("client.ip", ip);
        let status = props.and_then(|p| obj_of(p, "status"));
        if r.failed() {
            doc.put_opt(
                "message",
                status.and_then(|s| {
                    str_of(s, "failureReason").or_else(|| str_of(s, "additionalDetails"))
                }),
            );
        }
        if let Some(loc) = props.and_then(|p| obj_of(p, "location")) {
            doc.put_opt("source.geo.city_name", str_of(loc, "city"));
            doc.put_opt("source.geo.region_name", str_of(loc, "state"));
            doc.put_opt(
                "source.geo.country_iso_code",
                str_of(loc, "countryOrRegion"),
            );
            if let Some(geo) = obj_of(loc, "geoCoordinates") {
                if let (Some(lat), Some(lon)) = (
                    geo.get("latitude").and_then(tree::Value::as_f64),
                    geo.get("longitude").and_then(tree::Value::as_f64),
                ) {
                    doc.put(
                        "source.geo.location",
                        serde_json::json!({"lat": lat, "lon": lon}),
                    );
                }
            }
        }
        doc.put_opt("user_agent.original", prop("userAgent"));
    } else {
        let initiated = props.and_then(|p| obj_of(p, "initiatedBy"));
        if let Some(user) = initiated.and_then(|i| obj_of(i, "user")) {
            doc.put_opt("user.id", str_of(user, "id"));
            related.user(str_of(user, "id"));
            if let Some(upn) = str_of(user, "userPrincipalName") {
                put_user_name(&mut doc, &USER, upn);
                related.user(Some(upn));
            }
            doc.put_opt("user.full_name", str_of(user, "displayName"));
        } else if let Some(app) = initiated.and_then(|i| obj_of(i, "app")) {
            doc.put_opt("user.id", str_of(app, "servicePrincipalId"));
            doc.put_opt("user.name", str_of(app, "displayName"));
            related.user(str_of(app, "servicePrincipalId"));
        }
        if let Some(target) = r.first_target("User") {
            doc.put_opt("user.target.id", str_of(target, "id"));
            related.user(str_of(target, "id"));
            if let Some(upn) = str_of(target, "userPrincipalName") {
                put_user_name(&mut doc, &TARGET_USER, upn);
                related.user(Some(upn));
            }
            doc.put_opt("user.target.full_name", str_of(target, "displayName"));
        }
        let caller = r.str("callerIpAddress").or_else(|| {
            initiated
                .and_then(|i| obj_of(i, "user"))
                .and_then(|u| str_of(u, "ipAddress"))
        });
        let ip = put_source(&mut doc, &mut related, caller);
        doc.put_opt("client.ip", ip);
        doc.put_opt(
            "event.reason",
            prop("resultReason").filter(|r| !r.is_empty()),
        );
        doc.put_opt("user_agent.original", r.user_agent());
    }
    related.write(&mut doc);

    doc.splice(
        if sign_in {
            "azure.signinlogs"
        } else {
            "azure.auditlogs"
        },
        Part::EcsEntra,
    );
    doc
}

/// Build the ECS document for an Activity Log record, as Elastic's `azure.activitylogs`
/// integration writes it, with `event.category`/`event.type` from the operation's verb,
/// `cloud.account.id` for the subscription and `user.id` for the caller's object id.
pub fn azure_activity(r: &AzureRecord, tax: &Taxonomy, now: DateTime<Utc>) -> Document {
    let mut doc = azure_head(r, tax, now);
    let mut related = Related::default();
    doc.put_opt(
        "event.action",
        r.str("operationName").map(str::to_ascii_uppercase),
    );
    // `Start` and `Accept` are not outcomes yet: Elastic leaves those unset.
    let outcome = r.str("resultType").and_then(|t| {
        if t.eq_ignore_ascii_case("success") || t.eq_ignore_ascii_case("succeeded") {
            Some("success")
        } else if r.failed() {
            Some("failure")
        } else {
            None
        }
    });
    doc.put_opt("event.outcome", outcome);
    let ip = put_source(&mut doc, &mut related, r.str("callerIpAddress"));
    doc.put_opt("client.ip", ip);

    if let Some(name) = r.caller_name() {
        put_user_name(&mut doc, &USER, name);
        related.user(Some(name));
    }
    doc.put_opt("user.full_name", r.claims().and_then(|c| str_of(c, "name")));
    let object_id = r.caller_object_id();
    doc.put_opt("user.id", object_id);
    related.user(object_id);
    doc.put_opt("message", r.prop_str("statusMessage"));

    let principal = r
        .authorization()
        .and_then(|a| obj_of(a, "evidence"))
        .and_then(|e| str_of(e, "principalId"));
    let entities: Vec<&str> = r.str("resourceId").into_iter().chain(principal).collect();
    if !entities.is_empty() {
        doc.put("related.entity", entities);
    }
    related.write(&mut doc);
    doc.splice("azure.activitylogs", Part::EcsActivity);
    doc
}

/// The fields Elastic's Azure integrations write for every dataset: `azure.tenant_id`,
/// `azure.correlation_id`, `azure.resource.*` (and `azure.subscription_id`) read from the
/// resource id, and `log.level`.
fn put_azure(doc: &mut Document, r: &AzureRecord) {
    doc.put_opt("azure.tenant_id", r.str("tenantId"));
    doc.put_opt(
        "azure.correlation_id",
        r.str("correlationId")
            .or_else(|| r.prop_str("correlationId")),
    );
    match r.fields().get("Level").or_else(|| r.fields().get("level")) {
        Some(tree::Value::String(level)) => doc.put("log.level", level.as_str()),
        Some(tree::Value::Number(level)) => doc.put("log.level", level.to_string()),
        _ => {}
    }
    let Some(id) = r.str("resourceId") else {
        return;
    };
    doc.put("azure.resource.id", id);
    let parts: Vec<&str> = id.split('/').filter(|p| !p.is_empty()).collect();
    let after = |i: usize| parts.get(i + 1).copied();
    for (i, part) in parts.iter().enumerate() {
        if part.eq_ignore_ascii_case("subscriptions") {
            doc.put_opt("azure.subscription_id", after(i));
        } else if part.eq_ignore_ascii_case("resourceGroups") {
            doc.put_opt("azure.resource.group", after(i));
        } else if part.eq_ignore_ascii_case("providers") {
            // `/providers/NAMESPACE/TYPE/NAME…`: Elastic's provider is `NAMESPACE/TYPE`
            // when a name follows, the namespace alone otherwise.
            match (after(i), parts.get(i + 2), parts.get(i + 3)) {
                (Some(namespace), Some(kind), Some(_)) => {
                    doc.put("azure.resource.provider", format!("{namespace}/{kind}"));
                    doc.put("azure.resource.name", parts[i + 3..].join("/"));
                }
                (Some(namespace), _, _) => doc.put("azure.resource.provider", namespace),
                _ => {}
            }
            break;
        }
    }
}

/// `durationMs` as ECS `event.duration` (nanoseconds); none for a negative duration or one
/// too long to count in nanoseconds (found by fuzzing: the multiplication overflowed).
fn duration_ns(v: &tree::Value<'_>) -> Option<i64> {
    let ms: i64 = match v {
        tree::Value::Number(n) => n.as_i64()?,
        tree::Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    ms.checked_mul(1_000_000).filter(|ns| *ns >= 0)
}

/// Build the ECS document for a Cloud Audit Logs entry, as Elastic's `gcp.audit`
/// integration writes it: `event.action` the method, `event.provider` the audit log
/// (`activity`, `data_access`), `service.name` the API, `client.user.*` the caller, and
/// its categorization (`network`/`configuration`, `access` with `allowed`/`denied`, when
/// the entry carries one authorization check). `user.email` repeats the caller's address
/// for the rules and entity views that read `user.*`.
pub fn gcp_audit(r: &GcpRecord, now: DateTime<Utc>) -> Document {
    let mut related = Related::default();
    let grant = r.single_grant();
    let (category, types): (&[&str], &[&str]) = match grant {
        Some(true) => (&["network", "configuration"], &["access", "allowed"]),
        Some(false) => (&["network", "configuration"], &["access", "denied"]),
        None => (&[], &["info"]),
    };
    let header = Header {
        time: r.time(),
        time_source: r.time_source(),
        now,
        categories: (category, types, false),
        dataset: "gcp.audit",
        module: "gcp",
    };
    let mut event = header.event();
    event.put_opt("id", r.id());
    event.put("action", r.method());
    event.put_opt("provider", r.log_type());
    event.put_static(
        "outcome",
        match r.outcome() {
            Some(true) => "success",
            Some(false) => "failure",
            None => "unknown",
        },
    );
    let mut cloud = Head::with_capacity(3);
    cloud.put_static("provider", "gcp");
    cloud.put_object("project", nested_field("id", r.project_id()));
    cloud.put_object(
        "instance",
        nested_field("id", r.resource_label("instance_id")),
    );
    let mut doc = header.document(event, cloud);
    doc.put_opt("service.name", Some(r.service()).filter(|s| !s.is_empty()));
    doc.put_opt("log.logger", str_of(r.fields(), "logName"));
    doc.put_opt("log.level", str_of(r.fields(), "severity"));
    if let Some(email) = r.principal_email() {
        doc.put("client.user.email", email);
        doc.put("user.email", email);
        related.user(Some(email));
    }
    doc.put_opt("client.user.id", r.principal_subject());
    // `private` and `gce-internal-ip` stand for addresses Google does not disclose.
    if let Some(ip) = r.caller_ip().and_then(|a| a.parse::<IpAddr>().ok()) {
        let ip = ip.to_string();
        related.ip(Cow::Owned(ip.clone()));
        doc.put("source.ip", ip);
    }
    doc.put_opt("user_agent.original", r.user_agent());
    if matches!(r.resource_type(), Some("k8s_cluster" | "gke_cluster")) {
        doc.put_static("orchestrator.type", "kubernetes");
        doc.put_opt(
            "orchestrator.cluster.name",
            r.resource_label("cluster_name"),
        );
    }
    related.write(&mut doc);
    doc.splice("gcp.audit", Part::EcsGcp);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn azure_resource_ids_read_as_elastic_reads_them() {
        let resource = |id: &str| {
            let record = json!({
                "time": "2024-01-01T00:00:00Z",
                "tenantId": "t",
                "resourceId": id,
                "category": "AuditLogs",
                "operationName": "Add user",
                "properties": {"id": "x", "activityDisplayName": "Add user"}
            });
            let r =
                AzureRecord::new(record.as_object().cloned().unwrap().into(), Utc::now()).unwrap();
            let mut doc = Document::new();
            put_azure(&mut doc, &r);
            let source = crate::transforms::decode::SourceRecord::Azure(r);
            serde_json::from_slice::<Value>(&doc.to_bytes(&source)).unwrap()["azure"].clone()
        };
        assert_eq!(
            resource("/SUBSCRIPTIONS/0000-1/RESOURCEGROUPS/RG-1/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM-1/EXTENSIONS/CUSTOM"),
            json!({"tenant_id": "t", "resource": {"id": "/SUBSCRIPTIONS/0000-1/RESOURCEGROUPS/RG-1/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM-1/EXTENSIONS/CUSTOM", "group": "RG-1", "provider": "MICROSOFT.COMPUTE/VIRTUALMACHINES", "name": "VM-1/EXTENSIONS/CUSTOM"}, "subscription_id": "0000-1"})
        );
        assert_eq!(
            resource("/tenants/t/providers/Microsoft.aadiam")["resource"],
            json!({"id": "/tenants/t/providers/Microsoft.aadiam", "provider": "Microsoft.aadiam"})
        );
    }

    #[test]
    fn source_ip_is_the_address_as_it_prints() {
        let ip = |addr: &str| {
            let mut doc = Document::new();
            put_source(&mut doc, &mut Related::default(), Some(addr))
        };
        assert_eq!(ip("198.51.100.7").as_deref(), Some("198.51.100.7"));
        assert_eq!(ip("0.0.0.0").as_deref(), Some("0.0.0.0"));
        assert_eq!(ip("010.1.1.1"), None);
        assert_eq!(ip(" 10.1.1.1"), None);
        assert_eq!(ip("2001:DB8:0:0::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("::ffff:10.1.1.1").as_deref(), Some("::ffff:10.1.1.1"));
        assert_eq!(ip("lambda.amazonaws.com"), None);
    }

    #[test]
    fn duration_in_nanoseconds_only_when_it_fits() {
        let duration = |v: Value| duration_ns(&tree::Value::from(v));
        assert_eq!(duration(json!(1500)), Some(1_500_000_000));
        assert_eq!(duration(json!("25")), Some(25_000_000));
        assert_eq!(
            duration(json!("-0000000000000000000000000000080000000000000")),
            None
        );
        assert_eq!(duration(json!(i64::MAX)), None);
        assert_eq!(duration(json!("soon")), None);
    }
}
