//! ECR: does an image exist, and what is it.

use aws_sdk_ecr::types::{DescribeImagesFilter, ImageDetail, ImageIdentifier, TagStatus};
use aws_sdk_ecr::Client;
use ferry_core::names::PushTime;
use ferry_core::ports::{ImageSelector, PortResult, Registry, ResolvedImage};

use crate::error::port_error;

#[derive(Clone)]
pub struct EcrRegistry {
    client: Client,
    page: i32,
}

impl EcrRegistry {
    pub fn new(client: Client) -> Self {
        EcrRegistry {
            client,
            page: DESCRIBE_IMAGES_PAGE,
        }
    }

    /// The same registry asking for pages of `page` images (1–1000; the
    /// contract test pages a small repository with it).
    pub fn with_page_size(self, page: i32) -> Self {
        EcrRegistry { page, ..self }
    }
}

/// When the image was pushed, as a time.
pub fn push_time(time: &aws_smithy_types::DateTime) -> Option<PushTime> {
    time.to_millis().ok().map(PushTime::from_epoch_millis)
}

/// An image as DescribeImages details it.
pub fn resolved_image(detail: &ImageDetail) -> ResolvedImage {
    ResolvedImage {
        registry_id: detail.registry_id().unwrap_or_default().to_owned(),
        digest: detail.image_digest().unwrap_or_default().to_owned(),
        tags: detail.image_tags().to_vec(),
        pushed_at: detail.image_pushed_at().and_then(push_time),
    }
}

/// DescribeImages answers at most this many images per page (its `maxResults`
/// maximum, 1000; without it ECR answers 100 per page).
pub const DESCRIBE_IMAGES_PAGE: i32 = 1000;

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
        Ok(out.image_details().first().map(resolved_image))
    }

    async fn images(&self, repository: &str) -> PortResult<Vec<ResolvedImage>> {
        let mut pages = self
            .client
            .describe_images()
            .repository_name(repository)
            .filter(
                DescribeImagesFilter::builder()
                    .tag_status(TagStatus::Tagged)
                    .build(),
            )
            .max_results(self.page)
            .into_paginator()
            .send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // A repository that does not exist has no images: nothing to release.
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_repository_not_found_exception()) =>
                {
                    return Ok(Vec::new())
                }
                Err(err) => return Err(port_error("ecr:DescribeImages", err)),
            };
            images.extend(page.image_details().iter().map(resolved_image));
        }
        Ok(images)
    }
}
