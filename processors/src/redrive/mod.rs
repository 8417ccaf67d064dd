//! Redrive: bring back what the pipeline set aside, once the cause is fixed.
//!
//! - [`batches`]: batches the event source mapping gave up on (transient
//!   failures that outlasted its retries). Their records are still in the
//!   stream; they are re-read and re-run through the archiver.
//! - [`poison`]: records the parser rejected (dead letters). Once a fix is
//!   deployed they are re-validated with the current parser and re-published to
//!   the stream, so every consumer (lake and metrics) sees them once.
//!
//! Both delete a queue message only when what it names is durably handled,
//! so a crash or an interrupted run loses nothing and can simply be re-run.

pub mod batches;
pub mod poison;

pub use batches::{FailedBatchInfo, RedriveReport, fetch, redrive};
pub use poison::{PoisonOptions, PoisonReport, redrive_poison};

/// The AWS clients a redrive needs, from the default credential chain and
/// region (and `AWS_ENDPOINT_URL` for local servers).
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// The queues (on-failure destination, dead-letter queue).
    pub sqs: aws_sdk_sqs::Client,
    /// The stream.
    pub kinesis: aws_sdk_kinesis::Client,
    /// Claim-checked dead letters.
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    /// Clients from the environment; `force_path_style` for local S3 servers.
    pub async fn from_env(force_path_style: bool) -> Self {
        let sdk = crate::aws::sdk_config().await;
        AwsClients {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            kinesis: aws_sdk_kinesis::Client::new(&sdk),
            s3: crate::aws::s3_client(&sdk, force_path_style),
        }
    }
}

/// Formats an SDK error with its whole cause chain (the SDK's `Display` alone
/// says only "service error").
pub(crate) fn sdk_error<E: std::error::Error>(
    operation: impl std::fmt::Display,
) -> impl FnOnce(E) -> String {
    move |e| {
        format!(
            "{operation}: {}",
            aws_sdk_sqs::error::DisplayErrorContext(&e)
        )
    }
}

/// Up to 10 messages of `queue_url`, hidden from other readers for five
/// minutes while a redrive works on them (empty when the queue is drained).
pub(crate) async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
    let got = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(300)
        .send()
        .await
        .map_err(sdk_error("ReceiveMessage"))?;
    Ok(got.messages.unwrap_or_default())
}

/// Deletes a message once what it names is durably handled.
pub(crate) async fn delete(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipt: &str,
) -> Result<(), String> {
    sqs.delete_message()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .send()
        .await
        .map_err(sdk_error("DeleteMessage"))?;
    Ok(())
}
