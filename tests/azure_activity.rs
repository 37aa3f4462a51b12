//! The Azure Activity Log: recognised among Entra records in the same batches, in the
//! diagnostic-settings shape and the Log Analytics `AzureActivity` shape; ECS as Elastic's
//! `azure.activitylogs` integration writes it; OCSF API Activity, and User Access
//! Management for role assignments; every document valid.

mod common;

use auditbridge::record::{Format, Record};
use auditbridge::transforms::normalize::OutputFormat;
use common::{doc, process, shared, valid_records, Schemas};
use serde_json::{json, Value};

const SUBSCRIPTION: &str = "6b1a2c3d-0000-4000-8000-00000000a001";

fn one(body: &Value) -> Record {
    let records = valid_records(&Schemas::load(), "record", body.to_string().as_bytes());
    assert_eq!(records.len(), 1);
    records.into_iter().next().unwrap()
}

/// A role assignment as the diagnostic setting streams it: upper-case operation, the
/// request body as JSON text with capitalised keys.
fn role_assignment() -> Value {
    json!({
        "time": "2024-05-01T10:00:00.1234567Z",
        "resourceId": format!("/SUBSCRIPTIONS/{SUBSCRIPTION}/PROVIDERS/MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/4C2E"),
        "operationName": "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE",
        "category": "Administrative",
        "resultType": "Start",
        "resultSignature": "Started.",
        "durationMs": 0,
        "callerIpAddress": "203.0.113.7",
        "correlationId": "7c1d0a52-3c55-4b1b-9f1e-0e5b9a3f4c21",
        "identity": {
            "authorization": {
                "scope": format!("/subscriptions/{SUBSCRIPTION}"),
                "action": "Microsoft.Authorization/roleAssignments/write",
                "evidence": {"role": "Owner", "principalId": "9f3a1b2c-1111-4222-8333-444455556666", "principalType": "User", "roleAssignmentScope": format!("/subscriptions/{SUBSCRIPTION}")}
            },
            "claims": {
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": "mallory@contoso.com",
                "http://schemas.microsoft.com/identity/claims/objectidentifier": "9f3a1b2c-1111-4222-8333-444455556666",
                "name": "Mallory Admin",
                "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
            }
        },
        "level": "Information",
        "location": "global",
        "properties": {
            "requestbody": format!("{{\"Id\":\"4c2e\",\"Properties\":{{\"PrincipalId\":\"1d9e2f3a-aaaa-4bbb-8ccc-ddddeeeeffff\",\"PrincipalType\":\"ServicePrincipal\",\"RoleDefinitionId\":\"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635\",\"Scope\":\"/subscriptions/{SUBSCRIPTION}\"}}}}"),
            "eventCategory": "Administrative",
            "entity": format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleAssignments/4c2e"),
            "message": "Microsoft.Authorization/roleAssignments/write",
            "hierarchy": "tenant-1/sub"
        }
    })
}

