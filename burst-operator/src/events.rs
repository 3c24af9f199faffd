//! Kubernetes Events (`events.k8s.io/v1`), one `create` per note.
//!
//! kube-runtime's `Recorder` folds repeated events into a series keyed without the note,
//! which would hide every split change after the first behind the first one's text; burstd
//! records each change as its own Event instead, and rate-limits errors itself (see
//! [`crate::status`]). Only `create` is needed in RBAC.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use crate::status::{EventNote, Severity};

/// The `reportingController` of burstd's Events.
pub const REPORTING_CONTROLLER: &str = "bursting.dev/burstd";

/// Records Events about objects.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    instance: String,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// A recorder reporting as `instance` (the pod name).
    pub fn new(client: kube::Client, instance: impl Into<String>) -> EventRecorder {
        EventRecorder {
            client,
            instance: instance.into(),
        }
    }

    /// The Event object for `note` about `regarding` (pure; for tests and dry runs).
    pub fn event(&self, regarding: &ObjectReference, note: &EventNote) -> Event {
        let now = Timestamp::now();
        let base = regarding
            .name
            .clone()
            .unwrap_or_else(|| "burstd".to_owned());
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{base}.{:x}", now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            action: Some(note.action.to_owned()),
            reason: Some(note.reason.to_owned()),
            note: Some(note.note.clone()),
            type_: Some(
                match note.severity {
                    Severity::Normal => "Normal",
                    Severity::Warning => "Warning",
                }
                .to_owned(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }

    /// Creates the Event in the namespace of `regarding`.
    pub async fn record(
        &self,
        regarding: &ObjectReference,
        note: &EventNote,
    ) -> Result<(), kube::Error> {
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        api.create(&PostParams::default(), &self.event(regarding, note))
            .await?;
        Ok(())
    }
}
