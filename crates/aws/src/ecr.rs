//! ECR: does an image exist, and what is it.

use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_ecr::Client;
use ferry_core::names::PushTime;
use ferry_core::ports::{ImageSelector, PortResult, Registry, ResolvedImage};

use crate::error::port_error;

#[derive(Clone)]
pub struct EcrRegistry {
    client: Client,
}

impl EcrRegistry {
    pub fn new(client: Client) -> Self {
        EcrRegistry { client }
    }
}

/// When the image was pushed, as a time.
pub fn push_time(time: &aws_smithy_types::DateTime) -> Option<PushTime> {
    time.to_millis().ok().map(PushTime::from_epoch_millis)
}

impl Registry for EcrRegistry {
    async fn resolve(
        &self,
        repository: &str,
        image: &ImageSelector,
    ) -> PortResult<Option<ResolvedImage>> {
        let id = match image {
            ImageSelector::Tag(tag) => ImageIdentifier::builder().image_tag(tag).build(),
            ImageSelector::Digest(digest) => {
                ImageIdentifier::builder().image_digest(digest).build()
            }
        };
        let result = self
            .client
            .describe_images()
            .repository_name(repository)
            .image_ids(id)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err)
                if err.as_service_error().is_some_and(|e| {
                    e.is_image_not_found_exception() || e.is_repository_not_found_exception()
                }) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(port_error("ecr:DescribeImages", err)),
        };
        Ok(out.image_details().first().map(|detail| ResolvedImage {
            registry_id: detail.registry_id().unwrap_or_default().to_owned(),
            digest: detail.image_digest().unwrap_or_default().to_owned(),
            tags: detail.image_tags().to_vec(),
            pushed_at: detail.image_pushed_at().and_then(push_time),
        }))
    }
}