#[test]
fn role_assignment_is_tagged_and_mapped_to_user_access_management() {
    let r = one(&role_assignment());
    assert_eq!(r.dataset, "azure.activitylogs");
    assert_eq!(r.account.as_deref(), Some(SUBSCRIPTION));
    assert_eq!(r.rules, ["azure-role-assignment-created"]);
    assert_eq!(r.techniques, ["T1098.003"]);

    let ecs = doc(&r, Format::Ecs);
    assert_eq!(ecs["data_stream"]["dataset"], "azure.activitylogs");
    assert_eq!(
        ecs["event"]["action"],
        "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE"
    );
    assert_eq!(ecs["event"]["category"], json!(["iam"]));
    assert_eq!(ecs["event"]["type"], json!(["admin", "change"]));
    assert!(
        ecs["event"].get("outcome").is_none(),
        "a start is no outcome"
    );
    assert!(
        ecs["event"].get("id").is_none(),
        "the correlation id is shared"
    );
    assert_eq!(ecs["event"]["duration"], 0);
    assert_eq!(ecs["cloud"]["account"]["id"], SUBSCRIPTION);
    assert_eq!(ecs["azure"]["subscription_id"], SUBSCRIPTION);
    assert_eq!(
        ecs["azure"]["correlation_id"],
        "7c1d0a52-3c55-4b1b-9f1e-0e5b9a3f4c21"
    );
    assert_eq!(ecs["log"]["level"], "Information");
    assert_eq!(ecs["source"]["ip"], "203.0.113.7");
    assert_eq!(ecs["client"]["ip"], "203.0.113.7");
    assert_eq!(ecs["user"]["name"], "mallory");
    assert_eq!(ecs["user"]["email"], "mallory@contoso.com");
    assert_eq!(ecs["user"]["domain"], "contoso.com");
    assert_eq!(ecs["user"]["full_name"], "Mallory Admin");
    assert_eq!(ecs["user"]["id"], "9f3a1b2c-1111-4222-8333-444455556666");
    assert_eq!(
        ecs["related"]["entity"],
        json!([
            format!("/SUBSCRIPTIONS/{SUBSCRIPTION}/PROVIDERS/MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/4C2E"),
            "9f3a1b2c-1111-4222-8333-444455556666"
        ])
    );
    let activity = &ecs["azure"]["activitylogs"];
    assert_eq!(
        activity["operation_name"],
        "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE"
    );
    assert_eq!(activity["result_type"], "Start");
    assert_eq!(activity["result_signature"], "Started.");
    assert_eq!(activity["category"], "Administrative");
    assert_eq!(activity["event_category"], "Administrative");
    assert_eq!(
        activity["identity"]["authorization"]["evidence"]["principal_id"],
        "9f3a1b2c-1111-4222-8333-444455556666"
    );
    assert_eq!(
        activity["identity"]["authorization"]["evidence"]["role_assignment_scope"],
        format!("/subscriptions/{SUBSCRIPTION}")
    );
    assert_eq!(
        activity["identity"]["claims_initiated_by_user"],
        json!({"name": "mallory@contoso.com", "fullname": "Mallory Admin", "schema": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"})
    );
    assert_eq!(
        activity["identity"]["claims"]
            ["http://schemas_microsoft_com/identity/claims/objectidentifier"],
        "9f3a1b2c-1111-4222-8333-444455556666"
    );
    assert!(activity["properties"].get("eventCategory").is_none());
    assert_eq!(
        activity["properties"]["requestbody"]["Properties"]["PrincipalType"], "ServicePrincipal",
        "the request body parsed, as Elastic parses it"
    );
    for gone in [
        "time",
        "resourceId",
        "callerIpAddress",
        "correlationId",
        "level",
    ] {
        assert!(activity.get(gone).is_none(), "{gone} is held elsewhere");
    }
    assert_eq!(ecs["threat"]["technique"]["id"], json!(["T1098"]));

    let ocsf = doc(&r, Format::Ocsf);
    assert_eq!(ocsf["class_uid"], 3005);
    assert_eq!(ocsf["activity_id"], 1);
    assert_eq!(ocsf["activity_name"], "Assign Privileges");
    assert_eq!(ocsf["status_id"], 99);
    assert_eq!(ocsf["status"], "Start");
    assert_eq!(ocsf["cloud"]["account"]["uid"], SUBSCRIPTION);
    assert!(ocsf["cloud"].get("region").is_none(), "global is no region");
    assert_eq!(
        ocsf["user"],
        json!({"uid": "1d9e2f3a-aaaa-4bbb-8ccc-ddddeeeeffff", "type_id": 99, "type": "ServicePrincipal"})
    );
    assert_eq!(
        ocsf["privileges"],
        json!([format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635")])
    );
    assert_eq!(ocsf["actor"]["user"]["email_addr"], "mallory@contoso.com");
    assert_eq!(ocsf["actor"]["user"]["type"], "User");
    assert_eq!(
        ocsf["actor"]["app_uid"],
        "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
    );
    assert_eq!(ocsf["src_endpoint"]["ip"], "203.0.113.7");
    assert_eq!(
        ocsf["resources"][0]["type"],
        "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS"
    );
    assert_eq!(ocsf["metadata"]["product"]["name"], "Azure Activity Log");
    assert!(ocsf["unmapped"]["properties"]["requestbody"].is_string());
    let finding = doc(&r, Format::OcsfFinding);
    assert_eq!(finding["class_uid"], 2004);
}

#[test]
fn a_write_that_created_is_a_create_and_a_success_has_an_outcome() {
    let mut record = role_assignment();
    record["operationName"] = json!("Microsoft.Automation/automationAccounts/runbooks/write");
    record["resourceId"] = json!(format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/ops/providers/Microsoft.Automation/automationAccounts/ops/runbooks/sync"));
    record["resultType"] = json!("Success");
    record["resultSignature"] = json!("Succeeded.Created");
    record["properties"] = json!({"statusCode": "Created", "serviceRequestId": "req-1"});
    let r = one(&record);
    assert_eq!(r.rules, ["azure-automation-runbook"]);
    let ecs = doc(&r, Format::Ecs);
    assert_eq!(ecs["event"]["outcome"], "success");
    assert_eq!(ecs["event"]["category"], json!(["configuration"]));
    assert_eq!(ecs["event"]["type"], json!(["creation"]));
    assert_eq!(ecs["azure"]["resource"]["group"], "ops");
    assert_eq!(
        ecs["azure"]["activitylogs"]["operation_name"],
        "MICROSOFT.AUTOMATION/AUTOMATIONACCOUNTS/RUNBOOKS/WRITE"
    );
    assert_eq!(
        ecs["azure"]["activitylogs"]["properties"],
        json!({"status_code": "Created", "service_request_id": "req-1"})
    );
    let ocsf = doc(&r, Format::Ocsf);
    assert_eq!(ocsf["class_uid"], 6003);
    assert_eq!(ocsf["activity_id"], 1);
    assert_eq!(ocsf["status_id"], 1);
    assert_eq!(ocsf["api"]["service"]["name"], "Microsoft.Automation");
    assert_eq!(ocsf["api"]["request"]["uid"], "req-1");
    assert_eq!(ocsf["resources"][0]["name"], "sync");
}

#[test]
fn a_failed_operation_is_a_failure_and_its_tag_an_attempt() {
    let mut record = role_assignment();
    record["operationName"] = json!("MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION");
    record["resultType"] = json!("Failure");
    record["properties"] = json!({"statusCode": "Forbidden", "statusMessage": "{\"error\":{\"code\":\"AuthorizationFailed\"}}"});
    let r = one(&record);
    assert_eq!(r.rules, ["azure-vm-run-command"]);
    let ecs = doc(&r, Format::Ecs);
    assert_eq!(ecs["event"]["outcome"], "failure");
    assert_eq!(
        ecs["message"],
        "{\"error\":{\"code\":\"AuthorizationFailed\"}}"
    );
    assert!(ecs["azure"]["activitylogs"]["properties"]
        .get("statusMessage")
        .is_none());
    let ocsf = doc(&r, Format::Ocsf);
    assert_eq!(ocsf["status_id"], 2);
    assert_eq!(ocsf["status_code"], "Forbidden");
    assert_eq!(ocsf["activity_id"], 99);
    assert_eq!(
        ocsf["activity_name"],
        "MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION"
    );
}

/// A global administrator elevating their own access: User Access Management, the
/// caller being the user who gains User Access Administrator.
#[test]
fn elevate_access_is_a_privilege_the_caller_gives_itself() {
    let mut record = role_assignment();
    record["operationName"] = json!("Microsoft.Authorization/elevateAccess/action");
    record["resourceId"] = json!("/providers/Microsoft.Authorization");
    record["resultType"] = json!("Success");
    record["properties"] = json!({"statusCode": "OK"});
    let r = one(&record);
    assert_eq!(r.rules, ["azure-elevate-access"]);
    let ocsf = doc(&r, Format::Ocsf);
    assert_eq!(ocsf["class_uid"], 3005);
    assert_eq!(ocsf["privileges"], json!(["User Access Administrator"]));
    assert_eq!(ocsf["user"]["name"], "mallory@contoso.com");
    assert_eq!(ocsf["user"]["uid"], "9f3a1b2c-1111-4222-8333-444455556666");
}

/// One Event Hubs batch may hold Entra audits and Activity Log records together.
#[test]
fn one_batch_holds_entra_and_activity_records() {
    let batch = json!({"records": [
        role_assignment(),
        {"time": "2024-05-01T10:00:01Z", "category": "AuditLogs", "operationName": "Add user", "tenantId": "t-1",
         "properties": {"id": "Directory_1", "activityDisplayName": "Add user", "category": "UserManagement", "result": "success"}}
    ]});
    let out = process(OutputFormat::Ecs, batch.to_string().as_bytes());
    assert!(out.dead_letters.is_empty());
    let datasets: Vec<&str> = out.records.iter().map(|r| r.dataset).collect();
    assert_eq!(datasets, ["azure.activitylogs", "azure.auditlogs"]);
}

/// The Log Analytics `AzureActivity` table names its columns its own way and holds
/// JSON as text; it reads as the diagnostic record does.
#[test]
fn log_analytics_azure_activity_row_reads_like_the_diagnostic_record() {
    let row = json!({
        "TenantId": "ffffffff-aaaa-bbbb-cccc-dddddddddddd",
        "SourceSystem": "Azure",
        "TimeGenerated": "2024-05-01T10:00:00Z",
        "CategoryValue": "Administrative",
        "OperationName": "Create or Update Virtual Machine Extension",
        "OperationNameValue": "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE",
        "Level": "Informational",
        "ActivityStatusValue": "Success",
        "ActivitySubstatusValue": "Created",
        "Caller": "mallory@contoso.com",
        "CallerIpAddress": "203.0.113.7",
        "CorrelationId": "7c1d0a52-3c55-4b1b-9f1e-0e5b9a3f4c21",
        "EventDataId": "2b1e7c44-6d21-4f0e-9a3e-5d6c7b8a9f01",
        "SubscriptionId": SUBSCRIPTION,
        "_ResourceId": format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/prod/providers/microsoft.compute/virtualmachines/web-1/extensions/customscript"),
        "Authorization": "{\"action\":\"Microsoft.Compute/virtualMachines/extensions/write\",\"scope\":\"/subscriptions/x\"}",
        "Claims": "{\"http://schemas.microsoft.com/identity/claims/objectidentifier\":\"9f3a1b2c-1111-4222-8333-444455556666\"}",
        "Properties": "{\"statusCode\":\"Created\",\"requestbody\":\"{\\\"properties\\\":{\\\"type\\\":\\\"CustomScript\\\"}}\"}",
        "Type": "AzureActivity"
    });
    let r = one(&row);
    assert_eq!(r.dataset, "azure.activitylogs");
    assert_eq!(r.id, "2b1e7c44-6d21-4f0e-9a3e-5d6c7b8a9f01");
    assert_eq!(
        r.rules,
        [
            "azure-vm-extension-written",
            "azure-vm-custom-script-extension"
        ]
    );
    let ecs = doc(&r, Format::Ecs);
    assert_eq!(ecs["event"]["id"], "2b1e7c44-6d21-4f0e-9a3e-5d6c7b8a9f01");
    assert_eq!(ecs["event"]["outcome"], "success");
    assert_eq!(ecs["event"]["type"], json!(["creation"]));
    assert_eq!(ecs["user"]["email"], "mallory@contoso.com");
    assert_eq!(ecs["user"]["id"], "9f3a1b2c-1111-4222-8333-444455556666");
    assert_eq!(ecs["azure"]["resource"]["group"], "prod");
    assert_eq!(ecs["cloud"]["account"]["id"], SUBSCRIPTION);
    assert_eq!(
        ecs["azure"]["activitylogs"]["identity"]["authorization"]["action"],
        "Microsoft.Compute/virtualMachines/extensions/write"
    );
    assert_eq!(
        ecs["azure"]["activitylogs"]["properties"]["operationName"],
        "Create or Update Virtual Machine Extension"
    );
}

/// Elastic's own `azure.activitylogs` pipeline-test inputs (Elastic License 2.0, read
/// from `../shared`, not copied): every record decodes, lands in its dataset, and
/// validates; the listKeys record carries the values Elastic's expected output holds.
#[test]
fn elastic_activity_log_samples_decode_validate_and_agree_with_elastic() {
    let dir = shared("data/azure-activity/elastic");
    let schemas = Schemas::load();
    let mut datasets = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("log") {
            continue;
        }
        let records = valid_records(
            &schemas,
            &path.display().to_string(),
            &std::fs::read(&path).unwrap(),
        );
        for r in &records {
            *datasets.entry(r.dataset).or_insert(0) += 1;
        }
    }
    assert_eq!(
        datasets,
        [("azure.activitylogs", 18), ("azure.signinlogs", 4)]
            .into_iter()
            .collect()
    );

    let raw = std::fs::read(dir.join("test-activitylogs-raw.log")).unwrap();
    let out = process(OutputFormat::Both, &raw);
    let ecs = doc(&out.records[0], Format::Ecs);
    // Elastic's expected output for this input (test-activitylogs-raw.log-expected.json).
    assert_eq!(
        ecs["event"]["action"],
        "MICROSOFT.EVENTHUB/NAMESPACES/AUTHORIZATIONRULES/LISTKEYS/ACTION"
    );
    assert_eq!(ecs["event"]["duration"], 0);
    assert_eq!(ecs["event"]["kind"], "event");
    assert_eq!(
        ecs["azure"]["subscription_id"],
        "8a4de8b5-095c-47d0-a96f-a75130c61d53"
    );
    assert_eq!(ecs["azure"]["resource"]["group"], "SA-HEMA");
    assert_eq!(ecs["log"]["level"], "Information");
    assert_eq!(ecs["source"]["ip"], "81.2.69.144");
    let activity = &ecs["azure"]["activitylogs"];
    assert_eq!(activity["category"], "Action");
    assert_eq!(activity["event_category"], "Administrative");
    assert_eq!(activity["result_type"], "Start");
    assert_eq!(activity["result_signature"], "Started.");
    assert_eq!(
        activity["identity"]["authorization"]["evidence"]["role"],
        "Azure EventGrid Service BuiltIn Role"
    );
    assert_eq!(
        activity["identity"]["authorization"]["evidence"]["principal_type"],
        "ServicePrincipal"
    );
    assert_eq!(
        activity["identity"]["claims"]["http://schemas_microsoft_com/identity/claims/tenantid"],
        "8a4de8b5-095c-47d0-a96f-a75130c61d53"
    );
    let ocsf = doc(&out.records[0], Format::Ocsf);
    assert_eq!(ocsf["class_uid"], 6003);
    assert_eq!(ocsf["actor"]["user"]["type"], "Service");
    assert_eq!(
        ocsf["actor"]["user"]["uid"],
        "8a4de8b5-095c-47d0-a96f-a75130c61d53"
    );
}
