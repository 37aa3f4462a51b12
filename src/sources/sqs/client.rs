//! SQS and S3 clients: the standard credential chain (environment, profile, web identity
//! / IRSA, container and instance metadata), an optional role for reading objects, and an
//! optional endpoint override.

use aws_config::{BehaviorVersion, Region};

use super::config::SqsSourceConfig;

pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
}

pub async fn build(config: &SqsSourceConfig) -> Clients {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let shared = loader.load().await;

    let mut sqs = aws_sdk_sqs::config::Builder::from(&shared);
    if let Some(endpoint) = &config.endpoint {
        sqs = sqs.endpoint_url(endpoint);
    }

    let mut s3 = aws_sdk_s3::config::Builder::from(&shared);
    if let Some(endpoint) = &config.endpoint {
        // A local or private endpoint has no bucket subdomains.
        s3 = s3.endpoint_url(endpoint).force_path_style(true);
    }
    if let Some(role) = &config.assume_role_arn {
        let provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("auditbridge")
            .configure(&shared)
            .build()
            .await;
        s3 = s3.credentials_provider(provider);
    }
    Clients {
        sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
        s3: aws_sdk_s3::Client::from_conf(s3.build()),
    }
}
